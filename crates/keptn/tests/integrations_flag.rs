//! `keptn server --integrations`: which built-in integrations run. `none` leaves every task to
//! external services; a list runs only those named; an unknown name stops the start with the
//! known ones. SQLite (the selection does not touch the store).

mod support;

use serde_json::json;
use std::time::Duration;
use support::*;

const CP: &str = "/api/controlPlane/v1";
const APPROVAL: &str = "sh.keptn.event.approval.triggered";
const BUILT_INS: [&str; 6] = [
    "approval-service",
    "lighthouse-service",
    "prometheus-sli-provider",
    "http-sli-provider",
    "webhook-service",
    "job-executor-service",
];

const SHIPYARD: &str = r#"
apiVersion: spec.keptn.sh/0.2.3
kind: Shipyard
metadata: { name: flag }
spec:
  stages:
    - name: dev
      sequences:
        - name: gate
          tasks:
            - name: approval
              properties: { pass: automatic, warning: automatic }
"#;

/// The names of the registered integrations.
async fn registered(client: &Client) -> Vec<String> {
    let (s, all) = client.get(&format!("{CP}/uniform/registration")).await;
    assert_eq!(s, 200, "{all}");
    all.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn none_runs_no_built_in_and_tasks_wait() {
    let Some(server) = TestServer::start_tuned(Db::Sqlite, |c| c.integrations = Vec::new()).await else { return };
    let client = server.client();
    client.create_project("p", SHIPYARD).await;
    client.create_service("p", "a").await;
    assert!(registered(&client).await.is_empty(), "no built-in registers");

    let ctx = client
        .send(json!({ "type": "sh.keptn.event.dev.gate.triggered", "source": "test",
                      "data": { "project": "p", "stage": "dev", "service": "a", "result": "pass" } }))
        .await;
    let open = eventually(Duration::from_secs(10), "the approval is open", || {
        let client = client.clone();
        let ctx = ctx.clone();
        async move { client.open_triggered(APPROVAL, "p").await.into_iter().find(|e| e["shkeptncontext"] == ctx) }
    })
    .await;
    // An automatic approval would be answered within milliseconds by the built-in.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = client.events_of(&ctx).await;
    assert!(
        !events.iter().any(|e| e["type"] == "sh.keptn.event.approval.started"),
        "nobody answers the approval: {events:?}"
    );
    assert!(client.open_triggered(APPROVAL, "p").await.iter().any(|e| e["id"] == open["id"]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_runs_only_those_named() {
    let Some(server) = TestServer::start_tuned(Db::Sqlite, |c| {
        c.integrations = keptn_server::select_integrations("approval").unwrap()
    })
    .await
    else {
        return;
    };
    let client = server.client();
    client.create_project("p", SHIPYARD).await;
    client.create_service("p", "a").await;
    let names = registered(&client).await;
    assert_eq!(names, ["approval-service"], "only the approval-service registers");
    assert!(BUILT_INS[1..].iter().all(|n| !names.iter().any(|m| m == n)));

    let ctx = client
        .send(json!({ "type": "sh.keptn.event.dev.gate.triggered", "source": "test",
                      "data": { "project": "p", "stage": "dev", "service": "a", "result": "pass" } }))
        .await;
    let finished = client.wait_for(&ctx, "sh.keptn.event.dev.gate.finished", Duration::from_secs(10)).await;
    assert_eq!(finished["data"]["result"], "pass", "the approval-service answers: {finished}");
    server.stop().await;
}

#[test]
fn an_unknown_name_stops_the_start_with_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keptn"))
        .args(["server", "--listen", "127.0.0.1:0", "--integrations", "approval,lighthous"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("KEPTN_INTEGRATIONS")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("unknown integration \"lighthous\"")
            && stderr.contains("known: approval, lighthouse, prometheus, http-sli, webhook, job-executor")
            && stderr.contains("(or none)"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!dir.path().join("data").exists(), "a bad flag leaves no data dir behind");
}
