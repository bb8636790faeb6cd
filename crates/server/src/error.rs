//! API errors: every failure a client sees is `{"code", "message"}` with a 4xx/5xx status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keptn_store::StoreError;
use serde_json::json;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
    pub fn unauthorized() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated or invalid credentials")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "code": self.status.as_u16(), "message": self.message });
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound(m) => ApiError::not_found(m),
            StoreError::Conflict(m) => ApiError::conflict(m),
            other => {
                tracing::error!(error = %other, "storage error");
                ApiError::unavailable(format!("the server's storage failed; retry later ({other})"))
            }
        }
    }
}

/// The writer's failures at the HTTP edge: a refused value is the client's (400), a failing
/// store or a stopping server is ours (503).
impl From<crate::writer::WriteError> for ApiError {
    fn from(e: crate::writer::WriteError) -> ApiError {
        use crate::writer::WriteErrorKind as K;
        let status = match e.kind {
            K::Refused => StatusCode::BAD_REQUEST,
            K::NotFound => StatusCode::NOT_FOUND,
            K::Conflict => StatusCode::CONFLICT,
            K::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError::new(status, e.message)
    }
}

impl From<keptn_configrepo::Error> for ApiError {
    fn from(e: keptn_configrepo::Error) -> ApiError {
        if e.is_not_found() {
            ApiError::not_found(e.to_string())
        } else if e.is_conflict() {
            ApiError::conflict(e.to_string())
        } else if e.is_bad_request() {
            ApiError::bad_request(e.to_string())
        } else if e.is_bad_credentials() {
            ApiError::new(StatusCode::FAILED_DEPENDENCY, e.to_string())
        } else if e.is_upstream_failure() {
            tracing::warn!(error = %e, "upstream failure");
            ApiError::new(StatusCode::BAD_GATEWAY, e.to_string())
        } else {
            tracing::error!(error = %e, "configuration repository error");
            ApiError::unavailable(format!("the configuration repository failed; retry later ({e})"))
        }
    }
}
