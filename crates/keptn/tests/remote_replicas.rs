//! Two replicas of a remote lighthouse (`keptn integration run lighthouse`, one registration,
//! sharing the server's event stream), one killed with SIGKILL in the middle of 200 concurrent
//! evaluations: every evaluation still ends exactly once — one `evaluation.started`, one
//! `get-sli.triggered` per provider, one `evaluation.finished` — and both replicas did work.
//! The SLI provider is the server's built-in http-sli against a local JSON endpoint.

mod support;

use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const CP: &str = "/api/controlPlane/v1";
const EVALUATIONS: usize = 200;
const SERVICES: usize = 4;
/// Finished evaluations after which replica r1 is killed.
const KILL_AFTER: usize = 40;
const WAIT: Duration = Duration::from_secs(60);

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
"#;

const SLO: &str = r#"spec_version: "1.0"
objectives:
  - sli: response_time
    pass: [ { criteria: ["<500"] } ]
  - sli: error_rate
    pass: [ { criteria: ["<=0.05"] } ]
total_score: { pass: "90%", warning: "75%" }
"#;

/// A replica process; killed (SIGKILL) when dropped, if still running.
struct Replica {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    fn spawn(url: &str, token: &str, name: &str, dir: &Path) -> Replica {
        let (stdout, stderr) = (dir.join(format!("{name}.out")), dir.join(format!("{name}.err")));
        let child = Command::new(env!("CARGO_BIN_EXE_keptn"))
            .args(["integration", "run", "lighthouse", "--endpoint", url, "--api-token", token])
            .args(["--replica", name, "--hostname", "shared-host", "--sli-timeout", "5m"])
            .env("KEPTN_CONFIG_DIR", dir.join("no-credentials"))
            // The runner logs each event it handles at debug level: that is how the test
            // tells which replica did what.
            .env("KEPTN_LOG", "warn,keptn_integration::runner=debug")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("keptn integration run starts");
        Replica { child, stdout, stderr }
    }

    /// Whether its event stream is open (it prints "running …" once its feeds are).
    fn running(&self) -> bool {
        std::fs::read_to_string(&self.stdout).is_ok_and(|o| o.contains("running lighthouse"))
    }

    /// The evaluations it started handling so far.
    fn evaluations_handled(&self) -> usize {
        let log = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        log.lines().filter(|l| l.contains("handling") && l.contains("sh.keptn.event.evaluation.triggered")).count()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

/// A JSON status endpoint with the two SLIs, on loopback.
async fn metrics_endpoint() -> String {
    let app = axum::Router::new().route(
        "/metrics/{service}",
        axum::routing::get(|axum::extract::Path(svc): axum::extract::Path<String>| async move {
            axum::Json(json!({ "service": svc, "rt": 120.5, "errors": 0.01 }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

async fn put_resource(client: &Client, at: &str, uri: &str, content: &str) {
    let (s, b) = client
        .post(
            &format!("/api/resource-service/v1/project/p{at}/resource"),
            json!({ "resources": [{ "resourceURI": uri, "resourceContent": b64(content) }] }),
        )
        .await;
    assert_eq!(s, 201, "write {uri}: {b}");
}

/// The contexts with a finished evaluation sequence.
async fn finished_contexts(client: &Client) -> HashSet<String> {
    let events = client
        .api()
        .datastore(&[("project", "p"), ("type", "sh.keptn.event.dev.evaluation.finished")], 0)
        .await
        .expect("datastore");
    events.iter().filter_map(|e| e["shkeptncontext"].as_str().map(String::from)).collect()
}

fn count(events: &[Value], ty: &str, source: Option<&str>) -> usize {
    events.iter().filter(|e| e["type"] == ty && source.is_none_or(|s| e["source"] == s)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_lighthouse_replica_loses_and_doubles_no_evaluation() {
    // The server runs the other built-ins (http-sli answers the SLI requests); the lighthouse
    // runs only in the two replicas.
    let Some(server) = TestServer::start_tuned(Db::Sqlite, |c| {
        c.integrations = vec!["approval".into(), "http-sli".into()];
    })
    .await
    else {
        return;
    };
    let client = server.client();
    client.create_project("p", SHIPYARD).await;
    for s in 0..SERVICES {
        client.create_service("p", &format!("svc-{s}")).await;
        put_resource(&client, &format!("/stage/dev/service/svc-{s}"), "slo.yaml", SLO).await;
    }
    let metrics = metrics_endpoint().await;
    let sli = format!(
        "indicators:\n  response_time:\n    url: \"{metrics}/metrics/$SERVICE\"\n    jsonPath: \"$.rt\"\n  error_rate:\n    url: \"{metrics}/metrics/$SERVICE\"\n    jsonPath: \"$.errors\"\n"
    );
    put_resource(&client, "", "http/sli.yaml", &sli).await;

    let logs = tempfile::tempdir().unwrap();
    let mut r1 = Replica::spawn(&server.url, &server.token, "r1", logs.path());
    let r2 = Replica::spawn(&server.url, &server.token, "r2", logs.path());
    eventually(Duration::from_secs(20), "both replicas running", || async {
        (r1.running() && r2.running()).then_some(())
    })
    .await;
    let (_, regs) = client.get(&format!("{CP}/uniform/registration?name=lighthouse-service")).await;
    assert_eq!(regs.as_array().map(Vec::len), Some(1), "replicas on one host share one registration: {regs}");

    // 200 evaluations from 8 clients at once.
    let started = Instant::now();
    let mut triggers = tokio::task::JoinSet::new();
    for w in 0..8 {
        let client = client.clone();
        triggers.spawn(async move {
            let mut contexts = Vec::new();
            for i in (w..EVALUATIONS).step_by(8) {
                let path = format!("{CP}/project/p/stage/dev/service/svc-{}/evaluation", i % SERVICES);
                let (s, b) = client.post(&path, json!({ "timeframe": "5m" })).await;
                assert_eq!(s, 200, "trigger an evaluation: {b}");
                contexts.push(b["keptnContext"].as_str().unwrap().to_string());
            }
            contexts
        });
    }

    // Once some have finished, r1 dies without a word.
    eventually(WAIT, "the first evaluations finishing", || async {
        (finished_contexts(&client).await.len() >= KILL_AFTER).then_some(())
    })
    .await;
    let by_r1 = r1.evaluations_handled();
    r1.child.kill().expect("SIGKILL r1");
    r1.child.wait().unwrap();
    let by_r2_at_kill = r2.evaluations_handled();

    let mut contexts = HashSet::new();
    while let Some(c) = triggers.join_next().await {
        contexts.extend(c.unwrap());
    }
    assert_eq!(contexts.len(), EVALUATIONS);
    let deadline = Instant::now() + WAIT;
    loop {
        let finished = finished_contexts(&client).await;
        if contexts.is_subset(&finished) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {EVALUATIONS} evaluations never finished after r1 was killed; r2's log:\n{}",
            contexts.difference(&finished).count(),
            r2.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("{EVALUATIONS} evaluations in {:.1} s", started.elapsed().as_secs_f64());

    // Both replicas did work, and the survivor took on what came after the kill.
    let by_r2 = r2.evaluations_handled();
    assert!(by_r1 > 0, "r1 handled no evaluation before it was killed:\n{}", r1.log());
    assert!(by_r2_at_kill > 0, "r2 handled no evaluation before the kill:\n{}", r2.log());
    assert!(by_r2 > by_r2_at_kill, "r2 took over no evaluation after the kill ({by_r2_at_kill} before)");

    // Each evaluation ended exactly once, from one request to the one provider.
    for ctx in &contexts {
        let events = client.events_of(ctx).await;
        let summary: Vec<(&str, &str)> =
            events.iter().map(|e| (e["type"].as_str().unwrap_or(""), e["source"].as_str().unwrap_or(""))).collect();
        let what = format!("context {ctx}: {summary:#?}");
        assert_eq!(count(&events, "sh.keptn.event.evaluation.started", Some("lighthouse-service")), 1, "{what}");
        assert_eq!(count(&events, "sh.keptn.event.evaluation.finished", Some("lighthouse-service")), 1, "{what}");
        assert_eq!(count(&events, "sh.keptn.event.evaluation.finished", None), 1, "{what}");
        assert_eq!(count(&events, "sh.keptn.event.get-sli.triggered", None), 1, "one provider, one request: {what}");
        assert_eq!(count(&events, "sh.keptn.event.dev.evaluation.finished", None), 1, "{what}");
        let finished = events.iter().find(|e| e["type"] == "sh.keptn.event.evaluation.finished").unwrap();
        assert_eq!(finished["data"]["result"], "pass", "scored from the provider's values: {finished:#}");
    }
    drop(r2);
    server.stop().await;
}
