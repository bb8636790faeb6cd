//! The job runner through a fake control plane, with real local processes.

use super::*;
use crate::testing::Fake;
use serde_json::{Value, json};

fn triggered(ty: &str, data: Value) -> Arc<KeptnEvent> {
    let mut data = data;
    data["project"] = json!("p");
    data["stage"] = json!("dev");
    data["service"] = json!("carts");
    let mut e = KeptnEvent::new("0123456789abcdef0123456789abcdef".into(), ty.into(), "ctx1".into(), "".into(), data);
    e.gitcommitid = "c0ffee".into();
    Arc::new(e)
}

fn job() -> Job {
    Job::new(&JobSettings::default())
}

fn types(fake: &Fake) -> Vec<String> {
    fake.sent().iter().map(|e| e.ty.clone()).collect()
}

const TEST_CONFIG: &str = r#"
apiVersion: v2
actions:
  - name: "Run a script"
    events:
      - name: "sh.keptn.event.test.triggered"
    tasks:
      - name: "script"
        image: "alpine"
        cmd: ["sh"]
        args: ["$(KEPTN_DIR)/scripts/run.sh", "$(TARGET)"]
        files: ["scripts"]
        env:
          - name: TARGET
            valueFrom: event
            value: "$.data.deployment.deploymentURIsLocal[0]"
"#;

#[tokio::test]
async fn a_test_task_runs_a_script_from_the_repository_and_reports_keptns_way() {
    let fake = Fake::new();
    fake.file("p", Some("dev"), Some("carts"), "job/config.yaml", TEST_CONFIG);
    fake.file("p", Some("dev"), Some("carts"), "scripts/run.sh", "echo \"testing $1 in $KEPTN_SERVICE\"\n");
    let event =
        triggered("sh.keptn.event.test.triggered", json!({"deployment": {"deploymentURIsLocal": ["http://carts:80"]}}));
    job().handle(event.clone(), fake.clone()).await.unwrap();
    assert_eq!(types(&fake), ["sh.keptn.event.test.started", "sh.keptn.event.test.finished"]);
    let finished = &fake.sent()[1];
    assert_eq!(finished.triggeredid, event.id);
    assert_eq!(finished.source, NAME);
    assert_eq!((finished.data["status"].as_str(), finished.data["result"].as_str()), (Some("succeeded"), Some("pass")));
    assert_eq!(
        finished.data["message"],
        "Task 'script' finished successfully!\n\nLogs:\ntesting http://carts:80 in carts\n\n\n"
    );
    let (start, end) =
        (finished.data["test"]["start"].as_str().unwrap(), finished.data["test"]["end"].as_str().unwrap());
    assert!(crate::parse_time(start).unwrap() <= crate::parse_time(end).unwrap(), "{start} {end}");
}

#[tokio::test]
async fn secrets_become_env_and_never_leave_unmasked() {
    let fake = Fake::new();
    let config = r#"
apiVersion: v2
actions:
  - name: a
    events: [{name: "deployment.triggered"}]
    tasks:
      - name: leak
        image: alpine
        cmd: ["sh", "-c", "echo token=$TOKEN; exit 1"]
        env: [{name: creds, valueFrom: secret}]
"#;
    fake.file("p", None, None, "job/config.yaml", config);
    fake.put_secret("creds", &[("TOKEN", "s3cr3t-value")]);
    job().handle(triggered("sh.keptn.event.deployment.triggered", json!({})), fake.clone()).await.unwrap();
    let finished = fake.sent().pop().unwrap();
    assert_eq!(finished.data["result"], "fail");
    let all = serde_json::to_string(&fake.sent()).unwrap();
    assert!(!all.contains("s3cr3t-value"), "{all}");
    assert!(finished.data["message"].as_str().unwrap().contains("token=***"), "{}", finished.data["message"]);
}

#[tokio::test]
async fn a_missing_secret_fails_the_task_naming_it() {
    let fake = Fake::new();
    let config = "apiVersion: v2\nactions:\n  - name: a\n    events: [{name: deployment}]\n    tasks:\n      - {name: t, image: alpine, cmd: [\"true\"], env: [{name: nope, valueFrom: secret}]}\n";
    fake.file("p", Some("dev"), None, "job/config.yaml", config);
    job().handle(triggered("sh.keptn.event.deployment.triggered", json!({})), fake.clone()).await.unwrap();
    let finished = fake.sent().pop().unwrap();
    assert_eq!(finished.data["status"], "errored");
    assert!(
        finished.data["message"].as_str().unwrap().contains("secret \"nope\" does not exist"),
        "{}",
        finished.data["message"]
    );
}

#[tokio::test]
async fn an_invalid_config_is_an_error_naming_the_file_and_nothing_is_sent() {
    let fake = Fake::new();
    fake.file("p", Some("dev"), Some("carts"), "job/config.yaml", "apiVersion: v2\nactions: []\nmaxPoll: 3\n");
    let err = job().handle(triggered("sh.keptn.event.test.triggered", json!({})), fake.clone()).await.unwrap_err();
    assert!(!err.is_transient());
    let text = err.to_string();
    assert!(text.contains("job/config.yaml") && text.contains("service carts") && text.contains("maxPoll"), "{text}");
    assert!(fake.sent().is_empty());
}

#[tokio::test]
async fn no_config_or_no_matching_action_is_silent() {
    let fake = Fake::new();
    fake.place("p", Some("dev"), Some("carts"));
    job().handle(triggered("sh.keptn.event.test.triggered", json!({})), fake.clone()).await.unwrap();
    fake.file("p", None, None, "job/config.yaml", TEST_CONFIG);
    job().handle(triggered("sh.keptn.event.deployment.triggered", json!({})), fake.clone()).await.unwrap();
    assert!(fake.sent().is_empty());
}

#[tokio::test]
async fn the_service_level_config_wins_over_the_project_level() {
    let fake = Fake::new();
    let config = |script: &str| {
        format!(
            "apiVersion: v2\nactions:\n  - name: a\n    events: [{{name: deployment}}]\n    tasks:\n      - {{name: t, image: alpine, cmd: [sh, -c, '{script}']}}\n"
        )
    };
    fake.file("p", None, None, "job/config.yaml", &config("echo project"));
    fake.file("p", Some("dev"), Some("carts"), "job/config.yaml", &config("echo service"));
    job().handle(triggered("sh.keptn.event.deployment.triggered", json!({})), fake.clone()).await.unwrap();
    assert!(fake.sent()[1].data["message"].as_str().unwrap().contains("Logs:\nservice\n"));
}

#[tokio::test]
async fn images_are_checked_before_any_task_runs() {
    let fake = Fake::new();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let config = format!(
        "apiVersion: v2\nactions:\n  - name: a\n    events: [{{name: deployment}}]\n    tasks:\n      - {{name: first, image: alpine, cmd: [touch, '{}']}}\n      - {{name: second, image: evil/miner, cmd: ['true']}}\n",
        marker.display()
    );
    fake.file("p", None, None, "job/config.yaml", &config);
    let settings = JobSettings { allowed_images: vec!["alpine".into()], ..JobSettings::default() };
    Job::new(&settings)
        .handle(triggered("sh.keptn.event.deployment.triggered", json!({})), fake.clone())
        .await
        .unwrap();
    let finished = fake.sent().pop().unwrap();
    assert_eq!(finished.data["result"], "fail");
    assert!(
        finished.data["message"].as_str().unwrap().contains("image \"evil/miner\" is not allowed"),
        "{}",
        finished.data["message"]
    );
    assert!(!marker.exists(), "no task ran");
}

#[tokio::test]
async fn silent_actions_run_and_the_first_non_silent_one_answers() {
    let fake = Fake::new();
    let config = r#"
apiVersion: v2
actions:
  - name: quiet
    silent: true
    events: [{name: "deployment"}]
    tasks: [{name: q, image: alpine, cmd: ["sh", "-c", "echo quiet"]}]
  - name: loud
    events: [{name: "deployment"}]
    tasks: [{name: l, image: alpine, cmd: ["sh", "-c", "echo loud"]}]
  - name: later
    events: [{name: "deployment"}]
    tasks: [{name: x, image: alpine, cmd: ["false"]}]
"#;
    fake.file("p", None, None, "job/config.yaml", config);
    job().handle(triggered("sh.keptn.event.deployment.triggered", json!({})), fake.clone()).await.unwrap();
    assert_eq!(types(&fake), ["sh.keptn.event.deployment.started", "sh.keptn.event.deployment.finished"]);
    let finished = &fake.sent()[1];
    assert_eq!(finished.data["result"], "pass");
    assert_eq!(finished.data["message"], "Task 'l' finished successfully!\n\nLogs:\nloud\n\n\n");
}

#[tokio::test]
async fn the_end_of_the_sequence_stops_its_job() {
    let fake = Fake::new();
    let config = "apiVersion: v2\nactions:\n  - name: a\n    events: [{name: test.triggered}]\n    tasks:\n      - {name: long, image: alpine, cmd: [sleep, '100']}\n";
    fake.file("p", None, None, "job/config.yaml", config);
    let job = Arc::new(job());
    let running = tokio::spawn({
        let (job, fake) = (job.clone(), fake.clone());
        async move { job.handle(triggered("sh.keptn.event.test.triggered", json!({})), fake).await }
    });
    // Wait until it started.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while fake.sent().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut aborted = KeptnEvent::new(
        "seq-end".into(),
        "sh.keptn.event.dev.delivery.finished".into(),
        "ctx1".into(),
        "".into(),
        json!({"project": "p", "stage": "dev", "service": "carts", "status": "aborted", "result": "pass"}),
    );
    aborted.gitcommitid = "c0ffee".into();
    job.handle(Arc::new(aborted), fake.clone()).await.unwrap();
    let done = tokio::time::timeout(Duration::from_secs(5), running).await.expect("the job stopped").unwrap();
    assert!(done.is_ok());
    assert_eq!(types(&fake), ["sh.keptn.event.test.started"], "no .finished for an ended sequence");
}
