//! The integration contract in-process: the server is the [`Context`] and [`ControlPlane`] of
//! the integrations it runs itself, over its own state with no HTTP round trip, and the
//! dispatcher's bus is their [`Feed`]. Each call does what the matching API request does (the
//! same door for events, the same repository and datastore calls), so an integration behaves
//! the same here as against a remote control plane.
//!
//! Shutdown: the runner tasks [`start`] returns hold the app state while they run (a call in
//! progress holds it until it returns) and must be aborted before the server waits for the
//! writer to drain, as `lib.rs` does with the built-ins' tasks. The context itself holds the
//! state only weakly, so an integration that keeps its context around does not keep a stopping
//! server alive: its calls then fail as unavailable.

use crate::config_sync::{read_fresh, refresh_in_background};
use crate::error::ApiError;
use crate::ingest::{Ids, ingest};
use crate::state::{AppState, Shared};
use axum::http::StatusCode;
use keptn_configrepo::{ConfigRepo, Scope};
use keptn_formats::KeptnEvent;
use keptn_integration::runner::{self, Delivery, Feed};
use keptn_integration::{
    Context, ContextError, ContextResult, ControlPlane, EventQuery, Integration, LogEntry, Registration, ResourceAt,
    Subscription,
};
use keptn_store::OpenTriggeredQuery;
use serde_json::{Value, json};
use std::sync::{Arc, Weak};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::JoinHandle;

/// keptn's event type whose `triggeredid` marks an evaluation as invalidated.
const INVALIDATED: &str = "sh.keptn.event.evaluation.invalidated";

/// Built-in integrations register like this (keptn's uniform shows them with these values).
const HOSTNAME: &str = "built-in";
const LOCATION: &str = "control-plane";
const NAMESPACE: &str = "keptn";
/// Events a built-in handles at the same time.
const IN_PROCESS_CONCURRENCY: usize = 64;

/// Registers the integrations and starts one runner each, fed by the bus. The bus receivers
/// are subscribed before this returns, so no event committed afterwards is missed; call it
/// before the dispatcher runs. Abort the returned tasks at shutdown (see the module docs).
pub async fn start(
    state: &Shared,
    bus: &broadcast::Sender<Arc<KeptnEvent>>,
    integrations: Vec<Arc<dyn Integration>>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::with_capacity(integrations.len());
    for integration in integrations {
        let feed = BusFeed::new(bus.subscribe());
        let plane = Arc::new(InProcess::serving(state, integration.name()));
        let registration = registration(integration.as_ref());
        // Registered before it returns, as the API lists it right after start; the runner's own
        // registration then refreshes the same one.
        if let Err(e) = plane.register(registration.clone()).await {
            tracing::error!(integration = integration.name(), error = %e, "could not register the integration; retrying");
        }
        // More at once than a remote runner: a step here mostly waits for a group commit, and
        // sixteen waiting steps left the writer's batches (and the cores) half empty.
        let runner = runner::Runner::new(integration, plane, registration).concurrency(IN_PROCESS_CONCURRENCY);
        tasks.push(tokio::spawn(runner.run(Box::new(feed))));
    }
    tasks
}

/// The registration of an integration the server runs itself.
pub fn registration(integration: &dyn Integration) -> Registration {
    let (name, version) = (integration.name(), integration.version());
    runner::registration(name, version, HOSTNAME, LOCATION, NAMESPACE, integration.subscriptions())
}

/// The dispatcher's in-process bus as a feed: committed events as they go out; a lagging
/// receiver asks the runner to read the open events again.
pub struct BusFeed {
    rx: broadcast::Receiver<Arc<KeptnEvent>>,
}

impl BusFeed {
    pub fn new(rx: broadcast::Receiver<Arc<KeptnEvent>>) -> BusFeed {
        BusFeed { rx }
    }
}

#[async_trait::async_trait]
impl Feed for BusFeed {
    async fn next(&mut self) -> Option<Delivery> {
        match self.rx.recv().await {
            Ok(event) => Some(Delivery::Event { event, ack: None }),
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "event bus lagged; reading open events from the store");
                Some(Delivery::Lagged)
            }
            Err(RecvError::Closed) => None,
        }
    }
}

/// The server as an in-process integration's context and control plane.
pub struct InProcess {
    state: Weak<AppState>,
    /// The integration it serves, whose scopes its secrets come from; None reads no secret.
    integration: Option<String>,
}

impl InProcess {
    /// The context of the integration named `integration`.
    pub fn serving(state: &Shared, integration: &str) -> InProcess {
        InProcess { state: Arc::downgrade(state), integration: Some(integration.to_string()) }
    }

    /// A context serving no integration in particular (tests' control plane): it reads no secret.
    pub fn from_weak(state: Weak<AppState>) -> InProcess {
        InProcess { state, integration: None }
    }

    fn state(&self) -> ContextResult<Shared> {
        self.state.upgrade().ok_or_else(|| ContextError::Unavailable("the server is stopping".into()))
    }
}

/// An API error as the HTTP API would answer it: 503 is "retry later", every other status
/// counts as the control plane's answer (≥ 500 still transient).
fn refused(e: ApiError) -> ContextError {
    if e.status == StatusCode::SERVICE_UNAVAILABLE {
        ContextError::Unavailable(e.message)
    } else {
        ContextError::Refused { status: e.status.as_u16(), message: e.message }
    }
}

/// The repository scope of a place; a service needs its stage.
fn scope(at: &ResourceAt) -> ContextResult<(Option<String>, Option<String>)> {
    match (&at.stage, &at.service) {
        (None, Some(service)) => Err(ContextError::Refused {
            status: 400,
            message: format!("service {service:?} needs its stage: resources live at project, stage or service level"),
        }),
        (stage, service) => Ok((stage.clone(), service.clone())),
    }
}

fn repo_scope<'a>(stage: &'a Option<String>, service: &'a Option<String>) -> Scope<'a> {
    match (stage, service) {
        (Some(stage), Some(service)) => Scope::Service(stage, service),
        (Some(stage), None) => Scope::Stage(stage),
        _ => Scope::Project,
    }
}

fn events_of(rows: Vec<Value>) -> Vec<KeptnEvent> {
    rows.into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect()
}

#[async_trait::async_trait]
impl Context for InProcess {
    async fn send(&self, event: KeptnEvent) -> ContextResult<()> {
        let state = self.state()?;
        // The event's id is kept, so sending it again is accepted without effect.
        let ids = if event.id.is_empty() { Ids::Assign } else { Ids::Keep(event.id.clone()) };
        ingest(&state, event, ids).await.map(drop).map_err(refused)
    }

    async fn events(&self, query: EventQuery) -> ContextResult<Vec<KeptnEvent>> {
        let state = self.state()?;
        let mut q = keptn_store::EventQuery {
            project: query.project,
            stage: query.stage,
            service: query.service,
            context: query.keptn_context,
            ty: query.ty,
            event_id: query.event_id,
            exclude_triggered_by: query.exclude_invalidated.then(|| INVALIDATED.to_string()),
            ..keptn_store::EventQuery::default()
        };
        // The store lists newest first (as keptn's datastore); oldest first needs all of them.
        if query.newest_first {
            q.offset = query.offset as i64;
            q.limit = query.limit as i64;
        }
        // No total: an integration pages by offset and limit (one query, not two).
        let events = state.store.list_events(&q).await.map_err(|e| refused(e.into()))?;
        if query.newest_first {
            return Ok(events);
        }
        let mut events: Vec<KeptnEvent> = events.into_iter().rev().skip(query.offset).collect();
        if query.limit > 0 {
            events.truncate(query.limit);
        }
        Ok(events)
    }

    async fn resource(&self, at: &ResourceAt) -> ContextResult<Option<Vec<u8>>> {
        let state = self.state()?;
        let (stage, service) = scope(at)?;
        let (project, uri) = (at.project.clone(), at.uri.trim_start_matches('/').to_string());
        let commit = at.gitcommitid.clone().filter(|c| !c.is_empty());
        let pinned = commit.is_some();
        let read = move |r: &ConfigRepo| {
            r.read(&project, repo_scope(&stage, &service), &uri, commit.as_deref()).map(|(content, _)| content)
        };
        // As `GET …/resource/{uri}`: at a commit the repository fetches a missing revision
        // itself; at the head a miss asks a stale upstream first.
        let found = if pinned {
            crate::repo::repo(&state, read).await
        } else {
            let found = read_fresh(&state, &at.project, read).await;
            refresh_in_background(&state, &at.project);
            found
        };
        match found {
            Ok(content) => Ok(Some(content)),
            Err(e) if e.status == StatusCode::NOT_FOUND => Ok(None),
            Err(e) => Err(refused(e)),
        }
    }

    async fn resources(&self, at: &ResourceAt) -> ContextResult<Option<Vec<String>>> {
        let state = self.state()?;
        let (stage, service) = scope(at)?;
        let project = at.project.clone();
        let commit = at.gitcommitid.clone().filter(|c| !c.is_empty());
        let listed = crate::repo::repo(&state, move |r| {
            let head = match commit {
                Some(commit) => commit,
                None => r.head(&project)?,
            };
            r.list(&project, repo_scope(&stage, &service), Some(&head))
        })
        .await;
        refresh_in_background(&state, &at.project);
        match listed {
            Ok(uris) => Ok(Some(uris)),
            Err(e) if e.status == StatusCode::NOT_FOUND => Ok(None),
            Err(e) => Err(refused(e)),
        }
    }

    async fn put_resources(&self, at: &ResourceAt, files: Vec<(String, Vec<u8>)>, message: &str) -> ContextResult<()> {
        let state = self.state()?;
        let (stage, service) = scope(at)?;
        if files.is_empty() {
            // As the resource API answers an empty list.
            return Err(ContextError::Refused { status: 400, message: "no resources to write".into() });
        }
        crate::config_sync::write_resources(&state, at.project.clone(), stage, service, files, message.to_string())
            .await
            .map(drop)
            .map_err(refused)
    }

    async fn secret(&self, name: &str) -> ContextResult<Option<keptn_integration::SecretData>> {
        let Some(integration) = &self.integration else { return Ok(None) };
        let state = self.state()?;
        crate::secrets::read_for(&state, integration, name).await.map_err(|e| match e.kind {
            crate::secrets::SecretErrorKind::Unavailable => ContextError::Unavailable(e.message),
            _ => ContextError::Refused { status: 400, message: e.message },
        })
    }

    async fn log_error(&self, entry: LogEntry) -> ContextResult<()> {
        let state = self.state()?;
        let log = json!({
            "integrationid": entry.integration_id,
            "message": entry.message,
            "shkeptncontext": entry.keptn_context,
            "triggeredid": entry.triggered_id,
            "task": entry.task,
        });
        crate::registrations::insert_logs(&state, vec![log]).await.map_err(refused)
    }
}

#[async_trait::async_trait]
impl ControlPlane for InProcess {
    async fn register(&self, registration: Registration) -> ContextResult<String> {
        let state = self.state()?;
        crate::registrations::upsert_registration(&state, registration).await.map(|(_, id)| id).map_err(refused)
    }

    async fn heartbeat(&self, id: &str) -> ContextResult<Option<Vec<Subscription>>> {
        let state = self.state()?;
        match crate::registrations::heartbeat(&state, id).await {
            // The heartbeat saved and reloaded the directory: these are the stored ones.
            Ok(_) => Ok(state.directory.subscriptions_of(id)),
            Err(e) if e.status == StatusCode::NOT_FOUND => Ok(None),
            Err(e) => Err(refused(e)),
        }
    }

    fn current_subscriptions(&self, id: &str) -> Option<Vec<Subscription>> {
        self.state.upgrade()?.directory.subscriptions_of(id)
    }

    async fn open_triggered(&self, ty: &str) -> ContextResult<Vec<KeptnEvent>> {
        let state = self.state()?;
        let q = OpenTriggeredQuery {
            ty: ty.to_string(),
            project: None,
            stage: None,
            service: None,
            event_id: None,
            now_ms: i64::MAX, // not-yet-due ones too: the runner wakes up when they fall due
            offset: 0,
            limit: 0,
        };
        let (rows, _) = state.store.open_triggered(&q).await.map_err(|e| refused(e.into()))?;
        Ok(events_of(rows))
    }
}
