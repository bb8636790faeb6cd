//! An in-memory control plane for unit tests of the integrations: it stores what they send
//! (keeping the first event of an id, as the real one does), answers datastore queries and
//! serves resources. Commits are not modelled: every read is at the head.

use keptn_formats::KeptnEvent;
use keptn_integration::{Context, ContextError, ContextResult, EventQuery, LogEntry, ResourceAt};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

type Place = (String, Option<String>, Option<String>);
/// A commit written through `put_resources`: place, files and message.
type Commit = (Place, Vec<(String, Vec<u8>)>, String);

#[derive(Default)]
struct State {
    events: Vec<KeptnEvent>,
    sent: Vec<KeptnEvent>,
    files: BTreeMap<(Place, String), Vec<u8>>,
    places: BTreeSet<Place>,
    fail_sends: Option<ContextError>,
    queries: Vec<EventQuery>,
    reads: usize,
    commits: Vec<Commit>,
    /// Secrets the integrations may read (the job runner's tests).
    secrets: BTreeMap<String, keptn_integration::SecretData>,
}

#[derive(Default)]
pub struct Fake {
    state: Mutex<State>,
}

fn place_of(at: &ResourceAt) -> Place {
    (at.project.clone(), at.stage.clone(), at.service.clone())
}

impl Fake {
    pub fn new() -> Arc<Fake> {
        Arc::new(Fake::default())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Stores an event as if someone else had sent it (its time filled when empty).
    pub fn store(&self, mut event: KeptnEvent) {
        if event.time.is_empty() {
            event.time = keptn_engine::format_time(crate::now_ms());
        }
        self.state().events.push(event);
    }

    /// The events the integrations sent (duplicates of an id dropped), in order.
    pub fn sent(&self) -> Vec<KeptnEvent> {
        self.state().sent.clone()
    }

    /// Makes every send fail with `error` (None: succeed again).
    pub fn fail_sends(&self, error: impl Into<Option<ContextError>>) {
        self.state().fail_sends = error.into();
    }

    /// Creates the project, stage or service (and those above it).
    pub fn place(&self, project: &str, stage: Option<&str>, service: Option<&str>) {
        let mut state = self.state();
        state.places.insert((project.into(), None, None));
        if let Some(stage) = stage {
            state.places.insert((project.into(), Some(stage.into()), None));
            if let Some(service) = service {
                state.places.insert((project.into(), Some(stage.into()), Some(service.into())));
            }
        }
    }

    /// Writes a resource at one place (which is created).
    pub fn file(&self, project: &str, stage: Option<&str>, service: Option<&str>, uri: &str, content: &str) {
        self.place(project, stage, service);
        let place = (project.to_string(), stage.map(String::from), service.map(String::from));
        self.state().files.insert((place, uri.into()), content.as_bytes().to_vec());
    }

    /// The datastore queries made so far.
    pub fn queries(&self) -> Vec<EventQuery> {
        self.state().queries.clone()
    }

    /// How many resource contents and listings were read so far.
    pub fn reads(&self) -> usize {
        self.state().reads
    }

    /// The commits written through `put_resources`: place, files and message.
    pub fn commits(&self) -> Vec<Commit> {
        self.state().commits.clone()
    }
}

#[async_trait::async_trait]
impl Context for Fake {
    async fn send(&self, mut event: KeptnEvent) -> ContextResult<()> {
        let mut state = self.state();
        if let Some(error) = &state.fail_sends {
            return Err(error.clone());
        }
        if state.events.iter().any(|e| e.id == event.id) {
            return Ok(());
        }
        if event.time.is_empty() {
            event.time = keptn_engine::format_time(crate::now_ms());
        }
        state.events.push(event.clone());
        state.sent.push(event);
        Ok(())
    }

    async fn events(&self, q: EventQuery) -> ContextResult<Vec<KeptnEvent>> {
        let mut state = self.state();
        state.queries.push(q.clone());
        let invalidated: BTreeSet<String> = state
            .events
            .iter()
            .filter(|e| e.ty == "sh.keptn.event.evaluation.invalidated")
            .map(|e| e.triggeredid.clone())
            .collect();
        let is = |want: &Option<String>, got: &str| want.as_deref().is_none_or(|w| w == got);
        let mut found: Vec<KeptnEvent> = state
            .events
            .iter()
            .filter(|e| {
                is(&q.keptn_context, &e.shkeptncontext)
                    && is(&q.event_id, &e.id)
                    && is(&q.ty, &e.ty)
                    && is(&q.project, e.project())
                    && is(&q.stage, e.stage())
                    && is(&q.service, e.service())
                    && !(q.exclude_invalidated && invalidated.contains(&e.triggeredid))
            })
            .cloned()
            .collect();
        if q.newest_first {
            found.reverse();
        }
        let found = found.into_iter().skip(q.offset);
        Ok(if q.limit == 0 { found.collect() } else { found.take(q.limit).collect() })
    }

    async fn resource(&self, at: &ResourceAt) -> ContextResult<Option<Vec<u8>>> {
        let mut state = self.state();
        state.reads += 1;
        Ok(state.files.get(&(place_of(at), at.uri.clone())).cloned())
    }

    async fn resources(&self, at: &ResourceAt) -> ContextResult<Option<Vec<String>>> {
        let mut state = self.state();
        state.reads += 1;
        let place = place_of(at);
        if !state.places.contains(&place) {
            return Ok(None);
        }
        Ok(Some(state.files.keys().filter(|(p, _)| *p == place).map(|(_, uri)| uri.clone()).collect()))
    }

    async fn put_resources(&self, at: &ResourceAt, files: Vec<(String, Vec<u8>)>, message: &str) -> ContextResult<()> {
        let mut state = self.state();
        let place = place_of(at);
        for (uri, content) in &files {
            state.files.insert((place.clone(), uri.clone()), content.clone());
        }
        state.places.insert(place.clone());
        state.commits.push((place, files, message.to_string()));
        Ok(())
    }

    async fn secret(&self, name: &str) -> ContextResult<Option<keptn_integration::SecretData>> {
        Ok(self.state().secrets.get(name).cloned())
    }

    async fn log_error(&self, _entry: LogEntry) -> ContextResult<()> {
        Ok(())
    }
}

// Secrets (the webhook's and the job runner's tests).
impl Fake {
    /// Creates a secret the integrations may read.
    pub fn put_secret(&self, name: &str, data: &[(&str, &str)]) {
        let data = data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.state().secrets.insert(name.into(), data);
    }
}
