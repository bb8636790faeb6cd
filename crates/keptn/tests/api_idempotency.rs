//! `POST /api/v1/event` with an `Idempotency-Key` header: the key becomes the stored event's id
//! and a repeat (a retried request, an integration answering again after a restart) is dropped,
//! so a sequence starts once. A key that is not a non-empty ASCII string is keptn's 400. Over
//! raw HTTP, SQLite and PostgreSQL.

mod support;

use serde_json::{Value, json};
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

fn trigger(context: &str, tag: &str) -> Vec<u8> {
    let ev = json!({
        "type": "sh.keptn.event.dev.delivery.triggered",
        "specversion": "1.0",
        "source": "test",
        "shkeptncontext": context,
        "data": { "project": "p", "stage": "dev", "service": "svc", "tag": tag }
    });
    serde_json::to_vec(&ev).unwrap()
}

async fn post(client: &Client, key: Option<&str>, body: Vec<u8>) -> Raw {
    let token = client.token.clone();
    let mut headers = vec![("x-token", token.as_str()), ("content-type", "application/json")];
    if let Some(k) = key {
        headers.push(("Idempotency-Key", k));
    }
    client.raw(reqwest::Method::POST, "/api/v1/event", &headers, Some(body)).await
}

async fn by_id(client: &Client, id: &str) -> Vec<Value> {
    let (s, b) = client.get(&format!("/api/mongodb-datastore/event?eventID={id}")).await;
    assert_eq!(s, 200, "{b}");
    b["events"].as_array().cloned().unwrap_or_default()
}

async fn idempotency(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let client = server.client();
    client.create_project("p", SHIPYARD).await;
    client.create_service("p", "svc").await;

    let context = uuid::Uuid::new_v4().to_string();
    let key = uuid::Uuid::new_v4().to_string();
    let first = post(&client, Some(&key), trigger(&context, "first")).await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.body["keptnContext"], context.as_str(), "{first:?}");
    // A retry, even with another body, is accepted and changes nothing.
    let again = post(&client, Some(&key), trigger(&context, "second")).await;
    assert_eq!(again.status, 200, "{again:?}");

    let stored = by_id(&client, &key).await;
    assert_eq!(stored.len(), 1, "one event under the key: {stored:#?}");
    assert_eq!(stored[0]["id"], key.as_str());
    assert_eq!(stored[0]["data"]["tag"], "first", "the first one is kept");
    // The sequence started once: one deployment task.
    client.wait_for(&context, "sh.keptn.event.deployment.triggered", Duration::from_secs(10)).await;
    let events = client.events_of(&context).await;
    let triggered = events.iter().filter(|e| e["type"] == "sh.keptn.event.dev.delivery.triggered").count();
    let tasks = events.iter().filter(|e| e["type"] == "sh.keptn.event.deployment.triggered").count();
    assert_eq!((triggered, tasks), (1, 1), "{events:#?}");

    // Without the header every POST is a new event with a new id, as in keptn.
    let other = uuid::Uuid::new_v4().to_string();
    for _ in 0..2 {
        let r = post(&client, None, trigger(&other, "x")).await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    let events = client.events_of(&other).await;
    let triggered: Vec<&Value> =
        events.iter().filter(|e| e["type"] == "sh.keptn.event.dev.delivery.triggered").collect();
    assert_eq!(triggered.len(), 2, "{events:#?}");
    assert_ne!(triggered[0]["id"], triggered[1]["id"]);

    // An empty key is keptn's 400, and nothing is stored.
    let bad_ctx = uuid::Uuid::new_v4().to_string();
    post(&client, Some(""), trigger(&bad_ctx, "x")).await.assert_error(400, "empty Idempotency-Key");
    // A non-ASCII key, which a well-behaved client cannot even send: over a raw socket.
    let (status, body) = raw_post_with_key(&server.url, &server.token, b"caf\xc3\xa9", &trigger(&bad_ctx, "x")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], 400, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("Idempotency-Key")), "{body}");
    assert!(client.events_of(&bad_ctx).await.is_empty(), "a refused event is not stored");
    server.stop().await;
}

/// One HTTP/1.1 POST over a raw socket with arbitrary header bytes; (status, JSON body).
async fn raw_post_with_key(url: &str, token: &str, key: &[u8], body: &[u8]) -> (u16, Value) {
    let addr = url.trim_start_matches("http://");
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "POST /api/v1/event HTTP/1.1\r\nhost: {addr}\r\nx-token: {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nidempotency-key: ",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(key);
    req.extend_from_slice(b"\r\n\r\n");
    req.extend_from_slice(body);
    sock.write_all(&req).await.unwrap();
    let mut resp = Vec::new();
    sock.read_to_end(&mut resp).await.unwrap();
    let text = String::from_utf8_lossy(&resp);
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::String(body.into())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_sqlite() {
    idempotency(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_postgres() {
    idempotency(Db::Postgres).await;
}
