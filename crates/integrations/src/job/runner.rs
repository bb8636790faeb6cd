//! What a job runner does: runs one task spec to its end and reports the outcome with logs and
//! start/end times. The local runner (`local.rs`) runs processes on this host; a Kubernetes
//! runner would create a `batch/v1` Job per task. Dropping the future of `run` stops the task
//! (that is how a timeout of the caller, an abort or a shutdown ends it).

use std::time::Duration;

/// One task, resolved: everything a runner needs, nothing it must look up.
#[derive(Debug, Clone, Default)]
pub struct TaskSpec {
    /// job-executor's job name: `job-executor-service-job-<event id>-<action>-<task>`.
    pub job_name: String,
    pub task_name: String,
    pub image: String,
    /// `cmd` and `args` as written: the runner expands `$(VAR)` with the task's variables and
    /// its own (`KEPTN_DIR`), as the kubelet does.
    pub cmd: Vec<String>,
    pub args: Vec<String>,
    /// As written in the file (`/keptn/…` or relative); the runner maps it.
    pub working_dir: Option<String>,
    pub env: Vec<(String, String)>,
    /// Files from the configuration repository: path below the job's `/keptn`, content.
    pub files: Vec<(String, Vec<u8>)>,
    /// `maxPollDuration`.
    pub time_limit: Duration,
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskOutcome {
    /// Milliseconds since the epoch.
    pub started_ms: i64,
    pub ended_ms: i64,
    /// What the task wrote (stdout and stderr as they came), possibly truncated with a note.
    pub logs: String,
    /// Ok, or why the task failed (exit code, timeout, could not start).
    pub result: Result<(), String>,
}

#[async_trait::async_trait]
pub trait JobRunner: Send + Sync {
    /// Runs the task to its end; never panics on the task's behaviour.
    async fn run(&self, spec: TaskSpec) -> TaskOutcome;
}
