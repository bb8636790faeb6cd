//! Integrations ("uniform") over HTTP: registration and re-registration, heartbeat, filters,
//! subscription CRUD, error logs, push delivery with retries; and `/metrics`, `/api/v1/metadata`.
//! SQLite and PostgreSQL where storage matters.

mod support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

const CP: &str = "/api/controlPlane/v1";
const REG: &str = "/api/controlPlane/v1/uniform/registration";

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
"#;

fn registration(name: &str, namespace: &str, hostname: &str, version: &str, subscriptions: Value) -> Value {
    json!({
        "name": name,
        "metadata": {
            "hostname": hostname, "integrationversion": version, "distributorversion": version,
            "location": "remote-execution-plane",
            "kubernetesmetadata": { "namespace": namespace, "podname": format!("{name}-abc"), "deploymentname": name },
        },
        "subscriptions": subscriptions,
    })
}

/// (name, namespace) of the listed integrations, without the server's built-in ones.
fn names(list: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = list
        .as_array()
        .unwrap_or_else(|| panic!("a plain JSON array: {list}"))
        .iter()
        .filter(|i| i["metadata"]["hostname"] != "built-in")
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_string(),
                i["metadata"]["kubernetesmetadata"]["namespace"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    v.sort();
    v
}

async fn registration_and_heartbeat(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let client = server.client();
    let test_sub =
        json!([{ "event": "sh.keptn.event.test.triggered", "filter": { "projects": ["p"], "stages": ["dev"] } }]);
    let (s, b) = client.post(REG, registration("jmeter-service", "keptn", "node-1", "1.4.5", test_sub)).await;
    assert_eq!(s, 201, "{b}");
    // keptn's id: hex SHA1 of "<name>-<namespace>-<nodename>".
    let id = "f3cb613640741d260b8ed8da183e64a79867ea46";
    assert_eq!(b, json!({ "id": id }));
    let (s, i) = client.get(&format!("{REG}/{id}")).await;
    assert_eq!(s, 200, "{i}");
    assert_eq!(i["id"], id);
    assert_eq!(i["name"], "jmeter-service");
    assert_eq!(i["metadata"]["kubernetesmetadata"]["deploymentname"], "jmeter-service");
    let first_seen = i["metadata"]["lastseen"].as_str().unwrap().to_string();
    assert_eq!(first_seen.len(), 24, "an ISO time: {first_seen}");
    let subs = i["subscriptions"].as_array().unwrap();
    assert_eq!(subs.len(), 1);
    let sub_id = subs[0]["id"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&sub_id).is_ok(), "the server gives subscriptions a UUID: {sub_id}");
    assert_eq!(subs[0]["filter"]["stages"], json!(["dev"]));

    // Re-registration (a restarted pod, maybe on another node, with other env config): same
    // integration, same id; the control plane owns the subscriptions; version info is updated.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let deploy_sub = json!([{ "event": "sh.keptn.event.deployment.triggered", "filter": {} }]);
    let (s, b) = client.post(REG, registration("jmeter-service", "keptn", "node-2", "1.4.6", deploy_sub.clone())).await;
    assert_eq!((s, &b), (200, &json!({ "id": id })), "re-registration");
    let (_, i) = client.get(&format!("{REG}/{id}")).await;
    assert_eq!(i["subscriptions"].as_array().unwrap().len(), 1);
    assert_eq!(i["subscriptions"][0]["id"], sub_id, "subscriptions are kept as they were");
    assert_eq!(i["subscriptions"][0]["event"], "sh.keptn.event.test.triggered");
    assert_eq!(i["metadata"]["integrationversion"], "1.4.6");
    assert!(i["metadata"]["lastseen"].as_str().unwrap() > first_seen.as_str(), "lastseen moves on: {i}");
    let (_, all) = client.get(REG).await;
    assert_eq!(names(&all).len(), 1, "still one integration: {all}");

    // Another namespace is another integration.
    let q_sub = json!([{ "event": "sh.keptn.event.test.triggered", "filter": { "projects": ["q"] } }]);
    let (s, b) = client.post(REG, registration("jmeter-service", "other-ns", "node-1", "1.4.5", q_sub)).await;
    assert_eq!((s, &b), (201, &json!({ "id": "e5e2bb83dac1ac8a884740f752266573e03c03f1" })));
    let (s, b) = client.post(REG, registration("helm-service", "keptn", "node-1", "1.4.5", deploy_sub)).await;
    assert_eq!((s, &b), (201, &json!({ "id": "4a986e6ceedb358e0e34d062de1dea5ffc053b44" })));

    // Heartbeat: returns the whole integration (that is how clients learn their subscriptions).
    let (_, before) = client.get(&format!("{REG}/{id}")).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (s, pinged) = client.put(&format!("{REG}/{id}/ping"), json!({})).await;
    assert_eq!(s, 200, "{pinged}");
    assert_eq!(pinged["id"], id);
    assert_eq!(pinged["subscriptions"], before["subscriptions"]);
    assert!(pinged["metadata"]["lastseen"].as_str().unwrap() > before["metadata"]["lastseen"].as_str().unwrap());
    let (_, after) = client.get(&format!("{REG}/{id}")).await;
    assert_eq!(after["metadata"]["lastseen"], pinged["metadata"]["lastseen"], "the ping is stored");
    let (s, b) = client.put(&format!("{REG}/0123456789abcdef/ping"), json!({})).await;
    assert_eq!((s, &b["code"]), (404, &json!(404)), "unknown id: {b}");

    // Filters; the answer is a plain array.
    let q = |query: &str| {
        let client = client.clone();
        let path = format!("{REG}?{query}");
        async move {
            let (s, b) = client.get(&path).await;
            assert_eq!(s, 200, "{path}: {b}");
            names(&b)
        }
    };
    let (jk, jo, hk) = (("jmeter-service", "keptn"), ("jmeter-service", "other-ns"), ("helm-service", "keptn"));
    assert_eq!(q("").await, pairs(&[jk, jo, hk]));
    assert_eq!(q("name=jmeter-service").await, pairs(&[jk, jo]));
    assert_eq!(q("namespace=other-ns").await, pairs(&[jo]));
    assert_eq!(q(&format!("id={id}")).await, pairs(&[jk]));
    assert_eq!(q("project=p").await, pairs(&[jk, hk]), "filters match projects named in subscriptions, or none");
    assert_eq!(q("project=q").await, pairs(&[jo, hk]));
    assert_eq!(q("project=p&stage=prod").await, pairs(&[hk]));
    assert_eq!(q("name=nope").await, vec![]);
    assert_eq!(q("hostname=node-1").await, pairs(&[jo, hk]), "jmeter/keptn moved to node-2");

    // Refused registrations.
    for (body, what) in [
        (json!({ "metadata": { "hostname": "h" } }), "no name"),
        (
            json!({ "name": "x", "subscriptions": [{ "event": "e", "filter": { "services": ["carts"] } }] }),
            "services without stages",
        ),
        (json!({ "name": "x", "subscriptions": [{ "filter": {} }] }), "subscription without event"),
        (json!({ "name": "x", "pushURL": "ftp://example.com" }), "non-HTTP push URL"),
    ] {
        let (s, b) = client.post(REG, body).await;
        assert_eq!((s, &b["code"]), (400, &json!(400)), "{what}: {b}");
    }
    assert_eq!(q("").await.len(), 3, "nothing registered by refused requests");

    // Unregister.
    let (s, _) = client.delete(&format!("{REG}/{id}")).await;
    assert_eq!(s, 200);
    let (s, _) = client.get(&format!("{REG}/{id}")).await;
    assert_eq!(s, 404);
    let (s, _) = client.delete(&format!("{REG}/{id}")).await;
    assert_eq!(s, 404);
    let (s, _) = client.put(&format!("{REG}/{id}/ping"), json!({})).await;
    assert_eq!(s, 404, "an unregistered integration must register again");
    server.stop().await;
}

async fn subscription_crud(db: Db) {
    // keptn's own webhook-service registers here, so not the built-in one of that name.
    let Some(server) = TestServer::start_tuned(db, |c| c.integrations.retain(|k| k != "webhook")).await else {
        return;
    };
    let client = server.client();
    let (s, b) = client.post(REG, registration("webhook-service", "keptn", "node-1", "1.0.0", json!([]))).await;
    assert_eq!(s, 201, "{b}");
    let id = b["id"].as_str().unwrap().to_string();
    let subs = format!("{REG}/{id}/subscription");

    let (s, b) = client
        .post(&subs, json!({ "event": "sh.keptn.event.deployment.triggered", "filter": { "projects": ["p"] } }))
        .await;
    assert_eq!(s, 201, "{b}");
    let sid = b["id"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&sid).is_ok());
    let (s, list) = client.get(&subs).await;
    assert_eq!(s, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (s, one) = client.get(&format!("{subs}/{sid}")).await;
    assert_eq!(s, 200, "{one}");
    assert_eq!(one, list[0]);
    assert_eq!(one["filter"]["projects"], json!(["p"]));

    // PUT replaces (keptn answers 201); the id stays.
    let updated = json!({ "event": "sh.keptn.event.test.triggered", "filter": { "projects": ["p"], "stages": ["dev"], "services": ["carts"] } });
    let (s, b) = client.put(&format!("{subs}/{sid}"), updated).await;
    assert_eq!(s, 201, "{b}");
    let (_, one) = client.get(&format!("{subs}/{sid}")).await;
    assert_eq!(one["id"], sid);
    assert_eq!(one["event"], "sh.keptn.event.test.triggered");
    assert_eq!(one["filter"]["services"], json!(["carts"]));
    let (_, pinged) = client.put(&format!("{REG}/{id}/ping"), json!({})).await;
    assert_eq!(pinged["subscriptions"][0]["event"], "sh.keptn.event.test.triggered", "ping reports the change");
    // PUT of an unknown subscription id creates it (upsert).
    let other = "9e8d7c6b-5a49-4838-a726-150f0e0d0c0b";
    let (s, _) = client.put(&format!("{subs}/{other}"), json!({ "event": "sh.keptn.event.release.triggered" })).await;
    assert_eq!(s, 201);
    let (_, list) = client.get(&subs).await;
    assert_eq!(list.as_array().unwrap().len(), 2);

    // filter.services needs filter.stages.
    let bad = json!({ "event": "sh.keptn.event.test.triggered", "filter": { "services": ["carts"] } });
    let (s, b) = client.post(&subs, bad.clone()).await;
    assert_eq!(s, 400, "{b}");
    assert!(b["message"].as_str().unwrap().contains("stages"), "{b}");
    let (s, _) = client.put(&format!("{subs}/{sid}"), bad).await;
    assert_eq!(s, 400);
    let (_, one) = client.get(&format!("{subs}/{sid}")).await;
    assert_eq!(one["filter"]["stages"], json!(["dev"]), "a refused PUT changes nothing");

    // Delete.
    let (s, _) = client.delete(&format!("{subs}/{sid}")).await;
    assert_eq!(s, 200);
    let (s, _) = client.get(&format!("{subs}/{sid}")).await;
    assert_eq!(s, 404);
    let (s, _) = client.delete(&format!("{subs}/{sid}")).await;
    assert_eq!(s, 404);
    let (_, list) = client.get(&subs).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], other);

    // Unknown integration.
    let unknown = format!("{REG}/0000000000000000000000000000000000000000/subscription");
    assert_eq!(client.get(&unknown).await.0, 404);
    assert_eq!(client.post(&unknown, json!({ "event": "sh.keptn.>" })).await.0, 404);
    assert_eq!(client.put(&format!("{unknown}/{other}"), json!({ "event": "sh.keptn.>" })).await.0, 404);
    assert_eq!(client.delete(&format!("{unknown}/{other}")).await.0, 404);
    server.stop().await;
}

async fn error_logs(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let client = server.client();
    let log = |iid: &str, message: &str, time: Option<&str>| {
        let mut l = json!({ "integrationid": iid, "message": message, "shkeptncontext": "c", "task": "test", "triggeredid": "t" });
        if let Some(t) = time {
            l["time"] = json!(t);
        }
        l
    };
    let (s, b) = client
        .post(
            &format!("{CP}/log"),
            json!({ "logs": [
            log("a", "a1", Some("2026-01-01T10:00:00.000Z")),
            log("a", "a2", Some("2026-01-01T10:05:00.000Z")),
            log("b", "b1", None),
        ] }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let q = |query: &str| {
        let client = client.clone();
        let path = format!("{CP}/log?{query}");
        async move {
            let (s, b) = client.get(&path).await;
            assert_eq!(s, 200, "{path}: {b}");
            b
        }
    };
    let messages = |b: &Value| -> Vec<String> {
        b["logs"].as_array().unwrap().iter().map(|l| l["message"].as_str().unwrap().to_string()).collect()
    };
    let all = q("").await;
    assert_eq!(messages(&all), vec!["b1", "a2", "a1"], "newest first; a missing time is now");
    assert_eq!(all["totalCount"], 3);
    assert!(all["logs"][0]["time"].as_str().is_some_and(|t| t.len() == 24), "{all}");
    assert_eq!(all["logs"][2]["shkeptncontext"], "c");
    assert_eq!(messages(&q("integrationId=a").await), vec!["a2", "a1"]);
    // The Bridge's "unread problems": logs of one integration since a time (exclusive).
    assert_eq!(messages(&q("integrationId=a&fromTime=2026-01-01T10:00:00.000Z").await), vec!["a2"]);
    assert_eq!(messages(&q("integrationId=a&beforeTime=2026-01-01T10:05:00.000Z").await), vec!["a1"]);
    let page = q("pageSize=2").await;
    assert_eq!((messages(&page), &page["nextPageKey"]), (vec!["b1".to_string(), "a2".into()], &json!(2)));

    // A bad entry rejects the whole batch.
    for (body, what) in [
        (json!({ "logs": [log("a", "x", None), { "message": "no integration" }] }), "missing integrationid"),
        (json!({ "logs": [log("a", "y", Some("yesterday"))] }), "bad time"),
    ] {
        let (s, b) = client.post(&format!("{CP}/log"), body).await;
        assert_eq!(s, 400, "{what}: {b}");
    }
    assert_eq!(q("").await["totalCount"], 3, "nothing of a refused batch was stored");

    let (s, _) = client.delete(&format!("{CP}/log?integrationId=a")).await;
    assert_eq!(s, 200);
    assert_eq!(messages(&q("").await), vec!["b1"]);
    let (s, _) = client.delete(&format!("{CP}/log")).await;
    assert_eq!(s, 200);
    assert_eq!(q("").await["totalCount"], 0);
    server.stop().await;
}

/// An HTTP endpoint that refuses the first `failures` requests with 500, then accepts.
async fn flaky_endpoint(failures: usize) -> (String, Arc<Mutex<Vec<(Instant, Value)>>>, tokio::task::JoinHandle<()>) {
    use axum::routing::post;
    let hits: Arc<Mutex<Vec<(Instant, Value)>>> = Arc::default();
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/events",
        post(move |axum::Json(ev): axum::Json<Value>| {
            let h = h.clone();
            async move {
                let mut hits = h.lock().unwrap();
                hits.push((Instant::now(), ev));
                if hits.len() <= failures { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, hits, task)
}

async fn push_delivery(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let client = server.client();
    client.create_project("p", SHIPYARD).await;
    client.create_service("p", "carts").await;
    let (url, hits, endpoint) = flaky_endpoint(2).await;
    let mut reg = registration(
        "pusher",
        "keptn",
        "node-1",
        "1.0.0",
        json!([{ "event": "sh.keptn.event.deployment.triggered", "filter": { "projects": ["p"] } }]),
    );
    reg["pushURL"] = json!(url);
    let (s, b) = client.post(REG, reg).await;
    assert_eq!(s, 201, "{b}");
    let id = b["id"].as_str().unwrap().to_string();
    let (_, i) = client.get(&format!("{REG}/{id}")).await;
    assert_eq!(i["pushURL"], url);
    let sid = i["subscriptions"][0]["id"].as_str().unwrap().to_string();

    let ctx = client
        .send(json!({ "type": "sh.keptn.event.dev.delivery.triggered", "source": "t", "data": { "project": "p", "stage": "dev", "service": "carts" } }))
        .await;
    let triggered = client.wait_for(&ctx, "sh.keptn.event.deployment.triggered", Duration::from_secs(5)).await;
    // 500, 500, then 200: the event arrives on the third attempt, and only then stops.
    eventually(Duration::from_secs(5), "three delivery attempts", || async {
        (hits.lock().unwrap().len() >= 3).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = hits.lock().unwrap().clone();
    assert_eq!(got.len(), 3, "no more attempts after a 200");
    for (_, ev) in &got {
        assert_eq!(ev["id"], triggered["id"], "the same event each time");
        assert_eq!(ev["type"], "sh.keptn.event.deployment.triggered");
        assert_eq!(ev["data"]["temporaryData"]["distributor"]["subscriptionID"], sid);
    }
    let gaps: Vec<Duration> = got.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(gaps.iter().all(|g| *g >= Duration::from_millis(90)), "retries back off: {gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(390), "the backoff grows (100 ms, then 400 ms): {gaps:?}");

    // Subscriptions edited through the API drive push delivery at once.
    let (s, _) = client
        .put(
            &format!("{REG}/{id}/subscription/{sid}"),
            json!({ "event": "sh.keptn.event.dev.delivery.finished", "filter": { "projects": ["p"] } }),
        )
        .await;
    assert_eq!(s, 201);
    let (started, finished) = answers("helm", &triggered, "pass", json!({}));
    client.send(started).await;
    client.send(finished).await;
    let done = client.wait_for(&ctx, "sh.keptn.event.dev.delivery.finished", Duration::from_secs(5)).await;
    let pushed = eventually(Duration::from_secs(5), "the pushed .finished", || async {
        hits.lock()
            .unwrap()
            .iter()
            .find(|(_, e)| e["type"] == "sh.keptn.event.dev.delivery.finished")
            .map(|(_, e)| e.clone())
    })
    .await;
    assert_eq!(pushed["id"], done["id"]);
    assert_eq!(hits.lock().unwrap().len(), 4, "nothing else was pushed (the old subscription is gone)");
    endpoint.abort();
    server.stop().await;
}

/// One Prometheus sample value (first series whose line starts with `prefix`).
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find(|l| l.starts_with(prefix))?.rsplit(' ').next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_metadata() {
    let server = TestServer::start(Db::Sqlite).await.expect("sqlite");
    let client = server.client();
    client.create_project("p", SHIPYARD).await;
    client.create_service("p", "carts").await;
    let ctx = client
        .send(json!({ "type": "sh.keptn.event.dev.delivery.triggered", "source": "t", "data": { "project": "p", "stage": "dev", "service": "carts" } }))
        .await;
    client.wait_for(&ctx, "sh.keptn.event.deployment.triggered", Duration::from_secs(5)).await;

    let r = client.raw(reqwest::Method::GET, "/metrics", &[("x-token", &client.token)], None).await;
    assert_eq!(r.status, 200);
    assert!(r.content_type.starts_with("text/plain"), "{}", r.content_type);
    let text = r.body.as_str().expect("Prometheus text format").to_string();
    let events_in =
        sample(&text, "keptn_events_in_total").unwrap_or_else(|| panic!("keptn_events_in_total in:\n{text}"));
    // 4 system events + the trigger, at least (other tests in this process add more).
    assert!(events_in >= 5.0, "{events_in}");
    let events_out = sample(&text, "keptn_events_out_total").expect("keptn_events_out_total");
    assert!(
        events_out >= events_in,
        "every stored event goes out, plus what the engine emits: {events_out} < {events_in}"
    );
    assert!(text.contains("keptn_sequences{state=\"started\"}"), "sequence gauge by state:\n{text}");
    assert!(sample(&text, "keptn_task_hop_seconds_count").is_some_and(|n| n >= 1.0), "task hop histogram:\n{text}");
    assert!(text.contains("keptn_task_hop_seconds_bucket{le="), "{text}");

    let (s, m) = client.get("/api/v1/metadata").await;
    assert_eq!(s, 200);
    assert_eq!(m["keptnlabel"], "keptn");
    assert_eq!(m["shipyardversion"], "0.2.0");
    assert_eq!(m["automaticprovisioning"], false);
    for field in ["namespace", "keptnversion"] {
        assert!(m[field].as_str().is_some_and(|v| !v.is_empty()), "{field}: {m}");
    }
    // There is no Bridge: no version of one is claimed (keptn's field is optional).
    assert!(m.get("bridgeversion").is_none(), "{m}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_and_heartbeat_sqlite() {
    registration_and_heartbeat(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_and_heartbeat_postgres() {
    registration_and_heartbeat(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_crud_sqlite() {
    subscription_crud(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_crud_postgres() {
    subscription_crud(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_logs_sqlite() {
    error_logs(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_logs_postgres() {
    error_logs(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_delivery_sqlite() {
    push_delivery(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_delivery_postgres() {
    push_delivery(Db::Postgres).await;
}
