//! keptn's secret-service: the API's shapes, rules and errors (SQLite and PostgreSQL); a secret's
//! value never comes back — not in any API answer, CLI output, server log line (the real
//! `keptn server` at trace level) or the database's bytes; an in-process integration reads the
//! secrets of its scopes and no other; a remote one reads them from its secrets file, which is
//! refused when others can read it.

mod support;

use keptn_formats::KeptnEvent;
use keptn_integration::{Context, ContextResult, Integration, SecretData, answer, common_data};
use reqwest::Method;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::cli::{Out, keptn};
use support::*;

const SECRETS: &str = "/api/secrets/v1";
/// What must never be seen again once sent.
const VALUE: &str = "xq7-Very-Distinctive-s3cr3t-9f2";
const VALUE2: &str = "second-Distinctive-v4lu3-77ab";

/// Every answer body seen, for the final grep.
#[derive(Default)]
struct Seen(Vec<String>);

impl Seen {
    fn note(&mut self, what: &str, status: u16, body: &Value) -> (u16, Value) {
        self.0.push(format!("{what} → {status} {body}"));
        (status, body.clone())
    }
    fn assert_clean(&self) {
        for answer in &self.0 {
            assert!(!answer.contains(VALUE) && !answer.contains(VALUE2), "a secret value in an answer: {answer}");
        }
    }
}

async fn call(seen: &mut Seen, client: &Client, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let what = format!("{method} {path}");
    let (status, answer) = client.request(method, path, body).await;
    seen.note(&what, status, &answer)
}

fn message(v: &Value) -> &str {
    v["message"].as_str().unwrap_or_default()
}

/// The API as keptn documents it, with keptn-rs' checks, answering no value.
async fn api(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let client = server.client();
    let mut seen = Seen::default();
    use Method as M;

    let (s, scopes) = call(&mut seen, &client, M::GET, &format!("{SECRETS}/scope"), None).await;
    assert_eq!(s, 200, "{scopes}");
    for scope in ["keptn-default", "keptn-webhook-service", "dynatrace-service", "keptn-prometheus-service"] {
        assert!(scopes["scopes"].as_array().unwrap().iter().any(|s| s == scope), "{scope} in {scopes}");
    }
    assert!(scopes["scopes"].as_array().unwrap().iter().any(|s| s == "keptn-lighthouse-service"), "a built-in's");

    let secret = format!("{SECRETS}/secret");
    let body = json!({ "name": "api-creds", "data": { "token": VALUE, "user": "bot" } });
    let (s, created) = call(&mut seen, &client, M::POST, &secret, Some(body.clone())).await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created, json!({ "name": "api-creds", "scope": "keptn-default", "keys": ["token", "user"] }));
    let (s, again) = call(&mut seen, &client, M::POST, &secret, Some(body.clone())).await;
    assert_eq!(s, 409, "{again}");
    assert!(message(&again).contains("already exists"), "{again}");
    let hook = json!({ "name": "api-creds", "scope": "keptn-webhook-service", "data": { "url": VALUE2 } });
    assert_eq!(call(&mut seen, &client, M::POST, &secret, Some(hook)).await.0, 201, "same name, other scope");

    // Refusals say which rule, never the value.
    let bad: &[(Value, &str)] = &[
        (json!({ "name": "x", "scope": "keptn-nope", "data": { "k": VALUE } }), "unknown scope"),
        (json!({ "name": "a".repeat(254), "data": { "k": VALUE } }), "at most 253"),
        (json!({ "name": "Bad_Name", "data": { "k": VALUE } }), "is not allowed"),
        (json!({ "name": "-x", "data": { "k": VALUE } }), "start and end"),
        (json!({ "name": "x", "data": { "bad key": VALUE } }), "key \"bad key\""),
        (json!({ "name": "x", "data": { "k": 5, "j": VALUE } }), "must be a string"),
        (json!({ "name": "x", "data": VALUE }), "needs \"data\""),
        (json!({ "name": "x", "data": {} }), "no keys"),
        (json!({ "data": { "k": VALUE } }), "needs a \"name\""),
    ];
    for (body, says) in bad {
        let (s, refused) = call(&mut seen, &client, M::POST, &secret, Some(body.clone())).await;
        assert_eq!(s, 400, "{body} → {refused}");
        assert_eq!(refused["code"], 400, "{refused}");
        assert!(message(&refused).contains(says), "{body}: {refused} should say {says:?}");
    }
    let broken = client
        .send_raw(M::POST, &secret, format!("{{\"name\": \"x\", \"data\": {{\"k\": \"{VALUE}\"").as_bytes())
        .await;
    broken.assert_error(400, "truncated JSON");
    seen.note("POST truncated", broken.status, &broken.body);

    // Listings: names, scopes and keys.
    let (s, all) = call(&mut seen, &client, M::GET, &secret, None).await;
    assert_eq!(s, 200, "{all}");
    assert_eq!(
        all,
        json!({ "Secrets": [
            { "name": "api-creds", "scope": "keptn-default", "keys": ["token", "user"] },
            { "name": "api-creds", "scope": "keptn-webhook-service", "keys": ["url"] },
        ] })
    );
    let (_, one) =
        call(&mut seen, &client, M::GET, &format!("{secret}?name=api-creds&scope=keptn-webhook-service"), None).await;
    assert_eq!(one["Secrets"].as_array().unwrap().len(), 1, "{one}");
    let (_, none) = call(&mut seen, &client, M::GET, &format!("{secret}?scope=dynatrace-service"), None).await;
    assert_eq!(none, json!({ "Secrets": [] }));

    // Updates replace keys and values.
    let update = json!({ "name": "api-creds", "data": { "token": VALUE2 } });
    let (s, updated) = call(&mut seen, &client, M::PUT, &secret, Some(update)).await;
    assert_eq!(s, 200, "{updated}");
    assert_eq!(updated["keys"], json!(["token"]));
    let missing = json!({ "name": "nope", "data": { "k": VALUE } });
    let (s, not_found) = call(&mut seen, &client, M::PUT, &secret, Some(missing)).await;
    assert_eq!(s, 404, "{not_found}");
    let (s, refused) =
        call(&mut seen, &client, M::PUT, &secret, Some(json!({ "name": "api-creds", "data": {"k": 1} }))).await;
    assert_eq!(s, 400, "{refused}");

    // What is stored: keys plain, values sealed.
    let store = server.store().await.expect("the database opens");
    let row = store.get_secret("keptn-default", "api-creds").await.unwrap().expect("stored");
    assert_eq!(row.listing.keys, ["token"]);
    let sealed = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &row.sealed).unwrap();
    assert!(!row.sealed.contains(VALUE2) && !String::from_utf8_lossy(&sealed).contains(VALUE2), "sealed at rest");

    // Deletion needs both name and scope.
    let (s, refused) = call(&mut seen, &client, M::DELETE, &format!("{secret}?name=api-creds"), None).await;
    assert_eq!(s, 400, "{refused}");
    assert!(message(&refused).contains("scope"), "{refused}");
    let (s, _) =
        call(&mut seen, &client, M::DELETE, &format!("{secret}?name=api-creds&scope=keptn-default"), None).await;
    assert_eq!(s, 200);
    let (s, gone) =
        call(&mut seen, &client, M::DELETE, &format!("{secret}?name=api-creds&scope=keptn-default"), None).await;
    assert_eq!(s, 404, "{gone}");
    let (_, left) = call(&mut seen, &client, M::GET, &secret, None).await;
    assert_eq!(left["Secrets"].as_array().unwrap().len(), 1, "{left}");

    // The API token is required, as everywhere.
    let anonymous = client.raw(M::GET, &secret, &[], None).await;
    anonymous.assert_error(401, "no token");
    seen.assert_clean();
    server.stop().await;
}

#[tokio::test]
async fn secrets_api_sqlite() {
    api(Db::Sqlite).await;
}

#[tokio::test]
async fn secrets_api_postgres() {
    api(Db::Postgres).await;
}

/// `keptn server` as a user starts it, logging everything (trace) to a file.
struct ServerProcess {
    child: Child,
    url: String,
    token: String,
    log: PathBuf,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

impl ServerProcess {
    fn start() -> ServerProcess {
        install_crypto();
        let dir = tempfile::tempdir().unwrap();
        let (log, data) = (dir.path().join("server.log"), dir.path().join("data"));
        let token = "secrets-test-token".to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_keptn"))
            .args(["server", "--listen", "127.0.0.1:0", "--integrations", "none", "--data-dir"])
            .arg(&data)
            .env("KEPTN_API_TOKEN", &token)
            .env("KEPTN_LOG", "trace")
            .env_remove("KEPTN_DATABASE_URL")
            .env_remove("KEPTN_SECRET_KEY")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = lines.next().expect("the server prints where it listens").unwrap();
            if let Some(url) = line.strip_prefix("keptn server listening on ") {
                break url.to_string();
            }
        };
        ServerProcess { child, url, token, log, data, _dir: dir }
    }

    fn client(&self) -> Client {
        Client { url: self.url.clone(), token: self.token.clone(), http: reqwest::Client::new() }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `keptn …` with the value check on what it printed.
async fn cli(cfg: &Path, args: &[&str]) -> Out {
    let o = keptn(cfg, args).await;
    assert!(!o.stdout.contains(VALUE) && !o.stderr.contains(VALUE), "a secret value in keptn {args:?}'s output: {o}");
    assert!(!o.stdout.contains(VALUE2) && !o.stderr.contains(VALUE2), "a secret value in keptn {args:?}'s output: {o}");
    o
}

/// Every file under `dir`, as bytes: the SQLite database, its write-ahead log, the key files.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_values_appear_in_no_answer_output_log_or_database_file() {
    let server = ServerProcess::start();
    let home = tempfile::tempdir().unwrap();
    let cfg = home.path();
    let o = cli(cfg, &["auth", "--endpoint", &server.url, "--api-token", &server.token]).await;
    assert!(o.ok(), "{o}");

    let literal = format!("token={VALUE}");
    let o = cli(cfg, &["create", "secret", "deploy-creds", "--from-literal", &literal, "--from-literal=user=ci"]).await;
    assert!(o.ok() && o.stdout.contains("Secret deploy-creds created in scope keptn-default"), "{o}");
    let o = cli(cfg, &["create", "secret", "deploy-creds", "--from-literal", &literal]).await;
    assert_eq!(o.code, 1, "exists: {o}");
    assert!(o.stderr.contains("already exists") && o.stderr.trim().lines().count() == 1, "{o}");
    let o = cli(cfg, &["create", "secret", "hook", "-s", "keptn-webhook-service", "--from-literal", &literal]).await;
    assert!(o.ok(), "{o}");
    let o = cli(cfg, &["create", "secret", "x", "--scope", "keptn-nope", "--from-literal", &literal]).await;
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("unknown scope \"keptn-nope\""), "{o}");
    let o = cli(cfg, &["create", "secret", "x", "--from-literal", VALUE]).await;
    assert_eq!(o.code, 1, "a pair without '=' is refused without being shown: {o}");
    assert!(o.stderr.contains("--from-literal #1 has no '='"), "{o}");

    // get secret[s]: a table of names, scopes and keys; -o json|yaml the API's answer.
    let o = cli(cfg, &["get", "secrets"]).await;
    assert!(o.ok(), "{o}");
    let table: Vec<Vec<&str>> = o.stdout.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        table,
        [
            vec!["NAME", "SCOPE", "KEYS"],
            vec!["deploy-creds", "keptn-default", "token,user"],
            vec!["hook", "keptn-webhook-service", "token"],
        ],
        "{o}"
    );
    let o = cli(cfg, &["get", "secret", "deploy-creds", "-o", "json"]).await;
    let shown: Value = serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {o}"));
    assert_eq!(shown["Secrets"][0]["keys"], json!(["token", "user"]), "{o}");
    let o = cli(cfg, &["get", "secret", "hook", "-o", "yaml"]).await;
    assert!(o.ok() && o.stdout.contains("scope: keptn-webhook-service"), "{o}");
    let o = cli(cfg, &["get", "secret", "nope"]).await;
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("keptn create secret nope"), "{o}");

    let literal2 = format!("token={VALUE2}");
    let o = cli(cfg, &["update", "secret", "deploy-creds", "--from-literal", &literal2]).await;
    assert!(o.ok() && o.stdout.contains("updated"), "{o}");
    let o = cli(cfg, &["update", "secret", "nope", "--from-literal", &literal2]).await;
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("no secret \"nope\""), "{o}");

    // The API's answers, through every operation.
    let client = server.client();
    let mut seen = Seen::default();
    let secret = format!("{SECRETS}/secret");
    call(&mut seen, &client, Method::GET, &secret, None).await;
    call(&mut seen, &client, Method::GET, &format!("{secret}?name=deploy-creds"), None).await;
    let again = json!({ "name": "api", "data": { "token": VALUE } });
    assert_eq!(call(&mut seen, &client, Method::POST, &secret, Some(again.clone())).await.0, 201);
    assert_eq!(call(&mut seen, &client, Method::POST, &secret, Some(again)).await.0, 409);
    let bad = json!({ "name": "api", "data": { "bad key": VALUE } });
    assert_eq!(call(&mut seen, &client, Method::PUT, &secret, Some(bad)).await.0, 400);
    assert_eq!(
        call(&mut seen, &client, Method::PUT, &secret, Some(json!({ "name": "api", "data": { "token": VALUE2 } })))
            .await
            .0,
        200
    );
    seen.assert_clean();

    let o = cli(cfg, &["delete", "secret", "hook", "--scope", "keptn-webhook-service"]).await;
    assert!(o.ok() && o.stdout.contains("Secret hook deleted"), "{o}");
    let o = cli(cfg, &["delete", "secret", "hook", "--scope", "keptn-webhook-service"]).await;
    assert_eq!(o.code, 1, "{o}");

    // The server's log (everything at trace level), and every file of its data dir.
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(log.contains("secret created") && log.contains("deploy-creds"), "the log tells what happened:\n{log}");
    assert!(!log.contains(VALUE) && !log.contains(VALUE2), "a secret value in the server's log");
    let files = files_under(&server.data);
    assert!(files.iter().any(|(p, _)| p.ends_with("keptn.db")), "the database is under the data dir");
    for (path, bytes) in &files {
        assert!(!contains(bytes, VALUE) && !contains(bytes, VALUE2), "a secret value in {}", path.display());
    }
}

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
"#;

/// Named like the built-in Prometheus SLI provider, so it reads the scopes `keptn-default`
/// and `keptn-prometheus-service`; on `deployment.triggered` it reads secrets and finishes.
#[derive(Default)]
struct Reader {
    read: Mutex<Vec<(String, Option<SecretData>)>>,
}

const READER: &str = "prometheus-sli-provider";
const ASKED: [&str; 5] = ["shared", "prom", "hook", "both", "missing"];

#[async_trait::async_trait]
impl Integration for Reader {
    fn name(&self) -> &'static str {
        READER
    }
    fn subscriptions(&self) -> &'static [&'static str] {
        &["sh.keptn.event.deployment.triggered"]
    }
    async fn handle(&self, event: Arc<KeptnEvent>, ctx: Arc<dyn Context>) -> ContextResult<()> {
        for name in ASKED {
            let got = ctx.secret(name).await?;
            self.read.lock().unwrap().push((name.to_string(), got));
        }
        let mut data = common_data(&event);
        data["result"] = json!("pass");
        data["status"] = json!("succeeded");
        ctx.send(answer(READER, &event, "sh.keptn.event.deployment.finished".into(), "", data)).await
    }
}

fn value(read: &[(String, Option<SecretData>)], name: &str) -> Option<String> {
    let (_, got) = read.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("{name} was read"));
    got.as_ref().map(|d| d["k"].clone())
}

async fn inprocess_scopes(db: Db) {
    let reader = Arc::new(Reader::default());
    let extra = keptn_server::InProcessIntegrations(vec![reader.clone()]);
    let Some(server) = TestServer::start_tuned(db, move |c| {
        c.integrations = Vec::new();
        c.extra_integrations = extra;
    })
    .await
    else {
        return;
    };
    let client = server.client();
    let secret = format!("{SECRETS}/secret");
    for (name, scope, v) in [
        ("shared", "keptn-default", "from-default"),
        ("prom", "keptn-prometheus-service", "from-prometheus"),
        ("hook", "keptn-webhook-service", "from-webhook"),
        ("both", "keptn-default", "both-default"),
        ("both", "keptn-prometheus-service", "both-prometheus"),
    ] {
        let (s, b) = client.post(&secret, json!({ "name": name, "scope": scope, "data": { "k": v } })).await;
        assert_eq!(s, 201, "{b}");
    }
    client.create_project("p", SHIPYARD).await;
    client.create_service("p", "svc").await;
    let context = client
        .send(json!({
            "type": "sh.keptn.event.dev.delivery.triggered",
            "source": "test",
            "data": { "project": "p", "stage": "dev", "service": "svc" }
        }))
        .await;
    let finished = client.wait_for(&context, "sh.keptn.event.dev.delivery.finished", Duration::from_secs(30)).await;
    assert_eq!(finished["data"]["result"], "pass", "{finished}");
    let read = reader.read.lock().unwrap().clone();
    assert_eq!(value(&read, "shared").as_deref(), Some("from-default"), "keptn-default: every integration's");
    assert_eq!(value(&read, "prom").as_deref(), Some("from-prometheus"), "its own scope");
    assert_eq!(value(&read, "hook"), None, "another integration's scope is not readable");
    assert_eq!(value(&read, "both").as_deref(), Some("both-default"), "the first of its scopes that has it");
    assert_eq!(value(&read, "missing"), None);
    // A context that serves no integration (the tests' control plane) reads none.
    assert_eq!(server.control_plane().secret("shared").await.unwrap(), None);
    server.stop().await;
}

#[tokio::test]
async fn inprocess_integration_reads_its_scopes_only_sqlite() {
    inprocess_scopes(Db::Sqlite).await;
}

#[tokio::test]
async fn inprocess_integration_reads_its_scopes_only_postgres() {
    inprocess_scopes(Db::Postgres).await;
}

#[cfg(unix)]
#[tokio::test]
async fn remote_integrations_read_a_private_secrets_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secrets.yaml");
    std::fs::write(
        &file,
        format!(
            "- name: hook\n  scope: keptn-webhook-service\n  data: {{ url: \"{VALUE}\" }}\n\
             - name: shared\n  data: {{ k: v }}\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = file.to_str().unwrap();
    let args = ["integration", "run", "approval", "--endpoint", "http://127.0.0.1:9", "--api-token", "t"];
    let o = keptn(dir.path(), &[&args[..], &["--secrets-file", path]].concat()).await;
    assert_ne!(o.code, 0, "{o}");
    assert!(o.stderr.contains("chmod 600") && o.stderr.contains("644"), "refused like ssh refuses a key: {o}");
    assert!(!o.stderr.contains(VALUE), "{o}");

    // What `keptn integration run` hands each integration: the API client with the file's
    // secrets, read in its key's scopes.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let secrets = Arc::new(keptn_client::LocalSecrets::load(&file).unwrap());
    let webhook = keptn_client::Client::new("http://127.0.0.1:9", "t").with_local_secrets("webhook", secrets.clone());
    assert_eq!(Context::secret(&webhook, "hook").await.unwrap().unwrap()["url"], VALUE);
    assert_eq!(Context::secret(&webhook, "shared").await.unwrap().unwrap()["k"], "v");
    let approval = keptn_client::Client::new("http://127.0.0.1:9", "t").with_local_secrets("approval", secrets);
    assert_eq!(Context::secret(&approval, "hook").await.unwrap(), None, "another integration's scope");
    assert_eq!(Context::secret(&keptn_client::Client::new("http://x", "t"), "shared").await.unwrap(), None);
}
