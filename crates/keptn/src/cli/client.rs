//! The API client: keptn's `x-token` header, and errors turned into one line that says what to do.

use super::config::{self, Credentials};
use serde_json::Value;

pub struct Client {
    http: reqwest::Client,
    creds: Credentials,
}

impl Client {
    pub fn new(creds: Credentials) -> Self {
        Client { http: reqwest::Client::new(), creds }
    }

    pub fn from_config() -> anyhow::Result<Self> {
        Ok(Client::new(config::load()?))
    }

    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.put(self.url(path)).json(body)).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.delete(self.url(path))).await
    }

    /// Opens a Server-Sent Events stream (e.g. a sequence's live state).
    pub async fn events(&self, path: &str) -> anyhow::Result<EventStream> {
        let req = self.http.get(self.url(path)).header("accept", "text/event-stream");
        let resp = self.checked(req).await?;
        Ok(EventStream { resp, buf: Vec::new() })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.creds.endpoint)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let resp = self.checked(req).await?;
        let text = resp.text().await.unwrap_or_default();
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Sends with the token; a failure becomes one line that says what to do.
    async fn checked(&self, req: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let endpoint = &self.creds.endpoint;
        let resp = req.header("x-token", &self.creds.api_token).send().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the keptn server at {endpoint} ({}); start it with `keptn server` or point the CLI elsewhere with `keptn auth --endpoint <url> --api-token <token>`",
                root_cause(&e)
            )
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status == reqwest::StatusCode::UNAUTHORIZED {
            anyhow::bail!(
                "the keptn server at {endpoint} refused the API token; run `keptn auth --endpoint {endpoint} --api-token <token>` with the token `keptn server` printed"
            );
        }
        let message = body["message"].as_str().map(str::to_string).unwrap_or(text);
        anyhow::bail!("{message} (HTTP {})", status.as_u16())
    }
}

/// Reads `event:`/`data:` frames from a Server-Sent Events response.
pub struct EventStream {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl EventStream {
    /// The next frame as (event name, parsed data); None when the server closed the stream.
    pub async fn next(&mut self) -> anyhow::Result<Option<(String, Value)>> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..end + 2).collect();
                if let Some(frame) = parse_frame(&String::from_utf8_lossy(&block)) {
                    return Ok(Some(frame));
                }
                continue; // a keep-alive comment
            }
            match self.resp.chunk().await {
                Ok(Some(bytes)) => self.buf.extend_from_slice(&bytes),
                Ok(None) => return Ok(None),
                Err(e) => anyhow::bail!("lost the connection to the keptn server ({})", root_cause(&e)),
            }
        }
    }
}

fn parse_frame(block: &str) -> Option<(String, Value)> {
    let mut name = String::from("message");
    let mut data = String::new();
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            name = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    if data.is_empty() {
        return None;
    }
    Some((name, serde_json::from_str(&data).unwrap_or(Value::String(data))))
}

/// The innermost error, which names the actual problem (e.g. "Connection refused").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn sse_frames() {
        let (name, v) = super::parse_frame("event: state\ndata: {\"a\":1}\n\n").unwrap();
        assert_eq!((name.as_str(), v["a"].as_i64()), ("state", Some(1)));
        assert!(super::parse_frame(":\n\n").is_none(), "keep-alive comments are skipped");
    }
}
