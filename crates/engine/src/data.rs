//! Pure payload arithmetic: aggregating answers, building the next task's data, selectors.

use crate::model::{DoneTask, Execution, FinishedAnswer};
use keptn_formats::merge::merge;
use keptn_formats::shipyard::Selector;
use keptn_formats::{TaskResult, TaskStatus};
use serde_json::{Map, Value, json};

/// Worst-of result and keptn's status rule over all `.finished` answers of one task.
pub fn aggregate(answers: &[FinishedAnswer]) -> (TaskResult, TaskStatus, Value) {
    let mut result = TaskResult::Pass;
    let mut data = Value::Object(Map::new());
    for a in answers {
        result = result.max(a.result);
        merge(&mut data, &a.data);
    }
    let status = if answers.iter().any(|a| a.status == TaskStatus::Errored) {
        TaskStatus::Errored
    } else if answers.iter().any(|a| a.status == TaskStatus::Aborted) {
        TaskStatus::Aborted
    } else if answers.iter().all(|a| a.status == TaskStatus::Succeeded) {
        TaskStatus::Succeeded
    } else {
        result = TaskResult::Fail;
        TaskStatus::Unknown
    };
    (result, status, data)
}

/// The data everything downstream of a sequence sees: its input, every finished task's data
/// in order, then the last task's result and status (keptn §4.8 steps 1–4).
pub fn accumulated(exec: &Execution) -> Value {
    let mut data = match &exec.input {
        Value::Object(_) => exec.input.clone(),
        _ => json!({}),
    };
    data["project"] = json!(exec.project);
    data["stage"] = json!(exec.stage);
    data["service"] = json!(exec.service);
    for done in &exec.previous {
        merge(&mut data, &done.data);
    }
    if let Some(last) = exec.previous.last() {
        data["result"] = json!(last.result.as_str());
        data["status"] = json!(last.status.as_str());
    }
    data
}

/// `data` of the next task's `.triggered`: accumulated data plus the task's properties under
/// its own name; a stale `message` is cleared.
pub fn task_payload(exec: &Execution, task_index: usize) -> Value {
    let mut data = accumulated(exec);
    let task = &exec.tasks[task_index];
    let mut props = Map::new();
    props.insert(task.name.clone(), Value::Object(task.properties_object()));
    merge(&mut data, &Value::Object(props));
    if data.get("message").is_some() {
        data["message"] = json!("");
    }
    data
}

/// Whether a finished task stops its sequence.
pub fn stops_sequence(done: &DoneTask) -> bool {
    done.result == TaskResult::Fail || done.status == TaskStatus::Errored
}

/// Does a `triggeredOn` selector match a finished sequence?
///
/// No selector: pass or warning (keptn's behaviour). With `match`: every `result` /
/// `<task>.result` key must equal (`fail` and `failed` are the same); other keys are ignored.
pub fn selector_matches(selector: Option<&Selector>, finished: &Execution) -> bool {
    let result = finished.result.unwrap_or(TaskResult::Fail);
    let Some(sel) = selector.filter(|s| !s.r#match.is_empty()) else {
        return result != TaskResult::Fail;
    };
    let mut considered = 0;
    for (key, want) in &sel.r#match {
        let got = if key == "result" {
            Some(result)
        } else if let Some(task) = key.strip_suffix(".result") {
            finished.task_result(task)
        } else {
            continue;
        };
        considered += 1;
        let want = if want == "failed" { "fail" } else { want.as_str() };
        if got.map(TaskResult::as_str) != Some(want) {
            return false;
        }
    }
    considered > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fin(source: &str, result: &str, status: &str, data: Value) -> FinishedAnswer {
        FinishedAnswer {
            source: source.into(),
            result: TaskResult::parse(result),
            status: TaskStatus::parse(status),
            data,
        }
    }

    #[test]
    fn worst_of_result_and_status() {
        let (r, s, d) = aggregate(&[
            fin("a", "pass", "succeeded", json!({"a": 1})),
            fin("b", "warning", "succeeded", json!({"b": 2})),
        ]);
        assert_eq!((r, s), (TaskResult::Warning, TaskStatus::Succeeded));
        assert_eq!(d, json!({"a": 1, "b": 2}));
        let (r, s, _) = aggregate(&[fin("a", "pass", "succeeded", json!({})), fin("b", "pass", "errored", json!({}))]);
        assert_eq!((r, s), (TaskResult::Pass, TaskStatus::Errored));
        let (r, s, _) = aggregate(&[fin("a", "pass", "weird", json!({}))]);
        assert_eq!((r, s), (TaskResult::Fail, TaskStatus::Unknown));
        let (r, _, _) = aggregate(&[fin("a", "", "succeeded", json!({}))]);
        assert_eq!(r, TaskResult::Fail);
    }
}
