//! Read models computed from stored executions: keptn's sequence state view and
//! sequence-execution documents. Pure functions (of the integrations' directory too).

use crate::uniform::Directory;
use keptn_engine::model::DoneTask;
use keptn_engine::{ExecState, Execution, format_time};
use serde_json::{Value, json};

fn image(exec: &Execution) -> Option<&str> {
    exec.input.pointer("/configurationChange/values/image").and_then(Value::as_str)
}

fn latest_evaluation(exec: &Execution) -> Option<Value> {
    exec.previous.iter().rev().find(|t| t.name == "evaluation").map(|t: &DoneTask| {
        let mut v = json!({ "result": t.result.as_str(), "status": t.status.as_str() });
        if let Some(score) = t.data.pointer("/evaluation/score") {
            v["score"] = score.clone();
        }
        v
    })
}

fn stage_state(exec: &Execution) -> &'static str {
    match exec.state {
        ExecState::Finished | ExecState::TimedOut => exec.status.map(|s| s.as_str()).unwrap_or("unknown"),
        _ if exec.paused => "paused",
        _ => "triggered",
    }
}

/// The state of a whole keptnContext (all its executions, oldest first).
fn context_state(execs: &[&Execution]) -> &'static str {
    let active: Vec<&&Execution> = execs.iter().filter(|e| !e.state.is_done()).collect();
    if !active.is_empty() {
        if active.iter().any(|e| e.paused) {
            return "paused";
        }
        let waiting = active.iter().all(|e| e.state == ExecState::Triggered);
        return if waiting { "waiting" } else { "started" };
    }
    if execs.iter().any(|e| e.state == ExecState::TimedOut) {
        "timedOut"
    } else if execs.iter().any(|e| e.status.map(|s| s.as_str()) == Some("aborted")) {
        "aborted"
    } else {
        "finished"
    }
}

/// keptn's `SequenceState` document for one context.
pub fn sequence_state(mut execs: Vec<&Execution>) -> Option<Value> {
    execs.sort_by(|a, b| (a.triggered_at, &a.id).cmp(&(b.triggered_at, &b.id)));
    let first = *execs.first()?;
    let mut stages: Vec<Value> = Vec::new();
    for exec in &execs {
        let mut entry = json!({
            "name": exec.stage,
            "state": stage_state(exec),
            "latestEvent": exec.last_event,
        });
        if let Some(img) = image(exec) {
            entry["image"] = json!(img);
        }
        if let Some(ev) = latest_evaluation(exec) {
            entry["latestEvaluation"] = ev;
        }
        if exec.result.map(|r| r.as_str()) == Some("fail") {
            entry["latestFailedEvent"] = json!(exec.last_event);
        }
        // A later execution in the same stage (e.g. rollback) replaces the earlier entry.
        match stages.iter_mut().find(|s| s["name"] == json!(exec.stage)) {
            Some(slot) => *slot = entry,
            None => stages.push(entry),
        }
    }
    Some(json!({
        "name": first.sequence,
        "service": first.service,
        "project": first.project,
        "time": format_time(first.triggered_at),
        "shkeptncontext": first.context,
        "state": context_state(&execs),
        "problemTitle": first.input.pointer("/problem/problemTitle").and_then(Value::as_str).unwrap_or(""),
        "stages": stages,
    }))
}

/// keptn's sequence-execution document (schema v1, logical shape). keptn-rs addition:
/// `currentTask.subscribed`, whether any integration in `directory` subscribes to the task's
/// `.triggered` in this scope (false: nothing will answer it).
pub fn execution_doc(exec: &Execution, directory: &Directory) -> Value {
    let previous: Vec<Value> = exec
        .previous
        .iter()
        .map(|t| {
            json!({ "name": t.name, "triggeredID": t.triggered_id, "result": t.result.as_str(),
                    "status": t.status.as_str(), "properties": t.data })
        })
        .collect();
    let current = exec.current.as_ref().map(|c| {
        let events: Vec<Value> = c
            .answers
            .iter()
            .map(|(source, a)| json!({ "source": source, "started": a.started, "finished": a.finished }))
            .collect();
        let ty = keptn_formats::event_type::task(&c.name, "triggered");
        let subscribed = directory.subscribed(&ty, &exec.project, &exec.stage, &exec.service);
        json!({ "name": c.name, "triggeredID": c.triggered_id, "events": events, "subscribed": subscribed })
    });
    json!({
        "_id": exec.id,
        "schemaVersion": "1",
        "sequence": { "name": exec.sequence, "tasks": exec.tasks },
        "status": {
            "state": exec.state.as_str(),
            "paused": exec.paused,
            "previousTasks": previous,
            "currentTask": current,
            "result": exec.result.map(|r| r.as_str()),
            "status": exec.status.map(|s| s.as_str()),
            "message": exec.message,
        },
        "scope": {
            "project": exec.project, "stage": exec.stage, "service": exec.service,
            "labels": exec.input.get("labels").cloned().unwrap_or(json!({})),
            "keptnContext": exec.context, "triggeredId": exec.id, "gitcommitid": exec.gitcommitid,
            "eventType": keptn_formats::event_type::sequence(&exec.stage, &exec.sequence, "triggered"),
        },
        "inputProperties": exec.input,
        "triggeredAt": format_time(exec.triggered_at),
    })
}
