//! Live sequence state for `keptn trigger … --watch` and the Bridge: a Server-Sent Events stream
//! that sends the context's state once at connect and again after every committed event of that
//! context (and after pause/resume, which emit no event). Driven by the event bus, never polled.

use super::sequence::require_project;
use crate::error::ApiResult;
use crate::state::Shared;
use crate::views;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use keptn_formats::KeptnEvent;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::broadcast::{self, error::RecvError};

/// `{"event", "state", "sequenceExecutions"}`: the event that caused this frame (null for the
/// first frame and for control changes), keptn's sequence state document (null until the
/// sequence exists) and its sequence-execution documents.
async fn snapshot(state: &Shared, project: &str, context: &str, event: Option<&KeptnEvent>) -> ApiResult<Value> {
    let execs = state.store.executions_of_contexts(project, &[context.to_string()]).await?;
    let docs: Vec<Value> = execs.iter().map(|e| views::execution_doc(e, &state.directory)).collect();
    let seq_state = views::sequence_state(execs.iter().collect());
    Ok(json!({ "event": event, "state": seq_state, "sequenceExecutions": docs }))
}

fn frame(result: ApiResult<Value>) -> Event {
    match result {
        Ok(v) => Event::default().event("state").data(v.to_string()),
        Err(e) => {
            Event::default().event("error").data(json!({ "code": e.status.as_u16(), "message": e.message }).to_string())
        }
    }
}

pub async fn sequence(
    State(state): State<Shared>,
    Path((project, context)): Path<(String, String)>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    require_project(&state, &project)?;
    // Subscribe before the first snapshot so no change between the two is missed.
    let events = state.bus.subscribe();
    let controls = state.controls.subscribe();
    let first = snapshot(&state, &project, &context, None).await?;
    let init = Watcher { first: Some(first), events, controls, state, project, context };
    let frames = stream::unfold(init, |mut w| async move {
        if let Some(v) = w.first.take() {
            return Some((Ok(frame(Ok(v))), w));
        }
        let event = w.next_change().await?;
        let f = frame(snapshot(&w.state, &w.project, &w.context, event.as_deref()).await);
        Some((Ok(f), w))
    });
    Ok(Sse::new(frames).keep_alive(KeepAlive::default()))
}

struct Watcher {
    first: Option<Value>,
    events: broadcast::Receiver<Arc<KeptnEvent>>,
    controls: broadcast::Receiver<String>,
    state: Shared,
    project: String,
    context: String,
}

impl Watcher {
    /// Waits for the next change of this context: `Some(Some(event))` for a committed event,
    /// `Some(None)` for a change without one (or missed changes), `None` when the server stops.
    async fn next_change(&mut self) -> Option<Option<Arc<KeptnEvent>>> {
        loop {
            tokio::select! {
                r = self.events.recv() => match r {
                    Ok(e) if e.shkeptncontext == self.context => return Some(Some(e)),
                    Ok(_) => {}
                    // Missed events: the next snapshot is current anyway.
                    Err(RecvError::Lagged(_)) => return Some(None),
                    Err(RecvError::Closed) => return None,
                },
                r = self.controls.recv() => match r {
                    Ok(c) if c == self.context => return Some(None),
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    }
}
