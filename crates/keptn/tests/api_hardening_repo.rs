//! The configuration repository against hostile or careless input over HTTP: names git can't
//! store, `metadata.yaml`, shipyards that are circular, of another format or huge, and a read of
//! a file that so far exists only upstream. SQLite and PostgreSQL.

mod support;

use keptn_testgit::bare::commit_file as commit_upstream;
use keptn_testgit::{HttpRemote, init_bare};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

const CP: &str = "/api/controlPlane/v1";
const RS: &str = "/api/resource-service/v1";

const SHIPYARD: &str = r#"apiVersion: spec.keptn.sh/0.2.3
kind: Shipyard
metadata: { name: shipyard-p }
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: deployment
    - name: prod
      sequences:
        - name: delivery
          triggeredOn:
            - event: dev.delivery.finished
          tasks:
            - name: deployment
"#;

fn resources(uri: &str, content: &[u8]) -> Value {
    use base64::Engine as _;
    let content = base64::engine::general_purpose::STANDARD.encode(content);
    json!({ "resources": [ { "resourceURI": uri, "resourceContent": content } ] })
}

fn chart_with(path: &str) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()));
    for (p, content) in [("carts/Chart.yaml", "name: carts\n"), (path, "x")] {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, p, content.as_bytes()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// `git fsck --strict` of the project's repository finds nothing wrong, not even a stray object.
fn assert_fsck_clean(repo: &Path) {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(["fsck", "--strict", "--unreachable", "--no-progress"])
        .output()
        .unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.trim().is_empty(), "git fsck: {report}");
}

fn assert_bad_request(what: &str, status: u16, body: &Value, needle: &str) {
    assert_eq!(status, 400, "{what}: {body}");
    assert_eq!(body["code"], 400, "{what}: {body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "{what}: the message says {needle:?}: {body}");
    assert!(message.len() < 500, "{what}: the message does not echo a long name back: {}", message.len());
}

async fn names_git_cannot_store(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let client = server.client();
    client.create_project("p", SHIPYARD).await;
    client.create_service("p", "carts").await;
    let repo = server.dir.path().join("config/p");
    let stage = format!("{RS}/project/p/stage/dev/resource");
    let deep = vec!["abcdefgh"; 460].join("/");
    let long = "a".repeat(256);
    for uri in [long.as_str(), &deep, ".git.", "x/.git ", ".git::$INDEX_ALLOCATION/config", "x/.GIT:$DATA"] {
        let (s, b) = client.post(&stage, resources(uri, b"x")).await;
        assert_bad_request(&uri[..uri.len().min(40)], s, &b, "invalid resource URI");
    }
    // A 70,000-byte name inside a helm chart (small once compressed).
    let service = format!("{RS}/project/p/stage/dev/service/carts/resource");
    let name = format!("carts/templates/{}", "a".repeat(70_000));
    let (s, b) = client.post(&service, resources("helm/carts.tgz", &chart_with(&name))).await;
    assert_bad_request("70,000-byte helm entry", s, &b, "can't be stored in git");

    // The stage and its service are intact and writable.
    let (s, b) = client.post(&stage, resources("ok.yaml", b"fine")).await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = client.post(&service, resources("helm/carts.tgz", &chart_with("carts/values.yaml"))).await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = client.get(&format!("{CP}/project/p/stage/dev/service/carts")).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) =
        client.get(&format!("{RS}/project/p/stage/dev/service/carts/resource/helm%2Fcarts%2Fvalues.yaml")).await;
    assert_eq!(s, 200, "{b}");
    assert_fsck_clean(&repo);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_git_cannot_store_sqlite() {
    names_git_cannot_store(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_git_cannot_store_postgres() {
    names_git_cannot_store(Db::Postgres).await;
}

async fn metadata_yaml_is_not_writable(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let client = server.client();
    client.create_project("p", SHIPYARD).await;
    client.create_service("p", "carts").await;
    let evil = b"projectName: evil\n";
    for (level, uri) in [
        ("", "metadata.yaml"),
        ("/stage/dev", "/metadata.yaml"),
        ("/stage/dev", "orders/metadata.yaml"),
        ("/stage/dev/service/carts", "metadata.yaml"),
    ] {
        let (s, b) = client.post(&format!("{RS}/project/p{level}/resource"), resources(uri, evil)).await;
        assert_bad_request(&format!("POST {level} {uri}"), s, &b, "managed by keptn");
    }
    let (s, b) = client
        .put(&format!("{RS}/project/p/stage/dev/resource/metadata.yaml"), json!({ "resourceContent": b64("x") }))
        .await;
    assert_bad_request("PUT stage metadata.yaml", s, &b, "managed by keptn");
    let (s, b) = client.get(&format!("{RS}/project/p/resource/metadata.yaml")).await;
    assert_eq!(s, 200, "{b}");
    assert!(!unb64(&b["resourceContent"]).contains("evil"), "{b}");
    // No service "orders" appeared in the stage's repository.
    let (s, b) = client.get(&format!("{RS}/project/p/stage/dev/service/orders/resource")).await;
    assert_eq!(s, 404, "{b}");
    server.stop().await;
}

fn unb64(v: &Value) -> String {
    use base64::Engine as _;
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_yaml_is_not_writable_sqlite() {
    metadata_yaml_is_not_writable(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_yaml_is_not_writable_postgres() {
    metadata_yaml_is_not_writable(Db::Postgres).await;
}

async fn shipyards_of_another_format_or_circular(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let client = server.client();
    let create = |name: &str, yaml: String| json!({ "name": name, "shipyard": b64(&yaml) });
    let circular = SHIPYARD.replacen(
        "        - name: delivery\n          tasks:",
        "        - name: delivery\n          triggeredOn:\n            - event: prod.delivery.finished\n          tasks:",
        1,
    );
    let cases = [
        (SHIPYARD.replace("0.2.3", "0.3.0"), "spec.keptn.sh/0.2.x"),
        (SHIPYARD.replace("spec.keptn.sh/0.2.3", "spec.keptn.sh/1.0"), "spec.keptn.sh/0.2.x"),
        (circular.clone(), "dev.delivery → prod.delivery → dev.delivery"),
    ];
    for (yaml, needle) in &cases {
        let (s, b) = client.post(&format!("{CP}/project"), create("q", yaml.clone())).await;
        assert_bad_request(needle, s, &b, needle);
    }
    let (s, b) = client.get(&format!("{CP}/project")).await;
    assert_eq!((s, b["totalCount"].as_i64()), (200, Some(0)), "nothing was created: {b}");
    // Written as the project's shipyard.yaml, or through PUT /project: refused alike.
    client.create_project("p", SHIPYARD).await;
    for (yaml, needle) in &cases {
        let (s, b) = client
            .put(&format!("{RS}/project/p/resource/shipyard.yaml"), json!({ "resourceContent": b64(yaml) }))
            .await;
        assert_bad_request(needle, s, &b, needle);
        let (s, b) = client.put(&format!("{CP}/project"), create("p", yaml.clone())).await;
        assert_bad_request(needle, s, &b, needle);
    }
    let (_, b) = client.get(&format!("{CP}/project/p")).await;
    assert_eq!(b["shipyard"].as_str(), Some(SHIPYARD), "the shipyard is unchanged: {b}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipyards_of_another_format_or_circular_sqlite() {
    shipyards_of_another_format_or_circular(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipyards_of_another_format_or_circular_postgres() {
    shipyards_of_another_format_or_circular(Db::Postgres).await;
}

fn shipyard_with_stages(n: usize) -> String {
    let stages: String = (0..n).map(|i| format!("{{name: s{i}}},")).collect();
    format!("apiVersion: spec.keptn.sh/0.2.3\nspec: {{stages: [{stages}]}}\n")
}

/// Commits on the project's branch.
fn commits(repo: &Path) -> usize {
    let git = git2::Repository::open_bare(repo).unwrap();
    let mut walk = git.revwalk().unwrap();
    walk.push_ref("refs/heads/master").unwrap();
    walk.count()
}

async fn huge_shipyards_are_refused_and_projects_are_one_commit(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let client = server.client();
    // A client that gives up after 5 s: the answer must come before, and nothing may keep
    // running after it.
    let impatient = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let started = Instant::now();
    let body = json!({ "name": "huge", "shipyard": b64(&shipyard_with_stages(3_000)) });
    let resp = impatient
        .post(format!("{}{CP}/project", client.url))
        .header("x-token", &client.token)
        .json(&body)
        .send()
        .await
        .expect("answered before the client gives up");
    let (s, b) = (resp.status().as_u16(), resp.json::<Value>().await.unwrap());
    assert_bad_request("3,000 stages", s, &b, "more than 100 stages");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!server.dir.path().join("config/huge").exists(), "no repository was started");

    // The largest allowed project is one commit.
    let (s, b) = client
        .post(&format!("{CP}/project"), json!({ "name": "big", "shipyard": b64(&shipyard_with_stages(100)) }))
        .await;
    assert_eq!(s, 201, "{b}");
    let repo = server.dir.path().join("config/big");
    assert_eq!(commits(&repo), 1, "metadata, 100 stages and shipyard.yaml in one commit");
    let (s, b) = client.get(&format!("{RS}/project/big/stage/s99/resource/metadata.yaml")).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = client.get(&format!("{RS}/project/big/resource/shipyard.yaml")).await;
    assert_eq!(s, 200, "{b}");
    assert_fsck_clean(&repo);
    // Stopping does not wait on anything left over.
    tokio::time::timeout(Duration::from_secs(10), server.stop()).await.expect("the server stops promptly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_shipyards_are_refused_and_projects_are_one_commit_sqlite() {
    huge_shipyards_are_refused_and_projects_are_one_commit(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_shipyards_are_refused_and_projects_are_one_commit_postgres() {
    huge_shipyards_are_refused_and_projects_are_one_commit(Db::Postgres).await;
}

async fn a_file_pushed_upstream_is_found(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let client = server.client();
    let remotes = tempfile::tempdir().unwrap();
    let bare = init_bare(remotes.path(), "p.git");
    let remote = HttpRemote::start(remotes.path(), Some(("keptn", "t0ken")));
    let creds = json!({ "remoteURL": remote.url("p.git"), "user": "keptn", "https": { "token": "t0ken" } });
    let (s, b) = client
        .post(&format!("{CP}/project"), json!({ "name": "p", "shipyard": b64(SHIPYARD), "gitCredentials": creds }))
        .await;
    assert_eq!(s, 201, "{b}");

    // Someone pushes a file; once what we fetched is older than the freshness window (200 ms in
    // tests), the first read of it fetches.
    let theirs = commit_upstream(&bare, ".keptn-stages/dev/pushed.yaml", "from upstream\n");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, b) = client.get(&format!("{RS}/project/p/stage/dev/resource/pushed.yaml")).await;
    assert_eq!(s, 200, "a file that exists upstream is found: {b}");
    assert_eq!(unb64(&b["resourceContent"]), "from upstream\n");
    assert_eq!(b["metadata"]["version"], theirs.as_str(), "{b}");

    // A file that exists nowhere is still a 404, after asking the upstream.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = remote.requests();
    let (s, b) = client.get(&format!("{RS}/project/p/stage/dev/resource/nowhere.yaml")).await;
    assert_eq!(s, 404, "{b}");
    assert!(remote.requests() > asked, "the miss asked the upstream");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_pushed_upstream_is_found_sqlite() {
    a_file_pushed_upstream_is_found(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_pushed_upstream_is_found_postgres() {
    a_file_pushed_upstream_is_found(Db::Postgres).await;
}
