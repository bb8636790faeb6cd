//! keptn's secret-service API (`/api/secrets/v1`): scopes, and secrets listed with their keys
//! only — values go in, never out.

use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::secrets::{self, SecretError, SecretErrorKind};
use crate::state::Shared;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use keptn_store::SecretListing;
use serde::Deserialize;
use serde_json::{Value, json};

impl From<SecretError> for ApiError {
    fn from(e: SecretError) -> ApiError {
        let status = match e.kind {
            SecretErrorKind::Invalid => StatusCode::BAD_REQUEST,
            SecretErrorKind::NotFound => StatusCode::NOT_FOUND,
            SecretErrorKind::Conflict => StatusCode::CONFLICT,
            SecretErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError::new(status, e.message)
    }
}

fn shown(s: &SecretListing) -> Value {
    json!({ "name": s.name, "scope": s.scope, "keys": s.keys })
}

/// `GET /scope`
pub async fn scopes() -> Json<Value> {
    Json(json!({ "scopes": secrets::scopes() }))
}

#[derive(Deserialize, Default)]
pub struct Which {
    name: Option<String>,
    scope: Option<String>,
}

/// `GET /secret?name=&scope=`: keptn's `{"Secrets": [...]}` (capital S).
pub async fn list(State(state): State<Shared>, Query(q): Query<Which>) -> ApiResult<Json<Value>> {
    let all = secrets::list(&state, q.name.as_deref(), q.scope.as_deref()).await?;
    Ok(Json(json!({ "Secrets": all.iter().map(shown).collect::<Vec<_>>() })))
}

/// `POST /secret` → 201 with the secret's name, scope and keys.
pub async fn create(
    State(state): State<Shared>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let secret = secrets::parse_secret(&body)?;
    let created = secrets::create(&state, &secret).await?;
    Ok((StatusCode::CREATED, Json(shown(&created))))
}

/// `PUT /secret` → 200; 404 if there is none to update.
pub async fn update(State(state): State<Shared>, JsonBody(body): JsonBody<Value>) -> ApiResult<Json<Value>> {
    let secret = secrets::parse_secret(&body)?;
    Ok(Json(shown(&secrets::update(&state, &secret).await?)))
}

/// `DELETE /secret?name=&scope=`
pub async fn delete(State(state): State<Shared>, Query(q): Query<Which>) -> ApiResult<Json<Value>> {
    secrets::delete(&state, q.name.as_deref(), q.scope.as_deref()).await?;
    Ok(Json(json!({})))
}
