//! The push stream of `.triggered` events for remote integrations (a keptn-rs addition; keptn's
//! remote execution plane polls `GET /event/triggered/{type}`). Replicas of one registration
//! share the work: each event goes to one connected replica, which acks it after handling;
//! the unacked events of a replica whose stream ends go to another one (`stream::shell`).

use super::Shared;
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::stream::Connection;
use axum::Json;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use keptn_formats::event::ID_MAX;
use serde::Deserialize;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::time::Duration;

/// Often enough that a dead peer or an idle proxy is noticed within seconds.
const KEEPALIVE: Duration = Duration::from_secs(5);

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct StreamParams {
    integration_id: Option<String>,
    replica: Option<String>,
}

fn not_registered(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "no integration {id} is registered; register it with POST /api/controlPlane/v1/uniform/registration first"
    ))
}

fn required(field: &str, value: Option<&str>) -> ApiResult<String> {
    let value = value.map(str::trim).filter(|v| !v.is_empty()).ok_or_else(|| {
        ApiError::bad_request(format!(
            "{field} is required: the id POST /api/controlPlane/v1/uniform/registration returned"
        ))
    })?;
    checked(field, value)
}

fn checked(field: &str, value: &str) -> ApiResult<String> {
    keptn_formats::event::check_length(field, value, ID_MAX).map_err(ApiError::bad_request)?;
    crate::body::no_nul(field, value)?;
    Ok(value.to_string())
}

/// The registration's name (the group its replicas share work in).
fn group_of(state: &Shared, integration: &str) -> ApiResult<String> {
    state.directory.name_of(integration).ok_or_else(|| not_registered(integration))
}

fn member(integration: &str, replica: &str) -> String {
    format!("{integration}/{replica}")
}

/// `event: triggered` (a `.triggered`) or `event: event` (another subscribed event, e.g.
/// `get-sli.finished`), `id: <event id>`, `data: <the event>`.
fn frame(event: &keptn_formats::KeptnEvent) -> Event {
    let data = serde_json::to_string(event).unwrap_or_default();
    let name = if event.ty.ends_with(".triggered") { "triggered" } else { "event" };
    let frame = Event::default().event(name).data(data);
    // An id with a line break cannot be an SSE id line (the data carries it anyway).
    if event.id.contains(['\n', '\r']) { frame } else { frame.id(&event.id) }
}

/// `GET /api/controlPlane/v1/event/stream?integrationId=ID&replica=R`.
pub async fn open(
    State(state): State<Shared>,
    Query(p): Query<StreamParams>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let integration = required("integrationId", p.integration_id.as_deref())?;
    let replica = match p.replica.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) => checked("replica", r)?,
        None => uuid::Uuid::new_v4().to_string(),
    };
    let group = group_of(&state, &integration)?;
    let conn = state.stream.connect(&group, &integration, &member(&integration, &replica));
    let frames = stream::unfold(conn, |mut conn: Connection| async move {
        let event = conn.events.recv().await?;
        Some((Ok(frame(&event)), conn))
    });
    Ok(Sse::new(frames).keep_alive(KeepAlive::new().interval(KEEPALIVE)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AckBody {
    integration_id: String,
    replica: String,
    ids: Vec<String>,
}

/// `POST /api/controlPlane/v1/event/stream/ack` `{"integrationId","replica","ids"}` → `{}`.
pub async fn ack(State(state): State<Shared>, JsonBody(body): JsonBody<AckBody>) -> ApiResult<Json<Value>> {
    let integration = required("integrationId", Some(&body.integration_id))?;
    let replica = body.replica.trim();
    if replica.is_empty() {
        return Err(ApiError::bad_request("replica is required: the replica the events were streamed to"));
    }
    let replica = checked("replica", replica)?;
    for (i, id) in body.ids.iter().enumerate() {
        checked(&format!("ids[{i}]"), id)?;
    }
    let group = group_of(&state, &integration)?;
    state.stream.ack(&group, &member(&integration, &replica), body.ids);
    Ok(Json(json!({})))
}
