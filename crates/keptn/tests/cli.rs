//! The CLI (`keptn auth|status|version|create|get`): the real binary against a real server.

mod support;

use serde_json::Value;
use support::cli::keptn;
use support::*;

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
    - name: production
      sequences:
        - name: delivery
          triggeredOn:
            - event: dev.delivery.finished
          tasks:
            - name: deployment
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_create_and_get() {
    let Some(server) = TestServer::start(Db::Sqlite).await else { return };
    let home = tempfile::tempdir().unwrap();
    let cfg = home.path();

    // Not authenticated yet: says what to run.
    let o = keptn(cfg, &["get", "projects"]).await;
    assert!(!o.ok() && o.stderr.contains("keptn auth --endpoint"), "{}", o.stderr);

    // A wrong token is refused and nothing is stored.
    let o = keptn(cfg, &["auth", "--endpoint", &server.url, "--api-token", "wrong"]).await;
    assert!(!o.ok() && o.stderr.contains("refused the API token"), "{}", o.stderr);
    assert!(!cfg.join("credentials.json").exists());

    // keptn 1.x users wrote the endpoint with /api.
    let endpoint = format!("{}/api", server.url);
    let o = keptn(cfg, &["auth", "--endpoint", &endpoint, "--api-token", &server.token]).await;
    assert!(o.ok(), "{}", o.stderr);
    assert!(o.stdout.contains("Successfully authenticated"), "{}", o.stdout);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(cfg.join("credentials.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the token file is private");
    }
    let o = keptn(cfg, &["status"]).await;
    assert!(o.ok() && o.stdout.contains(&server.url), "{} {}", o.stdout, o.stderr);
    let o = keptn(cfg, &["version"]).await;
    assert!(o.ok() && o.stdout.contains("Server version: 0."), "{}", o.stdout);

    let shipyard = cfg.join("shipyard.yaml");
    std::fs::write(&shipyard, SHIPYARD).unwrap();
    let o = keptn(cfg, &["create", "project", "sockshop", "--shipyard", shipyard.to_str().unwrap()]).await;
    assert!(o.ok(), "{}", o.stderr);
    let o = keptn(cfg, &["create", "project", "sockshop", "-s", shipyard.to_str().unwrap()]).await;
    assert!(!o.ok() && o.stderr.contains("already exists"), "a clear one-line error: {}", o.stderr);
    assert_eq!(o.stderr.trim().lines().count(), 1, "{}", o.stderr);
    let o = keptn(cfg, &["create", "service", "carts", "--project", "sockshop"]).await;
    assert!(o.ok(), "{}", o.stderr);

    // Table by default, the API's JSON / YAML unchanged with -o.
    let o = keptn(cfg, &["get", "projects"]).await;
    assert!(o.ok(), "{}", o.stderr);
    let line = o.stdout.lines().find(|l| l.starts_with("sockshop")).expect("a row per project");
    assert!(line.contains("dev,production"), "{}", o.stdout);
    let o = keptn(cfg, &["get", "project", "sockshop", "-o", "json"]).await;
    let v: Value = serde_json::from_str(&o.stdout).expect("JSON output parses");
    assert_eq!(v["projectName"], "sockshop");
    let o = keptn(cfg, &["get", "projects", "-o", "yaml"]).await;
    assert!(o.ok() && o.stdout.contains("projectName: sockshop"), "{}", o.stdout);
    let o = keptn(cfg, &["get", "stages", "--project", "sockshop"]).await;
    assert!(o.stdout.lines().any(|l| l.starts_with("production") && l.contains("carts")), "{}", o.stdout);
    let o = keptn(cfg, &["get", "services", "--project", "sockshop", "-o", "json"]).await;
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["services"].as_array().unwrap().len(), 2, "carts in both stages: {v}");
    let o = keptn(cfg, &["get", "service", "orders", "--project", "sockshop"]).await;
    assert!(!o.ok() && o.stderr.contains("keptn create service orders"), "{}", o.stderr);
    let o = keptn(cfg, &["get", "project", "nope"]).await;
    assert!(!o.ok() && o.stderr.contains("does not exist") && o.stderr.contains("404"), "{}", o.stderr);

    // The server goes away: one line naming the endpoint and what to do.
    let url = server.url.clone();
    server.stop().await;
    let o = keptn(cfg, &["get", "projects"]).await;
    assert!(!o.ok() && o.stderr.contains(&format!("cannot reach the keptn server at {url}")), "{}", o.stderr);
}
