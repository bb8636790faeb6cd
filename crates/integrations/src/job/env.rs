//! A task's environment: the built-in variables, then `env` in the file's order (from the event
//! by JSONPath, from secrets, from strings), and Kubernetes' `$(VAR)` expansion in `cmd`/`args`.
//! Pure: secrets are read by the caller and handed in.

use super::config::{Env, Format, ValueFrom};
use super::matching::select;
use keptn_formats::KeptnEvent;
use keptn_integration::SecretData;
use serde_json::Value;
use std::collections::BTreeMap;

/// `KEPTN_PROJECT`, `KEPTN_STAGE`, `KEPTN_SERVICE` and `LABELS_<KEY>` per label.
pub fn builtin(event: &KeptnEvent) -> Vec<(String, String)> {
    let mut vars = vec![
        ("KEPTN_PROJECT".to_string(), event.project().to_string()),
        ("KEPTN_STAGE".to_string(), event.stage().to_string()),
        ("KEPTN_SERVICE".to_string(), event.service().to_string()),
    ];
    if let Some(labels) = event.data.get("labels").and_then(Value::as_object) {
        for (key, value) in labels {
            let value = value.as_str().map(String::from).unwrap_or_else(|| value.to_string());
            vars.push((label_var(key), value));
        }
    }
    vars
}

/// `LABELS_` + the key upper-cased, `-` and spaces as `_` (job-executor's rule).
pub fn label_var(key: &str) -> String {
    let key: String = key.chars().map(|c| if c == '-' || c == ' ' { '_' } else { c.to_ascii_uppercase() }).collect();
    format!("LABELS_{key}")
}

/// The secrets a task's env reads, by name.
pub fn secret_names(env: &[Env]) -> Vec<&str> {
    env.iter().filter(|e| e.value_from == ValueFrom::Secret).map(|e| e.name.as_str()).collect()
}

/// The task's `env` resolved against the event map and the secrets read (all keys of a secret
/// become variables). The error names the variable and what is wrong.
pub fn resolve(
    env: &[Env],
    map: &Value,
    secrets: &BTreeMap<String, SecretData>,
    builtin: &[(String, String)],
) -> Result<Vec<(String, String)>, String> {
    let mut vars: Vec<(String, String)> = builtin.to_vec();
    for var in env {
        match var.value_from {
            ValueFrom::Event => {
                let value = select(&var.value, map)
                    .ok_or_else(|| format!("env {}: {} selects no single value in the event", var.name, var.value))?;
                vars.push((var.name.clone(), format(value, var.format)?));
            }
            ValueFrom::Secret => {
                let secret = secrets.get(&var.name).ok_or_else(|| {
                    format!(
                        "env {0}: secret {0:?} does not exist or may not be read by job-executor-service (create it with `keptn create secret {0} --from-literal=KEY=VALUE`)",
                        var.name
                    )
                })?;
                vars.extend(secret.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            // Kubernetes expands `$(VAR)` of earlier variables in a literal value.
            ValueFrom::String => vars.push((var.name.clone(), expand(&var.value, &vars))),
        }
    }
    Ok(vars)
}

fn format(value: &Value, as_: Format) -> Result<String, String> {
    match as_ {
        Format::String => Ok(match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
        Format::Json => serde_json::to_string(value).map_err(|e| e.to_string()),
        Format::Yaml => yaml_serde::to_string(value).map_err(|e| e.to_string()),
    }
}

/// Kubernetes' expansion: `$(VAR)` becomes VAR's value (the last definition counts), an unknown
/// `$(VAR)` stays as written, `$$` is a literal `$`.
pub fn expand(text: &str, vars: &[(String, String)]) -> String {
    let lookup = |name: &str| vars.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match lookup(name) {
                Some(value) => out.push_str(value),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::matching::event_map;
    use serde_json::json;

    fn var(name: &str, value: &str, from: ValueFrom, format: Format) -> Env {
        Env { name: name.into(), value: value.into(), value_from: from, format }
    }

    fn event() -> KeptnEvent {
        KeptnEvent::new(
            "id".into(),
            "sh.keptn.event.test.triggered".into(),
            "ctx".into(),
            "".into(),
            json!({"project": "p", "stage": "dev", "service": "carts",
                   "labels": {"build-id": "42", "owner team": "a"},
                   "deployment": {"deploymentURIsLocal": ["http://carts:80"]}, "n": {"a": 1}}),
        )
    }

    #[test]
    fn builtins_and_labels() {
        let vars = builtin(&event());
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("KEPTN_PROJECT").as_deref(), Some("p"));
        assert_eq!(get("KEPTN_STAGE").as_deref(), Some("dev"));
        assert_eq!(get("KEPTN_SERVICE").as_deref(), Some("carts"));
        assert_eq!(get("LABELS_BUILD_ID").as_deref(), Some("42"));
        assert_eq!(get("LABELS_OWNER_TEAM").as_deref(), Some("a"));
    }

    #[test]
    fn event_values_as_string_json_and_yaml() {
        let e = event();
        let env = vec![
            var("HOST", "$.data.deployment.deploymentURIsLocal[0]", ValueFrom::Event, Format::String),
            var("N", "$.data.n", ValueFrom::Event, Format::Json),
            var("NY", "$.data.n", ValueFrom::Event, Format::Yaml),
            var("NS", "$.data.n", ValueFrom::Event, Format::String),
            var("DIR", "/tmp/$(KEPTN_SERVICE)", ValueFrom::String, Format::String),
        ];
        let vars =
            resolve(&env, &event_map(&e), &BTreeMap::new(), &[("KEPTN_SERVICE".into(), "carts".into())]).unwrap();
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(get("HOST"), "http://carts:80");
        assert_eq!(get("N"), r#"{"a":1}"#);
        assert_eq!(get("NY").trim(), "a: 1");
        assert_eq!(get("NS"), r#"{"a":1}"#);
        assert_eq!(get("DIR"), "/tmp/carts");
        let missing = vec![var("X", "$.data.nope", ValueFrom::Event, Format::String)];
        let err = resolve(&missing, &event_map(&e), &BTreeMap::new(), &[]).unwrap_err();
        assert!(err.contains("env X") && err.contains("$.data.nope"), "{err}");
    }

    #[test]
    fn a_secret_gives_all_its_keys_and_a_missing_one_is_named() {
        let e = event();
        let env = vec![var("locust-secret", "", ValueFrom::Secret, Format::String)];
        let mut secrets = BTreeMap::new();
        secrets.insert(
            "locust-secret".to_string(),
            SecretData::from([("USER".to_string(), "u".to_string()), ("TOKEN".to_string(), "t0k".to_string())]),
        );
        let vars = resolve(&env, &event_map(&e), &secrets, &[]).unwrap();
        assert_eq!(vars, [("TOKEN".to_string(), "t0k".to_string()), ("USER".to_string(), "u".to_string())]);
        let err = resolve(&env, &event_map(&e), &BTreeMap::new(), &[]).unwrap_err();
        assert!(err.contains("secret \"locust-secret\" does not exist"), "{err}");
        assert_eq!(secret_names(&env), ["locust-secret"]);
    }

    #[test]
    fn expansion_follows_kubernetes() {
        let vars = vec![
            ("HOST".to_string(), "h:1".to_string()),
            ("A".to_string(), "x".to_string()),
            ("A".to_string(), "y".to_string()),
        ];
        assert_eq!(expand("--host $(HOST)/$(A)", &vars), "--host h:1/y");
        assert_eq!(expand("$(NOPE) $$(HOST) $$ $x $(", &vars), "$(NOPE) $(HOST) $ $x $(");
        assert_eq!(expand("no vars", &vars), "no vars");
    }
}
