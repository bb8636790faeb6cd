//! End to end over HTTP: a three-stage delivery whose staging test fails and triggers a
//! rollback through a selector, driven by one pull-mode and one push-mode integration exactly
//! as keptn 1.x integrations talk to the control plane. Runs on SQLite and PostgreSQL.

mod support;

use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use support::*;

const SHIPYARD: &str = r#"
apiVersion: spec.keptn.sh/0.2.3
kind: Shipyard
metadata: { name: shipyard-sockshop }
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: deployment
              properties: { deploymentstrategy: direct }
            - name: test
              properties: { teststrategy: functional }
    - name: staging
      sequences:
        - name: delivery
          triggeredOn:
            - event: dev.delivery.finished
          tasks:
            - name: deployment
              properties: { deploymentstrategy: blue_green_service }
            - name: test
              properties: { teststrategy: performance }
        - name: rollback
          triggeredOn:
            - event: staging.delivery.finished
              selector: { match: { result: fail } }
          tasks:
            - name: rollback
    - name: production
      sequences:
        - name: delivery
          triggeredOn:
            - event: staging.delivery.finished
          tasks:
            - name: deployment
            - name: release
"#;

fn types(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| e["type"].as_str().unwrap().trim_start_matches("sh.keptn.event.").to_string()).collect()
}

async fn delivery_with_rollback(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let client = server.client();
    client.create_project("sockshop", SHIPYARD).await;
    client.create_service("sockshop", "carts").await;

    // Pull mode (a remote execution plane): deployment, rollback and release.
    let deployer: Decide = Arc::new(|ev: &Value| {
        let stage = ev["data"]["stage"].as_str().unwrap().to_string();
        let task = task_of(ev["type"].as_str().unwrap()).to_string();
        let extra = if task == "deployment" {
            json!({ "deployment": { "deploymentURIsLocal": [format!("http://carts.sockshop-{stage}:80")], "deploymentNames": ["carts"] } })
        } else {
            json!({})
        };
        ("pass".to_string(), extra)
    });
    let pull = spawn_pull_integration(
        client.clone(),
        "helm-service",
        vec![
            "sh.keptn.event.deployment.triggered".into(),
            "sh.keptn.event.rollback.triggered".into(),
            "sh.keptn.event.release.triggered".into(),
        ],
        "sockshop",
        deployer,
    );
    // Push mode: tests fail in staging.
    let tester: Decide = Arc::new(|ev: &Value| {
        let fail = ev["data"]["stage"] == "staging";
        let result = if fail { "fail" } else { "pass" };
        (
            result.to_string(),
            json!({ "test": { "start": "2026-01-01T00:00:00.000Z", "end": "2026-01-01T00:05:00.000Z" } }),
        )
    });
    let push = spawn_push_integration(
        client.clone(),
        "jmeter-service",
        vec!["sh.keptn.event.test.triggered".into()],
        "sockshop",
        tester,
    )
    .await;

    let ctx = client
        .send(json!({
            "type": "sh.keptn.event.dev.delivery.triggered",
            "source": "https://github.com/keptn/keptn/cli#configuration-change",
            "data": { "project": "sockshop", "stage": "dev", "service": "carts", "labels": { "buildId": "42" },
                      "configurationChange": { "values": { "image": "ghcr.io/x/carts:1.2" } } }
        }))
        .await;

    let rollback = client.wait_for(&ctx, "sh.keptn.event.staging.rollback.finished", Duration::from_secs(20)).await;
    assert_eq!(rollback["data"]["result"], "pass");
    let events = client.events_of(&ctx).await;
    let seen = types(&events);
    let control_plane: Vec<&String> =
        seen.iter().filter(|t| t.ends_with(".triggered") || t.matches('.').count() == 2).collect();
    // What the control plane emitted, in order (answers interleave, so compare only ours).
    let ours: Vec<&str> = events
        .iter()
        .filter(|e| e["source"] == "shipyard-controller" || e["type"] == "sh.keptn.event.dev.delivery.triggered")
        .map(|e| e["type"].as_str().unwrap().trim_start_matches("sh.keptn.event."))
        .collect();
    assert_eq!(
        ours,
        vec![
            "dev.delivery.triggered",
            "deployment.triggered",
            "test.triggered",
            "dev.delivery.finished",
            "staging.delivery.triggered",
            "deployment.triggered",
            "test.triggered",
            "staging.delivery.finished",
            "staging.rollback.triggered",
            "rollback.triggered",
            "staging.rollback.finished",
        ],
        "all events: {control_plane:#?}"
    );
    assert!(!seen.iter().any(|t| t.starts_with("production.")), "production must not start after a failed staging");

    let by_type = |ty: &str| -> Vec<&Value> { events.iter().filter(|e| e["type"] == ty).collect() };
    let staging_finished = by_type("sh.keptn.event.staging.delivery.finished")[0];
    assert_eq!(staging_finished["data"]["result"], "fail");
    assert_eq!(staging_finished["data"]["status"], "succeeded");
    assert_eq!(by_type("sh.keptn.event.dev.delivery.finished")[0]["data"]["result"], "pass");

    // Data propagation: staging's test sees the image, labels, its own deployment's URIs and its
    // task properties; keptn's pull and push transports both saw their events.
    let tests = by_type("sh.keptn.event.test.triggered");
    let staging_test = tests.iter().find(|e| e["data"]["stage"] == "staging").unwrap();
    assert_eq!(staging_test["data"]["configurationChange"]["values"]["image"], "ghcr.io/x/carts:1.2");
    assert_eq!(staging_test["data"]["labels"]["buildId"], "42");
    assert_eq!(staging_test["data"]["test"]["teststrategy"], "performance");
    let uris = staging_test["data"]["deployment"]["deploymentURIsLocal"].as_array().unwrap();
    assert_eq!(uris[0], "http://carts.sockshop-staging:80", "newest URIs first: {uris:?}");
    assert_eq!(staging_test["data"]["result"], "pass");
    let pushed = push.received.lock().unwrap().clone();
    assert_eq!(pushed.len(), 2, "the push integration got exactly the two test.triggered events");
    assert!(pushed.iter().all(|e| e["data"]["temporaryData"]["distributor"]["subscriptionID"].is_string()));

    // Nothing is left open for pollers, and the state view tells the story.
    let (_, open) =
        client.get("/api/controlPlane/v1/event/triggered/sh.keptn.event.deployment.triggered?project=sockshop").await;
    assert_eq!(open["totalCount"], 0);
    let (_, view) = client.get("/api/controlPlane/v1/sequence/sockshop").await;
    let state = &view["states"][0];
    assert_eq!(state["shkeptncontext"], ctx);
    assert_eq!(state["name"], "delivery");
    assert_eq!(state["state"], "finished");
    let stages: Vec<(&str, &str)> = state["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    assert_eq!(stages, vec![("dev", "succeeded"), ("staging", "succeeded")]);
    let (_, project) = client.get("/api/controlPlane/v1/project/sockshop").await;
    let dev_carts = &project["stages"][0]["services"][0];
    assert_eq!(dev_carts["deployedImage"], "ghcr.io/x/carts:1.2");
    assert!(dev_carts["lastEventTypes"]["sh.keptn.event.test.finished"]["keptnContext"] == ctx);

    pull.abort();
    drop(push);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_with_rollback_sqlite() {
    delivery_with_rollback(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_with_rollback_postgres() {
    delivery_with_rollback(Db::Postgres).await;
}
