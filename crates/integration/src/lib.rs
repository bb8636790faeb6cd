//! The integration contract. An [`Integration`] declares its name, version and default
//! subscriptions and handles one event at a time through a [`Context`], which offers only what
//! keptn's public API offers an integration: send an event, query the datastore, read and write
//! resources at a commit, read its secrets, write error logs. A transport (in-process in the
//! server, remote over HTTP, NATS JetStream) implements [`Context`] and [`ControlPlane`]; the
//! integration cannot tell which one it runs on.

pub mod redact;
pub mod runner;
pub mod subscription;

pub use redact::{Redactor, secret_scopes};

/// A secret's keys and values.
pub type SecretData = std::collections::BTreeMap<String, String>;

pub use subscription::{
    Filter, KubernetesMetadata, Metadata, Registration, Subscription, integration_id, subject_matches,
};

use keptn_formats::KeptnEvent;
use serde_json::Value;
use std::sync::Arc;

/// What can go wrong when an integration talks to the control plane.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ContextError {
    /// The control plane refused the request (bad input, unknown project, ...): retrying the
    /// same request does not help. `status` is the HTTP status keptn's API would answer.
    #[error("{message} (HTTP {status})")]
    Refused { status: u16, message: String },
    /// The control plane could not be reached or is unavailable: retry later.
    #[error("control plane unavailable: {0}")]
    Unavailable(String),
}

impl ContextError {
    /// Whether the same request may succeed later.
    pub fn is_transient(&self) -> bool {
        match self {
            ContextError::Unavailable(_) => true,
            ContextError::Refused { status, .. } => *status >= 500 || *status == 429,
        }
    }
}

pub type ContextResult<T> = Result<T, ContextError>;

/// A datastore query (keptn's `GET /mongodb-datastore/event`): every field set must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventQuery {
    pub keptn_context: Option<String>,
    pub event_id: Option<String>,
    pub ty: Option<String>,
    pub project: Option<String>,
    pub stage: Option<String>,
    pub service: Option<String>,
    /// Leaves out events of invalidated evaluations (keptn's `excludeInvalidated`): those whose
    /// `triggeredid` an `sh.keptn.event.evaluation.invalidated` of the project names.
    pub exclude_invalidated: bool,
    /// Newest first (the datastore's order) instead of oldest first.
    pub newest_first: bool,
    /// Events skipped, in the chosen order, before the first one returned.
    pub offset: usize,
    /// 0 = all of them.
    pub limit: usize,
}

/// Where a resource lives (keptn's resource-service): project, optional stage and service, URI,
/// and the commit to read at (None = the current head).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceAt {
    pub project: String,
    pub stage: Option<String>,
    pub service: Option<String>,
    pub uri: String,
    pub gitcommitid: Option<String>,
}

/// An error log entry (keptn's `POST /controlPlane/v1/log`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogEntry {
    pub integration_id: String,
    pub message: String,
    pub keptn_context: String,
    pub triggered_id: String,
    pub task: String,
}

/// What an integration may do, as keptn's public API offers it.
#[async_trait::async_trait]
pub trait Context: Send + Sync {
    /// Sends an event (`.started`, `.finished`, a new `.triggered`). Its `id` is kept: sending
    /// the same event again is accepted without effect, so answers with ids derived from what
    /// they answer (see [`answer`]) are exactly-once however often a step runs.
    async fn send(&self, event: KeptnEvent) -> ContextResult<()>;
    /// Events from the datastore, oldest first.
    async fn events(&self, query: EventQuery) -> ContextResult<Vec<KeptnEvent>>;
    /// A resource's content; None if there is none at that place and commit.
    async fn resource(&self, at: &ResourceAt) -> ContextResult<Option<Vec<u8>>>;
    /// The URIs of the resources at one place (`at.uri` is ignored) and commit, e.g.
    /// `prometheus/sli.yaml`; None if that project, stage or service does not exist there.
    async fn resources(&self, at: &ResourceAt) -> ContextResult<Option<Vec<String>>>;
    /// Writes resources at one place in one commit (`at.gitcommitid` is ignored).
    async fn put_resources(&self, at: &ResourceAt, files: Vec<(String, Vec<u8>)>, message: &str) -> ContextResult<()>;
    /// All keys of a secret the integration may read (keptn's secret-service secrets; see
    /// [`secret_scopes`] for which); None if there is no such secret it may read. Whatever an
    /// integration reads from here it scrubs from what it sends ([`redact::Redactor`]).
    async fn secret(&self, name: &str) -> ContextResult<Option<SecretData>>;
    /// Records an error log entry for the integration.
    async fn log_error(&self, entry: LogEntry) -> ContextResult<()>;
}

/// What the runner of an integration needs from the control plane besides [`Context`]:
/// registration (keptn's uniform), heartbeats and the open `.triggered` events to catch up on.
#[async_trait::async_trait]
pub trait ControlPlane: Context {
    /// Registers (keptn's upsert rules: same name, namespace and host = same id); returns the id.
    async fn register(&self, registration: Registration) -> ContextResult<String>;
    /// Refreshes `lastseen`; `Ok(None)` if the registration is gone (register again). Returns
    /// the current stored subscriptions, which a user may have edited.
    async fn heartbeat(&self, id: &str) -> ContextResult<Option<Vec<Subscription>>>;
    /// Open `.triggered` events of one type (keptn's `GET /controlPlane/v1/event/triggered/{type}`).
    async fn open_triggered(&self, ty: &str) -> ContextResult<Vec<KeptnEvent>>;
    /// The registration's stored subscriptions, read without a heartbeat (keptn's
    /// `GET /controlPlane/v1/uniform/registration/{id}/subscription`); `Ok(None)` if the
    /// registration is gone. By default a heartbeat answers it.
    async fn subscriptions(&self, id: &str) -> ContextResult<Option<Vec<Subscription>>> {
        self.heartbeat(id).await
    }
    /// The registration's stored subscriptions right now, when the control plane can tell
    /// without a round trip (in-process): an edit then counts from the next event on, not from
    /// the next heartbeat. None: use those of the last heartbeat.
    fn current_subscriptions(&self, _id: &str) -> Option<Vec<Subscription>> {
        None
    }
}

/// An integration: declared by name, version and default subscriptions; handles one event at a
/// time. It keeps no state that must survive a restart: what it needs, it reads through the
/// context, so any replica can take over.
#[async_trait::async_trait]
pub trait Integration: Send + Sync + 'static {
    /// Registration name and `source` of its events, e.g. `lighthouse-service`.
    fn name(&self) -> &'static str;
    fn version(&self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }
    /// Event types of its first registration (no filter); afterwards the stored ones count.
    fn subscriptions(&self) -> &'static [&'static str];
    /// Whether it takes an event once per matching subscription, as keptn's distributor
    /// delivers it: the runner then hands it one copy per subscription that matches, with
    /// `data.temporaryData.distributor.subscriptionID` set (keptn's webhook-service routes by
    /// it). Default: once per event, whatever matched.
    fn per_subscription(&self) -> bool {
        false
    }
    /// Handles one event it subscribed to. An error makes the runner offer the event again later
    /// (when `is_transient`) or log it.
    async fn handle(&self, event: Arc<KeptnEvent>, ctx: Arc<dyn Context>) -> ContextResult<()>;
}

/// An answer to `triggered` from integration `source`: same context, `triggeredid` and
/// `gitcommitid`, `time` left for the control plane to fill.
///
/// The id is derived from the answered event, the source and the type (and `discriminator`, for
/// several events of one type answering one event), so an answer repeated by another replica or
/// after a restart has the same id and the control plane keeps one.
pub fn answer(source: &str, triggered: &KeptnEvent, ty: String, discriminator: &str, data: Value) -> KeptnEvent {
    // Without a discriminator the name is the one keptn-rs used before the contract, so ids of
    // answers stay the same across an upgrade.
    let name = match discriminator {
        "" => format!("{}/{source}/{ty}", triggered.id),
        d => format!("{}/{source}/{ty}/{d}", triggered.id),
    };
    let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string();
    let mut event = KeptnEvent::new(id, ty, triggered.shkeptncontext.clone(), String::new(), data);
    event.source = source.into();
    event.triggeredid = triggered.id.clone();
    event.gitcommitid = triggered.gitcommitid.clone();
    event
}

/// keptn's common data block of an event: project, stage, service and labels.
pub fn common_data(event: &KeptnEvent) -> Value {
    let mut data =
        serde_json::json!({ "project": event.project(), "stage": event.stage(), "service": event.service() });
    if let Some(labels) = event.data.get("labels") {
        data["labels"] = labels.clone();
    }
    data
}
