//! Where the CLI keeps the endpoint and token: `$KEPTN_CONFIG_DIR/credentials.json` (default
//! `~/.keptn`), mode 0600. `KEPTN_ENDPOINT` and `KEPTN_API_TOKEN` override it.

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    /// The server's base URL, without a trailing `/api`.
    pub endpoint: String,
    #[serde(rename = "apiToken")]
    pub api_token: String,
}

impl Credentials {
    pub fn new(endpoint: &str, api_token: &str) -> Self {
        Credentials { endpoint: normalize_endpoint(endpoint), api_token: api_token.trim().to_string() }
    }
}

/// keptn users wrote `http://host:8080/api`; our routes start with `/api`, so the base is the
/// server URL. A missing scheme means http.
pub fn normalize_endpoint(endpoint: &str) -> String {
    let mut e = endpoint.trim().trim_end_matches('/').to_string();
    if let Some(base) = e.strip_suffix("/api") {
        e = base.to_string();
    }
    if !e.contains("://") {
        e = format!("http://{e}");
    }
    e
}

fn dir() -> PathBuf {
    match std::env::var_os("KEPTN_CONFIG_DIR") {
        Some(d) => PathBuf::from(d),
        None => dirs::home_dir().unwrap_or_else(std::env::temp_dir).join(".keptn"),
    }
}

pub fn save(creds: &Credentials) -> anyhow::Result<PathBuf> {
    use std::io::Write as _;
    let dir = dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("credentials.json");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&path).with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(serde_json::to_string_pretty(creds)?.as_bytes())?;
    Ok(path)
}

/// The stored credentials with the environment's overrides.
pub fn load() -> anyhow::Result<Credentials> {
    let env = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
    let stored: Option<Credentials> =
        std::fs::read(dir().join("credentials.json")).ok().and_then(|b| serde_json::from_slice(&b).ok());
    let endpoint = env("KEPTN_ENDPOINT").or(stored.as_ref().map(|c| c.endpoint.clone()));
    let token = env("KEPTN_API_TOKEN").or(stored.map(|c| c.api_token));
    match (endpoint, token) {
        (Some(e), Some(t)) => Ok(Credentials::new(&e, &t)),
        _ => anyhow::bail!(
            "not authenticated: run `keptn auth --endpoint http://<host>:8080 --api-token <token>` (or set KEPTN_ENDPOINT and KEPTN_API_TOKEN)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_endpoint;

    #[test]
    fn endpoints_as_keptn_users_wrote_them() {
        assert_eq!(normalize_endpoint("http://h:8080/api"), "http://h:8080");
        assert_eq!(normalize_endpoint("http://h:8080/api/"), "http://h:8080");
        assert_eq!(normalize_endpoint("https://keptn.example.com"), "https://keptn.example.com");
        assert_eq!(normalize_endpoint("127.0.0.1:8080"), "http://127.0.0.1:8080");
    }
}
