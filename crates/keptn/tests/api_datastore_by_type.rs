//! `GET /api/mongodb-datastore/event/type/{eventType}`: lighthouse's query for comparison
//! evaluations (`filter=data.project:p AND data.stage:s AND data.service:svc AND
//! data.result:pass,warning`, `excludeInvalidated=true`, `limit`). SQLite and PostgreSQL.

mod support;

use serde_json::{Value, json};
use std::time::Duration;
use support::*;

const DS: &str = "/api/mongodb-datastore/event";
const FINISHED: &str = "sh.keptn.event.evaluation.finished";
const INVALIDATED: &str = "sh.keptn.event.evaluation.invalidated";

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
    - name: prod
      sequences:
        - name: delivery
          tasks:
            - name: deployment
"#;

async fn setup(db: Db) -> Option<(TestServer, Client)> {
    let server = TestServer::start(db).await?;
    let client = server.client();
    for p in ["p", "q"] {
        client.create_project(p, SHIPYARD).await;
        client.create_service(p, "carts").await;
        client.create_service(p, "orders").await;
    }
    Some((server, client))
}

/// One evaluation's event as lighthouse sends it, in a context of its own.
fn evaluation(ty: &str, scope: (&str, &str, &str), triggeredid: &str, result: &str, source: &str) -> Value {
    let (project, stage, service) = scope;
    let mut data = json!({ "project": project, "stage": stage, "service": service });
    if !result.is_empty() {
        data["result"] = json!(result);
        data["status"] = json!("succeeded");
        data["evaluation"] = json!({ "score": 90, "result": result });
    }
    json!({
        "type": ty, "source": source, "shkeptncontext": uuid::Uuid::new_v4().to_string(),
        "triggeredid": triggeredid, "data": data,
    })
}

/// Sends an event and returns it as stored (with the server's id and time).
async fn store(client: &Client, event: Value) -> Value {
    let ctx = client.send(event).await;
    tokio::time::sleep(Duration::from_millis(3)).await; // distinct millisecond times
    let (s, b) = client.get(&format!("{DS}?keptnContext={ctx}&pageSize=1")).await;
    assert_eq!(s, 200, "{b}");
    b["events"][0].clone()
}

async fn finished(client: &Client, scope: (&str, &str, &str), triggeredid: &str, result: &str) -> Value {
    store(client, evaluation(FINISHED, scope, triggeredid, result, "lighthouse-service")).await
}

fn ids(events: &[&Value]) -> Vec<String> {
    events.iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
}

fn got_ids(body: &Value) -> Vec<String> {
    body["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events: {body}"))
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

fn by_type(ty: &str, filter: &str, rest: &str) -> String {
    format!("{DS}/type/{ty}?filter={}{rest}", filter.replace(' ', "%20"))
}

/// A successful by-type query: checks the response shape and newest-first order.
async fn query(client: &Client, filter: &str, rest: &str) -> Value {
    let path = by_type(FINISHED, filter, rest);
    let (s, b) = client.get(&path).await;
    assert_eq!(s, 200, "{path}: {b}");
    let events = b["events"].as_array().unwrap_or_else(|| panic!("{path}: {b}"));
    assert_eq!(b["pageSize"], events.len(), "{path}: {b}");
    assert_eq!(b["nextPageKey"], "0", "{path}: {b}");
    assert!(b["totalCount"].as_u64().unwrap() >= events.len() as u64, "{path}: {b}");
    let times: Vec<&str> = events.iter().map(|e| e["time"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{path}: newest first: {times:?}");
    b
}

async fn filters_in_lists_and_invalidation(db: Db) {
    let Some((server, client)) = setup(db).await else { return };
    let dev_carts = ("p", "dev", "carts");
    let e1 = finished(&client, dev_carts, "tr-1", "pass").await;
    let e2 = finished(&client, dev_carts, "tr-2", "fail").await;
    let e3 = finished(&client, ("p", "prod", "carts"), "tr-3", "warning").await;
    let e4 = finished(&client, dev_carts, "tr-4", "warning").await;
    let e5 = finished(&client, ("p", "dev", "orders"), "tr-5", "pass").await;
    // Same triggeredid as the invalidated e4, but in project q: not invalidated.
    let e6 = finished(&client, ("q", "dev", "carts"), "tr-4", "pass").await;
    let e7 = store(&client, evaluation(FINISHED, dev_carts, "tr-7", "pass", "https://example.com/lh")).await;
    // e4 is invalidated in p; tr-1 is invalidated only in q, so e1 stays a candidate.
    store(&client, evaluation(INVALIDATED, dev_carts, "tr-4", "", "bridge")).await;
    store(&client, evaluation(INVALIDATED, ("q", "dev", "carts"), "tr-1", "", "bridge")).await;

    let scope = "data.project:p AND data.stage:dev AND data.service:carts";
    let b = query(&client, scope, "").await;
    assert_eq!(got_ids(&b), ids(&[&e7, &e4, &e2, &e1]), "{b}");
    assert_eq!(b["totalCount"], 4);
    assert_eq!(b["events"][0]["data"]["result"], "pass", "whole events are returned: {b}");

    // lighthouse's query for comparison evaluations.
    let lighthouse = format!("{scope} AND data.result:pass,warning");
    let b = query(&client, &lighthouse, "").await;
    assert_eq!(got_ids(&b), ids(&[&e7, &e4, &e1]), "{b}");
    assert_eq!(b["totalCount"], 3);
    for flag in ["true", "True"] {
        let b = query(&client, &lighthouse, &format!("&excludeInvalidated={flag}")).await;
        assert_eq!(got_ids(&b), ids(&[&e7, &e1]), "invalidated e4 left out: {b}");
        assert_eq!(b["totalCount"], 2);
    }
    let b = query(&client, &lighthouse, "&excludeInvalidated=false").await;
    assert_eq!(got_ids(&b), ids(&[&e7, &e4, &e1]), "{b}");
    let b = query(&client, &lighthouse, "&excludeInvalidated=true&limit=1").await;
    assert_eq!(got_ids(&b), ids(&[&e7]), "{b}");
    assert_eq!((b["pageSize"].clone(), b["totalCount"].clone()), (json!(1), json!(2)), "{b}");
    let b = query(&client, scope, "&excludeInvalidated=true").await;
    assert_eq!(got_ids(&b), ids(&[&e7, &e2, &e1]), "without post-filters too: {b}");
    let b = query(&client, "data.project:q", "&excludeInvalidated=true").await;
    assert_eq!(got_ids(&b), ids(&[&e6]), "only the same project's invalidations count: {b}");
    let ctx4 = e4["shkeptncontext"].as_str().unwrap();
    let b = query(&client, &format!("shkeptncontext:{ctx4}"), "&excludeInvalidated=true").await;
    assert_eq!(got_ids(&b), Vec::<String>::new(), "{b}");
    assert_eq!(b["totalCount"], 0);

    // IN lists (comma = any of the values) on every indexed key.
    let b = query(&client, "data.project:p,q", "").await;
    assert_eq!(got_ids(&b), ids(&[&e7, &e6, &e5, &e4, &e3, &e2, &e1]), "project IN alone is enough: {b}");
    assert_eq!(b["totalCount"], 7);
    let b = query(&client, "data.project:q,p AND data.stage:dev AND data.service:carts", "").await;
    assert_eq!(got_ids(&b), ids(&[&e7, &e6, &e4, &e2, &e1]), "{b}");
    let b = query(&client, "data.project:p AND data.stage:dev,prod AND data.service:carts,orders", "").await;
    assert_eq!(got_ids(&b), ids(&[&e7, &e5, &e4, &e3, &e2, &e1]), "{b}");
    let b = query(&client, "data.project:p AND data.stage:prod,nowhere", "").await;
    assert_eq!(got_ids(&b), ids(&[&e3]), "{b}");
    let ctx = |e: &Value| e["shkeptncontext"].as_str().unwrap().to_string();
    let b = query(&client, &format!("shkeptncontext:{},{}", ctx(&e1), ctx(&e6)), "").await;
    assert_eq!(got_ids(&b), ids(&[&e6, &e1]), "{b}");
    let id = |e: &Value| e["id"].as_str().unwrap().to_string();
    let b = query(&client, &format!("data.project:p AND id:{},{},nope", id(&e2), id(&e5)), "").await;
    assert_eq!(got_ids(&b), ids(&[&e5, &e2]), "{b}");
    let b = query(&client, "data.project:p AND source:https://example.com/lh,nope", "").await;
    assert_eq!(got_ids(&b), ids(&[&e7]), "a value may contain a colon: {b}");
    let b = query(&client, "data.project:p,q AND triggeredid:tr-4", "").await;
    assert_eq!(got_ids(&b), ids(&[&e6, &e4]), "{b}");
    let b = query(&client, "data.project:p AND data.evaluation.score:90 AND data.result:warning", "").await;
    assert_eq!(got_ids(&b), ids(&[&e4, &e3]), "any field; numbers compare as their JSON text: {b}");
    let b = query(&client, "data.project:p AND data.project:q", "").await;
    assert_eq!(got_ids(&b), Vec::<String>::new(), "clauses are ANDed: {b}");

    // limit: newest first; totalCount counts every match, with and without post-filters.
    let b = query(&client, "data.project:p", "&limit=2").await;
    assert_eq!(got_ids(&b), ids(&[&e7, &e5]), "{b}");
    assert_eq!((b["pageSize"].clone(), b["totalCount"].clone()), (json!(2), json!(6)), "{b}");
    let b = query(&client, "data.project:p AND data.result:pass", "&limit=1").await;
    assert_eq!(got_ids(&b), ids(&[&e7]), "{b}");
    assert_eq!((b["pageSize"].clone(), b["totalCount"].clone()), (json!(1), json!(3)), "{b}");
    let b = query(&client, "data.project:p", "&limit=100").await;
    assert_eq!(b["pageSize"], 6, "{b}");
    // fromTime is exclusive.
    let b = query(&client, "data.project:p", &format!("&fromTime={}", e4["time"].as_str().unwrap())).await;
    assert_eq!(got_ids(&b), ids(&[&e7, &e5]), "{b}");
    // The path's type applies: the invalidated events are another type.
    let (s, b) = client.get(&by_type(INVALIDATED, "data.project:p,q", "")).await;
    assert_eq!((s, b["totalCount"].clone()), (200, json!(2)), "{b}");
    server.stop().await;
}

/// More non-matching events than any single read: older matches are still found and counted.
async fn older_matches_beyond_many_newer_events(db: Db) {
    let Some((server, client)) = setup(db).await else { return };
    let dev_carts = ("p", "dev", "carts");
    let old_pass = finished(&client, dev_carts, "old-1", "pass").await;
    let old_warning = finished(&client, ("p", "dev", "orders"), "old-2", "warning").await;
    let noise = 1100;
    let mut sends = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let client = client.clone();
        sends.spawn(async move {
            for i in (worker..noise).step_by(8) {
                client.send(evaluation(FINISHED, ("p", "dev", "carts"), &format!("n-{i}"), "fail", "lh")).await;
            }
        });
    }
    while let Some(done) = sends.join_next().await {
        done.unwrap();
    }
    let newest = finished(&client, dev_carts, "new-1", "pass").await;
    let filter = "data.project:p AND data.stage:dev AND data.service:carts,orders AND data.result:pass,warning";
    let b = query(&client, filter, "&excludeInvalidated=true").await;
    assert_eq!(got_ids(&b), ids(&[&newest, &old_warning, &old_pass]), "{b}");
    assert_eq!(b["totalCount"], 3);
    let b = query(&client, filter, "&limit=2").await;
    assert_eq!(got_ids(&b), ids(&[&newest, &old_warning]), "{b}");
    assert_eq!(b["totalCount"], 3);
    let b = query(&client, "data.project:p AND data.result:fail", "&limit=5").await;
    assert_eq!((b["pageSize"].clone(), b["totalCount"].clone()), (json!(5), json!(noise)), "{b}");
    let b = query(&client, "data.project:p", "&limit=1").await;
    assert_eq!(got_ids(&b), ids(&[&newest]), "{b}");
    assert_eq!(b["totalCount"], noise + 3);
    server.stop().await;
}

async fn bad_requests(db: Db) {
    let Some((server, client)) = setup(db).await else { return };
    let path = format!("{DS}/type/{FINISHED}");
    for (q, what, names) in [
        ("", "no filter", vec!["filter", "data.project", "shkeptncontext"]),
        ("?filter=", "empty filter", vec!["filter", "data.project"]),
        ("?filter=data.stage:dev", "no project or context", vec!["data.project", "shkeptncontext"]),
        ("?filter=data.stage:dev%20AND%20data.result:pass", "no project or context", vec!["data.project"]),
        ("?filter=data.project", "clause without a value", vec!["data.project", "key:value"]),
        ("?filter=:p", "clause without a key", vec!["key:value"]),
        ("?filter=data.project:p%20AND%20data.result:", "empty value", vec!["data.result", "key:v1,v2"]),
        ("?filter=data.project:p,,q", "empty value in a list", vec!["data.project", "key:v1,v2"]),
        ("?filter=data.project:p&limit=0", "limit 0", vec!["limit", "1 to 100"]),
        ("?filter=data.project:p&limit=101", "limit over 100", vec!["limit", "1 to 100"]),
        ("?filter=data.project:p&limit=ten", "limit not a number", vec!["limit", "1 to 100"]),
        ("?filter=data.project:p&excludeInvalidated=maybe", "not a boolean", vec!["excludeInvalidated", "true"]),
        ("?filter=data.project:p&fromTime=noon", "bad time", vec!["fromTime"]),
    ] {
        let r = client.raw(reqwest::Method::GET, &format!("{path}{q}"), &[("x-token", &client.token)], None).await;
        r.assert_error(400, what);
        let message = r.body["message"].as_str().unwrap();
        for name in names {
            assert!(message.contains(name), "{what}: the message names {name:?}: {message}");
        }
        assert!(!message.contains("pageSize"), "{what}: this operation has no pageSize: {message}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_in_lists_and_invalidation_sqlite() {
    filters_in_lists_and_invalidation(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_in_lists_and_invalidation_postgres() {
    filters_in_lists_and_invalidation(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_matches_beyond_many_newer_events_sqlite() {
    older_matches_beyond_many_newer_events(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_matches_beyond_many_newer_events_postgres() {
    older_matches_beyond_many_newer_events(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_sqlite() {
    bad_requests(Db::Sqlite).await;
}
