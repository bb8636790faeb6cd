//! Runs one integration on any transport: registers it, keeps it alive with heartbeats, takes
//! events from a [`Feed`], keeps those its current subscriptions match, handles each once per
//! process, and catches up on open `.triggered` events when the feed may have missed some.
//!
//! The feed is not assumed durable. So at start, when the feed lags, after a transient failure
//! (a little later) and when a delayed `.triggered` (`time` in the future) falls due, the runner
//! reads the open `.triggered` events of its subscribed types from the control plane — unless the
//! feed delivers those itself ([`Feed::delivers_open_events`]): then several replicas share them
//! through the feed and the runner never reads them.
//!
//! A delivered event whose `time` is in the future (a delayed `.triggered`, published when it
//! was committed) is held, unacknowledged, until it is due.

use crate::{Context, ContextError, ControlPlane, Integration, KubernetesMetadata, LogEntry, Metadata};
use crate::{Registration, Subscription};
use keptn_formats::KeptnEvent;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Acknowledges a delivered event to its transport once it was handled (or refused for good).
pub type Ack = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One item of a feed.
pub enum Delivery {
    /// An event to handle; `ack`, when the transport wants one, is awaited after handling.
    Event { event: Arc<KeptnEvent>, ack: Option<Ack> },
    /// Events may have been missed (a lagging bus, a reconnect): read the open ones again.
    Lagged,
}

/// Where a runner's events come from: the in-process bus, the control plane's event stream,
/// a JetStream consumer, or polling.
#[async_trait::async_trait]
pub trait Feed: Send {
    /// The next delivery; None when the feed has ended for good.
    async fn next(&mut self) -> Option<Delivery>;
    /// Whether the feed itself delivers the open `.triggered` events (a server-side stream that
    /// shares work between replicas does); then the runner never reads them itself, so two
    /// replicas do not both take one.
    fn delivers_open_events(&self) -> bool {
        false
    }
    /// Whether the feed selects events by type only, not by the stored subscriptions (a
    /// JetStream consumer filtered on subjects): then, where the control plane cannot tell the
    /// subscriptions at once, the runner reads them (`ControlPlane::subscriptions`) before handling a delivered
    /// event, so that a user's edit counts from the next event on, not from the next heartbeat.
    fn selects_by_type_only(&self) -> bool {
        false
    }
}

/// The polling feed: a [`Delivery::Lagged`] every `every`, so the runner reads the open
/// `.triggered` events that often. What an integration uses against a plain keptn 1.x control
/// plane, where polling `GET /controlPlane/v1/event/triggered/{type}` is the only way.
pub struct Tick {
    interval: tokio::time::Interval,
}

impl Tick {
    /// The first tick comes after `every` (the runner reads the open events at start anyway).
    pub fn new(every: Duration) -> Tick {
        let every = every.max(Duration::from_millis(1));
        let mut interval = tokio::time::interval_at(Instant::now() + every, every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Tick { interval }
    }
}

#[async_trait::async_trait]
impl Feed for Tick {
    async fn next(&mut self) -> Option<Delivery> {
        self.interval.tick().await;
        Some(Delivery::Lagged)
    }
}

/// keptn's registration of an integration that subscribes to `subscriptions` (no filters):
/// the built-ins use hostname `built-in`, location `control-plane`, namespace `keptn`.
/// The deployment name is the integration's name, as keptn's distributor reports it.
pub fn registration(
    name: &str,
    version: &str,
    hostname: &str,
    location: &str,
    namespace: &str,
    subscriptions: &[&str],
) -> Registration {
    Registration {
        name: name.into(),
        metadata: Metadata {
            hostname: hostname.into(),
            integrationversion: version.into(),
            distributorversion: version.into(),
            location: location.into(),
            kubernetesmetadata: KubernetesMetadata {
                namespace: namespace.into(),
                deploymentname: name.into(),
                ..KubernetesMetadata::default()
            },
            ..Metadata::default()
        },
        subscriptions: subscriptions
            .iter()
            .map(|ty| Subscription { event: ty.to_string(), ..Subscription::default() })
            .collect(),
        ..Registration::default()
    }
}

/// Refreshes `lastseen` (the Bridge shows integrations seen within 2 minutes) and the
/// subscriptions, and keeps the registration alive past the TTL.
pub const HEARTBEAT: Duration = Duration::from_secs(60);
/// A transient failure is retried (by reading the open events again) this much later.
pub const RETRY: Duration = Duration::from_secs(5);
/// Events handled at the same time.
pub const CONCURRENCY: usize = 16;
/// Handled ids are pruned when the set grows past this (then the threshold doubles).
const PRUNE_AT: usize = 4096;

/// Runs `integration` with the default timings until `feed` ends.
pub async fn run(
    integration: Arc<dyn Integration>,
    plane: Arc<dyn ControlPlane>,
    registration: Registration,
    feed: Box<dyn Feed>,
) {
    Runner::new(integration, plane, registration).run(feed).await
}

/// A runner's settings; [`Runner::run`] runs it.
pub struct Runner {
    integration: Arc<dyn Integration>,
    plane: Arc<dyn ControlPlane>,
    registration: Registration,
    heartbeat: Duration,
    retry: Duration,
    concurrency: usize,
}

impl Runner {
    pub fn new(integration: Arc<dyn Integration>, plane: Arc<dyn ControlPlane>, registration: Registration) -> Runner {
        Runner { integration, plane, registration, heartbeat: HEARTBEAT, retry: RETRY, concurrency: CONCURRENCY }
    }

    /// How often it sends a heartbeat (and picks up edited subscriptions).
    pub fn heartbeat(mut self, every: Duration) -> Runner {
        self.heartbeat = every;
        self
    }

    /// How much later a transient failure (handling, registering, reading) is retried.
    pub fn retry(mut self, after: Duration) -> Runner {
        self.retry = after;
        self
    }

    /// How many events it handles at the same time (at least 1).
    pub fn concurrency(mut self, n: usize) -> Runner {
        self.concurrency = n.max(1);
        self
    }

    /// Registers, then handles what `feed` delivers until it ends; waits for the events in
    /// flight before returning.
    pub async fn run(self, mut feed: Box<dyn Feed>) {
        let reads_open = !feed.delivers_open_events();
        let checks_subscriptions = feed.selects_by_type_only();
        let mut state = State {
            name: self.integration.name(),
            ctx: self.plane.clone(),
            plane: self.plane,
            integration: self.integration,
            registration: self.registration,
            retry: self.retry,
            reads_open,
            checks_subscriptions,
            permits: Arc::new(Semaphore::new(self.concurrency)),
            clock: Clock::new(),
            id: None,
            subscriptions: None,
            handled: HashMap::new(),
            seq: 0,
            prune_at: PRUNE_AT,
            tasks: JoinSet::new(),
            in_flight: HashMap::new(),
            held: Vec::new(),
        };
        let mut next_beat = Instant::now() + if state.register().await { self.heartbeat } else { self.retry };
        let mut wake = state.catch_up().await;
        let mut feed_open = true;
        loop {
            let until = wake;
            let sleep = async move {
                match until {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                got = feed.next(), if feed_open => match got {
                    Some(Delivery::Event { event, ack }) => {
                        wake = earliest(wake, state.deliver(event, ack));
                        if state.handled.len() >= state.prune_at {
                            wake = earliest(wake, state.prune().await);
                        }
                    }
                    Some(Delivery::Lagged) => wake = earliest(wake, state.catch_up().await),
                    None => feed_open = false,
                },
                Some(done) = state.tasks.join_next_with_id(), if !state.tasks.is_empty() => {
                    if let Some(retry_at) = state.finished(done) {
                        wake = earliest(wake, Some(retry_at));
                    }
                }
                _ = sleep => {
                    state.release_due();
                    wake = earliest(state.catch_up().await, state.next_held());
                }
                _ = tokio::time::sleep_until(next_beat) => {
                    let (ok, registered_again) = state.beat().await;
                    next_beat = Instant::now() + if ok { self.heartbeat } else { self.retry };
                    if registered_again {
                        wake = earliest(wake, state.catch_up().await);
                    }
                }
            }
            // Held events are dropped unacknowledged: their transport is gone.
            if !feed_open && state.tasks.is_empty() {
                return;
            }
        }
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Wall-clock milliseconds as the runner sees them: the wall clock at start plus the tokio
/// clock's progress since, so that due times and sleeps agree (also under a paused test clock).
struct Clock {
    wall0: i64,
    t0: Instant,
}

impl Clock {
    fn new() -> Clock {
        Clock { wall0: chrono::Utc::now().timestamp_millis(), t0: Instant::now() }
    }
    fn now_ms(&self) -> i64 {
        self.wall0 + Instant::now().duration_since(self.t0).as_millis() as i64
    }
    /// The instant at which wall-clock `ms` is reached.
    fn instant_of(&self, ms: i64) -> Instant {
        Instant::now() + Duration::from_millis((ms - self.now_ms()).max(0) as u64)
    }
}

/// RFC 3339 (keptn's event `time`) to milliseconds.
fn parse_time(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_millis())
}

/// What the runner knows about an event id it took.
enum Taken {
    /// Being handled; acks of repeated deliveries wait for the outcome.
    InFlight(Vec<Ack>),
    /// Handled (or refused for good); the number orders the ids for pruning.
    Done(u64),
}

/// How a handling task ended.
struct Outcome {
    id: String,
    transient: bool,
    /// Not handled: the stored subscriptions, read before handling, do not match it.
    unsubscribed: bool,
}

struct State {
    name: &'static str,
    integration: Arc<dyn Integration>,
    plane: Arc<dyn ControlPlane>,
    ctx: Arc<dyn Context>,
    registration: Registration,
    retry: Duration,
    reads_open: bool,
    /// Read the stored subscriptions before handling a delivered event ([`Feed::selects_by_type_only`]).
    checks_subscriptions: bool,
    permits: Arc<Semaphore>,
    clock: Clock,
    /// None while it is not registered (registering failed, or the registration is gone).
    id: Option<String>,
    /// The stored subscriptions as of the last heartbeat; None while not registered.
    subscriptions: Option<Vec<Subscription>>,
    handled: HashMap<String, Taken>,
    seq: u64,
    prune_at: usize,
    tasks: JoinSet<Outcome>,
    /// Which event each handling task handles (to forget it should the task panic).
    in_flight: HashMap<tokio::task::Id, String>,
    /// Delivered events not due yet (wall-clock ms), with their acks.
    held: Vec<(i64, Arc<KeptnEvent>, Option<Ack>)>,
}

impl State {
    /// The subscriptions that count now: the control plane's current ones where it can tell at
    /// once, else those of the last heartbeat; None while not registered.
    fn live_subscriptions(&self) -> Option<Vec<Subscription>> {
        let cached = self.subscriptions.as_ref()?;
        let id = self.id.as_deref()?;
        Some(self.plane.current_subscriptions(id).unwrap_or_else(|| cached.clone()))
    }

    fn subscribed(&self, event: &KeptnEvent) -> bool {
        let subs = self.live_subscriptions().unwrap_or_default();
        subs.iter().any(|s| s.matches(&event.ty, event.project(), event.stage(), event.service()))
    }

    /// Registers and reads the stored subscriptions (which a user may have edited since the
    /// first registration). Returns whether it is registered now.
    async fn register(&mut self) -> bool {
        match self.plane.register(self.registration.clone()).await {
            Ok(id) => {
                self.id = Some(id);
                self.refresh().await.is_ok()
            }
            Err(e) => {
                tracing::error!(integration = self.name, error = %e, "could not register; retrying");
                self.id = None;
                self.subscriptions = None;
                false
            }
        }
    }

    /// A heartbeat: the current subscriptions, or None (and not registered) if it is gone.
    async fn refresh(&mut self) -> Result<bool, ContextError> {
        let Some(id) = self.id.clone() else { return Ok(false) };
        match self.plane.heartbeat(&id).await {
            Ok(Some(subs)) => {
                self.subscriptions = Some(subs);
                Ok(true)
            }
            Ok(None) => {
                self.id = None;
                self.subscriptions = None;
                Ok(false)
            }
            Err(e) => {
                tracing::warn!(integration = self.name, error = %e, "heartbeat failed; retrying");
                Err(e)
            }
        }
    }

    /// Returns (succeeded, subscribed again: the open events are to be read).
    async fn beat(&mut self) -> (bool, bool) {
        let was_subscribed = self.subscriptions.is_some();
        let ok = match self.refresh().await {
            Ok(true) => true,
            Err(_) => false,
            Ok(false) => {
                tracing::info!(integration = self.name, "not registered (any more); registering again");
                self.register().await
            }
        };
        (ok, ok && !was_subscribed)
    }

    /// An event from the feed: held if not due yet (returns when it is), else handled if
    /// subscribed and not taken yet; acked otherwise (a repeat of one in flight is acked when
    /// that one is done).
    fn deliver(&mut self, event: Arc<KeptnEvent>, ack: Option<Ack>) -> Option<Instant> {
        if let Some(due) = parse_time(&event.time)
            && due > self.clock.now_ms()
        {
            self.held.push((due, event, ack));
            return Some(self.clock.instant_of(due));
        }
        // Not registered: whether it is subscribed is unknown. Left unacknowledged for the
        // transport to offer again (the catch-up after registering reads the open ones).
        self.subscriptions.as_ref()?;
        // A feed that delivers open events is the server's stream, which already matched the
        // stored subscriptions (an edit counts there at once, here only from the next heartbeat).
        let subscribed = !self.reads_open || self.subscribed(&event);
        let check = self.checks_subscriptions
            && self.id.as_deref().is_some_and(|id| self.plane.current_subscriptions(id).is_none());
        if !subscribed && !check {
            spawn_acks(ack.into_iter().collect());
            return None;
        }
        match self.handled.get_mut(&event.id) {
            Some(Taken::InFlight(waiting)) => waiting.extend(ack),
            Some(Taken::Done(_)) => spawn_acks(ack.into_iter().collect()),
            // With `check`, whether it is subscribed is decided by the stored subscriptions;
            // `subscribed` (those of the last heartbeat) counts if they cannot be read.
            None => self.handle(event, ack, check.then_some(subscribed)),
        }
        None
    }

    /// Delivers the held events that are due now.
    fn release_due(&mut self) {
        let now = self.clock.now_ms();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held).into_iter().partition(|h| h.0 <= now);
        self.held = later;
        for (_, event, ack) in due {
            self.deliver(event, ack);
        }
    }

    /// When the next held event falls due.
    fn next_held(&self) -> Option<Instant> {
        self.held.iter().map(|h| h.0).min().map(|ms| self.clock.instant_of(ms))
    }

    /// Handles the event in its own task; its ack is awaited after handling or a permanent
    /// error, not after a transient one (the transport offers it again). With `check`, the task
    /// first reads the stored subscriptions and acks without handling if none matches
    /// (`check` = whether the last heartbeat's did, for when they cannot be read).
    fn handle(&mut self, event: Arc<KeptnEvent>, ack: Option<Ack>, check: Option<bool>) {
        self.handled.insert(event.id.clone(), Taken::InFlight(Vec::new()));
        let (integration, ctx, plane) = (self.integration.clone(), self.ctx.clone(), self.plane.clone());
        let (permits, name, integration_id) = (self.permits.clone(), self.name, self.id.clone().unwrap_or_default());
        // Which subscriptions matched, for an integration that takes the event once per
        // subscription (read again below when `check` asks for the stored ones).
        let per_subscription = integration.per_subscription();
        let known = if per_subscription { self.live_subscriptions().unwrap_or_default() } else { Vec::new() };
        let id = event.id.clone();
        tracing::debug!(integration = name, event = %event.id, r#type = %event.ty, "handling");
        let task = self.tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let mut subscriptions = known;
            if let Some(subscribed_before) = check {
                let subscribed = match plane.subscriptions(&integration_id).await {
                    Ok(Some(subs)) => {
                        let matched =
                            subs.iter().any(|s| s.matches(&event.ty, event.project(), event.stage(), event.service()));
                        subscriptions = subs;
                        matched
                    }
                    Ok(None) | Err(_) => subscribed_before,
                };
                if !subscribed {
                    if let Some(ack) = ack {
                        ack.await;
                    }
                    return Outcome { id: event.id.clone(), transient: false, unsubscribed: true };
                }
            }
            let copies = match per_subscription {
                false => vec![event.clone()],
                // None of the known subscriptions matches: the transport matched newer ones
                // (the server's stream does): read them.
                true => match per_subscription_copies(&event, &subscriptions) {
                    Some(copies) => copies,
                    None => match plane.subscriptions(&integration_id).await {
                        Ok(Some(subs)) => per_subscription_copies(&event, &subs),
                        Ok(None) | Err(_) => None,
                    }
                    .unwrap_or_else(|| vec![event.clone()]),
                },
            };
            let mut transient = false;
            for copy in copies {
                // The first transient failure stops: the whole event is offered again, and the
                // integration's derived answer ids make the repeated copies exactly-once.
                transient =
                    handle_one(integration.as_ref(), copy, ctx.clone(), plane.as_ref(), name, &integration_id).await;
                if transient {
                    break;
                }
            }
            if !transient && let Some(ack) = ack {
                ack.await;
            }
            Outcome { id: event.id.clone(), transient, unsubscribed: false }
        });
        self.in_flight.insert(task.id(), id);
    }

    /// A handling task ended; returns when to read the open events again after a transient
    /// failure.
    fn finished(&mut self, done: Result<(tokio::task::Id, Outcome), tokio::task::JoinError>) -> Option<Instant> {
        let (task, outcome) = match done {
            Ok((task, outcome)) => (task, Some(outcome)),
            Err(e) => {
                tracing::error!(integration = self.name, error = %e, "handling task failed");
                (e.id(), None)
            }
        };
        let id = self.in_flight.remove(&task)?;
        // A panic counts as a permanent failure: it would happen again.
        let ours = outcome.filter(|o| o.id == id);
        let transient = ours.as_ref().is_some_and(|o| o.transient);
        let unsubscribed = ours.as_ref().is_some_and(|o| o.unsubscribed);
        let waiting = match self.handled.remove(&id) {
            Some(Taken::InFlight(waiting)) => waiting,
            _ => Vec::new(),
        };
        if transient {
            // Forgotten, so the next offer (a catch-up, a redelivery) handles it again; the
            // waiting acks are dropped unacknowledged for the transport to redeliver.
            drop(waiting);
            return self.reads_open.then(|| Instant::now() + self.retry);
        }
        if unsubscribed {
            // Not taken: should a subscription match it later, a new offer is handled.
            spawn_acks(waiting);
            return None;
        }
        self.seq += 1;
        self.handled.insert(id, Taken::Done(self.seq));
        spawn_acks(waiting);
        None
    }

    /// Handles the due, untaken open `.triggered` events of the subscribed types, forgets
    /// handled ids that are no longer open, and returns when the next open one falls due.
    async fn catch_up(&mut self) -> Option<Instant> {
        if !self.reads_open {
            return None;
        }
        let Some(subscriptions) = self.live_subscriptions() else {
            return None; // not registered: keep what was handled until it registers again
        };
        let mut types: Vec<&str> = subscriptions.iter().map(|s| s.event.as_str()).collect();
        types.sort_unstable();
        types.dedup();
        let now = self.clock.now_ms();
        let (mut open, mut next_due) = (HashSet::new(), None::<i64>);
        for ty in types {
            // Wildcards cannot be looked up (nor polled, in keptn); they rely on the feed alone.
            if ty.split('.').any(|t| t == "*" || t == ">") {
                continue;
            }
            let events = match self.plane.open_triggered(ty).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(integration = self.name, error = %e, "could not read open events; retrying");
                    return Some(Instant::now() + self.retry);
                }
            };
            for event in events {
                open.insert(event.id.clone());
                let due = parse_time(&event.time).unwrap_or(now);
                if due > now {
                    next_due = Some(next_due.map_or(due, |n| n.min(due)));
                } else if self.subscribed(&event) && !self.handled.contains_key(&event.id) {
                    self.handle(Arc::new(event), None, None);
                }
            }
        }
        self.handled.retain(|id, taken| matches!(taken, Taken::InFlight(_)) || open.contains(id));
        next_due.map(|ms| self.clock.instant_of(ms))
    }

    /// Keeps the set of handled ids bounded: to the open events when it reads them, otherwise
    /// (the feed delivers open events) to the most recent half.
    async fn prune(&mut self) -> Option<Instant> {
        let wake = if self.reads_open {
            self.catch_up().await
        } else {
            let keep_from = self.seq.saturating_sub((self.prune_at / 2) as u64);
            self.handled.retain(|_, taken| !matches!(taken, Taken::Done(seq) if *seq < keep_from));
            None
        };
        self.prune_at = (self.handled.len() * 2).max(PRUNE_AT);
        wake
    }
}

/// Handles one event (or one subscription's copy of it); returns whether it failed transiently.
/// A permanent failure is written to the control plane's error log.
async fn handle_one(
    integration: &dyn Integration,
    event: Arc<KeptnEvent>,
    ctx: Arc<dyn Context>,
    plane: &dyn ControlPlane,
    name: &str,
    integration_id: &str,
) -> bool {
    match integration.handle(event.clone(), ctx).await {
        Ok(()) => false,
        Err(e) if e.is_transient() => {
            tracing::warn!(integration = name, event = %event.id, error = %e, "handling failed; retrying later");
            true
        }
        Err(e) => {
            tracing::error!(integration = name, event = %event.id, error = %e, "handling failed");
            let entry = LogEntry {
                integration_id: integration_id.to_string(),
                message: e.to_string(),
                keptn_context: event.shkeptncontext.clone(),
                triggered_id: event.id.clone(),
                task: task_of(&event.ty),
            };
            if let Err(e) = plane.log_error(entry).await {
                tracing::warn!(integration = name, error = %e, "could not write the error log");
            }
            false
        }
    }
}

/// One copy of `event` per subscription matching it, each with keptn's distributor field
/// `data.temporaryData.distributor.subscriptionID` set; None if none matches (or the event has
/// no data object to carry the field).
fn per_subscription_copies(event: &Arc<KeptnEvent>, subscriptions: &[Subscription]) -> Option<Vec<Arc<KeptnEvent>>> {
    let mut ids: Vec<&str> = subscriptions
        .iter()
        .filter(|s| s.matches(&event.ty, event.project(), event.stage(), event.service()))
        .map(|s| s.id.as_str())
        .filter(|id| !id.is_empty()) // one without an id cannot be named
        .collect();
    let mut seen = HashSet::new();
    ids.retain(|id| seen.insert(*id));
    if ids.is_empty() || !event.data.is_object() {
        return None;
    }
    let copies = ids.into_iter().map(|id| {
        let mut copy = (**event).clone();
        set_subscription_id(&mut copy.data, id);
        Arc::new(copy)
    });
    Some(copies.collect())
}

/// `data.temporaryData.distributor.subscriptionID = id`, replacing whatever is in the way.
fn set_subscription_id(data: &mut serde_json::Value, id: &str) {
    use serde_json::{Map, Value};
    let mut slot = data;
    for key in ["temporaryData", "distributor"] {
        let Value::Object(map) = slot else { return };
        let next = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
        if !next.is_object() {
            *next = Value::Object(Map::new());
        }
        slot = next;
    }
    if let Value::Object(map) = slot {
        map.insert("subscriptionID".into(), Value::String(id.into()));
    }
}

/// `sh.keptn.event.deployment.triggered` → `deployment`.
fn task_of(ty: &str) -> String {
    let inner = ty.strip_prefix("sh.keptn.event.").unwrap_or(ty);
    inner.rsplit_once('.').map_or(inner, |(task, _)| task).to_string()
}

fn spawn_acks(acks: Vec<Ack>) {
    if !acks.is_empty() {
        tokio::spawn(async move {
            for ack in acks {
                ack.await;
            }
        });
    }
}

#[cfg(test)]
mod tests;
