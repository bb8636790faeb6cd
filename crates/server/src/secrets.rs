//! keptn's secret-service over the store: which scopes exist, what a valid secret is (Kubernetes'
//! naming rules, as keptn stored secrets as Kubernetes Secrets), values sealed at rest with the
//! server's secret key (the one that seals git credentials and pushURL passwords), and which
//! secrets an integration may read.
//!
//! No value ever leaves here except to an integration through [`read_for`]: errors name the
//! secret, its scope and its keys, never a value, and so does every log line.

use crate::clock::now_ms;
use crate::state::Shared;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use keptn_integration::{SecretData, secret_scopes};
use keptn_store::{SecretListing, SecretRow, StoreError};
use serde_json::Value;

/// Where a secret goes when the request names no scope (keptn's default).
pub const DEFAULT_SCOPE: &str = "keptn-default";
/// Kubernetes' limit for the name of a Secret and for a key in it.
const MAX_NAME: usize = 253;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretErrorKind {
    /// The request is wrong (400).
    Invalid,
    NotFound,
    Conflict,
    /// The store or the secret key failed (503).
    Unavailable,
}

/// Why a secret operation failed; the message never holds a value.
#[derive(Debug, Clone)]
pub struct SecretError {
    pub kind: SecretErrorKind,
    pub message: String,
}

impl SecretError {
    fn invalid(message: impl Into<String>) -> SecretError {
        SecretError { kind: SecretErrorKind::Invalid, message: message.into() }
    }
    fn unavailable(message: impl Into<String>) -> SecretError {
        SecretError { kind: SecretErrorKind::Unavailable, message: message.into() }
    }
}

impl From<StoreError> for SecretError {
    fn from(e: StoreError) -> SecretError {
        // Store errors carry SQL and names, not bound values (and values are sealed anyway).
        tracing::error!(error = %e, "secret storage failed");
        SecretError::unavailable(format!("the server's storage failed; retry later ({e})"))
    }
}

pub type SecretResult<T> = Result<T, SecretError>;

/// keptn's default scopes (its Helm chart's `scopes.yaml`).
const KEPTN_SCOPES: [&str; 4] =
    [DEFAULT_SCOPE, "keptn-webhook-service", "dynatrace-service", "keptn-prometheus-service"];

/// The scopes a secret may be created in: keptn's defaults, and `keptn-<key>-service` for every
/// built-in integration (`keptn-lighthouse-service`, …).
pub fn scopes() -> Vec<String> {
    let mut all: Vec<String> = KEPTN_SCOPES.iter().map(|s| s.to_string()).collect();
    for (key, _) in keptn_integrations::REGISTRY {
        let scope = format!("keptn-{key}-service");
        if !all.contains(&scope) {
            all.push(scope);
        }
    }
    all
}

/// Whose scopes an integration reads: a built-in's registry key (its registry entry names the
/// integration, as in `prometheus-sli-provider: …`), else its name without keptn's `-service`
/// suffix (`webhook-service` reads `keptn-webhook-service`, as keptn's service account did).
pub fn owner(integration_name: &str) -> String {
    let builtin =
        keptn_integrations::REGISTRY.iter().find(|(_, what)| what.split(':').next() == Some(integration_name));
    match builtin {
        Some((key, _)) => key.to_string(),
        None => integration_name.strip_suffix("-service").unwrap_or(integration_name).to_string(),
    }
}

/// A secret as a request gives it. `Debug` shows its keys, never its values.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    pub name: String,
    pub scope: String,
    pub data: SecretData,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("name", &self.name)
            .field("scope", &self.scope)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Secret {
    fn listing(&self) -> SecretListing {
        SecretListing { scope: self.scope.clone(), name: self.name.clone(), keys: self.data.keys().cloned().collect() }
    }
}

/// keptn's secret body `{"name", "scope", "data": {key: value}}`, checked: a known scope (default
/// `keptn-default`), a Kubernetes secret name, at least one key, Kubernetes key names, string
/// values. Messages name fields and keys, never values.
pub fn parse_secret(body: &Value) -> SecretResult<Secret> {
    let name = match body.get("name") {
        None | Some(Value::Null) => return Err(SecretError::invalid("the secret needs a \"name\"")),
        Some(Value::String(name)) => name.clone(),
        Some(_) => return Err(SecretError::invalid("\"name\" must be a string")),
    };
    check_name(&name).map_err(|rule| SecretError::invalid(format!("secret name {name:?} is invalid: {rule}")))?;
    let scope = match body.get("scope") {
        None | Some(Value::Null) => DEFAULT_SCOPE.to_string(),
        Some(Value::String(s)) if s.is_empty() => DEFAULT_SCOPE.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(SecretError::invalid("\"scope\" must be a string")),
    };
    check_scope(&scope)?;
    let Some(Value::Object(fields)) = body.get("data") else {
        return Err(SecretError::invalid(format!(
            "secret {name:?} needs \"data\": an object of keys and their string values, e.g. {{\"token\": \"…\"}}"
        )));
    };
    if fields.is_empty() {
        return Err(SecretError::invalid(format!("secret {name:?} has no keys; give at least one in \"data\"")));
    }
    let mut data = SecretData::new();
    for (key, value) in fields {
        check_key(key)
            .map_err(|rule| SecretError::invalid(format!("key {key:?} of secret {name:?} is invalid: {rule}")))?;
        let Value::String(value) = value else {
            return Err(SecretError::invalid(format!("the value of key {key:?} of secret {name:?} must be a string")));
        };
        data.insert(key.clone(), value.clone());
    }
    Ok(Secret { name, scope, data })
}

fn check_scope(scope: &str) -> SecretResult<()> {
    let known = scopes();
    if known.iter().any(|s| s == scope) {
        return Ok(());
    }
    Err(SecretError::invalid(format!("unknown scope {scope:?}; use one of: {}", known.join(", "))))
}

/// Kubernetes' rule for Secret names (a DNS subdomain, RFC 1123); the error says which part.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name.len() > MAX_NAME {
        return Err(format!("it is {} characters long; at most {MAX_NAME} are allowed", name.len()));
    }
    if let Some(c) = name.chars().find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-' | '.')) {
        return Err(format!(
            "{c:?} is not allowed: use lower case letters, digits, '-' and '.' (a Kubernetes secret name)"
        ));
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    for label in name.split('.') {
        if !alnum(label.chars().next()) || !alnum(label.chars().last()) {
            return Err("it and each part between dots must start and end with a letter or digit".into());
        }
    }
    Ok(())
}

/// Kubernetes' rule for keys of a Secret's data.
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("it is empty".into());
    }
    if key.len() > MAX_NAME {
        return Err(format!("it is {} characters long; at most {MAX_NAME} are allowed", key.len()));
    }
    if let Some(c) = key.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        return Err(format!("{c:?} is not allowed: use letters, digits, '-', '_' and '.' (a Kubernetes secret key)"));
    }
    if key == "." || key.starts_with("..") {
        return Err("it must not be '.' or start with '..'".into());
    }
    Ok(())
}

fn key(state: &Shared) -> SecretResult<&keptn_configrepo::SecretKey> {
    state.configrepo.secret_key().map_err(|e| SecretError::unavailable(format!("cannot read the secret key: {e}")))
}

fn seal(state: &Shared, secret: &Secret) -> SecretResult<SecretRow> {
    let plain = serde_json::to_vec(&secret.data).expect("a map of strings serialises");
    Ok(SecretRow { listing: secret.listing(), sealed: B64.encode(key(state)?.seal(&plain)) })
}

fn open(state: &Shared, row: &SecretRow) -> SecretResult<SecretData> {
    let SecretListing { scope, name, .. } = &row.listing;
    B64.decode(&row.sealed)
        .ok()
        .and_then(|sealed| key(state).ok()?.open(&sealed))
        .and_then(|plain| serde_json::from_slice(&plain).ok())
        .ok_or_else(|| {
            SecretError::unavailable(format!(
                "secret {name:?} in scope {scope:?} can't be decrypted (was the server's secret key replaced?); create it again"
            ))
        })
}

/// Stores a new secret; 409 if its scope has one of that name.
pub async fn create(state: &Shared, secret: &Secret) -> SecretResult<SecretListing> {
    let row = seal(state, secret)?;
    if !state.store.insert_secret(&row, now_ms()).await? {
        return Err(SecretError {
            kind: SecretErrorKind::Conflict,
            message: format!(
                "secret {:?} already exists in scope {:?}; change it with PUT (`keptn update secret`)",
                secret.name, secret.scope
            ),
        });
    }
    tracing::info!(secret = %secret.name, scope = %secret.scope, keys = ?row.listing.keys, "secret created");
    Ok(row.listing)
}

/// Replaces the keys and values of an existing secret.
pub async fn update(state: &Shared, secret: &Secret) -> SecretResult<SecretListing> {
    let row = seal(state, secret)?;
    if !state.store.update_secret(&row, now_ms()).await? {
        return Err(not_found(&secret.name, &secret.scope));
    }
    tracing::info!(secret = %secret.name, scope = %secret.scope, keys = ?row.listing.keys, "secret updated");
    Ok(row.listing)
}

/// Deletes one secret; both name and scope are required (keptn's rule).
pub async fn delete(state: &Shared, name: Option<&str>, scope: Option<&str>) -> SecretResult<()> {
    let (Some(name), Some(scope)) = (name.filter(|n| !n.is_empty()), scope.filter(|s| !s.is_empty())) else {
        return Err(SecretError::invalid(
            "deleting a secret needs both query parameters: ?name=<secret>&scope=<scope> (the default scope is keptn-default)",
        ));
    };
    if !state.store.delete_secret(scope, name).await? {
        return Err(not_found(name, scope));
    }
    tracing::info!(secret = %name, scope = %scope, "secret deleted");
    Ok(())
}

fn not_found(name: &str, scope: &str) -> SecretError {
    SecretError {
        kind: SecretErrorKind::NotFound,
        message: format!("there is no secret {name:?} in scope {scope:?}; create it with POST (`keptn create secret`)"),
    }
}

/// Secrets without values, filtered by name and/or scope (empty = no filter).
pub async fn list(state: &Shared, name: Option<&str>, scope: Option<&str>) -> SecretResult<Vec<SecretListing>> {
    let given = |v: Option<&str>| v.filter(|v| !v.is_empty()).map(str::to_owned);
    Ok(state.store.list_secrets(given(name).as_deref(), given(scope).as_deref()).await?)
}

/// The secret `name` as the integration `integration_name` may read it: from the first of its
/// scopes ([`secret_scopes`] of its [`owner`]) that has one of that name.
pub async fn read_for(state: &Shared, integration_name: &str, name: &str) -> SecretResult<Option<SecretData>> {
    for scope in secret_scopes(&owner(integration_name)) {
        if let Some(row) = state.store.get_secret(&scope, name).await? {
            return open(state, &row).map(Some);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused(body: Value) -> String {
        let e = parse_secret(&body).expect_err("refused");
        assert_eq!(e.kind, SecretErrorKind::Invalid, "{}", e.message);
        assert!(!e.message.contains("v4lu3"), "no value in {:?}", e.message);
        e.message
    }

    #[test]
    fn a_secret_defaults_to_keptn_default() {
        let s = parse_secret(&json!({"name": "api.creds-1", "data": {"token": "v4lu3", "User_2.x": ""}})).unwrap();
        assert_eq!((s.name.as_str(), s.scope.as_str()), ("api.creds-1", "keptn-default"));
        assert_eq!(s.data["token"], "v4lu3");
        let s = parse_secret(&json!({"name": "a", "scope": "keptn-webhook-service", "data": {"k": "v"}})).unwrap();
        assert_eq!(s.scope, "keptn-webhook-service");
        assert!(!format!("{s:?}").contains("\"v\""), "Debug hides values: {s:?}");
    }

    #[test]
    fn names_follow_kubernetes_rules_and_say_which() {
        assert!(refused(json!({"data": {"k": "v4lu3"}})).contains("needs a \"name\""));
        assert!(refused(json!({"name": 5, "data": {"k": "v4lu3"}})).contains("must be a string"));
        assert!(refused(json!({"name": "", "data": {"k": "v4lu3"}})).contains("empty"));
        assert!(refused(json!({"name": "a".repeat(254), "data": {"k": "v4lu3"}})).contains("at most 253"));
        assert!(parse_secret(&json!({"name": "a".repeat(253), "data": {"k": "v"}})).is_ok());
        assert!(refused(json!({"name": "Api", "data": {"k": "v4lu3"}})).contains("'A' is not allowed"));
        assert!(refused(json!({"name": "a_b", "data": {"k": "v4lu3"}})).contains("'_' is not allowed"));
        assert!(refused(json!({"name": "-a", "data": {"k": "v4lu3"}})).contains("start and end"));
        assert!(refused(json!({"name": "a..b", "data": {"k": "v4lu3"}})).contains("between dots"));
    }

    #[test]
    fn keys_values_and_scopes_are_checked_without_showing_values() {
        assert!(refused(json!({"name": "a", "scope": "nope", "data": {"k": "v4lu3"}})).contains("keptn-webhook"));
        assert!(refused(json!({"name": "a", "scope": 1, "data": {"k": "v4lu3"}})).contains("\"scope\""));
        assert!(refused(json!({"name": "a"})).contains("needs \"data\""));
        assert!(refused(json!({"name": "a", "data": "v4lu3"})).contains("needs \"data\""));
        assert!(refused(json!({"name": "a", "data": {}})).contains("no keys"));
        assert!(refused(json!({"name": "a", "data": {"a b": "v4lu3"}})).contains("' ' is not allowed"));
        assert!(refused(json!({"name": "a", "data": {"..x": "v4lu3"}})).contains("'..'"));
        assert!(refused(json!({"name": "a", "data": {"k".repeat(254): "v4lu3"}})).contains("at most 253"));
        assert!(refused(json!({"name": "a", "data": {"k": 5, "j": "v4lu3"}})).contains("key \"k\""));
    }

    #[test]
    fn scopes_are_keptns_and_one_per_builtin() {
        let all = scopes();
        assert_eq!(all[..4], KEPTN_SCOPES.map(String::from));
        for (key, _) in keptn_integrations::REGISTRY {
            assert!(all.contains(&format!("keptn-{key}-service")), "{key} in {all:?}");
        }
        let unique: std::collections::BTreeSet<&String> = all.iter().collect();
        assert_eq!(unique.len(), all.len(), "each once: {all:?}");
    }

    #[test]
    fn a_builtin_reads_its_keys_scope_others_their_names() {
        assert_eq!(owner("prometheus-sli-provider"), "prometheus");
        assert_eq!(owner("approval-service"), "approval");
        assert_eq!(owner("my-integration"), "my-integration");
        assert_eq!(owner("job-executor-service"), "job-executor", "keptn's service names");
    }
}
