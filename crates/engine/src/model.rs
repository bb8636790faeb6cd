//! The engine's data: sequence executions and what they remember.

use keptn_formats::shipyard::Task;
use keptn_formats::{TaskResult, TaskStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Milliseconds since the Unix epoch. The engine never reads a clock: `now` is an input.
pub type Millis = i64;

/// Where a sequence execution stands (keptn's execution states, plus `queued`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ExecState {
    /// Waiting for its lane (project, stage, service) or for a resume: not started, or holding
    /// its next task until the lane is free.
    Triggered,
    /// A task is out; this execution holds its lane.
    Started,
    /// The current task is `approval`; the lane is free for others meanwhile.
    WaitingForApproval,
    Finished,
    TimedOut,
}

impl ExecState {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecState::Triggered => "triggered",
            ExecState::Started => "started",
            ExecState::WaitingForApproval => "waitingForApproval",
            ExecState::Finished => "finished",
            ExecState::TimedOut => "timedOut",
        }
    }
    pub fn is_done(self) -> bool {
        matches!(self, ExecState::Finished | ExecState::TimedOut)
    }
}

/// One answer of one integration (identified by the event's `source`) to the current task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub started: bool,
    pub finished: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinishedAnswer {
    pub source: String,
    pub result: TaskResult,
    pub status: TaskStatus,
    pub data: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurrentTask {
    pub index: usize,
    pub name: String,
    /// Id of the task's `.triggered` event; answers carry it as `triggeredid`.
    pub triggered_id: String,
    /// When the `.triggered` is (or was) delivered: now, or later with `triggeredAfter`.
    pub due_at: Millis,
    pub answers: BTreeMap<String, Answer>,
    pub finished: Vec<FinishedAnswer>,
    /// Ids of answers already counted (duplicates are ignored).
    pub seen: Vec<String>,
    /// Message of the latest answer, carried into the sequence's `.finished`.
    pub last_message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoneTask {
    pub name: String,
    pub triggered_id: String,
    pub result: TaskResult,
    pub status: TaskStatus,
    /// Deep merge of every `.finished` data of this task.
    pub data: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRef {
    #[serde(rename = "type")]
    pub ty: String,
    pub id: String,
    pub time: String,
}

/// One run of one sequence for one (project, stage, service, keptnContext).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    /// The id of the sequence's `.triggered` event (keptn's `scope.triggeredId`).
    pub id: String,
    pub project: String,
    pub stage: String,
    pub service: String,
    pub context: String,
    pub sequence: String,
    pub tasks: Vec<Task>,
    /// The whole `data` of the sequence's `.triggered` event.
    pub input: Value,
    pub gitcommitid: String,
    pub triggered_at: Millis,
    pub state: ExecState,
    pub paused: bool,
    /// Index of a task that is due but not yet sent (paused, or lane busy after approval).
    pub held: Option<usize>,
    pub previous: Vec<DoneTask>,
    pub current: Option<CurrentTask>,
    /// Final outcome, once done.
    pub result: Option<TaskResult>,
    pub status: Option<TaskStatus>,
    pub message: String,
    pub finished_at: Option<Millis>,
    pub last_event: Option<EventRef>,
}

impl Execution {
    pub fn lane(&self) -> Lane {
        Lane { project: self.project.clone(), stage: self.stage.clone(), service: self.service.clone() }
    }

    /// Holds the lane: a non-approval task is out and the execution is not paused.
    pub fn holds_lane(&self) -> bool {
        self.state == ExecState::Started && !self.paused
    }

    pub fn task_result(&self, task: &str) -> Option<TaskResult> {
        self.previous.iter().rev().find(|t| t.name == task).map(|t| t.result)
    }
}

/// Sequences of one lane run one at a time, FIFO; different lanes run in parallel.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Lane {
    pub project: String,
    pub stage: String,
    pub service: String,
}

/// A pause marker: a whole keptnContext, or one stage of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PauseMarker {
    pub context: String,
    pub stage: Option<String>,
}

impl PauseMarker {
    pub fn covers(&self, context: &str, stage: &str) -> bool {
        self.context == context && self.stage.as_deref().is_none_or(|s| s == stage)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TimerKind {
    /// Nobody answered the task within the start timeout.
    Start,
    /// The task did not finish within its `timeout` property.
    Run,
}

/// A deadline of one task. Ordered by execution, task and kind, so timers due at the same
/// millisecond fire in a fixed order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Timer {
    pub execution: String,
    pub triggered_id: String,
    pub kind: TimerKind,
}
