//! Projects with a git upstream through the API, against real remotes (git-http-backend with
//! token auth, sshd): create/update with `gitCredentials`, every write pushed, changes made
//! upstream picked up (a shipyard edited upstream drives the next sequence), keptn's error codes.

mod support;

use base64::Engine as _;
use keptn_testgit::bare::{commit_file as commit_upstream, file as upstream_file, head as upstream_head};
use keptn_testgit::{HttpRemote, SshRemote, init_bare};
use serde_json::{Value, json};
use std::time::Duration;
use support::*;

const CP: &str = "/api/controlPlane/v1";
const RS: &str = "/api/resource-service/v1";

const SHIPYARD: &str = r#"apiVersion: spec.keptn.sh/0.2.3
kind: Shipyard
metadata: { name: shipyard-sockshop }
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: deployment
"#;

fn https_creds(url: &str, token: &str) -> Value {
    json!({ "remoteURL": url, "user": "keptn", "https": { "token": token, "insecureSkipTLS": false } })
}

fn create_body(name: &str, creds: Value) -> Value {
    json!({ "name": name, "shipyard": b64(SHIPYARD), "gitCredentials": creds })
}

async fn project_with_an_https_upstream(db: Db) {
    let Some(mut server) = TestServer::start(db).await else { return };
    let remotes = tempfile::tempdir().unwrap();
    let bare = init_bare(remotes.path(), "sockshop.git");
    let remote = HttpRemote::start(remotes.path(), Some(("keptn", "t0ken-abc")));
    let url = remote.url("sockshop.git");
    let client = server.client();

    let (s, b) = client.post(&format!("{CP}/project"), create_body("sockshop", https_creds(&url, "t0ken-abc"))).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(upstream_file(&bare, "shipyard.yaml").unwrap(), SHIPYARD, "the project is pushed");
    assert!(upstream_file(&bare, ".keptn-stages/dev/metadata.yaml").is_some());
    let (s, b) = client.get(&format!("{CP}/project/sockshop")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["gitCredentials"]["remoteURL"], url.as_str(), "{b}");
    assert!(!b.to_string().contains("t0ken-abc"), "the token is never shown: {b}");

    client.create_service("sockshop", "carts").await;
    assert!(upstream_file(&bare, ".keptn-stages/dev/carts/metadata.yaml").is_some());
    let base = format!("{RS}/project/sockshop/stage/dev/service/carts");
    let (s, b) =
        client.put(&format!("{base}/resource/slo.yaml"), json!({ "resourceContent": b64("objectives: []") })).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["metadata"]["upstreamURL"], url.as_str(), "{b}");
    assert_eq!(upstream_head(&bare).as_deref(), b["commitID"].as_str(), "the write is pushed");
    assert_eq!(upstream_file(&bare, ".keptn-stages/dev/carts/slo.yaml").unwrap(), "objectives: []");

    // Someone adds a sequence upstream; the next trigger (after the freshness window) runs it at
    // that commit.
    let edited = SHIPYARD.replace(
        "            - name: deployment\n",
        "            - name: deployment\n        - name: hotfix\n          tasks:\n            - name: release\n",
    );
    let theirs = commit_upstream(&bare, "shipyard.yaml", &edited);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ctx = client
        .send(json!({
            "type": "sh.keptn.event.dev.hotfix.triggered", "specversion": "1.0", "source": "test",
            "data": { "project": "sockshop", "stage": "dev", "service": "carts" },
        }))
        .await;
    let triggered = client.wait_for(&ctx, "sh.keptn.event.release.triggered", Duration::from_secs(10)).await;
    assert_eq!(triggered["gitcommitid"], theirs.as_str(), "{triggered}");
    let (_, b) = client.get(&format!("{CP}/project/sockshop")).await;
    assert!(b["shipyard"].as_str().unwrap().contains("hotfix"), "the shipyard came from git: {b}");

    // The credentials survive a restart: the next write is pushed.
    server.restart().await;
    let client = server.client();
    let (s, b) =
        client.put(&format!("{base}/resource/sli.yaml"), json!({ "resourceContent": b64("indicators: {}") })).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(upstream_head(&bare).as_deref(), b["commitID"].as_str());
    let (_, b) = client.get(&format!("{CP}/project/sockshop")).await;
    assert!(b["shipyard"].as_str().unwrap().contains("hotfix"), "still the shipyard from git: {b}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_with_an_https_upstream_sqlite() {
    project_with_an_https_upstream(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_with_an_https_upstream_postgres() {
    project_with_an_https_upstream(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_errors_map_to_keptns_codes() {
    let Some(server) = TestServer::start(Db::Sqlite).await else { return };
    let remotes = tempfile::tempdir().unwrap();
    init_bare(remotes.path(), "sockshop.git");
    let remote = HttpRemote::start(remotes.path(), Some(("keptn", "right-token")));
    let client = server.client();
    let create = |creds: Value| {
        let client = client.clone();
        async move { client.post(&format!("{CP}/project"), create_body("sockshop", creds)).await }
    };
    let cases = [
        (https_creds(&remote.url("sockshop.git"), "wrong-token"), 424, "rejected the credentials"),
        (https_creds(&remote.url("missing.git"), "right-token"), 404, "was not found"),
        (https_creds("http://127.0.0.1:9/sockshop.git", "right-token"), 502, "can't be reached"),
        (https_creds("github.com/org/repo", "right-token"), 400, "must start with"),
        (json!({ "remoteURL": "ssh://git@127.0.0.1/r.git", "ssh": { "privateKey": "" } }), 400, "PEM private key"),
        (json!({ "remoteURL": "ssh://git@127.0.0.1/r.git", "ssh": { "privateKey": "%%%" } }), 400, "base64"),
    ];
    for (creds, status, says) in cases {
        let (s, b) = create(creds.clone()).await;
        assert_eq!((s, &b["code"]), (status, &json!(status)), "{creds}: {b}");
        let message = b["message"].as_str().unwrap();
        assert!(message.contains(says), "{creds}: {message}");
        assert!(!message.contains("wrong-token") && !message.contains("right-token"), "{message}");
        let (s, _) = client.get(&format!("{CP}/project/sockshop")).await;
        assert_eq!(s, 404, "a failed create leaves no project ({creds})");
    }
    let (s, b) = create(https_creds(&remote.url("sockshop.git"), "right-token")).await;
    assert_eq!(s, 201, "{b}");
    // A second project can't take an upstream that holds one.
    let (s, b) = client
        .post(&format!("{CP}/project"), create_body("other", https_creds(&remote.url("sockshop.git"), "right-token")))
        .await;
    assert_eq!(s, 409, "{b}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updating_the_upstream_pushes_the_history() {
    let Some(server) = TestServer::start(Db::Sqlite).await else { return };
    let remotes = tempfile::tempdir().unwrap();
    let first = init_bare(remotes.path(), "first.git");
    let http = HttpRemote::start(remotes.path(), Some(("keptn", "tok")));
    let client = server.client();
    client.create_project("sockshop", SHIPYARD).await;
    let (s, b) =
        client.put(&format!("{RS}/project/sockshop/resource/notes.txt"), json!({ "resourceContent": b64("n") })).await;
    assert_eq!(s, 200, "{b}");
    let head = b["commitID"].as_str().unwrap().to_string();

    let body = json!({ "name": "sockshop", "gitCredentials": https_creds(&http.url("first.git"), "tok") });
    let (s, b) = client.put(&format!("{CP}/project"), body).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(upstream_head(&first), Some(head.clone()), "a project without upstream gets one");

    // Move to an ssh upstream: the whole history goes there.
    let ssh = SshRemote::start();
    let second = init_bare(remotes.path(), "second.git");
    let key = base64::engine::general_purpose::STANDARD.encode(ssh.private_key_pem());
    let creds =
        json!({ "remoteURL": ssh.url(&second), "user": "root", "ssh": { "privateKey": key, "privateKeyPass": "" } });
    let (s, b) = client.put(&format!("{CP}/project"), json!({ "name": "sockshop", "gitCredentials": creds })).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(upstream_head(&second), Some(head));
    let (s, b) =
        client.put(&format!("{RS}/project/sockshop/resource/notes.txt"), json!({ "resourceContent": b64("m") })).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(upstream_file(&second, "notes.txt").unwrap(), "m", "writes now go to the ssh upstream");
    assert_eq!(upstream_file(&first, "notes.txt").unwrap(), "n", "the old upstream is left alone");
    let (_, b) = client.get(&format!("{CP}/project/sockshop")).await;
    assert_eq!(b["gitCredentials"]["remoteURL"], ssh.url(&second).as_str());
    assert!(!b.to_string().contains("PRIVATE KEY"), "{b}");

    // Bad new credentials: refused with 424, the old upstream stays.
    let bad = json!({ "name": "sockshop", "gitCredentials": https_creds(&http.url("first.git"), "nope") });
    let (s, b) = client.put(&format!("{CP}/project"), bad).await;
    assert_eq!(s, 424, "{b}");
    let (_, b) = client.get(&format!("{CP}/project/sockshop")).await;
    assert_eq!(b["gitCredentials"]["remoteURL"], ssh.url(&second).as_str());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipyard_written_as_a_resource_is_the_projects_shipyard() {
    let Some(server) = TestServer::start(Db::Sqlite).await else { return };
    let client = server.client();
    client.create_project("sockshop", SHIPYARD).await;
    client.create_service("sockshop", "carts").await;
    let put = |yaml: String| {
        let client = client.clone();
        async move {
            client
                .put(&format!("{RS}/project/sockshop/resource/shipyard.yaml"), json!({ "resourceContent": b64(&yaml) }))
                .await
        }
    };
    let (s, b) = put("kind: Shipyard\nspec: [".into()).await;
    assert_eq!((s, &b["code"]), (400, &json!(400)), "{b}");
    let (s, b) = put(SHIPYARD.replace("name: dev", "name: qa")).await;
    assert_eq!(s, 400, "stages can't change: {b}");
    let (s, b) = client.delete(&format!("{RS}/project/sockshop/resource/shipyard.yaml")).await;
    assert_eq!(s, 400, "{b}");
    let edited = SHIPYARD.replace(
        "            - name: deployment\n",
        "            - name: deployment\n        - name: hotfix\n          tasks:\n            - name: release\n",
    );
    let (s, b) = put(edited).await;
    assert_eq!(s, 200, "{b}");
    let commit = b["commitID"].as_str().unwrap().to_string();
    let ctx = client
        .send(json!({
            "type": "sh.keptn.event.dev.hotfix.triggered", "specversion": "1.0", "source": "test",
            "data": { "project": "sockshop", "stage": "dev", "service": "carts" },
        }))
        .await;
    let triggered = client.wait_for(&ctx, "sh.keptn.event.release.triggered", Duration::from_secs(10)).await;
    assert_eq!(triggered["gitcommitid"], commit.as_str());
    server.stop().await;
}
