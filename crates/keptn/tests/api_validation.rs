//! The API's edges over HTTP: authentication on every endpoint, and bad input of every kind
//! answered with a 4xx `{"code","message"}` (never a 500, a panic or a dropped connection),
//! leaving the stored data intact. Pure HTTP validation: SQLite only.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::*;

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
            - name: test
    - name: prod
      sequences:
        - name: delivery
          triggeredOn:
            - event: dev.delivery.finished
          tasks:
            - name: deployment
"#;

const CP: &str = "/api/controlPlane/v1";

/// A server with project `p` (stages dev, prod) and service `carts`.
async fn server_with_project() -> (TestServer, Client) {
    let server = TestServer::start(Db::Sqlite).await.expect("sqlite always available");
    let client = server.client();
    client.create_project("p", SHIPYARD).await;
    client.create_service("p", "carts").await;
    (server, client)
}

/// The project and its service are still there, unchanged.
async fn assert_intact(client: &Client) {
    let (s, b) = client.get(&format!("{CP}/project")).await;
    assert_eq!(s, 200, "{b}");
    let names: Vec<&str> =
        b["projects"].as_array().unwrap().iter().map(|p| p["projectName"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["p"], "exactly the one valid project exists");
    let (s, b) = client.get(&format!("{CP}/project/p/stage/dev/service/carts")).await;
    assert_eq!(s, 200, "service carts still exists: {b}");
}

fn trigger(service: &str) -> Value {
    json!({
        "type": "sh.keptn.event.dev.delivery.triggered", "source": "test",
        "data": { "project": "p", "stage": "dev", "service": service },
    })
}

/// Every endpoint but the health checks (method, path, body).
fn protected_endpoints() -> Vec<(Method, String, Option<Value>)> {
    let ctx = "11111111-2222-3333-4444-555555555555";
    let id = "0000000000000000000000000000000000000000";
    let mut v: Vec<(Method, String, Option<Value>)> = vec![
        (Method::POST, "/api/v1/auth".into(), None),
        (Method::GET, "/api/v1/metadata".into(), None),
        (Method::POST, "/api/v1/event".into(), Some(trigger("carts"))),
        (Method::GET, "/api/mongodb-datastore/event?project=p".into(), None),
        (
            Method::GET,
            "/api/mongodb-datastore/event/type/sh.keptn.event.evaluation.finished?filter=data.project:p".into(),
            None,
        ),
        (Method::GET, "/metrics".into(), None),
        (Method::GET, "/api/openapi.json".into(), None),
    ];
    let cp: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, "/project", None),
        (Method::POST, "/project", Some(json!({ "name": "q", "shipyard": b64(SHIPYARD) }))),
        (Method::PUT, "/project", Some(json!({ "name": "p", "shipyard": b64(SHIPYARD) }))),
        (Method::GET, "/project/p", None),
        (Method::DELETE, "/project/p", None),
        (Method::GET, "/project/p/stage", None),
        (Method::GET, "/project/p/stage/dev", None),
        (Method::GET, "/project/p/stage/dev/service", None),
        (Method::GET, "/project/p/stage/dev/service/carts", None),
        (Method::POST, "/project/p/stage/dev/service/carts/evaluation", Some(json!({}))),
        (Method::POST, "/project/p/service", Some(json!({ "serviceName": "orders" }))),
        (Method::DELETE, "/project/p/service/carts", None),
        (Method::GET, "/event/triggered/sh.keptn.event.deployment.triggered", None),
        (Method::POST, "/event", Some(trigger("carts"))),
        (Method::GET, "/sequence/p", None),
        (Method::POST, "/sequence/p/CTX/control", Some(json!({ "state": "abort" }))),
        (Method::GET, "/sequence-execution?project=p", None),
        (Method::GET, "/uniform/registration", None),
        (Method::POST, "/uniform/registration", Some(json!({ "name": "x" }))),
        (Method::GET, "/uniform/registration/ID", None),
        (Method::DELETE, "/uniform/registration/ID", None),
        (Method::PUT, "/uniform/registration/ID/ping", None),
        (Method::GET, "/uniform/registration/ID/subscription", None),
        (Method::POST, "/uniform/registration/ID/subscription", Some(json!({ "event": "sh.keptn.>" }))),
        (Method::GET, "/uniform/registration/ID/subscription/SID", None),
        (Method::PUT, "/uniform/registration/ID/subscription/SID", Some(json!({ "event": "sh.keptn.>" }))),
        (Method::DELETE, "/uniform/registration/ID/subscription/SID", None),
        (Method::GET, "/log", None),
        (Method::POST, "/log", Some(json!({ "logs": [{ "integrationid": "x", "message": "m" }] }))),
        (Method::DELETE, "/log", None),
    ];
    for (m, p, b) in cp {
        let path = format!("{CP}{p}").replace("CTX", ctx).replace("SID", ctx).replace("ID", id);
        v.push((m, path, b));
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_but_health_needs_the_token() {
    let (server, client) = server_with_project().await;
    let token = client.token.clone();
    let wrong_same_length: String = token.chars().rev().collect();
    let bad_headers: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("x-token", "wrong")],
        vec![("x-token", wrong_same_length.as_str())],
        vec![("x-token", "")],
        vec![("authorization", "Bearer wrong")],
        vec![("authorization", token.as_str())], // no "Bearer " scheme
    ];
    for (method, path, body) in protected_endpoints() {
        for headers in &bad_headers {
            let mut h = headers.clone();
            h.push(("content-type", "application/json"));
            let bytes = body.as_ref().map(|b| serde_json::to_vec(b).unwrap());
            let r = client.raw(method.clone(), &path, &h, bytes).await;
            r.assert_error(401, &format!("{method} {path} with {headers:?}"));
            assert_eq!(r.body["message"], "unauthenticated or invalid credentials");
        }
    }
    // Nothing above reached a handler: no project deleted or created, no event stored.
    assert_intact(&client).await;
    let (_, b) = client.get(&format!("{CP}/project/q")).await;
    assert_eq!(b["code"], 404, "POST /project without a token must not create: {b}");
    let (_, b) = client.get("/api/mongodb-datastore/event?project=p&type=sh.keptn.event.dev.delivery.triggered").await;
    assert_eq!(b["totalCount"], 0, "an unauthenticated event must not be stored: {b}");
    let (_, b) = client.get(&format!("{CP}/log")).await;
    assert_eq!(b["totalCount"], 0);

    // `Authorization: Bearer <token>` (Prometheus, OAuth-style clients) is as good as x-token.
    let bearer = format!("Bearer {token}");
    for path in [
        "/api/v1/metadata".to_string(),
        "/metrics".into(),
        format!("{CP}/project/p"),
        format!("{CP}/uniform/registration"),
        "/api/mongodb-datastore/event?project=p".into(),
    ] {
        let r = client.raw(Method::GET, &path, &[("authorization", bearer.as_str())], None).await;
        assert_eq!(r.status, 200, "GET {path} with a bearer token: {r:?}");
    }
    let r = client.raw(Method::POST, "/api/v1/auth", &[("authorization", bearer.as_str())], None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = client.raw(Method::POST, "/api/v1/auth", &[("x-token", token.as_str())], None).await;
    assert_eq!(r.status, 200, "{r:?}");

    // Health checks need no token.
    for path in ["/health", "/api/health"] {
        let r = client.raw(Method::GET, path, &[], None).await;
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert_eq!(r.body["status"], "OK");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_400_json() {
    let (server, client) = server_with_project().await;
    let ctx = client.send(trigger("carts")).await;
    let (s, reg) = client
        .post(&format!("{CP}/uniform/registration"), json!({ "name": "svc", "metadata": { "hostname": "h" } }))
        .await;
    assert_eq!(s, 201, "{reg}");
    let iid = reg["id"].as_str().unwrap().to_string();
    let (s, sub) =
        client.post(&format!("{CP}/uniform/registration/{iid}/subscription"), json!({ "event": "sh.keptn.>" })).await;
    assert_eq!(s, 201, "{sub}");
    let sid = sub["id"].as_str().unwrap().to_string();

    // (method, path, a body of the right syntax but wrong JSON types)
    let endpoints: Vec<(Method, String, Value)> = vec![
        (Method::POST, format!("{CP}/project"), json!({ "name": 5, "shipyard": b64(SHIPYARD) })),
        (Method::PUT, format!("{CP}/project"), json!({ "name": "p", "shipyard": ["x"] })),
        (Method::POST, format!("{CP}/project/p/service"), json!({ "serviceName": ["orders"] })),
        (Method::POST, "/api/v1/event".into(), json!({ "type": 7, "data": {} })),
        (
            Method::POST,
            format!("{CP}/event"),
            json!({ "type": "sh.keptn.event.dev.delivery.triggered", "shkeptncontext": 1, "data": {} }),
        ),
        (Method::POST, format!("{CP}/sequence/p/{ctx}/control"), json!({ "state": true })),
        (Method::POST, format!("{CP}/uniform/registration"), json!({ "name": "x", "subscriptions": "all" })),
        (
            Method::POST,
            format!("{CP}/uniform/registration/{iid}/subscription"),
            json!({ "event": "e", "filter": { "projects": "p" } }),
        ),
        (Method::PUT, format!("{CP}/uniform/registration/{iid}/subscription/{sid}"), json!({ "event": 1 })),
        (Method::POST, format!("{CP}/log"), json!({ "logs": { "integrationid": "x" } })),
        (Method::POST, format!("{CP}/project/p/stage/dev/service/carts/evaluation"), json!({ "start": 1 })),
    ];
    for (method, path, wrong_types) in &endpoints {
        let evaluation = path.ends_with("/evaluation");
        let mut bodies: Vec<(&str, Vec<u8>)> = vec![
            ("malformed JSON", b"{not json".to_vec()),
            ("truncated JSON", b"{\"name\":".to_vec()),
            ("a JSON string", b"\"hello\"".to_vec()),
            ("a JSON number", b"42".to_vec()),
            ("wrong JSON types", serde_json::to_vec(wrong_types).unwrap()),
        ];
        if !evaluation {
            // The evaluation endpoint accepts an empty body (all defaults), as keptn's does.
            bodies.push(("an empty body", Vec::new()));
        }
        for (what, body) in bodies {
            let r = client.send_raw(method.clone(), path, &body).await;
            r.assert_error(400, &format!("{method} {path} with {what}"));
        }
    }
    // Nothing was changed by any of it.
    assert_intact(&client).await;
    let (_, i) = client.get(&format!("{CP}/uniform/registration/{iid}")).await;
    assert_eq!(i["subscriptions"].as_array().unwrap().len(), 1);
    assert_eq!(i["subscriptions"][0]["event"], "sh.keptn.>");
    let (_, logs) = client.get(&format!("{CP}/log")).await;
    assert_eq!(logs["totalCount"], 0);
    let state = client.sequence_state("p", &ctx).await;
    assert_eq!(state["state"], "started", "the running sequence was not touched: {state}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_names_and_shipyards_are_rejected_with_the_field() {
    let (server, client) = server_with_project().await;
    let create = |name: &str, shipyard: Value| {
        let client = client.clone();
        let name = name.to_string();
        async move { client.post(&format!("{CP}/project"), json!({ "name": name, "shipyard": shipyard })).await }
    };
    for bad in ["Sockshop", "", "1st", "my_project", "ends-", "with space", &"a".repeat(201)] {
        let (s, b) = create(bad, json!(b64(SHIPYARD))).await;
        assert_eq!((s, &b["code"]), (400, &json!(400)), "project name {bad:?}: {b}");
    }
    let cases: Vec<(&str, String, &str)> = vec![
        ("stage name", SHIPYARD.replace("- name: dev", "- name: Dev"), "spec.stages[0].name"),
        ("duplicate stage", SHIPYARD.replace("- name: prod", "- name: dev"), "spec.stages[1].name"),
        ("api version", SHIPYARD.replace("0.2.3", "0.1.7"), "apiVersion"),
        (
            "dangling trigger",
            SHIPYARD.replace("dev.delivery.finished", "qa.delivery.finished"),
            "spec.stages[1].sequences[0].triggeredOn[0].event",
        ),
        ("no stages", "apiVersion: spec.keptn.sh/0.2.3\nspec:\n  stages: []\n".into(), "spec.stages"),
        ("not YAML", "apiVersion: [".into(), "shipyard"),
        (
            "bad timeout",
            SHIPYARD.replace("- name: test", "- name: test\n              properties: { timeout: soon }"),
            "spec.stages[0].sequences[0].tasks[1].properties.timeout",
        ),
        // Durations past Go's maximum (keptn's parser) would overflow the engine's clock arithmetic.
        (
            "huge triggeredAfter",
            SHIPYARD.replace("- name: test", "- name: test\n              triggeredAfter: 99999999999999999999h"),
            "spec.stages[0].sequences[0].tasks[1].triggeredAfter",
        ),
        (
            "huge timeout",
            SHIPYARD.replace("- name: test", "- name: test\n              properties: { timeout: 9223371000000000s }"),
            "spec.stages[0].sequences[0].tasks[1].properties.timeout",
        ),
    ];
    for (what, yaml, field) in &cases {
        let (s, b) = create("newproj", json!(b64(yaml))).await;
        assert_eq!(s, 400, "{what}: {b}");
        let message = b["message"].as_str().unwrap();
        assert!(message.contains(field), "{what}: the message must name {field}: {message}");
    }
    let (s, b) = create("newproj", json!("%%% not base64 %%%")).await;
    assert_eq!(s, 400, "{b}");
    assert!(b["message"].as_str().unwrap().contains("base64"), "{b}");
    use base64::Engine as _;
    let (s, b) = create("newproj", json!(base64::engine::general_purpose::STANDARD.encode([0xff, 0xfe, 0x00]))).await;
    assert_eq!(s, 400, "non-UTF-8 shipyard: {b}");
    let (s, b) = client.post(&format!("{CP}/project"), json!({ "name": "newproj" })).await;
    assert_eq!(s, 400, "missing shipyard: {b}");
    assert!(b["message"].as_str().unwrap().contains("shipyard"), "{b}");
    let (s, b) = client.post(&format!("{CP}/project"), json!({ "shipyard": b64(SHIPYARD) })).await;
    assert_eq!(s, 400, "missing name: {b}");

    // Nothing half-created: no project, no system events for the rejected one.
    let (s, _) = client.get(&format!("{CP}/project/newproj")).await;
    assert_eq!(s, 404);
    let (_, ev) = client.get("/api/mongodb-datastore/event?project=newproj").await;
    assert_eq!(ev["totalCount"], 0, "a rejected project must leave no events: {ev}");

    // PUT with an invalid shipyard keeps the old one.
    let (s, b) = client.put(&format!("{CP}/project"), json!({ "name": "p", "shipyard": b64(&cases[0].1) })).await;
    assert_eq!(s, 400, "{b}");
    assert!(b["message"].as_str().unwrap().contains("spec.stages[0].name"), "{b}");
    let (_, p) = client.get(&format!("{CP}/project/p")).await;
    assert_eq!(p["shipyard"], SHIPYARD);

    for bad in ["Carts", "a b", "carts.v2", "-x", &"s".repeat(44), ""] {
        let (s, b) = client.post(&format!("{CP}/project/p/service"), json!({ "serviceName": bad })).await;
        assert_eq!(s, 400, "service name {bad:?}: {b}");
    }
    let (s, _) = client.post(&format!("{CP}/project/p/service"), json!({ "serviceName": "s".repeat(43) })).await;
    assert_eq!(s, 200, "43 characters are allowed");
    let (s, b) = client.post(&format!("{CP}/project/nope/service"), json!({ "serviceName": "x" })).await;
    assert_eq!(s, 404, "{b}");
    assert_intact(&client).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_checked_before_they_are_stored() {
    let (server, client) = server_with_project().await;
    let mut cases: Vec<(u16, &str, Value)> = vec![
        (
            404,
            "unknown project",
            json!({ "type": "sh.keptn.event.dev.delivery.triggered", "data": { "project": "nope", "service": "carts" } }),
        ),
        (
            404,
            "unknown stage",
            json!({ "type": "sh.keptn.event.qa.delivery.triggered", "data": { "project": "p", "service": "carts" } }),
        ),
        (
            404,
            "unknown service",
            json!({ "type": "sh.keptn.event.dev.delivery.triggered", "data": { "project": "p", "service": "orders" } }),
        ),
        (
            404,
            "unknown service on a task event",
            json!({ "type": "sh.keptn.event.test.finished", "triggeredid": "x", "data": { "project": "p", "stage": "dev", "service": "orders" } }),
        ),
        (
            400,
            ".finished without triggeredid",
            json!({ "type": "sh.keptn.event.deployment.finished", "data": { "project": "p", "stage": "dev", "service": "carts" } }),
        ),
        (
            400,
            ".started without triggeredid",
            json!({ "type": "sh.keptn.event.deployment.started", "data": { "project": "p", "stage": "dev", "service": "carts" } }),
        ),
        (
            400,
            "sequence without service",
            json!({ "type": "sh.keptn.event.dev.delivery.triggered", "data": { "project": "p" } }),
        ),
        (
            400,
            "sequence without project",
            json!({ "type": "sh.keptn.event.dev.delivery.triggered", "data": { "service": "carts" } }),
        ),
        (
            400,
            "stage differs from the type",
            json!({ "type": "sh.keptn.event.dev.delivery.triggered", "data": { "project": "p", "stage": "prod", "service": "carts" } }),
        ),
        (400, "no type", json!({ "source": "x", "data": { "project": "p" } })),
        (400, "empty type", json!({ "type": "", "data": { "project": "p" } })),
        (400, "no data", json!({ "type": "sh.keptn.event.dev.delivery.triggered" })),
        (400, "data is a string", json!({ "type": "sh.keptn.event.dev.delivery.triggered", "data": "p" })),
        (400, "an array", json!([trigger("carts")])),
    ];
    cases.push((400, "null", Value::Null));
    for path in ["/api/v1/event", "/api/controlPlane/v1/event"] {
        for (status, what, body) in &cases {
            let r = client.send_raw(Method::POST, path, &serde_json::to_vec(body).unwrap()).await;
            r.assert_error(*status, &format!("{path}: {what}"));
        }
    }
    let r = client.send_raw(Method::POST, "/api/v1/event", &serde_json::to_vec(&cases[4].2).unwrap()).await;
    assert!(r.body["message"].as_str().unwrap().contains("triggeredid"), "{r:?}");
    // None of them was stored or started anything.
    let (_, ev) = client.get("/api/mongodb-datastore/event?pageSize=100").await;
    let types: Vec<&str> = ev["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(types.iter().all(|t| t.contains(".create.")), "only the project's system events exist: {types:?}");
    let (_, seq) = client.get(&format!("{CP}/sequence/p")).await;
    assert_eq!(seq["totalCount"], 0, "{seq}");
    assert_intact(&client).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_413_json() {
    let (server, client) = server_with_project().await;
    let mut big = trigger("carts");
    big["data"]["padding"] = json!("x".repeat(80 * 1024)); // the harness allows 64 KiB
    let big = serde_json::to_vec(&big).unwrap();
    for path in [
        "/api/v1/event".to_string(),
        format!("{CP}/project"),
        format!("{CP}/uniform/registration"),
        format!("{CP}/log"),
        format!("{CP}/project/p/stage/dev/service/carts/evaluation"),
    ] {
        let r = client.send_raw(Method::POST, &path, &big).await;
        r.assert_error(413, &format!("POST {path} with 80 KiB"));
    }
    // Just under the limit is fine.
    let mut ok = trigger("carts");
    ok["data"]["padding"] = json!("x".repeat(60 * 1024));
    let ctx = client.send(ok).await;
    let (_, ev) = client.get(&format!("/api/mongodb-datastore/event?keptnContext={ctx}")).await;
    assert!(ev["totalCount"].as_i64().unwrap() >= 1, "{ev}");
    let (_, all) = client.get("/api/mongodb-datastore/event?type=sh.keptn.event.dev.delivery.triggered").await;
    assert_eq!(all["totalCount"], 1, "only the event under the limit was stored");
    assert_intact(&client).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_query_parameters_are_400() {
    let (server, client) = server_with_project().await;
    let ctx = client.send(trigger("carts")).await;
    let paged = [
        format!("{CP}/project"),
        format!("{CP}/project/p/stage"),
        format!("{CP}/project/p/stage/dev/service"),
        "/api/mongodb-datastore/event".into(),
        format!("{CP}/event/triggered/sh.keptn.event.deployment.triggered"),
        format!("{CP}/sequence/p"),
        format!("{CP}/sequence-execution?project=p"),
        format!("{CP}/log"),
    ];
    for base in &paged {
        let sep = if base.contains('?') { '&' } else { '?' };
        for q in [
            "pageSize=abc",
            "pageSize=0",
            "pageSize=-1",
            "pageSize=101",
            "nextPageKey=x",
            "nextPageKey=-5",
            "pageSize=1.5",
        ] {
            let path = format!("{base}{sep}{q}");
            let r = client.raw(Method::GET, &path, &[("x-token", &client.token)], None).await;
            r.assert_error(400, &path);
        }
        // A key far past the end is an empty last page, not an overflow.
        let path = format!("{base}{sep}nextPageKey=9223372036854775807");
        let (s, b) = client.get(&path).await;
        assert_eq!(s, 200, "{path}: {b}");
        // keptn's models: an integer for sequences and logs, a string elsewhere.
        let last_page = if base.ends_with("/sequence/p") || base.ends_with("/log") { json!(0) } else { json!("0") };
        assert_eq!(b["nextPageKey"], last_page, "{path}: {b}");
        assert_eq!(b["pageSize"], 0, "{path}: {b}");
        // Repeated parameters are a client error in keptn's JSON shape too.
        let path = format!("{base}{sep}pageSize=1&pageSize=2");
        client.raw(Method::GET, &path, &[("x-token", &client.token)], None).await.assert_error(400, &path);
    }
    let timed = [
        "/api/mongodb-datastore/event?fromTime=yesterday".to_string(),
        "/api/mongodb-datastore/event?beforeTime=2023-13-45T00:00:00Z".into(),
        "/api/mongodb-datastore/event/type/sh.keptn.event.evaluation.finished?filter=data.project:p&fromTime=noon"
            .into(),
        format!("{CP}/sequence/p?fromTime=1700000000"),
        format!("{CP}/sequence/p?beforeTime=later"),
        format!("{CP}/log?fromTime=today"),
        format!("{CP}/log?beforeTime=x"),
    ];
    for path in &timed {
        let r = client.raw(Method::GET, path, &[("x-token", &client.token)], None).await;
        r.assert_error(400, path);
        assert!(r.body["message"].as_str().unwrap().contains("Time"), "the message names the parameter: {r:?}");
    }
    let by_type = "/api/mongodb-datastore/event/type/sh.keptn.event.evaluation.finished";
    for (q, what) in [
        ("", "no filter"),
        ("?filter=data.stage:dev", "filter without project or context"),
        ("?filter=data.project", "clause without a value"),
        ("?filter=data.project:p&limit=0", "limit 0"),
        ("?filter=data.project:p&limit=1000", "limit over 100"),
    ] {
        let path = format!("{by_type}{q}");
        client.raw(Method::GET, &path, &[("x-token", &client.token)], None).await.assert_error(400, what);
    }
    let r = client.raw(Method::GET, &format!("{CP}/sequence-execution"), &[("x-token", &client.token)], None).await;
    r.assert_error(400, "sequence-execution without project");
    for path in [
        format!("{CP}/sequence-execution?project=nope"),
        format!("{CP}/sequence/nope"),
        format!("{CP}/event/triggered/sh.keptn.event.deployment.triggered?project=nope"),
        format!("{CP}/project/nope"),
        format!("{CP}/project/nope/stage"),
        format!("{CP}/project/p/stage/qa"),
        format!("{CP}/project/p/stage/qa/service"),
        format!("{CP}/project/p/stage/dev/service/orders"),
    ] {
        client.raw(Method::GET, &path, &[("x-token", &client.token)], None).await.assert_error(404, &path);
    }
    let r = client.raw(Method::GET, &format!("{CP}/project/%FF"), &[("x-token", &client.token)], None).await;
    assert!(r.status == 400 || r.status == 404, "{r:?}");
    r.assert_error(r.status, "invalid UTF-8 in a path");
    assert_eq!(client.sequence_state("p", &ctx).await["state"], "started");
    assert_intact(&client).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_control_errors() {
    let (server, client) = server_with_project().await;
    let ctx = client.send(trigger("carts")).await;
    let control = |project: &str, context: &str| format!("{CP}/sequence/{project}/{context}/control");
    for state in ["stop", "", "PAUSE", "resumed"] {
        let (s, b) = client.post(&control("p", &ctx), json!({ "state": state })).await;
        assert_eq!(s, 400, "state {state:?}: {b}");
        assert!(b["message"].as_str().unwrap().contains("pause, resume or abort"), "{b}");
    }
    let (s, b) = client.post(&control("p", "00000000-0000-0000-0000-000000000000"), json!({ "state": "abort" })).await;
    assert_eq!((s, &b["code"]), (404, &json!(404)), "unknown context: {b}");
    let (s, b) = client.post(&control("nope", &ctx), json!({ "state": "abort" })).await;
    assert_eq!(s, 404, "unknown project: {b}");
    // The sequence runs on, its first task still open.
    let open = client.open_triggered("sh.keptn.event.deployment.triggered", "p").await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["shkeptncontext"], ctx);
    assert_eq!(client.sequence_state("p", &ctx).await["state"], "started");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_are_json_errors() {
    let (server, client) = server_with_project().await;
    let token = client.token.clone();
    for (m, path) in [
        (Method::GET, "/api/v2/event"),
        (Method::GET, "/nope"),
        (Method::POST, "/api/controlPlane/v1/projects"),
        (Method::GET, "/api/controlPlane/v1/project/p/stage/dev/service/carts/resource"),
    ] {
        let r = client.raw(m.clone(), path, &[("x-token", &token)], None).await;
        r.assert_error(404, &format!("{m} {path}"));
        let r = client.raw(m.clone(), path, &[], None).await;
        assert!(r.status == 404 || r.status == 401, "{r:?}");
    }
    for (m, path) in [(Method::PATCH, "/api/controlPlane/v1/project"), (Method::GET, "/api/v1/event")] {
        let r = client.raw(m.clone(), path, &[("x-token", &token)], None).await;
        r.assert_error(405, &format!("{m} {path}"));
    }
    assert_intact(&client).await;
    server.stop().await;
}

/// U+0000 in a value the server indexes (PostgreSQL refuses it in text) is the client's error,
/// on every backend; inside `data` it is just data.
async fn nul_characters(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let client = server.client();
    client.create_project("p", SHIPYARD).await;
    client.create_service("p", "carts").await;
    let problem = json!({ "type": "sh.keptn.events.problem", "source": "monitoring", "data": { "project": "p", "stage": "dev", "service": "carts" } });
    let mut cases: Vec<(&str, String, Value)> = Vec::new();
    for (field, pointer) in
        [("source", "/source"), ("type", "/type"), ("triggeredid", "/triggeredid"), ("data.stage", "/data/stage")]
    {
        let mut ev = problem.clone();
        ev["triggeredid"] = json!("t");
        *ev.pointer_mut(pointer).unwrap() = json!("a\u{0}b");
        cases.push((field, "/api/v1/event".into(), ev));
    }
    cases.push(("name", format!("{CP}/uniform/registration"), json!({ "name": "svc\u{0}" })));
    cases.push((
        "integrationid",
        format!("{CP}/log"),
        json!({ "logs": [{ "integrationid": "a\u{0}", "message": "m" }] }),
    ));
    for (field, path, body) in &cases {
        let (s, b) = client.post(path, body.clone()).await;
        assert_eq!((s, &b["code"]), (400, &json!(400)), "NUL in {field}: {b}");
        assert!(b["message"].as_str().unwrap().contains(field), "the message names {field}: {b}");
    }
    for path in [
        "/api/mongodb-datastore/event?project=p%00".to_string(),
        format!("{CP}/event/triggered/sh.keptn.event.deployment.triggered?service=a%00b"),
        format!("{CP}/sequence/p/a%00b/control"),
        format!("{CP}/log?integrationId=%00"),
        format!("{CP}/uniform/registration/x%00y"),
    ] {
        let method = if path.ends_with("/control") { Method::POST } else { Method::GET };
        let r = client.send_raw(method, &path, br#"{"state":"pause"}"#).await;
        r.assert_error(400, &path);
    }
    // NUL inside data is stored and returned as sent.
    let mut ev = problem.clone();
    ev["data"]["message"] = json!("line1\u{0}line2");
    let ctx = client.send(ev).await;
    let (_, b) = client.get(&format!("/api/mongodb-datastore/event?keptnContext={ctx}")).await;
    assert_eq!(b["events"][0]["data"]["message"], "line1\u{0}line2");
    // The server goes on working.
    let ctx = client.send(trigger("carts")).await;
    assert!(
        client
            .open_triggered("sh.keptn.event.deployment.triggered", "p")
            .await
            .iter()
            .any(|e| e["shkeptncontext"] == ctx)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_sqlite() {
    nul_characters(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_postgres() {
    nul_characters(Db::Postgres).await;
}
