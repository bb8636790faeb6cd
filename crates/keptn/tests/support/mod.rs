//! Test harness: a real server on a free port (SQLite file or an isolated PostgreSQL schema),
//! an HTTP client that speaks keptn's API, and integrations that behave like keptn 1.x ones.
#![allow(dead_code)]

pub mod cli;
pub mod nats;
pub mod prometheus;

use keptn_server::{RunningServer, ServerConfig};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Upstream freshness window of test servers: `KEPTN_TEST_UPSTREAM_FRESHNESS_MS`, default 200 ms
/// so upstream changes show up quickly.
fn upstream_freshness() -> Duration {
    let ms = std::env::var("KEPTN_TEST_UPSTREAM_FRESHNESS_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    Duration::from_millis(ms)
}

pub struct TestServer {
    pub url: String,
    pub token: String,
    pub http: reqwest::Client,
    server: Option<RunningServer>,
    pub dir: tempfile::TempDir,
    pg: Option<(String, String)>,
    quality_gates: keptn_server::QualityGates,
    outbound: keptn_server::OutboundPolicy,
    extra_integrations: keptn_server::InProcessIntegrations,
    /// The built-ins `keptn integration run` runs for this server (remote mode), and that process.
    remote_keys: Vec<String>,
    remote: Option<RemoteBuiltins>,
    /// The server's `nats_url` (kept on restart).
    nats_url: Option<String>,
    /// The nats-server of `KEPTN_TEST_BUILTINS=nats`; last, so it outlives the server and the
    /// integrations when dropped.
    nats: Option<nats::Nats>,
}

/// How the tests run the built-in integrations (`KEPTN_TEST_BUILTINS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtins {
    /// `in-process` (the default): the server runs them.
    InProcess,
    /// `remote`: a child process, `keptn integration run … --endpoint <server>`, runs them on
    /// the server's event stream; the server runs none itself.
    Remote,
    /// `nats`: as `remote`, but the events come from NATS JetStream: the harness starts a
    /// nats-server of its own, the server publishes to it (`nats_url`) and the child runs with
    /// `--nats-url`.
    Nats,
}

pub fn builtins() -> Builtins {
    match std::env::var("KEPTN_TEST_BUILTINS").as_deref() {
        Ok("remote") => Builtins::Remote,
        Ok("nats") => Builtins::Nats,
        Ok("in-process") | Ok("") | Err(_) => Builtins::InProcess,
        Ok(other) => panic!("KEPTN_TEST_BUILTINS={other:?}: use in-process, remote or nats"),
    }
}

/// Whether a `keptn integration run` child process runs the built-ins (remote or nats mode).
pub fn remote_builtins() -> bool {
    builtins() != Builtins::InProcess
}

/// A `keptn integration run` child process, killed with the test.
struct RemoteBuiltins(std::process::Child);

impl Drop for RemoteBuiltins {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `keptn integration run KEYS…` against the server (taking the events from NATS when
/// `nats_url` is given) and waits until each of them is registered (the events before that are
/// caught up when its stream opens, or by its open-events read at start).
async fn spawn_remote(
    url: &str,
    token: &str,
    keys: &[String],
    quality_gates: &keptn_server::QualityGates,
    nats_url: Option<&str>,
) -> RemoteBuiltins {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_keptn"));
    if let Some(nats) = nats_url {
        cmd.env("KEPTN_NATS_URL", nats);
    } else {
        cmd.env_remove("KEPTN_NATS_URL");
    }
    cmd.args(["integration", "run"])
        .args(keys)
        .args(["--endpoint", url, "--api-token", token, "--allow-outbound", "loopback"])
        .arg("--sli-timeout")
        .arg(format!("{}ms", quality_gates.sli_timeout.as_millis()))
        .env("KEPTN_CONFIG_DIR", std::env::temp_dir().join("keptn-test-no-credentials"))
        .env("KEPTN_LOG", std::env::var("KEPTN_LOG").unwrap_or_else(|_| "warn".into()))
        .stdout(std::process::Stdio::null());
    if let Some(prometheus) = &quality_gates.prometheus_url {
        cmd.args(["--prometheus-url", prometheus]);
    }
    let child = RemoteBuiltins(cmd.spawn().expect("keptn integration run starts"));
    let client = keptn_client::Client::new(url, token);
    let names: Vec<&str> = keptn_server::BUILTIN_INTEGRATIONS
        .iter()
        .filter(|(key, _)| keys.iter().any(|k| k == key))
        .map(|(_, what)| what.split(':').next().unwrap_or(""))
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let regs = client.get("/api/controlPlane/v1/uniform/registration").await.unwrap_or_default();
        let registered = |name: &&str| regs.as_array().into_iter().flatten().any(|r| r["name"] == *name);
        if names.iter().all(registered) {
            return child;
        }
        assert!(std::time::Instant::now() < deadline, "keptn integration run did not register {names:?}: {regs}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("KEPTN_LOG") {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    }
}

/// The database URL for a backend; None when PostgreSQL is unreachable outside CI.
pub async fn database(db: Db) -> Option<(Option<String>, Option<(String, String)>)> {
    match db {
        Db::Sqlite => Some((None, None)),
        Db::Postgres => {
            let admin = keptn_store::testing::postgres_admin_url();
            match keptn_store::testing::create_schema(&admin).await {
                Ok((url, schema)) => Some((Some(url), Some((admin, schema)))),
                Err(e) if std::env::var_os("CI").is_some() => {
                    panic!("PostgreSQL at {admin} unreachable (CI is set): {e}")
                }
                Err(e) => {
                    eprintln!("notice: skipping PostgreSQL test, {admin} unreachable: {e}");
                    None
                }
            }
        }
    }
}

impl TestServer {
    pub async fn start(db: Db) -> Option<TestServer> {
        Self::start_with(db, Duration::from_secs(600)).await
    }

    pub async fn start_with(db: Db, task_start_timeout: Duration) -> Option<TestServer> {
        Self::start_full(db, task_start_timeout, keptn_server::QualityGates::default()).await
    }

    /// A server with quality-gate settings (SLI timeout, default Prometheus).
    pub async fn start_full(
        db: Db,
        task_start_timeout: Duration,
        quality_gates: keptn_server::QualityGates,
    ) -> Option<TestServer> {
        Self::start_in(db, tempfile::tempdir().unwrap(), task_start_timeout, quality_gates).await
    }

    /// A server with the production default outbound policy (loopback denied).
    pub async fn start_strict(db: Db) -> Option<TestServer> {
        Self::start_tuned(db, |c| c.outbound = keptn_server::OutboundPolicy::default()).await
    }

    pub async fn start_outbound(
        db: Db,
        task_start_timeout: Duration,
        quality_gates: keptn_server::QualityGates,
        outbound: keptn_server::OutboundPolicy,
    ) -> Option<TestServer> {
        Self::start_tuned(db, move |c| {
            c.task_start_timeout = task_start_timeout;
            c.quality_gates = quality_gates;
            c.outbound = outbound;
        })
        .await
    }

    /// A server whose data dir is `dir` (a filesystem the test prepared, say).
    pub async fn start_in(
        db: Db,
        dir: tempfile::TempDir,
        task_start_timeout: Duration,
        quality_gates: keptn_server::QualityGates,
    ) -> Option<TestServer> {
        Self::start_at(db, dir, move |c| {
            c.task_start_timeout = task_start_timeout;
            c.quality_gates = quality_gates;
        })
        .await
    }

    /// A server whose configuration `tune` adjusts (its data dir is a fresh temporary one).
    pub async fn start_tuned(db: Db, tune: impl FnOnce(&mut ServerConfig)) -> Option<TestServer> {
        Self::start_at(db, tempfile::tempdir().unwrap(), tune).await
    }

    async fn start_at(db: Db, dir: tempfile::TempDir, tune: impl FnOnce(&mut ServerConfig)) -> Option<TestServer> {
        install_crypto();
        let (database_url, pg) = database(db).await?;
        let token = "test-token-0123456789".to_string();
        let mut config = ServerConfig {
            data_dir: dir.path().to_path_buf(),
            listen: "127.0.0.1:0".into(),
            task_start_timeout: Duration::from_secs(600),
            database_url,
            api_token: token.clone(),
            max_body_bytes: 64 * 1024,
            integration_ttl: Duration::from_secs(3600),
            secret_key: None,
            upstream_freshness: upstream_freshness(),
            quality_gates: keptn_server::QualityGates::default(),
            // The tests' integrations, SLI endpoints and git remotes run on loopback.
            outbound: keptn_server::OutboundPolicy::allow_loopback(),
            http: keptn_server::HttpLimits::default(),
            nats_url: None,
            integrations: keptn_server::all_integrations(),
            extra_integrations: Default::default(),
            execution: Default::default(),
        };
        tune(&mut config);
        let remote_keys = if remote_builtins() { std::mem::take(&mut config.integrations) } else { Vec::new() };
        // nats mode: a nats-server of this server's own, unless the test brought one.
        let nats = match builtins() == Builtins::Nats && config.nats_url.is_none() {
            true => Some(nats::Nats::start()),
            false => None,
        };
        if let Some(nats) = &nats {
            config.nats_url = Some(nats.url());
        }
        let nats_url = config.nats_url.clone();
        let remote_nats = nats_url.as_deref().filter(|_| builtins() == Builtins::Nats);
        let quality_gates = config.quality_gates.clone();
        let outbound = config.outbound.clone();
        let extra_integrations = config.extra_integrations.clone();
        let server = keptn_server::start(config).await.expect("server starts");
        let url = format!("http://{}", server.addr);
        let remote = match remote_keys.is_empty() {
            true => None,
            false => Some(spawn_remote(&url, &token, &remote_keys, &quality_gates, remote_nats).await),
        };
        Some(TestServer {
            remote_keys,
            remote,
            url,
            token,
            http: reqwest::Client::new(),
            server: Some(server),
            dir,
            pg,
            quality_gates,
            outbound,
            extra_integrations,
            nats_url,
            nats,
        })
    }

    /// The running server's in-process context and control plane (what its own integrations use).
    pub fn control_plane(&self) -> Arc<dyn keptn_integration::ControlPlane> {
        self.server.as_ref().expect("the server runs").control_plane()
    }

    pub async fn stop(mut self) {
        self.remote.take();
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
        if let Some((admin, schema)) = self.pg.take() {
            let _ = keptn_store::testing::drop_schema(&admin, &schema).await;
        }
    }

    /// The server's database, opened a second time (to look at what is stored).
    pub async fn store(&self) -> Option<keptn_store::Store> {
        let url = match &self.pg {
            Some((admin, schema)) => {
                let sep = if admin.contains('?') { '&' } else { '?' };
                format!("{admin}{sep}options=-c%20search_path%3D{schema}")
            }
            None => format!("sqlite://{}", self.dir.path().join("keptn.db").display()),
        };
        keptn_store::Store::connect(&url).await.ok()
    }

    pub fn client(&self) -> Client {
        Client { url: self.url.clone(), token: self.token.clone(), http: self.http.clone() }
    }
}

/// keptn's REST API, as a script or integration would call it.
#[derive(Clone)]
pub struct Client {
    pub url: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Client {
    /// The one API client (keptn-client) with this client's token, sharing its connection pool.
    pub fn api(&self) -> keptn_client::Client {
        keptn_client::Client::with_http(self.http.clone(), &self.url, &self.token)
    }

    pub async fn request(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.api().request_json(method, path, body.as_ref()).await.expect("request sent")
    }
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.request(reqwest::Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.request(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn create_project(&self, name: &str, shipyard: &str) {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(shipyard);
        let (s, b) = self.post("/api/controlPlane/v1/project", json!({ "name": name, "shipyard": b64 })).await;
        assert_eq!(s, 201, "create project: {b}");
    }

    pub async fn create_service(&self, project: &str, service: &str) {
        let (s, b) = self
            .post(&format!("/api/controlPlane/v1/project/{project}/service"), json!({ "serviceName": service }))
            .await;
        assert_eq!(s, 200, "create service: {b}");
    }

    /// Turns a built-in integration off the way a user would (to run keptn's own
    /// lighthouse-service instead, say): by deleting its subscriptions.
    pub async fn disable_builtin(&self, name: &str) {
        let (s, regs) = self.get(&format!("/api/controlPlane/v1/uniform/registration?name={name}")).await;
        assert_eq!(s, 200, "{regs}");
        let reg = &regs.as_array().expect("registrations")[0];
        let id = reg["id"].as_str().unwrap();
        for sub in reg["subscriptions"].as_array().unwrap() {
            let path =
                format!("/api/controlPlane/v1/uniform/registration/{id}/subscription/{}", sub["id"].as_str().unwrap());
            let (s, b) = self.delete(&path).await;
            assert_eq!(s, 200, "{b}");
        }
    }

    /// Sends an event; returns the keptnContext.
    pub async fn send(&self, event: Value) -> String {
        let (s, b) = self.post("/api/v1/event", event).await;
        assert_eq!(s, 200, "send event: {b}");
        b["keptnContext"].as_str().unwrap().to_string()
    }

    /// All events of a context, oldest first.
    pub async fn events_of(&self, context: &str) -> Vec<Value> {
        let mut all = self.api().datastore(&[("keptnContext", context)], 0).await.expect("datastore events");
        all.reverse();
        all
    }

    /// Waits (bounded) until an event of this type exists in the context.
    pub async fn wait_for(&self, context: &str, ty: &str, timeout: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (_, b) = self.get(&format!("/api/mongodb-datastore/event?keptnContext={context}&type={ty}")).await;
            if let Some(ev) = b["events"].as_array().and_then(|e| e.first()) {
                return ev.clone();
            }
            if tokio::time::Instant::now() > deadline {
                let types: Vec<String> = self
                    .events_of(context)
                    .await
                    .iter()
                    .map(|e| e["type"].as_str().unwrap_or("").to_string())
                    .collect();
                panic!("timed out waiting for {ty} in {context}; events so far: {types:#?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub fn task_of(ty: &str) -> &str {
    ty.trim_start_matches("sh.keptn.event.").trim_end_matches(".triggered")
}

/// The `.started` and `.finished` a keptn 1.x integration sends for a `.triggered`.
pub fn answers(source: &str, triggered: &Value, result: &str, extra: Value) -> (Value, Value) {
    let task = task_of(triggered["type"].as_str().unwrap());
    let d = &triggered["data"];
    let common =
        json!({ "project": d["project"], "stage": d["stage"], "service": d["service"], "labels": d["labels"] });
    let started = json!({
        "specversion": "1.0", "source": source, "type": format!("sh.keptn.event.{task}.started"),
        "shkeptncontext": triggered["shkeptncontext"], "triggeredid": triggered["id"], "data": common,
    });
    let mut fdata = common.clone();
    fdata["status"] = json!("succeeded");
    fdata["result"] = json!(result);
    keptn_formats::merge::merge(&mut fdata, &extra);
    let finished = json!({
        "specversion": "1.0", "source": source, "type": format!("sh.keptn.event.{task}.finished"),
        "shkeptncontext": triggered["shkeptncontext"], "triggeredid": triggered["id"], "data": fdata,
    });
    (started, finished)
}

pub type Decide = Arc<dyn Fn(&Value) -> (String, Value) + Send + Sync>;

/// A remote-execution-plane integration: polls `/event/triggered/{type}` like keptn's distributor.
pub fn spawn_pull_integration(
    client: Client,
    name: &str,
    types: Vec<String>,
    project: &str,
    decide: Decide,
) -> tokio::task::JoinHandle<()> {
    let name = name.to_string();
    let project = project.to_string();
    tokio::spawn(async move {
        let reg = json!({
            "name": name,
            "metadata": { "hostname": "test-host", "integrationversion": "1.4.5", "distributorversion": "1.4.5",
                          "location": "remote-execution-plane", "kubernetesmetadata": { "namespace": "keptn" } },
            "subscriptions": types.iter().map(|t| json!({ "event": t, "filter": { "projects": [project] } })).collect::<Vec<_>>(),
        });
        let (s, b) = client.post("/api/controlPlane/v1/uniform/registration", reg).await;
        assert!(s == 200 || s == 201, "register: {b}");
        let mut seen = HashSet::new();
        loop {
            for ty in &types {
                let (s, b) = client.get(&format!("/api/controlPlane/v1/event/triggered/{ty}?project={project}")).await;
                assert_eq!(s, 200, "{b}");
                for ev in b["events"].as_array().unwrap() {
                    let id = ev["id"].as_str().unwrap().to_string();
                    if !seen.insert(id) {
                        continue;
                    }
                    let (result, extra) = decide(ev);
                    let (started, finished) = answers(&name, ev, &result, extra);
                    client.send(started).await;
                    client.send(finished).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
}

/// A push integration: registers a URL; the server POSTs matching events to it.
pub struct PushIntegration {
    pub received: Arc<Mutex<Vec<Value>>>,
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PushIntegration {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn spawn_push_integration(
    client: Client,
    name: &str,
    types: Vec<String>,
    project: &str,
    decide: Decide,
) -> PushIntegration {
    use axum::routing::post;
    let received = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    let (rec, cl, nm) = (received.clone(), client.clone(), name.to_string());
    let app = axum::Router::new().route(
        "/events",
        post(move |axum::Json(ev): axum::Json<Value>| {
            let (rec, cl, nm, decide) = (rec.clone(), cl.clone(), nm.clone(), decide.clone());
            async move {
                rec.lock().unwrap().push(ev.clone());
                if ev["type"].as_str().is_some_and(|t| t.ends_with(".triggered")) {
                    tokio::spawn(async move {
                        let (result, extra) = decide(&ev);
                        let (started, finished) = answers(&nm, &ev, &result, extra);
                        cl.send(started).await;
                        cl.send(finished).await;
                    });
                }
                "ok"
            }
        }),
    );
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    let reg = json!({
        "name": name,
        "metadata": { "hostname": "test-host", "kubernetesmetadata": { "namespace": "keptn" } },
        "subscriptions": types.iter().map(|t| json!({ "event": t, "filter": { "projects": [project] } })).collect::<Vec<_>>(),
        "pushURL": url,
    });
    let (s, b) = client.post("/api/controlPlane/v1/uniform/registration", reg).await;
    assert!(s == 200 || s == 201, "register push: {b}");
    PushIntegration { received, url, task }
}

// ---- Helpers for the API tests (api_*.rs) ----

/// A response as a client sees it: status, content type and body (JSON, or the text as a string).
#[derive(Debug, Clone)]
pub struct Raw {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
}

impl Raw {
    /// keptn's error shape: `{"code": <status>, "message": "<non-empty>"}` as JSON.
    pub fn assert_error(&self, status: u16, what: &str) {
        assert_eq!(self.status, status, "{what}: {self:?}");
        assert!(self.content_type.starts_with("application/json"), "{what}: error must be JSON: {self:?}");
        assert_eq!(self.body["code"], status, "{what}: {self:?}");
        assert!(self.body["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {self:?}");
    }
}

pub fn b64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

impl Client {
    /// A request with exactly the given headers (no token unless passed) and raw body bytes.
    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Raw {
        // No token unless passed: a tokenless client sends none.
        let anonymous = keptn_client::Client::with_http(self.http.clone(), &self.url, "");
        let r = anonymous.raw(method, path, headers, body).await.expect("request sent");
        let text = String::from_utf8_lossy(&r.body).into_owned();
        Raw {
            status: r.status,
            content_type: r.content_type,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    /// A request with the API token and a raw body (e.g. malformed JSON).
    pub async fn send_raw(&self, method: reqwest::Method, path: &str, body: &[u8]) -> Raw {
        let token = self.token.clone();
        let headers = [("x-token", token.as_str()), ("content-type", "application/json")];
        self.raw(method, path, &headers, Some(body.to_vec())).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.request(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.request(reqwest::Method::DELETE, path, None).await
    }

    /// Open `.triggered` events of a type in a project (what a pull integration sees now).
    pub async fn open_triggered(&self, ty: &str, project: &str) -> Vec<Value> {
        self.api().open_triggered(ty, &[("project", project)]).await.expect("open triggered")
    }

    /// The sequence state document of one context.
    pub async fn sequence_state(&self, project: &str, context: &str) -> Value {
        let (s, b) = self.get(&format!("/api/controlPlane/v1/sequence/{project}?keptnContext={context}")).await;
        assert_eq!(s, 200, "sequence state: {b}");
        b["states"].as_array().and_then(|a| a.first()).cloned().unwrap_or(Value::Null)
    }

    /// Sends a task's `.started` (and `.finished` with `result` unless None) as an integration.
    pub async fn answer(&self, source: &str, triggered: &Value, result: Option<&str>) {
        let (started, finished) = answers(source, triggered, result.unwrap_or("pass"), json!({}));
        self.send(started).await;
        if result.is_some() {
            self.send(finished).await;
        }
    }
}

/// Polls `check` every 20 ms until it returns Some, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Milliseconds since the epoch of keptn's UTC time format `YYYY-MM-DDTHH:MM:SS[.mmm]Z`.
pub fn time_ms(t: &str) -> i64 {
    let (date, clock) = t.split_once('T').unwrap_or_else(|| panic!("not a keptn time: {t}"));
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let clock = clock.strip_suffix('Z').unwrap_or_else(|| panic!("not UTC: {t}"));
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, "0"));
    let c: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    let millis: i64 = format!("{frac:0<3}")[..3].parse().unwrap();
    // Days from the civil date (H. Hinnant's algorithm).
    let (y, m) = if d[1] <= 2 { (d[0] - 1, d[1] + 9) } else { (d[0], d[1] - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + (153 * m + 2) / 5 + d[2] - 1;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + c[0]) * 60 + c[1]) * 60_000 + c[2] * 1000 + millis
}

impl TestServer {
    /// Stops the server and starts it again on the same data (data dir or PostgreSQL schema),
    /// on a new port: take a new `client()` afterwards.
    pub async fn restart(&mut self) {
        self.remote.take();
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
        // The URL `keptn_store::testing::create_schema` made for this schema.
        let database_url = self.pg.as_ref().map(|(admin, schema)| {
            let sep = if admin.contains('?') { '&' } else { '?' };
            format!("{admin}{sep}options=-c%20search_path%3D{schema}")
        });
        let config = ServerConfig {
            data_dir: self.dir.path().to_path_buf(),
            listen: "127.0.0.1:0".into(),
            task_start_timeout: Duration::from_secs(600),
            database_url,
            api_token: self.token.clone(),
            max_body_bytes: 64 * 1024,
            integration_ttl: Duration::from_secs(3600),
            secret_key: None,
            upstream_freshness: upstream_freshness(),
            quality_gates: self.quality_gates.clone(),
            outbound: self.outbound.clone(),
            http: keptn_server::HttpLimits::default(),
            nats_url: self.nats_url.clone(),
            integrations: if self.remote_keys.is_empty() { keptn_server::all_integrations() } else { Vec::new() },
            extra_integrations: self.extra_integrations.clone(),
            execution: Default::default(),
        };
        let server = keptn_server::start(config).await.expect("server restarts");
        self.url = format!("http://{}", server.addr);
        self.server = Some(server);
        if !self.remote_keys.is_empty() {
            let nats = self.nats_url.as_deref().filter(|_| builtins() == Builtins::Nats);
            self.remote =
                Some(spawn_remote(&self.url, &self.token, &self.remote_keys, &self.quality_gates, nats).await);
        }
    }
}

impl TestServer {
    /// Waits (bounded) until the built-ins were offered `event` (a stored event, as the datastore
    /// returns it). In nats mode delivery is asynchronous (outbox, stream, consumer): this waits
    /// until the stream holds it and every integration's consumer has delivered and had acked
    /// all it holds. In the other modes the built-ins are offered an event as it is committed:
    /// nothing to wait for.
    pub async fn builtins_offered(&self, event: &Value) {
        let (Some(url), Builtins::Nats) = (&self.nats_url, builtins()) else { return };
        let (Some(id), Some(ty)) = (event["id"].as_str(), event["type"].as_str()) else {
            panic!("not a stored event: {event}")
        };
        let js = async_nats::jetstream::new(async_nats::connect(url.as_str()).await.expect("NATS reachable"));
        eventually(Duration::from_secs(10), "the event in the stream and every consumer caught up", || {
            let js = js.clone();
            async move {
                use futures_util::StreamExt;
                let stream = js.get_stream("KEPTN").await.ok()?;
                let last = stream.get_last_raw_message_by_subject(ty).await.ok()?;
                let body: Value = serde_json::from_slice(&last.payload).ok()?;
                if body["id"] != id {
                    return None;
                }
                let mut consumers = stream.consumers();
                while let Some(info) = consumers.next().await {
                    let info = info.ok()?;
                    let integration = info.name != "keptn-control-plane";
                    if integration && (info.num_pending > 0 || info.num_ack_pending > 0) {
                        return None;
                    }
                }
                Some(())
            }
        })
        .await;
    }
}
