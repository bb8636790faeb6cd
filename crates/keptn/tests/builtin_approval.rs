//! The built-in approval-service: registered like any integration, it approves or declines
//! automatically where the shipyard says so and leaves manual approvals to a user's
//! `approval.finished`. Deployment and release come from a keptn 1.x pull-mode integration.
//! SQLite and PostgreSQL.

mod support;

use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use support::*;

const CP: &str = "/api/controlPlane/v1";
const WAIT: Duration = Duration::from_secs(10);
const APPROVAL: &str = "sh.keptn.event.approval.triggered";

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
            - name: release
        - name: gate
          tasks:
            - name: approval
              properties: { pass: automatic, warning: manual }
"#;

/// Triggers a sequence in stage dev of project p; the deployment reports `labels.deploy`.
async fn trigger(client: &Client, sequence: &str, service: &str, extra: Value) -> String {
    let mut data = json!({ "project": "p", "stage": "dev", "service": service });
    keptn_formats::merge::merge(&mut data, &extra);
    client
        .send(json!({ "type": format!("sh.keptn.event.dev.{sequence}.triggered"), "source": "test", "data": data }))
        .await
}

fn of_type<'a>(events: &'a [Value], ty: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == format!("sh.keptn.event.{ty}")).collect()
}

/// A user's decision, as the Bridge or `keptn send event approval.finished` posts it.
async fn decide(client: &Client, triggered: &Value, result: &str) {
    let d = &triggered["data"];
    client
        .send(json!({
            "type": "sh.keptn.event.approval.finished", "source": "bridge",
            "shkeptncontext": triggered["shkeptncontext"], "triggeredid": triggered["id"],
            "data": { "project": d["project"], "stage": d["stage"], "service": d["service"],
                      "status": "succeeded", "result": result },
        }))
        .await;
}

/// Waits for the approval to be started, then gives the service time to (wrongly) finish it.
async fn waiting_approval(client: &Client, ctx: &str) -> (Value, Value) {
    let started = client.wait_for(ctx, "sh.keptn.event.approval.started", WAIT).await;
    assert_eq!(started["source"], "approval-service");
    assert_eq!(started["data"]["message"], "Approval strategy for result 'warning': manual");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = client.events_of(ctx).await;
    assert!(of_type(&events, "approval.finished").is_empty(), "a manual approval waits for a user");
    let triggered = of_type(&events, "approval.triggered")[0].clone();
    assert_eq!(started["triggeredid"], triggered["id"]);
    (triggered, started)
}

async fn approval(db: Db) {
    let Some(mut server) = TestServer::start(db).await else { return };
    let mut client = server.client();
    client.create_project("p", SHIPYARD).await;
    for service in ["a", "b", "c", "d", "e"] {
        client.create_service("p", service).await;
    }

    // The built-in is registered like an external integration.
    let (s, all) = client.get(&format!("{CP}/uniform/registration?name=approval-service")).await;
    assert_eq!(s, 200, "{all}");
    let reg = all.as_array().unwrap().first().unwrap_or_else(|| panic!("approval-service registered: {all}")).clone();
    // In-process it registers as keptn's control-plane services do; run by `keptn integration
    // run`, as a remote execution plane's service (KEPTN_TEST_BUILTINS=remote).
    if remote_builtins() {
        assert_eq!(reg["metadata"]["location"], "remote-execution-plane");
        assert!(reg["metadata"]["hostname"].as_str().is_some_and(|h| !h.is_empty() && h != "built-in"), "{reg}");
    } else {
        assert_eq!(reg["metadata"]["location"], "control-plane");
        assert_eq!(reg["metadata"]["hostname"], "built-in");
    }
    assert_eq!(reg["metadata"]["kubernetesmetadata"]["namespace"], "keptn");
    assert_eq!(reg["subscriptions"].as_array().unwrap().len(), 1, "{reg}");
    assert_eq!(reg["subscriptions"][0]["event"], APPROVAL);
    let id = reg["id"].as_str().unwrap().to_string();

    let deployer: Decide = Arc::new(|ev: &Value| {
        let result = ev["data"]["labels"]["deploy"].as_str().unwrap_or("pass");
        let task = task_of(ev["type"].as_str().unwrap());
        (if task == "deployment" { result } else { "pass" }.to_string(), json!({}))
    });
    let types = vec!["sh.keptn.event.deployment.triggered".into(), "sh.keptn.event.release.triggered".into()];
    let pull = spawn_pull_integration(client.clone(), "helm-service", types.clone(), "p", deployer.clone());

    // (a) Deployment passes: approved automatically, release runs.
    let ctx = trigger(&client, "delivery", "a", json!({ "labels": { "deploy": "pass" } })).await;
    let finished = client.wait_for(&ctx, "sh.keptn.event.dev.delivery.finished", WAIT).await;
    assert_eq!(finished["data"]["result"], "pass", "{finished}");
    let events = client.events_of(&ctx).await;
    let started = of_type(&events, "approval.started");
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["data"]["message"], "Approval strategy for result 'pass': automatic");
    assert_eq!(started[0]["data"]["labels"]["deploy"], "pass", "labels are carried");
    let approved = of_type(&events, "approval.finished");
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0]["source"], "approval-service");
    assert_eq!(approved[0]["data"]["result"], "pass");
    assert_eq!(approved[0]["data"]["status"], "succeeded");
    assert_eq!(approved[0]["triggeredid"], of_type(&events, "approval.triggered")[0]["id"]);
    assert_eq!(of_type(&events, "release.finished").len(), 1);

    // (b) Deployment warns: manual approval; it waits until a user approves.
    let ctx = trigger(&client, "delivery", "b", json!({ "labels": { "deploy": "warning" } })).await;
    let (triggered, started) = waiting_approval(&client, &ctx).await;
    let open = client.open_triggered(APPROVAL, "p").await;
    assert!(open.iter().any(|e| e["id"] == triggered["id"]), "pollers (Bridge, CLI) see the open approval: {open:?}");
    let view = client.sequence_state("p", &ctx).await;
    assert_eq!(view["state"], "started", "{view}");
    assert_eq!(view["stages"][0]["latestEvent"]["id"], started["id"], "{view}");
    let (_, execs) = client.get(&format!("{CP}/sequence-execution?project=p&keptnContext={ctx}")).await;
    assert_eq!(execs["sequenceExecutions"][0]["status"]["state"], "waitingForApproval", "{execs}");
    assert_eq!(execs["sequenceExecutions"][0]["status"]["currentTask"]["name"], "approval", "{execs}");
    decide(&client, &triggered, "pass").await;
    let finished = client.wait_for(&ctx, "sh.keptn.event.dev.delivery.finished", WAIT).await;
    assert_eq!(finished["data"]["result"], "pass", "{finished}");
    let events = client.events_of(&ctx).await;
    assert_eq!(of_type(&events, "release.finished").len(), 1, "release runs after the approval");
    assert!(!client.open_triggered(APPROVAL, "p").await.iter().any(|e| e["id"] == triggered["id"]));

    // (c) The user declines: the sequence ends with result fail, no release.
    let ctx = trigger(&client, "delivery", "c", json!({ "labels": { "deploy": "warning" } })).await;
    let (triggered, _) = waiting_approval(&client, &ctx).await;
    decide(&client, &triggered, "fail").await;
    let finished = client.wait_for(&ctx, "sh.keptn.event.dev.delivery.finished", WAIT).await;
    assert_eq!(finished["data"]["result"], "fail", "{finished}");
    assert!(of_type(&client.events_of(&ctx).await, "release.triggered").is_empty());

    // (d) A failed input result is declined automatically (a failed task would end the sequence
    // before its approval, so the result comes with the trigger).
    let ctx = trigger(&client, "gate", "d", json!({ "result": "fail" })).await;
    let finished = client.wait_for(&ctx, "sh.keptn.event.dev.gate.finished", WAIT).await;
    assert_eq!(finished["data"]["result"], "fail", "{finished}");
    let events = client.events_of(&ctx).await;
    assert_eq!(
        of_type(&events, "approval.started")[0]["data"]["message"],
        "Approval strategy for result 'fail': automatic"
    );
    let declined = of_type(&events, "approval.finished");
    assert_eq!((declined.len(), &declined[0]["source"]), (1, &json!("approval-service")));
    assert_eq!(declined[0]["data"]["result"], "fail");

    // (e) Its subscriptions are the stored ones, and open approvals survive a restart: without
    // a subscription nothing answers; one added later does not see the event already published
    // (the bus is not durable), but after a restart the service reads it from the store.
    let sub = reg["subscriptions"][0]["id"].as_str().unwrap();
    let (s, b) = client.delete(&format!("{CP}/uniform/registration/{id}/subscription/{sub}")).await;
    assert_eq!(s, 200, "{b}");
    let ctx = trigger(&client, "gate", "e", json!({ "result": "pass" })).await;
    let triggered = eventually(WAIT, "the approval is open", || {
        let client = client.clone();
        let ctx = ctx.clone();
        async move { client.open_triggered(APPROVAL, "p").await.into_iter().find(|e| e["shkeptncontext"] == ctx) }
    })
    .await;
    // Offered while unsubscribed (with NATS that takes a moment after the commit).
    server.builtins_offered(&triggered).await;
    let only_p = json!({ "event": APPROVAL, "filter": { "projects": ["p"] } });
    let (s, b) = client.post(&format!("{CP}/uniform/registration/{id}/subscription"), only_p).await;
    assert_eq!(s, 201, "{b}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(of_type(&client.events_of(&ctx).await, "approval.started").is_empty(), "nobody answered yet");
    pull.abort();
    server.restart().await;
    client = server.client();
    let finished = client.wait_for(&ctx, "sh.keptn.event.dev.gate.finished", WAIT).await;
    assert_eq!(finished["data"]["result"], "pass", "{finished}");
    let events = client.events_of(&ctx).await;
    assert_eq!(of_type(&events, "approval.started").len(), 1);
    assert_eq!(of_type(&events, "approval.finished")[0]["triggeredid"], triggered["id"]);
    let (_, reg) = client.get(&format!("{CP}/uniform/registration/{id}")).await;
    let subs = reg["subscriptions"].as_array().unwrap();
    assert_eq!(subs.len(), 1, "the restart keeps the stored subscriptions: {reg}");
    assert_eq!(subs[0]["filter"]["projects"], json!(["p"]));

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_sqlite() {
    approval(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_postgres() {
    approval(Db::Postgres).await;
}
