//! keptn's approval-service (reference §4.13): answers `approval.triggered` with
//! `approval.started`, then approves or declines automatically when the task's properties say so
//! for the input result; otherwise the approval is manual and a user's `approval.finished`
//! (Bridge, CLI, API) decides it. With no property set, an approval is manual.

use super::{BuiltIn, answer, common_data};
use keptn_spec::event_type;
use keptn_spec::{KeptnEvent, TaskResult};
use serde_json::{Value, json};

pub struct Approval;

const NAME: &str = "approval-service";
const TRIGGERED: &str = "sh.keptn.event.approval.triggered";
const AUTOMATIC: &str = "automatic";
const MANUAL: &str = "manual";

impl BuiltIn for Approval {
    const NAME: &'static str = NAME;
    const SUBSCRIPTIONS: &'static [&'static str] = &[TRIGGERED];

    async fn handle(&self, event: &KeptnEvent) -> Vec<KeptnEvent> {
        // A wider subscription (say `sh.keptn.event.approval.*`) must not make it answer its
        // own answers: like keptn's service, it handles only `approval.triggered`.
        if event.ty != TRIGGERED {
            return Vec::new();
        }
        answers(event)
    }
}

/// What the approval service decides from an `approval.triggered`'s data.
#[derive(Debug, PartialEq)]
struct Decision<'a> {
    /// `data.result`, or `data.evaluation.result` when that is empty.
    input: &'a str,
    /// The strategy for that result, as keptn reports it in the `.started` message.
    strategy: &'a str,
    /// An automatic decision, or None for a manual one.
    outcome: Option<TaskResult>,
}

fn decide(data: &Value) -> Decision<'_> {
    let text = |pointer: &str| data.pointer(pointer).and_then(Value::as_str).unwrap_or("");
    let input = match text("/result") {
        "" => text("/evaluation/result"),
        given => given,
    };
    let (pass, warning) = (text("/approval/pass"), text("/approval/warning"));
    let failed = matches!(input, "fail" | "failed");
    let strategy = match input {
        "pass" if !pass.is_empty() => pass,
        "warning" if !warning.is_empty() => warning,
        _ if failed => AUTOMATIC,
        _ => MANUAL,
    };
    let outcome = if failed {
        Some(TaskResult::Fail)
    } else if matches!(input, "pass" | "warning") && strategy == AUTOMATIC {
        Some(TaskResult::Pass)
    } else {
        None
    };
    Decision { input, strategy, outcome }
}

/// `approval.started`, then `approval.finished` if the decision is automatic.
fn answers(triggered: &KeptnEvent) -> Vec<KeptnEvent> {
    let decision = decide(&triggered.data);
    let mut started = common_data(triggered);
    started["status"] = json!("succeeded");
    started["message"] = json!(format!("Approval strategy for result '{}': {}", decision.input, decision.strategy));
    let mut out = vec![answer(NAME, triggered, event_type::task("approval", "started"), started)];
    if let Some(result) = decision.outcome {
        let mut finished = common_data(triggered);
        finished["status"] = json!("succeeded");
        finished["result"] = json!(result.as_str());
        finished["message"] = json!("");
        out.push(answer(NAME, triggered, event_type::task("approval", "finished"), finished));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(data: Value) -> (String, Option<TaskResult>) {
        let d = decide(&data);
        (format!("Approval strategy for result '{}': {}", d.input, d.strategy), d.outcome)
    }

    #[test]
    fn keptns_decision_table() {
        let auto_manual = json!({ "pass": "automatic", "warning": "manual" });
        let cases = [
            (json!({ "result": "pass", "approval": auto_manual }), "'pass': automatic", Some(TaskResult::Pass)),
            (json!({ "result": "warning", "approval": auto_manual }), "'warning': manual", None),
            (
                json!({ "result": "warning", "approval": { "warning": "automatic" } }),
                "'warning': automatic",
                Some(TaskResult::Pass),
            ),
            (json!({ "result": "fail", "approval": auto_manual }), "'fail': automatic", Some(TaskResult::Fail)),
            (json!({ "result": "pass" }), "'pass': manual", None),
            (json!({ "approval": auto_manual }), "'': manual", None),
            (
                json!({ "evaluation": { "result": "pass" }, "approval": auto_manual }),
                "'pass': automatic",
                Some(TaskResult::Pass),
            ),
            (json!({ "result": "pass", "approval": { "pass": "manual" } }), "'pass': manual", None),
        ];
        for (data, message, want) in cases {
            let (got_message, got) = outcome(data.clone());
            assert!(got_message.ends_with(message), "{data}: {got_message}");
            assert_eq!(got, want, "{data}");
        }
    }

    #[tokio::test]
    async fn answers_only_approval_triggered() {
        let data = json!({ "project": "p", "stage": "s", "service": "svc", "result": "fail" });
        let started =
            KeptnEvent::new("s1".into(), "sh.keptn.event.approval.started".into(), "c".into(), "".into(), data);
        assert!(Approval.handle(&started).await.is_empty(), "never answers its own answers");
    }

    #[test]
    fn answers_carry_the_triggered_ids_and_common_data() {
        let mut triggered = KeptnEvent::new(
            "t1".into(),
            "sh.keptn.event.approval.triggered".into(),
            "ctx".into(),
            "2024-01-01T00:00:00.000Z".into(),
            json!({ "project": "p", "stage": "s", "service": "svc", "labels": { "a": "b" }, "result": "pass",
                    "approval": { "pass": "automatic" }, "deployment": { "x": 1 } }),
        );
        triggered.gitcommitid = "abc".into();
        let out = answers(&triggered);
        assert_eq!(out.len(), 2);
        for (ev, ty) in out.iter().zip(["sh.keptn.event.approval.started", "sh.keptn.event.approval.finished"]) {
            assert_eq!(ev.ty, ty);
            assert_eq!(ev.source, "approval-service");
            assert_eq!(ev.triggeredid, "t1");
            assert_eq!(ev.shkeptncontext, "ctx");
            assert_eq!(ev.gitcommitid, "abc");
            assert_eq!(ev.data["labels"], json!({ "a": "b" }));
            assert!(ev.data.get("deployment").is_none());
        }
        assert_eq!(out[1].data["result"], "pass");
        assert_eq!(out[1].data["status"], "succeeded");
        // Answering again (after a restart) yields the same ids, which the writer drops.
        let again = answers(&triggered);
        assert_eq!(again.iter().map(|e| &e.id).collect::<Vec<_>>(), out.iter().map(|e| &e.id).collect::<Vec<_>>());
        assert_ne!(out[0].id, out[1].id);
    }
}
