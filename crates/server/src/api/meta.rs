//! Health, auth check, metadata, metrics and the OpenAPI document.

use crate::error::ApiError;
use crate::state::Shared;
use crate::writer::Health;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};

pub async fn health() -> Json<Value> {
    Json(json!({ "status": "OK" }))
}

/// Readiness: 200 while the writer commits, 503 with the reason while it cannot (a full disk,
/// a lost database). It recovers by itself once the database takes writes again.
pub async fn ready(State(state): State<Shared>) -> Result<Json<Value>, ApiError> {
    match state.writer.health() {
        Health::Ready => Ok(Json(json!({ "status": "OK" }))),
        Health::Failing { since_ms, reason } => Err(ApiError::unavailable(format!(
            "not ready: the writer cannot commit since {} ({reason}); writes answer 503 until the database \
             takes writes again (free disk space, check the database), then it recovers by itself",
            keptn_engine::format_time(since_ms)
        ))),
    }
}

pub async fn auth() -> Json<Value> {
    Json(json!({}))
}

/// keptn's `metadata`; `bridgeversion` is left out while keptn-rs has no Bridge (keptn's
/// definition makes it optional, and a client must not be told to look for one).
pub async fn metadata() -> Json<Value> {
    Json(json!({
        "namespace": "keptn",
        "keptnlabel": "keptn",
        "keptnversion": env!("CARGO_PKG_VERSION"),
        "shipyardversion": "0.2.0",
        "automaticprovisioning": false,
        "product": "keptn-rs",
    }))
}

pub async fn metrics(State(state): State<Shared>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], include_str!("../../openapi.json"))
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; the API is documented at /api/openapi.json")
}
