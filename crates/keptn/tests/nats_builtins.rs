//! Built-ins on NATS: two replicas of `keptn integration run approval --nats-url …` against one
//! server publishing to a nats-server of the test's own share the durable consumer
//! `keptn-approval-service`. 20 deliveries with an automatic approval: each approval.triggered
//! is answered exactly once (one approval.started, one approval.finished), JetStream delivered
//! each once (no redelivery, nothing left unacknowledged), and both replicas took some. SQLite.

mod support;

use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use support::nats::Nats;
use support::*;

const WAIT: Duration = Duration::from_secs(60);
const DELIVERIES: usize = 20;
const SHIPYARD: &str = r#"
apiVersion: spec.keptn.sh/0.2.3
kind: Shipyard
metadata: { name: approval }
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: deployment
            - name: approval
              properties: { pass: automatic, warning: manual }
"#;

/// One `keptn integration run approval` replica, its debug log in a file; killed when dropped.
struct Replica {
    child: Child,
    log: std::path::PathBuf,
}

impl Replica {
    fn spawn(server: &TestServer, nats: &str, name: &str, dir: &std::path::Path) -> Replica {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_keptn"))
            .args(["integration", "run", "approval", "--endpoint", &server.url, "--api-token", &server.token])
            .args(["--nats-url", nats, "--hostname", "nats-test-host", "--replica", name])
            .env("KEPTN_CONFIG_DIR", dir.join("no-credentials"))
            .env("KEPTN_LOG", "keptn_client=debug,warn")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("keptn integration run starts");
        Replica { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The approval.triggered events JetStream handed to this replica.
    fn taken(&self) -> usize {
        self.log().lines().filter(|l| l.contains("event from NATS") && l.contains("approval.triggered")).count()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn of_type<'a>(events: &'a [Value], ty: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == format!("sh.keptn.event.{ty}")).collect()
}

/// The shared consumer as JetStream reports it.
async fn consumer_info(url: &str) -> async_nats::jetstream::consumer::Info {
    let js = async_nats::jetstream::new(async_nats::connect(url).await.expect("NATS reachable"));
    let stream = js.get_stream("KEPTN").await.expect("the KEPTN stream exists");
    let mut consumer: async_nats::jetstream::consumer::PullConsumer =
        stream.get_consumer("keptn-approval-service").await.expect("the replicas' consumer exists");
    consumer.info().await.expect("consumer info").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_durable_consumer_and_answer_each_approval_once() {
    let nats = Nats::start();
    let url = nats.url();
    let tune = |c: &mut keptn_server::ServerConfig| {
        c.nats_url = Some(url.clone());
        c.integrations = Vec::new(); // only the replicas run the approval-service
    };
    let server = TestServer::start_tuned(Db::Sqlite, tune).await.unwrap();
    let client = server.client();
    client.create_project("p", SHIPYARD).await;
    client.create_service("p", "svc").await;
    let dir = tempfile::tempdir().unwrap();
    let replicas = [
        Replica::spawn(&server, &url, "replica-a", dir.path()),
        Replica::spawn(&server, &url, "replica-b", dir.path()),
    ];
    // Both have created or joined the consumer once they logged in (the consumer comes first).
    eventually(Duration::from_secs(20), "the approval-service registered", || {
        let client = client.clone();
        async move {
            let (_, regs) = client.get("/api/controlPlane/v1/uniform/registration?name=approval-service").await;
            regs.as_array().is_some_and(|r| !r.is_empty()).then_some(())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await; // the second replica joins too

    let deployer: Decide = Arc::new(|_: &Value| ("pass".to_string(), json!({})));
    let types = vec!["sh.keptn.event.deployment.triggered".into()];
    let pull = spawn_pull_integration(client.clone(), "helm-service", types, "p", deployer);
    let mut contexts = Vec::new();
    for _ in 0..DELIVERIES {
        let trigger = json!({ "type": "sh.keptn.event.dev.delivery.triggered", "source": "test",
                              "data": { "project": "p", "stage": "dev", "service": "svc" } });
        contexts.push(client.send(trigger).await);
    }
    for ctx in &contexts {
        let finished = client.wait_for(ctx, "sh.keptn.event.dev.delivery.finished", WAIT).await;
        assert_eq!(finished["data"]["result"], "pass", "{finished}");
    }
    // Time for a second (wrong) answer or a redelivery to show.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for ctx in &contexts {
        let events = client.events_of(ctx).await;
        let triggered = of_type(&events, "approval.triggered");
        let (started, finished) = (of_type(&events, "approval.started"), of_type(&events, "approval.finished"));
        assert_eq!((triggered.len(), started.len(), finished.len()), (1, 1, 1), "answered exactly once: {events:#?}");
        for answer in [started[0], finished[0]] {
            assert_eq!(answer["source"], "approval-service");
            assert_eq!(answer["triggeredid"], triggered[0]["id"]);
        }
        assert_eq!(finished[0]["data"]["result"], "pass");
    }

    let info = consumer_info(&url).await;
    assert_eq!(info.delivered.consumer_sequence, DELIVERIES as u64, "each approval.triggered delivered once: {info:?}");
    assert_eq!((info.num_ack_pending, info.num_redelivered, info.num_pending), (0, 0, 0), "all acked: {info:?}");
    let taken: Vec<usize> = replicas.iter().map(Replica::taken).collect();
    eprintln!("events taken by each replica: {taken:?}");
    assert_eq!(taken.iter().sum::<usize>(), DELIVERIES, "logs: {}\n{}", replicas[0].log(), replicas[1].log());
    assert!(taken.iter().all(|&n| n > 0), "both replicas took events from the shared consumer: {taken:?}");

    pull.abort();
    let _ = pull.await; // cancelled before the server stops, not failing mid-request
    drop(replicas);
    server.stop().await;
    drop(nats);
}
