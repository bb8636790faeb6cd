//! The outbound policy at the API: with the production default (loopback, link-local, metadata
//! and private targets denied) a pushURL or git upstream pointing inside is refused, at
//! registration when its host is a literal and at delivery when a name resolves inside; and a
//! pushURL's password is never shown and never stored in clear. SQLite and PostgreSQL.

mod support;

use axum::http::HeaderMap;
use keptn_testgit::{HttpRemote, init_bare};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
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

fn registration(name: &str, push_url: &str) -> Value {
    json!({
        "name": name,
        "metadata": { "hostname": "node-1", "kubernetesmetadata": { "namespace": "keptn" } },
        "subscriptions": [{ "event": "sh.keptn.event.deployment.triggered", "filter": { "projects": ["p"] } }],
        "pushURL": push_url,
    })
}

/// An endpoint on loopback recording the Authorization header of every POST.
async fn endpoint() -> (u16, Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let hits: Arc<Mutex<Vec<String>>> = Arc::default();
    let h = hits.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap| {
        let h = h.clone();
        async move {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            h.lock().unwrap().push(auth);
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, hits, task)
}

async fn internal_push_urls_are_refused_at_registration(db: Db) {
    let Some(server) = TestServer::start_strict(db).await else { return };
    let client = server.client();
    for url in [
        "http://127.0.0.1:8080/events",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://0x7f000001:8080/",
        "http://2130706433/",
        "http://[::1]:8080/",
        "http://[fd00:ec2::254]/",
        "http://10.0.0.7/",
        "http://0.0.0.0:8080/",
        "http://admin:pw-secret@127.0.0.1/",
    ] {
        let (s, b) = client.post(REG, registration("pusher", url)).await;
        assert_eq!((s, &b["code"]), (400, &json!(400)), "{url}: {b}");
        let message = b["message"].as_str().unwrap();
        assert!(message.contains("is refused: "), "{url}: {message}");
        assert!(message.contains("which the server's outbound policy denies"), "{url}: {message}");
        assert!(message.contains("--allow-outbound"), "{url}: {message}");
        assert!(!message.contains("pw-secret") && !message.contains("admin"), "{message}");
    }
    let (_, list) = client.get(REG).await;
    assert!(list.as_array().unwrap().iter().all(|i| i["name"] != "pusher"), "nothing registered: {list}");
    server.stop().await;
}

async fn a_push_url_resolving_inside_is_refused_at_delivery(db: Db) {
    let Some(server) = TestServer::start_strict(db).await else { return };
    let client = server.client();
    client.create_project("p", SHIPYARD).await;
    client.create_service("p", "carts").await;
    let (port, hits, task) = endpoint().await;
    let (s, b) = client.post(REG, registration("pusher", &format!("http://admin:pw-secret@localhost:{port}/e"))).await;
    assert_eq!(s, 201, "a name is checked when it resolves, at delivery: {b}");
    let id = b["id"].as_str().unwrap().to_string();
    let ctx = client
        .send(json!({ "type": "sh.keptn.event.dev.delivery.triggered", "source": "t", "data": { "project": "p", "stage": "dev", "service": "carts" } }))
        .await;
    let triggered = client.wait_for(&ctx, "sh.keptn.event.deployment.triggered", Duration::from_secs(5)).await;
    let logs = eventually(Duration::from_secs(5), "the refusal in the integration's log", || async {
        let (_, b) = client.get(&format!("{CP}/log?integrationId={id}")).await;
        (b["totalCount"] == 1).then_some(b)
    })
    .await;
    let entry = &logs["logs"][0];
    let message = entry["message"].as_str().unwrap();
    assert!(message.contains(&format!("to http://***@localhost:{port}/e failed: localhost resolves to ")), "{message}");
    assert!(message.contains("a loopback address, which the server's outbound policy denies"), "{message}");
    assert!(!message.contains("pw-secret") && !message.contains("admin"), "{message}");
    assert_eq!(entry["triggeredid"], triggered["id"]);
    assert_eq!(entry["shkeptncontext"], ctx.as_str());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(hits.lock().unwrap().is_empty(), "nothing reached the endpoint");
    assert_eq!(
        client.get(&format!("{CP}/log?integrationId={id}")).await.1["totalCount"],
        1,
        "refused once, not retried"
    );
    task.abort();
    server.stop().await;
}

/// Every file under `dir`, as bytes.
fn files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
    out
}

async fn push_url_passwords_are_redacted_and_sealed(db: Db) {
    let Some(mut server) = TestServer::start(db).await else { return };
    let client = server.client();
    client.create_project("p", SHIPYARD).await;
    client.create_service("p", "carts").await;
    let (port, hits, task) = endpoint().await;
    let url = format!("http://pusher:pw-s3cret@127.0.0.1:{port}/events");
    let shown = format!("http://***@127.0.0.1:{port}/events");
    let (s, b) = client.post(REG, registration("pusher", &url)).await;
    assert_eq!(s, 201, "{b}");
    let id = b["id"].as_str().unwrap().to_string();
    let (_, one) = client.get(&format!("{REG}/{id}")).await;
    assert_eq!(one["pushURL"], shown.as_str(), "{one}");
    let (_, list) = client.get(REG).await;
    assert!(!list.to_string().contains("pw-s3cret"), "{list}");
    let (_, pinged) = client.put(&format!("{REG}/{id}/ping"), json!({})).await;
    assert_eq!(pinged["pushURL"], shown.as_str(), "{pinged}");
    assert!(!pinged.to_string().contains("pushURLSealed"), "{pinged}");

    // At rest: not in the database (SQLite files; PostgreSQL through the store).
    if let Some(store) = server.store().await {
        let stored = store.list_integrations().await.unwrap();
        assert!(stored.iter().any(|i| i["id"] == id.as_str()), "{stored:?}");
        assert!(!format!("{stored:?}").contains("pw-s3cret"), "{stored:?}");
    }
    for (path, bytes) in files(server.dir.path()) {
        assert!(!bytes.windows(9).any(|w| w == b"pw-s3cret"), "in clear in {}", path.display());
    }

    // A client sending back what it read keeps the password; delivery uses it, after a restart too.
    let mut again = one.clone();
    again["metadata"]["integrationversion"] = json!("2");
    let (s, b) = client.post(REG, again).await;
    assert_eq!(s, 200, "{b}");
    // A row an older version stored in clear is sealed at start.
    let legacy = json!({ "id": "legacy", "name": "legacy", "pushURL": "http://u:legacy-pw@example.com/" });
    server.store().await.unwrap().upsert_integration("legacy", "legacy", 1, &legacy).await.unwrap();
    server.restart().await;
    let stored = server.store().await.unwrap().get_integration("legacy").await.unwrap().unwrap();
    assert_eq!(stored["pushURL"], "http://***@example.com/", "{stored}");
    assert!(!stored.to_string().contains("legacy-pw"), "{stored}");
    let client = server.client();
    let (_, shown_legacy) = client.get(&format!("{REG}/legacy")).await;
    assert_eq!(shown_legacy["pushURL"], "http://***@example.com/", "{shown_legacy}");
    client
        .send(json!({ "type": "sh.keptn.event.dev.delivery.triggered", "source": "t", "data": { "project": "p", "stage": "dev", "service": "carts" } }))
        .await;
    let auth =
        eventually(Duration::from_secs(5), "a delivery", || async { hits.lock().unwrap().first().cloned() }).await;
    use base64::Engine as _;
    let want = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("pusher:pw-s3cret"));
    assert_eq!(auth, want, "the sealed password is used");
    task.abort();
    server.stop().await;
}

async fn git_upstreams_inside_are_refused(db: Db) {
    let Some(server) = TestServer::start_strict(db).await else { return };
    let client = server.client();
    let remotes = tempfile::tempdir().unwrap();
    init_bare(remotes.path(), "p.git");
    let remote = HttpRemote::start(remotes.path(), Some(("keptn", "t0ken")));
    let url = remote.url("p.git");
    let localhost = url.replace("127.0.0.1", "localhost");
    for url in [url.as_str(), localhost.as_str()] {
        let creds = json!({ "remoteURL": url, "user": "keptn", "https": { "token": "t0ken" } });
        let body = json!({ "name": "p", "shipyard": b64(SHIPYARD), "gitCredentials": creds });
        let (s, b) = client.post(&format!("{CP}/project"), body).await;
        assert_eq!((s, &b["code"]), (400, &json!(400)), "{url}: {b}");
        let message = b["message"].as_str().unwrap();
        assert!(message.contains("is refused: "), "{url}: {message}");
        assert!(message.contains("--allow-outbound loopback"), "{url}: {message}");
        assert!(!message.contains("t0ken"), "{message}");
    }
    assert_eq!(remote.requests(), 0, "libgit2 never connected");
    let (s, _) = client.get(&format!("{CP}/project/p")).await;
    assert_eq!(s, 404, "no project was created");
    server.stop().await;
}

#[tokio::test]
async fn a_bad_allow_outbound_value_stops_the_server_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let args = ["server", "--data-dir", data_arg, "--listen", "127.0.0.1:0", "--allow-outbound", "loopback,intranet"];
    let out = support::cli::keptn(dir.path(), &args).await;
    assert!(!out.ok(), "{out}");
    assert!(
        out.stderr.contains(
            r#"--allow-outbound "intranet" must be loopback, private, an IP address or a CIDR such as 10.0.0.0/8"#
        ),
        "{out}"
    );
    assert!(!data.exists(), "nothing created");
}

#[tokio::test]
async fn internal_push_urls_are_refused_at_registration_sqlite() {
    internal_push_urls_are_refused_at_registration(Db::Sqlite).await;
}

#[tokio::test]
async fn internal_push_urls_are_refused_at_registration_postgres() {
    internal_push_urls_are_refused_at_registration(Db::Postgres).await;
}

#[tokio::test]
async fn a_push_url_resolving_inside_is_refused_at_delivery_sqlite() {
    a_push_url_resolving_inside_is_refused_at_delivery(Db::Sqlite).await;
}

#[tokio::test]
async fn a_push_url_resolving_inside_is_refused_at_delivery_postgres() {
    a_push_url_resolving_inside_is_refused_at_delivery(Db::Postgres).await;
}

#[tokio::test]
async fn push_url_passwords_are_redacted_and_sealed_sqlite() {
    push_url_passwords_are_redacted_and_sealed(Db::Sqlite).await;
}

#[tokio::test]
async fn push_url_passwords_are_redacted_and_sealed_postgres() {
    push_url_passwords_are_redacted_and_sealed(Db::Postgres).await;
}

#[tokio::test]
async fn git_upstreams_inside_are_refused_sqlite() {
    git_upstreams_inside_are_refused(Db::Sqlite).await;
}

#[tokio::test]
async fn git_upstreams_inside_are_refused_postgres() {
    git_upstreams_inside_are_refused(Db::Postgres).await;
}
