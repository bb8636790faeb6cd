//! Sequences driven over HTTP as integrations and users drive them: lanes, pause / resume /
//! abort, start and run timeouts, delayed tasks, the evaluation endpoint and the sequence views.
//! SQLite and PostgreSQL.

mod support;

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::*;

const CP: &str = "/api/controlPlane/v1";
const WAIT: Duration = Duration::from_secs(5);
const DEPLOYMENT: &str = "sh.keptn.event.deployment.triggered";
const TEST: &str = "sh.keptn.event.test.triggered";

const SHIPYARD: &str = r#"
apiVersion: spec.keptn.sh/0.2.3
kind: Shipyard
metadata: { name: s }
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: deployment
            - name: test
        - name: slow
          tasks:
            - name: deployment
              properties: { timeout: 1s }
        - name: later
          tasks:
            - name: deployment
              triggeredAfter: "1s"
"#;

async fn setup(db: Db, start_timeout: Duration) -> Option<(TestServer, Client)> {
    let server = TestServer::start_with(db, start_timeout).await?;
    let client = server.client();
    // These tests play keptn's lighthouse-service themselves.
    client.disable_builtin("lighthouse-service").await;
    client.create_project("p", SHIPYARD).await;
    client.create_service("p", "carts").await;
    client.create_service("p", "orders").await;
    Some((server, client))
}

async fn trigger(client: &Client, sequence: &str, service: &str) -> String {
    client
        .send(json!({
            "type": format!("sh.keptn.event.dev.{sequence}.triggered"), "source": "test",
            "data": { "project": "p", "stage": "dev", "service": service, "labels": { "run": service } },
        }))
        .await
}

/// The open `.triggered` of this type for a context, if any.
async fn open_of(client: &Client, ty: &str, ctx: &str) -> Option<Value> {
    client.open_triggered(ty, "p").await.into_iter().find(|e| e["shkeptncontext"] == ctx)
}

fn contexts(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| e["shkeptncontext"].as_str().unwrap().to_string()).collect()
}

async fn state_of(client: &Client, ctx: &str) -> String {
    client.sequence_state("p", ctx).await["state"].as_str().unwrap_or("").to_string()
}

async fn execution_of(client: &Client, ctx: &str) -> Value {
    let (s, b) = client.get(&format!("{CP}/sequence-execution?project=p&keptnContext={ctx}")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["totalCount"], 1, "{b}");
    b["sequenceExecutions"][0].clone()
}

async fn types_of(client: &Client, ctx: &str) -> Vec<String> {
    client.events_of(ctx).await.iter().map(|e| e["type"].as_str().unwrap().to_string()).collect()
}

async fn lanes(db: Db) {
    let Some((server, client)) = setup(db, Duration::from_secs(600)).await else { return };
    let first = trigger(&client, "delivery", "carts").await;
    let second = trigger(&client, "delivery", "carts").await;
    let other = trigger(&client, "delivery", "orders").await;

    // One sequence at a time per (project, stage, service); other services run at once.
    let open = client.open_triggered(DEPLOYMENT, "p").await;
    assert_eq!(contexts(&open), vec![first.clone(), other.clone()], "the second carts delivery must wait");
    assert_eq!(state_of(&client, &first).await, "started");
    assert_eq!(state_of(&client, &second).await, "waiting");
    assert_eq!(state_of(&client, &other).await, "started");
    assert_eq!(execution_of(&client, &second).await["status"]["state"], "triggered");

    // The first carts delivery moves to its next task: the lane is still taken.
    client.answer("helm", &open[0], Some("pass")).await;
    let test = open_of(&client, TEST, &first).await.expect("the first delivery's test is triggered");
    assert!(open_of(&client, DEPLOYMENT, &second).await.is_none(), "the lane is held until the first finishes");
    assert_eq!(state_of(&client, &second).await, "waiting");

    // It finishes: the second starts.
    client.answer("jmeter", &test, Some("pass")).await;
    let finished = client.wait_for(&first, "sh.keptn.event.dev.delivery.finished", WAIT).await;
    assert_eq!(finished["data"]["result"], "pass");
    let deployment = open_of(&client, DEPLOYMENT, &second).await.expect("the second delivery starts");
    assert_eq!(deployment["data"]["labels"]["run"], "carts");
    assert_eq!(state_of(&client, &first).await, "finished");
    assert_eq!(state_of(&client, &second).await, "started");
    let exec = execution_of(&client, &second).await;
    assert_eq!(exec["status"]["state"], "started");
    assert_eq!(exec["status"]["currentTask"]["name"], "deployment");
    assert_eq!(exec["status"]["currentTask"]["triggeredID"], deployment["id"]);
    assert_eq!(exec["scope"]["keptnContext"], second);
    server.stop().await;
}

async fn pause_resume_abort(db: Db) {
    let Some((server, client)) = setup(db, Duration::from_secs(600)).await else { return };
    let ctx = trigger(&client, "delivery", "carts").await;
    let control = format!("{CP}/sequence/p/{ctx}/control");
    let deployment = open_of(&client, DEPLOYMENT, &ctx).await.expect("deployment triggered");

    let (s, b) = client.post(&control, json!({ "state": "pause" })).await;
    assert_eq!((s, &b), (200, &json!({})), "pause");
    assert_eq!(state_of(&client, &ctx).await, "paused");
    assert_eq!(execution_of(&client, &ctx).await["status"]["paused"], true);
    // The running task is not interrupted; its answer is taken, but the next task is held.
    client.answer("helm", &deployment, Some("pass")).await;
    assert!(open_of(&client, DEPLOYMENT, &ctx).await.is_none(), "the answered task is closed");
    assert!(!types_of(&client, &ctx).await.iter().any(|t| t == TEST), "no test.triggered while paused");
    assert!(open_of(&client, TEST, &ctx).await.is_none());
    assert_eq!(state_of(&client, &ctx).await, "paused");

    let (s, _) = client.post(&control, json!({ "state": "resume" })).await;
    assert_eq!(s, 200);
    let test = open_of(&client, TEST, &ctx).await.expect("resume sends the held task");
    assert_eq!(test["data"]["labels"]["run"], "carts");
    assert_eq!(state_of(&client, &ctx).await, "started");
    assert_eq!(execution_of(&client, &ctx).await["status"]["paused"], false);

    let (s, _) = client.post(&control, json!({ "state": "abort" })).await;
    assert_eq!(s, 200);
    let finished = client.wait_for(&ctx, "sh.keptn.event.dev.delivery.finished", WAIT).await;
    assert_eq!(finished["data"]["status"], "aborted");
    assert_eq!(finished["data"]["result"], "pass");
    assert_eq!(finished["triggeredid"], client.events_of(&ctx).await[0]["id"], "answers the sequence's .triggered");
    assert!(open_of(&client, TEST, &ctx).await.is_none(), "the aborted task is closed");
    assert!(open_of(&client, "sh.keptn.event.dev.delivery.triggered", &ctx).await.is_none());
    assert_eq!(state_of(&client, &ctx).await, "aborted");
    let exec = execution_of(&client, &ctx).await;
    assert_eq!((&exec["status"]["state"], &exec["status"]["status"]), (&json!("finished"), &json!("aborted")));

    // A late answer to the aborted task, or a second abort, starts nothing and finishes nothing again.
    let before = client.events_of(&ctx).await.len();
    client.answer("jmeter", &test, Some("pass")).await;
    let (s, _) = client.post(&control, json!({ "state": "abort" })).await;
    assert_eq!(s, 200);
    let after = types_of(&client, &ctx).await;
    assert_eq!(after.len(), before + 2, "only the two answers were added: {after:?}");
    assert_eq!(after.iter().filter(|t| t.ends_with("delivery.finished")).count(), 1);
    assert_eq!(state_of(&client, &ctx).await, "aborted");

    // Abort also ends a sequence that is still waiting for its lane.
    let running = trigger(&client, "delivery", "orders").await;
    let queued = trigger(&client, "delivery", "orders").await;
    assert_eq!(state_of(&client, &queued).await, "waiting");
    let (s, _) = client.post(&format!("{CP}/sequence/p/{queued}/control"), json!({ "state": "abort" })).await;
    assert_eq!(s, 200);
    let f = client.wait_for(&queued, "sh.keptn.event.dev.delivery.finished", WAIT).await;
    assert_eq!(f["data"]["status"], "aborted");
    assert!(!types_of(&client, &queued).await.iter().any(|t| t == DEPLOYMENT), "it never started");
    assert_eq!(state_of(&client, &running).await, "started", "the running one is untouched");
    server.stop().await;
}

async fn start_timeout(db: Db) {
    let Some((server, client)) = setup(db, Duration::from_millis(300)).await else { return };
    let ctx = trigger(&client, "delivery", "carts").await;
    let finished = client.wait_for(&ctx, "sh.keptn.event.dev.delivery.finished", WAIT).await;
    assert_eq!(finished["data"]["status"], "errored");
    assert_eq!(finished["data"]["result"], "fail");
    let message = finished["data"]["message"].as_str().unwrap();
    assert!(message.contains("deployment"), "the message names the task: {message}");
    assert!(open_of(&client, DEPLOYMENT, &ctx).await.is_none(), "the timed-out task is closed");
    assert!(!types_of(&client, &ctx).await.iter().any(|t| t == TEST), "no further task");
    assert_eq!(state_of(&client, &ctx).await, "timedOut");
    assert_eq!(execution_of(&client, &ctx).await["status"]["state"], "timedOut");

    // A task that was answered in time is not timed out by the start timer.
    let ctx = trigger(&client, "delivery", "orders").await;
    let deployment = open_of(&client, DEPLOYMENT, &ctx).await.unwrap();
    client.answer("helm", &deployment, None).await; // .started only
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(state_of(&client, &ctx).await, "started", "a started task waits for its .finished");
    server.stop().await;
}

async fn run_timeout(db: Db) {
    let Some((server, client)) = setup(db, Duration::from_secs(600)).await else { return };
    let ctx = trigger(&client, "slow", "carts").await;
    let deployment = open_of(&client, DEPLOYMENT, &ctx).await.expect("deployment triggered");
    client.answer("helm", &deployment, None).await; // the integration starts but never finishes
    let finished = client.wait_for(&ctx, "sh.keptn.event.dev.slow.finished", WAIT).await;
    assert_eq!(finished["data"]["status"], "errored");
    assert_eq!(finished["data"]["result"], "fail");
    let message = finished["data"]["message"].as_str().unwrap();
    assert!(message.contains("deployment") && message.contains("1s"), "names the task and the timeout: {message}");
    assert!(open_of(&client, DEPLOYMENT, &ctx).await.is_none());
    assert_eq!(state_of(&client, &ctx).await, "timedOut");
    // The lane is free again.
    let next = trigger(&client, "delivery", "carts").await;
    assert!(open_of(&client, DEPLOYMENT, &next).await.is_some());
    server.stop().await;
}

async fn triggered_after(db: Db) {
    let Some((server, client)) = setup(db, Duration::from_secs(600)).await else { return };
    let started = Instant::now();
    let ctx = trigger(&client, "later", "carts").await;
    assert!(open_of(&client, DEPLOYMENT, &ctx).await.is_none(), "a delayed task is invisible to pollers until due");
    assert!(
        open_of(&client, "sh.keptn.event.dev.later.triggered", &ctx).await.is_some(),
        "while the sequence itself is open"
    );
    let due =
        eventually(Duration::from_secs(5), "the delayed task", || async { open_of(&client, DEPLOYMENT, &ctx).await })
            .await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "visible only after triggeredAfter: {:?}",
        started.elapsed()
    );
    let sequence = client.events_of(&ctx).await[0].clone();
    assert_eq!(sequence["type"], "sh.keptn.event.dev.later.triggered");
    let delay = time_ms(due["time"].as_str().unwrap()) - time_ms(sequence["time"].as_str().unwrap());
    assert!((1000..5000).contains(&delay), "the task's time is its scheduled time ({delay} ms after the trigger)");
    client.answer("helm", &due, Some("pass")).await;
    let finished = client.wait_for(&ctx, "sh.keptn.event.dev.later.finished", WAIT).await;
    assert_eq!(finished["data"]["result"], "pass");
    server.stop().await;
}

async fn evaluation(db: Db) {
    let Some((server, client)) = setup(db, Duration::from_secs(600)).await else { return };
    let path = format!("{CP}/project/p/stage/dev/service/carts/evaluation");
    let (s, b) = client.post(&path, json!({})).await;
    assert_eq!(s, 200, "{b}");
    let ctx = b["keptnContext"].as_str().unwrap().to_string();
    let task = client.wait_for(&ctx, "sh.keptn.event.evaluation.triggered", WAIT).await;
    let events = client.events_of(&ctx).await;
    assert_eq!(events[0]["type"], "sh.keptn.event.dev.evaluation.triggered", "the sequence event comes first");
    assert_eq!(events[0]["source"], "https://github.com/keptn/keptn/api");
    assert_eq!(events[0]["data"]["evaluation"]["timeframe"], "5m", "default timeframe");
    assert_eq!(events[1]["id"], task["id"]);
    assert_eq!(task["data"]["evaluation"]["timeframe"], "5m");
    assert_eq!(
        (&task["data"]["project"], &task["data"]["stage"], &task["data"]["service"]),
        (&json!("p"), &json!("dev"), &json!("carts"))
    );
    // lighthouse answers: the sequence finishes and the view shows the evaluation.
    let (started, finished) =
        answers("lighthouse-service", &task, "pass", json!({ "evaluation": { "score": 92.5, "result": "pass" } }));
    client.send(started).await;
    client.send(finished).await;
    let done = client.wait_for(&ctx, "sh.keptn.event.dev.evaluation.finished", WAIT).await;
    assert_eq!(done["data"]["result"], "pass");
    let view = client.sequence_state("p", &ctx).await;
    assert_eq!(view["name"], "evaluation");
    assert_eq!(view["state"], "finished");
    assert_eq!(view["stages"][0]["latestEvaluation"]["score"], 92.5);
    assert_eq!(view["stages"][0]["state"], "succeeded");

    // Only `evaluation` is built in: another undeclared sequence finishes errored at once (keptn).
    let ctx_x = trigger(&client, "hotfix", "carts").await;
    let f = client.wait_for(&ctx_x, "sh.keptn.event.dev.hotfix.finished", WAIT).await;
    assert_eq!((&f["data"]["status"], &f["data"]["result"]), (&json!("errored"), &json!("fail")));
    assert!(f["data"]["message"].as_str().unwrap().contains("hotfix"), "{f}");
    assert_eq!(client.events_of(&ctx_x).await.len(), 2, "no task was triggered");

    // Explicit windows and labels.
    let (s, b) =
        client.post(&path, json!({ "timeframe": "10m", "labels": { "buildId": "7" }, "gitcommitid": "abc" })).await;
    assert_eq!(s, 200, "{b}");
    let ctx = b["keptnContext"].as_str().unwrap();
    let task = client.wait_for(ctx, "sh.keptn.event.evaluation.triggered", WAIT).await;
    assert_eq!(task["data"]["evaluation"]["timeframe"], "10m");
    assert_eq!(task["data"]["labels"]["buildId"], "7");
    assert_eq!(task["gitcommitid"], "abc");
    let (s, b) = client.post(&path, json!({ "start": "2026-01-01T10:00:00", "end": "2026-01-01T10:05:00.000Z" })).await;
    assert_eq!(s, 200, "{b}");
    let ctx = b["keptnContext"].as_str().unwrap();
    let seq = client.wait_for(ctx, "sh.keptn.event.dev.evaluation.triggered", WAIT).await;
    assert_eq!(seq["data"]["evaluation"]["start"], "2026-01-01T10:00:00.000Z", "keptn's short format is normalised");
    assert_eq!(seq["data"]["evaluation"]["end"], "2026-01-01T10:05:00.000Z");
    assert!(seq["data"]["evaluation"].get("timeframe").is_none(), "{seq}");
    let (s, b) = client.post(&path, json!({ "start": "2026-01-01T10:00:00.000Z", "timeframe": "15m" })).await;
    assert_eq!(s, 200, "start + timeframe: {b}");
    let r = client.raw(reqwest::Method::POST, &path, &[("x-token", &client.token)], None).await;
    assert_eq!(r.status, 200, "no body at all means all defaults: {r:?}");

    // Refused: both end and timeframe, end without start, bad values, unknown scope.
    let before = client.get(&format!("{CP}/sequence/p")).await.1["totalCount"].clone();
    for (body, what) in [
        (
            json!({ "start": "2026-01-01T10:00:00.000Z", "end": "2026-01-01T10:05:00.000Z", "timeframe": "5m" }),
            "end + timeframe",
        ),
        (json!({ "end": "2026-01-01T10:05:00.000Z", "timeframe": "5m" }), "end + timeframe without start"),
        (json!({ "end": "2026-01-01T10:05:00.000Z" }), "end without start"),
        (json!({ "timeframe": "five minutes" }), "bad timeframe"),
        (json!({ "timeframe": "99999999999999999999h" }), "timeframe past the maximum duration"),
        (json!({ "start": "yesterday" }), "bad start"),
        (json!({ "start": "2026-01-01T10:00:00Z", "end": "soon" }), "bad end"),
    ] {
        let (s, b) = client.post(&path, body).await;
        assert_eq!((s, &b["code"]), (400, &json!(400)), "{what}: {b}");
    }
    for p in ["stage/qa/service/carts", "stage/dev/service/nope"] {
        let (s, b) = client.post(&format!("{CP}/project/p/{p}/evaluation"), json!({})).await;
        assert_eq!(s, 404, "{p}: {b}");
    }
    let (s, _) = client.post(&format!("{CP}/project/nope/stage/dev/service/carts/evaluation"), json!({})).await;
    assert_eq!(s, 404);
    let after = client.get(&format!("{CP}/sequence/p")).await.1["totalCount"].clone();
    assert_eq!(before, after, "refused requests start nothing");
    server.stop().await;
}

async fn sequence_views(db: Db) {
    let Some((server, client)) = setup(db, Duration::from_secs(600)).await else { return };
    // c1: a finished delivery of carts; c2: a running delivery of orders; c3: an evaluation.
    let c1 = trigger(&client, "delivery", "carts").await;
    let d = open_of(&client, DEPLOYMENT, &c1).await.unwrap();
    client.answer("helm", &d, Some("pass")).await;
    let t = open_of(&client, TEST, &c1).await.unwrap();
    client.answer("jmeter", &t, Some("warning")).await;
    client.wait_for(&c1, "sh.keptn.event.dev.delivery.finished", WAIT).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let c2 = trigger(&client, "delivery", "orders").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (_, b) = client.post(&format!("{CP}/project/p/stage/dev/service/carts/evaluation"), json!({})).await;
    let c3 = b["keptnContext"].as_str().unwrap().to_string();

    let (s, view) = client.get(&format!("{CP}/sequence/p")).await;
    assert_eq!(s, 200, "{view}");
    assert_eq!(view["totalCount"], 3);
    assert_eq!(view["nextPageKey"], 0, "an integer, as keptn's models.SequenceStates");
    let states = view["states"].as_array().unwrap();
    assert_eq!(contexts(states), vec![c3.clone(), c2.clone(), c1.clone()], "newest first");
    let s1 = &states[2];
    assert_eq!((&s1["name"], &s1["service"], &s1["project"]), (&json!("delivery"), &json!("carts"), &json!("p")));
    assert_eq!(s1["state"], "finished");
    assert_eq!(s1["stages"][0]["name"], "dev");
    assert_eq!(s1["stages"][0]["state"], "succeeded");
    assert_eq!(s1["stages"][0]["latestEvent"]["type"], "sh.keptn.event.dev.delivery.finished");
    assert!(s1["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{s1}");
    assert_eq!(states[1]["state"], "started");
    assert_eq!(states[1]["stages"][0]["latestEvent"]["type"], DEPLOYMENT);
    assert_eq!(states[0]["name"], "evaluation");

    let q = |query: &str| {
        let client = client.clone();
        let path = format!("{CP}/sequence/p?{query}");
        async move {
            let (s, b) = client.get(&path).await;
            assert_eq!(s, 200, "{path}: {b}");
            b
        }
    };
    assert_eq!(contexts(q("name=delivery").await["states"].as_array().unwrap()), vec![c2.clone(), c1.clone()]);
    assert_eq!(contexts(q("state=finished").await["states"].as_array().unwrap()), vec![c1.clone()]);
    // The state filter applies before paging (the Bridge pages through filtered lists).
    let page = q("state=finished&pageSize=1").await;
    assert_eq!(contexts(page["states"].as_array().unwrap()), vec![c1.clone()], "{page}");
    assert_eq!((&page["totalCount"], &page["nextPageKey"]), (&json!(1), &json!(0)), "{page}");
    let page = q("state=started&pageSize=1&nextPageKey=1").await;
    assert_eq!(contexts(page["states"].as_array().unwrap()), vec![c2.clone()], "c3 (evaluation) and c2 run: {page}");
    assert_eq!((&page["totalCount"], &page["nextPageKey"]), (&json!(2), &json!(0)), "{page}");
    assert_eq!(
        contexts(q(&format!("keptnContext={c1},{c3}")).await["states"].as_array().unwrap()),
        vec![c3.clone(), c1.clone()]
    );
    let page = q("pageSize=1").await;
    assert_eq!((contexts(page["states"].as_array().unwrap()), &page["nextPageKey"]), (vec![c3.clone()], &json!(1)));
    let page = q("pageSize=1&nextPageKey=2").await;
    assert_eq!(contexts(page["states"].as_array().unwrap()), vec![c1.clone()]);
    let c2_time = states[1]["time"].as_str().unwrap();
    assert_eq!(contexts(q(&format!("fromTime={c2_time}")).await["states"].as_array().unwrap()), vec![c3.clone()]);
    assert_eq!(contexts(q(&format!("beforeTime={c2_time}")).await["states"].as_array().unwrap()), vec![c1.clone()]);

    // sequence-execution documents and filters.
    let ex = |query: &str| {
        let client = client.clone();
        let path = format!("{CP}/sequence-execution?project=p&{query}");
        async move {
            let (s, b) = client.get(&path).await;
            assert_eq!(s, 200, "{path}: {b}");
            b["sequenceExecutions"].as_array().unwrap().clone()
        }
    };
    let all = ex("").await;
    assert_eq!(all.len(), 3);
    let ctx_of = |docs: &[Value]| -> Vec<String> {
        docs.iter().map(|d| d["scope"]["keptnContext"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(ctx_of(&ex("service=orders").await), vec![c2.clone()]);
    assert_eq!(ctx_of(&ex("name=evaluation").await), vec![c3.clone()]);
    assert_eq!(ctx_of(&ex("status=finished").await), vec![c1.clone()]);
    assert_eq!(ex("stage=prod").await.len(), 0);
    let doc = &ex(&format!("keptnContext={c1}")).await[0];
    assert_eq!(doc["sequence"]["name"], "delivery");
    let tasks: Vec<&str> =
        doc["sequence"]["tasks"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(tasks, vec!["deployment", "test"]);
    assert_eq!(doc["status"]["state"], "finished");
    assert_eq!(doc["status"]["result"], "warning");
    let previous: Vec<(&str, &str)> = doc["status"]["previousTasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["result"].as_str().unwrap()))
        .collect();
    assert_eq!(previous, vec![("deployment", "pass"), ("test", "warning")]);
    assert_eq!(doc["scope"]["labels"]["run"], "carts");
    assert_eq!(doc["scope"]["eventType"], "sh.keptn.event.dev.delivery.triggered");
    let page = client.get(&format!("{CP}/sequence-execution?project=p&pageSize=2")).await.1;
    assert_eq!(
        (page["sequenceExecutions"].as_array().unwrap().len(), &page["nextPageKey"], &page["totalCount"]),
        (2, &json!("2"), &json!(3))
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lanes_sqlite() {
    lanes(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lanes_postgres() {
    lanes(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_abort_sqlite() {
    pause_resume_abort(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_abort_postgres() {
    pause_resume_abort(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_timeout_sqlite() {
    start_timeout(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_timeout_postgres() {
    start_timeout(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_timeout_sqlite() {
    run_timeout(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_timeout_postgres() {
    run_timeout(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggered_after_sqlite() {
    triggered_after(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggered_after_postgres() {
    triggered_after(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluation_sqlite() {
    evaluation(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluation_postgres() {
    evaluation(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_views_sqlite() {
    sequence_views(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_views_postgres() {
    sequence_views(Db::Postgres).await;
}
