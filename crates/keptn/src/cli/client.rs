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

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.creds.endpoint)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let endpoint = &self.creds.endpoint;
        let resp = req.header("x-token", &self.creds.api_token).send().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the keptn server at {endpoint} ({}); start it with `keptn server` or point the CLI elsewhere with `keptn auth --endpoint <url> --api-token <token>`",
                root_cause(&e)
            )
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            anyhow::bail!(
                "the keptn server at {endpoint} refused the API token; run `keptn auth --endpoint {endpoint} --api-token <token>` with the token `keptn server` printed"
            );
        }
        let message = body["message"].as_str().map(str::to_string).unwrap_or(text);
        anyhow::bail!("{message} (HTTP {})", status.as_u16())
    }
}

/// The innermost error, which names the actual problem (e.g. "Connection refused").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
