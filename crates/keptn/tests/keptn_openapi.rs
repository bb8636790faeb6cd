//! Every documented keptn endpoint we implement answers what keptn's own API definitions
//! (keptn 1.4.5's swagger files, copied in `tests/keptn-openapi/`) say: a real server runs a
//! project, a service, a sequence, an evaluation and an integration; each call's JSON body is
//! validated against the schema of its path, method and status. Every documented operation is
//! either called here or listed in `NOT_IMPLEMENTED`; deliberate differences are in `DEVIATIONS`
//! (and in docs/compatibility.md). Runs on SQLite and PostgreSQL.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use support::*;

/// (file, external prefix of the file's basePath).
const SPECS: &[(&str, &str)] = &[
    ("api.yaml", "/api/v1"),
    ("shipyard-controller.yaml", "/api/controlPlane/v1"),
    ("mongodb-datastore.yaml", "/api/mongodb-datastore"),
    ("secret-service.yaml", "/api/secrets/v1"),
    ("statistics-service.yaml", "/api/statistics/v1"),
];

/// Documented operations keptn-rs does not serve, and why.
const NOT_IMPLEMENTED: &[(&str, &str, &str, &str)] = &[
    ("api.yaml", "POST", "/import", "zip import of services, secrets and webhooks: not built"),
    (
        "mongodb-datastore.yaml",
        "GET",
        "/health",
        "deprecated; keptn's gateway denies it; /api/health is the health check",
    ),
    ("statistics-service.yaml", "*", "*", "no statistics service"),
];

/// Statuses we answer that the definitions do not list, on purpose (file, method, path, status,
/// why). The body is still validated: against the file's error model.
const DEVIATIONS: &[(&str, &str, &str, u16, &str)] = &[
    (
        "shipyard-controller.yaml",
        "DELETE",
        "/project/{project}",
        404,
        "deleting a project that does not exist is 404 (keptn documents 400/424/500 only)",
    ),
    (
        "shipyard-controller.yaml",
        "DELETE",
        "/project/{project}/service/{service}",
        404,
        "deleting a service that does not exist is 404 (keptn documents 400/500 only)",
    ),
];

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
"#;

struct Specs {
    docs: Vec<(&'static str, &'static str, Value)>,
}

impl Specs {
    fn load() -> Specs {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keptn-openapi");
        let docs = SPECS
            .iter()
            .map(|(file, prefix)| {
                let text = std::fs::read_to_string(dir.join(file)).unwrap();
                let yaml: yaml_serde::Value = yaml_serde::from_str(&text).unwrap();
                (*file, *prefix, to_json(yaml))
            })
            .collect();
        Specs { docs }
    }

    /// Every documented (file, METHOD, path).
    fn operations(&self) -> BTreeSet<(String, String, String)> {
        let mut out = BTreeSet::new();
        for (file, _, doc) in &self.docs {
            for (path, ops) in doc["paths"].as_object().unwrap() {
                for method in ops.as_object().unwrap().keys().filter(|m| *m != "parameters") {
                    out.insert((file.to_string(), method.to_uppercase(), path.clone()));
                }
            }
        }
        out
    }
}

/// YAML → JSON, with YAML's integer map keys (`200:`) as strings.
fn to_json(v: yaml_serde::Value) -> Value {
    match v {
        yaml_serde::Value::Null => Value::Null,
        yaml_serde::Value::Bool(b) => json!(b),
        yaml_serde::Value::Number(n) => serde_json::to_value(&n).unwrap(),
        yaml_serde::Value::String(s) => json!(s),
        yaml_serde::Value::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        yaml_serde::Value::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let key = match to_json(k) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        yaml_serde::Value::Tagged(t) => to_json(t.value),
    }
}

/// The documented response schema as a JSON Schema (draft 4, which swagger 2.0's schema objects
/// follow): the schema itself with the file's `definitions` beside it for `#/definitions/…`.
fn response_schema(doc: &Value, path: &str, method: &str, status: u16) -> Option<Option<Value>> {
    let response = doc["paths"][path][method.to_lowercase()]["responses"].get(status.to_string())?;
    let Some(schema) = response.get("schema") else { return Some(None) };
    Some(Some(json!({ "definitions": doc["definitions"], "allOf": [schema] })))
}

/// The file's error model (`models.Error`, `error`, …), for the statuses in `DEVIATIONS`.
fn error_schema(doc: &Value) -> Value {
    let defs = doc["definitions"].as_object().unwrap();
    let name = defs.keys().find(|k| k.ends_with("Error") || *k == "error").expect("an error model");
    json!({ "definitions": doc["definitions"], "$ref": format!("#/definitions/{name}") })
}

/// One call of the test: which documented operation it exercises, and its concrete request.
struct Call {
    file: &'static str,
    method: Method,
    template: &'static str,
    path: String,
    body: Option<Value>,
}

fn call(
    file: &'static str,
    method: Method,
    template: &'static str,
    path: impl Into<String>,
    body: Option<Value>,
) -> Call {
    Call { file, method, template, path: path.into(), body }
}

struct Checker {
    specs: Specs,
    client: Client,
    covered: BTreeSet<(String, String, String)>,
    failures: Vec<String>,
}

impl Checker {
    /// Sends the call and validates the answer; returns (status, body).
    async fn check(&mut self, c: Call) -> (u16, Value) {
        let (prefix, doc) = {
            let (_, prefix, doc) = self.specs.docs.iter().find(|(f, _, _)| *f == c.file).unwrap();
            (*prefix, doc.clone())
        };
        let (status, body) = self.client.request(c.method.clone(), &format!("{prefix}{}", c.path), c.body).await;
        let method = c.method.as_str().to_string();
        self.covered.insert((c.file.to_string(), method.clone(), c.template.to_string()));
        let what = format!("{method} {prefix}{} ({} {}) → {status}", c.path, c.file, c.template);
        let deviation =
            DEVIATIONS.iter().any(|(f, m, p, s, _)| *f == c.file && *m == method && *p == c.template && *s == status);
        let schema = match response_schema(&doc, c.template, &method, status) {
            None if deviation => Some(Some(error_schema(&doc))),
            other => other,
        };
        match schema {
            None => self.failures.push(format!("{what}: status {status} is not documented; body {body}")),
            Some(None) => {}
            Some(Some(schema)) => {
                let validator = jsonschema::draft4::new(&schema).unwrap_or_else(|e| panic!("schema of {what}: {e}"));
                let errors: Vec<String> =
                    validator.iter_errors(&body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
                if !errors.is_empty() {
                    self.failures.push(format!("{what}:\n    {}\n    body: {body}", errors.join("\n    ")));
                }
            }
        }
        (status, body)
    }
}

async fn responses_match_keptn_definitions(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let client = server.client();
    let mut ck =
        Checker { specs: Specs::load(), client: client.clone(), covered: BTreeSet::new(), failures: Vec::new() };
    use Method as M;
    const API: &str = "api.yaml";
    const SC: &str = "shipyard-controller.yaml";
    const DS: &str = "mongodb-datastore.yaml";
    const SS: &str = "secret-service.yaml";

    ck.check(call(API, M::POST, "/auth", "/auth", None)).await;
    ck.check(call(API, M::GET, "/metadata", "/metadata", None)).await;

    // Projects and services.
    let project = json!({ "name": "p", "shipyard": b64(SHIPYARD) });
    let (s, _) = ck.check(call(SC, M::POST, "/project", "/project", Some(project))).await;
    assert_eq!(s, 201);
    ck.check(call(SC, M::POST, "/project", "/project", Some(json!({ "name": "p", "shipyard": b64(SHIPYARD) })))).await;
    ck.check(call(SC, M::POST, "/project", "/project", Some(json!({ "name": "Bad_Name" })))).await;
    ck.check(call(SC, M::PUT, "/project", "/project", Some(json!({ "name": "p", "shipyard": b64(SHIPYARD) })))).await;
    ck.check(call(SC, M::PUT, "/project", "/project", Some(json!({ "name": "nope" })))).await;
    let (s, _) = ck
        .check(call(
            SC,
            M::POST,
            "/project/{project}/service",
            "/project/p/service",
            Some(json!({ "serviceName": "carts" })),
        ))
        .await;
    assert_eq!(s, 200);
    ck.check(call(
        SC,
        M::POST,
        "/project/{project}/service",
        "/project/p/service",
        Some(json!({ "serviceName": "carts" })),
    ))
    .await;
    ck.check(call(
        SC,
        M::POST,
        "/project/{project}/service",
        "/project/p/service",
        Some(json!({ "serviceName": "orders" })),
    ))
    .await;
    ck.check(call(SC, M::GET, "/project", "/project", None)).await;
    ck.check(call(SC, M::GET, "/project", "/project?pageSize=1", None)).await;
    ck.check(call(SC, M::GET, "/project/{project}", "/project/p", None)).await;
    ck.check(call(SC, M::GET, "/project/{project}", "/project/nope", None)).await;
    ck.check(call(SC, M::GET, "/project/{project}/stage", "/project/p/stage", None)).await;
    ck.check(call(SC, M::GET, "/project/{project}/stage", "/project/nope/stage", None)).await;
    ck.check(call(SC, M::GET, "/project/{project}/stage/{stage}", "/project/p/stage/dev", None)).await;
    ck.check(call(SC, M::GET, "/project/{project}/stage/{stage}", "/project/p/stage/nope", None)).await;
    ck.check(call(SC, M::GET, "/project/{project}/stage/{stage}/service", "/project/p/stage/dev/service", None)).await;
    ck.check(call(
        SC,
        M::GET,
        "/project/{project}/stage/{stage}/service/{service}",
        "/project/p/stage/dev/service/carts",
        None,
    ))
    .await;
    ck.check(call(
        SC,
        M::GET,
        "/project/{project}/stage/{stage}/service/{service}",
        "/project/p/stage/dev/service/nope",
        None,
    ))
    .await;

    // An integration with a subscription, and its logs.
    let registration = json!({
        "name": "openapi-probe",
        "metadata": { "hostname": "h", "integrationversion": "1.4.5", "distributorversion": "1.4.5",
                      "location": "remote-execution-plane", "kubernetesmetadata": { "namespace": "keptn" } },
        "subscriptions": [{ "event": "sh.keptn.event.deployment.triggered", "filter": { "projects": ["p"] } }],
    });
    let (s, reg) =
        ck.check(call(SC, M::POST, "/uniform/registration", "/uniform/registration", Some(registration.clone()))).await;
    assert!(s == 200 || s == 201, "{reg}");
    ck.check(call(SC, M::POST, "/uniform/registration", "/uniform/registration", Some(registration))).await;
    let id = reg["id"].as_str().unwrap().to_string();
    ck.check(call(SC, M::GET, "/uniform/registration", "/uniform/registration", None)).await;
    ck.check(call(SC, M::GET, "/uniform/registration", "/uniform/registration?name=openapi-probe", None)).await;
    ck.check(call(
        SC,
        M::PUT,
        "/uniform/registration/{integrationID}/ping",
        format!("/uniform/registration/{id}/ping"),
        None,
    ))
    .await;
    ck.check(call(SC, M::PUT, "/uniform/registration/{integrationID}/ping", "/uniform/registration/nope/ping", None))
        .await;
    let sub_path = format!("/uniform/registration/{id}/subscription");
    let (_, subs) =
        ck.check(call(SC, M::GET, "/uniform/registration/{integrationID}/subscription", sub_path.clone(), None)).await;
    let sub = json!({ "event": "sh.keptn.event.test.triggered", "filter": { "projects": ["p"], "stages": ["dev"] } });
    ck.check(call(
        SC,
        M::POST,
        "/uniform/registration/{integrationID}/subscription",
        sub_path.clone(),
        Some(sub.clone()),
    ))
    .await;
    ck.check(call(
        SC,
        M::POST,
        "/uniform/registration/{integrationID}/subscription",
        sub_path.clone(),
        Some(json!({})),
    ))
    .await;
    let sid = subs[0]["id"].as_str().map(str::to_string).unwrap_or_default();
    let one = "/uniform/registration/{integrationID}/subscription/{subscriptionID}";
    ck.check(call(SC, M::GET, one, format!("{sub_path}/{sid}"), None)).await;
    ck.check(call(SC, M::GET, one, format!("{sub_path}/nope"), None)).await;
    ck.check(call(
        SC,
        M::PUT,
        one,
        format!("{sub_path}/{sid}"),
        Some(json!({ "event": "sh.keptn.event.deployment.triggered" })),
    ))
    .await;
    ck.check(call(SC, M::PUT, one, format!("{sub_path}/{sid}"), Some(json!({ "event": "" })))).await;
    let log = json!({ "logs": [{ "integrationid": id, "message": "probe failed", "shkeptncontext": "c", "task": "deployment",
                                  "triggeredid": "t" }] });
    ck.check(call(SC, M::POST, "/log", "/log", Some(log))).await;
    ck.check(call(SC, M::POST, "/log", "/log", Some(json!({ "logs": "x" })))).await;
    ck.check(call(SC, M::GET, "/log", format!("/log?integrationId={id}"), None)).await;
    ck.check(call(SC, M::GET, "/log", format!("/log?integrationId={id}&pageSize=1"), None)).await;
    ck.check(call(SC, M::GET, "/log", "/log?pageSize=x", None)).await;

    // A sequence: triggered, its first task answered, then aborted; and an evaluation.
    let trigger = json!({ "type": "sh.keptn.event.dev.delivery.triggered", "source": "openapi", "specversion": "1.0",
                          "data": { "project": "p", "stage": "dev", "service": "carts" } });
    let (s, ctx) = ck.check(call(API, M::POST, "/event", "/event", Some(trigger))).await;
    assert_eq!(s, 200, "{ctx}");
    let context = ctx["keptnContext"].as_str().unwrap().to_string();
    ck.check(call(API, M::POST, "/event", "/event", Some(json!({ "type": "" })))).await;
    let deployment = client.wait_for(&context, "sh.keptn.event.deployment.triggered", Duration::from_secs(10)).await;
    let triggered = "/event/triggered/{eventType}";
    ck.check(call(SC, M::GET, triggered, "/event/triggered/sh.keptn.event.deployment.triggered?project=p", None)).await;
    ck.check(call(SC, M::GET, triggered, "/event/triggered/sh.keptn.event.deployment.triggered?pageSize=x", None))
        .await;
    let (started, finished) = answers("openapi", &deployment, "pass", json!({}));
    ck.check(call(API, M::POST, "/event", "/event", Some(started))).await;
    ck.check(call(API, M::POST, "/event", "/event", Some(finished))).await;
    client.wait_for(&context, "sh.keptn.event.test.triggered", Duration::from_secs(10)).await;
    ck.check(call(SC, M::GET, "/sequence/{project}", "/sequence/p", None)).await;
    ck.check(call(SC, M::GET, "/sequence/{project}", "/sequence/p?pageSize=1", None)).await;
    ck.check(call(SC, M::GET, "/sequence/{project}", "/sequence/p?state=started", None)).await;
    ck.check(call(SC, M::GET, "/sequence/{project}", "/sequence/p?pageSize=x", None)).await;
    let control = "/sequence/{project}/{keptnContext}/control";
    ck.check(call(SC, M::POST, control, format!("/sequence/p/{context}/control"), Some(json!({ "state": "pause" }))))
        .await;
    ck.check(call(SC, M::POST, control, format!("/sequence/p/{context}/control"), Some(json!({ "state": "resume" }))))
        .await;
    ck.check(call(SC, M::POST, control, format!("/sequence/p/{context}/control"), Some(json!({ "state": "dance" }))))
        .await;
    ck.check(call(
        SC,
        M::POST,
        control,
        "/sequence/p/00000000-0000-0000-0000-000000000000/control",
        Some(json!({ "state": "abort" })),
    ))
    .await;
    ck.check(call(SC, M::POST, control, format!("/sequence/p/{context}/control"), Some(json!({ "state": "abort" }))))
        .await;
    let evaluation = "/project/{project}/stage/{stage}/service/{service}/evaluation";
    let eval_path = "/project/p/stage/dev/service/carts/evaluation";
    ck.check(call(SC, M::POST, evaluation, eval_path, Some(json!({ "timeframe": "5m" })))).await;
    ck.check(call(SC, M::POST, evaluation, eval_path, Some(json!({ "timeframe": "soon" })))).await;

    // The datastore.
    ck.check(call(DS, M::GET, "/event", "/event?project=p", None)).await;
    ck.check(call(DS, M::GET, "/event", format!("/event?keptnContext={context}&pageSize=1"), None)).await;
    ck.check(call(DS, M::GET, "/event", "/event?pageSize=x", None)).await;
    ck.check(call(
        DS,
        M::GET,
        "/event/type/{eventType}",
        "/event/type/sh.keptn.event.dev.delivery.triggered?filter=data.project:p",
        None,
    ))
    .await;

    // Secrets: created, refused, listed, updated, deleted.
    ck.check(call(SS, M::GET, "/scope", "/scope", None)).await;
    let secret = json!({ "name": "api-creds", "scope": "keptn-webhook-service", "data": { "token": "t0k3n" } });
    let (s, _) = ck.check(call(SS, M::POST, "/secret", "/secret", Some(secret.clone()))).await;
    assert_eq!(s, 201);
    ck.check(call(SS, M::POST, "/secret", "/secret", Some(secret.clone()))).await;
    ck.check(call(
        SS,
        M::POST,
        "/secret",
        "/secret",
        Some(json!({ "name": "x", "scope": "nope", "data": {"k": "v"} })),
    ))
    .await;
    ck.check(call(SS, M::GET, "/secret", "/secret", None)).await;
    ck.check(call(SS, M::GET, "/secret", "/secret?name=api-creds&scope=keptn-webhook-service", None)).await;
    ck.check(call(SS, M::PUT, "/secret", "/secret", Some(secret))).await;
    ck.check(call(SS, M::PUT, "/secret", "/secret", Some(json!({ "name": "nope", "data": {"k": "v"} })))).await;
    ck.check(call(SS, M::PUT, "/secret", "/secret", Some(json!({ "name": "Bad_Name", "data": {"k": "v"} })))).await;
    ck.check(call(SS, M::DELETE, "/secret", "/secret?name=api-creds&scope=keptn-webhook-service", None)).await;
    ck.check(call(SS, M::DELETE, "/secret", "/secret?name=api-creds&scope=keptn-webhook-service", None)).await;
    ck.check(call(SS, M::DELETE, "/secret", "/secret?name=api-creds", None)).await;

    // Deletions last.
    ck.check(call(SC, M::DELETE, one, format!("{sub_path}/{sid}"), None)).await;
    ck.check(call(SC, M::DELETE, "/log", format!("/log?integrationId={id}"), None)).await;
    ck.check(call(SC, M::DELETE, "/uniform/registration/{integrationID}", format!("/uniform/registration/{id}"), None))
        .await;
    ck.check(call(SC, M::DELETE, "/project/{project}/service/{service}", "/project/p/service/orders", None)).await;
    ck.check(call(SC, M::DELETE, "/project/{project}/service/{service}", "/project/p/service/nope", None)).await;
    ck.check(call(SC, M::DELETE, "/project/{project}", "/project/p", None)).await;
    ck.check(call(SC, M::DELETE, "/project/{project}", "/project/Bad_Name", None)).await;

    // Every documented operation is called above or listed as not implemented.
    let missing: Vec<String> = ck
        .specs
        .operations()
        .into_iter()
        .filter(|op| !ck.covered.contains(op))
        .filter(|(f, m, p)| {
            !NOT_IMPLEMENTED.iter().any(|(nf, nm, np, _)| nf == f && (*nm == "*" || nm == m) && (*np == "*" || np == p))
        })
        .map(|(f, m, p)| format!("{m} {p} ({f})"))
        .collect();
    assert!(
        missing.is_empty(),
        "documented operations neither tested nor listed as not implemented:\n{}",
        missing.join("\n")
    );
    assert!(
        ck.failures.is_empty(),
        "{} responses do not match keptn's definitions:\n{}",
        ck.failures.len(),
        ck.failures.join("\n")
    );
    server.stop().await;
}

#[tokio::test]
async fn responses_match_keptn_definitions_sqlite() {
    responses_match_keptn_definitions(Db::Sqlite).await;
}

#[tokio::test]
async fn responses_match_keptn_definitions_postgres() {
    responses_match_keptn_definitions(Db::Postgres).await;
}
