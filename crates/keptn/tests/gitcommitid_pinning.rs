//! Sequences are pinned to a configuration revision: a sequence triggered without a
//! `gitcommitid` runs at the project's revision when it starts (keptn: the stage's HEAD), every
//! task `.triggered` carries it, a chained stage takes the revision when it starts, and a
//! trigger that names a revision keeps it.

mod support;

use base64::Engine as _;
use serde_json::{Value, json};
use std::time::Duration;
use support::*;

const SHIPYARD: &str = r#"
apiVersion: spec.keptn.sh/0.2.3
kind: Shipyard
metadata: { name: pin }
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks: [ { name: deployment } ]
    - name: prod
      sequences:
        - name: delivery
          triggeredOn: [ { event: dev.delivery.finished } ]
          tasks: [ { name: deployment } ]
"#;
const WAIT: Duration = Duration::from_secs(10);

async fn write_resource(client: &Client, content: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(content);
    let body = json!({ "resources": [ { "resourceURI": "values.yaml", "resourceContent": b64 } ] });
    let (s, b) = client.post("/api/resource-service/v1/project/pin/resource", body).await;
    assert_eq!(s, 201, "{b}");
    b["commitID"].as_str().unwrap().to_string()
}

async fn deployment_in(client: &Client, ctx: &str, stage: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let events = client.events_of(ctx).await;
        if let Some(ev) =
            events.iter().find(|e| e["type"] == "sh.keptn.event.deployment.triggered" && e["data"]["stage"] == stage)
        {
            return ev.clone();
        }
        if tokio::time::Instant::now() > deadline {
            let (_, view) = client.get("/api/controlPlane/v1/sequence-execution?project=pin").await;
            panic!("no deployment.triggered in {stage} for {ctx}: {view:#}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn trigger(client: &Client, gitcommitid: Option<&str>) -> String {
    let mut ev = json!({ "type": "sh.keptn.event.dev.delivery.triggered", "source": "test",
                         "data": { "project": "pin", "stage": "dev", "service": "carts" } });
    if let Some(id) = gitcommitid {
        ev["gitcommitid"] = json!(id);
    }
    client.send(ev).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequences_run_at_the_revision_they_started_with() {
    let Some(server) = TestServer::start(Db::Sqlite).await else { return };
    let client = server.client();
    client.create_project("pin", SHIPYARD).await;
    client.create_service("pin", "carts").await;

    let first = write_resource(&client, "replicas: 1").await;
    let ctx = trigger(&client, None).await;
    let dev = deployment_in(&client, &ctx, "dev").await;
    assert_eq!(dev["gitcommitid"], first, "dev runs at the revision when it started: {dev}");

    // The configuration changes while dev runs; prod starts later and takes the new revision.
    let second = write_resource(&client, "replicas: 3").await;
    assert_ne!(first, second);
    let (started, finished) = answers("helm", &dev, "pass", json!({}));
    client.send(started).await;
    client.send(finished).await;
    let prod = deployment_in(&client, &ctx, "prod").await;
    assert_eq!(prod["gitcommitid"], second, "prod runs at the revision when it started: {prod}");

    // An integration reads its configuration at the pinned revision.
    let (s, old) = client
        .get(&format!(
            "/api/resource-service/v1/project/pin/resource/values.yaml?gitCommitID={}",
            dev["gitcommitid"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, 200, "{old}");
    let content = base64::engine::general_purpose::STANDARD.decode(old["resourceContent"].as_str().unwrap()).unwrap();
    assert_eq!(content, b"replicas: 1");

    // A trigger that names a revision keeps it.
    let ctx = trigger(&client, Some(&first)).await;
    let pinned = deployment_in(&client, &ctx, "dev").await;
    assert_eq!(pinned["gitcommitid"], first, "{pinned}");
    let (started, finished) = answers("helm", &pinned, "pass", json!({}));
    client.send(started).await;
    client.send(finished).await; // frees the dev lane for the next delivery

    // The revision survives a restart (read back from the repository).
    let mut server = server;
    server.restart().await;
    let client = server.client();
    let (_, head) = client.get("/api/resource-service/v1/project/pin/resource/values.yaml").await;
    let ctx = trigger(&client, None).await;
    let after = deployment_in(&client, &ctx, "dev").await;
    assert_eq!(after["gitcommitid"], head["metadata"]["version"], "{after}");
    server.stop().await;
}
