//! The HTTP layer under clients that misbehave: errors hyper answers itself (414, a NUL byte in
//! a header, 413) carry keptn's `{"code","message"}` body and leave no broken connection, idle
//! and header-less connections are bounded and closed, the server's files are private, and a
//! taken port fails the start before anything is created. Raw sockets, real servers.

mod support;

use serde_json::{Value, json};
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// One response read off a raw socket.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("body of {} is not JSON ({e}): {:?}", self.status, String::from_utf8_lossy(&self.body))
        })
    }
    /// keptn's error shape: `{"code": <status>, "message": "<non-empty>"}`.
    fn assert_keptn_error(&self, status: u16) {
        assert_eq!(self.status, status, "{self:?}");
        let body = self.json();
        assert_eq!(body["code"], json!(status), "{body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    }
}

/// Reads responses (content-length framed) until the server closes the connection or `quiet`
/// passes without data. Returns them and whether the connection ended cleanly (EOF, no reset).
async fn read_responses(stream: &mut TcpStream, quiet: Duration) -> (Vec<RawResponse>, bool) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let clean = loop {
        match tokio::time::timeout(quiet, stream.read(&mut chunk)).await {
            Err(_) => break false,
            Ok(Ok(0)) => break true,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(_)) => break false,
        }
    };
    let mut out = Vec::new();
    let mut rest = &buf[..];
    while let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&rest[..end]).to_string();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(0);
        let body_start = end + 4;
        let body = rest[body_start..(body_start + len).min(rest.len())].to_vec();
        rest = &rest[(body_start + len).min(rest.len())..];
        out.push(RawResponse { status, headers, body });
    }
    (out, clean)
}

fn addr_of(server: &TestServer) -> String {
    server.url.trim_start_matches("http://").to_string()
}

async fn exchange(server: &TestServer, request: &[u8]) -> (Vec<RawResponse>, bool) {
    let mut stream = TcpStream::connect(addr_of(server)).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_responses(&mut stream, Duration::from_secs(5)).await
}

async fn http_layer_errors_are_keptn_errors(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let token = server.token.clone();

    // A URI longer than hyper accepts (64 KiB): answered 414 by the HTTP layer itself.
    let long = format!("/api/mongodb-datastore/event?project={}", "a".repeat(70_000));
    let req = format!("GET {long} HTTP/1.1\r\nhost: x\r\nx-token: {token}\r\n\r\n");
    let (resps, _) = exchange(&server, req.as_bytes()).await;
    assert_eq!(resps.len(), 1, "{resps:?}");
    resps[0].assert_keptn_error(414);

    // A NUL byte in a header value is refused by the parser: 400, as JSON.
    let req = format!("GET /api/v1/metadata HTTP/1.1\r\nhost: x\r\nx-token: {token}\r\nx-bad: a\0b\r\n\r\n");
    let (resps, _) = exchange(&server, req.as_bytes()).await;
    assert_eq!(resps.len(), 1, "{resps:?}");
    resps[0].assert_keptn_error(400);

    // Headers larger than the parser's buffer: 431, as JSON.
    let req = format!(
        "GET /api/v1/metadata HTTP/1.1\r\nhost: x\r\nx-token: {token}\r\nx-big: {}\r\n\r\n",
        "b".repeat(500_000)
    );
    let (resps, _) = exchange(&server, req.as_bytes()).await;
    assert_eq!(resps.len(), 1, "{resps:?}");
    resps[0].assert_keptn_error(431);

    // The server still answers.
    let (s, b) = server.client().get("/api/v1/metadata").await;
    assert_eq!(s, 200, "{b}");
    server.stop().await;
}

#[tokio::test]
async fn http_layer_errors_are_keptn_errors_sqlite() {
    http_layer_errors_are_keptn_errors(Db::Sqlite).await;
}

#[tokio::test]
async fn http_layer_errors_are_keptn_errors_postgres() {
    http_layer_errors_are_keptn_errors(Db::Postgres).await;
}

/// A body over `--max-body-size` answers 413 as JSON, and the connection is left usable: either
/// the next request on it is answered, or the 413 said `connection: close` and the server closed
/// it cleanly (no reset that would lose the 413 itself).
async fn oversized_body_leaves_no_broken_connection(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let token = server.token.clone();
    let body = format!(r#"{{"type":"sh.keptn.event.dev.delivery.triggered","x":"{}"}}"#, "x".repeat(4_000_000));
    for declared in [true, false] {
        let framing = if declared {
            format!("content-length: {}\r\n", body.len())
        } else {
            "transfer-encoding: chunked\r\n".to_string()
        };
        let payload = if declared { body.clone() } else { format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len()) };
        let req = format!(
            "POST /api/v1/event HTTP/1.1\r\nhost: x\r\nx-token: {token}\r\ncontent-type: application/json\r\n{framing}\r\n{payload}\
             GET /api/v1/metadata HTTP/1.1\r\nhost: x\r\nx-token: {token}\r\n\r\n"
        );
        let (resps, clean) = exchange(&server, req.as_bytes()).await;
        assert!(!resps.is_empty(), "no response at all (declared length: {declared})");
        resps[0].assert_keptn_error(413);
        let closes = resps[0].header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if closes {
            assert!(clean, "the server said close but reset the connection (declared length: {declared})");
        } else {
            assert_eq!(
                resps.len(),
                2,
                "the request after the 413 got no answer (declared length: {declared}): {resps:?}"
            );
            assert_eq!(resps[1].status, 200, "{:?}", resps[1]);
        }
    }
    // And a keptn client (reqwest, pooled connections) sees 413 and then a working server.
    let client = server.client();
    let (s, b) = client.post("/api/v1/event", json!({ "type": "t", "x": "x".repeat(100_000) })).await;
    assert_eq!(s, 413, "{b}");
    assert_eq!(b["code"], json!(413), "{b}");
    let (s, b) = client.get("/api/v1/metadata").await;
    assert_eq!(s, 200, "{b}");
    server.stop().await;
}

#[tokio::test]
async fn oversized_body_leaves_no_broken_connection_sqlite() {
    oversized_body_leaves_no_broken_connection(Db::Sqlite).await;
}

#[tokio::test]
async fn oversized_body_leaves_no_broken_connection_postgres() {
    oversized_body_leaves_no_broken_connection(Db::Postgres).await;
}

/// `Authorization: bearer …` works in any case of the scheme (RFC 9110); a wrong token does not.
async fn bearer_scheme_is_case_insensitive(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let resp = server
            .http
            .get(format!("{}/api/v1/metadata", server.url))
            .header("authorization", format!("{scheme} {}", server.token))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{scheme}");
    }
    let resp = server
        .http
        .get(format!("{}/api/v1/metadata", server.url))
        .header("authorization", "bearer wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    server.stop().await;
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive_sqlite() {
    bearer_scheme_is_case_insensitive(Db::Sqlite).await;
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive_postgres() {
    bearer_scheme_is_case_insensitive(Db::Postgres).await;
}

/// Request bodies are JSON objects: an array (which serde would read as a struct by position),
/// a string or a number is a 400 that says so, on the evaluation endpoint and the others.
async fn non_object_bodies_are_rejected(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let client = server.client();
    client.create_project("p", SHIPYARD).await;
    client.create_service("p", "carts").await;
    let cp = "/api/controlPlane/v1";
    let evaluation = format!("{cp}/project/p/stage/dev/service/carts/evaluation");
    for body in [json!([]), json!(["1h"]), json!(["", "", "5m"]), json!("5m"), json!(7), json!(null)] {
        let (s, b) = client.post(&evaluation, body.clone()).await;
        assert_eq!(s, 400, "evaluation with {body}: {b}");
        assert_eq!(b["code"], json!(400), "{b}");
        assert!(b["message"].as_str().unwrap().contains("JSON object"), "{b}");
    }
    for (path, body) in [
        (format!("{cp}/project"), json!(["q", b64(SHIPYARD)])),
        (format!("{cp}/project/p/service"), json!(["orders"])),
        ("/api/v1/event".to_string(), json!([{ "type": "sh.keptn.event.dev.delivery.triggered" }])),
    ] {
        let (s, b) = client.post(&path, body.clone()).await;
        assert_eq!(s, 400, "{path} with {body}: {b}");
        assert!(b["message"].as_str().unwrap().contains("JSON object"), "{b}");
    }
    let (s, b) = client.get(&format!("{cp}/project/p/stage/dev/service/orders")).await;
    assert_ne!(s, 200, "no service was created from an array body: {b}");
    let (s, b) = client.get(&format!("{cp}/project/q")).await;
    assert_eq!(s, 404, "no project was created from an array body: {b}");
    // An empty body and an object still trigger an evaluation.
    let (s, b) = client.post(&evaluation, json!({ "timeframe": "5m" })).await;
    assert_eq!(s, 200, "{b}");
    server.stop().await;
}

#[tokio::test]
async fn non_object_bodies_are_rejected_sqlite() {
    non_object_bodies_are_rejected(Db::Sqlite).await;
}

#[tokio::test]
async fn non_object_bodies_are_rejected_postgres() {
    non_object_bodies_are_rejected(Db::Postgres).await;
}

/// Connections that never send a header, more of them than `--max-connections`: those over the
/// limit get a 503 at once, the idle ones are closed after the header-read timeout, and a
/// legitimate request succeeds meanwhile-or-right-after instead of timing out.
async fn idle_connections_are_bounded_and_closed(db: Db) {
    let Some(server) = TestServer::start_tuned(db, |c| {
        c.http.max_connections = 8;
        c.http.header_read_timeout = Duration::from_millis(1500);
        c.http.idle_timeout = Duration::from_millis(1500);
    })
    .await
    else {
        return;
    };
    let addr = addr_of(&server);
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(TcpStream::connect(&addr).await.unwrap());
    }
    // A ninth connection is over the limit: a quick 503 with keptn's body, then close.
    let started = std::time::Instant::now();
    let mut over = TcpStream::connect(&addr).await.unwrap();
    let (resps, clean) = read_responses(&mut over, Duration::from_secs(3)).await;
    assert_eq!(resps.len(), 1, "{resps:?}");
    resps[0].assert_keptn_error(503);
    assert!(resps[0].json()["message"].as_str().unwrap().contains("--max-connections"), "{resps:?}");
    assert!(clean && started.elapsed() < Duration::from_secs(2), "503 not answered at once");
    // The silent ones are closed by the server after the header-read timeout (EOF, no answer needed).
    for stream in &mut idle {
        let (_, closed) = read_responses(stream, Duration::from_secs(3)).await;
        assert!(closed, "an idle connection without a request head was not closed");
    }
    assert!(started.elapsed() < Duration::from_secs(4), "idle connections took {:?} to close", started.elapsed());
    // A slot is free again: a legitimate request succeeds.
    let (s, b) = server.client().get("/api/v1/metadata").await;
    assert_eq!(s, 200, "{b}");

    // A keep-alive connection idle after its response, and one stalled mid-body, are closed too.
    let token = server.token.clone();
    let mut kept = TcpStream::connect(&addr).await.unwrap();
    kept.write_all(format!("GET /api/v1/metadata HTTP/1.1\r\nhost: x\r\nx-token: {token}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (resps, closed) = read_responses(&mut kept, Duration::from_secs(3)).await;
    assert_eq!(resps.first().map(|r| r.status), Some(200), "{resps:?}");
    assert!(closed, "an idle keep-alive connection was not closed");
    let mut stalled = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/event HTTP/1.1\r\nhost: x\r\nx-token: {token}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"type\":"
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    let (resps, closed) = read_responses(&mut stalled, Duration::from_secs(3)).await;
    assert!(closed, "a connection stalled mid-body was not closed: {resps:?}");
    server.stop().await;
}

#[tokio::test]
async fn idle_connections_are_bounded_and_closed_sqlite() {
    idle_connections_are_bounded_and_closed(Db::Sqlite).await;
}

#[tokio::test]
async fn idle_connections_are_bounded_and_closed_postgres() {
    idle_connections_are_bounded_and_closed(Db::Postgres).await;
}

/// Nothing under the data dir is readable by group or others: a fresh data dir is created
/// 0700, an existing 0755 one is made 0700, and the database, git repositories and keys are 0600.
#[cfg(unix)]
async fn data_dir_is_private(db: Db, existing: bool) {
    use std::os::unix::fs::PermissionsExt as _;
    let outer = tempfile::tempdir().unwrap();
    let data = outer.path().join("data");
    if existing {
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let data_dir = data.clone();
    let Some(server) = TestServer::start_tuned(db, move |c| c.data_dir = data_dir).await else { return };
    let client = server.client();
    client.create_project("p", SHIPYARD).await;
    client.create_service("p", "carts").await;
    let mut open = Vec::new();
    let mut seen = 0;
    let mut stack = vec![data.clone()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        seen += 1;
        if meta.permissions().mode() & 0o077 != 0 {
            open.push(format!("{:o} {}", meta.permissions().mode() & 0o777, path.display()));
        }
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
    assert!(seen > 10, "the data dir holds the repositories ({seen} entries)");
    assert!(open.is_empty(), "group/other can access:\n{}", open.join("\n"));
    server.stop().await;
}

#[cfg(unix)]
#[tokio::test]
async fn data_dir_is_private_sqlite() {
    data_dir_is_private(Db::Sqlite, false).await;
    data_dir_is_private(Db::Sqlite, true).await;
}

#[cfg(unix)]
#[tokio::test]
async fn data_dir_is_private_postgres() {
    data_dir_is_private(Db::Postgres, false).await;
}

/// `keptn server` on a taken port names the flag to change and creates nothing (no data dir,
/// no token, no database).
#[tokio::test]
async fn taken_port_names_the_flag_and_creates_nothing() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let outer = tempfile::tempdir().unwrap();
    let data = outer.path().join("fresh-data");
    let listen = format!("127.0.0.1:{port}");
    let out =
        support::cli::keptn(outer.path(), &["server", "--listen", &listen, "--data-dir", data.to_str().unwrap()]).await;
    assert!(!out.ok(), "{out}");
    assert!(out.stderr.contains(&listen), "{out}");
    assert!(out.stderr.contains("--listen") && out.stderr.contains("KEPTN_LISTEN"), "{out}");
    assert!(!data.exists(), "the data dir was created before the port was checked: {out}");
}
