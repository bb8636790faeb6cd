//! Built-in integrations: services that run inside the control plane but use the same contract
//! as an external integration. Each is registered in the uniform store at start (keptn's
//! registration rules, so its subscriptions are edited like any other's), receives the committed
//! events the dispatcher publishes on the in-process bus, keeps those its *current* stored
//! subscriptions match, and answers through the writer as a POST to `/api/v1/event` would.
//!
//! The bus is not durable. So at start, when the receiver lags, and when a delayed `.triggered`
//! falls due, a built-in also reads the open `.triggered` events of its subscribed types from the
//! store. Each event is handled once per process (dedup by event id).

mod approval;
pub mod lighthouse;
pub mod sli;

use crate::api::{self, Shared};
use crate::timers::now_ms;
use crate::uniform::{Integration, KubernetesMetadata, Metadata, Subscription};
use crate::writer::parse_time;
use keptn_engine::format_time;
use keptn_spec::KeptnEvent;
use keptn_store::OpenTriggeredQuery;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::{JoinHandle, JoinSet};

/// Keeps `lastseen` fresh (the Bridge shows integrations seen within 2 minutes) and the
/// registration alive past the TTL; re-registers if it was removed.
const HEARTBEAT: Duration = Duration::from_secs(60);
/// A failed answer is retried by a catch-up this much later.
const RETRY_MS: i64 = 5_000;
/// Handled ids are pruned to the still-open events when the set grows past this (then doubles).
const PRUNE_AT: usize = 4096;

/// What a built-in integration does; the runner below does everything else.
pub trait BuiltIn: Send + Sync + 'static {
    /// Registration name and `source` of its events, e.g. `approval-service`.
    const NAME: &'static str;
    /// Event types of its first registration (empty filter); afterwards the stored ones count.
    const SUBSCRIPTIONS: &'static [&'static str];
    /// The events that answer one matching event, sent in this order.
    fn handle(&self, event: &KeptnEvent) -> impl Future<Output = Vec<KeptnEvent>> + Send;
}

/// The built-ins by key (`keptn server --integrations`), with what each does.
pub const REGISTRY: &[(&str, &str)] = &[
    ("approval", "approval-service: answers approval.triggered (automatic per the shipyard, or waits for a user)"),
    ("lighthouse", "lighthouse-service: evaluates quality gates (slo.yaml) from the SLI providers' values"),
    ("prometheus", "prometheus-sli-provider: SLI values from Prometheus queries (sli.yaml)"),
    ("http-sli", "http-sli-provider: SLI values from JSON over HTTP (sli.yaml)"),
];

/// Every built-in's key, the default selection.
pub fn all_keys() -> Vec<String> {
    REGISTRY.iter().map(|(key, _)| key.to_string()).collect()
}

/// The built-ins a comma-separated list names (`none` = no built-in), or why it is not a valid
/// list: an unknown name is refused with the known ones, so a typo does not silently drop one.
pub fn select(list: &str) -> Result<Vec<String>, String> {
    let names: Vec<&str> = list.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
    if names == ["none"] {
        return Ok(Vec::new());
    }
    let mut keys = Vec::new();
    for name in names {
        if !REGISTRY.iter().any(|(key, _)| *key == name) {
            let known: Vec<&str> = REGISTRY.iter().map(|(key, _)| *key).collect();
            return Err(format!("unknown integration {name:?}; known: {} (or none)", known.join(", ")));
        }
        if !keys.iter().any(|k| k == name) {
            keys.push(name.to_string());
        }
    }
    Ok(keys)
}

/// Registers and starts the selected built-ins (keys of [`REGISTRY`]). Call before the
/// dispatcher runs, so no event is missed.
/// The tasks hold the app state: abort them before waiting for the writer to drain.
pub async fn start_all(
    state: &Shared,
    bus: &broadcast::Sender<Arc<KeptnEvent>>,
    selected: &[String],
) -> Vec<JoinHandle<()>> {
    let qg = &state.quality_gates;
    let http = state.outbound.clone();
    let mut tasks = Vec::new();
    for key in selected {
        let task = match key.as_str() {
            "approval" => start(approval::Approval, state, bus).await,
            "lighthouse" => start(lighthouse::Lighthouse::new(state.clone(), qg.sli_timeout), state, bus).await,
            "prometheus" => {
                let prometheus = sli::prometheus::Prometheus {
                    state: state.clone(),
                    http: http.clone(),
                    default_url: qg.prometheus_url.clone(),
                };
                start(prometheus, state, bus).await
            }
            "http-sli" => start(sli::HttpJson { state: state.clone(), http: http.clone() }, state, bus).await,
            other => {
                // `select` admits only registry keys; a config built by hand may not.
                tracing::error!(integration = other, "unknown built-in integration, not started");
                continue;
            }
        };
        tasks.push(task);
    }
    tasks
}

async fn start<B: BuiltIn>(builtin: B, state: &Shared, bus: &broadcast::Sender<Arc<KeptnEvent>>) -> JoinHandle<()> {
    let rx = bus.subscribe();
    let runner = Runner {
        builtin: Arc::new(builtin),
        state: state.clone(),
        id: register::<B>(state).await,
        handled: HashSet::new(),
        prune_at: PRUNE_AT,
        tasks: JoinSet::new(),
    };
    tokio::spawn(runner.run(rx))
}

/// The registration a built-in sends, as an external integration would POST it.
fn registration<B: BuiltIn>() -> Integration {
    let version = env!("CARGO_PKG_VERSION").to_string();
    Integration {
        name: B::NAME.into(),
        metadata: Metadata {
            hostname: "built-in".into(),
            integrationversion: version.clone(),
            distributorversion: version,
            location: "control-plane".into(),
            kubernetesmetadata: KubernetesMetadata {
                namespace: "keptn".into(),
                deploymentname: B::NAME.into(),
                ..KubernetesMetadata::default()
            },
            ..Metadata::default()
        },
        subscriptions: B::SUBSCRIPTIONS
            .iter()
            .map(|ty| Subscription { event: ty.to_string(), ..Subscription::default() })
            .collect(),
        ..Integration::default()
    }
}

async fn register<B: BuiltIn>(state: &Shared) -> Option<String> {
    match api::upsert_registration(state, registration::<B>()).await {
        Ok((_, id)) => Some(id),
        Err(e) => {
            tracing::error!(integration = B::NAME, error = %e.message, "could not register the built-in integration");
            None
        }
    }
}

/// An answer to `triggered` from integration `source`: same context, `triggeredid` and
/// `gitcommitid`, and the current time (as `events_out` builds system events).
///
/// The id is derived from the answered event, the source and the type, so an answer repeated after
/// a restart (in-memory dedup is gone then) has the same id and the writer drops it.
pub fn answer(source: &str, triggered: &KeptnEvent, ty: String, data: Value) -> KeptnEvent {
    let name = format!("{}/{source}/{ty}", triggered.id);
    let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string();
    let mut event = KeptnEvent::new(id, ty, triggered.shkeptncontext.clone(), format_time(now_ms()), data);
    event.source = source.into();
    event.triggeredid = triggered.id.clone();
    event.gitcommitid = triggered.gitcommitid.clone();
    event
}

/// keptn's common data block of an event: project, stage, service and labels.
pub fn common_data(event: &KeptnEvent) -> Value {
    let mut data = json!({ "project": event.project(), "stage": event.stage(), "service": event.service() });
    if let Some(labels) = event.data.get("labels") {
        data["labels"] = labels.clone();
    }
    data
}

/// The same matching as for external integrations (`Subscription::matches`).
fn subscribed(subscriptions: &[Subscription], event: &KeptnEvent) -> bool {
    subscriptions.iter().any(|s| s.matches(&event.ty, event.project(), event.stage(), event.service()))
}

struct Runner<B> {
    builtin: Arc<B>,
    state: Shared,
    /// None while the registration failed; the heartbeat retries it.
    id: Option<String>,
    handled: HashSet<String>,
    prune_at: usize,
    /// Answers in flight; each yields the event id back if sending failed (to be retried).
    tasks: JoinSet<Option<String>>,
}

impl<B: BuiltIn> Runner<B> {
    async fn run(mut self, mut rx: broadcast::Receiver<Arc<KeptnEvent>>) {
        let mut wake = self.catch_up().await;
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
        loop {
            let sleep = async {
                match wake {
                    Some(at) => tokio::time::sleep(Duration::from_millis((at - now_ms()).max(0) as u64)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                got = rx.recv() => match got {
                    Ok(event) => {
                        if self.subscriptions().is_some_and(|subs| subscribed(&subs, &event)) {
                            self.handle(event);
                        }
                        if self.handled.len() >= self.prune_at {
                            wake = self.catch_up().await;
                            self.prune_at = (self.handled.len() * 2).max(PRUNE_AT);
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(integration = B::NAME, missed, "event bus lagged; reading open events from the store");
                        wake = self.catch_up().await;
                    }
                    Err(RecvError::Closed) => return,
                },
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    if let Ok(Some(failed)) = done {
                        self.handled.remove(&failed);
                        let retry = now_ms() + RETRY_MS;
                        wake = Some(wake.map_or(retry, |w| w.min(retry)));
                    }
                }
                _ = sleep => wake = self.catch_up().await,
                _ = heartbeat.tick() => {
                    if self.heartbeat().await {
                        wake = self.catch_up().await;
                    }
                }
            }
        }
    }

    /// Its current stored subscriptions; None while it is not registered.
    fn subscriptions(&self) -> Option<Vec<Subscription>> {
        self.id.as_deref().and_then(|id| self.state.directory.subscriptions_of(id))
    }

    /// Answers the event in its own task, unless it was handled already.
    fn handle(&mut self, event: Arc<KeptnEvent>) {
        if !self.handled.insert(event.id.clone()) {
            return;
        }
        let (builtin, writer) = (self.builtin.clone(), self.state.writer.clone());
        self.tasks.spawn(async move {
            for out in builtin.handle(&event).await {
                if let Err(e) = writer.ingest(out).await {
                    tracing::error!(integration = B::NAME, event = %event.id, error = %e.message, "could not send an answer");
                    return Some(event.id.clone());
                }
            }
            None
        });
    }

    /// Handles the due, unhandled open `.triggered` events of the subscribed types, forgets
    /// handled ids that are no longer open, and returns when the next open event falls due.
    async fn catch_up(&mut self) -> Option<i64> {
        let Some(subscriptions) = self.subscriptions() else {
            return None; // not registered: keep what was handled until the heartbeat registers again
        };
        let mut types: Vec<&str> = subscriptions.iter().map(|s| s.event.as_str()).collect();
        types.sort_unstable();
        types.dedup();
        let now = now_ms();
        let (mut open, mut next_due) = (HashSet::new(), None::<i64>);
        for ty in types {
            // Wildcards cannot be looked up (nor polled, in keptn); they rely on the bus alone.
            if ty.split('.').any(|t| t == "*" || t == ">") {
                continue;
            }
            let q = OpenTriggeredQuery {
                ty: ty.to_string(),
                project: None,
                stage: None,
                service: None,
                event_id: None,
                now_ms: i64::MAX, // not-yet-due ones too: they set the next wake-up
                offset: 0,
                limit: 0,
            };
            let rows = match self.state.store.open_triggered(&q).await {
                Ok((rows, _)) => rows,
                Err(e) => {
                    tracing::error!(integration = B::NAME, error = %e, "could not read open events; retrying");
                    return Some(now + RETRY_MS);
                }
            };
            for row in rows {
                let Ok(event) = serde_json::from_value::<KeptnEvent>(row) else { continue };
                open.insert(event.id.clone());
                let due = parse_time(&event.time).unwrap_or(now);
                if due > now {
                    next_due = Some(next_due.map_or(due, |n| n.min(due)));
                } else if subscribed(&subscriptions, &event) {
                    self.handle(Arc::new(event));
                }
            }
        }
        self.handled.retain(|id| open.contains(id));
        next_due
    }

    /// Refreshes `lastseen`; registers again if the registration is gone. Returns whether it
    /// registered (then open events are read again).
    async fn heartbeat(&mut self) -> bool {
        if let Some(id) = &self.id
            && api::heartbeat(&self.state, id).await.is_ok()
        {
            return false;
        }
        self.id = register::<B>(&self.state).await;
        self.id.is_some()
    }
}

#[cfg(test)]
mod registry_tests {
    use super::*;

    #[test]
    fn lists_select_known_built_ins() {
        assert_eq!(select("approval, lighthouse,approval").unwrap(), ["approval", "lighthouse"]);
        assert!(select("none").unwrap().is_empty());
        assert_eq!(select("approval,prometheus,http-sli,lighthouse").unwrap().len(), 4);
        let err = select("approval,lighthous").unwrap_err();
        assert!(err.contains("\"lighthous\"") && err.contains("approval, lighthouse, prometheus, http-sli"), "{err}");
    }
}
