//! keptn's job-executor-service (reference §6): `job/config.yaml` (service → stage → project,
//! at the event's `gitcommitid`) says which events run which tasks; the tasks of each matching
//! action run in order through a [`JobRunner`] (the local one: processes on this host), and
//! the first non-silent matching action answers a `.triggered` event with `.finished`.
//!
//! An invalid or unreadable config is an error log entry naming the file and the problem, and
//! the event is dropped (as job-executor did); no config or no matching action: dropped
//! silently. A sequence that ends while its job runs (aborted, or timed out by the control
//! plane) kills the job: the integration also subscribes to `sh.keptn.event.*.*.finished`.

pub mod config;
pub mod env;
pub mod files;
pub mod images;
pub mod local;
pub mod matching;
pub mod report;
pub mod runner;

use crate::reads::{Reads, place};
use keptn_formats::KeptnEvent;
use keptn_formats::event_type::EventType;
use keptn_integration::{Context, ContextError, ContextResult, Integration, Redactor, answer};
use report::ActionOutcome;
use runner::{JobRunner, TaskSpec};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use local::{LocalRunner, LocalSettings};

pub const NAME: &str = "job-executor-service";
/// Ends of sequences: a job of a sequence that ended (aborted) is killed.
const SEQUENCE_FINISHED: &str = "sh.keptn.event.*.*.finished";
/// Sending `.finished` after a job ran is retried this often before the event is given back to
/// the runner (which would run the job again).
const SEND_ATTEMPTS: u32 = 6;

/// `Execution.job`: how jobs run.
#[derive(Debug, Clone, Default)]
pub struct JobSettings {
    /// Globs of the images tasks may name (`--job-allowed-images`); empty = every image.
    pub allowed_images: Vec<String>,
    pub local: LocalSettings,
}

pub struct Job {
    runner: Arc<dyn JobRunner>,
    allowed_images: Vec<String>,
    reads: Reads,
    running: Running,
}

impl Job {
    /// The job runner with the local runner.
    pub fn new(settings: &JobSettings) -> Job {
        Job::with_runner(Arc::new(LocalRunner::new(settings.local.clone())), settings.allowed_images.clone())
    }

    /// With another runner (Kubernetes, say).
    pub fn with_runner(runner: Arc<dyn JobRunner>, allowed_images: Vec<String>) -> Job {
        Job { runner, allowed_images, reads: Reads::default(), running: Running::default() }
    }
}

#[async_trait::async_trait]
impl Integration for Job {
    fn name(&self) -> &'static str {
        NAME
    }

    /// job-executor's chart defaults, and the ends of sequences (to kill a job whose sequence ended).
    fn subscriptions(&self) -> &'static [&'static str] {
        &[
            "sh.keptn.event.deployment.triggered",
            "sh.keptn.event.test.triggered",
            "sh.keptn.event.action.triggered",
            SEQUENCE_FINISHED,
        ]
    }

    async fn handle(&self, event: Arc<KeptnEvent>, ctx: Arc<dyn Context>) -> ContextResult<()> {
        if let EventType::Sequence { stage, kind, .. } = EventType::parse(&event.ty)
            && kind == "finished"
        {
            self.running.cancel(&event.shkeptncontext, &stage);
        }
        let Some(config) = self.config(ctx.as_ref(), &event).await? else { return Ok(()) };
        let actions = matching::matching_actions(&config, &event);
        if actions.is_empty() {
            return Ok(());
        }
        let Some(task) = event.ty.strip_prefix("sh.keptn.event.").and_then(|t| t.strip_suffix(".triggered")) else {
            // Not a `.triggered` event: the actions run, nothing is answered.
            return self.run_all(ctx.as_ref(), &event, &actions, None).await;
        };
        let started = answer(NAME, &event, format!("sh.keptn.event.{task}.started"), "", report::started(&event));
        if !crate::send_all(NAME, ctx.as_ref(), &event, vec![started]).await? {
            return Ok(());
        }
        self.run_all(ctx.as_ref(), &event, &actions, Some(task)).await
    }
}

impl Job {
    /// The most specific `job/config.yaml` (service, else stage, else project) at the event's
    /// commit; None if there is none. Invalid: a permanent error naming the file, which the
    /// runner writes to the integration's error log.
    async fn config(&self, ctx: &dyn Context, event: &KeptnEvent) -> ContextResult<Option<config::JobConfig>> {
        let (project, stage, service) = (event.project(), event.stage(), event.service());
        if project.is_empty() {
            return Ok(None);
        }
        let mut levels = crate::reads::levels(project, stage, service, config::URI, &event.gitcommitid);
        levels.reverse();
        for at in levels {
            let found = match crate::reads::split(self.reads.resource(ctx, &at).await)? {
                Ok(found) => found,
                Err(message) => return Err(config_error(&at, &message)),
            };
            let Some(bytes) = found else { continue };
            let text = String::from_utf8_lossy(&bytes);
            return config::parse(&text).map(Some).map_err(|problem| config_error(&at, &problem));
        }
        Ok(None)
    }

    /// Runs the matching actions in order; answers with the first non-silent one's outcome
    /// (when `task` is set) as soon as it is done. Stops without answering when the sequence
    /// ends meanwhile.
    async fn run_all(
        &self,
        ctx: &dyn Context,
        event: &KeptnEvent,
        actions: &[(usize, &config::Action)],
        task: Option<&str>,
    ) -> ContextResult<()> {
        let mut ended = self.running.enter(&event.shkeptncontext, event.stage());
        let mut answered = task.is_none();
        for (index, action) in actions {
            let mut redactor = Redactor::new();
            let outcome = tokio::select! {
                outcome = self.run_action(ctx, event, *index, action, &mut redactor) => outcome?,
                _ = ended.wait() => {
                    tracing::info!(integration = NAME, event = %event.id, action = %action.name, "the sequence ended; the job was stopped");
                    return Ok(());
                }
            };
            if !outcome.succeeded() {
                tracing::warn!(integration = NAME, event = %event.id, action = %action.name, "action failed");
            }
            if !answered && !action.silent {
                answered = true;
                let mut data = report::finished(event, &outcome);
                redactor.scrub_json(&mut data);
                let ty = format!("sh.keptn.event.{}.finished", task.unwrap_or_default());
                self.send_finished(ctx, answer(NAME, event, ty, "", data)).await?;
            }
        }
        Ok(())
    }

    /// Sends `.finished`, riding out a short outage of the control plane: giving the event back
    /// would run its job again.
    async fn send_finished(&self, ctx: &dyn Context, finished: KeptnEvent) -> ContextResult<()> {
        let mut wait = Duration::from_millis(500);
        for attempt in 1..=SEND_ATTEMPTS {
            match ctx.send(finished.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_transient() && attempt < SEND_ATTEMPTS => {
                    tracing::warn!(integration = NAME, error = %e, "could not send .finished; retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => {
                    tracing::error!(integration = NAME, error = %e, "the control plane refused .finished");
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Checks every task's image, then runs the tasks in order until one fails.
    async fn run_action(
        &self,
        ctx: &dyn Context,
        event: &KeptnEvent,
        index: usize,
        action: &config::Action,
        redactor: &mut Redactor,
    ) -> ContextResult<ActionOutcome> {
        let mut outcome = ActionOutcome::default();
        if let Some(task) = action.tasks.iter().find(|t| !images::allowed(&self.allowed_images, &t.image)) {
            let reason = format!(
                "image {:?} is not allowed (allowed: {}; see --job-allowed-images)",
                task.image,
                self.allowed_images.join(", ")
            );
            outcome.not_started = Some((task.name.clone(), reason));
            return Ok(outcome);
        }
        let map = matching::event_map(event);
        let builtin = env::builtin(event);
        for (t, task) in action.tasks.iter().enumerate() {
            let spec = match self.spec(ctx, event, &map, &builtin, (index, t), task, redactor).await? {
                Ok(spec) => spec,
                Err(reason) => {
                    outcome.not_started = Some((task.name.clone(), redactor.scrub(&reason)));
                    break;
                }
            };
            tracing::info!(integration = NAME, job = %spec.job_name, image = %spec.image, task = %task.name, "running a job task");
            let mut done = self.runner.run(spec).await;
            done.logs = redactor.scrub(&done.logs);
            done.result = done.result.map_err(|e| redactor.scrub(&e));
            let failed = done.result.is_err();
            outcome.tasks.push((task.name.clone(), done));
            if failed {
                break;
            }
        }
        Ok(outcome)
    }

    /// A task resolved: env (secrets read and remembered for masking), files read at the event's commit. `Ok(Err)`: why the task cannot run.
    #[allow(clippy::too_many_arguments)]
    async fn spec(
        &self,
        ctx: &dyn Context,
        event: &KeptnEvent,
        map: &serde_json::Value,
        builtin: &[(String, String)],
        (action, task_index): (usize, usize),
        task: &config::Task,
        redactor: &mut Redactor,
    ) -> ContextResult<Result<TaskSpec, String>> {
        let mut secrets = BTreeMap::new();
        for name in env::secret_names(&task.env) {
            match crate::reads::split(ctx.secret(name).await)? {
                Ok(Some(secret)) => {
                    redactor.add_all(secret.values());
                    secrets.insert(name.to_string(), secret);
                }
                Ok(None) => {}
                Err(message) => return Ok(Err(format!("secret {name:?} could not be read: {message}"))),
            }
        }
        let vars = match env::resolve(&task.env, map, &secrets, builtin) {
            Ok(vars) => vars,
            Err(e) => return Ok(Err(e)),
        };
        let files = match self.files(ctx, event, &task.files).await? {
            Ok(files) => files,
            Err(e) => return Ok(Err(e)),
        };
        let id: String = event.id.chars().take(24).collect();
        Ok(Ok(TaskSpec {
            job_name: format!("{NAME}-job-{id}-{action:03}-{:03}", task_index + 1),
            task_name: task.name.clone(),
            image: task.image.clone(),
            cmd: task.cmd.clone(),
            args: task.args.clone(),
            working_dir: task.working_dir.clone(),
            env: vars,
            files,
            time_limit: Duration::from_secs(task.max_poll_seconds()),
        }))
    }

    /// The service's resources the task's `files` name, read at the event's commit.
    async fn files(
        &self,
        ctx: &dyn Context,
        event: &KeptnEvent,
        wanted: &[String],
    ) -> ContextResult<Result<Vec<(String, Vec<u8>)>, String>> {
        if wanted.is_empty() {
            return Ok(Ok(Vec::new()));
        }
        let (project, stage, service) = (event.project(), event.stage(), event.service());
        let at = place(project, stage, service, "", &event.gitcommitid);
        let listing = match crate::reads::split(self.reads.resources(ctx, &at).await)? {
            Ok(Some(listing)) => listing,
            Ok(None) => return Ok(Err(format!("service {service:?} of stage {stage:?} has no resources"))),
            Err(message) => return Ok(Err(format!("could not list the service's resources: {message}"))),
        };
        let uris = match files::select(&listing, wanted) {
            Ok(uris) => uris,
            Err(e) => return Ok(Err(format!("files: {e} (service {service:?}, stage {stage:?})"))),
        };
        let mut out = Vec::with_capacity(uris.len());
        for uri in uris {
            let at = place(project, stage, service, &uri, &event.gitcommitid);
            match crate::reads::split(self.reads.resource(ctx, &at).await)? {
                Ok(Some(bytes)) => out.push((uri, bytes.as_ref().clone())),
                Ok(None) => return Ok(Err(format!("files: {uri:?} could not be read"))),
                Err(message) => return Ok(Err(format!("files: {uri:?} could not be read: {message}"))),
            }
        }
        Ok(Ok(out))
    }
}

/// keptn's error for an unusable config, naming the file's place.
fn config_error(at: &keptn_integration::ResourceAt, problem: &str) -> ContextError {
    let mut place = format!("project {}", at.project);
    if let Some(stage) = &at.stage {
        place.push_str(&format!(", stage {stage}"));
    }
    if let Some(service) = &at.service {
        place.push_str(&format!(", service {service}"));
    }
    if let Some(commit) = &at.gitcommitid {
        place.push_str(&format!(", commit {commit}"));
    }
    ContextError::Refused {
        status: 422,
        message: format!("could not retrieve config for {NAME}: {} ({place}): {problem}", config::URI),
    }
}

/// The jobs running per (keptn context, stage), so that the end of their sequence stops them.
#[derive(Default)]
struct Running {
    jobs: Mutex<HashMap<(String, String), Vec<Waiting>>>,
    next: std::sync::atomic::AtomicU64,
}

/// A running job's number and the switch that tells it its sequence ended.
type Waiting = (u64, tokio::sync::watch::Sender<bool>);

/// A running job's ticket: `wait` returns when its sequence ended; dropped, it is forgotten.
struct Ticket<'a> {
    running: &'a Running,
    key: (String, String),
    id: u64,
    ended: tokio::sync::watch::Receiver<bool>,
}

impl Ticket<'_> {
    async fn wait(&mut self) {
        if self.ended.wait_for(|ended| *ended).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut jobs = self.running.jobs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = jobs.get_mut(&self.key) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                jobs.remove(&self.key);
            }
        }
    }
}

impl Running {
    fn enter(&self, context: &str, stage: &str) -> Ticket<'_> {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = tokio::sync::watch::channel(false);
        let key = (context.to_string(), stage.to_string());
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).entry(key.clone()).or_default().push((id, tx));
        Ticket { running: self, key, id, ended: rx }
    }

    fn cancel(&self, context: &str, stage: &str) {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        for (_, tx) in jobs.get(&(context.to_string(), stage.to_string())).into_iter().flatten() {
            let _ = tx.send(true);
        }
    }
}

#[cfg(test)]
mod tests;
