//! Event ingestion (`POST /api/v1/event`) and the reads integrations and scripts rely on: the
//! mongodb-datastore queries and the pull API for open `.triggered` events. SQLite and PostgreSQL.

mod support;

use serde_json::{Value, json};
use std::time::Duration;
use support::*;

const CP: &str = "/api/controlPlane/v1";
const DS: &str = "/api/mongodb-datastore/event";

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

/// The server writes every time as `YYYY-MM-DDTHH:MM:SS.mmmZ`: fixed width, so string order is time order.
fn time(e: &Value) -> String {
    let t = e["time"].as_str().unwrap_or_else(|| panic!("time must be a string: {e}")).to_string();
    assert_eq!(t.len(), 24, "keptn's time format: {t}");
    t
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok() && s.len() == 36
}

async fn event_by_id(client: &Client, id: &str) -> Value {
    let (s, b) = client.get(&format!("{DS}?eventID={id}")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["totalCount"], 1, "event {id}: {b}");
    b["events"][0].clone()
}

async fn latest_of_context(client: &Client, ctx: &str) -> Value {
    let (_, b) = client.get(&format!("{DS}?keptnContext={ctx}&pageSize=1")).await;
    b["events"][0].clone()
}

async fn ingestion(db: Db) {
    let Some((server, client)) = setup(db).await else { return };
    let problem = |ctx: Option<&str>| {
        let mut ev = json!({
            "specversion": "1.0", "id": "client-chosen-id", "time": "2001-01-01T00:00:00.000Z",
            "type": "sh.keptn.events.problem", "source": "https://example.com/monitoring",
            "data": { "project": "p", "stage": "dev", "service": "carts", "problem": { "problemTitle": "cpu" } },
        });
        if let Some(c) = ctx {
            ev["shkeptncontext"] = json!(c);
        }
        ev
    };
    // The server assigns id and time; it keeps source, type and data.
    let before = now_ms();
    let ctx = client.send(problem(Some("build-42"))).await;
    let stored = latest_of_context(&client, &ctx).await;
    assert_ne!(stored["id"], "client-chosen-id");
    assert!(is_uuid(stored["id"].as_str().unwrap()), "{stored}");
    let t = time(&stored);
    let (lo, hi) = (keptn_engine::format_time(before - 1000), keptn_engine::format_time(now_ms() + 1000));
    assert!(lo <= t && t <= hi, "time is the server's now ({lo}..{hi}): {stored}");
    assert_eq!(stored["source"], "https://example.com/monitoring");
    assert_eq!(stored["type"], "sh.keptn.events.problem");
    assert_eq!(stored["specversion"], "1.0");
    assert_eq!(stored["shkeptncontext"], ctx);
    assert_eq!(stored["data"]["problem"]["problemTitle"], "cpu");
    assert_eq!(event_by_id(&client, stored["id"].as_str().unwrap()).await, stored);

    // A non-UUID context maps to a stable UUID; another string maps elsewhere.
    assert!(is_uuid(&ctx), "keptnContext {ctx:?} must be a UUID");
    assert_eq!(client.send(problem(Some("build-42"))).await, ctx, "same string, same context");
    let other = client.send(problem(Some("build-43"))).await;
    assert!(is_uuid(&other));
    assert_ne!(other, ctx);
    let (_, b) = client.get(&format!("{DS}?keptnContext={ctx}")).await;
    assert_eq!(b["totalCount"], 2, "both build-42 events share the context: {b}");
    // A UUID is kept; none at all gets a fresh one each time.
    let given = "6f1a8a0e-4c2b-4d8e-9f00-0123456789ab";
    assert_eq!(client.send(problem(Some(given))).await, given);
    let (a, b) = (client.send(problem(None)).await, client.send(problem(None)).await);
    assert!(is_uuid(&a) && is_uuid(&b) && a != b, "{a} {b}");
    // The same through the control plane's path, and a default source.
    let mut ev = problem(Some("build-42"));
    ev.as_object_mut().unwrap().remove("source");
    let (s, r) = client.post(&format!("{CP}/event"), ev).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["keptnContext"], ctx);
    assert_eq!(latest_of_context(&client, &ctx).await["source"], "https://github.com/keptn/keptn/api");

    // A sequence trigger without data.stage takes the stage from its type.
    let ctx = client
        .send(json!({ "type": "sh.keptn.event.prod.delivery.triggered", "source": "cli",
                      "data": { "project": "p", "service": "carts" } }))
        .await;
    let triggered = client.wait_for(&ctx, "sh.keptn.event.prod.delivery.triggered", Duration::from_secs(5)).await;
    assert_eq!(triggered["data"]["stage"], "prod");
    let task = client.wait_for(&ctx, "sh.keptn.event.deployment.triggered", Duration::from_secs(5)).await;
    assert_eq!(task["data"]["stage"], "prod");
    assert_eq!(task["source"], "shipyard-controller");
    server.stop().await;
}

/// Sends an event and returns it as stored.
/// `scope` is (project, stage, service).
async fn put_event(
    client: &Client,
    ty: &str,
    scope: (&str, &str, &str),
    ctx: &str,
    source: &str,
    extra: Value,
) -> Value {
    let (project, stage, service) = scope;
    let mut ev = json!({
        "type": ty, "source": source, "shkeptncontext": ctx,
        "data": { "project": project, "stage": stage, "service": service, "labels": { "buildId": "42" } },
    });
    if let Some(t) = extra.get("triggeredid") {
        ev["triggeredid"] = t.clone();
    }
    keptn_formats::merge::merge(&mut ev["data"], extra.get("data").unwrap_or(&json!({})));
    client.send(ev).await;
    tokio::time::sleep(Duration::from_millis(3)).await; // distinct millisecond times
    latest_of_context(client, ctx).await
}

fn ids(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
}

async fn datastore_queries(db: Db) {
    let Some((server, client)) = setup(db).await else { return };
    let (a, b, c) = (
        "aaaaaaaa-0000-4000-8000-000000000001",
        "bbbbbbbb-0000-4000-8000-000000000002",
        "cccccccc-0000-4000-8000-000000000003",
    );
    let sli = "sh.keptn.event.get-sli.triggered";
    let e1 = put_event(&client, sli, ("p", "dev", "carts"), a, "lighthouse", json!({})).await;
    let e2 = put_event(&client, sli, ("p", "dev", "orders"), a, "lighthouse", json!({})).await;
    let e3 =
        put_event(&client, "sh.keptn.event.monitoring.configure", ("p", "prod", "carts"), b, "cli", json!({})).await;
    let e4 = put_event(&client, sli, ("q", "dev", "carts"), c, "other", json!({})).await;
    let e5 = put_event(
        &client,
        "sh.keptn.event.get-sli.finished",
        ("p", "prod", "carts"),
        b,
        "prometheus",
        json!({ "triggeredid": "t-1" }),
    )
    .await;

    // Everything, newest first (the model the filters are checked against).
    let (_, all) = client.get(&format!("{DS}?pageSize=100")).await;
    let all = all["events"].as_array().unwrap().clone();
    let times: Vec<String> = all.iter().map(time).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "sorted by time, newest first: {times:?}");
    assert_eq!(ids(&all[..5]), ids(&[e5.clone(), e4.clone(), e3.clone(), e2.clone(), e1.clone()]));

    type Pred = Box<dyn Fn(&Value) -> bool>;
    let eq = |field: &'static str, v: &'static str| -> Pred {
        Box::new(move |e: &Value| e.pointer(field) == Some(&json!(v)))
    };
    let (t2, t4) = (time(&e2), time(&e4));
    let (t2c, t4c, t2d, t4d) = (t2.clone(), t4.clone(), t2.clone(), t4.clone());
    let e2id = e2["id"].as_str().unwrap().to_string();
    let cases: Vec<(String, Pred)> = vec![
        ("project=p".into(), eq("/data/project", "p")),
        (
            "project=p&stage=dev".into(),
            Box::new(|e: &Value| e["data"]["project"] == "p" && e["data"]["stage"] == "dev"),
        ),
        (
            "project=q&service=carts".into(),
            Box::new(|e: &Value| e["data"]["project"] == "q" && e["data"]["service"] == "carts"),
        ),
        ("stage=prod".into(), eq("/data/stage", "prod")),
        (format!("keptnContext={a}"), eq("/shkeptncontext", a)),
        (format!("type={sli}"), eq("/type", sli)),
        ("source=lighthouse".into(), eq("/source", "lighthouse")),
        (format!("eventID={e2id}"), Box::new(move |e: &Value| e["id"] == json!(e2id))),
        (format!("fromTime={t2}"), Box::new(move |e: &Value| time(e) > t2c)),
        (format!("beforeTime={t4}&project=p"), Box::new(move |e: &Value| time(e) < t4c && e["data"]["project"] == "p")),
        (format!("fromTime={t2}&beforeTime={t4}"), Box::new(move |e: &Value| time(e) > t2d && time(e) < t4d)),
    ];
    for (query, pred) in &cases {
        let expected: Vec<Value> = all.iter().filter(|e| pred(e)).cloned().collect();
        assert!(!expected.is_empty() && expected.len() < all.len(), "{query} must select some but not all");
        let (s, got) = client.get(&format!("{DS}?{query}&pageSize=100")).await;
        assert_eq!(s, 200, "{query}: {got}");
        assert_eq!(ids(got["events"].as_array().unwrap()), ids(&expected), "{query}");
        assert_eq!(got["totalCount"], expected.len(), "{query}");
        assert_eq!(got["nextPageKey"], "0");
    }

    // root: only the first event of each context.
    let mut roots: Vec<Value> = Vec::new();
    for e in all.iter().rev() {
        if !roots.iter().any(|r| r["shkeptncontext"] == e["shkeptncontext"]) {
            roots.push(e.clone());
        }
    }
    roots.reverse();
    let (_, got) = client.get(&format!("{DS}?root=true&pageSize=100")).await;
    assert_eq!(ids(got["events"].as_array().unwrap()), ids(&roots), "root=true");
    assert!(ids(&roots).contains(&e1["id"].as_str().unwrap().to_string()));
    assert!(!ids(&roots).contains(&e2["id"].as_str().unwrap().to_string()), "e2 is not its context's first");
    let (_, got) = client.get(&format!("{DS}?root=true&keptnContext={b}")).await;
    assert_eq!(ids(got["events"].as_array().unwrap()), ids(std::slice::from_ref(&e3)));

    // Paging: pageSize + nextPageKey walk the same list exactly once.
    let mut walked = Vec::new();
    let mut key = String::new();
    loop {
        let (s, page) = client.get(&format!("{DS}?project=p&pageSize=2&nextPageKey={key}")).await;
        assert_eq!(s, 200, "{page}");
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= 2);
        assert_eq!(page["pageSize"], events.len());
        walked.extend(events.iter().cloned());
        key = page["nextPageKey"].as_str().unwrap().to_string();
        if key == "0" {
            break;
        }
    }
    let all_p: Vec<Value> = all.iter().filter(|e| e["data"]["project"] == "p").cloned().collect();
    assert!(all_p.len() > 4, "enough events for several pages");
    assert_eq!(ids(&walked), ids(&all_p));

    // lighthouse's query: /event/type/{type}?filter=data.project:p AND data.service:s
    let by_type = |ty: &str, filter: &str| format!("{DS}/type/{ty}?filter={}", filter.replace(' ', "%20"));
    let (s, got) = client.get(&by_type(sli, "data.project:p AND data.service:carts")).await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(ids(got["events"].as_array().unwrap()), ids(std::slice::from_ref(&e1)));
    let (_, got) = client.get(&by_type(sli, "data.project:p AND data.stage:dev")).await;
    assert_eq!(ids(got["events"].as_array().unwrap()), ids(&[e2.clone(), e1.clone()]));
    let (_, got) = client.get(&by_type(sli, &format!("shkeptncontext:{c}"))).await;
    assert_eq!(ids(got["events"].as_array().unwrap()), ids(std::slice::from_ref(&e4)));
    let (_, got) = client.get(&by_type(sli, "data.project:p AND data.service:carts,orders")).await;
    assert_eq!(got["events"].as_array().unwrap().len(), 2, "v1,v2 means either: {got}");
    let (_, got) = client.get(&by_type(sli, "data.project:p AND data.labels.buildId:42")).await;
    assert_eq!(got["events"].as_array().unwrap().len(), 2, "a filter on any field: {got}");
    let (_, got) = client.get(&by_type(sli, "data.project:p AND data.labels.buildId:43")).await;
    assert_eq!(got["events"], json!([]), "a filter on any field: {got}");
    let (_, got) = client.get(&format!("{}&limit=1", by_type(sli, "data.project:p"))).await;
    assert_eq!(ids(got["events"].as_array().unwrap()), ids(std::slice::from_ref(&e2)), "limit, newest first");

    // excludeInvalidated: an evaluation whose .triggered was invalidated is not a comparison candidate.
    let evf = "sh.keptn.event.evaluation.finished";
    let f1 = put_event(
        &client,
        evf,
        ("p", "dev", "carts"),
        a,
        "lighthouse",
        json!({ "triggeredid": "tr-1", "data": { "result": "pass" } }),
    )
    .await;
    let f2 = put_event(
        &client,
        evf,
        ("p", "dev", "carts"),
        a,
        "lighthouse",
        json!({ "triggeredid": "tr-2", "data": { "result": "fail" } }),
    )
    .await;
    put_event(
        &client,
        "sh.keptn.event.evaluation.invalidated",
        ("p", "dev", "carts"),
        a,
        "bridge",
        json!({ "triggeredid": "tr-2" }),
    )
    .await;
    let filter = by_type(evf, "data.project:p AND data.stage:dev AND data.service:carts");
    let (_, got) = client.get(&filter).await;
    assert_eq!(ids(got["events"].as_array().unwrap()), ids(&[f2.clone(), f1.clone()]));
    let (_, got) = client.get(&format!("{filter}&excludeInvalidated=true")).await;
    assert_eq!(ids(got["events"].as_array().unwrap()), ids(&[f1]));
    server.stop().await;
}

async fn open_triggered_queries(db: Db) {
    let Some((server, client)) = setup(db).await else { return };
    let trigger = |project: &str, service: &str| {
        json!({ "type": "sh.keptn.event.dev.delivery.triggered", "source": "t",
                "data": { "project": project, "stage": "dev", "service": service } })
    };
    let c1 = client.send(trigger("p", "carts")).await;
    let c2 = client.send(trigger("p", "orders")).await;
    let c3 = client.send(trigger("q", "carts")).await;
    let ty = "sh.keptn.event.deployment.triggered";
    let open = eventually(Duration::from_secs(5), "three open deployments", || async {
        let (_, b) = client.get(&format!("{CP}/event/triggered/{ty}")).await;
        (b["totalCount"] == 3).then_some(b)
    })
    .await;
    let contexts: Vec<&str> =
        open["events"].as_array().unwrap().iter().map(|e| e["shkeptncontext"].as_str().unwrap()).collect();
    assert_eq!(contexts, vec![c1.as_str(), c2.as_str(), c3.as_str()], "across projects, oldest first");
    let q = |query: &str| {
        let client = client.clone();
        let path = format!("{CP}/event/triggered/{ty}?{query}");
        async move {
            let (s, b) = client.get(&path).await;
            assert_eq!(s, 200, "{path}: {b}");
            b
        }
    };
    let b = q("project=p").await;
    assert_eq!(b["totalCount"], 2);
    let b = q("project=p&service=orders").await;
    assert_eq!(b["events"][0]["shkeptncontext"], c2);
    assert_eq!(b["totalCount"], 1);
    let b = q("project=p&stage=prod").await;
    assert_eq!(b["totalCount"], 0);
    let id = open["events"][2]["id"].as_str().unwrap();
    let b = q(&format!("eventID={id}")).await;
    assert_eq!(b["events"][0]["shkeptncontext"], c3);
    let b = q("project=p&pageSize=1").await;
    assert_eq!(
        (b["events"].as_array().unwrap().len(), &b["nextPageKey"], &b["totalCount"]),
        (1, &json!("1"), &json!(2))
    );
    let b = q("project=p&pageSize=1&nextPageKey=1").await;
    assert_eq!(b["events"][0]["shkeptncontext"], c2);
    assert_eq!(b["nextPageKey"], "0");
    // Sequence .triggered events are open too, under their own type; answered tasks close.
    let b = q("project=q").await;
    let task = b["events"][0].clone();
    let seq = client.get(&format!("{CP}/event/triggered/sh.keptn.event.dev.delivery.triggered?project=q")).await.1;
    assert_eq!(seq["totalCount"], 1, "{seq}");
    client.answer("helm", &task, Some("pass")).await;
    client.wait_for(&c3, "sh.keptn.event.dev.delivery.finished", Duration::from_secs(5)).await;
    assert_eq!(q("project=q").await["totalCount"], 0);
    let seq = client.get(&format!("{CP}/event/triggered/sh.keptn.event.dev.delivery.triggered?project=q")).await.1;
    assert_eq!(seq["totalCount"], 0, "a finished sequence is no longer open: {seq}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingestion_sqlite() {
    ingestion(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingestion_postgres() {
    ingestion(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datastore_queries_sqlite() {
    datastore_queries(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datastore_queries_postgres() {
    datastore_queries(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_triggered_queries_sqlite() {
    open_triggered_queries(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_triggered_queries_postgres() {
    open_triggered_queries(Db::Postgres).await;
}
