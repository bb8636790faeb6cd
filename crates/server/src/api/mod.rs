//! The HTTP API: keptn's paths and shapes, thin handlers over the store, catalog and writer.

mod evaluation;
mod events;
mod meta;
mod paging;
mod project;
mod resource;
mod secrets;
mod sequence;
mod stream;
mod uniform;
mod watch;

use crate::error::ApiError;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};

use crate::state::Shared;

pub fn router(state: Shared, max_body_bytes: usize) -> Router {
    let cp = "/api/controlPlane/v1";
    let authed = Router::new()
        .route("/api/v1/auth", post(meta::auth))
        .route("/api/v1/metadata", get(meta::metadata))
        .route("/api/v1/event", post(events::post_event))
        .route("/api/mongodb-datastore/event", get(events::datastore_events))
        .route("/api/mongodb-datastore/event/type/{event_type}", get(events::datastore_events_by_type))
        .route(&format!("{cp}/project"), get(project::list).post(project::create).put(project::update))
        .route(&format!("{cp}/project/{{project}}"), get(project::get_one).delete(project::delete))
        .route(&format!("{cp}/project/{{project}}/stage"), get(project::stages))
        .route(&format!("{cp}/project/{{project}}/stage/{{stage}}"), get(project::stage))
        .route(&format!("{cp}/project/{{project}}/stage/{{stage}}/service"), get(project::stage_services))
        .route(&format!("{cp}/project/{{project}}/stage/{{stage}}/service/{{service}}"), get(project::stage_service))
        .route(
            &format!("{cp}/project/{{project}}/stage/{{stage}}/service/{{service}}/evaluation"),
            get(evaluation::history).post(events::trigger_evaluation),
        )
        .route(&format!("{cp}/project/{{project}}/service"), post(project::create_service))
        .route(&format!("{cp}/project/{{project}}/service/{{service}}"), axum::routing::delete(project::delete_service))
        .route(&format!("{cp}/event/triggered/{{event_type}}"), get(events::open_triggered))
        .route(&format!("{cp}/event"), post(events::post_event))
        .route(&format!("{cp}/event/stream"), get(stream::open))
        .route(&format!("{cp}/event/stream/ack"), post(stream::ack))
        .route(&format!("{cp}/sequence/{{project}}"), get(sequence::states))
        .route(&format!("{cp}/sequence/{{project}}/{{context}}/control"), post(sequence::control))
        .route(&format!("{cp}/sequence/{{project}}/{{context}}/watch"), get(watch::sequence))
        .route(&format!("{cp}/sequence-execution"), get(sequence::executions))
        .route(&format!("{cp}/uniform/registration"), get(uniform::list).post(uniform::register))
        .route(&format!("{cp}/uniform/registration/{{id}}"), get(uniform::get_one).delete(uniform::unregister))
        .route(&format!("{cp}/uniform/registration/{{id}}/ping"), put(uniform::ping))
        .route(
            &format!("{cp}/uniform/registration/{{id}}/subscription"),
            get(uniform::list_subscriptions).post(uniform::create_subscription),
        )
        .route(
            &format!("{cp}/uniform/registration/{{id}}/subscription/{{sid}}"),
            get(uniform::get_subscription).put(uniform::put_subscription).delete(uniform::delete_subscription),
        )
        .route(&format!("{cp}/log"), get(uniform::logs).post(uniform::post_logs).delete(uniform::delete_logs))
        .route(
            "/api/resource-service/v1/project/{project}/resource",
            get(resource::list).post(resource::create).put(resource::update),
        )
        .route(
            "/api/resource-service/v1/project/{project}/resource/{*uri}",
            get(resource::get_one).put(resource::put_one).delete(resource::delete_one),
        )
        .route(
            "/api/resource-service/v1/project/{project}/stage/{stage}/resource",
            get(resource::list).post(resource::create).put(resource::update),
        )
        .route(
            "/api/resource-service/v1/project/{project}/stage/{stage}/resource/{*uri}",
            get(resource::get_one).put(resource::put_one).delete(resource::delete_one),
        )
        .route(
            "/api/resource-service/v1/project/{project}/stage/{stage}/service/{service}/resource",
            get(resource::list).post(resource::create).put(resource::update),
        )
        .route(
            "/api/resource-service/v1/project/{project}/stage/{stage}/service/{service}/resource/{*uri}",
            get(resource::get_one).put(resource::put_one).delete(resource::delete_one),
        )
        .route("/api/secrets/v1/scope", get(secrets::scopes))
        .route(
            "/api/secrets/v1/secret",
            get(secrets::list).post(secrets::create).put(secrets::update).delete(secrets::delete),
        )
        .route("/metrics", get(meta::metrics))
        .route("/api/openapi.json", get(meta::openapi))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/health", get(meta::health))
        .route("/api/health", get(meta::health))
        .route("/ready", get(meta::ready))
        .merge(authed)
        .fallback(meta::not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn(reject_nul_in_uri))
        .layer(middleware::map_response(json_errors))
        .with_state(state)
}

/// `x-token` (keptn) or `Authorization: Bearer` (for Prometheus scrapes) must carry the API token.
async fn require_token(State(state): State<Shared>, req: Request, next: Next) -> Result<Response, ApiError> {
    let headers = req.headers();
    let given = headers
        .get("x-token")
        .and_then(|v| v.to_str().ok())
        .or_else(|| headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(crate::token::bearer_token));
    match given {
        Some(t) if constant_time_eq(t.as_bytes(), state.token.as_bytes()) => Ok(next.run(req).await),
        _ => Err(ApiError::unauthorized()),
    }
}

/// A percent-encoded NUL in a path or query would reach the database as a filter value, which
/// PostgreSQL refuses ("invalid byte sequence"); it is a client error on every backend.
async fn reject_nul_in_uri(req: Request, next: Next) -> Response {
    use axum::response::IntoResponse as _;
    let uri = req.uri();
    let raw = [uri.path(), uri.query().unwrap_or("")];
    if raw.iter().any(|part| part.contains("%00")) {
        return ApiError::bad_request("the URL contains a NUL character (%00), which is not allowed").into_response();
    }
    next.run(req).await
}

/// axum's own rejections (query strings, paths, 405, raw body limits) are plain text or empty;
/// keptn clients expect every error as `{"code", "message"}`.
async fn json_errors(mut resp: Response) -> Response {
    use axum::http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
    use axum::response::IntoResponse as _;
    let status = resp.status();
    if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        // The refused body was not read: the connection cannot carry another request. Saying so
        // lets clients open a new one (the server reads and drops the rest before closing).
        resp.headers_mut().insert(CONNECTION, axum::http::HeaderValue::from_static("close"));
    }
    let is_json = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let message =
        if text.is_empty() { status.canonical_reason().unwrap_or("request failed").to_string() } else { text };
    let mut out = ApiError::new(status, message).into_response();
    for (name, value) in parts.headers.iter().filter(|(n, _)| *n != CONTENT_TYPE && *n != CONTENT_LENGTH) {
        out.headers_mut().append(name.clone(), value.clone());
    }
    out
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
