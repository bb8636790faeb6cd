//! Durability: SIGKILL the real `keptn server` binary at random moments while sequences run,
//! restart it on the same data, and prove that every sequence completes, no acknowledged event
//! is lost, and no task `.triggered` is emitted twice.

mod support;

use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

const SHIPYARD: &str = r#"
apiVersion: spec.keptn.sh/0.2.3
kind: Shipyard
metadata: { name: crash }
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks: [ { name: deployment }, { name: test } ]
    - name: prod
      sequences:
        - name: delivery
          triggeredOn: [ { event: dev.delivery.finished } ]
          tasks: [ { name: deployment }, { name: test } ]
"#;

const SERVICES: usize = 24;
const KILLS: usize = 4;

struct Proc {
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_server(dir: &std::path::Path, port: u16, database_url: &Option<String>) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keptn"));
    cmd.args(["server", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir)
        .env("KEPTN_API_TOKEN", "crash-token")
        .env("KEPTN_ALLOW_OUTBOUND", "loopback") // its push integration listens on loopback
        .env("KEPTN_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(url) = database_url {
        cmd.env("KEPTN_DATABASE_URL", url);
    }
    Proc { child: cmd.spawn().expect("keptn binary starts") }
}

async fn wait_healthy(http: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if http.get(format!("{url}/health")).send().await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("server did not become healthy");
}

/// POSTs until the server answers 200 (it may be down or restarting). Returns the response body.
async fn post_until_ok(client: &Client, path: &str, body: &Value) -> Value {
    post_until_ok_unless(client, path, body, None).await
}

/// Like `post_until_ok`, but before resending checks whether the event of this type already
/// landed in this context (the server committed it, then died before answering).
async fn post_until_ok_unless(client: &Client, path: &str, body: &Value, landed: Option<(&str, &str)>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut first = true;
    loop {
        if !first && let Some((ctx, ty)) = landed {
            let q = format!("{}/api/mongodb-datastore/event?keptnContext={ctx}&type={ty}", client.url);
            if let Ok(r) = client.http.get(q).header("x-token", &client.token).send().await
                && let Ok(v) = r.json::<Value>().await
                && v["totalCount"].as_i64().unwrap_or(0) > 0
            {
                return Value::Null;
            }
        }
        first = false;
        let sent = client
            .http
            .post(format!("{}{}", client.url, path))
            .header("x-token", &client.token)
            .json(body)
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        if let Ok(r) = sent {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            if status.is_success() {
                return serde_json::from_str(&text).unwrap_or(Value::Null);
            }
            assert!(status.is_server_error(), "request refused: {status} {text}");
        }
        assert!(Instant::now() < deadline, "server never accepted {path}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A tiny deterministic PRNG so a failing run can be replayed from its printed seed.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

async fn survives_sigkill(db: Db) {
    install_crypto();
    let Some((database_url, pg)) = database(db).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let client = Client { url: url.clone(), token: "crash-token".into(), http: reqwest::Client::new() };
    let mut server = spawn_server(dir.path(), port, &database_url);
    wait_healthy(&client.http, &url).await;
    client.create_project("crash", SHIPYARD).await;
    for i in 0..SERVICES {
        client.create_service("crash", &format!("svc-{i}")).await;
    }

    // A push integration that answers every task, retrying while the server is down, and
    // deduplicating redelivered events by id (as keptn's SDK does).
    let answered: Arc<Mutex<HashSet<String>>> = Arc::default();
    let acked_finished: Arc<Mutex<Vec<String>>> = Arc::default();
    let (ans, acked, cl) = (answered.clone(), acked_finished.clone(), client.clone());
    let decide: Decide = Arc::new(|_| ("pass".to_string(), json!({})));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let push_url = format!("http://{}/events", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/events",
        axum::routing::post(move |axum::Json(ev): axum::Json<Value>| {
            let (ans, acked, cl, decide) = (ans.clone(), acked.clone(), cl.clone(), decide.clone());
            async move {
                let id = ev["id"].as_str().unwrap_or("").to_string();
                let is_task =
                    ev["type"].as_str().is_some_and(|t| t.ends_with(".triggered") && t.matches('.').count() == 4);
                if is_task && ans.lock().unwrap().insert(id.clone()) {
                    tokio::spawn(async move {
                        let (result, extra) = decide(&ev);
                        let (started, finished) = answers("crash-tester", &ev, &result, extra);
                        post_until_ok(&cl, "/api/v1/event", &started).await;
                        post_until_ok(&cl, "/api/v1/event", &finished).await;
                        acked.lock().unwrap().push(id);
                    });
                }
                "ok"
            }
        }),
    );
    let push_task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let reg = json!({
        "name": "crash-tester", "metadata": { "hostname": "h", "kubernetesmetadata": { "namespace": "keptn" } },
        "subscriptions": [ { "event": "sh.keptn.event.*.triggered", "filter": { "projects": ["crash"] } } ],
        "pushURL": push_url,
    });
    post_until_ok(&client, "/api/controlPlane/v1/uniform/registration", &reg).await;

    // Trigger one delivery per service, each with its own context; a trigger whose response
    // was lost is only resent if the context is not stored yet (no duplicate sequences).
    let contexts: Vec<String> = (0..SERVICES).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let triggers = {
        let client = client.clone();
        let contexts = contexts.clone();
        tokio::spawn(async move {
            for (i, ctx) in contexts.iter().enumerate() {
                let ev = json!({
                    "type": "sh.keptn.event.dev.delivery.triggered", "source": "crash-test", "shkeptncontext": ctx,
                    "data": { "project": "crash", "stage": "dev", "service": format!("svc-{i}"),
                              "configurationChange": { "values": { "image": format!("img:{i}") } } }
                });
                let landed = Some((ctx.as_str(), "sh.keptn.event.dev.delivery.triggered"));
                post_until_ok_unless(&client, "/api/v1/event", &ev, landed).await;
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        })
    };

    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    eprintln!("crash test seed {seed}");
    let mut rng = Lcg(seed);
    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(100 + rng.next(400))).await;
        server.child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
        let _ = server.child.wait();
        tokio::time::sleep(Duration::from_millis(rng.next(100))).await;
        server = spawn_server(dir.path(), port, &database_url);
        wait_healthy(&client.http, &url).await;
    }
    triggers.await.unwrap();

    // Every sequence completes on the last server instance.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut pending: Vec<String> = contexts.clone();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for ctx in pending {
            let (_, b) = client
                .get(&format!(
                    "/api/mongodb-datastore/event?keptnContext={ctx}&type=sh.keptn.event.prod.delivery.finished"
                ))
                .await;
            if b["events"].as_array().is_none_or(|e| e.is_empty()) {
                still.push(ctx);
            }
        }
        pending = still;
        assert!(Instant::now() < deadline, "sequences never completed: {pending:?}");
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let mut all_events: Vec<Value> = Vec::new();
    for ctx in &contexts {
        let events = client.events_of(ctx).await;
        let mut triggered: HashMap<(String, String), usize> = HashMap::new();
        for e in &events {
            let ty = e["type"].as_str().unwrap();
            if ty.ends_with(".triggered") {
                *triggered.entry((e["data"]["stage"].as_str().unwrap().to_string(), ty.to_string())).or_default() += 1;
            }
        }
        for stage in ["dev", "prod"] {
            for task in ["deployment", "test"] {
                let n = triggered.get(&(stage.to_string(), format!("sh.keptn.event.{task}.triggered"))).copied();
                assert_eq!(n, Some(1), "{ctx}: {task}.triggered in {stage} emitted {n:?} times");
            }
            let fin = format!("sh.keptn.event.{stage}.delivery.finished");
            let finished: Vec<&Value> = events.iter().filter(|e| e["type"] == fin).collect();
            assert_eq!(finished.len(), 1, "{ctx}: {fin}");
            assert_eq!(finished[0]["data"]["result"], "pass", "{ctx}: {}", finished[0]);
        }
        all_events.extend(events);
    }
    // No acknowledged answer was lost: each acked `.finished` is stored for its task.
    let stored_finished: HashSet<&str> = all_events
        .iter()
        .filter(|e| e["type"].as_str().is_some_and(|t| t.ends_with(".finished")))
        .filter_map(|e| e["triggeredid"].as_str())
        .collect();
    for id in acked_finished.lock().unwrap().iter() {
        assert!(stored_finished.contains(id.as_str()), "acknowledged .finished for task {id} is missing");
    }
    assert_eq!(acked_finished.lock().unwrap().len(), SERVICES * 4);

    push_task.abort();
    drop(server);
    if let Some((admin, schema)) = pg {
        let _ = keptn_store::testing::drop_schema(&admin, &schema).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_sigkill_sqlite() {
    survives_sigkill(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_sigkill_postgres() {
    survives_sigkill(Db::Postgres).await;
}
