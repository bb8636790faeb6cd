//! The runner against an in-memory control plane and a channel feed.

use super::*;
use crate::{ContextResult, EventQuery, ResourceAt, integration_id};
use serde_json::json;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::mpsc;

const DEPLOY: &str = "sh.keptn.event.deployment.triggered";

/// keptn's uniform and datastore in memory: registrations with their stored subscriptions,
/// the open `.triggered` events, and what the integration sent or logged.
#[derive(Default)]
struct FakePlane {
    registrations: Mutex<HashMap<String, Vec<Subscription>>>,
    open: Mutex<Vec<KeptnEvent>>,
    logs: Mutex<Vec<LogEntry>>,
    registers: AtomicUsize,
    /// Registrations refused as unavailable before one succeeds.
    failing_registers: AtomicUsize,
    heartbeats: AtomicUsize,
    open_reads: AtomicUsize,
}

impl FakePlane {
    fn set_subscriptions(&self, subs: Vec<Subscription>) {
        for stored in self.registrations.lock().unwrap().values_mut() {
            *stored = subs.clone();
        }
    }
}

#[async_trait::async_trait]
impl Context for FakePlane {
    async fn send(&self, _event: KeptnEvent) -> ContextResult<()> {
        Ok(())
    }
    async fn events(&self, _query: EventQuery) -> ContextResult<Vec<KeptnEvent>> {
        Ok(Vec::new())
    }
    async fn resource(&self, _at: &ResourceAt) -> ContextResult<Option<Vec<u8>>> {
        Ok(None)
    }
    async fn resources(&self, _at: &ResourceAt) -> ContextResult<Option<Vec<String>>> {
        Ok(None)
    }
    async fn put_resources(&self, _: &ResourceAt, _: Vec<(String, Vec<u8>)>, _: &str) -> ContextResult<()> {
        Ok(())
    }
    async fn secret(&self, _name: &str) -> ContextResult<Option<crate::SecretData>> {
        Ok(None)
    }
    async fn log_error(&self, entry: LogEntry) -> ContextResult<()> {
        self.logs.lock().unwrap().push(entry);
        Ok(())
    }
}

#[async_trait::async_trait]
impl ControlPlane for FakePlane {
    async fn register(&self, r: Registration) -> ContextResult<String> {
        self.registers.fetch_add(1, Ordering::SeqCst);
        if self.failing_registers.load(Ordering::SeqCst) > 0 {
            self.failing_registers.fetch_sub(1, Ordering::SeqCst);
            return Err(ContextError::Unavailable("starting".into()));
        }
        let id = integration_id(&r.name, &r.metadata.kubernetesmetadata.namespace, &r.metadata.hostname);
        // keptn's rule: after the first registration the stored subscriptions count.
        self.registrations.lock().unwrap().entry(id.clone()).or_insert(r.subscriptions);
        Ok(id)
    }
    async fn heartbeat(&self, id: &str) -> ContextResult<Option<Vec<Subscription>>> {
        self.heartbeats.fetch_add(1, Ordering::SeqCst);
        Ok(self.registrations.lock().unwrap().get(id).cloned())
    }
    async fn open_triggered(&self, ty: &str) -> ContextResult<Vec<KeptnEvent>> {
        self.open_reads.fetch_add(1, Ordering::SeqCst);
        Ok(self.open.lock().unwrap().iter().filter(|e| e.ty == ty).cloned().collect())
    }
}

/// Records every attempt; fails transiently the first `transient_failures` attempts and
/// permanently for events of project `refused`.
#[derive(Default)]
struct Recorder {
    attempts: Mutex<Vec<(String, Instant)>>,
    done: Mutex<Vec<String>>,
    transient_failures: AtomicUsize,
    slow: Option<Duration>,
    /// Asks for one copy per matching subscription; records the subscription id of each.
    per_subscription: bool,
    subscription_ids: Mutex<Vec<(String, Option<String>)>>,
}

impl Recorder {
    fn attempts_of(&self, id: &str) -> usize {
        self.attempts.lock().unwrap().iter().filter(|(a, _)| a == id).count()
    }
}

#[async_trait::async_trait]
impl Integration for Recorder {
    fn name(&self) -> &'static str {
        "recorder-service"
    }
    fn subscriptions(&self) -> &'static [&'static str] {
        &[DEPLOY]
    }
    fn per_subscription(&self) -> bool {
        self.per_subscription
    }
    async fn handle(&self, event: Arc<KeptnEvent>, _ctx: Arc<dyn Context>) -> ContextResult<()> {
        self.attempts.lock().unwrap().push((event.id.clone(), Instant::now()));
        let sid = event.data["temporaryData"]["distributor"]["subscriptionID"].as_str().map(String::from);
        self.subscription_ids.lock().unwrap().push((event.id.clone(), sid));
        if let Some(slow) = self.slow {
            tokio::time::sleep(slow).await;
        }
        if self.transient_failures.load(Ordering::SeqCst) > 0 {
            self.transient_failures.fetch_sub(1, Ordering::SeqCst);
            return Err(ContextError::Unavailable("down".into()));
        }
        if event.project() == "refused" {
            return Err(ContextError::Refused { status: 400, message: "no such project".into() });
        }
        self.done.lock().unwrap().push(event.id.clone());
        Ok(())
    }
}

struct ChannelFeed {
    rx: mpsc::UnboundedReceiver<Delivery>,
    open_events: bool,
    by_type: bool,
}

#[async_trait::async_trait]
impl Feed for ChannelFeed {
    async fn next(&mut self) -> Option<Delivery> {
        self.rx.recv().await
    }
    fn delivers_open_events(&self) -> bool {
        self.open_events
    }
    fn selects_by_type_only(&self) -> bool {
        self.by_type
    }
}

fn event(id: &str, project: &str, time_ms: i64) -> KeptnEvent {
    let time = chrono::DateTime::from_timestamp_millis(time_ms).unwrap().to_rfc3339();
    KeptnEvent::new(
        id.into(),
        DEPLOY.into(),
        "ctx".into(),
        time,
        json!({ "project": project, "stage": "dev", "service": "svc" }),
    )
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

struct Setup {
    plane: Arc<FakePlane>,
    recorder: Arc<Recorder>,
    tx: mpsc::UnboundedSender<Delivery>,
    task: tokio::task::JoinHandle<()>,
}

fn start(plane: FakePlane, recorder: Recorder, open_events: bool) -> Setup {
    start_feed(plane, recorder, open_events, false)
}

fn start_feed(plane: FakePlane, recorder: Recorder, open_events: bool, by_type: bool) -> Setup {
    let (plane, recorder) = (Arc::new(plane), Arc::new(recorder));
    let (tx, rx) = mpsc::unbounded_channel();
    let reg = registration("recorder-service", "1.0.0", "built-in", "control-plane", "keptn", &[DEPLOY]);
    let runner = Runner::new(recorder.clone(), plane.clone(), reg).retry(Duration::from_secs(5));
    let task = tokio::spawn(runner.run(Box::new(ChannelFeed { rx, open_events, by_type })));
    Setup { plane, recorder, tx, task }
}

fn deliver(tx: &mpsc::UnboundedSender<Delivery>, event: KeptnEvent, ack: Option<Ack>) {
    tx.send(Delivery::Event { event: Arc::new(event), ack }).unwrap();
}

/// Lets the runner's tasks run (and, under a paused clock, time pass) for `ms`.
async fn settle(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[tokio::test(start_paused = true)]
async fn handles_each_event_once() {
    let plane = FakePlane::default();
    plane.open.lock().unwrap().push(event("e1", "p", now_ms() - 1000));
    let s = start(plane, Recorder::default(), false);
    settle(50).await;
    deliver(&s.tx, event("e1", "p", now_ms()), None);
    deliver(&s.tx, event("e1", "p", now_ms()), None);
    s.tx.send(Delivery::Lagged).unwrap();
    settle(50).await;
    assert_eq!(s.recorder.attempts_of("e1"), 1, "once, from the catch-up at start, not again from the feed");
    assert!(s.plane.open_reads.load(Ordering::SeqCst) >= 2, "Lagged reads the open events again");
    s.task.abort();
}

#[tokio::test(start_paused = true)]
async fn keeps_what_the_current_subscriptions_match() {
    let s = start(FakePlane::default(), Recorder::default(), false);
    settle(10).await;
    let only = |project: &str| Subscription {
        id: "s1".into(),
        event: DEPLOY.into(),
        filter: crate::Filter { projects: vec![project.into()], ..Default::default() },
    };
    s.plane.set_subscriptions(vec![only("a")]);
    // The edit counts from the next heartbeat on.
    tokio::time::sleep(HEARTBEAT + Duration::from_secs(1)).await;
    deliver(&s.tx, event("for-a", "a", now_ms()), None);
    deliver(&s.tx, event("for-b", "b", now_ms()), None);
    let mut other = event("other-type", "a", now_ms());
    other.ty = "sh.keptn.event.test.triggered".into();
    deliver(&s.tx, other, None);
    settle(50).await;
    assert_eq!(s.recorder.attempts_of("for-a"), 1);
    assert_eq!(s.recorder.attempts_of("for-b"), 0, "project b is filtered out");
    assert_eq!(s.recorder.attempts_of("other-type"), 0, "not subscribed");

    s.plane.set_subscriptions(vec![only("b")]);
    deliver(&s.tx, event("b-too-early", "b", now_ms()), None);
    settle(50).await;
    assert_eq!(s.recorder.attempts_of("b-too-early"), 0, "the edit is not seen before the heartbeat");
    tokio::time::sleep(HEARTBEAT).await;
    deliver(&s.tx, event("b-after-beat", "b", now_ms()), None);
    deliver(&s.tx, event("a-after-beat", "a", now_ms()), None);
    settle(50).await;
    assert_eq!(s.recorder.attempts_of("b-after-beat"), 1, "the edited subscription took effect");
    assert_eq!(s.recorder.attempts_of("a-after-beat"), 0);
    s.task.abort();
}

#[tokio::test(start_paused = true)]
async fn a_feed_selecting_by_type_reads_the_subscriptions_before_handling() {
    let s = start_feed(FakePlane::default(), Recorder::default(), false, true);
    settle(10).await;
    let only = |project: &str| Subscription {
        id: "s1".into(),
        event: DEPLOY.into(),
        filter: crate::Filter { projects: vec![project.into()], ..Default::default() },
    };
    // Edited after the last heartbeat: counts at once all the same.
    s.plane.set_subscriptions(vec![only("b")]);
    let (acked, unused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    deliver(&s.tx, event("for-a", "a", now_ms()), ack(&s.recorder, "for-a", &acked, &unused));
    deliver(&s.tx, event("for-b", "b", now_ms()), None);
    settle(50).await;
    assert_eq!(s.recorder.attempts_of("for-a"), 0, "filtered out by the stored subscriptions");
    assert_eq!(s.recorder.attempts_of("for-b"), 1);
    assert_eq!(acked.load(Ordering::SeqCst), 1, "an event nobody subscribes to is acked");
    s.plane.set_subscriptions(vec![only("a")]);
    deliver(&s.tx, event("for-a", "a", now_ms()), None);
    settle(50).await;
    assert_eq!(s.recorder.attempts_of("for-a"), 1, "not taken before: offered again, it is handled");
    s.task.abort();
}

fn subscription(id: &str, projects: &[&str]) -> Subscription {
    Subscription {
        id: id.into(),
        event: DEPLOY.into(),
        filter: crate::Filter { projects: projects.iter().map(|p| p.to_string()).collect(), ..Default::default() },
    }
}

#[tokio::test(start_paused = true)]
async fn an_integration_asking_for_it_gets_one_copy_per_matching_subscription() {
    let recorder = Recorder { per_subscription: true, ..Recorder::default() };
    let s = start(FakePlane::default(), recorder, false);
    settle(10).await;
    s.plane.set_subscriptions(vec![
        subscription("s-a", &["a"]),
        subscription("s-all", &[]),
        subscription("s-b", &["b"]),
    ]);
    tokio::time::sleep(HEARTBEAT + Duration::from_secs(1)).await;
    deliver(&s.tx, event("e-a", "a", now_ms()), None);
    settle(50).await;
    let seen = s.recorder.subscription_ids.lock().unwrap().clone();
    let expected = [("e-a".to_string(), Some("s-a".to_string())), ("e-a".to_string(), Some("s-all".to_string()))];
    assert_eq!(seen, expected, "once per matching subscription, in order, s-b left out");
    s.task.abort();
}

#[tokio::test(start_paused = true)]
async fn a_subscription_newer_than_the_last_heartbeat_is_read_when_none_known_matches() {
    // The server's stream (delivers open events) matched a subscription this runner has not
    // seen yet: it reads the stored ones instead of handing over an event without an id.
    let recorder = Recorder { per_subscription: true, ..Recorder::default() };
    let s = start(FakePlane::default(), recorder, true);
    settle(10).await;
    s.plane.set_subscriptions(vec![subscription("new", &["a"])]);
    deliver(&s.tx, event("e", "a", now_ms()), None);
    settle(50).await;
    assert_eq!(s.recorder.subscription_ids.lock().unwrap().as_slice(), [("e".to_string(), Some("new".to_string()))]);
    s.task.abort();
}

#[tokio::test(start_paused = true)]
async fn by_default_an_event_is_handled_once_without_a_subscription_id() {
    let s = start(FakePlane::default(), Recorder::default(), false);
    settle(10).await;
    s.plane.set_subscriptions(vec![subscription("s1", &[]), subscription("s2", &[])]);
    tokio::time::sleep(HEARTBEAT + Duration::from_secs(1)).await;
    deliver(&s.tx, event("e", "a", now_ms()), None);
    settle(50).await;
    assert_eq!(s.recorder.subscription_ids.lock().unwrap().as_slice(), [("e".to_string(), None)]);
    s.task.abort();
}

#[test]
fn the_subscription_id_replaces_what_is_in_the_way() {
    let mut data = json!({"project": "p", "temporaryData": "junk"});
    set_subscription_id(&mut data, "s1");
    assert_eq!(data["temporaryData"], json!({"distributor": {"subscriptionID": "s1"}}));
    let mut data = json!({"temporaryData": {"other": 1, "distributor": {"subscriptionID": "old"}}});
    set_subscription_id(&mut data, "s2");
    assert_eq!(data["temporaryData"], json!({"other": 1, "distributor": {"subscriptionID": "s2"}}));
}

#[tokio::test(start_paused = true)]
async fn catches_up_at_start_and_when_a_delayed_event_falls_due() {
    let plane = FakePlane::default();
    let now = now_ms();
    plane.open.lock().unwrap().push(event("due", "p", now - 5_000));
    plane.open.lock().unwrap().push(event("later", "p", now + 3_000));
    let s = start(plane, Recorder::default(), false);
    settle(100).await;
    assert_eq!(s.recorder.attempts_of("due"), 1, "read from the open events at start");
    assert_eq!(s.recorder.attempts_of("later"), 0, "not due yet");
    let reads = s.plane.open_reads.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    assert_eq!(s.recorder.attempts_of("later"), 1, "handled when due");
    assert_eq!(s.recorder.attempts_of("due"), 1);
    assert!(s.plane.open_reads.load(Ordering::SeqCst) > reads, "woke up to read them again");
    s.task.abort();
}

#[tokio::test(start_paused = true)]
async fn holds_a_delivered_event_until_it_is_due() {
    // A feed that delivers open events, so only the hold (not a catch-up) can handle it.
    let s = start(FakePlane::default(), Recorder::default(), true);
    settle(10).await;
    let (acked, done_first) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    deliver(&s.tx, event("delayed", "p", now_ms() + 3_000), ack(&s.recorder, "delayed", &acked, &done_first));
    deliver(&s.tx, event("now", "p", now_ms() - 10), None);
    settle(2_500).await;
    assert_eq!(s.recorder.attempts_of("now"), 1, "a due event is not held back by a delayed one");
    assert_eq!(s.recorder.attempts_of("delayed"), 0, "not before its time");
    assert_eq!(acked.load(Ordering::SeqCst), 0, "held unacknowledged");
    settle(1_000).await;
    assert_eq!(s.recorder.attempts_of("delayed"), 1, "handled once due");
    assert_eq!(acked.load(Ordering::SeqCst), 1);
    assert!(done_first.load(Ordering::SeqCst), "acked after handling");
    s.task.abort();
}

#[tokio::test(start_paused = true)]
async fn retries_a_transient_failure_after_the_retry_delay() {
    let plane = FakePlane::default();
    plane.open.lock().unwrap().push(event("flaky", "p", now_ms() - 1000));
    let recorder = Recorder { transient_failures: AtomicUsize::new(1), ..Recorder::default() };
    let s = start(plane, recorder, false);
    settle(100).await;
    assert_eq!(s.recorder.attempts_of("flaky"), 1);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(s.recorder.attempts_of("flaky"), 1, "not before the retry delay");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(s.recorder.attempts_of("flaky"), 2, "retried by the catch-up");
    let attempts = s.recorder.attempts.lock().unwrap().clone();
    assert!(attempts[1].1 - attempts[0].1 >= Duration::from_secs(5), "{attempts:?}");
    assert_eq!(s.recorder.done.lock().unwrap().as_slice(), ["flaky"]);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(s.recorder.attempts_of("flaky"), 2, "a success is not retried");
    s.task.abort();
}

#[tokio::test(start_paused = true)]
async fn heartbeat_registers_again_when_the_registration_is_gone() {
    let s = start(FakePlane::default(), Recorder::default(), false);
    settle(10).await;
    assert_eq!(s.plane.registers.load(Ordering::SeqCst), 1);
    tokio::time::sleep(HEARTBEAT + Duration::from_secs(1)).await;
    assert_eq!(s.plane.registers.load(Ordering::SeqCst), 1, "a heartbeat of a live registration does not register");
    s.plane.registrations.lock().unwrap().clear();
    tokio::time::sleep(HEARTBEAT).await;
    assert_eq!(s.plane.registers.load(Ordering::SeqCst), 2, "registered again");
    assert_eq!(s.plane.registrations.lock().unwrap().len(), 1);
    deliver(&s.tx, event("after", "p", now_ms()), None);
    settle(50).await;
    assert_eq!(s.recorder.attempts_of("after"), 1, "subscribed again");
    s.task.abort();
}

#[tokio::test(start_paused = true)]
async fn a_failed_registration_is_retried_and_then_catches_up() {
    let plane = FakePlane { failing_registers: AtomicUsize::new(1), ..FakePlane::default() };
    plane.open.lock().unwrap().push(event("waiting", "p", now_ms() - 1000));
    let s = start(plane, Recorder::default(), false);
    settle(10).await;
    let acked = Arc::new(AtomicUsize::new(0));
    let counted = acked.clone();
    let ack: Ack = Box::pin(async move {
        counted.fetch_add(1, Ordering::SeqCst);
    });
    deliver(&s.tx, event("while-unregistered", "p", now_ms()), Some(ack));
    settle(50).await;
    assert_eq!(s.recorder.attempts_of("waiting"), 0, "not registered yet");
    assert_eq!(acked.load(Ordering::SeqCst), 0, "not acked while it cannot tell whether it subscribes");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(s.plane.registers.load(Ordering::SeqCst), 2, "retried after the retry delay, not the heartbeat");
    assert_eq!(s.recorder.attempts_of("waiting"), 1, "the open events are read once registered");
    s.task.abort();
}

/// An ack that records whether the event was done when it ran.
fn ack(recorder: &Arc<Recorder>, id: &str, acked: &Arc<AtomicUsize>, done_first: &Arc<AtomicBool>) -> Option<Ack> {
    let (recorder, id, acked, done_first) = (recorder.clone(), id.to_string(), acked.clone(), done_first.clone());
    Some(Box::pin(async move {
        let done = recorder.done.lock().unwrap().contains(&id);
        done_first.store(done, Ordering::SeqCst);
        acked.fetch_add(1, Ordering::SeqCst);
    }))
}

#[tokio::test(start_paused = true)]
async fn acks_after_handling_and_after_a_refusal_not_after_a_transient_failure() {
    let recorder = Recorder { slow: Some(Duration::from_millis(500)), ..Recorder::default() };
    let s = start(FakePlane::default(), recorder, false);
    settle(10).await;
    let (acked, done_first) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    deliver(&s.tx, event("ok", "p", now_ms()), ack(&s.recorder, "ok", &acked, &done_first));
    // A repeat while the first is in flight is acked once that one is done.
    deliver(&s.tx, event("ok", "p", now_ms()), ack(&s.recorder, "ok", &acked, &done_first));
    settle(200).await;
    assert_eq!(acked.load(Ordering::SeqCst), 0, "not while handling");
    settle(400).await;
    assert_eq!(acked.load(Ordering::SeqCst), 2);
    assert!(done_first.load(Ordering::SeqCst));
    assert!(s.recorder.done.lock().unwrap().contains(&"ok".to_string()));

    let refused = Arc::new(AtomicUsize::new(0));
    let unused = Arc::new(AtomicBool::new(false));
    deliver(&s.tx, event("bad", "refused", now_ms()), ack(&s.recorder, "bad", &refused, &unused));
    settle(600).await;
    assert_eq!(refused.load(Ordering::SeqCst), 1, "a permanent error is acked (retrying would not help)");
    let logs = s.plane.logs.lock().unwrap().clone();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!((logs[0].triggered_id.as_str(), logs[0].task.as_str()), ("bad", "deployment"));

    s.recorder.transient_failures.store(1, Ordering::SeqCst);
    let flaky = Arc::new(AtomicUsize::new(0));
    deliver(&s.tx, event("flaky", "p", now_ms()), ack(&s.recorder, "flaky", &flaky, &unused));
    settle(600).await;
    assert_eq!(flaky.load(Ordering::SeqCst), 0, "a transient failure is left for the transport to redeliver");
    deliver(&s.tx, event("flaky", "p", now_ms()), ack(&s.recorder, "flaky", &flaky, &unused));
    settle(600).await;
    assert_eq!(s.recorder.attempts_of("flaky"), 2, "the redelivery is handled again");
    assert_eq!(flaky.load(Ordering::SeqCst), 1);
    s.task.abort();
}

#[tokio::test(start_paused = true)]
async fn a_feed_that_delivers_open_events_suppresses_reading_them() {
    let plane = FakePlane::default();
    plane.open.lock().unwrap().push(event("open", "p", now_ms() - 1000));
    plane.open.lock().unwrap().push(event("delayed", "p", now_ms() + 1000));
    let recorder = Recorder { transient_failures: AtomicUsize::new(1), ..Recorder::default() };
    let s = start(plane, recorder, true);
    settle(10).await;
    deliver(&s.tx, event("streamed", "p", now_ms()), None);
    s.tx.send(Delivery::Lagged).unwrap();
    tokio::time::sleep(HEARTBEAT * 2 + Duration::from_secs(1)).await;
    assert_eq!(s.plane.open_reads.load(Ordering::SeqCst), 0, "never reads open events itself");
    assert_eq!(s.recorder.attempts_of("open"), 0);
    assert_eq!(s.recorder.attempts_of("streamed"), 1, "failed once; not retried by the runner");
    assert!(s.plane.heartbeats.load(Ordering::SeqCst) >= 3, "heartbeats still run");
    deliver(&s.tx, event("streamed", "p", now_ms()), None);
    settle(50).await;
    assert_eq!(s.recorder.attempts_of("streamed"), 2, "the stream's redelivery is handled");
    s.task.abort();
}

#[tokio::test(start_paused = true)]
async fn returns_when_the_feed_ends_after_the_events_in_flight() {
    let recorder = Recorder { slow: Some(Duration::from_millis(300)), ..Recorder::default() };
    let s = start(FakePlane::default(), recorder, false);
    settle(10).await;
    deliver(&s.tx, event("last", "p", now_ms()), None);
    drop(s.tx);
    s.task.await.unwrap();
    assert_eq!(s.recorder.done.lock().unwrap().as_slice(), ["last"]);
}

#[tokio::test(start_paused = true)]
async fn tick_feed_polls() {
    let mut tick = Tick::new(Duration::from_secs(10));
    let start = Instant::now();
    assert!(matches!(tick.next().await, Some(Delivery::Lagged)));
    assert!(Instant::now() - start >= Duration::from_secs(10));
    assert!(!tick.delivers_open_events());
}

#[test]
fn builtin_registration() {
    let r = registration("approval-service", "1.2.3", "built-in", "control-plane", "keptn", &[DEPLOY]);
    assert_eq!(r.name, "approval-service");
    assert_eq!(r.metadata.kubernetesmetadata.deploymentname, "approval-service");
    assert_eq!(r.metadata.kubernetesmetadata.namespace, "keptn");
    assert_eq!((r.metadata.hostname.as_str(), r.metadata.location.as_str()), ("built-in", "control-plane"));
    assert_eq!(r.metadata.integrationversion, "1.2.3");
    assert_eq!(r.subscriptions.len(), 1);
    assert_eq!(r.subscriptions[0].event, DEPLOY);
    assert_eq!(task_of("sh.keptn.event.deployment.triggered"), "deployment");
}
