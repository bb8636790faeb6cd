//! Projects, stages and services over HTTP with keptn's shapes: create, list, page, update the
//! shipyard, delete, and the system events keptn emits for each. SQLite and PostgreSQL.

mod support;

use serde_json::{Value, json};
use support::*;

const CP: &str = "/api/controlPlane/v1";

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
    - name: staging
      sequences:
        - name: delivery
          triggeredOn:
            - event: dev.delivery.finished
          tasks:
            - name: deployment
    - name: production
      sequences:
        - name: delivery
          triggeredOn:
            - event: staging.delivery.finished
          tasks:
            - name: deployment
"#;

fn now_ns() -> i128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i128
}

/// keptn's `creationDate`: nanoseconds since the epoch, as a string; recent.
fn assert_creation_date(v: &Value, what: &str) {
    let s = v.as_str().unwrap_or_else(|| panic!("{what}: creationDate must be a string: {v}"));
    let ns: i128 = s.parse().unwrap_or_else(|_| panic!("{what}: creationDate {s:?} is not a number"));
    let age = now_ns() - ns;
    assert!((0..120_000_000_000).contains(&age), "{what}: creationDate {s} is not nanoseconds of just now");
}

async fn system_events(client: &Client, project: &str, ty: &str) -> Vec<Value> {
    let (s, b) = client.get(&format!("/api/mongodb-datastore/event?project={project}&type=sh.keptn.event.{ty}")).await;
    assert_eq!(s, 200, "{b}");
    b["events"].as_array().unwrap().clone()
}

async fn project_lifecycle(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let client = server.client();
    let (s, b) = client.post(&format!("{CP}/project"), json!({ "name": "sockshop", "shipyard": b64(SHIPYARD) })).await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = client.post(&format!("{CP}/project"), json!({ "name": "sockshop", "shipyard": b64(SHIPYARD) })).await;
    assert_eq!((s, &b["code"]), (409, &json!(409)), "duplicate project: {b}");

    // project.create.started / .finished, one context, the finished one says what was created.
    let started = system_events(&client, "sockshop", "project.create.started").await;
    let finished = system_events(&client, "sockshop", "project.create.finished").await;
    assert_eq!((started.len(), finished.len()), (1, 1), "one create, not two (the duplicate was refused)");
    assert_eq!(started[0]["shkeptncontext"], finished[0]["shkeptncontext"]);
    assert_eq!(started[0]["source"], "shipyard-controller");
    assert_eq!(finished[0]["data"]["project"], "sockshop");
    assert_eq!(finished[0]["data"]["status"], "succeeded");
    assert_eq!(finished[0]["data"]["result"], "pass");
    assert_eq!(finished[0]["data"]["createdProject"]["projectName"], "sockshop");

    // Services are created in every stage.
    let (s, b) = client.post(&format!("{CP}/project/sockshop/service"), json!({ "serviceName": "carts" })).await;
    assert_eq!((s, &b), (200, &json!({})), "create service");
    let (s, b) = client.post(&format!("{CP}/project/sockshop/service"), json!({ "serviceName": "carts" })).await;
    assert_eq!((s, &b["code"]), (409, &json!(409)), "duplicate service: {b}");
    client.create_service("sockshop", "orders").await;
    let started = system_events(&client, "sockshop", "service.create.started").await;
    let finished = system_events(&client, "sockshop", "service.create.finished").await;
    assert_eq!((started.len(), finished.len()), (2, 2));
    let carts_finished = finished.iter().find(|e| e["data"]["service"] == "carts").expect("carts finished");
    assert_eq!(carts_finished["data"]["status"], "succeeded");
    let carts_started = started.iter().find(|e| e["data"]["service"] == "carts").unwrap();
    assert_eq!(carts_started["shkeptncontext"], carts_finished["shkeptncontext"]);

    // keptn's ExpandedProject.
    let (s, p) = client.get(&format!("{CP}/project/sockshop")).await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["projectName"], "sockshop");
    assert_creation_date(&p["creationDate"], "project");
    assert_eq!(p["shipyard"], SHIPYARD);
    assert_eq!(p["shipyardVersion"], "spec.keptn.sh/0.2.3");
    let stages = p["stages"].as_array().unwrap();
    let names: Vec<&str> = stages.iter().map(|s| s["stageName"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["dev", "staging", "production"], "stages in shipyard order");
    assert_eq!(stages[0]["parentStages"], json!([]));
    assert_eq!(stages[1]["parentStages"], json!(["dev"]));
    assert_eq!(stages[2]["parentStages"], json!(["staging"]));
    for stage in stages {
        let services: Vec<&str> =
            stage["services"].as_array().unwrap().iter().map(|s| s["serviceName"].as_str().unwrap()).collect();
        assert_eq!(services, vec!["carts", "orders"], "stage {}", stage["stageName"]);
        assert_creation_date(&stage["services"][0]["creationDate"], "service");
    }

    // Stage and service reads.
    let (s, b) = client.get(&format!("{CP}/project/sockshop/stage")).await;
    assert_eq!(s, 200);
    assert_eq!(b["totalCount"], 3);
    assert_eq!(b["stages"].as_array().unwrap().len(), 3);
    let (_, b) = client.get(&format!("{CP}/project/sockshop/stage?pageSize=2&nextPageKey=2")).await;
    assert_eq!(b["stages"][0]["stageName"], "production");
    assert_eq!(b["nextPageKey"], "0");
    let (s, b) = client.get(&format!("{CP}/project/sockshop/stage/staging")).await;
    assert_eq!(s, 200);
    assert_eq!(b["stageName"], "staging");
    assert_eq!(b["parentStages"], json!(["dev"]));
    let (_, b) = client.get(&format!("{CP}/project/sockshop/stage/dev/service")).await;
    assert_eq!(b["totalCount"], 2);
    let (s, b) = client.get(&format!("{CP}/project/sockshop/stage/production/service/orders")).await;
    assert_eq!(s, 200);
    assert_eq!(b["serviceName"], "orders");

    // Updating the shipyard: new sequences are fine and take effect at once...
    let extended = SHIPYARD.replacen(
        "          tasks:\n            - name: deployment\n",
        "          tasks:\n            - name: deployment\n        - name: hotfix\n          tasks:\n            - name: patch\n",
        1,
    );
    let (s, b) = client.put(&format!("{CP}/project"), json!({ "name": "sockshop", "shipyard": b64(&extended) })).await;
    assert_eq!(s, 201, "{b}");
    let (_, p) = client.get(&format!("{CP}/project/sockshop")).await;
    assert_eq!(p["shipyard"], extended);
    let ctx = client
        .send(json!({ "type": "sh.keptn.event.dev.hotfix.triggered", "source": "t",
                      "data": { "project": "sockshop", "service": "carts" } }))
        .await;
    let patch = client.wait_for(&ctx, "sh.keptn.event.patch.triggered", std::time::Duration::from_secs(5)).await;
    assert_eq!(patch["data"]["stage"], "dev");
    // ...but the set of stages is fixed (keptn: 400), and the old shipyard stays.
    for (what, changed) in [
        (
            "added stage",
            extended
                .replace("    - name: production\n", "    - name: qa\n      sequences: []\n    - name: production\n"),
        ),
        ("renamed stage", extended.replace("- name: production", "- name: prod")),
        ("removed stage", "apiVersion: spec.keptn.sh/0.2.3\nspec:\n  stages:\n    - name: dev\n".to_string()),
    ] {
        let (s, b) =
            client.put(&format!("{CP}/project"), json!({ "name": "sockshop", "shipyard": b64(&changed) })).await;
        assert_eq!(s, 400, "{what}: {b}");
        assert!(b["message"].as_str().unwrap().contains("stages"), "{what}: {b}");
    }
    let (_, p) = client.get(&format!("{CP}/project/sockshop")).await;
    assert_eq!(p["shipyard"], extended, "a refused update changes nothing");
    let (s, _) = client.put(&format!("{CP}/project"), json!({ "name": "sockshop" })).await;
    assert_eq!(s, 201, "PUT without a shipyard is accepted (gitCredentials-only update)");
    let (_, p) = client.get(&format!("{CP}/project/sockshop")).await;
    assert_eq!(p["shipyard"], extended);
    let (s, b) = client.put(&format!("{CP}/project"), json!({ "name": "nope", "shipyard": b64(SHIPYARD) })).await;
    assert_eq!(s, 404, "{b}");

    // Deleting a service.
    let (s, b) = client.delete(&format!("{CP}/project/sockshop/service/orders")).await;
    assert_eq!(s, 200, "{b}");
    let (s, _) = client.get(&format!("{CP}/project/sockshop/stage/dev/service/orders")).await;
    assert_eq!(s, 404);
    let (s, b) = client.delete(&format!("{CP}/project/sockshop/service/orders")).await;
    assert_eq!((s, &b["code"]), (404, &json!(404)), "{b}");
    let (s, _) = client.delete(&format!("{CP}/project/nope/service/orders")).await;
    assert_eq!(s, 404);
    assert_eq!(system_events(&client, "sockshop", "service.delete.started").await.len(), 1);
    let deleted = system_events(&client, "sockshop", "service.delete.finished").await;
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["data"]["service"], "orders");
    let (s, b) = client
        .post("/api/v1/event", json!({ "type": "sh.keptn.event.dev.delivery.triggered", "data": { "project": "sockshop", "service": "orders" } }))
        .await;
    assert_eq!(s, 404, "a deleted service takes no events: {b}");
    let (_, p) = client.get(&format!("{CP}/project/sockshop")).await;
    assert_eq!(p["stages"][2]["services"].as_array().unwrap().len(), 1);

    // Deleting the project.
    let (s, b) = client.delete(&format!("{CP}/project/sockshop")).await;
    assert_eq!(s, 200, "{b}");
    assert!(b["message"].as_str().is_some_and(|m| !m.is_empty()), "{b}");
    let (s, b) = client.get(&format!("{CP}/project/sockshop")).await;
    assert_eq!((s, &b["code"]), (404, &json!(404)));
    let (_, list) = client.get(&format!("{CP}/project")).await;
    assert_eq!(list["totalCount"], 0, "{list}");
    let (s, _) = client.delete(&format!("{CP}/project/sockshop")).await;
    assert_eq!(s, 404, "deleting twice");
    let (s, _) = client.get(&format!("{CP}/event/triggered/sh.keptn.event.patch.triggered?project=sockshop")).await;
    assert_eq!(s, 404);
    // The name is free again, and the new project starts empty.
    client.create_project("sockshop", SHIPYARD).await;
    let (_, p) = client.get(&format!("{CP}/project/sockshop")).await;
    assert_eq!(p["stages"][0]["services"], json!([]));
    assert_eq!(p["shipyard"], SHIPYARD);
    let (_, old) = client.get(&format!("/api/mongodb-datastore/event?keptnContext={ctx}")).await;
    assert_eq!(old["totalCount"], 0, "the old project's events are gone: {old}");
    let (_, open) = client.get(&format!("{CP}/event/triggered/sh.keptn.event.patch.triggered?project=sockshop")).await;
    assert_eq!(open["totalCount"], 0, "the old project's open tasks are gone");
    server.stop().await;
}

async fn project_pagination(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let client = server.client();
    for name in ["charlie", "alpha", "echo", "bravo", "delta"] {
        client.create_project(name, SHIPYARD).await;
    }
    let mut seen = Vec::new();
    let mut key = String::new();
    let mut pages = 0;
    loop {
        let (s, b) = client.get(&format!("{CP}/project?pageSize=2&nextPageKey={key}")).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["totalCount"], 5);
        let projects = b["projects"].as_array().unwrap();
        assert_eq!(b["pageSize"], projects.len());
        assert!(projects.len() <= 2);
        seen.extend(projects.iter().map(|p| p["projectName"].as_str().unwrap().to_string()));
        key = b["nextPageKey"].as_str().expect("nextPageKey is a string").to_string();
        pages += 1;
        if key == "0" {
            break;
        }
        assert!(pages < 5, "pagination does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, vec!["alpha", "bravo", "charlie", "delta", "echo"], "sorted by name, each once");
    let (_, b) = client.get(&format!("{CP}/project")).await;
    assert_eq!(b["projects"].as_array().unwrap().len(), 5, "default page size 20 holds all");
    assert_eq!(b["nextPageKey"], "0");
    let (_, b) = client.get(&format!("{CP}/project?pageSize=2&nextPageKey=2")).await;
    assert_eq!(b["projects"][0]["projectName"], "charlie");
    assert_eq!(b["nextPageKey"], "4");
    let (_, b) = client.get(&format!("{CP}/project?nextPageKey=10")).await;
    assert_eq!(b["projects"], json!([]));
    assert_eq!(b["totalCount"], 5);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_lifecycle_sqlite() {
    project_lifecycle(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_lifecycle_postgres() {
    project_lifecycle(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_pagination_sqlite() {
    project_pagination(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_pagination_postgres() {
    project_pagination(Db::Postgres).await;
}
