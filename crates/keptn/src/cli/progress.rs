//! What a sequence looks like to a person: one line per task of every stage it ran in, and the
//! outcome. Pure functions over keptn's sequence-execution documents, shared by `--watch` and
//! `keptn get sequence`.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    /// Not reached yet.
    Pending,
    /// `.triggered` sent; `by` are the integrations that answered `.started` so far.
    /// `unsubscribed`: the `.triggered` type when the server says no integration subscribes to it.
    Running {
        by: Vec<String>,
        approval: bool,
        paused: bool,
        unsubscribed: Option<String>,
    },
    Done {
        result: String,
        status: String,
    },
    /// The sequence ended before this task.
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskLine {
    pub stage: String,
    pub sequence: String,
    pub task: String,
    pub state: TaskState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// No stage is running or waiting any more.
    pub done: bool,
    /// A stage failed, errored, was aborted or timed out.
    pub failed: bool,
    /// One line: the result, or where and why it failed.
    pub summary: String,
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// The task lines of every execution, stages in the order they were triggered.
pub fn lines(executions: &[Value]) -> Vec<TaskLine> {
    let mut out = Vec::new();
    for exec in in_trigger_order(executions) {
        let status = &exec["status"];
        let previous = status["previousTasks"].as_array().cloned().unwrap_or_default();
        let current = &status["currentTask"];
        let ended = matches!(status["state"].as_str(), Some("finished" | "timedOut"));
        for (i, task) in exec["sequence"]["tasks"].as_array().into_iter().flatten().enumerate() {
            let name = s(&task["name"]);
            let state = if let Some(done) = previous.get(i) {
                TaskState::Done { result: s(&done["result"]), status: s(&done["status"]) }
            } else if i == previous.len() && current["name"] == task["name"] && !ended {
                let by = current["events"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|e| e["started"] == true || e["finished"] == true)
                    .map(|e| s(&e["source"]))
                    .collect();
                // An older server sends no `subscribed`: assume someone is.
                let unsubscribed = (current["subscribed"] == false).then(|| format!("sh.keptn.event.{name}.triggered"));
                TaskState::Running {
                    by,
                    approval: status["state"] == "waitingForApproval",
                    paused: status["paused"] == true,
                    unsubscribed,
                }
            } else if ended {
                TaskState::Skipped
            } else {
                TaskState::Pending
            };
            out.push(TaskLine {
                stage: s(&exec["scope"]["stage"]),
                sequence: s(&exec["sequence"]["name"]),
                task: name,
                state,
            });
        }
    }
    out
}

fn in_trigger_order(executions: &[Value]) -> Vec<&Value> {
    let mut execs: Vec<&Value> = executions.iter().collect();
    execs.sort_by_key(|e| s(&e["triggeredAt"]));
    execs
}

/// Whether the context ended and how, from its state document (null while it does not exist yet)
/// and its executions.
pub fn outcome(state: &Value, executions: &[Value]) -> Outcome {
    let executions = in_trigger_order(executions);
    let overall = state["state"].as_str().unwrap_or("");
    let done = matches!(overall, "finished" | "aborted" | "timedOut");
    let mut failed_at = None;
    for exec in &executions {
        let st = &exec["status"];
        let bad_status = matches!(st["status"].as_str(), Some("errored" | "aborted"));
        if st["result"] == "fail" || bad_status || st["state"] == "timedOut" {
            failed_at.get_or_insert(*exec);
        }
    }
    let stages: Vec<String> = executions
        .iter()
        .filter(|e| e["status"]["state"] == "finished" || e["status"]["state"] == "timedOut")
        .map(|e| format!("{}: {}", s(&e["scope"]["stage"]), result_word(&e["status"])))
        .collect();
    let name = s(&state["name"]);
    let summary = match (done, failed_at) {
        (false, _) => format!("sequence {name} is {}", if overall.is_empty() { "not started yet" } else { overall }),
        (true, Some(exec)) => {
            let st = &exec["status"];
            let message = s(&st["message"]);
            let mut line =
                format!("sequence {name} failed in stage {}: {}", s(&exec["scope"]["stage"]), result_word(st));
            if let Some(task) = failing_task(st) {
                line.push_str(&format!(" (task {task})"));
            }
            if !message.is_empty() {
                line.push_str(&format!(": {message}"));
            }
            line
        }
        (true, None) => format!("sequence {name} {overall}: {}", stages.join(", ")),
    };
    Outcome { done, failed: done && failed_at.is_some() || overall == "aborted" || overall == "timedOut", summary }
}

/// `pass`, `warning`, `fail`, or the status when it is not `succeeded` (errored, aborted) or the
/// stage timed out.
fn result_word(status: &Value) -> String {
    if status["state"] == "timedOut" {
        return "timed out".into();
    }
    match status["status"].as_str() {
        Some(st @ ("errored" | "aborted")) => st.to_string(),
        _ => s(&status["result"]),
    }
}

/// The last task that did not pass.
fn failing_task(status: &Value) -> Option<String> {
    status["previousTasks"]
        .as_array()?
        .iter()
        .rev()
        .find(|t| t["result"] == "fail" || t["status"] != "succeeded")
        .map(|t| s(&t["name"]))
        .or_else(|| status["currentTask"]["name"].as_str().map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn exec(stage: &str, at: &str, state: &str, prev: Value, current: Value, result: Value) -> Value {
        json!({
            "triggeredAt": at,
            "sequence": { "name": "delivery", "tasks": [{ "name": "deployment" }, { "name": "test" }, { "name": "release" }] },
            "status": { "state": state, "paused": false, "previousTasks": prev, "currentTask": current,
                        "result": result, "status": if result.is_null() { Value::Null } else { json!("succeeded") },
                        "message": "" },
            "scope": { "stage": stage },
        })
    }

    #[test]
    fn running_stage_shows_done_running_and_pending_tasks() {
        let e = exec(
            "dev",
            "2026-01-01T00:00:00.000Z",
            "started",
            json!([{ "name": "deployment", "result": "pass", "status": "succeeded" }]),
            json!({ "name": "test", "events": [{ "source": "jmeter-service", "started": true, "finished": false }] }),
            Value::Null,
        );
        let l = lines(std::slice::from_ref(&e));
        assert_eq!(l[0].state, TaskState::Done { result: "pass".into(), status: "succeeded".into() });
        assert_eq!(
            l[1].state,
            TaskState::Running {
                by: vec!["jmeter-service".into()],
                approval: false,
                paused: false,
                unsubscribed: None
            }
        );
        assert_eq!(l[2].state, TaskState::Pending);
        let o = outcome(&json!({ "name": "delivery", "state": "started" }), &[e]);
        assert!(!o.done && !o.failed, "{o:?}");
    }

    #[test]
    fn a_task_nobody_subscribes_to_says_so() {
        let current = json!({ "name": "deployment", "events": [], "subscribed": false });
        let e = exec("dev", "2026-01-01T00:00:00.000Z", "started", json!([]), current, Value::Null);
        let TaskState::Running { unsubscribed, .. } = &lines(std::slice::from_ref(&e))[0].state else {
            panic!("the first task runs")
        };
        assert_eq!(unsubscribed.as_deref(), Some("sh.keptn.event.deployment.triggered"));
    }

    #[test]
    fn failed_stage_names_the_task_and_skips_the_rest() {
        let e = exec(
            "dev",
            "2026-01-01T00:00:00.000Z",
            "finished",
            json!([{ "name": "deployment", "result": "pass", "status": "succeeded" },
                   { "name": "test", "result": "fail", "status": "succeeded" }]),
            Value::Null,
            json!("fail"),
        );
        assert_eq!(lines(std::slice::from_ref(&e))[2].state, TaskState::Skipped);
        let o = outcome(&json!({ "name": "delivery", "state": "finished" }), &[e]);
        assert!(o.done && o.failed, "{o:?}");
        assert_eq!(o.summary, "sequence delivery failed in stage dev: fail (task test)");
    }

    #[test]
    fn passing_stages_are_listed_in_trigger_order() {
        let done = json!([{ "name": "deployment", "result": "pass", "status": "succeeded" },
                          { "name": "test", "result": "pass", "status": "succeeded" },
                          { "name": "release", "result": "pass", "status": "succeeded" }]);
        let prod = exec("production", "2026-01-01T00:00:02.000Z", "finished", done.clone(), Value::Null, json!("pass"));
        let dev = exec("dev", "2026-01-01T00:00:01.000Z", "finished", done, Value::Null, json!("pass"));
        let execs = [prod, dev];
        assert_eq!(lines(&execs)[0].stage, "dev");
        let o = outcome(&json!({ "name": "delivery", "state": "finished" }), &execs);
        assert!(o.done && !o.failed);
        assert_eq!(o.summary, "sequence delivery finished: dev: pass, production: pass");
    }

    #[test]
    fn not_yet_stored() {
        let o = outcome(&Value::Null, &[]);
        assert!(!o.done && o.summary.contains("not started yet"), "{o:?}");
    }
}
