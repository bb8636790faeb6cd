//! The built-in job runner (job-executor-service) on a real server, with real local processes:
//! a shipyard's `test` task runs a script from the configuration repository's `files`, its
//! `.finished` carries the logs and `test.start`/`test.end`; aborting a sequence kills its
//! running job with everything it started. SQLite (the job runner does not touch the store).

mod support;

use serde_json::{Value, json};
use std::time::Duration;
use support::*;

const CP: &str = "/api/controlPlane/v1";
const RS: &str = "/api/resource-service/v1";
const WAIT: Duration = Duration::from_secs(20);

const SHIPYARD: &str = r#"
apiVersion: spec.keptn.sh/0.2.3
kind: Shipyard
metadata: { name: jobs }
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: test
"#;

async fn put_resource(client: &Client, uri: &str, content: &str) {
    let (s, b) = client
        .post(
            &format!("{RS}/project/p/stage/dev/service/carts/resource"),
            json!({ "resources": [{ "resourceURI": uri, "resourceContent": b64(content) }] }),
        )
        .await;
    assert!(s == 201 || s == 200, "put {uri}: {s} {b}");
}

async fn setup(client: &Client, config: &str) {
    client.create_project("p", SHIPYARD).await;
    client.create_service("p", "carts").await;
    put_resource(client, "job/config.yaml", config).await;
}

async fn trigger(client: &Client) -> String {
    client
        .send(json!({ "type": "sh.keptn.event.dev.delivery.triggered", "source": "test",
                      "data": { "project": "p", "stage": "dev", "service": "carts",
                                "labels": { "build-id": "7" },
                                "deployment": { "deploymentURIsLocal": ["http://carts.dev:8080"] } } }))
        .await
}

fn from_job(events: &[Value], ty: &str) -> Option<Value> {
    events.iter().find(|e| e["type"] == ty && e["source"] == "job-executor-service").cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_task_runs_a_script_from_the_repository() {
    let Some(server) = TestServer::start(Db::Sqlite).await else { return };
    let client = server.client();
    let config = r#"
apiVersion: v2
actions:
  - name: "Run the tests"
    events:
      - name: "sh.keptn.event.test.triggered"
    tasks:
      - name: "smoke"
        image: "alpine:3.20"
        cmd: ["sh"]
        args: ["tests/smoke.sh", "$(URL)"]
        files: ["tests"]
        env:
          - name: URL
            valueFrom: event
            value: "$.data.deployment.deploymentURIsLocal[0]"
"#;
    setup(&client, config).await;
    put_resource(
        &client,
        "tests/smoke.sh",
        "echo \"smoke-testing $1 for build $LABELS_BUILD_ID\"\ncat tests/data.txt\n",
    )
    .await;
    put_resource(&client, "tests/data.txt", "fixture from the repo\n").await;
    let ctx = trigger(&client).await;

    let done = client.wait_for(&ctx, "sh.keptn.event.dev.delivery.finished", WAIT).await;
    assert_eq!(done["data"]["result"], "pass", "{done}");
    let events = client.events_of(&ctx).await;
    assert!(from_job(&events, "sh.keptn.event.test.started").is_some(), "{events:#?}");
    let finished = from_job(&events, "sh.keptn.event.test.finished").expect("the job answered");
    assert_eq!(finished["data"]["status"], "succeeded");
    assert_eq!(
        finished["data"]["message"],
        "Task 'smoke' finished successfully!\n\nLogs:\nsmoke-testing http://carts.dev:8080 for build 7\nfixture from the repo\n\n\n"
    );
    let start = time_ms(finished["data"]["test"]["start"].as_str().expect("test.start"));
    let end = time_ms(finished["data"]["test"]["end"].as_str().expect("test.end"));
    let triggered = events.iter().find(|e| e["type"] == "sh.keptn.event.test.triggered").unwrap();
    assert!(time_ms(triggered["time"].as_str().unwrap()) <= start && start <= end, "{finished}");
    server.stop().await;
}

/// Live (not zombie) processes of a process group.
fn alive_in_group(pgid: i32) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter(|stat| {
            let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.get(2).and_then(|g| g.parse::<i32>().ok()) == Some(pgid) && fields[0] != "Z"
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborting_the_sequence_kills_the_job_and_what_it_started() {
    let Some(server) = TestServer::start(Db::Sqlite).await else { return };
    let client = server.client();
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    // `$$$$`: the runner expands `$$` to `$` as Kubernetes does.
    let config = format!(
        "apiVersion: v2\nactions:\n  - name: long\n    events: [{{name: test.triggered}}]\n    tasks:\n      - name: hang\n        image: alpine\n        cmd: [sh, -c, 'echo $$$$ > {}; sleep 100 & sleep 100']\n",
        pid_file.display()
    );
    setup(&client, &config).await;
    let ctx = trigger(&client).await;
    client.wait_for(&ctx, "sh.keptn.event.test.started", WAIT).await;
    let pgid: i32 = eventually(WAIT, "the job wrote its pid", || {
        let pid_file = pid_file.clone();
        async move { std::fs::read_to_string(&pid_file).ok().and_then(|p| p.trim().parse().ok()) }
    })
    .await;
    assert!(alive_in_group(pgid) > 0, "the job runs");

    let (s, b) = client.post(&format!("{CP}/sequence/p/{ctx}/control"), json!({ "state": "abort" })).await;
    assert_eq!(s, 200, "{b}");
    eventually(
        WAIT,
        "no process of the job's group is left",
        || async move { (alive_in_group(pgid) == 0).then_some(()) },
    )
    .await;
    let events = client.events_of(&ctx).await;
    assert!(from_job(&events, "sh.keptn.event.test.finished").is_none(), "no answer after the abort: {events:#?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_config_is_in_the_integrations_error_log() {
    let Some(server) = TestServer::start(Db::Sqlite).await else { return };
    let client = server.client();
    setup(&client, "apiVersion: v2\nactions:\n  - name: a\n    events: [{name: test}]\n    tasks: [{name: t, image: alpine, cmd: ['true'], maxPollDurtion: 5}]\n").await;
    let ctx = trigger(&client).await;
    client.wait_for(&ctx, "sh.keptn.event.test.triggered", WAIT).await;
    let (s, regs) = client.get(&format!("{CP}/uniform/registration?name=job-executor-service")).await;
    assert_eq!(s, 200, "{regs}");
    let id = regs[0]["id"].as_str().expect("job-executor-service is registered").to_string();
    let entry = eventually(WAIT, "an error log entry", || {
        let (client, id) = (client.clone(), id.clone());
        async move {
            let (_, logs) = client.get(&format!("{CP}/log?integrationId={id}")).await;
            logs["logs"].as_array().and_then(|l| l.first()).cloned()
        }
    })
    .await;
    let message = entry["message"].as_str().unwrap();
    assert!(
        message.contains("could not retrieve config for job-executor-service: job/config.yaml")
            && message.contains("service carts")
            && message.contains("maxPollDurtion"),
        "{entry}"
    );
    assert_eq!(entry["shkeptncontext"], ctx.as_str());
    let events = client.events_of(&ctx).await;
    assert!(from_job(&events, "sh.keptn.event.test.started").is_none(), "the event is dropped: {events:#?}");
    server.stop().await;
}
