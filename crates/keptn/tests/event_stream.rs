//! The server-pushed stream of `.triggered` events for remote integrations: replicas of one
//! registration share the work (each event to exactly one), unacked events of a replica that
//! went away go to another, open events reach a replica that connects later, `triggeredAfter`
//! events arrive when due, and only subscribed types are streamed. SQLite and PostgreSQL.

mod support;

use keptn_client::{ClientError, EventStream, NoStream, StreamFeed};
use keptn_integration::runner::{Delivery, Feed};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;
use tokio::sync::mpsc;

const CP: &str = "/api/controlPlane/v1";
const DEPLOYMENT: &str = "sh.keptn.event.deployment.triggered";
const TEST: &str = "sh.keptn.event.test.triggered";
const WAIT: Duration = Duration::from_secs(10);
const SERVICES: usize = 10;

const SHIPYARD: &str = r#"
apiVersion: spec.keptn.sh/0.2.3
kind: Shipyard
metadata: { name: s }
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: deployment
        - name: check
          tasks:
            - name: test
        - name: later
          tasks:
            - name: deployment
              triggeredAfter: "1s"
"#;

async fn trigger(client: &Client, sequence: &str, service: &str) -> String {
    client
        .send(json!({
            "type": format!("sh.keptn.event.dev.{sequence}.triggered"), "source": "test",
            "data": { "project": "p", "stage": "dev", "service": service },
        }))
        .await
}

async fn register(client: &Client) -> String {
    let reg = json!({
        "name": "deployer",
        "metadata": { "hostname": "shared-host", "integrationversion": "1.0.0", "distributorversion": "1.0.0",
                      "location": "remote-execution-plane", "kubernetesmetadata": { "namespace": "keptn" } },
        "subscriptions": [{ "event": DEPLOYMENT, "filter": { "projects": ["p"] } }],
    });
    let (s, b) = client.post(&format!("{CP}/uniform/registration"), reg).await;
    assert!(s == 200 || s == 201, "register: {b}");
    b["id"].as_str().unwrap().to_string()
}

/// Sends the task's `.started` and `.finished`, as the integration would.
async fn finish(client: &Client, triggered: &Value) {
    let (started, finished) = answers("deployer", triggered, "pass", json!({}));
    client.send(started).await;
    client.send(finished).await;
}

/// A replica on [`StreamFeed`]: reports each event, handles it (a little slowly, so work piles
/// up and is shared), answers and acks.
fn run_replica(
    name: &'static str,
    mut feed: StreamFeed,
    client: Client,
    seen: mpsc::UnboundedSender<(&'static str, Value)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(delivery) = feed.next().await {
            let Delivery::Event { event, ack } = delivery else { continue };
            let event = serde_json::to_value(&*event).unwrap();
            let _ = seen.send((name, event.clone()));
            tokio::time::sleep(Duration::from_millis(30)).await;
            if event["type"] == DEPLOYMENT {
                finish(&client, &event).await;
            }
            if let Some(ack) = ack {
                ack.await;
            }
        }
    })
}

/// The next streamed event of a raw stream, within `timeout`.
async fn next_event(stream: &mut EventStream, timeout: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(timeout, stream.next()).await {
            Ok(Ok(Some((name, data)))) if name == "triggered" => return Some(data),
            Ok(Ok(Some(_))) => {}
            Ok(Ok(None)) | Ok(Err(_)) | Err(_) => return None,
        }
    }
}

fn id_of(e: &Value) -> String {
    e["id"].as_str().unwrap().to_string()
}

async fn scenario(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let client = server.client();
    let api = client.api();
    client.create_project("p", SHIPYARD).await;
    for i in 0..SERVICES {
        client.create_service("p", &format!("s{i}")).await;
    }
    client.create_service("p", "solo").await;
    let id = register(&client).await;

    // Authentication and unknown registrations.
    let anonymous = server.http.get(format!("{}{CP}/event/stream?integrationId={id}", server.url)).send().await;
    assert_eq!(anonymous.unwrap().status(), 401);
    let (s, b) = client.post(&format!("{CP}/event/stream/ack"), json!({ "integrationId": id })).await;
    assert_eq!(s, 400, "{b}");
    assert!(b["message"].as_str().unwrap().contains("replica"), "{b}");
    match api.triggered_stream("nope", "r").await {
        Err(ClientError::Status { status: 404, message }) => assert_eq!(
            message,
            "no integration nope is registered; register it with POST /api/controlPlane/v1/uniform/registration first"
        ),
        Err(e) => panic!("expected 404, got {e}"),
        Ok(_) => panic!("a stream for an unregistered integration"),
    }
    match StreamFeed::connect(api.clone(), "nope", "r").await {
        Err(e @ NoStream::Failed(_)) => assert!(!e.is_unsupported()),
        Err(e) => panic!("an unregistered integration is not a missing stream: {e}"),
        Ok(_) => panic!("a stream for an unregistered integration"),
    }

    // A control plane without the route (here: the API under another prefix answers 404 "no
    // such endpoint", as keptn 1.x answers 404): the caller is told to poll instead.
    let elsewhere = keptn_client::Client::new(format!("{}/keptn-1x", server.url), &server.token);
    match StreamFeed::connect(elsewhere, &id, "r").await {
        Err(e) => assert!(e.is_unsupported(), "{e}"),
        Ok(_) => panic!("a stream where there is none"),
    }

    // An unsubscribed type: its task is open, but never streamed.
    let unsubscribed = trigger(&client, "check", "solo").await;
    client.wait_for(&unsubscribed, TEST, WAIT).await;

    // Catch-up: triggered while no replica is connected, delivered when one connects.
    let early = trigger(&client, "delivery", "s0").await;
    client.wait_for(&early, DEPLOYMENT, WAIT).await;
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let a = StreamFeed::connect(api.clone(), &id, "a").await.expect("stream a");
    assert_eq!(a.replica(), "a");
    assert!(a.delivers_open_events());
    let a = run_replica("a", a, client.clone(), seen_tx.clone());
    let (who, first) = tokio::time::timeout(WAIT, seen.recv()).await.expect("the early event").unwrap();
    assert_eq!((who, first["shkeptncontext"].as_str().unwrap()), ("a", early.as_str()));
    assert_eq!(first["type"], DEPLOYMENT);
    client.wait_for(&early, "sh.keptn.event.dev.delivery.finished", WAIT).await;

    // Work sharing: each deployment.triggered reaches exactly one of two replicas.
    let b = StreamFeed::connect(api.clone(), &id, "b").await.expect("stream b");
    let b = run_replica("b", b, client.clone(), seen_tx.clone());
    let mut contexts = Vec::new();
    for round in 0..2 {
        for i in 0..SERVICES {
            contexts.push(trigger(&client, "delivery", &format!("s{i}")).await);
        }
        // The second round waits in each service's lane until the first one finished.
        if round == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut by_replica: HashMap<&str, usize> = HashMap::new();
    let mut ids = HashSet::new();
    let deadline = Instant::now() + WAIT;
    while ids.len() < contexts.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let (who, event) = tokio::time::timeout(left, seen.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {} events arrived", ids.len(), contexts.len()))
            .unwrap();
        assert_eq!(event["type"], DEPLOYMENT, "only subscribed types are streamed: {event}");
        assert!(ids.insert(id_of(&event)), "delivered twice: {event}");
        *by_replica.entry(who).or_default() += 1;
    }
    assert!(
        by_replica.get("a").is_some_and(|n| *n > 0) && by_replica.get("b").is_some_and(|n| *n > 0),
        "{by_replica:?}"
    );
    for ctx in &contexts {
        client.wait_for(ctx, "sh.keptn.event.dev.delivery.finished", WAIT).await;
    }
    // Nothing more: no repeats, and the unsubscribed test.triggered never came.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(seen.try_recv().is_err(), "nothing beyond the deployments");
    a.abort();
    b.abort();
    let _ = (a.await, b.await);

    // A replica that goes away without acking: its open events go to another replica; one it
    // finished (without an ack) is not redone.
    let mut x = api.triggered_stream(&id, "x").await.expect("stream x");
    let held: Vec<String> = vec![
        trigger(&client, "delivery", "s1").await,
        trigger(&client, "delivery", "s2").await,
        trigger(&client, "delivery", "s3").await,
    ];
    let mut got_x = Vec::new();
    for _ in 0..held.len() {
        got_x.push(next_event(&mut x, WAIT).await.expect("x gets the events"));
    }
    let mut y = api.triggered_stream(&id, "y").await.expect("stream y");
    // y connected while x holds them all: nothing for y yet.
    assert!(next_event(&mut y, Duration::from_millis(300)).await.is_none(), "x still holds them");
    finish(&client, &got_x[0]).await;
    client.wait_for(got_x[0]["shkeptncontext"].as_str().unwrap(), "sh.keptn.event.dev.delivery.finished", WAIT).await;
    drop(x);
    let mut moved = HashSet::new();
    for _ in 1..got_x.len() {
        let e = next_event(&mut y, WAIT).await.expect("x's unacked events move to y");
        moved.insert(id_of(&e));
    }
    assert_eq!(moved, got_x[1..].iter().map(id_of).collect::<HashSet<_>>());
    assert!(next_event(&mut y, Duration::from_millis(300)).await.is_none(), "the finished one is not redone");
    let acked: Vec<String> = moved.into_iter().collect();
    api.ack_stream(&id, "y", &acked).await.expect("ack");

    // triggeredAfter: streamed when due, not before.
    let sent = Instant::now();
    let later = trigger(&client, "later", "s4").await;
    let e = next_event(&mut y, WAIT).await.expect("the delayed deployment");
    assert_eq!(e["shkeptncontext"], later.as_str());
    assert!(sent.elapsed() >= Duration::from_millis(900), "streamed {:?} after the trigger", sent.elapsed());
    server.stop().await;
}

/// A TCP relay in front of the server whose open connections the test can cut (a network
/// failure between a replica and the control plane).
struct Relay {
    url: String,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(target: &str) -> Relay {
        let target = target.trim_start_matches("http://").to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let held = conns.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut up) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                held.lock().unwrap().push(task.abort_handle());
            }
        });
        Relay { url, conns, accept }
    }

    fn cut(&self) {
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

async fn next(feed: &mut StreamFeed) -> Delivery {
    tokio::time::timeout(WAIT, feed.next()).await.expect("a delivery in time").expect("the feed goes on")
}

/// A replica whose connection breaks reconnects by itself, says events may have been missed,
/// and gets its unacked open event again.
async fn reconnect(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let client = server.client();
    client.create_project("p", SHIPYARD).await;
    client.create_service("p", "s0").await;
    let id = register(&client).await;
    let relay = Relay::start(&server.url).await;
    let api = keptn_client::Client::new(&relay.url, &server.token);
    let mut feed = StreamFeed::connect(api, &id, "r").await.expect("stream");
    let ctx = trigger(&client, "delivery", "s0").await;
    let Delivery::Event { event: first, .. } = next(&mut feed).await else { panic!("an event first") };
    assert_eq!(first.shkeptncontext, ctx);
    relay.cut();
    assert!(matches!(next(&mut feed).await, Delivery::Lagged), "a reconnect is reported as Lagged");
    let Delivery::Event { event: again, ack } = next(&mut feed).await else { panic!("the unacked event again") };
    assert_eq!(again.id, first.id);
    finish(&client, &serde_json::to_value(&*again).unwrap()).await;
    ack.expect("streamed events are acked").await;
    client.wait_for(&ctx, "sh.keptn.event.dev.delivery.finished", WAIT).await;
    relay.accept.abort();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_sqlite() {
    reconnect(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_postgres() {
    reconnect(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_sqlite() {
    scenario(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_postgres() {
    scenario(Db::Postgres).await;
}
