//! The one door for events: `POST /api/v1/event`, built-in integrations, and (later) NATS all
//! hand their events to `ingest`, which checks them the same way, fills keptn's envelope
//! defaults and runs them through the writer. Nothing else creates incoming events.

use crate::body::no_nul;
use crate::clock::now_ms;
use crate::error::{ApiError, ApiResult};
use crate::state::Shared;
use keptn_engine::format_time;
use keptn_formats::KeptnEvent;
use keptn_formats::event_type::EventType;
use serde_json::{Value, json};

pub const API_SOURCE: &str = "https://github.com/keptn/keptn/api";

/// The request header that makes a POST idempotent: its value becomes the event's id, and a
/// repeat with the same key is accepted without effect (keptn-rs addition; keptn replaces ids).
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Whose id the stored event carries.
#[derive(Debug, Clone)]
pub enum Ids {
    /// A new id, as keptn's API does: sending the same event twice runs it twice.
    Assign,
    /// This id: a repeat (an integration answering again after a restart, a retried request)
    /// is dropped by the writer.
    Keep(String),
}

/// keptn keeps a UUID context, derives a stable UUID from any other string, and makes one up
/// when none is given.
fn keptn_context(given: &str) -> String {
    if given.is_empty() {
        return uuid::Uuid::now_v7().to_string();
    }
    match uuid::Uuid::parse_str(given) {
        Ok(u) => u.to_string(),
        Err(_) => uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, given.as_bytes()).to_string(),
    }
}

/// Parses a structured-mode CloudEvent body.
pub fn parse(body: Value) -> ApiResult<KeptnEvent> {
    if !body.is_object() {
        return Err(ApiError::bad_request("the event must be a JSON object (a CloudEvent in structured mode)"));
    }
    serde_json::from_value(body).map_err(|e| ApiError::bad_request(format!("not a keptn CloudEvent: {e}")))
}

/// Checks an incoming event the way the control plane needs it, and fills keptn's defaults.
pub fn prepare(state: &Shared, mut event: KeptnEvent, ids: Ids) -> ApiResult<KeptnEvent> {
    if event.ty.is_empty() {
        return Err(ApiError::bad_request("type is required, e.g. sh.keptn.event.dev.delivery.triggered"));
    }
    if !event.data.is_object() {
        return Err(ApiError::bad_request("data is required and must be an object with project, stage and service"));
    }
    for (field, value) in [
        ("type", event.ty.as_str()),
        ("source", &event.source),
        ("triggeredid", &event.triggeredid),
        ("data.project", event.project()),
        ("data.stage", event.stage()),
        ("data.service", event.service()),
    ] {
        no_nul(field, value)?;
    }
    event.id = match ids {
        Ids::Assign => uuid::Uuid::now_v7().to_string(),
        Ids::Keep(id) => {
            no_nul("id", &id)?;
            id
        }
    };
    event.time = format_time(now_ms());
    event.shkeptncontext = keptn_context(&event.shkeptncontext);
    if event.source.is_empty() {
        event.source = API_SOURCE.into();
    }
    if event.specversion.is_empty() {
        event.specversion = "1.0".into();
    }
    if event.datacontenttype.is_none() {
        event.datacontenttype = Some("application/json".into());
    }
    // What cannot be stored is refused here, the same on every database, before it reaches the
    // writer (where it would fail the batch it shares with other clients' events).
    event.check_limits().map_err(ApiError::bad_request)?;
    match EventType::parse(&event.ty) {
        EventType::Sequence { stage, kind, .. } if kind == "triggered" => {
            for field in ["project", "service"] {
                if event.data.get(field).and_then(Value::as_str).unwrap_or("").is_empty() {
                    return Err(ApiError::bad_request(format!("data.{field} is required to trigger a sequence")));
                }
            }
            match event.stage() {
                "" => event.data["stage"] = json!(stage),
                s if s != stage => {
                    return Err(ApiError::bad_request(format!(
                        "data.stage {s:?} does not match the stage {stage:?} in the event type"
                    )));
                }
                _ => {}
            }
        }
        EventType::Task { kind, .. } if (kind == "started" || kind == "finished") && event.triggeredid.is_empty() => {
            return Err(ApiError::bad_request(format!(
                "triggeredid is required on a .{kind} event: set it to the id of the .triggered event it answers"
            )));
        }
        _ => {}
    }
    let catalog = state.catalog.read().expect("catalog");
    catalog.check_scope(event.project(), event.stage(), event.service()).map_err(ApiError::not_found)?;
    Ok(event)
}

/// Checks the event and stores it durably (it runs in the same commit); returns its
/// keptnContext once committed.
pub async fn ingest(state: &Shared, event: KeptnEvent, ids: Ids) -> ApiResult<String> {
    let event = prepare(state, event, ids)?;
    let context = event.shkeptncontext.clone();
    if let EventType::Sequence { kind, .. } = EventType::parse(&event.ty)
        && kind == "triggered"
    {
        crate::config_sync::refresh_before_sequence(state, event.project()).await;
    }
    state.writer.ingest(event).await?;
    Ok(context)
}

/// `ingest` for a JSON body (HTTP, NATS).
pub async fn ingest_json(state: &Shared, body: Value, ids: Ids) -> ApiResult<String> {
    ingest(state, parse(body)?, ids).await
}
