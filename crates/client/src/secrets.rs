//! Secrets: keptn's secret-service API (`/api/secrets/v1`: scopes, and secrets listed with
//! their keys; values go in and never come out), and the local secrets file a remote
//! integration reads its secrets from (`keptn integration run --secrets-file`), because the API
//! never returns a value.

use crate::{Client, ClientResult, with_query};
use keptn_integration::{SecretData, secret_scopes};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;

const SECRETS: &str = "/api/secrets/v1";
/// Where a secret goes when none is named (keptn's default).
pub const DEFAULT_SCOPE: &str = "keptn-default";

impl Client {
    /// The scopes secrets may be created in.
    pub async fn secret_scopes(&self) -> ClientResult<Vec<String>> {
        let answer = self.get(&format!("{SECRETS}/scope")).await?;
        Ok(answer["scopes"].as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_owned)).collect())
    }

    /// keptn's `{"Secrets": [{"name","scope","keys"}]}`, of one name and/or scope or all.
    pub async fn list_secrets(&self, name: Option<&str>, scope: Option<&str>) -> ClientResult<Value> {
        let params: Vec<(&str, &str)> =
            [("name", name), ("scope", scope)].into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect();
        self.get(&with_query(&format!("{SECRETS}/secret"), &params)).await
    }

    /// Creates a secret (409 if its scope has one of that name); answers its name, scope, keys.
    pub async fn create_secret(&self, name: &str, scope: &str, data: &SecretData) -> ClientResult<Value> {
        self.post(&format!("{SECRETS}/secret"), &json!({ "name": name, "scope": scope, "data": data })).await
    }

    /// Replaces a secret's keys and values (404 if there is none).
    pub async fn update_secret(&self, name: &str, scope: &str, data: &SecretData) -> ClientResult<Value> {
        self.put(&format!("{SECRETS}/secret"), &json!({ "name": name, "scope": scope, "data": data })).await
    }

    pub async fn delete_secret(&self, name: &str, scope: &str) -> ClientResult<Value> {
        self.delete(&with_query(&format!("{SECRETS}/secret"), &[("name", name), ("scope", scope)])).await
    }

    /// This client as the context of the integration `owner` (a built-in's registry key, or an
    /// integration's name): its [`keptn_integration::Context::secret`] reads `secrets`, in the
    /// scopes [`secret_scopes`] allows `owner`.
    pub fn with_local_secrets(mut self, owner: &str, secrets: Arc<LocalSecrets>) -> Client {
        self.secrets = Some((owner.to_string(), secrets));
        self
    }

    /// What [`Client::with_local_secrets`] gave this client for `name`.
    pub(crate) fn local_secret(&self, name: &str) -> Option<SecretData> {
        let (owner, secrets) = self.secrets.as_ref()?;
        secrets.lookup(owner, name)
    }
}

/// One secret of a secrets file.
#[derive(Clone, PartialEq, Eq)]
pub struct LocalSecret {
    pub name: String,
    pub scope: String,
    pub data: SecretData,
}

/// The secrets of a secrets file: a YAML or JSON list of `{name, scope, data}`, the API's body.
/// `Debug` shows names, scopes and keys, never values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct LocalSecrets(Vec<LocalSecret>);

impl std::fmt::Debug for LocalSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = self.0.iter().map(|s| (&s.scope, &s.name, s.data.keys().collect::<Vec<_>>()));
        f.debug_list().entries(shown).finish()
    }
}

impl LocalSecrets {
    /// Reads a secrets file. Refused, as ssh refuses a private key, when its permissions let
    /// the group or others at it. Errors name the file and what is wrong, never a value.
    pub fn load(path: &Path) -> Result<LocalSecrets, String> {
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|e| format!("cannot read the secrets file {shown}: {e}"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(format!(
                    "the secrets file {shown} is accessible by its group or others (mode {mode:o}); make it private with `chmod 600 {shown}`"
                ));
            }
        }
        #[cfg(not(unix))]
        let _ = meta;
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the secrets file {shown}: {e}"))?;
        LocalSecrets::parse(&text).map_err(|e| format!("the secrets file {shown}: {e}"))
    }

    /// A YAML (or JSON) list of `{name, scope (default keptn-default), data: {key: value}}`.
    pub fn parse(text: &str) -> Result<LocalSecrets, String> {
        // Read as untyped YAML first: typed deserialisation errors quote the offending value.
        let doc: yaml_serde::Value =
            yaml_serde::from_str(text).map_err(|e| format!("not valid YAML or JSON: {}", location(&e)))?;
        let items = match doc {
            yaml_serde::Value::Null => return Ok(LocalSecrets::default()),
            yaml_serde::Value::Sequence(items) => items,
            _ => return Err("expected a list of secrets: - {name: …, scope: …, data: {key: value}}".into()),
        };
        let mut secrets: Vec<LocalSecret> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = format!("secret #{}", i + 1);
            let text_of = |field: &str| match item.get(field) {
                None | Some(yaml_serde::Value::Null) => Ok(None),
                Some(yaml_serde::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(format!("{at}: \"{field}\" must be a string")),
            };
            let name = text_of("name")?.filter(|n| !n.is_empty()).ok_or_else(|| format!("{at} needs a \"name\""))?;
            let scope = text_of("scope")?.filter(|s| !s.is_empty()).unwrap_or_else(|| DEFAULT_SCOPE.to_string());
            let at = format!("secret {name:?} (scope {scope:?})");
            let Some(yaml_serde::Value::Mapping(fields)) = item.get("data") else {
                return Err(format!("{at} needs \"data\": keys and their string values"));
            };
            let mut data = SecretData::new();
            for (key, value) in fields {
                let yaml_serde::Value::String(key) = key else {
                    return Err(format!("{at}: every key must be a string"));
                };
                let yaml_serde::Value::String(value) = value else {
                    return Err(format!("{at}: the value of key {key:?} must be a string (quote it)"));
                };
                data.insert(key.clone(), value.clone());
            }
            if secrets.iter().any(|s| s.name == name && s.scope == scope) {
                return Err(format!("{at} is given twice"));
            }
            secrets.push(LocalSecret { name, scope, data });
        }
        Ok(LocalSecrets(secrets))
    }

    /// The secret `name` as the integration `owner` may read it: from the first of its scopes
    /// ([`secret_scopes`]) that has one of that name.
    pub fn lookup(&self, owner: &str, name: &str) -> Option<SecretData> {
        secret_scopes(owner)
            .iter()
            .find_map(|scope| self.0.iter().find(|s| s.name == name && &s.scope == scope))
            .map(|s| s.data.clone())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Where a YAML error is, without the parser's message (which may quote the file's text).
fn location(e: &yaml_serde::Error) -> String {
    match e.location() {
        Some(l) => format!("syntax error at line {}, column {}", l.line(), l.column()),
        None => "syntax error".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
- name: api
  data: { token: "t0k3n", user: bot }
- name: api
  scope: keptn-webhook-service
  data: { token: "wh-t0k3n" }
- name: hook
  scope: keptn-webhook-service
  data: { url: "https://x" }
- name: other
  scope: keptn-job-executor-service
  data: { k: "v" }
"#;

    #[test]
    fn an_integration_reads_its_scopes_the_first_one_first() {
        let secrets = LocalSecrets::parse(FILE).unwrap();
        assert_eq!(secrets.len(), 4);
        assert_eq!(secrets.lookup("webhook", "api").unwrap()["token"], "t0k3n", "keptn-default first");
        assert_eq!(secrets.lookup("webhook", "hook").unwrap()["url"], "https://x");
        assert_eq!(secrets.lookup("prometheus", "hook"), None, "another integration's scope");
        assert_eq!(secrets.lookup("webhook", "other"), None);
        assert_eq!(secrets.lookup("webhook", "missing"), None);
        let shown = format!("{secrets:?}");
        assert!(shown.contains("token") && !shown.contains("t0k3n"), "{shown}");
        // JSON is YAML too.
        let json = r#"[{"name": "a", "scope": "keptn-default", "data": {"k": "v"}}]"#;
        assert_eq!(LocalSecrets::parse(json).unwrap().lookup("x", "a").unwrap()["k"], "v");
    }

    #[test]
    fn a_bad_file_says_what_is_wrong_without_values() {
        let refused = |text: &str| LocalSecrets::parse(text).expect_err("refused");
        assert!(refused("name: a").contains("a list of secrets"));
        assert!(refused("- data: {k: v}").contains("#1 needs a \"name\""));
        assert!(refused("- {name: a}").contains("needs \"data\""));
        let e = refused("- {name: a, data: {k: [s3cr3t]}}");
        assert!(e.contains("key \"k\"") && !e.contains("s3cr3t"), "{e}");
        let e = refused("- {name: a, data: {k: \"s3cr3t}");
        assert!(e.contains("line 1") && !e.contains("s3cr3t"), "{e}");
        assert!(
            refused("- {name: a, data: {k: v}}\n- {name: a, scope: keptn-default, data: {k: w}}").contains("twice")
        );
        assert!(LocalSecrets::parse("").unwrap().is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn a_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.yaml");
        std::fs::write(&path, FILE).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = LocalSecrets::load(&path).expect_err("refused");
            assert!(e.contains("chmod 600") && e.contains(&format!("{mode:o}")), "{e}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(LocalSecrets::load(&path).unwrap().len(), 4);
        let e = LocalSecrets::load(&dir.path().join("nope.yaml")).expect_err("missing");
        assert!(e.contains("cannot read the secrets file"), "{e}");
    }
}
