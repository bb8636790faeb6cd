//! Values too long to store are refused at the door with 400, the same on SQLite and
//! PostgreSQL, and never reach the writer, where one of them used to fail the whole batch it
//! shared with other clients' events (PostgreSQL's btree entry limit: 503 for all of them).

mod support;

use serde_json::{Value, json};
use support::*;

const CP: &str = "/api/controlPlane/v1";

const SHIPYARD: &str = r#"
apiVersion: spec.keptn.sh/0.2.3
kind: Shipyard
metadata: { name: shipyard-p }
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: deployment
"#;

/// Text PostgreSQL cannot compress into an index entry (a repeated character would fit).
fn noise(len: usize) -> String {
    let mut s = String::new();
    while s.len() < len {
        s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    s.truncate(len);
    s
}

fn finished(ty: &str) -> Value {
    json!({ "type": ty, "source": "test", "triggeredid": "none",
            "data": { "project": "p", "stage": "dev", "service": "carts" } })
}

fn assert_refused(status: u16, body: &Value, field: &str) {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], 400, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(field) && message.contains("at most"), "names {field} and the limit: {message}");
    assert!(message.len() < 400, "does not echo the whole value: {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_values_are_refused_at_the_door_and_fail_no_other_event() {
    for db in [Db::Sqlite, Db::Postgres] {
        let Some(server) = TestServer::start(db).await else { continue };
        let client = server.client();
        client.create_project("p", SHIPYARD).await;
        client.create_service("p", "carts").await;

        // A shipyard whose task name makes event types too long is refused at creation.
        let long_task = SHIPYARD.replace("name: deployment", &format!("name: {}", noise(3000)));
        let (s, b) = client.post(&format!("{CP}/project"), json!({ "name": "q", "shipyard": b64(&long_task) })).await;
        assert_refused(s, &b, "task name");
        let long_stage = SHIPYARD.replace("name: dev", &format!("name: a{}", "b".repeat(300)));
        let (s, b) = client.post(&format!("{CP}/project"), json!({ "name": "q", "shipyard": b64(&long_stage) })).await;
        assert_refused(s, &b, "stage name");

        // Valid events from many clients while others send oversized ones: every valid one is
        // accepted and stored, every oversized one gets 400.
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..80 {
            let client = client.clone();
            tasks.spawn(async move {
                let oversized = i % 16 == 3;
                let ty = if oversized {
                    format!("sh.keptn.event.{}.finished", noise(8000))
                } else {
                    format!("sh.keptn.event.task{i}.finished")
                };
                let (s, b) = client.post("/api/v1/event", finished(&ty)).await;
                (oversized, s, b)
            });
        }
        let mut contexts = Vec::new();
        while let Some(r) = tasks.join_next().await {
            let (oversized, s, b) = r.unwrap();
            if oversized {
                assert_refused(s, &b, "type");
            } else {
                assert_eq!(s, 200, "{db:?}: a valid event is accepted: {b}");
                contexts.push(b["keptnContext"].as_str().unwrap().to_string());
            }
        }
        assert_eq!(contexts.len(), 75);
        for ctx in &contexts {
            assert_eq!(client.events_of(ctx).await.len(), 1, "{db:?}: the accepted event is stored");
        }

        // The other attributes the control plane stores and indexes.
        let mut ev = finished("sh.keptn.event.deployment.finished");
        ev["triggeredid"] = json!(noise(4000));
        let (s, b) = client.post("/api/v1/event", ev).await;
        assert_refused(s, &b, "triggeredid");
        let mut ev = finished("sh.keptn.event.deployment.finished");
        ev["source"] = json!(noise(5000));
        let (s, b) = client.post("/api/v1/event", ev).await;
        assert_refused(s, &b, "source");

        // /log, registration and subscriptions.
        let (s, b) = client
            .post(&format!("{CP}/log"), json!({ "logs": [{ "integrationid": noise(4000), "message": "m" }] }))
            .await;
        assert_refused(s, &b, "integrationid");
        let (s, b) = client.post(&format!("{CP}/uniform/registration"), json!({ "name": noise(4000) })).await;
        assert_refused(s, &b, "name");
        let reg = json!({ "name": "x", "subscriptions": [{ "event": noise(8000) }] });
        let (s, b) = client.post(&format!("{CP}/uniform/registration"), reg).await;
        assert_refused(s, &b, "subscription.event");
        let (s, b) = client.post(&format!("{CP}/uniform/registration"), json!({ "name": "x" })).await;
        assert_eq!(s, 201, "{b}");
        let id = b["id"].as_str().unwrap();
        let sub = json!({ "event": "sh.keptn.event.deployment.triggered", "filter": { "projects": [noise(4000)] } });
        let (s, b) = client.post(&format!("{CP}/uniform/registration/{id}/subscription"), sub).await;
        assert_refused(s, &b, "subscription.filter.projects");

        // The server still writes.
        let (s, b) = client.post("/api/v1/event", finished("sh.keptn.event.deployment.finished")).await;
        assert_eq!(s, 200, "{b}");
        server.stop().await;
    }
}
