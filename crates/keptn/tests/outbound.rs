//! The outbound policy at the API: with the production default (loopback, link-local, metadata
//! and private targets denied) a pushURL or git upstream pointing inside is refused, at
//! registration when its host is a literal and at delivery when a name resolves inside;. SQLite and PostgreSQL.

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
async fn git_upstreams_inside_are_refused_sqlite() {
    git_upstreams_inside_are_refused(Db::Sqlite).await;
}

#[tokio::test]
async fn git_upstreams_inside_are_refused_postgres() {
    git_upstreams_inside_are_refused(Db::Postgres).await;
}
