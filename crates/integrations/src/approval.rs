//! keptn's approval-service (reference §4.13): answers `approval.triggered` with
//! `approval.started`, then approves or declines automatically when the task's properties say so
//! for the input result; otherwise the approval is manual and a user's `approval.finished`
//! (Bridge, CLI, API) decides it. With no property set, an approval is manual.

use keptn_formats::event_type;
use keptn_formats::{KeptnEvent, TaskResult};
use keptn_integration::{Context, ContextResult, Integration, answer, common_data};
use serde_json::{Value, json};
use std::sync::Arc;

pub struct Approval;

pub const NAME: &str = "approval-service";
const TRIGGERED: &str = "sh.keptn.event.approval.triggered";
const AUTOMATIC: &str = "automatic";
const MANUAL: &str = "manual";

#[async_trait::async_trait]
impl Integration for Approval {
    fn name(&self) -> &'static str {
        NAME
    }

    fn subscriptions(&self) -> &'static [&'static str] {
        &[TRIGGERED]
    }

    async fn handle(&self, event: Arc<KeptnEvent>, ctx: Arc<dyn Context>) -> ContextResult<()> {
        // A wider subscription (say `sh.keptn.event.approval.*`) must not make it answer its
        // own answers: like keptn's service, it handles only `approval.triggered`.
        if event.ty != TRIGGERED {
            return Ok(());
        }
        crate::send_all(NAME, ctx.as_ref(), &event, answers(&event)).await.map(drop)
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
    let mut out = vec![answer(NAME, triggered, event_type::task("approval", "started"), "", started)];
    if let Some(result) = decision.outcome {
        let mut finished = common_data(triggered);
        finished["status"] = json!("succeeded");
        finished["result"] = json!(result.as_str());
        finished["message"] = json!("");
        out.push(answer(NAME, triggered, event_type::task("approval", "finished"), "", finished));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Fake;

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
        let ctx = Fake::new();
        let data = json!({ "project": "p", "stage": "s", "service": "svc", "result": "fail" });
        let started =
            KeptnEvent::new("s1".into(), "sh.keptn.event.approval.started".into(), "c".into(), "".into(), data);
        Approval.handle(Arc::new(started), ctx.clone()).await.unwrap();
        assert!(ctx.sent().is_empty(), "never answers its own answers");
    }

    fn triggered(data: Value) -> Arc<KeptnEvent> {
        let mut data = data;
        data["project"] = json!("p");
        data["stage"] = json!("s");
        data["service"] = json!("svc");
        Arc::new(KeptnEvent::new("t9".into(), TRIGGERED.into(), "ctx9".into(), "".into(), data))
    }

    #[tokio::test]
    async fn an_automatic_approval_is_started_and_finished_through_the_context() {
        let ctx = Fake::new();
        let event = triggered(json!({ "result": "pass", "approval": { "pass": "automatic" } }));
        Approval.handle(event.clone(), ctx.clone()).await.unwrap();
        let sent = ctx.sent();
        let types: Vec<&str> = sent.iter().map(|e| e.ty.as_str()).collect();
        assert_eq!(types, ["sh.keptn.event.approval.started", "sh.keptn.event.approval.finished"]);
        assert_eq!(sent[0].data["message"], "Approval strategy for result 'pass': automatic");
        assert_eq!(
            (sent[1].data["result"].as_str(), sent[1].data["status"].as_str()),
            (Some("pass"), Some("succeeded"))
        );
        // A duplicate delivery sends the same ids; the control plane keeps one of each.
        Approval.handle(event, ctx.clone()).await.unwrap();
        let again = ctx.sent();
        assert_eq!(again.len(), 2, "no second answer: {again:?}");
    }

    #[tokio::test]
    async fn a_manual_approval_waits_for_the_user() {
        let ctx = Fake::new();
        Approval.handle(triggered(json!({ "result": "warning" })), ctx.clone()).await.unwrap();
        let sent = ctx.sent();
        assert_eq!(sent.len(), 1, "only started: {sent:?}");
        assert_eq!(sent[0].ty, "sh.keptn.event.approval.started");
        assert_eq!(sent[0].data["message"], "Approval strategy for result 'warning': manual");
    }

    #[tokio::test]
    async fn an_unavailable_control_plane_is_retried_and_a_refusal_is_not() {
        let ctx = Fake::new();
        ctx.fail_sends(keptn_integration::ContextError::Unavailable("down".into()));
        let event = triggered(json!({ "result": "fail" }));
        let err = Approval.handle(event.clone(), ctx.clone()).await.unwrap_err();
        assert!(err.is_transient(), "{err}");
        ctx.fail_sends(keptn_integration::ContextError::Refused { status: 400, message: "bad".into() });
        Approval.handle(event, ctx.clone()).await.expect("a refusal is logged, not retried");
        assert!(ctx.sent().is_empty());
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
