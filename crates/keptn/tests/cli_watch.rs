//! `keptn trigger … --watch` and `keptn send event approval.finished`: the real binary against a
//! real server, with keptn 1.x pull-mode integrations doing the tasks.

mod support;

use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use support::cli::{command, keptn, keptn_with_input};
use support::*;

const WAIT: Duration = Duration::from_secs(30);

const SHIPYARD: &str = r#"apiVersion: spec.keptn.sh/0.2.3
kind: Shipyard
metadata: { name: watch }
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: deployment
            - name: test
            - name: release
        - name: hold
          tasks:
            - name: nobody-does-this
    - name: production
      sequences:
        - name: delivery
          triggeredOn:
            - event: dev.delivery.finished
          tasks:
            - name: deployment
            - name: release
    - name: approve
      sequences:
        - name: delivery
          tasks:
            - name: deployment
            - name: approval
              properties: { pass: manual, warning: manual }
            - name: release
"#;

/// A server with project `p` (service `carts`), a logged-in CLI, and an integration doing
/// deployment, test and release: `test` fails for images containing "bad".
async fn setup() -> Option<(TestServer, tempfile::TempDir)> {
    let server = TestServer::start(Db::Sqlite).await?;
    let client = server.client();
    client.create_project("p", SHIPYARD).await;
    client.create_service("p", "carts").await;
    client.create_service("p", "orders").await;
    let types = ["deployment", "test", "release"].map(|t| format!("sh.keptn.event.{t}.triggered")).to_vec();
    let decide: Decide = Arc::new(|ev: &Value| {
        let image = ev["data"]["configurationChange"]["values"]["image"].as_str().unwrap_or("");
        let fail = ev["type"] == "sh.keptn.event.test.triggered" && image.contains("bad");
        (if fail { "fail" } else { "pass" }.to_string(), json!({}))
    });
    spawn_pull_integration(client, "helm-service", types, "p", decide);
    let home = tempfile::tempdir().unwrap();
    let o = keptn(home.path(), &["auth", "--endpoint", &server.url, "--api-token", &server.token]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    Some((server, home))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_shows_a_delivery_through_its_stages_and_exits_with_its_result() {
    let Some((server, home)) = setup().await else { return };
    let cfg = home.path();

    // A passing delivery: every task of both stages, in order, then the summary; exit 0.
    let o =
        keptn(cfg, &["trigger", "delivery", "--project", "p", "--service", "carts", "--image", "carts:1", "--watch"])
            .await;
    assert_eq!(o.code, 0, "stdout:\n{}\nstderr:\n{}", o.stdout, o.stderr);
    let lines: Vec<&str> = o.stdout.lines().collect();
    let pos = |stage: &str, task: &str, what: &str| {
        lines
            .iter()
            .position(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.len() >= 3 && cols[0] == stage && cols[1] == task && l.contains(what)
            })
            .unwrap_or_else(|| panic!("no line `{stage} {task} … {what}` in:\n{}", o.stdout))
    };
    assert!(pos("dev", "deployment", "pass") < pos("dev", "test", "pass"));
    assert!(pos("dev", "release", "pass") < pos("production", "deployment", "pass"));
    assert!(pos("production", "deployment", "pass") < pos("production", "release", "pass"));
    assert!(pos("dev", "deployment", "started by helm-service") < pos("dev", "deployment", "pass"));
    assert_eq!(
        lines.last().copied(),
        Some("sequence delivery finished: dev: pass, production: pass"),
        "a final summary:\n{}",
        o.stdout
    );
    assert!(!o.stdout.contains('\x1b'), "no colours or cursor movement when stdout is not a terminal");

    // A failing delivery: the failing task and the reason; production never starts; exit 3.
    let o = keptn(cfg, &["trigger", "delivery", "--project", "p", "--service", "carts", "--image", "carts:bad", "-w"])
        .await;
    assert_eq!(o.code, 3, "a failed sequence fails the CI step:\n{}\n{}", o.stdout, o.stderr);
    assert!(o.stdout.lines().any(|l| l.starts_with("dev") && l.contains("test") && l.contains("fail")), "{}", o.stdout);
    assert!(o.stdout.contains("sequence delivery failed in stage dev: fail (task test)"), "{}", o.stdout);
    assert!(!o.stdout.lines().any(|l| l.starts_with("production")), "{}", o.stdout);
    let ctx_line = o.stdout.lines().next().unwrap().to_string();
    let failed_ctx = ctx_line.rsplit(' ').next().unwrap().to_string();

    // -o json with --watch: one JSON document per change, the last one finished.
    let o = keptn(
        cfg,
        &["trigger", "delivery", "--project", "p", "--service", "orders", "--image", "orders:1", "-w", "-o", "json"],
    )
    .await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let frames: Vec<Value> = o.stdout.lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
    assert!(frames.len() >= 3, "the first state and the changes: {}", o.stdout);
    let last = frames.last().unwrap();
    assert_eq!(last["state"]["state"], "finished");
    assert_eq!(last["sequenceExecutions"].as_array().unwrap().len(), 2, "dev and production");
    assert!(frames.iter().any(|f| f["event"]["type"] == "sh.keptn.event.deployment.finished"));

    // Without --watch: keptn's output, and -o json gives the API's answer.
    let o = keptn(
        cfg,
        &["trigger", "delivery", "--project", "p", "--service", "carts", "--image", "carts:2", "-o", "json"],
    )
    .await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: Value = serde_json::from_str(&o.stdout).expect("JSON");
    let ctx = v["keptnContext"].as_str().expect("keptnContext").to_string();
    let o = keptn(
        cfg,
        &["trigger", "delivery", "--project", "p", "--service", "carts", "--image", "carts:3", "--stage", "production"],
    )
    .await;
    assert!(o.stdout.contains("ID of Keptn context: "), "scripts grep keptn's line: {}", o.stdout);

    // The sequence view of a finished context, and the list.
    eventually(WAIT, "the delivery finishes", || async {
        let s = server.client().sequence_state("p", &ctx).await;
        (s["state"] == "finished").then_some(())
    })
    .await;
    let o = keptn(cfg, &["get", "sequence", &failed_ctx, "--project", "p"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.lines().any(|l| l.trim_start().starts_with("test") && l.contains("fail")), "{}", o.stdout);
    assert!(o.stdout.lines().any(|l| l.trim_start().starts_with("release") && l.contains("skipped")), "{}", o.stdout);
    let o = keptn(cfg, &["get", "sequences", "--project", "p", "-o", "json"]).await;
    let v: Value = serde_json::from_str(&o.stdout).expect("JSON");
    assert!(v["states"].as_array().unwrap().iter().any(|s| s["shkeptncontext"] == ctx.as_str()), "{v}");
    let o = keptn(cfg, &["get", "sequences", "--project", "p", "--service", "orders"]).await;
    assert_eq!(o.stdout.lines().count(), 2, "header and the one orders delivery:\n{}", o.stdout);

    // Nobody does the task: --watch-time gives up with exit 4 and says how to follow it.
    let o = keptn(
        cfg,
        &[
            "trigger",
            "sequence",
            "hold",
            "--project",
            "p",
            "--stage",
            "dev",
            "--service",
            "orders",
            "-w",
            "--watch-time",
            "1",
        ],
    )
    .await;
    assert_eq!(o.code, 4, "{}\n{}", o.stdout, o.stderr);
    assert!(o.stderr.contains("keptn get sequence"), "{}", o.stderr);

    // A sequence the shipyard lacks ends errored at once, with keptn's reason.
    let o = keptn(
        cfg,
        &["trigger", "delivery", "--project", "p", "--service", "carts", "--image", "x:1", "--sequence", "nope", "-w"],
    )
    .await;
    assert_eq!(o.code, 3, "{}\n{}", o.stdout, o.stderr);
    let last = o.stdout.lines().last().unwrap_or_default();
    assert!(last.starts_with("sequence nope failed in stage dev: errored: ") && last.contains("nope"), "{}", o.stdout);

    // A project the server does not know: one line, exit 1.
    let o =
        keptn(cfg, &["trigger", "delivery", "--project", "nope", "--service", "carts", "--image", "x:1", "-w"]).await;
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("does not exist"), "{}", o.stderr);
}

/// Open approvals of stage `approve`, once there are `n`.
async fn open_approvals(server: &TestServer, n: usize) -> Vec<Value> {
    eventually(WAIT, "approvals open", || async {
        let open = server.client().open_triggered("sh.keptn.event.approval.triggered", "p").await;
        let started = all_started(server, &open).await;
        (open.len() == n && started).then_some(open)
    })
    .await
}

/// The approval-service has answered `.started` for every open approval.
async fn all_started(server: &TestServer, open: &[Value]) -> bool {
    for ev in open {
        let ctx = ev["shkeptncontext"].as_str().unwrap();
        let events = server.client().events_of(ctx).await;
        if !events.iter().any(|e| e["type"] == "sh.keptn.event.approval.started") {
            return false;
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_are_answered_interactively_or_by_id() {
    let Some((server, home)) = setup().await else { return };
    let cfg = home.path();
    let deliver = |svc: &'static str| {
        let image = format!("{svc}:1");
        let cfg = cfg.to_path_buf();
        async move {
            let o = keptn(
                &cfg,
                &[
                    "trigger",
                    "delivery",
                    "--project",
                    "p",
                    "--service",
                    svc,
                    "--image",
                    &image,
                    "--stage",
                    "approve",
                    "-o",
                    "json",
                ],
            )
            .await;
            assert_eq!(o.code, 0, "{}", o.stderr);
            serde_json::from_str::<Value>(&o.stdout).unwrap()["keptnContext"].as_str().unwrap().to_string()
        }
    };
    let carts = deliver("carts").await;
    let orders = deliver("orders").await;
    let open = open_approvals(&server, 2).await;

    // Two open and nothing on stdin: says how to answer in a script.
    let o = keptn(cfg, &["send", "event", "approval.finished", "--project", "p", "--stage", "approve"]).await;
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(o.stderr.contains("--id"), "{}", o.stderr);

    // Interactive: pick the second from the list, approve.
    let o = keptn_with_input(
        cfg,
        &["send", "event", "approval.finished", "--project", "p", "--stage", "approve"],
        "2\na\n",
    )
    .await;
    assert_eq!(o.code, 0, "{}\n{}", o.stdout, o.stderr);
    let second = o.stderr.lines().find(|l| l.trim_start().starts_with("(2)")).expect("a numbered list").to_string();
    let (approved, other) = if second.contains(&carts) { (&carts, &orders) } else { (&orders, &carts) };
    assert!(second.contains(approved.as_str()), "{second}");
    assert!(o.stdout.starts_with("Approved"), "{}", o.stdout);
    eventually(WAIT, "the approved delivery finishes", || async {
        let s = server.client().sequence_state("p", approved).await;
        (s["state"] == "finished").then_some(())
    })
    .await;
    let events = server.client().events_of(approved).await;
    let finished = events.iter().find(|e| e["type"] == "sh.keptn.event.approval.finished").unwrap();
    assert_eq!(finished["data"]["result"], "pass");
    assert!(events.iter().any(|e| e["type"] == "sh.keptn.event.release.finished"), "release ran after approval");

    // By id, declined: the other sequence fails at the approval.
    let id = open.iter().find(|e| e["shkeptncontext"] == other.as_str()).unwrap()["id"].as_str().unwrap().to_string();
    let o = keptn(
        cfg,
        &["send", "event", "approval.finished", "--project", "p", "--stage", "approve", "--id", &id, "--decline"],
    )
    .await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    eventually(WAIT, "the declined delivery fails", || async {
        let o = keptn(cfg, &["get", "sequence", other, "--project", "p"]).await;
        o.stdout.contains("failed in stage approve").then_some(())
    })
    .await;
    let o = keptn(
        cfg,
        &["send", "event", "approval.finished", "--project", "p", "--stage", "approve", "--id", &id, "--approve"],
    )
    .await;
    assert_eq!(o.code, 1, "an answered approval is no longer open");
    assert!(o.stderr.contains("no open approval with id"), "{}", o.stderr);

    // --watch follows a delivery through a manual approval given from another terminal.
    let watcher = command(
        cfg,
        &[
            "trigger",
            "delivery",
            "--project",
            "p",
            "--service",
            "carts",
            "--image",
            "carts:9",
            "--stage",
            "approve",
            "-w",
        ],
    )
    .spawn()
    .unwrap();
    open_approvals(&server, 1).await;
    let o =
        keptn_with_input(cfg, &["send", "event", "approval.finished", "--project", "p", "--stage", "approve"], "a\n")
            .await;
    assert_eq!(o.code, 0, "one open approval is chosen without asking: {}", o.stderr);
    let out = tokio::time::timeout(WAIT, watcher.wait_with_output()).await.expect("watch ends").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.lines().any(|l| l.contains("approval") && l.contains("waiting for approval")), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with("approve") && l.contains("release") && l.contains("pass")),
        "{stdout}"
    );
}
