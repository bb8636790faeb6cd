//! A lenient JSON body extractor: any content type, size-limited, errors as `{"code","message"}`.

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e: BytesRejection| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request body is larger than the server accepts (see --max-body-size / KEPTN_MAX_BODY_SIZE)",
                )
            } else {
                ApiError::bad_request(format!("could not read the request body: {e}"))
            }
        })?;
        if bytes.is_empty() {
            return Err(ApiError::bad_request("request body is empty; send a JSON document"));
        }
        json_object(&bytes).map(JsonBody)
    }
}

/// Every keptn request body is a JSON object. serde would otherwise read a struct from an array
/// by position (`["a","b"]` as `{name, shipyard}`) and turn other documents into puzzling errors.
pub fn json_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request("request body must be a JSON object ({...}) for this endpoint"));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("request body is not valid JSON for this endpoint: {e}")))
}

/// Values the server stores in indexed columns must not contain NUL: PostgreSQL refuses it
/// ("invalid byte sequence"), which would fail the whole write batch. A client error everywhere.
pub fn no_nul(field: &str, value: &str) -> Result<(), ApiError> {
    if value.contains('\0') {
        return Err(ApiError::bad_request(format!("{field} contains a NUL character (\\u0000), which is not allowed")));
    }
    Ok(())
}
