//! The `.started` and `.finished` data job-executor-service sent (reference §6.3). Pure.

use super::runner::TaskOutcome;
use keptn_formats::KeptnEvent;
use keptn_integration::common_data;
use serde_json::{Value, json};

/// The `.finished` message at most, in bytes: below the server's default body limit (5 MiB)
/// however many tasks wrote their full output.
pub const MAX_MESSAGE: usize = 3 * 1024 * 1024;

/// `text` cut to `max` bytes (at a character boundary) with a note of what was left out.
fn capped(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let left_out = text.len() - end;
    text.truncate(end);
    text.push_str(&format!("\n[message truncated: {left_out} more bytes]"));
    text
}

/// What one matching action did: the tasks that ran, in order, and why it stopped early if it
/// did (a task that could not be started: image not allowed, env or files missing).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActionOutcome {
    pub tasks: Vec<(String, TaskOutcome)>,
    /// (task name, reason) of a task that could not be started; no later task ran.
    pub not_started: Option<(String, String)>,
}

impl ActionOutcome {
    pub fn succeeded(&self) -> bool {
        self.not_started.is_none() && self.tasks.iter().all(|(_, o)| o.result.is_ok())
    }

    /// keptn's message: per task `Task '<name>' finished successfully!\n\nLogs:\n<logs>\n\n`,
    /// and for the one that failed `Task '<name>' failed: <reason>\n\nLogs:\n<logs>\n\n`.
    pub fn message(&self) -> String {
        let mut message = String::new();
        for (name, outcome) in &self.tasks {
            match &outcome.result {
                Ok(()) => {
                    message.push_str(&format!("Task '{name}' finished successfully!\n\nLogs:\n{}\n\n", outcome.logs))
                }
                Err(reason) => {
                    message.push_str(&format!("Task '{name}' failed: {reason}\n\nLogs:\n{}\n\n", outcome.logs))
                }
            }
        }
        if let Some((name, reason)) = &self.not_started {
            message.push_str(&format!("Task '{name}' failed: Error while creating job: {reason}\n\n"));
        }
        message
    }
}

/// `.started` data: the common block, `status: succeeded`.
pub fn started(triggered: &KeptnEvent) -> Value {
    let mut data = common_data(triggered);
    data["status"] = json!("succeeded");
    data
}

/// `.finished` data: succeeded/pass or errored/fail with the message; for `test.triggered`
/// also `test.start`/`test.end` (first task's start, last task's end), which a following
/// evaluation uses as its timeframe.
pub fn finished(triggered: &KeptnEvent, outcome: &ActionOutcome) -> Value {
    let mut data = common_data(triggered);
    let (status, result) = if outcome.succeeded() { ("succeeded", "pass") } else { ("errored", "fail") };
    data["status"] = json!(status);
    data["result"] = json!(result);
    data["message"] = json!(capped(outcome.message(), MAX_MESSAGE));
    if triggered.ty == "sh.keptn.event.test.triggered"
        && let (Some((_, first)), Some((_, last))) = (outcome.tasks.first(), outcome.tasks.last())
    {
        data["test"] = json!({
            "start": keptn_engine::format_time(first.started_ms),
            "end": keptn_engine::format_time(last.ended_ms),
        });
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(logs: &str, result: Result<(), String>, start: i64, end: i64) -> TaskOutcome {
        TaskOutcome { started_ms: start, ended_ms: end, logs: logs.into(), result }
    }

    fn triggered(ty: &str) -> KeptnEvent {
        KeptnEvent::new(
            "t".into(),
            ty.into(),
            "c".into(),
            "".into(),
            json!({"project": "p", "stage": "s", "service": "x"}),
        )
    }

    #[test]
    fn success_carries_keptns_message_and_test_times() {
        let outcome = ActionOutcome {
            tasks: vec![("one".into(), task("a\n", Ok(()), 1000, 2000)), ("two".into(), task("b", Ok(()), 2000, 3500))],
            not_started: None,
        };
        let data = finished(&triggered("sh.keptn.event.test.triggered"), &outcome);
        assert_eq!((data["status"].as_str(), data["result"].as_str()), (Some("succeeded"), Some("pass")));
        assert_eq!(
            data["message"],
            "Task 'one' finished successfully!\n\nLogs:\na\n\n\nTask 'two' finished successfully!\n\nLogs:\nb\n\n"
        );
        assert_eq!(data["test"], json!({"start": "1970-01-01T00:00:01.000Z", "end": "1970-01-01T00:00:03.500Z"}));
        let deploy = finished(&triggered("sh.keptn.event.deployment.triggered"), &outcome);
        assert!(deploy.get("test").is_none());
    }

    #[test]
    fn long_messages_are_capped_at_a_character_boundary() {
        assert_eq!(capped("short".into(), 10), "short");
        assert_eq!(capped("aé".repeat(4), 5), "aéa\n[message truncated: 8 more bytes]");
    }

    #[test]
    fn a_failure_is_errored_fail() {
        let failed = ActionOutcome {
            tasks: vec![("one".into(), task("x", Err("exited with code 2".into()), 0, 1))],
            not_started: None,
        };
        let data = finished(&triggered("sh.keptn.event.test.triggered"), &failed);
        assert_eq!((data["status"].as_str(), data["result"].as_str()), (Some("errored"), Some("fail")));
        assert_eq!(data["message"], "Task 'one' failed: exited with code 2\n\nLogs:\nx\n\n");
        let refused =
            ActionOutcome { tasks: vec![], not_started: Some(("t".into(), "image \"x\" is not allowed".into())) };
        let data = finished(&triggered("sh.keptn.event.test.triggered"), &refused);
        assert_eq!(data["result"], "fail");
        assert!(data.get("test").is_none());
        assert_eq!(data["message"], "Task 't' failed: Error while creating job: image \"x\" is not allowed\n\n");
    }
}
