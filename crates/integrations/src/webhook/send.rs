//! Sends one webhook [`Request`] through the outbound HTTP client (the outbound policy checks
//! every address connected to, redirects stay on the same host), with a timeout and the
//! optional retries with exponential backoff on connection errors, timeouts and 5xx answers.

use super::curl::Request;
use keptn_integration::Redactor;
use keptn_outbound::http::{Outbound, is_refused, root_cause};
use reqwest::{Method, Url};
use std::time::Duration;

/// A request's time limit unless it sets one (keptn had none: curl's default, no limit).
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// The wait before the first retry unless the request sets one.
pub const BACKOFF: Duration = Duration::from_secs(1);
/// Response bytes kept; the rest is cut (a webhook answer is for people to read).
pub const BODY_LIMIT: usize = 1 << 20;

/// What came back from a request that succeeded (HTTP < 400).
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// The URL to call, checked: http or https, with a host.
pub fn url_of(request: &Request) -> Result<Url, String> {
    let mut url = Url::parse(&request.url).map_err(|e| format!("{:?} is not a URL: {e}", request.url))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{:?} must be an http:// or https:// URL", request.url));
    }
    if request.data_in_query
        && let Some(data) = &request.body
    {
        let query = match url.query() {
            Some(q) if !q.is_empty() => format!("{q}&{data}"),
            _ => data.clone(),
        };
        url.set_query(Some(&query));
    }
    Ok(url)
}

/// Sends `request`; the error says what failed (HTTP status and body, the policy's refusal,
/// the connection error). What it logs is scrubbed of the secret values `redactor` knows.
pub async fn send(outbound: &Outbound, request: &Request, redactor: &Redactor) -> Result<Response, String> {
    let url = url_of(request)?;
    let method = Method::from_bytes(request.effective_method().as_bytes())
        .map_err(|_| format!("{:?} is not an HTTP method", request.effective_method()))?;
    let attempts = request.attempts.unwrap_or(1).max(1);
    let mut backoff = request.backoff.unwrap_or(BACKOFF);
    let mut attempt = 1;
    loop {
        match once(outbound, &method, &url, request).await {
            Ok(response) => return Ok(response),
            Err(failure) if failure.retryable && attempt < attempts => {
                let shown = redactor.scrub(&keptn_outbound::redact_url(url.as_str()));
                let error = redactor.scrub(&failure.message);
                tracing::info!(url = %shown, attempt, error = %error, "webhook request failed; retrying");
            }
            Err(failure) if attempt > 1 => return Err(format!("{} (after {attempt} attempts)", failure.message)),
            Err(failure) => return Err(failure.message),
        }
        tokio::time::sleep(backoff).await;
        backoff = backoff.saturating_mul(2);
        attempt += 1;
    }
}

struct Failure {
    message: String,
    retryable: bool,
}

async fn once(outbound: &Outbound, method: &Method, url: &Url, request: &Request) -> Result<Response, Failure> {
    let mut builder = outbound
        .request(method.clone(), url.clone())
        .map_err(|denied| Failure { message: denied.to_string(), retryable: false })?;
    for (k, v) in &request.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    if request.form_encoded && !request.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
        builder = builder.header("Content-Type", "application/x-www-form-urlencoded");
    }
    if let Some((user, password)) = &request.basic_auth {
        builder = builder.basic_auth(user, password.as_ref());
    }
    if let Some(body) = &request.body
        && !request.data_in_query
    {
        builder = builder.body(body.clone());
    }
    builder = builder.timeout(request.timeout.unwrap_or(TIMEOUT));
    let mut response = match builder.send().await {
        Ok(r) => r,
        Err(e) => {
            let refused = is_refused(&e);
            let message = if e.is_timeout() { "timed out".to_string() } else { root_cause(&e) };
            return Err(Failure { message, retryable: !refused && (e.is_connect() || e.is_timeout()) });
        }
    };
    let status = response.status();
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = BODY_LIMIT.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= BODY_LIMIT {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                let message = if e.is_timeout() { "timed out".to_string() } else { root_cause(&e) };
                return Err(Failure { message: format!("reading the answer failed: {message}"), retryable: true });
            }
        }
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    if status.as_u16() >= 400 {
        let shown: String = body.chars().take(500).collect();
        let message =
            if shown.trim().is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {}", shown.trim()) };
        return Err(Failure { message, retryable: status.is_server_error() });
    }
    Ok(Response { status: status.as_u16(), body })
}
