//! The one client of keptn's API: keptn's `x-token` header, errors that say in one line what is
//! wrong and what to do, the Server-Sent Events reader, and the integration contract
//! ([`keptn_integration::Context`], [`keptn_integration::ControlPlane`]) over HTTP.
//!
//! The process must install a rustls crypto provider (ring) before the first request.

mod context;
mod feed;
#[cfg(feature = "nats")]
pub mod nats;
pub mod secrets;
mod sse;

pub use feed::{NoStream, StreamFeed};
#[cfg(feature = "nats")]
pub use nats::JetStreamFeed;
pub use secrets::LocalSecrets;
pub use sse::EventStream;

use keptn_formats::KeptnEvent;
use reqwest::{Method, StatusCode};
use serde_json::Value;

const CP: &str = "/api/controlPlane/v1";

/// What went wrong, rendered as one line that says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach the keptn server at {endpoint} ({cause}); start it with `keptn server` or point the CLI elsewhere with `keptn auth --endpoint <url> --api-token <token>`"
    )]
    Unreachable { endpoint: String, cause: String },
    #[error(
        "the keptn server at {endpoint} refused the API token; run `keptn auth --endpoint {endpoint} --api-token <token>` with the token `keptn server` printed"
    )]
    Unauthorized { endpoint: String },
    /// keptn's `{"code","message"}` (or the raw body when it is not one).
    #[error("{message} (HTTP {status})")]
    Status { status: u16, message: String },
    #[error("lost the connection to the keptn server ({0})")]
    Lost(String),
}

impl ClientError {
    /// The HTTP status the server answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            ClientError::Unauthorized { .. } => Some(401),
            _ => None,
        }
    }
}

pub type ClientResult<T> = Result<T, ClientError>;

/// An answer as it came: status, content type and body bytes.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoint: String,
    token: String,
    /// A remote integration's secrets and whose scopes it reads (`secrets.rs`).
    secrets: Option<(String, std::sync::Arc<LocalSecrets>)>,
}

impl Client {
    pub fn new(endpoint: impl Into<String>, api_token: impl Into<String>) -> Self {
        let endpoint: String = endpoint.into();
        Client {
            http: reqwest::Client::new(),
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token: api_token.into(),
            secrets: None,
        }
    }

    /// Over an existing reqwest client (sharing its connection pool).
    pub fn with_http(http: reqwest::Client, endpoint: impl Into<String>, api_token: impl Into<String>) -> Self {
        Client { http, ..Client::new(endpoint, api_token) }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn api_token(&self) -> &str {
        &self.token
    }

    pub async fn get(&self, path: &str) -> ClientResult<Value> {
        self.json(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> ClientResult<Value> {
        self.json(Method::POST, path, Some(body)).await
    }

    /// POST of an already serialised JSON body (the bench sends one body many times).
    pub async fn post_body(&self, path: &str, body: impl Into<reqwest::Body>) -> ClientResult<Value> {
        let req = self.request(Method::POST, path).header("content-type", "application/json").body(body);
        Ok(parse(self.checked(req).await?).await)
    }

    pub async fn put(&self, path: &str, body: &Value) -> ClientResult<Value> {
        self.json(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> ClientResult<Value> {
        self.json(Method::DELETE, path, None).await
    }

    /// Any request, any answer, with exactly these headers besides the token (a client built
    /// with an empty token sends none). Only transport failures are errors.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> ClientResult<RawResponse> {
        let mut req = self.request(method, path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        let resp = self.transport(req).await?;
        let status = resp.status().as_u16();
        let content_type =
            resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let body = resp.bytes().await.map_err(|e| ClientError::Lost(root_cause(&e)))?.to_vec();
        Ok(RawResponse { status, content_type, body })
    }

    /// A JSON request whatever the answer: (status, body as JSON, or the text as a string).
    pub async fn request_json(&self, method: Method, path: &str, body: Option<&Value>) -> ClientResult<(u16, Value)> {
        let mut req = self.request(method, path);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = self.transport(req).await?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| ClientError::Lost(root_cause(&e)))?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    /// Opens a Server-Sent Events stream (e.g. a sequence's live state).
    pub async fn stream(&self, path: &str) -> ClientResult<EventStream> {
        let req = self.request(Method::GET, path).header("accept", "text/event-stream");
        Ok(EventStream::new(self.checked(req).await?))
    }

    /// The server-pushed `.triggered` events of a registered integration, shared between its
    /// replicas (`replica` tells this process apart from the others of the same registration):
    /// `event: triggered` frames whose data is the event. Ack each with [`Client::ack_stream`].
    pub async fn triggered_stream(&self, integration_id: &str, replica: &str) -> ClientResult<EventStream> {
        let params = [("integrationId", integration_id), ("replica", replica)];
        self.stream(&with_query(&format!("{CP}/event/stream"), &params)).await
    }

    /// Acknowledges streamed events once handled: they are not handed to another replica.
    pub async fn ack_stream(&self, integration_id: &str, replica: &str, ids: &[String]) -> ClientResult<()> {
        let body = serde_json::json!({ "integrationId": integration_id, "replica": replica, "ids": ids });
        self.post(&format!("{CP}/event/stream/ack"), &body).await.map(|_| ())
    }

    /// `POST /api/v1/event`; the server assigns the id. Returns the keptn context.
    pub async fn post_event(&self, event: &Value) -> ClientResult<String> {
        let v = self.post("/api/v1/event", event).await?;
        Ok(v["keptnContext"].as_str().unwrap_or_default().to_string())
    }

    /// `POST /api/v1/event` keeping the event's id (`Idempotency-Key`): a repeat is dropped.
    pub async fn send_idempotent(&self, event: &KeptnEvent) -> ClientResult<String> {
        let body = serde_json::to_value(event).unwrap_or(Value::Null);
        let req = self.request(Method::POST, "/api/v1/event").header("Idempotency-Key", &event.id).json(&body);
        let v = parse(self.checked(req).await?).await;
        Ok(v["keptnContext"].as_str().unwrap_or_default().to_string())
    }

    /// The datastore (`GET /api/mongodb-datastore/event?…`), every page; as the server orders
    /// them (newest first). `query` is `key=value` pairs, already chosen by the caller.
    pub async fn datastore(&self, query: &[(&str, &str)], limit: usize) -> ClientResult<Vec<Value>> {
        let mut events = Vec::new();
        let mut next = String::new();
        loop {
            let mut params: Vec<(&str, &str)> = query.to_vec();
            params.push(("pageSize", "100"));
            if !next.is_empty() {
                params.push(("nextPageKey", &next));
            }
            let req = self.request(Method::GET, &with_query("/api/mongodb-datastore/event", &params));
            let page = parse(self.checked(req).await?).await;
            events.extend(page["events"].as_array().cloned().unwrap_or_default());
            next = match &page["nextPageKey"] {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => String::new(),
            };
            if next.is_empty() || next == "0" || (limit > 0 && events.len() >= limit) {
                break;
            }
        }
        if limit > 0 {
            events.truncate(limit);
        }
        Ok(events)
    }

    /// Open `.triggered` events of one type (`GET …/event/triggered/{type}`), optionally filtered.
    pub async fn open_triggered(&self, ty: &str, query: &[(&str, &str)]) -> ClientResult<Vec<Value>> {
        let req = self.request(Method::GET, &with_query(&format!("{CP}/event/triggered/{ty}"), query));
        let v = parse(self.checked(req).await?).await;
        Ok(v["events"].as_array().cloned().unwrap_or_default())
    }

    /// A resource's content at the head or at `commit`; None if there is none.
    pub async fn resource(&self, level: &str, uri: &str, commit: Option<&str>) -> ClientResult<Option<Vec<u8>>> {
        let path = format!("{level}/resource/{}", encode(uri.trim_start_matches('/')));
        let params: Vec<(&str, &str)> = commit.map(|c| ("gitCommitID", c)).into_iter().collect();
        let req = self.request(Method::GET, &with_query(&path, &params));
        match self.checked(req).await {
            Ok(resp) => {
                let v = parse(resp).await;
                let content = v["resourceContent"].as_str().unwrap_or_default();
                use base64::Engine;
                let bytes = base64::engine::general_purpose::STANDARD.decode(content).map_err(|e| {
                    ClientError::Status { status: 502, message: format!("resourceContent is not base64: {e}") }
                })?;
                Ok(Some(bytes))
            }
            Err(ClientError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The URIs at one level, at the head or at `commit`; None if the level does not exist.
    pub async fn resource_uris(&self, level: &str, commit: Option<&str>) -> ClientResult<Option<Vec<String>>> {
        let mut uris = Vec::new();
        let mut next = String::new();
        loop {
            let mut params: Vec<(&str, &str)> = commit.map(|c| ("gitCommitID", c)).into_iter().collect();
            params.push(("pageSize", "100"));
            if !next.is_empty() {
                params.push(("nextPageKey", &next));
            }
            let req = self.request(Method::GET, &with_query(&format!("{level}/resource"), &params));
            let page = match self.checked(req).await {
                Ok(resp) => parse(resp).await,
                Err(ClientError::Status { status: 404, .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            let items = page["resources"].as_array().cloned().unwrap_or_default();
            uris.extend(items.iter().filter_map(|r| r["resourceURI"].as_str().map(str::to_string)));
            next = match &page["nextPageKey"] {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => String::new(),
            };
            if next.is_empty() || next == "0" || items.is_empty() {
                return Ok(Some(uris));
            }
        }
    }

    /// Writes resources at one level in one commit (`PUT {level}/resource`).
    pub async fn put_resources(&self, level: &str, files: &[(String, Vec<u8>)], message: &str) -> ClientResult<Value> {
        use base64::Engine;
        let resources: Vec<Value> = files
            .iter()
            .map(|(uri, content)| {
                serde_json::json!({ "resourceURI": uri, "resourceContent": base64::engine::general_purpose::STANDARD.encode(content) })
            })
            .collect();
        self.put(&format!("{level}/resource"), &serde_json::json!({ "resources": resources, "commitMessage": message }))
            .await
    }

    /// `POST …/uniform/registration`; returns the id.
    pub async fn register(&self, registration: &Value) -> ClientResult<String> {
        let v = self.post(&format!("{CP}/uniform/registration"), registration).await?;
        Ok(v["id"].as_str().unwrap_or_default().to_string())
    }

    /// `PUT …/uniform/registration/{id}/ping`; the stored registration.
    pub async fn ping(&self, id: &str) -> ClientResult<Value> {
        self.put(&format!("{CP}/uniform/registration/{id}/ping"), &Value::Null).await
    }

    pub async fn unregister(&self, id: &str) -> ClientResult<Value> {
        self.delete(&format!("{CP}/uniform/registration/{id}")).await
    }

    /// `GET …/uniform/registration?name=…`: the registrations of integrations named `name`.
    pub async fn registrations_named(&self, name: &str) -> ClientResult<Vec<Value>> {
        let v = self.get(&with_query(&format!("{CP}/uniform/registration"), &[("name", name)])).await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// `POST …/uniform/registration/{id}/subscription`; returns the new subscription's id.
    pub async fn create_subscription(&self, integration_id: &str, subscription: &Value) -> ClientResult<String> {
        let v = self
            .post(&format!("{CP}/uniform/registration/{}/subscription", encode(integration_id)), subscription)
            .await?;
        Ok(v["id"].as_str().unwrap_or_default().to_string())
    }

    /// `DELETE …/uniform/registration/{id}/subscription/{subscriptionID}`.
    pub async fn delete_subscription(&self, integration_id: &str, subscription_id: &str) -> ClientResult<Value> {
        self.delete(&format!(
            "{CP}/uniform/registration/{}/subscription/{}",
            encode(integration_id),
            encode(subscription_id)
        ))
        .await
    }

    /// `POST …/log` with keptn's `{"logs":[…]}`.
    pub async fn log(&self, logs: Vec<Value>) -> ClientResult<Value> {
        self.post(&format!("{CP}/log"), &serde_json::json!({ "logs": logs })).await
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.endpoint));
        if self.token.is_empty() { req } else { req.header("x-token", &self.token) }
    }

    async fn json(&self, method: Method, path: &str, body: Option<&Value>) -> ClientResult<Value> {
        let mut req = self.request(method, path);
        if let Some(b) = body.filter(|b| !b.is_null()) {
            req = req.json(b);
        }
        Ok(parse(self.checked(req).await?).await)
    }

    async fn transport(&self, req: reqwest::RequestBuilder) -> ClientResult<reqwest::Response> {
        req.send()
            .await
            .map_err(|e| ClientError::Unreachable { endpoint: self.endpoint.clone(), cause: root_cause(&e) })
    }

    /// Sends; a non-2xx answer becomes a [`ClientError`].
    async fn checked(&self, req: reqwest::RequestBuilder) -> ClientResult<reqwest::Response> {
        let resp = self.transport(req).await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        if status == StatusCode::UNAUTHORIZED {
            return Err(ClientError::Unauthorized { endpoint: self.endpoint.clone() });
        }
        let text = resp.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let message = body["message"].as_str().map(str::to_string).unwrap_or(text);
        Err(ClientError::Status { status: status.as_u16(), message })
    }
}

/// The path of a resource level: project, optionally stage and service.
pub fn resource_level(project: &str, stage: Option<&str>, service: Option<&str>) -> String {
    let mut p = format!("/api/resource-service/v1/project/{project}");
    if let Some(s) = stage {
        p.push_str(&format!("/stage/{s}"));
        if let Some(svc) = service {
            p.push_str(&format!("/service/{svc}"));
        }
    }
    p
}

/// `path?k=v&…`, percent-encoded.
pub fn with_query(path: &str, params: &[(&str, &str)]) -> String {
    if params.is_empty() {
        return path.to_string();
    }
    let pairs: Vec<String> = params.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
    format!("{path}?{}", pairs.join("&"))
}

/// Percent-encodes everything but unreserved characters (a resource URI becomes one segment,
/// as keptn's clients send it).
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn parse(resp: reqwest::Response) -> Value {
    let text = resp.text().await.unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// The innermost error, which names the actual problem (e.g. "Connection refused").
pub(crate) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
