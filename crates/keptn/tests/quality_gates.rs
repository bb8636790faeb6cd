//! Quality gates end to end: the built-in lighthouse and SLI providers against a real Prometheus
//! scraping an endpoint with known metrics, an HTTP/JSON source, an external (pull-mode)
//! provider, and the real `keptn` binary gating deliveries with `--watch`.

mod support;

use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use support::cli::keptn;
use support::prometheus::Prometheus;
use support::*;

const WAIT: Duration = Duration::from_secs(30);
const CP: &str = "/api/controlPlane/v1";
const RS: &str = "/api/resource-service/v1";

const SHIPYARD: &str = r#"apiVersion: spec.keptn.sh/0.2.3
kind: Shipyard
metadata: { name: gates }
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: deployment
            - name: evaluation
              properties: { timeframe: 2m }
"#;

const SLO: &str = r#"spec_version: "1.0"
comparison: { compare_with: single_result, include_result_with_score: pass, aggregate_function: avg }
objectives:
  - sli: response_time_p95
    displayName: Response time P95
    pass: [ { criteria: ["<600"] } ]
    warning: [ { criteria: ["<=800"] } ]
  - sli: error_rate
    pass: [ { criteria: ["<=0.05"] } ]
total_score: { pass: "90%", warning: "75%" }
"#;

const SLI: &str = r#"spec_version: "1.0"
indicators:
  response_time_p95: "app_response_time_p95{service='$SERVICE',stage='$STAGE'}"
  error_rate: "app_error_rate{service='$SERVICE'}"
"#;

async fn put_resource(client: &Client, path: &str, uri: &str, content: &str) {
    let (s, b) = client
        .post(
            &format!("{RS}/project/p{path}/resource"),
            json!({ "resources": [{ "resourceURI": uri, "resourceContent": b64(content) }] }),
        )
        .await;
    assert_eq!(s, 201, "write {uri}: {b}");
}

/// A deployment integration that does nothing but say it deployed.
fn deployer(client: &Client) {
    let decide: Decide = Arc::new(|_| ("pass".to_string(), json!({})));
    spawn_pull_integration(
        client.clone(),
        "helm-service",
        vec!["sh.keptn.event.deployment.triggered".into()],
        "p",
        decide,
    );
}

fn evaluation_of(events: &[Value]) -> Value {
    events
        .iter()
        .find(|e| e["type"] == "sh.keptn.event.evaluation.finished")
        .cloned()
        .unwrap_or_else(|| panic!("no evaluation.finished in {events:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_gates_a_passing_and_a_failing_delivery() {
    let Some(prom) = Prometheus::start().await else { return };
    let Some(server) = TestServer::start(Db::Sqlite).await else { return };
    let client = server.client();
    client.create_project("p", SHIPYARD).await;
    client.create_service("p", "carts").await;
    put_resource(&client, "/stage/dev/service/carts", "slo.yaml", SLO).await;
    put_resource(&client, "", "prometheus/sli.yaml", SLI).await;
    put_resource(&client, "", "prometheus/config.yaml", &format!("url: {}\n", prom.url)).await;
    deployer(&client);
    let home = tempfile::tempdir().unwrap();
    let cfg = home.path();
    assert_eq!(keptn(cfg, &["auth", "--endpoint", &server.url, "--api-token", &server.token]).await.code, 0);

    // keptn's CLI selects the provider; the built-in provider confirms with its endpoint.
    let o = keptn(cfg, &["configure", "monitoring", "prometheus", "--project", "p", "--service", "carts"]).await;
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(o.stdout.contains(&format!("queries go to {}", prom.url)), "{}", o.stdout);

    // A good build: 420 ms p95, 1 % errors → pass.
    prom.set("app_response_time_p95{service=\"carts\",stage=\"dev\"}", 420.0);
    prom.set("app_error_rate{service=\"carts\"}", 0.01);
    prom.wait_for("app_response_time_p95", 420.0).await;
    let o =
        keptn(cfg, &["trigger", "delivery", "--project", "p", "--service", "carts", "--image", "carts:1", "-w"]).await;
    assert_eq!(o.code, 0, "a passing gate: {}{}", o.stdout, o.stderr);
    assert!(o.stdout.lines().any(|l| l.contains("evaluation") && l.contains("pass")), "{}", o.stdout);
    let good_ctx = o.stdout.lines().next().unwrap().rsplit(' ').next().unwrap().to_string();
    let events = client.events_of(&good_ctx).await;
    let finished = evaluation_of(&events);
    let ev = &finished["data"]["evaluation"];
    assert_eq!(finished["source"], "lighthouse-service");
    assert_eq!(finished["data"]["result"], "pass");
    assert_eq!(ev["score"].as_f64(), Some(100.0));
    let rt = ev["indicatorResults"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["value"]["metric"] == "response_time_p95")
        .unwrap();
    assert_eq!(rt["value"]["value"].as_f64(), Some(420.0), "the value Prometheus scraped: {rt}");
    assert_eq!(rt["status"], "pass");
    let request = events.iter().find(|e| e["type"] == "sh.keptn.event.get-sli.triggered").unwrap();
    assert_eq!(request["data"]["get-sli"]["sliProvider"], "prometheus");
    assert_eq!(request["data"]["get-sli"]["indicators"], json!(["response_time_p95", "error_rate"]));
    let window =
        |t: &str| chrono::DateTime::parse_from_rfc3339(request["data"]["get-sli"][t].as_str().unwrap()).unwrap();
    assert_eq!((window("end") - window("start")).num_seconds(), 120, "the shipyard's timeframe: 2m");

    // A slow build: 900 ms → the objective fails, the score is 50 % → the delivery fails; exit 3.
    prom.set("app_response_time_p95{service=\"carts\",stage=\"dev\"}", 900.0);
    prom.wait_for("app_response_time_p95", 900.0).await;
    let o =
        keptn(cfg, &["trigger", "delivery", "--project", "p", "--service", "carts", "--image", "carts:2", "-w"]).await;
    assert_eq!(o.code, 3, "a failing gate fails the CI step: {}{}", o.stdout, o.stderr);
    assert!(o.stdout.contains("failed in stage dev: fail (task evaluation)"), "{}", o.stdout);
    let bad_ctx = o.stdout.lines().next().unwrap().rsplit(' ').next().unwrap().to_string();
    let finished = evaluation_of(&client.events_of(&bad_ctx).await);
    let ev = &finished["data"]["evaluation"];
    assert_eq!((finished["data"]["result"].as_str(), ev["score"].as_f64()), (Some("fail"), Some(50.0)), "{ev}");
    assert_eq!(
        ev["comparedEvents"],
        json!([evaluation_of(&client.events_of(&good_ctx).await)["id"]]),
        "compared with the pass"
    );
    let rt = ev["indicatorResults"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["value"]["metric"] == "response_time_p95")
        .unwrap();
    assert_eq!((rt["status"].as_str(), rt["value"]["comparedValue"].as_f64()), (Some("fail"), Some(420.0)), "{rt}");

    // The history, newest first, through the API and the CLI.
    let (s, h) = client.get(&format!("{CP}/project/p/stage/dev/service/carts/evaluation")).await;
    assert_eq!(s, 200, "{h}");
    let results: Vec<&str> =
        h["evaluations"].as_array().unwrap().iter().map(|e| e["result"].as_str().unwrap()).collect();
    assert_eq!(results, ["fail", "pass"]);
    let o = keptn(cfg, &["get", "evaluations", "--project", "p", "--stage", "dev", "--service", "carts"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.lines().nth(1).is_some_and(|l| l.contains("fail") && l.contains("50")), "{}", o.stdout);
    assert!(o.stdout.lines().nth(2).is_some_and(|l| l.contains("pass") && l.contains("2/2 pass")), "{}", o.stdout);

    // Invalidating the passing evaluation removes it from later comparisons.
    let good = evaluation_of(&client.events_of(&good_ctx).await);
    client
        .send(json!({ "type": "sh.keptn.event.evaluation.invalidated", "source": "bridge", "shkeptncontext": good_ctx,
                      "triggeredid": good["triggeredid"], "data": { "project": "p", "stage": "dev", "service": "carts" } }))
        .await;
    let (_, h) = client.get(&format!("{CP}/project/p/stage/dev/service/carts/evaluation")).await;
    assert_eq!(h["evaluations"][1]["invalidated"], true, "{h}");
    prom.set("app_response_time_p95{service=\"carts\",stage=\"dev\"}", 410.0);
    prom.wait_for("app_response_time_p95", 410.0).await;
    let o = keptn(
        cfg,
        &["trigger", "evaluation", "--project", "p", "--stage", "dev", "--service", "carts", "--timeframe", "5m", "-w"],
    )
    .await;
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let ctx = o.stdout.lines().next().unwrap().rsplit(' ').next().unwrap().to_string();
    let ev = evaluation_of(&client.events_of(&ctx).await)["data"]["evaluation"].clone();
    assert!(
        ev.get("comparedEvents").is_none_or(|c| c.as_array().is_some_and(Vec::is_empty)),
        "only passes count, and the pass is invalidated: {ev}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_providers_one_evaluation_and_a_silent_one_times_out() {
    let qg = keptn_server::QualityGates { sli_timeout: Duration::from_secs(2), prometheus_url: None };
    let Some(server) = TestServer::start_full(Db::Sqlite, Duration::from_secs(600), qg).await else { return };
    let client = server.client();
    client.create_project("p", SHIPYARD).await;
    client.create_service("p", "carts").await;
    client.create_service("p", "orders").await;
    // A status page (HTTP/JSON) for availability; an external pull-mode provider "dynatrace" for latency.
    let app = axum::Router::new().route(
        "/status/{service}",
        axum::routing::get(|axum::extract::Path(svc): axum::extract::Path<String>| async move {
            axum::Json(json!({ "service": svc, "availability": { "ratio": "99.95" } }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let status = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let slo = "objectives:\n  - sli: availability\n    pass: [ { criteria: [\">=99.9\"] } ]\n  - sli: latency\n    pass: [ { criteria: [\"<300\"] } ]\ntotal_score: { pass: \"90%\" }\n";
    for svc in ["carts", "orders"] {
        put_resource(&client, &format!("/stage/dev/service/{svc}"), "slo.yaml", slo).await;
    }
    put_resource(&client, "", "http/sli.yaml", &format!("indicators:\n  availability:\n    url: \"{status}/status/$SERVICE\"\n    jsonPath: \"$.availability.ratio\"\n")).await;
    put_resource(&client, "", "dynatrace/sli.yaml", "indicators:\n  latency: \"builtin:service.response.time\"\n")
        .await;
    deployer(&client);

    // The external provider: polls for its open get-sli requests like keptn's distributor.
    let external = client.clone();
    tokio::spawn(async move {
        loop {
            let (_, b) =
                external.get("/api/controlPlane/v1/event/triggered/sh.keptn.event.get-sli.triggered?project=p").await;
            for ev in b["events"].as_array().cloned().unwrap_or_default() {
                if ev["data"]["get-sli"]["sliProvider"] != "dynatrace" || ev["data"]["service"] != "carts" {
                    continue;
                }
                let values = json!({ "get-sli": { "start": ev["data"]["get-sli"]["start"], "end": ev["data"]["get-sli"]["end"],
                                                   "indicatorValues": [{ "metric": "latency", "value": 210.0, "success": true }] } });
                let (started, finished) = answers("dynatrace-service", &ev, "pass", values);
                external.send(started).await;
                external.send(finished).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    let trigger = |svc: &str| {
        client.send(json!({ "type": "sh.keptn.event.dev.evaluation.triggered", "source": "test",
                            "data": { "project": "p", "stage": "dev", "service": svc, "evaluation": { "timeframe": "5m" } } }))
    };
    let ctx = trigger("carts").await;
    let finished = client.wait_for(&ctx, "sh.keptn.event.evaluation.finished", WAIT).await;
    assert_eq!(finished["data"]["result"], "pass", "{finished:#}");
    let events = client.events_of(&ctx).await;
    let requests: Vec<&Value> = events.iter().filter(|e| e["type"] == "sh.keptn.event.get-sli.triggered").collect();
    let mut providers: Vec<&str> =
        requests.iter().map(|r| r["data"]["get-sli"]["sliProvider"].as_str().unwrap()).collect();
    providers.sort();
    assert_eq!(providers, ["dynatrace", "http"], "one request per provider, each with its own SLIs");
    let results = finished["data"]["evaluation"]["indicatorResults"].as_array().unwrap();
    let value = |m: &str| results.iter().find(|r| r["value"]["metric"] == m).unwrap()["value"]["value"].as_f64();
    assert_eq!((value("availability"), value("latency")), (Some(99.95), Some(210.0)));
    assert_eq!(
        events.iter().filter(|e| e["type"] == "sh.keptn.event.evaluation.finished").count(),
        1,
        "two providers, one evaluation"
    );
    let (_, open) = client
        .get("/api/controlPlane/v1/event/triggered/sh.keptn.event.get-sli.triggered?project=p&service=carts")
        .await;
    assert_eq!(open["events"].as_array().unwrap().len(), 0, "answered requests are closed: {open}");

    // orders: the external provider never answers; the evaluation ends after the SLI timeout.
    let ctx = trigger("orders").await;
    let finished = client.wait_for(&ctx, "sh.keptn.event.evaluation.finished", WAIT).await;
    let data = &finished["data"];
    assert_eq!((data["status"].as_str(), data["result"].as_str()), (Some("errored"), Some("fail")), "{data:#}");
    assert!(data["message"].as_str().unwrap().contains("no answer from SLI provider dynatrace within 2s"), "{data:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keptns_answers_without_slo_provider_or_valid_slo() {
    let Some(server) = TestServer::start(Db::Sqlite).await else { return };
    let client = server.client();
    client.create_project("p", SHIPYARD).await;
    client.create_service("p", "carts").await;
    let evaluate = || async {
        let ctx = client
            .send(json!({ "type": "sh.keptn.event.dev.evaluation.triggered", "source": "test",
                          "data": { "project": "p", "stage": "dev", "service": "carts", "evaluation": { "timeframe": "5m" } } }))
            .await;
        client.wait_for(&ctx, "sh.keptn.event.evaluation.finished", WAIT).await["data"].clone()
    };
    // No SLO file: keptn passes with score 0.
    let d = evaluate().await;
    assert_eq!((d["result"].as_str(), d["evaluation"]["score"].as_f64()), (Some("pass"), Some(0.0)), "{d:#}");
    assert!(d["message"].as_str().unwrap().contains("no SLO file configured for project p"), "{d:#}");
    // An SLO but no provider anywhere: keptn passes with its message.
    put_resource(&client, "/stage/dev/service/carts", "slo.yaml", SLO).await;
    let d = evaluate().await;
    assert!(d["message"].as_str().unwrap().contains("no SLI-provider configured for project p"), "{d:#}");
    // A broken SLO: errored, with the reason.
    put_resource(&client, "/stage/dev/service/carts", "slo.yaml", "objectives: {{{").await;
    let d = evaluate().await;
    assert_eq!((d["status"].as_str(), d["result"].as_str()), (Some("errored"), Some("fail")), "{d:#}");
    assert!(d["message"].as_str().unwrap().contains("Could not parse SLO file"), "{d:#}");
    // A bad timeframe: errored right after started.
    let ctx = client
        .send(json!({ "type": "sh.keptn.event.dev.evaluation.triggered", "source": "test",
                      "data": { "project": "p", "stage": "dev", "service": "carts", "evaluation": { "timeframe": "10s" } } }))
        .await;
    let d = client.wait_for(&ctx, "sh.keptn.event.evaluation.finished", WAIT).await["data"].clone();
    assert!(d["message"].as_str().unwrap().contains("at least 1 minute"), "{d:#}");
    let (s, b) = client.get(&format!("{CP}/project/p/stage/dev/service/nope/evaluation")).await;
    assert_eq!(s, 404, "{b}");
    // keptn's `configure monitoring` event selects the project's provider, stored in its repository
    // (last: nobody answers dynatrace here, so this evaluation keeps the service busy).
    put_resource(&client, "/stage/dev/service/carts", "slo.yaml", SLO).await;
    client
        .send(json!({ "type": "sh.keptn.event.monitoring.configure", "source": "cli",
                      "data": { "type": "dynatrace", "project": "p", "service": "carts" } }))
        .await;
    let stored = eventually(WAIT, "the provider is stored", || async {
        let (s, b) = client.get(&format!("{RS}/project/p/resource/lighthouse%2Fconfig.yaml")).await;
        (s == 200).then_some(b)
    })
    .await;
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.decode(stored["resourceContent"].as_str().unwrap()).unwrap();
    assert!(String::from_utf8(text).unwrap().contains("sli-provider: dynatrace"));
    let ctx = client
        .send(json!({ "type": "sh.keptn.event.dev.evaluation.triggered", "source": "test",
                      "data": { "project": "p", "stage": "dev", "service": "carts", "evaluation": { "timeframe": "5m" } } }))
        .await;
    let ask = client.wait_for(&ctx, "sh.keptn.event.get-sli.triggered", WAIT).await;
    assert_eq!(ask["data"]["get-sli"]["sliProvider"], "dynatrace", "{ask:#}");
    assert_eq!(ask["data"]["get-sli"]["indicators"], json!(["response_time_p95", "error_rate"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evaluation_survives_a_restart_between_request_and_answer() {
    let Some(mut server) = TestServer::start(Db::Sqlite).await else { return };
    let client = server.client();
    client.create_project("p", SHIPYARD).await;
    client.create_service("p", "carts").await;
    put_resource(&client, "/stage/dev/service/carts", "slo.yaml", SLO).await;
    put_resource(&client, "", "dynatrace/sli.yaml", "indicators:\n  response_time_p95: q1\n  error_rate: q2\n").await;
    let ctx = client
        .send(json!({ "type": "sh.keptn.event.dev.evaluation.triggered", "source": "test",
                      "data": { "project": "p", "stage": "dev", "service": "carts", "evaluation": { "timeframe": "5m" } } }))
        .await;
    let ask = client.wait_for(&ctx, "sh.keptn.event.get-sli.triggered", WAIT).await;
    server.restart().await;
    let client = server.client();
    // The request is still open for a pull-mode provider, which answers after the restart.
    let (_, open) = client.get("/api/controlPlane/v1/event/triggered/sh.keptn.event.get-sli.triggered?project=p").await;
    assert_eq!(open["events"][0]["id"], ask["id"], "{open}");
    let values = json!({ "get-sli": { "indicatorValues": [
        { "metric": "response_time_p95", "value": 300.0, "success": true },
        { "metric": "error_rate", "value": 0.5, "success": true } ] } });
    // Like dynatrace-service's dashboard mode, the provider commits the SLO it generated and
    // answers at that revision: the lighthouse scores with it (error_rate 0.5 now passes).
    let generated = SLO.replace("<=0.05", "<=1");
    let (s, b) = client
        .post(
            &format!("{RS}/project/p/stage/dev/service/carts/resource"),
            json!({ "resources": [{ "resourceURI": "slo.yaml", "resourceContent": b64(&generated) }] }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let (started, mut finished) = answers("dynatrace-service", &ask, "pass", values);
    finished["gitcommitid"] = b["commitID"].clone();
    client.send(started).await;
    client.send(finished).await;
    let done = client.wait_for(&ctx, "sh.keptn.event.evaluation.finished", WAIT).await;
    let ev = &done["data"]["evaluation"];
    assert_eq!((done["data"]["result"].as_str(), ev["score"].as_f64()), (Some("pass"), Some(100.0)), "{done:#}");
    let seq = client.wait_for(&ctx, "sh.keptn.event.dev.evaluation.finished", WAIT).await;
    assert_eq!(seq["data"]["result"], "pass");
    assert_eq!(
        client.events_of(&ctx).await.iter().filter(|e| e["type"] == "sh.keptn.event.evaluation.started").count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_credentials_per_project() {
    let Some(prom) = Prometheus::start_with_auth(Some(("keptn", "s3cret"))).await else { return };
    let Some(server) = TestServer::start(Db::Sqlite).await else { return };
    let client = server.client();
    prom.set("app_response_time_p95{service=\"carts\",stage=\"dev\"}", 300.0);
    prom.set("app_error_rate{service=\"carts\"}", 0.0);
    prom.wait_for("app_error_rate", 0.0).await;
    for (project, password) in [("good", "s3cret"), ("bad", "wrong")] {
        client.create_project(project, SHIPYARD).await;
        client.create_service(project, "carts").await;
        let write = |path: &str, uri: &str, content: String| {
            let client = client.clone();
            let path = format!("{RS}/project/{project}{path}/resource");
            let uri = uri.to_string();
            async move {
                let body = json!({ "resources": [{ "resourceURI": uri, "resourceContent": b64(&content) }] });
                let (s, b) = client.post(&path, body).await;
                assert_eq!(s, 201, "{b}");
            }
        };
        write("/stage/dev/service/carts", "slo.yaml", SLO.to_string()).await;
        write("", "prometheus/sli.yaml", SLI.to_string()).await;
        write("", "prometheus/config.yaml", format!("url: {}\nuser: keptn\npassword: {password}\n", prom.url)).await;
    }
    let evaluate = |project: &'static str| {
        let client = client.clone();
        async move {
            let ctx = client
                .send(json!({ "type": "sh.keptn.event.dev.evaluation.triggered", "source": "test",
                              "data": { "project": project, "stage": "dev", "service": "carts", "evaluation": { "timeframe": "5m" } } }))
                .await;
            client.wait_for(&ctx, "sh.keptn.event.evaluation.finished", WAIT).await["data"].clone()
        }
    };
    let d = evaluate("good").await;
    assert_eq!((d["result"].as_str(), d["evaluation"]["score"].as_f64()), (Some("pass"), Some(100.0)), "{d:#}");
    let d = evaluate("bad").await;
    assert_eq!(d["result"], "fail", "{d:#}");
    let message = d["evaluation"]["indicatorResults"][0]["value"]["message"].as_str().unwrap_or("");
    assert!(message.contains("refused the credentials (HTTP 401)") && !message.contains("wrong"), "{d:#}");
}
