//! keptn's resource-service API (`/api/resource-service/v1/…/resource…`) over the git-backed
//! configuration repository: base64 content, `metadata.version` = commit id, `gitCommitID`
//! reads, URL-escaped URIs, helm charts unpacked, and the repository following project and service changes.
//! SQLite and PostgreSQL.

mod support;

use base64::Engine as _;
use serde_json::{Value, json};
use support::*;

const CP: &str = "/api/controlPlane/v1";
const RS: &str = "/api/resource-service/v1";

const SHIPYARD: &str = r#"
apiVersion: spec.keptn.sh/0.2.3
kind: Shipyard
metadata: { name: shipyard-sockshop }
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: deployment
    - name: production
      sequences:
        - name: delivery
          triggeredOn:
            - event: dev.delivery.finished
          tasks:
            - name: deployment
"#;

/// A gzip-compressed tar archive as `helm package` makes it.
fn chart_tgz(files: &[(&str, &str)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()));
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, content.as_bytes()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

fn unb64(v: &Value) -> String {
    let s = v.as_str().unwrap_or_else(|| panic!("resourceContent must be a string: {v}"));
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s).expect("base64")).expect("utf-8")
}

fn version(b: &Value) -> String {
    let v = b["metadata"]["version"].as_str().unwrap_or_else(|| panic!("metadata.version missing: {b}"));
    assert_eq!(v.len(), 40, "version is a full commit id: {b}");
    v.to_string()
}

/// Reads one resource; returns its content and version.
async fn read(client: &Client, base: &str, uri: &str) -> (String, String) {
    let (s, b) = client.get(&format!("{base}/resource/{uri}")).await;
    assert_eq!(s, 200, "read {base}/resource/{uri}: {b}");
    (unb64(&b["resourceContent"]), version(&b))
}

async fn list(client: &Client, base: &str) -> Vec<String> {
    let (s, b) = client.get(&format!("{base}/resource")).await;
    assert_eq!(s, 200, "list {base}: {b}");
    b["resources"].as_array().unwrap().iter().map(|r| r["resourceURI"].as_str().unwrap().to_string()).collect()
}

async fn setup(client: &Client) {
    client.create_project("sockshop", SHIPYARD).await;
    client.create_service("sockshop", "carts").await;
}

async fn project_create_commits_the_shipyard(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let client = server.client();
    setup(&client).await;
    let (s, b) = client.get(&format!("{RS}/project/sockshop/resource/shipyard.yaml")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["resourceURI"], "shipyard.yaml");
    assert_eq!(unb64(&b["resourceContent"]), SHIPYARD);
    version(&b);
    let uris = list(&client, &format!("{RS}/project/sockshop")).await;
    assert_eq!(uris, ["metadata.yaml", "shipyard.yaml"], "stages are hidden from the project listing");
    // Stages from the shipyard, the service in every stage.
    for stage in ["dev", "production"] {
        read(&client, &format!("{RS}/project/sockshop/stage/{stage}"), "metadata.yaml").await;
        read(&client, &format!("{RS}/project/sockshop/stage/{stage}/service/carts"), "metadata.yaml").await;
    }

    // Updating the shipyard commits it.
    let updated = SHIPYARD.replace("shipyard-sockshop", "shipyard-sockshop-2");
    let (s, b) = client.put(&format!("{CP}/project"), json!({ "name": "sockshop", "shipyard": b64(&updated) })).await;
    assert_eq!(s, 201, "{b}");
    let (content, _) = read(&client, &format!("{RS}/project/sockshop"), "shipyard.yaml").await;
    assert_eq!(content, updated);
    server.stop().await;
}

async fn write_read_list_delete_at_every_level(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let client = server.client();
    setup(&client).await;
    let levels = [
        format!("{RS}/project/sockshop"),
        format!("{RS}/project/sockshop/stage/dev"),
        format!("{RS}/project/sockshop/stage/dev/service/carts"),
    ];
    for base in &levels {
        // POST several in one commit (a leading '/' is accepted, as keptn clients send it).
        let body = json!({ "resources": [
            { "resourceURI": "/slo.yaml", "resourceContent": b64("slo: 1") },
            { "resourceURI": "files/carts.bin", "resourceContent": b64("bin") },
        ]});
        let (s, b) = client.post(&format!("{base}/resource"), body).await;
        assert_eq!(s, 201, "{base}: {b}");
        let commit = b["commitID"].as_str().unwrap().to_string();
        assert_eq!(version(&b), commit);
        let (content, v) = read(&client, base, "slo.yaml").await;
        assert_eq!((content.as_str(), v.as_str()), ("slo: 1", commit.as_str()));

        // PUT many → 200.
        let body = json!({ "resources": [{ "resourceURI": "slo.yaml", "resourceContent": b64("slo: 2") }] });
        let (s, b) = client.put(&format!("{base}/resource"), body).await;
        assert_eq!(s, 200, "{base}: {b}");
        assert_ne!(b["commitID"].as_str().unwrap(), commit);
        assert_eq!(read(&client, base, "slo.yaml").await.0, "slo: 2");

        // PUT one.
        let (s, b) = client.put(&format!("{base}/resource/sli.yaml"), json!({ "resourceContent": b64("sli") })).await;
        assert_eq!(s, 200, "{base}: {b}");
        assert_eq!(read(&client, base, "sli.yaml").await.0, "sli");

        let uris = list(&client, base).await;
        for uri in ["slo.yaml", "sli.yaml", "files/carts.bin", "metadata.yaml"] {
            assert!(uris.iter().any(|u| u == uri), "{base}: {uri} missing from {uris:?}");
        }

        // DELETE one.
        let (s, b) = client.delete(&format!("{base}/resource/sli.yaml")).await;
        assert_eq!(s, 200, "{base}: {b}");
        version(&b);
        let (s, b) = client.get(&format!("{base}/resource/sli.yaml")).await;
        assert_eq!((s, &b["code"]), (404, &json!(404)), "{base}: {b}");
    }
    // Levels are separate: the service's files are not in the stage listing and vice versa.
    let stage = list(&client, &levels[1]).await;
    assert!(!stage.iter().any(|u| u.starts_with("carts")), "{stage:?}");

    // Paging.
    let (s, b) = client.get(&format!("{}/resource?pageSize=1", levels[0])).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["resources"].as_array().unwrap().len(), 1);
    assert_eq!(b["pageSize"], 1);
    assert_eq!(b["nextPageKey"], "1");
    let total = b["totalCount"].as_i64().unwrap();
    assert!(total >= 4, "{b}");
    let (_, b) = client.get(&format!("{}/resource?pageSize=100&nextPageKey=1", levels[0])).await;
    assert_eq!(b["resources"].as_array().unwrap().len() as i64, total - 1);
    assert_eq!(b["nextPageKey"], "0");
    server.stop().await;
}

async fn git_commit_id_reads_an_older_version(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let client = server.client();
    setup(&client).await;
    let base = format!("{RS}/project/sockshop/stage/dev/service/carts");
    let (s, b) = client.put(&format!("{base}/resource/slo.yaml"), json!({ "resourceContent": b64("old") })).await;
    assert_eq!(s, 200, "{b}");
    let old = b["commitID"].as_str().unwrap().to_string();
    let (s, b) = client.put(&format!("{base}/resource/slo.yaml"), json!({ "resourceContent": b64("new") })).await;
    assert_eq!(s, 200, "{b}");
    let new = b["commitID"].as_str().unwrap().to_string();
    assert_eq!(read(&client, &base, "slo.yaml").await, ("new".to_string(), new));
    let (content, v) = read(&client, &base, &format!("slo.yaml?gitCommitID={old}")).await;
    assert_eq!((content.as_str(), v.as_str()), ("old", old.as_str()));
    let (s, b) = client.get(&format!("{base}/resource/slo.yaml?gitCommitID={}", "0".repeat(40))).await;
    assert_eq!((s, &b["code"]), (404, &json!(404)), "unknown revision: {b}");
    server.stop().await;
}

async fn escaped_uris_bad_content_and_unknown_names(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let client = server.client();
    setup(&client).await;
    let base = format!("{RS}/project/sockshop/stage/dev/service/carts");

    // keptn's clients URL-escape the URI into one path segment; a helm chart is unpacked beside
    // its archive.
    let chart = chart_tgz(&[("carts/Chart.yaml", "name: carts"), ("carts/templates/svc.yaml", "kind: Service")]);
    let body = json!({ "resourceContent": base64::engine::general_purpose::STANDARD.encode(&chart) });
    let (s, b) = client.put(&format!("{base}/resource/helm%2Fcarts.tgz"), body).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = client.get(&format!("{base}/resource/helm%2Fcarts.tgz")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["resourceURI"], "helm/carts.tgz");
    let stored = base64::engine::general_purpose::STANDARD.decode(b["resourceContent"].as_str().unwrap()).unwrap();
    assert_eq!(stored, chart);
    assert_eq!(read(&client, &base, "helm%2Fcarts%2FChart.yaml").await.0, "name: carts");
    assert_eq!(read(&client, &base, "helm/carts/templates/svc.yaml").await.0, "kind: Service", "unescaped works too");
    let uris = list(&client, &base).await;
    assert!(uris.contains(&"helm/carts.tgz".to_string()) && uris.contains(&"helm/carts/Chart.yaml".to_string()));
    // A new version of the chart replaces the unpacked files.
    let v2 = chart_tgz(&[("carts/Chart.yaml", "name: carts\nversion: 2")]);
    let body = json!({ "resourceContent": base64::engine::general_purpose::STANDARD.encode(&v2) });
    assert_eq!(client.put(&format!("{base}/resource/helm%2Fcarts.tgz"), body).await.0, 200);
    let (s, b) = client.get(&format!("{base}/resource/helm%2Fcarts%2Ftemplates%2Fsvc.yaml")).await;
    assert_eq!(s, 404, "files dropped from the chart are gone: {b}");
    // Not a chart archive → 400 that says so, nothing written.
    let (s, b) = client.put(&format!("{base}/resource/helm%2Fcarts.tgz"), json!({ "resourceContent": b64("x") })).await;
    assert_eq!((s, &b["code"]), (400, &json!(400)), "{b}");
    assert!(b["message"].as_str().unwrap().contains("helm package"), "{b}");
    let (s, b) = client.delete(&format!("{base}/resource/helm%2Fcarts.tgz")).await;
    assert_eq!(s, 200, "{b}");

    // Bad base64 → 400, nothing written.
    let (s, b) = client.put(&format!("{base}/resource/x.yaml"), json!({ "resourceContent": "not base64!" })).await;
    assert_eq!((s, &b["code"]), (400, &json!(400)), "{b}");
    let body = json!({ "resources": [{ "resourceURI": "x.yaml", "resourceContent": "%%%" }] });
    let (s, b) = client.post(&format!("{base}/resource"), body).await;
    assert_eq!((s, &b["code"]), (400, &json!(400)), "{b}");
    // Bad URIs → 400.
    let (s, b) = client.put(&format!("{base}/resource/..%2Fx.yaml"), json!({ "resourceContent": b64("x") })).await;
    assert_eq!((s, &b["code"]), (400, &json!(400)), "{b}");

    // Unknown resource, service, stage, project → 404 with a message.
    for (path, what) in [
        (format!("{base}/resource/nope.yaml"), "resource"),
        (format!("{RS}/project/sockshop/stage/dev/service/orders/resource/slo.yaml"), "service"),
        (format!("{RS}/project/sockshop/stage/qa/resource/slo.yaml"), "stage"),
        (format!("{RS}/project/nope/resource/shipyard.yaml"), "project"),
        (format!("{RS}/project/nope/resource"), "project listing"),
    ] {
        let (s, b) = client.get(&path).await;
        assert_eq!((s, &b["code"]), (404, &json!(404)), "{what}: {b}");
        assert!(b["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {b}");
    }
    let (s, b) = client
        .put(
            &format!("{RS}/project/sockshop/stage/dev/service/orders/resource/x"),
            json!({ "resourceContent": b64("x") }),
        )
        .await;
    assert_eq!((s, &b["code"]), (404, &json!(404)), "write to an unknown service: {b}");
    assert!(b["message"].as_str().unwrap().contains("create the service"), "{b}");

    // The resource API needs the token like everything else.
    let r = client.raw(reqwest::Method::GET, &format!("{base}/resource"), &[], None).await;
    r.assert_error(401, "no token");
    server.stop().await;
}

async fn service_and_project_delete_remove_their_files(db: Db) {
    let Some(server) = TestServer::start(db).await else { return };
    let client = server.client();
    setup(&client).await;
    let base = format!("{RS}/project/sockshop/stage/production/service/carts");
    let (s, b) = client.put(&format!("{base}/resource/slo.yaml"), json!({ "resourceContent": b64("slo") })).await;
    assert_eq!(s, 200, "{b}");

    let (s, b) = client.delete(&format!("{CP}/project/sockshop/service/carts")).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = client.get(&format!("{base}/resource/slo.yaml")).await;
    assert_eq!(s, 404, "service files are gone: {b}");
    // Re-created, the service starts empty.
    client.create_service("sockshop", "carts").await;
    assert_eq!(list(&client, &base).await, ["metadata.yaml"]);

    let (s, b) =
        client.put(&format!("{RS}/project/sockshop/resource/extra.yaml"), json!({ "resourceContent": b64("x") })).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = client.delete(&format!("{CP}/project/sockshop")).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = client.get(&format!("{RS}/project/sockshop/resource/shipyard.yaml")).await;
    assert_eq!(s, 404, "project repository is gone: {b}");

    // Re-created, the project has a fresh repository.
    client.create_project("sockshop", SHIPYARD).await;
    assert_eq!(list(&client, &format!("{RS}/project/sockshop")).await, ["metadata.yaml", "shipyard.yaml"]);
    assert_eq!(read(&client, &format!("{RS}/project/sockshop"), "shipyard.yaml").await.0, SHIPYARD);
    read(&client, &format!("{RS}/project/sockshop/stage/production"), "metadata.yaml").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_create_commits_the_shipyard_sqlite() {
    project_create_commits_the_shipyard(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_create_commits_the_shipyard_postgres() {
    project_create_commits_the_shipyard(Db::Postgres).await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_read_list_delete_at_every_level_sqlite() {
    write_read_list_delete_at_every_level(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_read_list_delete_at_every_level_postgres() {
    write_read_list_delete_at_every_level(Db::Postgres).await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_commit_id_reads_an_older_version_sqlite() {
    git_commit_id_reads_an_older_version(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_commit_id_reads_an_older_version_postgres() {
    git_commit_id_reads_an_older_version(Db::Postgres).await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaped_uris_bad_content_and_unknown_names_sqlite() {
    escaped_uris_bad_content_and_unknown_names(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaped_uris_bad_content_and_unknown_names_postgres() {
    escaped_uris_bad_content_and_unknown_names(Db::Postgres).await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_and_project_delete_remove_their_files_sqlite() {
    service_and_project_delete_remove_their_files(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_and_project_delete_remove_their_files_postgres() {
    service_and_project_delete_remove_their_files(Db::Postgres).await;
}
