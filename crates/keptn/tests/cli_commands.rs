//! The CLI's working commands (`update project`, `add-resource`, `delete`, `send event -f`,
//! `trigger sequence|evaluation`, `pause|resume|abort sequence`, `get sequence[s]|event[s]`,
//! `configure monitoring`, `completion`): the real binary against a real server, checked by what
//! a user sees (exit status, output) and by the server's state read back through the API.

mod support;

use base64::Engine as _;
use keptn_testgit::{HttpRemote, bare, init_bare};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use support::cli::{Out, keptn, keptn_in};
use support::*;

const CP: &str = "/api/controlPlane/v1";
const RS: &str = "/api/resource-service/v1";
const WAIT: Duration = Duration::from_secs(30);

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
            - name: test
        - name: hotfix
          tasks:
            - name: release
        - name: remediation
          tasks:
            - name: rollback
    - name: production
      sequences:
        - name: delivery
          tasks:
            - name: deployment
"#;

/// A config dir authenticated against `server`.
async fn login(server: &TestServer) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let o = keptn(home.path(), &["auth", "--endpoint", &server.url, "--api-token", &server.token]).await;
    assert_eq!(o.code, 0, "auth: {o}");
    home
}

/// `keptn create project p` (from SHIPYARD) and `keptn create service` for each service.
async fn create_project(cfg: &Path, project: &str, services: &[&str]) {
    let shipyard = cfg.join("shipyard.yaml");
    std::fs::write(&shipyard, SHIPYARD).unwrap();
    let o = keptn(cfg, &["create", "project", project, "--shipyard", shipyard.to_str().unwrap()]).await;
    assert_eq!(o.code, 0, "create project: {o}");
    for svc in services {
        let o = keptn(cfg, &["create", "service", svc, "--project", project]).await;
        assert_eq!(o.code, 0, "create service {svc}: {o}");
    }
}

/// The keptn context a `trigger …`/`send event -f` printed as `ID of Keptn context: <uuid>`.
fn context_of(o: &Out) -> String {
    let line = o
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("ID of Keptn context: "))
        .unwrap_or_else(|| panic!("no `ID of Keptn context:` line: {o}"));
    let ctx = line.trim();
    uuid::Uuid::parse_str(ctx).unwrap_or_else(|e| panic!("{ctx:?} is not a UUID ({e}): {o}"));
    ctx.to_string()
}

/// A resource's content as the resource API returns it, None when it does not exist.
async fn resource(client: &Client, path: &str) -> Option<String> {
    let (s, b) = client.get(path).await;
    if s == 404 {
        return None;
    }
    assert_eq!(s, 200, "GET {path}: {b}");
    let bytes = base64::engine::general_purpose::STANDARD.decode(b["resourceContent"].as_str().unwrap()).unwrap();
    Some(String::from_utf8(bytes).unwrap())
}

async fn state_of(client: &Client, project: &str, ctx: &str) -> String {
    client.sequence_state(project, ctx).await["state"].as_str().unwrap_or("").to_string()
}

/// Waits until the sequence of `ctx` is in `state`.
async fn wait_state(client: &Client, project: &str, ctx: &str, state: &str) {
    eventually(WAIT, &format!("sequence {ctx} {state}"), || async move {
        (state_of(client, project, ctx).await == state).then_some(())
    })
    .await;
}

/// The open `.triggered` of this type for a context, once there is one.
async fn open_of(client: &Client, ty: &str, project: &str, ctx: &str) -> Value {
    eventually(WAIT, &format!("an open {ty} in {ctx}"), || async move {
        client.open_triggered(ty, project).await.into_iter().find(|e| e["shkeptncontext"] == ctx)
    })
    .await
}

async fn sequence_count(client: &Client, project: &str) -> Value {
    let (s, b) = client.get(&format!("{CP}/sequence/{project}")).await;
    assert_eq!(s, 200, "{b}");
    b["totalCount"].clone()
}

fn answer_with(result: &'static str, extra: Value) -> Decide {
    Arc::new(move |_| (result.to_string(), extra.clone()))
}

/// 1–3: `update project` to a real git upstream, `add-resource` at every level, `delete service`
/// and `delete project`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_resources_and_deletion() {
    let Some(server) = TestServer::start(Db::Sqlite).await else { return };
    let client = server.client();
    let home = login(&server).await;
    let cfg = home.path();
    create_project(cfg, "p", &["carts", "orders"]).await;

    // 1. Move the project to an upstream that needs Basic auth.
    let remotes = tempfile::tempdir().unwrap();
    let repo = init_bare(remotes.path(), "p.git");
    let token = "s3cr3t-t0ken-xyz";
    let remote = HttpRemote::start(remotes.path(), Some(("keptn", token)));
    let url = remote.url("p.git");
    let o =
        keptn(cfg, &["update", "project", "p", "--git-remote-url", &url, "--git-user", "keptn", "--git-token", token])
            .await;
    assert_eq!(o.code, 0, "update project: {o}");
    assert!(o.stdout.contains("Project p updated"), "{o}");
    assert!(!o.stdout.contains(token) && !o.stderr.contains(token), "the token is never printed: {o}");
    assert!(bare::head(&repo).is_some(), "the history was pushed to the upstream");
    assert_eq!(bare::file(&repo, "shipyard.yaml").as_deref(), Some(SHIPYARD), "the shipyard is on the upstream");
    let o = keptn(cfg, &["get", "project", "p", "-o", "json"]).await;
    assert_eq!(o.code, 0, "{o}");
    let v: Value = serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("JSON ({e}): {o}"));
    assert_eq!(v["gitCredentials"]["remoteURL"], url.as_str(), "{v}");
    assert!(!o.stdout.contains(token), "the token is never shown: {o}");
    let o = keptn(cfg, &["get", "projects"]).await;
    assert!(o.stdout.lines().any(|l| l.starts_with('p') && l.contains(&url)), "the table shows the upstream: {o}");

    // Without --git-remote-url: one line that names the flag; the upstream is unchanged.
    let o = keptn(cfg, &["update", "project", "p", "--git-user", "keptn", "--git-token", token]).await;
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("--git-remote-url"), "{o}");
    assert_eq!(o.stderr.trim().lines().count(), 1, "a one-line error: {o}");
    let (_, b) = client.get(&format!("{CP}/project/p")).await;
    assert_eq!(b["gitCredentials"]["remoteURL"], url.as_str(), "{b}");

    // 2. add-resource, project level with --resourceUri: stored there and pushed upstream.
    let files = tempfile::tempdir().unwrap();
    let slo = files.path().join("my-slo-file.yaml");
    std::fs::write(&slo, "spec_version: '0.1.0'\nobjectives: []\n").unwrap();
    let o = keptn(
        cfg,
        &["add-resource", "--project", "p", "--resource", slo.to_str().unwrap(), "--resourceUri", "slo.yaml"],
    )
    .await;
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("slo.yaml") && o.stdout.contains("project p"), "{o}");
    assert_eq!(
        resource(&client, &format!("{RS}/project/p/resource/slo.yaml")).await.as_deref(),
        Some("spec_version: '0.1.0'\nobjectives: []\n")
    );
    assert_eq!(resource(&client, &format!("{RS}/project/p/resource/my-slo-file.yaml")).await, None);
    assert_eq!(bare::file(&repo, "slo.yaml").as_deref(), Some("spec_version: '0.1.0'\nobjectives: []\n"), "pushed");

    // --all-stages --service: in the service of every stage, not at project level.
    let cfgfile = files.path().join("carts-config.yaml");
    std::fs::write(&cfgfile, "replicas: 3\n").unwrap();
    let o = keptn(
        cfg,
        &[
            "add-resource",
            "--project",
            "p",
            "--all-stages",
            "--service",
            "carts",
            "--resource",
            cfgfile.to_str().unwrap(),
            "--resourceUri",
            "config/app.yaml",
        ],
    )
    .await;
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(o.stdout.lines().filter(|l| l.starts_with("Resource config/app.yaml added")).count(), 2, "{o}");
    for stage in ["dev", "production"] {
        let path = format!("{RS}/project/p/stage/{stage}/service/carts/resource/config%2Fapp.yaml");
        assert_eq!(resource(&client, &path).await.as_deref(), Some("replicas: 3\n"), "{stage}");
        let other = format!("{RS}/project/p/stage/{stage}/service/orders/resource/config%2Fapp.yaml");
        assert_eq!(resource(&client, &other).await, None, "only carts gets it ({stage})");
    }
    assert_eq!(resource(&client, &format!("{RS}/project/p/resource/config%2Fapp.yaml")).await, None);

    // --stage --service with a relative path and no --resourceUri: stored at the path as given.
    std::fs::create_dir_all(files.path().join("x")).unwrap();
    std::fs::write(files.path().join("x/y.txt"), "why\n").unwrap();
    let o = keptn_in(
        cfg,
        &["add-resource", "--project", "p", "--stage", "dev", "--service", "carts", "--resource", "./x/y.txt"],
        Some(files.path()),
    )
    .await;
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("Resource x/y.txt added to project p, stage dev, service carts"), "{o}");
    let dev = format!("{RS}/project/p/stage/dev/service/carts/resource/x%2Fy.txt");
    assert_eq!(resource(&client, &dev).await.as_deref(), Some("why\n"));
    let prod = format!("{RS}/project/p/stage/production/service/carts/resource/x%2Fy.txt");
    assert_eq!(resource(&client, &prod).await, None, "only the given stage");

    // --service without a stage, a missing file, and both --stage and --all-stages are refused.
    let o = keptn(cfg, &["add-resource", "--project", "p", "--service", "carts", "--resource", slo.to_str().unwrap()])
        .await;
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("--stage") && o.stderr.contains("--all-stages"), "{o}");
    let missing = files.path().join("nope.yaml");
    let o = keptn(cfg, &["add-resource", "--project", "p", "--resource", missing.to_str().unwrap()]).await;
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("nope.yaml"), "names the file: {o}");
    let o = keptn(
        cfg,
        &["add-resource", "--project", "p", "--stage", "dev", "--all-stages", "--resource", slo.to_str().unwrap()],
    )
    .await;
    assert_eq!(o.code, 2, "bad usage: {o}");

    // 3. delete service: gone from every stage, the other service stays.
    let o = keptn(cfg, &["delete", "service", "carts", "--project", "p"]).await;
    assert_eq!(o.code, 0, "{o}");
    let o = keptn(cfg, &["get", "services", "--project", "p", "-o", "json"]).await;
    assert_eq!(o.code, 0, "{o}");
    let v: Value = serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("JSON ({e}): {o}"));
    let names: Vec<&str> =
        v["services"].as_array().unwrap().iter().map(|s| s["serviceName"].as_str().unwrap()).collect();
    assert_eq!(names, ["orders", "orders"], "carts is gone from both stages: {v}");
    let o = keptn(cfg, &["get", "service", "carts", "--project", "p"]).await;
    assert_eq!(o.code, 1, "{o}");

    // delete project: afterwards it does not exist.
    let o = keptn(cfg, &["delete", "project", "p"]).await;
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("Project p deleted"), "{o}");
    let o = keptn(cfg, &["get", "project", "p"]).await;
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("does not exist"), "{o}");
    let (s, _) = client.get(&format!("{CP}/project/p")).await;
    assert_eq!(s, 404);
    let o = keptn(cfg, &["delete", "project", "p"]).await;
    assert_eq!(o.code, 1, "deleting it again fails: {o}");
    drop(remote);
    server.stop().await;
}

/// 4–5: `send event -f` and `trigger sequence` with `--data` and `--labels`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_event_and_trigger_sequence() {
    let Some(server) = TestServer::start(Db::Sqlite).await else { return };
    let client = server.client();
    let home = login(&server).await;
    let cfg = home.path();
    create_project(cfg, "p", &["carts", "orders"]).await;
    let files = tempfile::tempdir().unwrap();

    // 4. A sequence .triggered from a file starts that sequence.
    let event = files.path().join("event.json");
    let body = json!({ "specversion": "1.0", "type": "sh.keptn.event.dev.delivery.triggered", "source": "cli-test",
                       "data": { "project": "p", "stage": "dev", "service": "orders" } });
    std::fs::write(&event, body.to_string()).unwrap();
    let o = keptn(cfg, &["send", "event", "-f", event.to_str().unwrap()]).await;
    assert_eq!(o.code, 0, "{o}");
    let ctx = context_of(&o);
    let state = eventually(WAIT, "the sent sequence's state", || {
        let client = client.clone();
        let ctx = ctx.clone();
        async move { Some(client.sequence_state("p", &ctx).await).filter(|s| !s.is_null()) }
    })
    .await;
    assert_eq!((&state["name"], &state["service"]), (&json!("delivery"), &json!("orders")), "{state}");
    let deployment = open_of(&client, "sh.keptn.event.deployment.triggered", "p", &ctx).await;
    assert_eq!(deployment["data"]["service"], "orders");

    // Not JSON: exit 1, names the file, nothing sent.
    let before = sequence_count(&client, "p").await;
    let bad = files.path().join("broken-event.json");
    std::fs::write(&bad, "type: sh.keptn.event.dev.delivery.triggered\n{").unwrap();
    let o = keptn(cfg, &["send", "event", "-f", bad.to_str().unwrap()]).await;
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("broken-event.json"), "names the file: {o}");
    let o = keptn(cfg, &["send", "event", "-f", files.path().join("absent.json").to_str().unwrap()]).await;
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("absent.json"), "names the file: {o}");
    assert_eq!(sequence_count(&client, "p").await, before, "nothing was sent");

    // 5. trigger sequence: --data unfolds into nested data, --labels into labels; both reach the
    // first task's .triggered.
    let o = keptn(
        cfg,
        &[
            "trigger",
            "sequence",
            "hotfix",
            "--project",
            "p",
            "--stage",
            "dev",
            "--service",
            "carts",
            "--data",
            "a.b=1,c=x",
            "--labels",
            "owner=me",
        ],
    )
    .await;
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("Started sequence hotfix"), "{o}");
    let ctx = context_of(&o);
    let release = client.wait_for(&ctx, "sh.keptn.event.release.triggered", WAIT).await;
    let d = &release["data"];
    assert_eq!((&d["a"]["b"], &d["c"]), (&json!("1"), &json!("x")), "{release}");
    assert_eq!(d["labels"]["owner"], "me", "{release}");
    assert_eq!((&d["project"], &d["stage"], &d["service"]), (&json!("p"), &json!("dev"), &json!("carts")));
    let first = &client.events_of(&ctx).await[0];
    assert_eq!(first["type"], "sh.keptn.event.dev.hotfix.triggered", "{first}");
    assert_eq!(first["source"], "https://github.com/keptn/keptn/cli#configuration-change", "{first}");

    // Malformed --data / --labels: exit 1, nothing started.
    let before = sequence_count(&client, "p").await;
    for (flag, value) in [("--data", "novalue"), ("--labels", "owner")] {
        let o = keptn(
            cfg,
            &["trigger", "sequence", "hotfix", "--project", "p", "--stage", "dev", "--service", "carts", flag, value],
        )
        .await;
        assert_eq!(o.code, 1, "{flag} {value}: {o}");
        assert!(o.stderr.contains(value), "names the bad pair: {o}");
    }
    assert_eq!(sequence_count(&client, "p").await, before, "nothing was triggered");
    server.stop().await;
}

/// 6–7: `trigger evaluation` (with `--watch`), `pause|resume|abort sequence`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluation_and_sequence_control() {
    let Some(server) = TestServer::start(Db::Sqlite).await else { return };
    let client = server.client();
    let home = login(&server).await;
    let cfg = home.path();
    create_project(cfg, "p", &["carts", "orders", "payment"]).await;

    // 6. trigger evaluation prints the context; the evaluation task carries the timeframe.
    let eval = ["trigger", "evaluation", "--project", "p", "--stage", "dev", "--service", "orders"];
    let o = keptn(cfg, &[&eval[..], &["--timeframe", "5m"]].concat()).await;
    assert_eq!(o.code, 0, "{o}");
    let first_eval = context_of(&o);
    let task = client.wait_for(&first_eval, "sh.keptn.event.evaluation.triggered", WAIT).await;
    assert_eq!(task["data"]["evaluation"]["timeframe"], "5m", "{task}");
    assert_eq!(task["data"]["service"], "orders");

    // --end with --timeframe: refused before anything is sent.
    let before = sequence_count(&client, "p").await;
    let o = keptn(
        cfg,
        &[&eval[..], &["--start", "2026-01-01T10:00:00", "--end", "2026-01-01T10:05:00", "--timeframe", "5m"]].concat(),
    )
    .await;
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("--end") && o.stderr.contains("--timeframe"), "{o}");
    assert_eq!(sequence_count(&client, "p").await, before, "nothing was triggered");

    // With an evaluation integration answering pass, --watch follows it to the end: exit 0.
    let lighthouse = spawn_pull_integration(
        client.clone(),
        "lighthouse-service",
        vec!["sh.keptn.event.evaluation.triggered".into()],
        "p",
        answer_with("pass", json!({ "evaluation": { "score": 100, "result": "pass" } })),
    );
    let o = keptn(cfg, &[&eval[..], &["--timeframe", "10m", "--watch", "--watch-time", "60"]].concat()).await;
    assert_eq!(o.code, 0, "--watch of a passing evaluation: {o}");
    assert!(o.stdout.contains("evaluation") && o.stdout.contains("pass"), "{o}");
    assert!(o.stdout.contains("sequence evaluation finished"), "the outcome line: {o}");
    wait_state(&client, "p", &first_eval, "finished").await;
    lighthouse.abort();

    // 7. Pause a running delivery: its state is paused; the answered task does not move it on.
    let o = keptn(cfg, &["trigger", "sequence", "delivery", "--project", "p", "--stage", "dev", "--service", "carts"])
        .await;
    assert_eq!(o.code, 0, "{o}");
    let ctx = context_of(&o);
    open_of(&client, "sh.keptn.event.deployment.triggered", "p", &ctx).await;
    let o = keptn(cfg, &["pause", "sequence", "--keptn-context", &ctx, "--project", "p"]).await;
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains(&format!("Sequence {ctx} paused")), "{o}");
    assert_eq!(state_of(&client, "p", &ctx).await, "paused");
    let o = keptn(cfg, &["get", "sequence", &ctx, "--project", "p", "-o", "json"]).await;
    assert_eq!(o.code, 0, "{o}");
    let v: Value = serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("JSON ({e}): {o}"));
    assert_eq!(v["sequenceExecutions"][0]["status"]["paused"], true, "{v}");
    let o = keptn(cfg, &["get", "sequence", &ctx, "--project", "p"]).await;
    assert!(o.stdout.lines().any(|l| l.trim_start().starts_with("deployment") && l.contains("paused")), "{o}");

    let helm = spawn_pull_integration(
        client.clone(),
        "helm-service",
        vec!["sh.keptn.event.deployment.triggered".into(), "sh.keptn.event.test.triggered".into()],
        "p",
        answer_with("pass", json!({})),
    );
    client.wait_for(&ctx, "sh.keptn.event.deployment.finished", WAIT).await;
    assert_eq!(state_of(&client, "p", &ctx).await, "paused", "still paused after the task finished");
    let types: Vec<Value> = client.events_of(&ctx).await.iter().map(|e| e["type"].clone()).collect();
    assert!(!types.contains(&json!("sh.keptn.event.test.triggered")), "no next task while paused: {types:?}");

    // Resume: the next task runs and the sequence finishes.
    let o = keptn(cfg, &["resume", "sequence", "--keptn-context", &ctx, "--project", "p"]).await;
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains(&format!("Sequence {ctx} resumed")), "{o}");
    wait_state(&client, "p", &ctx, "finished").await;
    let done = client.wait_for(&ctx, "sh.keptn.event.dev.delivery.finished", WAIT).await;
    assert_eq!(done["data"]["result"], "pass", "{done}");
    helm.abort();

    // Abort another running sequence (nobody answers its task).
    let o =
        keptn(cfg, &["trigger", "sequence", "remediation", "--project", "p", "--stage", "dev", "--service", "payment"])
            .await;
    assert_eq!(o.code, 0, "{o}");
    let other = context_of(&o);
    open_of(&client, "sh.keptn.event.rollback.triggered", "p", &other).await;
    let o = keptn(cfg, &["abort", "sequence", "--keptn-context", &other, "--project", "p"]).await;
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains(&format!("Sequence {other} aborted")), "{o}");
    wait_state(&client, "p", &other, "aborted").await;
    assert_eq!(state_of(&client, "p", &ctx).await, "finished", "the other sequence is untouched");

    // Unknown context: exit 1, says there is no such sequence.
    let unknown = uuid::Uuid::new_v4().to_string();
    for action in ["pause", "resume", "abort"] {
        let o = keptn(cfg, &[action, "sequence", "--keptn-context", &unknown, "--project", "p"]).await;
        assert_eq!(o.code, 1, "{action}: {o}");
        assert!(o.stderr.contains("no sequence"), "{action}: {o}");
    }
    let o = keptn(cfg, &["get", "sequence", &unknown, "--project", "p"]).await;
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("no sequence"), "{o}");
    server.stop().await;
}

/// 8–9: `get sequence[s]` and `get event[s]` in table, JSON and YAML.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_and_event_views() {
    let Some(server) = TestServer::start(Db::Sqlite).await else { return };
    let client = server.client();
    let home = login(&server).await;
    let cfg = home.path();
    create_project(cfg, "p", &["carts", "orders"]).await;

    // A delivery that finishes (deployment pass, test warning) and a remediation left running.
    let helm = spawn_pull_integration(
        client.clone(),
        "helm-service",
        vec!["sh.keptn.event.deployment.triggered".into(), "sh.keptn.event.test.triggered".into()],
        "p",
        Arc::new(|ev: &Value| {
            let result = if ev["type"] == "sh.keptn.event.test.triggered" { "warning" } else { "pass" };
            (result.to_string(), json!({}))
        }),
    );
    let o = keptn(cfg, &["trigger", "sequence", "delivery", "--project", "p", "--stage", "dev", "--service", "carts"])
        .await;
    assert_eq!(o.code, 0, "{o}");
    let done = context_of(&o);
    wait_state(&client, "p", &done, "finished").await;
    helm.abort();
    let o =
        keptn(cfg, &["trigger", "sequence", "remediation", "--project", "p", "--stage", "dev", "--service", "orders"])
            .await;
    assert_eq!(o.code, 0, "{o}");
    let running = context_of(&o);
    open_of(&client, "sh.keptn.event.rollback.triggered", "p", &running).await;
    wait_state(&client, "p", &running, "started").await;

    // 8. The sequence list: a row per context with its state.
    let row = |stdout: &str, ctx: &str| -> Option<Vec<String>> {
        stdout
            .lines()
            .find(|l| l.starts_with(ctx))
            .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<String>>())
    };
    let o = keptn(cfg, &["get", "sequences", "--project", "p"]).await;
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.starts_with("KEPTN CONTEXT"), "a header: {o}");
    let r = row(&o.stdout, &done).unwrap_or_else(|| panic!("a row for {done}: {o}"));
    assert_eq!((r[1].as_str(), r[2].as_str(), r[3].as_str()), ("delivery", "carts", "finished"), "{o}");
    let r = row(&o.stdout, &running).unwrap_or_else(|| panic!("a row for {running}: {o}"));
    assert_eq!((r[1].as_str(), r[2].as_str(), r[3].as_str()), ("remediation", "orders", "started"), "{o}");

    let o = keptn(cfg, &["get", "sequences", "--project", "p", "--state", "finished"]).await;
    assert_eq!(o.code, 0, "{o}");
    assert!(row(&o.stdout, &done).is_some(), "{o}");
    assert!(row(&o.stdout, &running).is_none(), "a running sequence is not finished: {o}");
    let o = keptn(cfg, &["get", "sequences", "--project", "p", "--service", "orders"]).await;
    assert!(row(&o.stdout, &running).is_some() && row(&o.stdout, &done).is_none(), "--service filters: {o}");

    let o = keptn(cfg, &["get", "sequences", "--project", "p", "-o", "json"]).await;
    assert_eq!(o.code, 0, "{o}");
    let v: Value = serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("JSON ({e}): {o}"));
    let states = v["states"].as_array().unwrap_or_else(|| panic!("a states array: {v}"));
    let by_ctx = |ctx: &str| states.iter().find(|s| s["shkeptncontext"] == ctx).cloned().unwrap_or(Value::Null);
    assert_eq!(by_ctx(&done)["state"], "finished", "{v}");
    assert_eq!(by_ctx(&running)["state"], "started", "{v}");

    // One context: every task with its result, and the outcome.
    let o = keptn(cfg, &["get", "sequence", &done, "--project", "p"]).await;
    assert_eq!(o.code, 0, "{o}");
    let task = |name: &str| {
        o.stdout
            .lines()
            .map(str::trim)
            .find(|l| l.split_whitespace().next() == Some(name))
            .map(|l| l.split_whitespace().last().unwrap().to_string())
    };
    assert_eq!(task("deployment").as_deref(), Some("pass"), "{o}");
    assert_eq!(task("test").as_deref(), Some("warning"), "{o}");
    assert!(o.stdout.contains(&done) && o.stdout.contains("delivery"), "{o}");
    let o = keptn(cfg, &["get", "sequence", &running, "--project", "p"]).await;
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.lines().any(|l| l.trim_start().starts_with("rollback") && l.contains("triggered")), "{o}");

    // 9. Events of one context, as JSON.
    let o = keptn(cfg, &["get", "events", "--project", "p", "--keptn-context", &done, "-o", "json"]).await;
    assert_eq!(o.code, 0, "{o}");
    let v: Value = serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("JSON ({e}): {o}"));
    let events = v["events"].as_array().unwrap_or_else(|| panic!("an events array: {v}"));
    assert_eq!(events.len(), client.events_of(&done).await.len(), "all the context's events: {v}");
    assert!(events.len() >= 8, "delivery.triggered, 2 tasks × 3, delivery.finished: {v}");
    assert!(events.iter().all(|e| e["shkeptncontext"] == done.as_str()), "{v}");

    // Events of one type, short name: only that type in the table.
    let o = keptn(cfg, &["get", "event", "deployment.finished", "--project", "p"]).await;
    assert_eq!(o.code, 0, "{o}");
    let rows: Vec<&str> = o.stdout.lines().skip(1).filter(|l| !l.trim().is_empty()).collect();
    assert!(o.stdout.starts_with("TIME") && !rows.is_empty(), "{o}");
    for r in &rows {
        assert_eq!(r.split_whitespace().nth(1), Some("sh.keptn.event.deployment.finished"), "{o}");
    }
    assert!(rows.iter().any(|r| r.contains(&done)), "{o}");
    let o = keptn(cfg, &["get", "event", "deployment.finished", "--project", "p", "-o", "yaml"]).await;
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("type: sh.keptn.event.deployment.finished"), "{o}");
    let o = keptn(cfg, &["get", "events", "--project", "p", "-o", "yaml"]).await;
    assert!(o.stdout.contains("type: sh.keptn.event"), "{o}");
    server.stop().await;
}

/// `trigger delivery --values --labels` and `trigger evaluation --start --end --git-commit-id`:
/// what the flags put into the events integrations and the lighthouse receive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_flags_reach_the_events() {
    let Some(server) = TestServer::start(Db::Sqlite).await else { return };
    let client = server.client();
    let home = login(&server).await;
    let cfg = home.path();
    create_project(cfg, "p", &["carts", "orders"]).await;

    // Values files merge into configurationChange.values (later files win); --image is kept.
    std::fs::write(cfg.join("a.yaml"), "replicas: 2\nresources: { cpu: 100m }\n").unwrap();
    std::fs::write(cfg.join("b.json"), r#"{"replicas": 3, "image": "ignored:0"}"#).unwrap();
    let (a, b) = (cfg.join("a.yaml"), cfg.join("b.json"));
    let o = keptn(
        cfg,
        &[
            "trigger",
            "delivery",
            "--project",
            "p",
            "--service",
            "carts",
            "--image",
            "carts:7",
            "--values",
            a.to_str().unwrap(),
            "--values",
            b.to_str().unwrap(),
            "--labels",
            "buildId=42,owner=me",
        ],
    )
    .await;
    assert_eq!(o.code, 0, "{o}");
    let ctx = context_of(&o);
    let task = open_of(&client, "sh.keptn.event.deployment.triggered", "p", &ctx).await;
    let values = &task["data"]["configurationChange"]["values"];
    assert_eq!(values["replicas"], 3, "{task}");
    assert_eq!(values["resources"]["cpu"], "100m", "{task}");
    assert_eq!(values["image"], "carts:7", "--image wins over a values file: {task}");
    assert_eq!(task["data"]["labels"], json!({ "buildId": "42", "owner": "me" }));
    assert_eq!(task["data"]["stage"], "dev", "the shipyard's first stage by default");
    std::fs::write(cfg.join("list.yaml"), "- 1\n- 2\n").unwrap();
    let list = cfg.join("list.yaml");
    let o = keptn(
        cfg,
        &[
            "trigger",
            "delivery",
            "--project",
            "p",
            "--service",
            "orders",
            "--image",
            "x:1",
            "--values",
            list.to_str().unwrap(),
        ],
    )
    .await;
    assert!(o.code == 1 && o.stderr.contains("mapping of values"), "{o}");

    // An evaluation over an explicit window, pinned to a configuration revision.
    let (_, meta) = client.get(&format!("{RS}/project/p/resource/shipyard.yaml")).await;
    let commit = meta["metadata"]["version"].as_str().unwrap().to_string();
    let o = keptn(
        cfg,
        &[
            "trigger",
            "evaluation",
            "--project",
            "p",
            "--stage",
            "dev",
            "--service",
            "orders",
            "--start",
            "2026-01-01T10:00:00",
            "--end",
            "2026-01-01T10:10:00",
            "--git-commit-id",
            &commit,
            "-l",
            "run=7",
        ],
    )
    .await;
    assert_eq!(o.code, 0, "{o}");
    let ctx = context_of(&o);
    let task = client.wait_for(&ctx, "sh.keptn.event.evaluation.triggered", WAIT).await;
    assert_eq!(task["data"]["evaluation"]["start"], "2026-01-01T10:00:00.000Z", "{task}");
    assert_eq!(task["data"]["evaluation"]["end"], "2026-01-01T10:10:00.000Z", "{task}");
    assert_eq!(task["gitcommitid"], commit.as_str(), "{task}");
    assert_eq!(task["data"]["labels"]["run"], "7");
    server.stop().await;
}

const CONFIGURE: &str = "sh.keptn.event.monitoring.configure";

/// The context a `configure monitoring` printed as `(keptn context <uuid>)`.
fn monitoring_context(o: &Out) -> String {
    let rest = o.stdout.split("(keptn context ").nth(1).unwrap_or_else(|| panic!("no keptn context: {o}"));
    rest.split(')').next().unwrap().to_string()
}

/// 10: `configure monitoring`, with nobody answering and with a provider that confirms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configure_monitoring() {
    let Some(server) = TestServer::start(Db::Sqlite).await else { return };
    let client = server.client();
    let home = login(&server).await;
    let cfg = home.path();
    create_project(cfg, "p", &["carts"]).await;
    let args = ["configure", "monitoring", "dynatrace", "--project", "p", "--service", "carts"];

    // Nobody answers (the built-in providers serve prometheus and http): says so after --wait-time, exit 0.
    let o = keptn(cfg, &[&args[..], &["--wait-time", "1"]].concat()).await;
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("No monitoring integration confirmed"), "{o}");
    let unanswered = monitoring_context(&o);
    let (s, b) = client.get(&format!("/api/mongodb-datastore/event?project=p&type={CONFIGURE}")).await;
    assert_eq!(s, 200, "{b}");
    let ev = b["events"].as_array().unwrap().iter().find(|e| e["shkeptncontext"] == unanswered.as_str()).cloned();
    let ev = ev.unwrap_or_else(|| panic!("the CLI's {CONFIGURE} is stored: {b}"));
    assert_eq!(ev["data"]["type"], "dynatrace", "{ev}");
    assert_eq!((&ev["data"]["project"], &ev["data"]["service"]), (&json!("p"), &json!("carts")), "{ev}");

    // A provider sees the new event in the datastore and confirms: the CLI prints its message.
    let provider = {
        let client = client.clone();
        let unanswered = unanswered.clone();
        tokio::spawn(async move {
            let ev = eventually(WAIT, "a second monitoring.configure", || {
                let client = client.clone();
                let unanswered = unanswered.clone();
                async move {
                    let (_, b) = client.get(&format!("/api/mongodb-datastore/event?project=p&type={CONFIGURE}")).await;
                    b["events"].as_array()?.iter().find(|e| e["shkeptncontext"] != unanswered.as_str()).cloned()
                }
            })
            .await;
            let finished = json!({
                "specversion": "1.0", "type": "sh.keptn.event.configure-monitoring.finished",
                "source": "dynatrace-service", "shkeptncontext": ev["shkeptncontext"], "triggeredid": ev["id"],
                "data": { "project": "p", "service": "carts", "status": "succeeded", "result": "pass",
                          "message": "Dynatrace monitoring configured" },
            });
            let (s, b) = client.post("/api/v1/event", finished).await;
            assert_eq!(s, 200, "the provider's answer is accepted: {b}");
            ev
        })
    };
    let o = keptn(cfg, &[&args[..], &["--wait-time", "30"]].concat()).await;
    let ev = provider.await.expect("the provider task");
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.contains("Dynatrace monitoring configured"), "{o}");
    assert!(!o.stdout.contains("No monitoring integration confirmed"), "{o}");
    assert_eq!(monitoring_context(&o), ev["shkeptncontext"].as_str().unwrap(), "{o}");
    assert_eq!(ev["data"]["type"], "dynatrace", "{ev}");
    server.stop().await;
}

/// 11: `completion` scripts; an unknown shell is bad usage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_scripts() {
    let home = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let o = keptn(home.path(), &["completion", shell]).await;
        assert_eq!(o.code, 0, "{shell}: {o}");
        assert!(o.stdout.contains("keptn") && o.stdout.contains("trigger"), "{shell}: {o}");
        assert!(o.stdout.lines().count() > 10, "{shell}: a whole script: {o}");
    }
    let o = keptn(home.path(), &["completion", "powershell2"]).await;
    assert_eq!(o.code, 2, "{o}");
    assert!(o.stdout.is_empty(), "{o}");
}
