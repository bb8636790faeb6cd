//! What a new user meets first: keptn 1.x commands that keptn-rs does not have, `keptn evaluate
//! --previous` given the wrong file, the server's log off a terminal, an evaluation whose SLI
//! provider cannot be reached, and a task no integration subscribes to. The real binary, as a
//! user runs it.

mod support;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::cli::keptn;
use support::*;

const CP: &str = "/api/controlPlane/v1";
const RS: &str = "/api/resource-service/v1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keptn_1x_commands_say_what_to_use_instead() {
    let home = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["send", "event", "new-artifact", "--project", "p", "--service", "s", "--image", "i"],
            "keptn trigger delivery",
        ),
        (&["install"], "keptn server"),
        (&["upgrade", "--chart-repo", "x"], "keptn server"),
        (&["uninstall"], "data dir"),
        (&["generate", "support-archive"], "--data-dir"),
        (&["generate", "docs"], "keptn --help"),
        (&["configure", "bridge", "--user", "u"], "no Bridge"),
        (&["set", "config", "AutomaticVersionCheck", "false"], "KEPTN_CONFIG_DIR"),
        (&["onboard", "service", "carts", "--project", "p"], "keptn create service"),
        (&["auth", "--oauth", "--endpoint", "http://x"], "--api-token"),
    ];
    for (args, hint) in cases {
        let o = keptn(home.path(), args).await;
        assert_eq!(o.code, 2, "bad usage for keptn {args:?}: {o}");
        assert!(o.stderr.contains(hint), "keptn {args:?} names {hint:?}: {o}");
        assert!(
            !o.stderr.contains("similar") && !o.stderr.contains("tip:"),
            "no nearest-spelling guess for keptn {args:?}: {o}"
        );
        assert_eq!(o.stderr.trim().lines().count(), 1, "one line: {o}");
    }
    // A misspelt command that keptn never had still gets clap's help.
    let o = keptn(home.path(), &["trigger", "delivry"]).await;
    assert_eq!(o.code, 2, "{o}");
    assert!(o.stderr.contains("delivery"), "{o}");
    // An argument that is not UTF-8 is bad usage too, not a panic.
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let out = Command::new(env!("CARGO_BIN_EXE_keptn"))
            .arg(std::ffi::OsStr::from_bytes(b"inst\xffall"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// `keptn server` as a user starts it, with stderr going to a file (not a terminal).
struct ServerProcess {
    child: Child,
    url: String,
    token: String,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl ServerProcess {
    fn start() -> ServerProcess {
        install_crypto();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("stderr.log");
        let token = "frictions-token-0123456789".to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_keptn"))
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            // Not the job runner: it subscribes to test.triggered, the task these tests leave unanswered.
            .args(["--integrations", "approval,lighthouse,prometheus,http-sli"])
            .env("KEPTN_API_TOKEN", &token)
            .env_remove("NO_COLOR")
            .env_remove("KEPTN_LOG")
            .env_remove("KEPTN_LOG_FORMAT")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = lines.next().expect("the server prints where it listens").unwrap();
            if let Some(url) = line.strip_prefix("keptn server listening on ") {
                break url.to_string();
            }
        };
        ServerProcess { child, url, token, log, _dir: dir }
    }

    fn client(&self) -> Client {
        Client { url: self.url.clone(), token: self.token.clone(), http: reqwest::Client::new() }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    /// The log once it has a line with every one of `words`, within 10 s.
    async fn wait_for_log(&self, words: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.lines().any(|l| words.iter().all(|w| l.contains(w))) {
                return log;
            }
            assert!(Instant::now() < deadline, "no log line with {words:?}:\n{log}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const ONE_TASK: &str = r#"apiVersion: spec.keptn.sh/0.2.3
kind: Shipyard
metadata: { name: one-task }
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: test
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_have_no_colour_codes_off_a_terminal() {
    let server = ServerProcess::start();
    let log = server.wait_for_log(&["keptn server listening"]).await;
    assert!(!log.contains('\x1b'), "no ANSI escape codes in a log file:\n{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluate_previous_takes_only_evaluation_finished_data() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("slo.yaml"),
        "objectives:\n  - sli: rt\n    pass: [ { criteria: [\"<=+10%\"] } ]\ntotal_score: { pass: \"90%\", warning: \"75%\" }\n",
    )
    .unwrap();
    let values = json!([{ "metric": "rt", "value": 100, "success": true }]);
    std::fs::write(d.join("values.json"), values.to_string()).unwrap();
    let good = json!([{ "result": "pass", "evaluation": { "indicatorResults":
        [{ "value": { "metric": "rt", "value": 95, "success": true }, "status": "pass" }] } }]);
    let event = json!([{ "type": "sh.keptn.event.evaluation.finished", "data": good[0] }]);
    let cases = [
        ("sli-values.json", values.clone(), "previous[0]"),
        ("event.json", event, "a whole event"),
        ("strings.json", json!(["pass"]), "previous[0]"),
        ("no-evaluation.json", json!([{ "result": "pass" }]), "evaluation"),
    ];
    let run = |previous: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_keptn"))
            .args(["evaluate", "--slo", "slo.yaml", "--sli", "values.json", "--previous", previous])
            .current_dir(d)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    for (file, content, what) in cases {
        std::fs::write(d.join(file), content.to_string()).unwrap();
        let (code, stderr) = run(file);
        assert_eq!(code, Some(1), "{file}: {stderr}");
        assert!(stderr.contains(file) && stderr.contains(what), "{file} names the file and {what:?}: {stderr}");
        assert!(stderr.contains("evaluation.finished"), "says what it wants: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
    std::fs::write(d.join("good.json"), good.to_string()).unwrap();
    let (code, stderr) = run("good.json");
    assert_eq!(code, Some(0), "evaluation.finished data is taken: {stderr}");
}

async fn put_resource(client: &Client, path: &str, uri: &str, content: &str) {
    let (s, b) = client
        .post(
            &format!("{RS}/project/p{path}/resource"),
            json!({ "resources": [{ "resourceURI": uri, "resourceContent": b64(content) }] }),
        )
        .await;
    assert_eq!(s, 201, "write {uri}: {b}");
}

/// A loopback port nothing listens on.
async fn closed_port() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

fn refused(text: &str) -> bool {
    text.to_lowercase().contains("connection refused")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_sli_provider_is_named_in_watch_and_get_evaluations() {
    let gates = keptn_server::QualityGates { prometheus_url: Some(closed_port().await), ..Default::default() };
    let Some(server) = TestServer::start_full(Db::Sqlite, Duration::from_secs(600), gates).await else { return };
    let client = server.client();
    client.create_project("p", ONE_TASK).await;
    client.create_service("p", "carts").await;
    put_resource(
        &client,
        "/stage/dev/service/carts",
        "slo.yaml",
        "objectives:\n  - sli: rt\n    pass: [ { criteria: [\"<600\"] } ]\ntotal_score: { pass: \"90%\" }\n",
    )
    .await;
    put_resource(&client, "", "prometheus/sli.yaml", "indicators:\n  rt: \"app_rt{service='$SERVICE'}\"\n").await;
    let home = tempfile::tempdir().unwrap();
    let cfg = home.path();
    assert_eq!(keptn(cfg, &["auth", "--endpoint", &server.url, "--api-token", &server.token]).await.code, 0);

    let args = ["trigger", "evaluation", "--project", "p", "--stage", "dev", "--service", "carts", "--timeframe", "5m"];
    let o = keptn(cfg, &[&args[..], &["--watch"]].concat()).await;
    assert_eq!(o.code, 3, "{o}");
    assert!(refused(&o.stdout), "--watch says the provider could not be reached: {o}");
    let o = keptn(cfg, &["get", "evaluations", "--project", "p", "--stage", "dev", "--service", "carts"]).await;
    assert_eq!(o.code, 0, "{o}");
    let row = o.stdout.lines().nth(1).unwrap_or_else(|| panic!("{o}"));
    assert!(row.contains("fail") && refused(row), "get evaluations says why: {o}");
    server.stop().await;
}

fn trigger(project: &str) -> Value {
    json!({ "type": "sh.keptn.event.dev.delivery.triggered", "source": "cli-frictions",
            "data": { "project": project, "stage": "dev", "service": "carts" } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_nobody_subscribes_to_is_logged_at_once() {
    let server = ServerProcess::start();
    let client = server.client();
    client.create_project("p", ONE_TASK).await;
    client.create_service("p", "carts").await;
    client.send(trigger("p")).await;
    let log = server
        .wait_for_log(&[
            "WARN",
            "sh.keptn.event.test.triggered",
            "project=p",
            "stage=dev",
            "service=carts",
            "no integration subscribes",
        ])
        .await;
    assert!(log.contains("task start timeout"), "says what happens next:\n{log}");

    // With a subscriber, the same task goes out without a warning.
    client.create_project("q", ONE_TASK).await;
    client.create_service("q", "carts").await;
    let (s, b) = client
        .post(
            &format!("{CP}/uniform/registration"),
            json!({ "name": "jmeter-service", "metadata": { "hostname": "h", "kubernetesmetadata": { "namespace": "keptn" } },
                    "subscriptions": [{ "event": "sh.keptn.event.test.triggered", "filter": { "projects": ["q"] } }] }),
        )
        .await;
    assert!(s == 200 || s == 201, "{b}");
    client.send(trigger("q")).await;
    eventually(Duration::from_secs(10), "the test task of q is out", || {
        let client = client.clone();
        async move { (!client.open_triggered("sh.keptn.event.test.triggered", "q").await.is_empty()).then_some(()) }
    })
    .await;
    // Events go out in commit order: once a later project's warning is logged, q's would be too.
    client.create_project("r", ONE_TASK).await;
    client.create_service("r", "carts").await;
    client.send(trigger("r")).await;
    let log = server.wait_for_log(&["WARN", "project=r"]).await;
    assert!(!log.lines().any(|l| l.contains("WARN") && l.contains("project=q")), "{log}");
}

/// A shown task waiting for an integration that nobody registered says so, in the API's
/// sequence-execution document and in `keptn get sequence`; once one subscribes, it does not.
async fn a_task_nobody_subscribes_to_is_shown(db: Db) {
    // Without the job runner, which subscribes to test.triggered (it answers only where a
    // job/config.yaml matches).
    let builtins = keptn_server::select_integrations("approval,lighthouse,prometheus,http-sli").unwrap();
    let Some(server) = TestServer::start_tuned(db, |c| c.integrations = builtins).await else { return };
    let client = server.client();
    client.create_project("p", ONE_TASK).await;
    client.create_service("p", "carts").await;
    let ctx = client.send(trigger("p")).await;
    let current = eventually(Duration::from_secs(10), "the test task is out", || {
        let client = client.clone();
        let ctx = ctx.clone();
        async move {
            let (_, b) = client.get(&format!("{CP}/sequence-execution?project=p&keptnContext={ctx}")).await;
            let current = b["sequenceExecutions"][0]["status"]["currentTask"].clone();
            (current["name"] == "test").then_some(current)
        }
    })
    .await;
    assert_eq!(current["subscribed"], false, "{current}");

    let home = tempfile::tempdir().unwrap();
    let cfg = home.path();
    assert_eq!(keptn(cfg, &["auth", "--endpoint", &server.url, "--api-token", &server.token]).await.code, 0);
    let o = keptn(cfg, &["get", "sequence", &ctx, "--project", "p"]).await;
    assert_eq!(o.code, 0, "{o}");
    let line = o.stdout.lines().find(|l| l.trim_start().starts_with("test")).unwrap_or_else(|| panic!("{o}"));
    assert!(line.contains("waiting: no integration subscribed to sh.keptn.event.test.triggered"), "{o}");

    let (s, b) = client
        .post(
            &format!("{CP}/uniform/registration"),
            json!({ "name": "jmeter-service", "metadata": { "hostname": "h", "kubernetesmetadata": { "namespace": "keptn" } },
                    "subscriptions": [{ "event": "sh.keptn.event.test.triggered", "filter": { "projects": ["p"] } }] }),
        )
        .await;
    assert!(s == 200 || s == 201, "{b}");
    let o = keptn(cfg, &["get", "sequence", &ctx, "--project", "p"]).await;
    assert!(!o.stdout.contains("no integration subscribed") && o.stdout.contains("triggered"), "{o}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_nobody_subscribes_to_is_shown_sqlite() {
    a_task_nobody_subscribes_to_is_shown(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_nobody_subscribes_to_is_shown_postgres() {
    a_task_nobody_subscribes_to_is_shown(Db::Postgres).await;
}
