//! The single writer: owns the engine and its time, turns each batch of inputs into one
//! database transaction (incoming events, state changes and outgoing events commit together),
//! then hands committed events to the dispatcher. Group commit gives throughput.
//!
//! Time: the writer's loop waits on its command channel and on one sleep until the engine's
//! next deadline (`Engine::next_deadline`); when it passes, the engine gets the time
//! (`Engine::handle_timeout`) and what it emits commits like any other batch.

use crate::clock::now_ms;
use crate::dispatch::Outgoing;
use crate::metrics as m;
use crate::uniform::Directory;
use keptn_engine::{Control, Effect, Engine, Input, Millis};
use keptn_formats::event_type::EventType;
use keptn_formats::{KeptnEvent, Shipyard};
use keptn_store::{OpenRow, ScopeKey, Store, StoreError, WriteBatch};
use std::collections::HashMap;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot, watch};

const MAX_BATCH: usize = 1024;
/// How often a failing writer tries a probe write while no commands arrive.
const PROBE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// Commits between SQLite checkpoints (taken off the writer's path by a helper task).
const CHECKPOINT_EVERY: u64 = 100;

type Reply = oneshot::Sender<Result<(), WriteError>>;

/// Why a write command failed. The writer knows nothing of HTTP: the API turns this into its
/// status (`impl From<WriteError> for ApiError`, in `error.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteError {
    pub kind: WriteErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteErrorKind {
    /// The database refused a value of this command; nothing was stored. Retrying won't help.
    Refused,
    /// The thing to change does not exist (a project deletion).
    NotFound,
    Conflict,
    /// Storage is failing or the server is stopping; nothing was changed. Retry later.
    Unavailable,
}

impl WriteError {
    fn new(kind: WriteErrorKind, message: impl Into<String>) -> WriteError {
        WriteError { kind, message: message.into() }
    }

    fn stopping() -> WriteError {
        WriteError::new(WriteErrorKind::Unavailable, "the server is shutting down")
    }

    /// What a caller of a failed commit hears: its value refused, or storage failing.
    fn commit(e: &StoreError) -> WriteError {
        if e.is_data_error() {
            let message = format!("the database refused a value of this request, nothing was stored: {e}");
            WriteError::new(WriteErrorKind::Refused, message)
        } else {
            WriteError::new(WriteErrorKind::Unavailable, format!("storing failed, nothing was changed; retry ({e})"))
        }
    }

    /// A store call outside a batch (a project deletion).
    fn store(e: StoreError) -> WriteError {
        match e {
            StoreError::NotFound(m) => WriteError::new(WriteErrorKind::NotFound, m),
            StoreError::Conflict(m) => WriteError::new(WriteErrorKind::Conflict, m),
            other => {
                tracing::error!(error = %other, "storage error");
                WriteError::new(
                    WriteErrorKind::Unavailable,
                    format!("the server's storage failed; retry later ({other})"),
                )
            }
        }
    }
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

pub enum WriteCmd {
    /// Store an event (from the API or the control plane itself) and run it through the engine.
    Ingest {
        event: Box<KeptnEvent>,
        received: Instant,
        reply: Option<Reply>,
    },
    /// The engine's next deadline passed: fire what is due. Queued by the writer's own loop.
    Deadline,
    Control {
        project: String,
        context: String,
        stage: Option<String>,
        action: Control,
        reply: Option<Reply>,
    },
    SetShipyard {
        project: String,
        shipyard: Shipyard,
    },
    /// Events every push target has received: they leave the outbox.
    Delivered(Vec<String>),
    /// Events JetStream acknowledged: they leave the NATS outbox.
    Published(Vec<String>),
    /// The project's configuration repository moved to this commit.
    SetRevision {
        project: String,
        commit: String,
    },
    DeleteProject {
        project: String,
        reply: Option<Reply>,
    },
}

impl WriteCmd {
    fn take_reply(&mut self) -> Option<Reply> {
        match self {
            WriteCmd::Ingest { reply, .. }
            | WriteCmd::Control { reply, .. }
            | WriteCmd::DeleteProject { reply, .. } => reply.take(),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<WriteCmd>,
    health: watch::Receiver<Health>,
}

impl WriterHandle {
    /// Whether the writer's last commit (or probe) succeeded.
    pub fn health(&self) -> Health {
        self.health.borrow().clone()
    }

    /// A handle that does not keep the writer alive (for background tasks).
    pub fn downgrade(&self) -> mpsc::WeakSender<WriteCmd> {
        self.tx.downgrade()
    }

    /// A sink for ids of delivered outbox events: they reach the writer in batches
    /// (`WriteCmd::Delivered`). The batching task holds only a weak handle.
    pub fn delivery_reports(&self) -> mpsc::UnboundedSender<String> {
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let writer = self.downgrade();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            while rx.recv_many(&mut ids, 512).await > 0 {
                let Some(writer) = writer.upgrade() else { return };
                if writer.send(WriteCmd::Delivered(std::mem::take(&mut ids))).await.is_err() {
                    return;
                }
            }
        });
        tx
    }

    pub async fn send(&self, cmd: WriteCmd) -> Result<(), WriteError> {
        self.tx.send(cmd).await.map_err(|_| WriteError::stopping())
    }

    async fn ask(&self, cmd: impl FnOnce(Reply) -> WriteCmd) -> Result<(), WriteError> {
        let (reply, rx) = oneshot::channel();
        self.send(cmd(reply)).await?;
        rx.await.map_err(|_| WriteError::stopping())?
    }

    /// Stores the event durably and runs it; returns once committed.
    pub async fn ingest(&self, event: KeptnEvent) -> Result<(), WriteError> {
        let received = Instant::now();
        self.ask(|reply| WriteCmd::Ingest { event: Box::new(event), received, reply: Some(reply) }).await
    }

    pub async fn control(
        &self,
        project: String,
        context: String,
        stage: Option<String>,
        action: Control,
    ) -> Result<(), WriteError> {
        self.ask(|reply| WriteCmd::Control { project, context, stage, action, reply: Some(reply) }).await
    }

    pub async fn set_shipyard(&self, project: String, shipyard: Shipyard) -> Result<(), WriteError> {
        self.send(WriteCmd::SetShipyard { project, shipyard }).await
    }

    pub async fn set_revision(&self, project: String, commit: String) -> Result<(), WriteError> {
        self.send(WriteCmd::SetRevision { project, commit }).await
    }

    pub async fn delete_project(&self, project: String) -> Result<(), WriteError> {
        self.ask(|reply| WriteCmd::DeleteProject { project, reply: Some(reply) }).await
    }
}

pub struct Writer {
    store: Store,
    engine: Engine,
    engine_config: keptn_engine::Config,
    /// Deadlines wait until then after a failed commit, so a batch the database keeps refusing
    /// does not spin.
    deadlines_held_until: Millis,
    dispatch: mpsc::UnboundedSender<Vec<Outgoing>>,
    /// Decides at commit time whether an event needs an outbox row (it has push targets).
    directory: Directory,
    next_seq: i64,
    /// Current configuration revision per project, re-applied when the engine is reloaded.
    revisions: HashMap<String, String>,
    commits: u64,
    checkpoint: mpsc::Sender<()>,
    health: watch::Sender<Health>,
    /// With NATS: every stored event gets a NATS outbox row; the publisher is woken after commits.
    /// Whether stored events get NATS outbox rows (`--nats-url`).
    nats: bool,
}

/// What one batch produced, applied only after a successful commit.
#[derive(Default)]
struct Produced {
    outgoing: Vec<Outgoing>,
    hops: Vec<Instant>,
    /// Per command: a project deletion, answered after the commit by the deletion itself.
    deletes: Vec<bool>,
}

/// Whether the writer can commit: what `/ready` reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Health {
    #[default]
    Ready,
    /// Commits fail since then (ms); the last error.
    Failing { since_ms: i64, reason: String },
}

fn answer(reply: &mut Option<Reply>, result: Result<(), WriteError>) {
    if let Some(r) = reply.take() {
        let _ = r.send(result);
    }
}

/// Answers the caller of a command whose commit failed; a project deletion is answered by the
/// deletion, which runs after the batch either way.
fn fail(cmd: &WriteCmd, reply: &mut Option<Reply>, e: &StoreError) {
    if !matches!(cmd, WriteCmd::DeleteProject { .. }) {
        answer(reply, Err(WriteError::commit(e)));
    }
}

/// Time-ordered UUIDs (v7): new ids land at the end of the id and context indexes, so a commit
/// touches a few hot pages instead of one random page per event.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl Writer {
    pub async fn load(
        store: Store,
        engine_config: keptn_engine::Config,
        dispatch: mpsc::UnboundedSender<Vec<Outgoing>>,
        directory: Directory,
        revisions: HashMap<String, String>,
    ) -> Result<Writer, StoreError> {
        let mut engine = Self::restore_engine(&store, &engine_config).await?;
        for (project, commit) in &revisions {
            engine.set_revision(project, commit);
        }
        let next_seq = store.max_event_seq().await? + 1;
        let checkpoint = spawn_checkpointer(store.clone());
        Ok(Writer {
            store,
            engine,
            engine_config,
            deadlines_held_until: 0,
            dispatch,
            directory,
            next_seq,
            revisions,
            commits: 0,
            checkpoint,
            health: watch::Sender::new(Health::Ready),
            nats: false,
        })
    }

    /// Gives every stored event a NATS outbox row in its commit (the JetStream bus publishes it).
    pub fn with_nats_outbox(mut self) -> Self {
        self.nats = true;
        self
    }

    async fn restore_engine(store: &Store, config: &keptn_engine::Config) -> Result<Engine, StoreError> {
        let mut shipyards = std::collections::HashMap::new();
        for p in store.list_projects().await? {
            match Shipyard::parse(&p.shipyard) {
                Ok(s) => {
                    shipyards.insert(p.name, s);
                }
                Err(e) => tracing::error!(project = %p.name, error = %e, "stored shipyard is invalid"),
            }
        }
        let executions = store.load_open_executions().await?;
        let markers = store.load_pause_markers().await?;
        Ok(Engine::restore(config.clone(), shipyards, executions, markers))
    }

    /// Starts the writer task. The restored engine already knows its deadlines.
    pub fn spawn(mut self) -> (WriterHandle, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<WriteCmd>(4096);
        let handle = WriterHandle { tx, health: self.health.subscribe() };
        let task = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            loop {
                let ready = *self.health.borrow() == Health::Ready;
                // While commits fail, deadlines wait for the probe (they would fail alike).
                let deadline = self.next_deadline().filter(|_| ready);
                tokio::select! {
                    received = rx.recv_many(&mut batch, MAX_BATCH) => {
                        if received == 0 {
                            break;
                        }
                    }
                    _ = sleep_until(deadline), if deadline.is_some() => {
                        // The sleep runs on the monotonic clock, deadlines on the wall clock; if
                        // the wall clock lags (slewing), sleep the rest instead of an empty commit.
                        if deadline.is_some_and(|at| at > now_ms()) {
                            continue;
                        }
                        batch.push(WriteCmd::Deadline);
                    }
                    _ = tokio::time::sleep(PROBE_EVERY), if !ready => {
                        self.probe().await;
                        continue;
                    }
                }
                m::writer_queue(batch.len(), rx.len());
                self.run_batch(std::mem::take(&mut batch)).await;
            }
        });
        (handle, task)
    }

    /// When the loop next feeds the engine the time.
    fn next_deadline(&self) -> Option<Millis> {
        self.engine.next_deadline().map(|at| at.max(self.deadlines_held_until))
    }

    async fn run_batch(&mut self, mut batch: Vec<WriteCmd>) {
        // Replies are taken out first, so every caller is answered whatever fails below.
        let mut replies: Vec<Option<Reply>> = batch.iter_mut().map(WriteCmd::take_reply).collect();
        match self.commit(&batch).await {
            Ok(produced) => self.committed(produced, &mut replies),
            Err(e) => {
                self.failed(&e).await;
                if batch.len() == 1 {
                    fail(&batch[0], &mut replies[0], &e);
                } else {
                    // One command's value can fail the whole batch (a database limit): run the
                    // commands again one by one, so only the culprit gets the error.
                    tracing::warn!(commands = batch.len(), "retrying the failed batch's commands one by one");
                    self.isolate(&batch, &mut replies, e).await;
                }
            }
        }
        for (i, cmd) in batch.iter().enumerate() {
            if let WriteCmd::DeleteProject { project, .. } = cmd {
                let result = self.store.delete_project(project).await.map_err(WriteError::store);
                self.engine.remove_project(project);
                self.revisions.remove(project);
                answer(&mut replies[i], result);
            }
        }
        m::sequences(self.engine.executions().map(|e| e.state.as_str()));
    }

    /// Commits each command of a failed batch alone. A failure the database would repeat for
    /// any write (a full disk, a lost connection) ends the retry: the rest get that error.
    async fn isolate(&mut self, batch: &[WriteCmd], replies: &mut [Option<Reply>], first: StoreError) {
        let mut systemic: Option<StoreError> = None;
        for (i, cmd) in batch.iter().enumerate() {
            if let Some(e) = &systemic {
                fail(cmd, &mut replies[i], e);
                continue;
            }
            match self.commit(std::slice::from_ref(cmd)).await {
                Ok(produced) => self.committed(produced, &mut replies[i..=i]),
                Err(e) => {
                    self.failed(&e).await;
                    fail(cmd, &mut replies[i], &e);
                    if !e.is_data_error() {
                        systemic = Some(e);
                    }
                }
            }
        }
        if systemic.is_none() && !first.is_data_error() {
            tracing::info!(error = %first, "the batch's commands committed one by one after the batch failed");
        }
    }

    /// After a commit: publish, answer the callers.
    fn committed(&mut self, mut produced: Produced, replies: &mut [Option<Reply>]) {
        self.health.send_if_modified(|h| std::mem::replace(h, Health::Ready) != Health::Ready);
        self.commits += 1;
        if self.commits.is_multiple_of(CHECKPOINT_EVERY) {
            let _ = self.checkpoint.try_send(()); // one pending request is enough
        }
        if !produced.outgoing.is_empty() {
            m::events_out(produced.outgoing.len());
            let _ = self.dispatch.send(std::mem::take(&mut produced.outgoing));
        }
        for started in &produced.hops {
            m::task_hop(started.elapsed());
        }
        for (reply, cmd_is_delete) in replies.iter_mut().zip(produced.deletes.iter()) {
            if !cmd_is_delete {
                answer(reply, Ok(()));
            }
        }
    }

    /// After a failed commit: nothing of it happened, so the engine is reloaded from the store.
    async fn failed(&mut self, e: &StoreError) {
        tracing::error!(error = %e, "write transaction failed; reloading state from the store");
        self.deadlines_held_until = now_ms() + PROBE_EVERY.as_millis() as Millis;
        if !e.is_data_error() {
            self.health.send_replace(Health::Failing { since_ms: now_ms(), reason: e.to_string() });
        }
        match Self::restore_engine(&self.store, &self.engine_config).await {
            Ok(engine) => {
                self.engine = engine;
                // The restored engine re-derives its deadlines, those the failed batch fired too.
                for (project, commit) in &self.revisions {
                    self.engine.set_revision(project, commit);
                }
            }
            Err(e) => tracing::error!(error = %e, "could not reload state"),
        }
        if let Ok(max) = self.store.max_event_seq().await {
            self.next_seq = max + 1;
        }
    }

    /// While commits fail, a probe write tells when the database takes writes again.
    async fn probe(&mut self) {
        match self.store.probe_write(now_ms()).await {
            Ok(()) => {
                tracing::info!("the database takes writes again; the writer is ready");
                self.health.send_replace(Health::Ready);
            }
            Err(e) => self.health.send_modify(|h| {
                if let Health::Failing { reason, .. } = h {
                    *reason = e.to_string();
                }
            }),
        }
    }

    /// Runs the commands through the engine and commits everything they change in one
    /// transaction. Nothing leaves the writer before the commit succeeded.
    async fn commit(&mut self, batch: &[WriteCmd]) -> Result<Produced, StoreError> {
        let mut out = Produced { deletes: vec![false; batch.len()], ..Produced::default() };
        let mut tx = self.store.begin().await?;
        let incoming: Vec<String> = batch
            .iter()
            .filter_map(|c| match c {
                WriteCmd::Ingest { event, .. } => Some(event.id.clone()),
                _ => None,
            })
            .collect();
        let mut known = tx.existing_event_ids(&incoming).await?;
        let mut w = WriteBatch::default();
        for (i, cmd) in batch.iter().enumerate() {
            let now = now_ms();
            match cmd {
                WriteCmd::Ingest { event, received, .. } => {
                    if !known.insert(event.id.clone()) {
                        continue; // duplicate id: already processed
                    }
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    m::events_in();
                    let time_ms = parse_time(&event.time).unwrap_or(now);
                    self.record(&mut w, event, seq, time_ms);
                    track_standalone_task(&mut w, event, seq, now);
                    out.outgoing.push(Outgoing {
                        event: (**event).clone(),
                        due_ms: now,
                        in_outbox: self.queue(&mut w, event, now),
                    });
                    let effects = self.engine.handle(Input::Event((**event).clone()), now, &mut new_id);
                    if self.apply_effects(&mut w, effects, seq, now, &mut out) {
                        out.hops.push(*received);
                    }
                }
                WriteCmd::Deadline => {
                    let effects = self.engine.handle_timeout(now, &mut new_id);
                    self.apply_effects(&mut w, effects, 0, now, &mut out);
                }
                WriteCmd::Control { project, context, stage, action, .. } => {
                    let input = Input::Control {
                        project: project.clone(),
                        context: context.clone(),
                        stage: stage.clone(),
                        action: *action,
                    };
                    let effects = self.engine.handle(input, now, &mut new_id);
                    self.apply_effects(&mut w, effects, 0, now, &mut out);
                }
                WriteCmd::SetShipyard { project, shipyard } => self.engine.set_shipyard(project, shipyard.clone()),
                WriteCmd::DeleteProject { .. } => out.deletes[i] = true,
                WriteCmd::Delivered(ids) => w.outbox_delete.extend(ids.iter().cloned()),
                WriteCmd::Published(ids) => w.nats_delete.extend(ids.iter().cloned()),
                WriteCmd::SetRevision { project, commit } => {
                    self.engine.set_revision(project, commit);
                    self.revisions.insert(project.clone(), commit.clone());
                }
            }
        }
        if !w.is_empty() {
            tx.apply(&w).await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Turns engine effects into rows of the batch. Returns whether a task `.triggered` went
    /// out immediately (a task hop).
    fn apply_effects(
        &mut self,
        w: &mut WriteBatch,
        effects: Vec<Effect>,
        incoming_seq: i64,
        now: i64,
        out: &mut Produced,
    ) -> bool {
        let mut hop = false;
        for effect in effects {
            match effect {
                Effect::Emit { event, deliver_at, open } => {
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    self.record(w, &event, seq, deliver_at);
                    let in_outbox = self.queue(w, &event, deliver_at);
                    if open {
                        w.open.insert(event.id.clone(), Some(open_row(&event, seq, deliver_at)));
                    }
                    if deliver_at <= now && matches!(EventType::parse(&event.ty), EventType::Task { .. }) {
                        hop = true;
                    }
                    out.outgoing.push(Outgoing { event, due_ms: deliver_at, in_outbox });
                }
                Effect::Open(event) => {
                    w.open.insert(event.id.clone(), Some(open_row(&event, incoming_seq, now)));
                }
                Effect::Close { triggered_id } => {
                    w.open.insert(triggered_id, None);
                }
                Effect::Save(exec) => {
                    w.executions.insert(exec.id.clone(), *exec);
                }
                Effect::SavePauseMarkers(markers) => w.pause_markers = Some(markers),
            }
        }
        hop
    }

    /// Puts an event in the outbox if a push integration subscribes to it; in-process
    /// subscribers and pollers need no outbox (the event log is their source).
    fn queue(&self, w: &mut WriteBatch, event: &KeptnEvent, due_ms: i64) -> bool {
        let targets = self.directory.push_targets(&event.ty, event.project(), event.stage(), event.service());
        if targets.is_empty() {
            return false;
        }
        w.outbox_add.insert(event.id.clone(), due_ms);
        true
    }

    /// Stores the event and updates the project view's `lastEventTypes` and `deployedImage`.
    fn record(&self, w: &mut WriteBatch, event: &KeptnEvent, seq: i64, time_ms: i64) {
        w.events.push((seq, event.clone(), time_ms));
        if self.nats {
            w.nats_add.push((event.id.clone(), seq));
        }
        let Some(scope) = scope_of(event) else { return };
        if event.ty == "sh.keptn.event.deployment.finished" {
            let image_of = |v: &serde_json::Value| {
                v.pointer("/configurationChange/values/image").and_then(|v| v.as_str()).map(str::to_string)
            };
            let image = image_of(&event.data)
                .or_else(|| self.engine.execution_of_task(&event.triggeredid).and_then(|e| image_of(&e.input)));
            if let Some(image) = image {
                w.deployed_images.insert(scope.clone(), image);
            }
        }
        let last = (event.id.clone(), event.shkeptncontext.clone(), event.time.clone());
        w.last_events.insert((scope, event.ty.clone()), last);
    }
}

/// Sleeps until a wall-clock time (ms); a time already past is due now.
async fn sleep_until(at: Option<Millis>) {
    let Some(at) = at else { return std::future::pending().await };
    let wait = u64::try_from(at - now_ms()).unwrap_or(0);
    tokio::time::sleep(std::time::Duration::from_millis(wait)).await
}

/// Runs a database checkpoint whenever the writer asks for one; ends with the writer.
fn spawn_checkpointer(store: Store) -> mpsc::Sender<()> {
    let (tx, mut rx) = mpsc::channel::<()>(1);
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            if let Err(e) = store.checkpoint().await {
                tracing::warn!(error = %e, "checkpoint failed");
            }
        }
    });
    tx
}

fn scope_of(event: &KeptnEvent) -> Option<ScopeKey> {
    let (project, stage, service) = (event.project(), event.stage(), event.service());
    if project.is_empty() || stage.is_empty() || service.is_empty() {
        return None;
    }
    Some(ScopeKey { project: project.into(), stage: stage.into(), service: service.into() })
}

/// A task `.triggered` posted from outside a sequence (lighthouse's `get-sli.triggered`) is open
/// until a `.finished` answers it, so pull-mode integrations find it like a sequence's task. Every
/// task `.finished` closes an open row of its task type; for a sequence's task the engine closes
/// the same row, and a sequence's own `.triggered` (another type) is never touched.
fn track_standalone_task(w: &mut WriteBatch, event: &KeptnEvent, seq: i64, now: i64) {
    if let EventType::Task { task, kind } = EventType::parse(&event.ty) {
        match kind.as_str() {
            "triggered" => {
                w.open.entry(event.id.clone()).or_insert_with(|| Some(open_row(event, seq, now)));
            }
            "finished" if !event.triggeredid.is_empty() => {
                w.close_typed.push((event.triggeredid.clone(), keptn_formats::event_type::task(&task, "triggered")));
            }
            _ => {}
        }
    }
}

fn open_row(event: &KeptnEvent, seq: i64, due_ms: i64) -> OpenRow {
    let scope =
        ScopeKey { project: event.project().into(), stage: event.stage().into(), service: event.service().into() };
    OpenRow { ty: event.ty.clone(), scope, due_ms, seq }
}

pub fn parse_time(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(ty: &str) -> KeptnEvent {
        KeptnEvent::new(new_id(), ty.into(), new_id(), keptn_engine::format_time(now_ms()), json!({}))
    }

    /// A command whose value the database refuses (here: an event type longer than a PostgreSQL
    /// btree entry may be, which the API refuses before; the writer must hold without that) fails
    /// alone: the other commands of its batch commit and their callers hear success.
    #[tokio::test]
    async fn a_refused_value_fails_only_its_own_command() {
        let admin = keptn_store::testing::postgres_admin_url();
        let (url, schema) = match keptn_store::testing::create_schema(&admin).await {
            Ok(s) => s,
            Err(e) if std::env::var_os("CI").is_some() => panic!("PostgreSQL at {admin} unreachable: {e}"),
            Err(e) => return eprintln!("notice: skipping PostgreSQL test, {admin} unreachable: {e}"),
        };
        let store = Store::connect(&url).await.unwrap();
        let (dispatch, mut published) = mpsc::unbounded_channel();
        let mut writer = Writer::load(
            store.clone(),
            keptn_engine::Config::default(),
            dispatch,
            Directory::default(),
            HashMap::new(),
        )
        .await
        .unwrap();
        // Random text: PostgreSQL compresses index entries, so a repeated character would fit.
        let noise: String = (0..250).map(|_| uuid::Uuid::new_v4().simple().to_string()).collect();
        let huge = format!("sh.keptn.event.{noise}.finished");
        let types: Vec<String> =
            (0..10).map(|i| if i == 4 { huge.clone() } else { format!("sh.keptn.event.t{i}.finished") }).collect();
        let (mut batch, mut answers) = (Vec::new(), Vec::new());
        for ty in &types {
            let (reply, rx) = oneshot::channel();
            let ev = event(ty);
            answers.push((ev.id.clone(), rx));
            batch.push(WriteCmd::Ingest { event: Box::new(ev), received: Instant::now(), reply: Some(reply) });
        }
        writer.run_batch(batch).await;
        for (i, (id, rx)) in answers.into_iter().enumerate() {
            let got = rx.await.expect("every caller is answered");
            if i == 4 {
                let e = got.expect_err("the oversized event fails");
                assert_eq!(e.kind, WriteErrorKind::Refused, "{}", e.message);
                assert!(store.get_event(&id).await.unwrap().is_none());
            } else {
                assert!(got.is_ok(), "event {i}: {got:?}");
                assert!(store.get_event(&id).await.unwrap().is_some(), "event {i} is stored");
            }
        }
        let mut out = 0;
        while let Ok(batch) = published.try_recv() {
            out += batch.len();
        }
        assert_eq!(out, 9, "the nine stored events are published, the refused one is not");
        assert_eq!(writer.health.borrow().clone(), Health::Ready, "a refused value is no storage failure");
        let _ = keptn_store::testing::drop_schema(&admin, &schema).await;
    }
}
