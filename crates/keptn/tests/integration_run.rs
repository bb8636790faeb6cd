//! `keptn integration run` as a user starts it: the real binary against a real server that runs
//! no built-ins itself. Polling (`--poll`, keptn 1.x's way, also the fallback against a control
//! plane without the event stream) and the event stream both get an approval answered; bad
//! input is refused with a line that says what to do.

mod support;

use serde_json::{Value, json};
use std::time::Duration;
use support::cli::{command, keptn};
use support::*;

const WAIT: Duration = Duration::from_secs(15);

const SHIPYARD: &str = r#"
apiVersion: spec.keptn.sh/0.2.3
kind: Shipyard
metadata: { name: gate }
spec:
  stages:
    - name: dev
      sequences:
        - name: gate
          tasks:
            - name: approval
              properties: { pass: automatic, warning: manual }
"#;

/// A `keptn integration run` child, killed at the end of the test.
struct Running(tokio::process::Child);

async fn gate(client: &Client, service: &str) -> Value {
    let ctx = client
        .send(json!({ "type": "sh.keptn.event.dev.gate.triggered", "source": "test",
                      "data": { "project": "p", "stage": "dev", "service": service, "result": "pass" } }))
        .await;
    client.wait_for(&ctx, "sh.keptn.event.dev.gate.finished", WAIT).await
}

async fn registration(client: &Client) -> Value {
    eventually(WAIT, "approval-service registered", || {
        let client = client.clone();
        async move {
            let (_, regs) = client.get("/api/controlPlane/v1/uniform/registration?name=approval-service").await;
            regs.as_array().and_then(|r| r.first().cloned())
        }
    })
    .await
}

fn run(home: &std::path::Path, server: &TestServer, extra: &[&str]) -> Running {
    let mut args = vec!["integration", "run", "approval", "--endpoint", &server.url, "--api-token", &server.token];
    args.extend_from_slice(extra);
    Running(command(home, &args).spawn().expect("keptn integration run starts"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_and_the_stream_both_answer_and_bad_input_is_refused() {
    let Some(server) = TestServer::start_tuned(Db::Sqlite, |c| c.integrations = Vec::new()).await else { return };
    let client = server.client();
    client.create_project("p", SHIPYARD).await;
    for service in ["a", "b"] {
        client.create_service("p", service).await;
    }
    let home = tempfile::tempdir().unwrap();

    // Bad input: an unknown name lists the known ones; no endpoint anywhere says how to give one.
    let o = keptn(home.path(), &["integration", "run", "aproval"]).await;
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("\"aproval\"") && o.stderr.contains("approval, lighthouse, prometheus, http-sli"), "{o}");
    let o = keptn(home.path(), &["integration", "run", "approval"]).await;
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("keptn auth --endpoint"), "{o}");
    let o = keptn(home.path(), &["integration", "list"]).await;
    assert!(o.ok() && o.stdout.contains("lighthouse") && o.stdout.contains("http-sli"), "{o}");

    // Polling every 200 ms: registered as a remote execution plane's service, answers the gate.
    let mut polling = run(home.path(), &server, &["--poll", "200ms", "--hostname", "poller"]);
    let reg = registration(&client).await;
    assert_eq!(reg["metadata"]["location"], "remote-execution-plane", "{reg}");
    assert_eq!(reg["metadata"]["hostname"], "poller", "{reg}");
    let done = gate(&client, "a").await;
    assert_eq!(done["data"]["result"], "pass", "{done}");
    polling.0.kill().await.unwrap();

    // The event stream (the default), a second process on the same host: same registration.
    let mut streaming = run(home.path(), &server, &["--hostname", "poller"]);
    let done = gate(&client, "b").await;
    assert_eq!(done["data"]["result"], "pass", "{done}");
    let (_, regs) = client.get("/api/controlPlane/v1/uniform/registration?name=approval-service").await;
    assert_eq!(regs.as_array().map(Vec::len), Some(1), "one registration for one host: {regs}");
    let events = client.events_of(done["shkeptncontext"].as_str().unwrap()).await;
    let started: Vec<&Value> = events.iter().filter(|e| e["type"] == "sh.keptn.event.approval.started").collect();
    assert_eq!(started.len(), 1, "answered once: {events:#?}");
    streaming.0.kill().await.unwrap();
    server.stop().await;
}
