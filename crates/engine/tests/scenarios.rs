//! Scenarios as a keptn user sees them: which events come out, in which order, with which data.

mod common;

use common::*;
use keptn_engine::{Config, Control, Effect, ExecState, TimerKind};
use keptn_formats::{TaskResult, TaskStatus};
use serde_json::json;

// ---------------------------------------------------------------------------------------------
// 1. Multi-stage delivery
// ---------------------------------------------------------------------------------------------

const THREE_STAGES: &str = r#"
apiVersion: spec.keptn.sh/0.2.3
kind: Shipyard
metadata: { name: three-stages }
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: deployment
              properties: { deploymentstrategy: direct }
            - name: test
              properties: { teststrategy: functional }
    - name: staging
      sequences:
        - name: delivery
          triggeredOn:
            - event: dev.delivery.finished
          tasks:
            - name: deployment
              properties: { deploymentstrategy: blue_green_service }
            - name: test
              properties: { teststrategy: performance }
    - name: production
      sequences:
        - name: delivery
          triggeredOn:
            - event: staging.delivery.finished
          tasks:
            - name: deployment
              properties: { deploymentstrategy: blue_green_service }
            - name: release
"#;

#[test]
fn three_stage_delivery_promotes_with_merged_data() {
    let mut d = Driver::new(THREE_STAGES);
    let ctx = d.new_context();
    let data = json!({
        "configurationChange": { "values": { "image": "ghcr.io/x/carts:1.2" } },
        "labels": { "buildId": "42" },
    });
    let mut trig = d.trigger_event(PROJECT, "dev", "delivery", "carts", &ctx, data);
    trig.gitcommitid = "3f1c0ffee".into();
    let fx = d.send(trig.clone());
    assert!(fx.contains(&Effect::Open(trig.clone())), "the incoming sequence .triggered is opened");
    assert_eq!(types(&fx), ["deployment.triggered"]);
    let dep = d.last("deployment.triggered");
    assert_eq!(dep.source, "shipyard-controller");
    assert_eq!(dep.shkeptncontext, ctx);
    assert_eq!(dep.triggeredid, "");
    assert_eq!(dep.gitcommitid, "3f1c0ffee", "task events carry the sequence's commit");
    assert_eq!(dep.data["project"], PROJECT);
    assert_eq!(dep.data["stage"], "dev");
    assert_eq!(dep.data["service"], "carts");
    assert_eq!(dep.data["labels"], json!({ "buildId": "42" }));
    assert_eq!(dep.data["configurationChange"]["values"]["image"], "ghcr.io/x/carts:1.2");
    assert_eq!(dep.data["deployment"], json!({ "deploymentstrategy": "direct" }));
    assert!(dep.data.get("result").is_none(), "no previous task, no result: {}", dep.data);
    assert!(dep.data.get("test").is_none(), "properties of later tasks are not visible");
    assert!(d.open.contains(&dep.id) && d.open.contains(&trig.id));

    d.advance(1000);
    assert!(types(&d.start(&dep, "helm-service")).is_empty());
    let fx = d.answer(
        &dep,
        "helm-service",
        "finished",
        "pass",
        "succeeded",
        json!({ "message": "deployed", "deployment": {
            "deploymentURIsLocal": ["http://carts.sockshop-dev:80"], "deploymentNames": ["carts"] } }),
    );
    assert_eq!(types(&fx), ["test.triggered"]);
    assert!(fx.contains(&Effect::Close { triggered_id: dep.id.clone() }));
    let test = d.last("test.triggered");
    assert_eq!(
        test.data["deployment"],
        json!({ "deploymentURIsLocal": ["http://carts.sockshop-dev:80"], "deploymentNames": ["carts"] })
    );
    assert_eq!(test.data["test"], json!({ "teststrategy": "functional" }));
    assert_eq!(test.data["result"], "pass");
    assert_eq!(test.data["status"], "succeeded");
    assert_eq!(test.data["message"], "", "the message of the previous task is cleared");
    assert_eq!(test.data["configurationChange"]["values"]["image"], "ghcr.io/x/carts:1.2");
    assert_eq!(test.data["labels"], json!({ "buildId": "42" }));

    d.advance(1000);
    d.start(&test, "jmeter-service");
    let fx = d.answer(
        &test,
        "jmeter-service",
        "finished",
        "pass",
        "succeeded",
        json!({ "test": { "start": "2023-11-14T22:13:21Z", "end": "2023-11-14T22:15:21Z" } }),
    );
    assert_eq!(types(&fx), ["dev.delivery.finished", "staging.delivery.triggered", "deployment.triggered"]);
    let dev_fin = d.last("dev.delivery.finished");
    assert_eq!(dev_fin.triggeredid, trig.id);
    assert_eq!(dev_fin.shkeptncontext, ctx);
    assert_eq!(dev_fin.gitcommitid, "", "sequence .finished carries no gitcommitid");
    assert_eq!(dev_fin.data["result"], "pass");
    assert_eq!(dev_fin.data["status"], "succeeded");
    assert_eq!(dev_fin.data["stage"], "dev");
    assert_eq!(dev_fin.data["service"], "carts");
    assert_eq!(dev_fin.data["labels"], json!({ "buildId": "42" }));
    assert!(!d.open.contains(&trig.id), "the sequence .triggered is closed");

    let staging = d.last("staging.delivery.triggered");
    assert_eq!(staging.shkeptncontext, ctx);
    assert_eq!(staging.triggeredid, "");
    assert_eq!(staging.data["stage"], "staging", "stage overwritten");
    assert_eq!(staging.data["project"], PROJECT);
    assert_eq!(staging.data["service"], "carts");
    assert_eq!(staging.data["configurationChange"]["values"]["image"], "ghcr.io/x/carts:1.2");
    assert_eq!(staging.data["labels"], json!({ "buildId": "42" }));
    assert_eq!(staging.data["deployment"]["deploymentURIsLocal"], json!(["http://carts.sockshop-dev:80"]));
    assert_eq!(staging.data["test"]["start"], "2023-11-14T22:13:21Z");
    assert_eq!(staging.data["result"], "pass");
    assert!(d.open.contains(&staging.id), "a chained sequence .triggered is emitted open");

    let dep2 = d.last("deployment.triggered");
    assert_eq!(dep2.data["stage"], "staging");
    assert_eq!(dep2.data["configurationChange"]["values"]["image"], "ghcr.io/x/carts:1.2");
    assert_eq!(
        dep2.data["deployment"]["deploymentstrategy"], "blue_green_service",
        "this stage's task properties: {}",
        dep2.data
    );
    assert_eq!(dep2.data["deployment"]["deploymentURIsLocal"], json!(["http://carts.sockshop-dev:80"]));

    d.advance(1000);
    d.start(&dep2, "helm-service");
    d.answer(
        &dep2,
        "helm-service",
        "finished",
        "pass",
        "succeeded",
        json!({ "deployment": { "deploymentURIsLocal": ["http://carts.sockshop-staging:80"] } }),
    );
    let test2 = d.last("test.triggered");
    assert_eq!(test2.data["stage"], "staging");
    assert_eq!(test2.data["test"]["teststrategy"], "performance");
    assert_eq!(
        test2.data["deployment"]["deploymentURIsLocal"],
        json!(["http://carts.sockshop-staging:80", "http://carts.sockshop-dev:80"]),
        "arrays concatenate, newer items first"
    );
    let fx = d.run_task(&test2, "pass");
    assert_eq!(types(&fx), ["staging.delivery.finished", "production.delivery.triggered", "deployment.triggered"]);
    assert_eq!(d.last("staging.delivery.finished").triggeredid, staging.id);

    let prod = d.last("production.delivery.triggered");
    let dep3 = d.last("deployment.triggered");
    assert_eq!(dep3.data["stage"], "production");
    let fx = d.run_task(&dep3, "pass");
    assert_eq!(types(&fx), ["release.triggered"]);
    let release = d.last("release.triggered");
    assert_eq!(release.data["release"], json!({}), "a task without properties gets an empty object");
    let fx = d.run_task(&release, "pass");
    assert_eq!(types(&fx), ["production.delivery.finished"]);
    let fin = d.last("production.delivery.finished");
    assert_eq!(fin.triggeredid, prod.id);
    assert_eq!(fin.data["result"], "pass");
    assert_eq!(fin.data["status"], "succeeded");

    assert_eq!(
        d.types_in(&ctx),
        [
            "deployment.triggered",
            "test.triggered",
            "dev.delivery.finished",
            "staging.delivery.triggered",
            "deployment.triggered",
            "test.triggered",
            "staging.delivery.finished",
            "production.delivery.triggered",
            "deployment.triggered",
            "release.triggered",
            "production.delivery.finished",
        ]
    );
    assert!(d.open.is_empty(), "open: {:?}", d.open);
    assert_eq!(d.engine.executions().count(), 0, "finished executions are dropped");
    let saved: Vec<_> = d.saved.values().map(|e| (e.stage.clone(), e.state)).collect();
    assert_eq!(saved.len(), 3);
    assert!(saved.iter().all(|(_, s)| *s == ExecState::Finished), "{saved:?}");
}

// ---------------------------------------------------------------------------------------------
// 2./3. Failing tasks, selectors, warning
// ---------------------------------------------------------------------------------------------

const SELECTORS: &str = r#"
apiVersion: spec.keptn.sh/0.2.3
kind: Shipyard
metadata: { name: selectors }
spec:
  stages:
    - name: production
      sequences:
        - name: delivery
          tasks:
            - name: deployment
            - name: test
            - name: release
        - name: rollback
          triggeredOn:
            - event: production.delivery.finished
              selector: { match: { result: fail } }
          tasks:
            - name: rollback
        - name: rollback-spec
          triggeredOn:
            - event: production.delivery.finished
              selector: { match: { result: failed } }
          tasks:
            - name: cleanup
        - name: promote
          triggeredOn:
            - event: production.delivery.finished
          tasks:
            - name: notify
        - name: report
          triggeredOn:
            - event: production.delivery.finished
              selector: { match: { deployment.result: pass } }
          tasks:
            - name: report
        - name: retest
          triggeredOn:
            - event: production.delivery.finished
              selector: { match: { test.result: fail } }
          tasks:
            - name: retest
        - name: on-warning
          triggeredOn:
            - event: production.delivery.finished
              selector: { match: { result: warning } }
          tasks:
            - name: warn
"#;

#[test]
fn failing_first_task_stops_the_sequence_and_starts_fail_selectors() {
    let mut d = Driver::new(SELECTORS);
    let trig = d.trigger("production", "delivery", "carts");
    let dep = d.last("deployment.triggered");
    let fx = d.finish(&dep, "helm-service", "fail", json!({ "message": "helm upgrade failed" }));
    assert_eq!(
        types(&fx)[..3],
        ["production.delivery.finished", "production.rollback.triggered", "production.rollback-spec.triggered"]
    );
    // Both rollbacks share context and lane; they start in parallel.
    assert_eq!(sorted(types(&fx)[3..].to_vec()), ["cleanup.triggered", "rollback.triggered"]);
    let fin = d.last("production.delivery.finished");
    assert_eq!(fin.triggeredid, trig.id);
    assert_eq!(fin.data["result"], "fail");
    assert_eq!(fin.data["status"], "succeeded");
    assert_eq!(fin.data["message"], "helm upgrade failed", "message of the task that ended the sequence");
    assert_eq!(d.count("test.triggered"), 0, "remaining tasks are not triggered");
    assert_eq!(d.count("release.triggered"), 0);
    assert_eq!(d.count("production.promote.triggered"), 0, "no selector: not on fail");
    assert_eq!(d.count("production.report.triggered"), 0);
    assert_eq!(d.count("production.retest.triggered"), 0, "test never ran");

    let rb = d.last("production.rollback.triggered");
    assert_eq!(rb.data["result"], "fail");
    assert_eq!(rb.data["stage"], "production");
    assert_eq!(rb.data["labels"], trig.data["labels"]);
    let rollback = d.last("rollback.triggered");
    assert_eq!(rollback.data["configurationChange"], trig.data["configurationChange"]);
    let fx = d.run_task(&rollback, "pass");
    assert_eq!(types(&fx), ["production.rollback.finished"]);
    assert_eq!(d.last("production.rollback.finished").triggeredid, rb.id);
    let fx = d.run_task(&d.last("cleanup.triggered"), "pass");
    assert_eq!(types(&fx), ["production.rollback-spec.finished"]);
    assert!(d.open.is_empty());
}

#[test]
fn task_result_selector_matches_a_task_that_is_not_the_last() {
    let mut d = Driver::new(SELECTORS);
    d.trigger("production", "delivery", "carts");
    d.run_task(&d.last("deployment.triggered"), "pass");
    let fx = d.run_task(&d.last("test.triggered"), "fail");
    let t = types(&fx);
    assert_eq!(t[0], "production.delivery.finished");
    let seqs: Vec<String> = t.iter().filter(|t| t.starts_with("production.")).cloned().collect();
    assert_eq!(
        seqs,
        [
            "production.delivery.finished",
            "production.rollback.triggered",
            "production.rollback-spec.triggered",
            "production.report.triggered",
            "production.retest.triggered",
        ],
        "chained sequences in shipyard order"
    );
    assert_eq!(d.count("release.triggered"), 0);
    assert_eq!(d.count("production.promote.triggered"), 0);
    assert_eq!(d.count("production.on-warning.triggered"), 0);
    assert_eq!(
        sorted(t[5..].to_vec()),
        ["cleanup.triggered", "report.triggered", "retest.triggered", "rollback.triggered"]
    );
}

#[test]
fn warning_fires_triggers_without_selector_and_warning_selectors() {
    let mut d = Driver::new(SELECTORS);
    d.trigger("production", "delivery", "carts");
    d.run_task(&d.last("deployment.triggered"), "pass");
    d.run_task(&d.last("test.triggered"), "warning");
    let release = d.last("release.triggered");
    assert_eq!(release.data["result"], "warning", "the previous task's result is passed on");
    let fx = d.run_task(&release, "warning");
    let seqs: Vec<String> = types(&fx).into_iter().filter(|t| t.starts_with("production.")).collect();
    assert_eq!(
        seqs,
        [
            "production.delivery.finished",
            "production.promote.triggered",
            "production.report.triggered",
            "production.on-warning.triggered",
        ]
    );
    assert_eq!(d.last("production.delivery.finished").data["result"], "warning");
    assert_eq!(d.count("production.rollback.triggered"), 0);
}

#[test]
fn sequence_result_is_the_last_tasks_result() {
    // keptn §4.9: an evaluation warning followed by a passing release yields pass.
    let mut d = Driver::new(SELECTORS);
    d.trigger("production", "delivery", "carts");
    d.run_task(&d.last("deployment.triggered"), "pass");
    d.run_task(&d.last("test.triggered"), "warning");
    d.run_task(&d.last("release.triggered"), "pass");
    let fin = d.last("production.delivery.finished");
    assert_eq!(fin.data["result"], "pass");
    assert_eq!(d.count("production.on-warning.triggered"), 0);
    assert_eq!(d.count("production.promote.triggered"), 1);
}

#[test]
fn errored_fail_stops_and_reports_errored() {
    let mut d = Driver::new(SELECTORS);
    d.trigger("production", "delivery", "carts");
    let dep = d.last("deployment.triggered");
    d.start(&dep, "helm-service");
    let fx = d.answer(&dep, "helm-service", "finished", "fail", "errored", json!({ "message": "boom" }));
    assert_eq!(types(&fx)[0], "production.delivery.finished");
    let fin = d.last("production.delivery.finished");
    assert_eq!((fin.data["result"].as_str(), fin.data["status"].as_str()), (Some("fail"), Some("errored")));
    assert_eq!(d.count("test.triggered"), 0);
    assert_eq!(d.count("production.rollback.triggered"), 1);
}

// ---------------------------------------------------------------------------------------------
// 4. Data propagation
// ---------------------------------------------------------------------------------------------

const DATA: &str = r#"
apiVersion: spec.keptn.sh/0.2.3
kind: Shipyard
metadata: { name: data }
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: deployment
              properties: { deploymentstrategy: direct, replicas: 2, canary: { steps: [10, 50] } }
            - name: test
              properties: { teststrategy: functional }
            - name: release
"#;

#[test]
fn task_properties_messages_scalars_and_arrays() {
    let mut d = Driver::new(DATA);
    let ctx = d.new_context();
    let input = json!({
        "message": "please deploy",
        "counter": 1,
        "flag": true,
        "list": ["a"],
        "deployment": { "deploymentURIsPublic": ["http://public"] },
        "problem": { "problemTitle": "cpu" },
    });
    d.trigger_with("dev", "delivery", "carts", &ctx, input);
    let dep = d.last("deployment.triggered");
    assert_eq!(
        dep.data["deployment"],
        json!({
            "deploymentURIsPublic": ["http://public"],
            "deploymentstrategy": "direct", "replicas": 2, "canary": { "steps": [10, 50] },
        }),
        "properties merge into data.<task>"
    );
    assert_eq!(dep.data["message"], "", "message cleared");
    assert_eq!(dep.data["problem"]["problemTitle"], "cpu");

    d.start(&dep, "helm-service");
    d.finish(
        &dep,
        "helm-service",
        "pass",
        json!({ "message": "deployed", "counter": 2, "flag": false, "list": ["b"], "extra": "x",
                "deployment": { "deploymentNames": ["carts"] } }),
    );
    let test = d.last("test.triggered");
    assert_eq!(test.data["counter"], 2, "later scalar overrides earlier (DESIGN decision)");
    assert_eq!(test.data["flag"], false, "later bool overrides earlier (DESIGN decision)");
    assert_eq!(test.data["list"], json!(["b", "a"]), "arrays concatenate, newer first");
    assert_eq!(test.data["extra"], "x");
    assert_eq!(test.data["message"], "");
    assert_eq!(
        test.data["deployment"],
        json!({ "deploymentURIsPublic": ["http://public"], "deploymentNames": ["carts"] }),
        "a task's properties are only visible to that task"
    );
    assert_eq!(test.data["test"], json!({ "teststrategy": "functional" }));

    // Two integrations answer the test; their data merges in arrival order.
    d.start(&test, "jmeter");
    d.start(&test, "locust");
    d.finish(&test, "locust", "pass", json!({ "test": { "locust": 1 }, "counter": 3, "message": "locust ok" }));
    d.finish(&test, "jmeter", "pass", json!({ "test": { "jmeter": 1 }, "counter": 4, "message": "jmeter ok" }));
    let release = d.last("release.triggered");
    assert_eq!(release.data["test"]["locust"], 1);
    assert_eq!(release.data["test"]["jmeter"], 1);
    assert!(release.data["test"].get("teststrategy").is_none(), "test's properties are not carried on");
    assert_eq!(release.data["counter"], 4, "last arrival wins");
    assert_eq!(release.data["release"], json!({}));
    let fx = d.finish(&release, "helm-service", "pass", json!({ "message": "released" }));
    assert_eq!(types(&fx), ["dev.delivery.finished"]);
    assert_eq!(d.last("dev.delivery.finished").data["message"], "released");
}

// ---------------------------------------------------------------------------------------------
// 5. Several integrations on one task
// ---------------------------------------------------------------------------------------------

const TWO_TASKS: &str = r#"
apiVersion: spec.keptn.sh/0.2.3
kind: Shipyard
metadata: { name: two-tasks }
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: deployment
            - name: test
    - name: staging
      sequences:
        - name: delivery
          triggeredOn:
            - event: dev.delivery.finished
          tasks:
            - name: deployment
            - name: test
"#;

#[test]
fn task_completes_when_every_answering_integration_finished() {
    let mut d = Driver::new(TWO_TASKS);
    d.trigger("dev", "delivery", "carts");
    let dep = d.last("deployment.triggered");
    assert!(types(&d.start(&dep, "a")).is_empty());
    assert!(types(&d.start(&dep, "b")).is_empty());
    let fx = d.finish(&dep, "a", "pass", json!({}));
    assert!(types(&fx).is_empty(), "b has not finished yet");
    assert!(d.open.contains(&dep.id));
    let fx = d.finish(&dep, "b", "warning", json!({}));
    assert_eq!(types(&fx), ["test.triggered"]);
    assert_eq!(d.last("test.triggered").data["result"], "warning", "worst of pass and warning");
    assert!(!d.open.contains(&dep.id));

    // An answer after completion is ignored.
    let late = d.answer_event(&dep, "c", "finished", "fail", "succeeded", json!({}));
    assert!(d.send(late).is_empty());
}

#[test]
fn worst_of_results_and_fail_wins() {
    let mut d = Driver::new(TWO_TASKS);
    d.trigger("dev", "delivery", "carts");
    let dep = d.last("deployment.triggered");
    d.start(&dep, "a");
    d.start(&dep, "b");
    d.start(&dep, "c");
    d.finish(&dep, "a", "warning", json!({}));
    d.finish(&dep, "b", "fail", json!({}));
    let fx = d.finish(&dep, "c", "pass", json!({}));
    assert_eq!(types(&fx), ["dev.delivery.finished"]);
    assert_eq!(d.last("dev.delivery.finished").data["result"], "fail");
    assert_eq!(d.count("test.triggered"), 0);
}

#[test]
fn lone_finished_completes_the_task() {
    let mut d = Driver::new(TWO_TASKS);
    d.trigger("dev", "delivery", "carts");
    let dep = d.last("deployment.triggered");
    let fx = d.finish(&dep, "helm-service", "pass", json!({}));
    assert_eq!(types(&fx), ["test.triggered"]);
}

#[test]
fn finished_before_started_of_the_same_integration() {
    let mut d = Driver::new(TWO_TASKS);
    d.trigger("dev", "delivery", "carts");
    let dep = d.last("deployment.triggered");
    let started = d.answer_event(&dep, "helm", "started", "", "", json!({}));
    d.start(&dep, "other");
    let fx = d.finish(&dep, "helm", "pass", json!({}));
    assert!(types(&fx).is_empty(), "other is still running");
    assert!(types(&d.send(started)).is_empty(), "a late .started of a finished integration changes nothing");
    let fx = d.finish(&dep, "other", "pass", json!({}));
    assert_eq!(types(&fx), ["test.triggered"]);
}

#[test]
fn duplicate_event_ids_are_ignored() {
    let mut d = Driver::new(TWO_TASKS);
    d.trigger("dev", "delivery", "carts");
    let dep = d.last("deployment.triggered");
    d.start(&dep, "a");
    d.start(&dep, "b");
    let fin_a = d.answer_event(&dep, "a", "finished", "pass", "succeeded", json!({ "list": ["x"] }));
    assert!(types(&d.send(fin_a.clone())).is_empty());
    assert!(d.send(fin_a.clone()).is_empty(), "a duplicate has no effect at all");
    let fx = d.finish(&dep, "b", "pass", json!({}));
    assert_eq!(types(&fx), ["test.triggered"]);
    assert_eq!(d.last("test.triggered").data["list"], json!(["x"]), "the duplicate was not merged twice");
    // Redelivered once more after completion: still nothing.
    assert!(d.send(fin_a).is_empty());
}

#[test]
fn duplicate_started_from_one_source_does_not_stall() {
    let mut d = Driver::new(TWO_TASKS);
    d.trigger("dev", "delivery", "carts");
    let dep = d.last("deployment.triggered");
    d.start(&dep, "helm-service");
    d.start(&dep, "helm-service"); // a second .started with a new id (keptn stalled here)
    let fx = d.finish(&dep, "helm-service", "pass", json!({}));
    assert_eq!(types(&fx), ["test.triggered"]);
}

#[test]
fn answers_with_unknown_triggeredid_or_wrong_context_are_ignored() {
    let mut d = Driver::new(TWO_TASKS);
    let trig = d.trigger("dev", "delivery", "carts");
    let dep = d.last("deployment.triggered");
    let mut wrong_ctx = d.answer_event(&dep, "helm", "finished", "pass", "succeeded", json!({}));
    wrong_ctx.shkeptncontext = "someone-else".into();
    assert!(d.send(wrong_ctx).is_empty());
    let mut unknown = d.answer_event(&dep, "helm", "finished", "pass", "succeeded", json!({}));
    unknown.triggeredid = "nope".into();
    assert!(d.send(unknown).is_empty());
    // An answer carrying the *sequence* .triggered id is not a task answer either.
    let mut seq_answer = d.answer_event(&dep, "helm", "finished", "pass", "succeeded", json!({}));
    seq_answer.triggeredid = trig.id.clone();
    assert!(d.send(seq_answer).is_empty());
    // status.changed parses as a 6-part type and is ignored, as in keptn.
    let sc =
        d.event("sh.keptn.event.deployment.status.changed".into(), &trig.shkeptncontext, &dep.id, "helm", json!({}));
    assert!(d.send(sc).is_empty());
    assert_eq!(d.state(&trig.shkeptncontext, "dev"), ExecState::Started);
    assert_eq!(types(&d.run_task(&dep, "pass")), ["test.triggered"]);
}

#[test]
fn redelivered_sequence_triggered_is_ignored_while_running() {
    let mut d = Driver::new(TWO_TASKS);
    let trig = d.trigger("dev", "delivery", "carts");
    assert!(d.send(trig).is_empty());
    assert_eq!(d.count("deployment.triggered"), 1);
}

// ---------------------------------------------------------------------------------------------
// 6. Lanes
// ---------------------------------------------------------------------------------------------

#[test]
fn one_sequence_per_lane_fifo_and_other_services_in_parallel() {
    let mut d = Driver::new(TWO_TASKS);
    let t1 = d.trigger("dev", "delivery", "carts");
    let c1 = t1.shkeptncontext.clone();
    let dep1 = d.last_in(&c1, "deployment.triggered");

    d.advance(1);
    let t2 = d.trigger("dev", "delivery", "carts");
    let c2 = t2.shkeptncontext.clone();
    assert!(d.types_in(&c2).is_empty(), "second context waits for the lane");
    assert!(d.open.contains(&t2.id), "but its .triggered is open");
    assert_eq!(d.state(&c2, "dev"), ExecState::Triggered);

    d.advance(1);
    let t3 = d.trigger("dev", "delivery", "orders");
    let c3 = t3.shkeptncontext.clone();
    assert_eq!(d.types_in(&c3), ["deployment.triggered"], "another service runs immediately");

    d.advance(1);
    let t4 = d.trigger("dev", "delivery", "carts");
    let c4 = t4.shkeptncontext.clone();
    assert!(d.types_in(&c4).is_empty());
    d.check_lanes();

    d.advance(1);
    let fx = d.run_task(&dep1, "pass");
    assert_eq!(types(&fx), ["test.triggered"], "the lane stays with the first context between tasks");
    d.check_lanes();
    let fx = d.run_task(&d.last_in(&c1, "test.triggered"), "pass");
    let evs = emits(&fx);
    let got: Vec<(String, String)> = evs.iter().map(|e| (e.shkeptncontext.clone(), short(&e.ty).to_string())).collect();
    assert_eq!(
        got,
        [
            (c1.clone(), "dev.delivery.finished".to_string()),
            (c1.clone(), "staging.delivery.triggered".to_string()),
            // pump order: lanes are pumped in (project, stage, service) order
            (c2.clone(), "deployment.triggered".to_string()),
            (c1.clone(), "deployment.triggered".to_string()),
        ]
    );
    assert!(d.types_in(&c4).is_empty(), "FIFO: the third carts context still waits");
    d.check_lanes();

    d.run_task(&d.last_in(&c2, "deployment.triggered"), "pass");
    let fx = d.run_task(&d.last_in(&c2, "test.triggered"), "pass");
    let c4_started = emits(&fx).iter().any(|e| e.shkeptncontext == c4 && short(&e.ty) == "deployment.triggered");
    assert!(c4_started, "c4 starts once c2 finished: {:?}", types(&fx));
    d.check_lanes();
}

// ---------------------------------------------------------------------------------------------
// 7. Approval yields the lane
// ---------------------------------------------------------------------------------------------

const APPROVAL: &str = r#"
apiVersion: spec.keptn.sh/0.2.3
kind: Shipyard
metadata: { name: approval }
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: deployment
            - name: approval
              properties: { pass: manual, warning: manual }
            - name: release
        - name: gated
          tasks:
            - name: approval
            - name: release
        - name: quick
          tasks:
            - name: deployment
"#;

#[test]
fn waiting_for_approval_does_not_block_the_lane() {
    let mut d = Driver::new(APPROVAL);
    let c1 = d.trigger("dev", "gated", "carts").shkeptncontext;
    let appr = d.last_in(&c1, "approval.triggered");
    assert_eq!(appr.data["approval"], json!({}), "no properties: the approval service treats it as manual");
    assert_eq!(d.state(&c1, "dev"), ExecState::WaitingForApproval);

    d.advance(1);
    let c2 = d.trigger("dev", "quick", "carts").shkeptncontext;
    assert_eq!(d.types_in(&c2), ["deployment.triggered"], "the lane is free while c1 waits for approval");
    assert_eq!(d.state(&c2, "dev"), ExecState::Started);

    // c1 is approved while c2 holds the lane: its next task is held.
    d.advance(1);
    d.start(&appr, "approval-service");
    let fx = d.finish(&appr, "bridge", "pass", json!({}));
    assert!(types(&fx).is_empty(), "release is held while c2 holds the lane: {:?}", types(&fx));
    let e1 = d.exec(&c1, "dev");
    assert_eq!((e1.state, e1.held), (ExecState::Triggered, Some(1)));
    assert!(!d.open.contains(&appr.id), "the approval .triggered is closed");
    d.check_lanes();

    d.advance(1);
    let fx = d.run_task(&d.last_in(&c2, "deployment.triggered"), "pass");
    let got: Vec<(String, String)> =
        emits(&fx).iter().map(|e| (e.shkeptncontext.clone(), short(&e.ty).to_string())).collect();
    assert_eq!(
        got,
        [(c2.clone(), "dev.quick.finished".to_string()), (c1.clone(), "release.triggered".to_string())],
        "the held task goes out when the lane frees"
    );
    let release = d.last_in(&c1, "release.triggered");
    assert_eq!(release.data["result"], "pass", "result of the approval");
    assert_eq!(types(&d.run_task(&release, "pass")), ["dev.gated.finished"]);
    assert!(d.open.is_empty());
}

#[test]
fn entering_approval_frees_the_lane_for_a_waiting_sequence() {
    let mut d = Driver::new(APPROVAL);
    let c1 = d.trigger("dev", "delivery", "carts").shkeptncontext;
    d.advance(1);
    let c2 = d.trigger("dev", "delivery", "carts").shkeptncontext;
    assert!(d.types_in(&c2).is_empty(), "c2 waits while c1 deploys");

    // c1 moves on to its approval: c2 may run meanwhile.
    d.advance(1);
    let fx = d.run_task(&d.last_in(&c1, "deployment.triggered"), "pass");
    let got: Vec<(String, String)> =
        emits(&fx).iter().map(|e| (e.shkeptncontext.clone(), short(&e.ty).to_string())).collect();
    assert_eq!(got, [(c1.clone(), "approval.triggered".to_string()), (c2.clone(), "deployment.triggered".to_string())]);
    assert_eq!(d.state(&c1, "dev"), ExecState::WaitingForApproval);
    assert_eq!(d.state(&c2, "dev"), ExecState::Started);
    d.check_lanes();

    // c1 approved while c2 deploys: c1's release waits.
    d.advance(1);
    let fx = d.run_task(&d.last_in(&c1, "approval.triggered"), "pass");
    assert!(types(&fx).is_empty());
    // c2 enters its approval: c1's release goes out.
    d.advance(1);
    let fx = d.run_task(&d.last_in(&c2, "deployment.triggered"), "pass");
    let got: Vec<(String, String)> =
        emits(&fx).iter().map(|e| (e.shkeptncontext.clone(), short(&e.ty).to_string())).collect();
    assert_eq!(got, [(c2.clone(), "approval.triggered".to_string()), (c1.clone(), "release.triggered".to_string())]);
    d.check_lanes();
    // c2 approved while c1 releases: c2's release waits for c1 to finish.
    d.advance(1);
    assert!(types(&d.run_task(&d.last_in(&c2, "approval.triggered"), "pass")).is_empty());
    d.advance(1);
    let fx = d.run_task(&d.last_in(&c1, "release.triggered"), "pass");
    let got: Vec<(String, String)> =
        emits(&fx).iter().map(|e| (e.shkeptncontext.clone(), short(&e.ty).to_string())).collect();
    assert_eq!(got, [(c1.clone(), "dev.delivery.finished".to_string()), (c2.clone(), "release.triggered".to_string())]);
    assert_eq!(types(&d.run_task(&d.last_in(&c2, "release.triggered"), "pass")), ["dev.delivery.finished"]);
    assert!(d.open.is_empty());
}

#[test]
fn manual_approval_from_the_bridge_completes_the_task() {
    // keptn: approval-service sends approval.started; the decision (approval.finished) comes from
    // the Bridge or the CLI, with another source.
    let mut d = Driver::new(APPROVAL);
    let c1 = d.trigger("dev", "delivery", "carts").shkeptncontext;
    d.run_task(&d.last_in(&c1, "deployment.triggered"), "warning");
    let appr = d.last_in(&c1, "approval.triggered");
    assert_eq!(appr.data["approval"], json!({ "pass": "manual", "warning": "manual" }));
    assert_eq!(appr.data["result"], "warning");
    d.answer(
        &appr,
        "approval-service",
        "started",
        "",
        "",
        json!({ "message": "Approval strategy for result 'warning': manual" }),
    );
    let fx = d.answer(
        &appr,
        "https://github.com/keptn/keptn/bridge#approval.finished",
        "finished",
        "pass",
        "succeeded",
        json!({}),
    );
    assert_eq!(types(&fx), ["release.triggered"]);
    assert_eq!(d.last_in(&c1, "release.triggered").data["result"], "pass");
}

#[test]
fn declined_approval_fails_the_sequence() {
    let mut d = Driver::new(APPROVAL);
    let c1 = d.trigger("dev", "gated", "carts").shkeptncontext;
    let fx = d.run_task(&d.last_in(&c1, "approval.triggered"), "fail");
    assert_eq!(types(&fx), ["dev.gated.finished"]);
    assert_eq!(d.last("dev.gated.finished").data["result"], "fail");
    assert_eq!(d.count("release.triggered"), 0);
}

// ---------------------------------------------------------------------------------------------
// 8. Pause, resume, abort
// ---------------------------------------------------------------------------------------------

#[test]
fn pause_holds_the_next_task_and_resume_sends_it() {
    let mut d = Driver::new(THREE_STAGES);
    let c1 = d.trigger("dev", "delivery", "carts").shkeptncontext;
    let dep = d.last_in(&c1, "deployment.triggered");
    let fx = d.control(&c1, None, Control::Pause);
    assert!(types(&fx).is_empty());
    assert_eq!(d.markers, [keptn_engine::PauseMarker { context: c1.clone(), stage: None }]);
    assert!(d.exec(&c1, "dev").paused);

    // The running task is not interrupted; its .finished is processed, the next task is held.
    d.advance(1000);
    let fx = d.run_task(&dep, "pass");
    assert!(types(&fx).is_empty(), "paused: no new task .triggered, got {:?}", types(&fx));
    let e = d.exec(&c1, "dev");
    assert_eq!((e.state, e.held, e.paused), (ExecState::Triggered, Some(1), true));
    assert!(!d.open.contains(&dep.id));

    d.advance(1000);
    let fx = d.control(&c1, None, Control::Resume);
    assert_eq!(types(&fx), ["test.triggered"]);
    assert!(d.markers.is_empty());
    let test = d.last_in(&c1, "test.triggered");
    assert_eq!(test.data["result"], "pass");
    assert_eq!(test.data["test"]["teststrategy"], "functional");
    assert!(d.timers().iter().any(|(_, timer)| timer.triggered_id == test.id), "the resumed task's timers are armed");
    let fx = d.run_task(&test, "pass");
    assert_eq!(types(&fx), ["dev.delivery.finished", "staging.delivery.triggered", "deployment.triggered"]);
}

#[test]
fn pause_of_one_stage_holds_sequences_started_later_in_that_stage() {
    let mut d = Driver::new(THREE_STAGES);
    let c1 = d.trigger("dev", "delivery", "carts").shkeptncontext;
    d.control(&c1, Some("staging"), Control::Pause);
    assert_eq!(
        types(&d.run_task(&d.last_in(&c1, "deployment.triggered"), "pass")),
        ["test.triggered"],
        "dev is not paused"
    );
    let fx = d.run_task(&d.last_in(&c1, "test.triggered"), "pass");
    assert_eq!(types(&fx), ["dev.delivery.finished", "staging.delivery.triggered"]);
    let e = d.exec(&c1, "staging");
    assert_eq!((e.state, e.paused), (ExecState::Triggered, true));

    // A pause does not block the lane for other contexts.
    let c2 = d.new_context();
    d.trigger_with("staging", "delivery", "carts", &c2, json!({}));
    assert_eq!(d.types_in(&c2), ["deployment.triggered"]);
    d.run_task(&d.last_in(&c2, "deployment.triggered"), "pass");
    d.run_task(&d.last_in(&c2, "test.triggered"), "pass");

    let fx = d.control(&c1, Some("staging"), Control::Resume);
    assert_eq!(types(&fx), ["deployment.triggered"]);
    assert_eq!(d.last_in(&c1, "deployment.triggered").data["stage"], "staging");
}

#[test]
fn abort_finishes_unfinished_executions_without_chaining() {
    let mut d = Driver::new(THREE_STAGES);
    let c1 = d.trigger("dev", "delivery", "carts").shkeptncontext;
    d.run_task(&d.last_in(&c1, "deployment.triggered"), "pass");
    d.run_task(&d.last_in(&c1, "test.triggered"), "pass");
    let staging = d.last_in(&c1, "staging.delivery.triggered");
    let dep = d.last_in(&c1, "deployment.triggered");
    assert_eq!(dep.data["stage"], "staging");

    // c2 waits for the staging lane.
    d.advance(1);
    let c2 = d.new_context();
    let t2 = d.trigger_with("staging", "delivery", "carts", &c2, json!({}));
    assert!(d.types_in(&c2).is_empty());

    d.advance(1);
    let fx = d.control(&c1, None, Control::Abort);
    let got: Vec<(String, String)> =
        emits(&fx).iter().map(|e| (e.shkeptncontext.clone(), short(&e.ty).to_string())).collect();
    assert_eq!(
        got,
        [(c1.clone(), "staging.delivery.finished".to_string()), (c2.clone(), "deployment.triggered".to_string())],
        "only the unfinished execution is aborted (no second dev.delivery.finished), no chaining, the lane frees"
    );
    let fin = d.last_in(&c1, "staging.delivery.finished");
    assert_eq!(fin.triggeredid, staging.id);
    assert_eq!(fin.data["status"], "aborted");
    assert_eq!(fin.data["result"], "pass");
    assert!(fx.contains(&Effect::Close { triggered_id: dep.id.clone() }));
    assert!(fx.contains(&Effect::Close { triggered_id: staging.id.clone() }));
    assert_eq!(d.count("production.delivery.triggered"), 0);
    assert_eq!(d.count("dev.delivery.finished"), 1);
    let saved = &d.saved[&staging.id];
    assert_eq!((saved.state, saved.status), (ExecState::Finished, Some(TaskStatus::Aborted)));

    // Late answers to the aborted task are ignored.
    assert!(d.run_task(&dep, "pass").is_empty());
    // The open set only holds c2's events.
    let dep2 = d.last_in(&c2, "deployment.triggered");
    assert_eq!(d.open.iter().cloned().collect::<Vec<_>>(), sorted(vec![t2.id.clone(), dep2.id.clone()]));

    // Aborting a sequence that waits for its lane.
    let c3 = d.new_context();
    d.trigger_with("staging", "delivery", "carts", &c3, json!({}));
    let fx = d.control(&c3, None, Control::Abort);
    assert_eq!(types(&fx), ["staging.delivery.finished"]);
    assert_eq!(d.last_in(&c3, "staging.delivery.finished").data["status"], "aborted");
    assert!(d.types_in(&c3).iter().all(|t| t.starts_with("staging.delivery")));
    // Aborting again does nothing more.
    assert!(types(&d.control(&c3, None, Control::Abort)).is_empty());
}

#[test]
fn abort_of_a_paused_context_clears_its_markers() {
    let mut d = Driver::new(THREE_STAGES);
    let c1 = d.trigger("dev", "delivery", "carts").shkeptncontext;
    d.control(&c1, None, Control::Pause);
    let fx = d.control(&c1, None, Control::Abort);
    assert_eq!(types(&fx), ["dev.delivery.finished"]);
    assert!(d.markers.is_empty());
    assert!(d.open.is_empty());
    assert_eq!(d.engine.executions().count(), 0);
}

// ---------------------------------------------------------------------------------------------
// 9./10. Timeouts and triggeredAfter
// ---------------------------------------------------------------------------------------------

const TIMEOUTS: &str = r#"
apiVersion: spec.keptn.sh/0.2.3
kind: Shipyard
metadata: { name: timeouts }
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: deployment
            - name: test
              properties: { timeout: 30m }
            - name: evaluation
              triggeredAfter: "10m"
              properties: { timeout: 1h }
        - name: rollback
          triggeredOn:
            - event: dev.delivery.finished
              selector: { match: { result: fail } }
          tasks:
            - name: rollback
    - name: staging
      sequences:
        - name: delivery
          triggeredOn:
            - event: dev.delivery.finished
          tasks:
            - name: deployment
"#;

/// The live timers of one task, by its `.triggered` id.
fn timers_of(d: &Driver, triggered_id: &str) -> Vec<(i64, TimerKind)> {
    d.timers().iter().filter(|(_, t)| t.triggered_id == triggered_id).map(|(at, t)| (*at, t.kind)).collect()
}

#[test]
fn start_timeout_ends_the_sequence_errored() {
    let mut d = Driver::new(TIMEOUTS);
    let trig = d.trigger("dev", "delivery", "carts");
    let timers = d.timers();
    assert_eq!(timers.len(), 1);
    assert_eq!(timers[0].0, T0 + 10 * MINUTE);
    assert_eq!(timers[0].1.kind, TimerKind::Start);
    assert_eq!(d.engine.next_deadline(), Some(T0 + 10 * MINUTE));
    let dep = d.last("deployment.triggered");

    assert!(d.fire_due_timers(T0 + 10 * MINUTE - 1).is_empty());
    let fx = d.fire_due_timers(T0 + 10 * MINUTE);
    assert_eq!(types(&fx), ["dev.delivery.finished"], "no chaining after a timeout (not even result: fail)");
    let fin = d.last("dev.delivery.finished");
    assert_eq!(fin.triggeredid, trig.id);
    assert_eq!(fin.data["status"], "errored");
    assert_eq!(fin.data["result"], "fail");
    let msg = fin.data["message"].as_str().unwrap();
    assert!(msg.contains("deployment"), "message names the task: {msg}");
    assert!(d.open.is_empty());
    assert_eq!(d.saved[&trig.id].state, ExecState::TimedOut);
    assert_eq!(d.engine.executions().count(), 0);
    assert!(d.run_task(&dep, "pass").is_empty(), "late answers are ignored");
}

#[test]
fn configured_start_timeout_is_used() {
    let mut d = Driver::with_config(Config { task_start_timeout_ms: 5_000 }, TIMEOUTS);
    d.trigger("dev", "delivery", "carts");
    assert!(d.fire_due_timers(T0 + 4_999).is_empty());
    assert_eq!(types(&d.fire_due_timers(T0 + 5_000)), ["dev.delivery.finished"]);
}

#[test]
fn an_answered_task_does_not_time_out_at_start() {
    let mut d = Driver::new(TIMEOUTS);
    d.trigger("dev", "delivery", "carts");
    let dep = d.last("deployment.triggered");
    d.set_now(T0 + MINUTE);
    d.start(&dep, "helm-service");
    assert!(d.fire_due_timers(T0 + 10 * MINUTE).is_empty(), "a started task has no start timeout");
    assert!(d.fire_due_timers(T0 + 3 * 60 * MINUTE).is_empty(), "and no run timeout without a `timeout` property");
    let fx = d.finish(&dep, "helm-service", "pass", json!({}));
    assert_eq!(types(&fx), ["test.triggered"]);
}

#[test]
fn run_timeout_from_the_task_property() {
    let mut d = Driver::new(TIMEOUTS);
    let trig = d.trigger("dev", "delivery", "carts");
    d.run_task(&d.last("deployment.triggered"), "pass");
    let t1 = T0 + MINUTE;
    d.set_now(t1);
    // (deployment finished at T0; the test .triggered went out then)
    let test = d.last("test.triggered");
    let armed = timers_of(&d, &test.id);
    assert_eq!(armed, [(T0 + 10 * MINUTE, TimerKind::Start), (T0 + 30 * MINUTE, TimerKind::Run)]);
    d.start(&test, "jmeter-service");
    assert!(d.fire_due_timers(T0 + 30 * MINUTE - 1).is_empty());
    let fx = d.fire_due_timers(T0 + 30 * MINUTE);
    assert_eq!(types(&fx), ["dev.delivery.finished"], "no rollback, no promotion after a timeout");
    let fin = d.last("dev.delivery.finished");
    assert_eq!(fin.triggeredid, trig.id);
    assert_eq!((fin.data["status"].as_str(), fin.data["result"].as_str()), (Some("errored"), Some("fail")));
    let msg = fin.data["message"].as_str().unwrap();
    assert!(msg.contains("test") && msg.contains("30m"), "message names the task and the timeout: {msg}");
    assert!(d.open.is_empty());
    assert_eq!(d.saved[&trig.id].state, ExecState::TimedOut);
    assert!(d.finish(&test, "jmeter-service", "pass", json!({})).is_empty());
}

#[test]
fn run_timer_of_a_finished_task_does_nothing() {
    let mut d = Driver::new(TIMEOUTS);
    d.trigger("dev", "delivery", "carts");
    d.run_task(&d.last("deployment.triggered"), "pass");
    d.set_now(T0 + MINUTE);
    let fx = d.run_task(&d.last("test.triggered"), "pass");
    assert_eq!(types(&fx), ["evaluation.triggered"]);
    d.run_task(&d.last("evaluation.triggered"), "pass");
    assert_eq!(d.count("dev.delivery.finished"), 1);
    assert!(types(&d.fire_due_timers(T0 + 24 * 60 * MINUTE)).iter().all(|t| !t.starts_with("dev.")));
}

/// The caller sleeps until `next_deadline` and nothing else: a timer the state no longer needs
/// (an answered task's start timeout, a finished task's run timeout) never wakes it.
#[test]
fn next_deadline_follows_the_live_timers_only() {
    let mut d = Driver::new(TIMEOUTS);
    d.trigger("dev", "delivery", "carts");
    assert_eq!(d.engine.next_deadline(), Some(T0 + 10 * MINUTE), "deployment: start timeout");
    d.run_task(&d.last("deployment.triggered"), "pass");
    let test = d.last("test.triggered");
    assert_eq!(d.engine.next_deadline(), Some(T0 + 10 * MINUTE), "test: start timeout, then run timeout");
    d.start(&test, "jmeter-service");
    assert_eq!(d.engine.next_deadline(), Some(T0 + 30 * MINUTE), "answered: only the run timeout is left");
    assert!(d.fire_due_timers(T0 + 10 * MINUTE).is_empty(), "the start timeout is gone, not ignored later");
    d.finish(&test, "jmeter-service", "pass", json!({})); // at +10m
    assert_eq!(
        d.engine.next_deadline(),
        Some(T0 + 30 * MINUTE),
        "test's run timeout gone; evaluation due at +20m (triggeredAfter), its start timeout at +30m"
    );
    d.set_now(T0 + 20 * MINUTE);
    d.run_task(&d.last("evaluation.triggered"), "pass");
    let staging = d.last("deployment.triggered");
    assert_eq!(staging.stage(), "staging");
    assert_eq!(d.engine.next_deadline(), Some(T0 + 30 * MINUTE), "the chained staging sequence's start timeout");
    d.run_task(&staging, "pass");
    assert_eq!(d.engine.next_deadline(), None, "nothing left to wait for");
    assert!(d.fire_due_timers(T0 + 24 * 60 * MINUTE).is_empty());
}

#[test]
fn triggered_after_delays_delivery_and_timers() {
    let mut d = Driver::new(TIMEOUTS);
    d.trigger("dev", "delivery", "carts");
    d.run_task(&d.last("deployment.triggered"), "pass");
    let t1 = T0 + 2 * MINUTE;
    d.set_now(t1);
    let fx = d.run_task(&d.last("test.triggered"), "pass");
    let Some(Effect::Emit { event, deliver_at, open }) = fx.iter().find(|f| matches!(f, Effect::Emit { .. })) else {
        panic!("no emit: {fx:?}");
    };
    assert_eq!(short(&event.ty), "evaluation.triggered");
    assert_eq!(*deliver_at, t1 + 10 * MINUTE, "deliver_at = now + triggeredAfter");
    assert!(*open);
    assert_eq!(event.time, keptn_engine::format_time(t1 + 10 * MINUTE), "time is the scheduled time");
    assert_eq!(
        timers_of(&d, &event.id),
        [(t1 + 20 * MINUTE, TimerKind::Start), (t1 + 70 * MINUTE, TimerKind::Run)],
        "timers count from the scheduled time"
    );
    assert!(d.fire_due_timers(t1 + 20 * MINUTE - 1).is_empty());
    let fx = d.fire_due_timers(t1 + 20 * MINUTE);
    assert_eq!(types(&fx), ["dev.delivery.finished"]);
    assert!(d.last("dev.delivery.finished").data["message"].as_str().unwrap().contains("evaluation"));
}

// ---------------------------------------------------------------------------------------------
// 11./12. Unknown sequences, the built-in evaluation
// ---------------------------------------------------------------------------------------------

fn assert_failed_finished(fx: &[Effect], trig: &keptn_formats::KeptnEvent, short_ty: &str, needle: &str) {
    assert_eq!(types(fx), [short_ty]);
    assert!(!fx.iter().any(|f| matches!(f, Effect::Open(_))), "an unrunnable sequence is not opened");
    let fin = &emits(fx)[0];
    assert_eq!(fin.triggeredid, trig.id);
    assert_eq!(fin.shkeptncontext, trig.shkeptncontext);
    assert_eq!(fin.data["status"], "errored");
    assert_eq!(fin.data["result"], "fail");
    let msg = fin.data["message"].as_str().unwrap();
    assert!(msg.contains(needle), "message {msg:?} should name {needle:?}");
    let saved: Vec<_> = fx
        .iter()
        .filter_map(|f| match f {
            Effect::Save(e) => Some(e.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].state, ExecState::Finished);
    assert_eq!(saved[0].result, Some(TaskResult::Fail));
}

#[test]
fn unknown_project_stage_or_sequence_yields_a_failed_finished() {
    let mut d = Driver::new(TWO_TASKS);
    let ctx = d.new_context();
    let trig = d.trigger_event("nope", "dev", "delivery", "carts", &ctx, json!({}));
    let fx = d.send(trig.clone());
    assert_failed_finished(&fx, &trig, "dev.delivery.finished", "nope");

    let trig = d.trigger_event(PROJECT, "qa", "delivery", "carts", &ctx, json!({}));
    let fx = d.send(trig.clone());
    assert_failed_finished(&fx, &trig, "qa.delivery.finished", "qa");

    let trig = d.trigger_event(PROJECT, "dev", "hotfix", "carts", &ctx, json!({}));
    let fx = d.send(trig.clone());
    assert_failed_finished(&fx, &trig, "dev.hotfix.finished", "hotfix");

    assert!(d.open.is_empty());
    assert_eq!(d.engine.executions().count(), 0);
    assert_eq!(d.count("staging.delivery.triggered"), 0, "a failed start does not chain");
}

#[test]
fn sequence_event_without_project_or_service_is_dropped() {
    let mut d = Driver::new(TWO_TASKS);
    let ctx = d.new_context();
    let mut trig = d.trigger_event(PROJECT, "dev", "delivery", "carts", &ctx, json!({}));
    trig.data.as_object_mut().unwrap().remove("service");
    assert!(d.send(trig).is_empty());
    let mut trig = d.trigger_event(PROJECT, "dev", "delivery", "carts", &ctx, json!({}));
    trig.data.as_object_mut().unwrap().remove("project");
    assert!(d.send(trig).is_empty());
    // Sequence .finished and other kinds are not acted upon.
    let fin = d.event(
        "sh.keptn.event.dev.delivery.finished".into(),
        &ctx,
        "x",
        "cli",
        json!({"project": PROJECT, "service": "carts"}),
    );
    assert!(d.send(fin).is_empty());
}

#[test]
fn builtin_evaluation_sequence_in_any_stage() {
    let mut d = Driver::new(TWO_TASKS);
    let ctx = d.new_context();
    let trig = d.trigger_with("staging", "evaluation", "carts", &ctx, json!({ "evaluation": { "timeframe": "5m" } }));
    assert_eq!(d.types_in(&ctx), ["evaluation.triggered"]);
    let ev = d.last("evaluation.triggered");
    assert_eq!(ev.data["evaluation"], json!({ "timeframe": "5m" }));
    assert_eq!(ev.data["stage"], "staging");
    d.start(&ev, "lighthouse-service");
    let fx = d.finish(&ev, "lighthouse-service", "warning", json!({ "evaluation": { "score": 80 } }));
    assert_eq!(types(&fx), ["staging.evaluation.finished"]);
    let fin = d.last("staging.evaluation.finished");
    assert_eq!(fin.triggeredid, trig.id);
    assert_eq!(fin.data["result"], "warning");
    assert!(d.open.is_empty());
}

// ---------------------------------------------------------------------------------------------
// 13. Restore
// ---------------------------------------------------------------------------------------------

const RESTORE: &str = r#"
apiVersion: spec.keptn.sh/0.2.3
kind: Shipyard
metadata: { name: restore }
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: deployment
            - name: approval
            - name: test
              triggeredAfter: "5m"
              properties: { timeout: 20m }
    - name: staging
      sequences:
        - name: delivery
          triggeredOn:
            - event: dev.delivery.finished
          tasks:
            - name: deployment
"#;

const RESTORE_STEPS: usize = 19;

/// One step of a fixed script mixing lanes, approval, pause, triggeredAfter and timeouts.
fn restore_step(d: &mut Driver, i: usize) {
    let (c1, c2, c3) = ("ctx-1", "ctx-2", "ctx-3");
    d.advance(1000);
    match i {
        0 => drop(d.trigger("dev", "delivery", "carts")),
        1 => drop(d.trigger("dev", "delivery", "carts")),
        2 => drop(d.trigger("dev", "delivery", "orders")),
        3 => drop(d.start(&d.last_in(c1, "deployment.triggered"), "a")),
        4 => drop(d.start(&d.last_in(c1, "deployment.triggered"), "b")),
        5 => drop(d.finish(&d.last_in(c1, "deployment.triggered"), "a", "pass", json!({"list": [1]}))),
        6 => drop(d.finish(&d.last_in(c1, "deployment.triggered"), "b", "warning", json!({"list": [2]}))),
        7 => drop(d.control(c3, None, Control::Pause)),
        8 => drop(d.run_task(&d.last_in(c3, "deployment.triggered"), "pass")),
        9 => drop(d.run_task(&d.last_in(c1, "approval.triggered"), "pass")),
        10 => drop(d.run_task(&d.last_in(c2, "deployment.triggered"), "pass")),
        11 => drop(d.control(c3, None, Control::Resume)),
        12 => {
            d.advance(6 * MINUTE);
            drop(d.start(&d.last_in(c1, "test.triggered"), "jmeter"))
        }
        13 => drop(d.start(&d.last_in(c2, "approval.triggered"), "approval-service")),
        14 => drop(d.fire_due_timers(d.now + 40 * MINUTE)),
        15 => drop(d.finish(&d.last_in(c2, "approval.triggered"), "bridge", "pass", json!({}))),
        16 => drop(d.run_task(&d.last_in(c2, "test.triggered"), "pass")),
        17 => drop(d.run_task(&d.last_in(c2, "deployment.triggered"), "pass")),
        18 => drop(d.fire_due_timers(d.now + 24 * 60 * MINUTE)),
        _ => unreachable!(),
    }
    d.check_lanes();
}

fn run_restore_script(restart_before: Option<usize>) -> Driver {
    let mut d = Driver::new(RESTORE);
    for i in 0..RESTORE_STEPS {
        if restart_before == Some(i) {
            d.restart();
        }
        restore_step(&mut d, i);
    }
    d
}

#[test]
fn restore_mid_sequence_continues_identically() {
    let reference = run_restore_script(None);
    // The script ends with everything finished.
    assert!(reference.open.is_empty(), "open: {:?}", reference.open);
    assert_eq!(reference.engine.executions().count(), 0);
    assert_eq!(reference.count("dev.delivery.finished"), 3);
    assert_eq!(reference.count("staging.delivery.finished"), 1);
    let c1_fin = reference.last_in("ctx-1", "dev.delivery.finished");
    assert_eq!(c1_fin.data["status"], "errored", "c1's test ran into its 20m timeout");
    assert!(c1_fin.data["message"].as_str().unwrap().contains("20m"));
    let c3_fin = reference.last_in("ctx-3", "dev.delivery.finished");
    assert_eq!(c3_fin.data["status"], "errored", "c3's approval nobody answered timed out");
    assert_eq!(reference.last_in("ctx-2", "dev.delivery.finished").data["result"], "pass");

    for k in 1..RESTORE_STEPS {
        let restored = run_restore_script(Some(k));
        assert_eq!(restored.emitted_types(), reference.emitted_types(), "restart before step {k}");
        assert_eq!(restored.emitted, reference.emitted, "restart before step {k}");
        assert_eq!(restored.open, reference.open, "restart before step {k}");
        assert_eq!(restored.saved, reference.saved, "restart before step {k}");
    }
}

#[test]
fn restore_rederives_timers() {
    let mut d = Driver::new(RESTORE);
    for i in 0..12 {
        restore_step(&mut d, i);
    }
    let before = d.timers();
    let deadline = d.engine.next_deadline();
    assert!(!before.is_empty(), "the script leaves tasks with timers");
    d.restart();
    assert_eq!(d.timers(), before, "the restored engine needs the same timers");
    assert_eq!(d.engine.next_deadline(), deadline, "and wakes its caller at the same time");
    // And the restored engine has the same live executions.
    let mut a: Vec<_> = d.engine.executions().cloned().collect();
    a.sort_by(|x, y| x.id.cmp(&y.id));
    let live_saved: Vec<_> = d.saved.values().filter(|e| !e.state.is_done()).cloned().collect();
    assert_eq!(a, live_saved);
}
