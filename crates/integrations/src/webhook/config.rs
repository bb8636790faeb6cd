//! keptn's `webhook/webhook.yaml` (`webhookconfig.keptn.sh/v1alpha1` with curl command strings,
//! `v1beta1` with structured requests), parsed and validated; errors name the field and the rule.
//! Pure: the lookup through the levels is in `mod.rs`, which hands the files here.

use keptn_formats::duration;
use serde::Deserialize;
use std::time::Duration;

/// Where the file lives, at service, stage or project level.
pub const URI: &str = "webhook/webhook.yaml";
pub const ALPHA: &str = "webhookconfig.keptn.sh/v1alpha1";
pub const BETA: &str = "webhookconfig.keptn.sh/v1beta1";
/// The methods a v1beta1 request may use: keptn's four, plus PATCH and DELETE, which keptn's
/// spec lists (its code rejected them; nothing here runs a shell, so they are as safe).
pub const METHODS: &[&str] = &["POST", "PUT", "GET", "HEAD", "PATCH", "DELETE"];
/// The most attempts a `retry` may ask for.
pub const MAX_ATTEMPTS: u32 = 10;

/// One webhook: which subscription it answers, what it sends back, which secrets it reads and
/// the requests it makes, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub ty: String,
    pub subscription_id: String,
    /// keptn's defaults: `sendStarted` true, `sendFinished` false.
    pub send_started: bool,
    pub send_finished: bool,
    pub env_from: Vec<EnvFrom>,
    pub requests: Vec<RequestSpec>,
}

/// `{{.env.<name>}}` is key `key` of secret `secret`.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvFrom {
    pub name: String,
    pub secret: String,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RequestSpec {
    /// v1alpha1: a curl command line (templated, then parsed by `curl.rs`; never run).
    Curl(String),
    /// v1beta1: its fields are templated one by one.
    Structured(Structured),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Structured {
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub payload: String,
    /// Extra curl options (`--proxy …`, `--max-time 5`), with the curl rules.
    pub options: String,
    /// keptn-rs addition: per-request timeout (Go duration).
    pub timeout: Option<Duration>,
    /// keptn-rs addition: retries on connection errors, timeouts and 5xx answers.
    pub retry: Option<Retry>,
}

/// `attempts` tries in all, waiting `backoff`, then twice that, … in between.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    pub attempts: u32,
    pub backoff: Duration,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFile {
    api_version: Option<String>,
    spec: Option<RawSpec>,
}

#[derive(Deserialize)]
struct RawSpec {
    webhooks: Option<Vec<RawWebhook>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawWebhook {
    #[serde(rename = "type")]
    ty: Option<String>,
    #[serde(rename = "subscriptionID")]
    subscription_id: Option<String>,
    send_started: Option<bool>,
    send_finished: Option<bool>,
    env_from: Option<Vec<RawEnvFrom>>,
    requests: Option<Vec<yaml_serde::Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEnvFrom {
    name: Option<String>,
    secret_ref: Option<RawSecretRef>,
}

#[derive(Deserialize)]
struct RawSecretRef {
    name: Option<String>,
    key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStructured {
    url: Option<String>,
    method: Option<String>,
    #[serde(default)]
    headers: Vec<RawHeader>,
    #[serde(default)]
    payload: String,
    #[serde(default)]
    options: String,
    timeout: Option<String>,
    retry: Option<RawRetry>,
}

#[derive(Deserialize)]
struct RawHeader {
    key: Option<String>,
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    attempts: Option<u32>,
    backoff: Option<String>,
}

fn required(field: &str, value: Option<String>) -> Result<String, String> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(format!("{field} is required")),
    }
}

/// Parses and validates a whole file: every webhook in it must be valid.
pub fn parse(text: &str) -> Result<Vec<Webhook>, String> {
    let raw: RawFile = yaml_serde::from_str(text).map_err(|e| format!("not a valid webhook config: {e}"))?;
    let version = raw.api_version.unwrap_or_default();
    let beta = match version.as_str() {
        ALPHA => false,
        BETA => true,
        "" => return Err(format!("apiVersion is required: {ALPHA} or {BETA}")),
        other => return Err(format!("apiVersion {other:?} is not supported: use {ALPHA} or {BETA}")),
    };
    let webhooks = raw.spec.and_then(|s| s.webhooks).unwrap_or_default();
    if webhooks.is_empty() {
        return Err("spec.webhooks must list at least one webhook".into());
    }
    webhooks.into_iter().enumerate().map(|(i, w)| webhook(&format!("spec.webhooks[{i}]"), w, beta)).collect()
}

fn webhook(at: &str, raw: RawWebhook, beta: bool) -> Result<Webhook, String> {
    let ty = required(&format!("{at}.type"), raw.ty)?;
    let subscription_id = required(&format!("{at}.subscriptionID"), raw.subscription_id)?;
    let mut env_from = Vec::new();
    for (j, e) in raw.env_from.unwrap_or_default().into_iter().enumerate() {
        let here = format!("{at}.envFrom[{j}]");
        let name = required(&format!("{here}.name"), e.name)?;
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "{here}.name {name:?} must be letters, digits and _ (it is used as {{{{.env.{name}}}}})"
            ));
        }
        let secret_ref = e.secret_ref.ok_or_else(|| format!("{here}.secretRef is required"))?;
        let secret = required(&format!("{here}.secretRef.name"), secret_ref.name)?;
        let key = required(&format!("{here}.secretRef.key"), secret_ref.key)?;
        env_from.push(EnvFrom { name, secret, key });
    }
    let raw_requests = raw.requests.unwrap_or_default();
    if raw_requests.is_empty() {
        return Err(format!("{at}.requests must list at least one request"));
    }
    let mut requests = Vec::new();
    for (j, r) in raw_requests.into_iter().enumerate() {
        let here = format!("{at}.requests[{j}]");
        requests.push(if beta { RequestSpec::Structured(structured(&here, r)?) } else { curl_string(&here, r)? });
    }
    Ok(Webhook {
        ty,
        subscription_id,
        send_started: raw.send_started.unwrap_or(true),
        send_finished: raw.send_finished.unwrap_or(false),
        env_from,
        requests,
    })
}

fn curl_string(at: &str, value: yaml_serde::Value) -> Result<RequestSpec, String> {
    match value {
        yaml_serde::Value::String(s) if !s.trim().is_empty() => Ok(RequestSpec::Curl(s)),
        yaml_serde::Value::String(_) => Err(format!("{at} is empty: write a curl command")),
        _ => Err(format!("{at} must be a curl command string in {ALPHA} (objects with url and method are {BETA})")),
    }
}

fn structured(at: &str, value: yaml_serde::Value) -> Result<Structured, String> {
    if value.is_string() {
        return Err(format!("{at} must be an object with url and method in {BETA} (curl strings are {ALPHA})"));
    }
    let raw: RawStructured = yaml_serde::from_value(value).map_err(|e| format!("{at}: {e}"))?;
    let url = required(&format!("{at}.url"), raw.url)?;
    let method = required(&format!("{at}.method"), raw.method)?;
    if !METHODS.contains(&method.as_str()) {
        return Err(format!("{at}.method {method:?} must be one of {}", METHODS.join(", ")));
    }
    let mut headers = Vec::new();
    for (k, h) in raw.headers.into_iter().enumerate() {
        let key = required(&format!("{at}.headers[{k}].key"), h.key)?;
        let value = required(&format!("{at}.headers[{k}].value"), h.value)?;
        headers.push((key, value));
    }
    let timeout = match raw.timeout {
        Some(t) => Some(positive(&format!("{at}.timeout"), &t)?),
        None => None,
    };
    let retry = match raw.retry {
        None => None,
        Some(r) => {
            let attempts = r.attempts.unwrap_or(3);
            if !(1..=MAX_ATTEMPTS).contains(&attempts) {
                return Err(format!("{at}.retry.attempts must be between 1 and {MAX_ATTEMPTS} (got {attempts})"));
            }
            let backoff = match r.backoff {
                Some(b) => positive(&format!("{at}.retry.backoff"), &b)?,
                None => Duration::from_secs(1),
            };
            Some(Retry { attempts, backoff })
        }
    };
    Ok(Structured { url, method, headers, payload: raw.payload, options: raw.options, timeout, retry })
}

fn positive(field: &str, text: &str) -> Result<Duration, String> {
    match duration::parse(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(format!("{field} must be more than 0")),
        Err(e) => Err(format!("{field}: {e}")),
    }
}

/// The first of `files` (in lookup order, each named by where it was read) holding a webhook
/// for `subscription_id`, and why each file before it that does not parse was skipped. Should
/// none hold one, the error lists those reasons.
pub fn find(files: &[(String, &[u8])], subscription_id: &str) -> (Result<Webhook, String>, Vec<String>) {
    let mut skipped = Vec::new();
    for (name, bytes) in files {
        let text = String::from_utf8_lossy(bytes);
        match parse(&text) {
            Ok(webhooks) => {
                if let Some(found) = webhooks.into_iter().find(|w| w.subscription_id == subscription_id) {
                    return (Ok(found), skipped);
                }
            }
            Err(e) => skipped.push(format!("{name}: {e}")),
        }
    }
    let mut message = format!(
        "could not retrieve Webhook config: no valid webhook config found for subscription {subscription_id} in {URI} (service, stage, project)"
    );
    if !skipped.is_empty() {
        message.push_str(&format!("; skipped invalid files: {}", skipped.join("; ")));
    }
    (Err(message), skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BETA_FILE: &str = r#"
apiVersion: webhookconfig.keptn.sh/v1beta1
kind: WebhookConfig
metadata: {name: webhook-configuration}
spec:
  webhooks:
    - type: sh.keptn.event.mytask.triggered
      subscriptionID: s1
      sendFinished: true
      envFrom:
        - name: token
          secretRef: {name: my-secret, key: api-token}
      requests:
        - url: https://example.com/{{.data.project}}
          method: POST
          headers: [{key: Content-Type, value: application/json}]
          payload: '{"text": "{{.data.project}}"}'
          timeout: 5s
          retry: {attempts: 3, backoff: 200ms}
"#;

    #[test]
    fn a_beta_file_parses_with_keptn_defaults_and_our_additions() {
        let hooks = parse(BETA_FILE).unwrap();
        assert_eq!(hooks.len(), 1);
        let w = &hooks[0];
        assert_eq!((w.subscription_id.as_str(), w.send_started, w.send_finished), ("s1", true, true));
        assert_eq!(w.env_from, [EnvFrom { name: "token".into(), secret: "my-secret".into(), key: "api-token".into() }]);
        let RequestSpec::Structured(r) = &w.requests[0] else { panic!("structured") };
        assert_eq!(r.method, "POST");
        assert_eq!(r.headers, [("Content-Type".to_string(), "application/json".to_string())]);
        assert_eq!(r.timeout, Some(Duration::from_secs(5)));
        assert_eq!(r.retry, Some(Retry { attempts: 3, backoff: Duration::from_millis(200) }));
    }

    #[test]
    fn an_alpha_file_holds_curl_strings_and_send_finished_defaults_to_false() {
        let text = "apiVersion: webhookconfig.keptn.sh/v1alpha1\nspec:\n  webhooks:\n    - type: sh.keptn.event.a.triggered\n      subscriptionID: s\n      requests: [\"curl http://x\"]\n";
        let w = &parse(text).unwrap()[0];
        assert!(w.send_started && !w.send_finished);
        assert_eq!(w.requests, [RequestSpec::Curl("curl http://x".into())]);
    }

    fn error_of(text: &str) -> String {
        parse(text).unwrap_err()
    }

    #[test]
    fn errors_name_the_field_and_the_rule() {
        let head = "apiVersion: webhookconfig.keptn.sh/v1beta1\nspec:\n  webhooks:\n";
        let cases = [
            ("apiVersion: v2\nspec: {}", "apiVersion \"v2\" is not supported"),
            ("spec: {}", "apiVersion is required"),
            (
                "apiVersion: webhookconfig.keptn.sh/v1beta1\nspec: {webhooks: []}",
                "spec.webhooks must list at least one",
            ),
            ("    - {type: t, requests: [{url: u, method: GET}]}", "spec.webhooks[0].subscriptionID is required"),
            ("    - {subscriptionID: s, requests: [{url: u, method: GET}]}", "spec.webhooks[0].type is required"),
            ("    - {type: t, subscriptionID: s, requests: []}", "spec.webhooks[0].requests must list at least one"),
            (
                "    - {type: t, subscriptionID: s, requests: [{url: u, method: FETCH}]}",
                "requests[0].method \"FETCH\" must be one of",
            ),
            ("    - {type: t, subscriptionID: s, requests: [{method: GET}]}", "requests[0].url is required"),
            (
                "    - {type: t, subscriptionID: s, requests: [{url: u, method: GET, headers: [{key: A}]}]}",
                "headers[0].value is required",
            ),
            ("    - {type: t, subscriptionID: s, requests: [\"curl x\"]}", "must be an object with url and method"),
            (
                "    - {type: t, subscriptionID: s, requests: [{url: u, method: GET, retry: {attempts: 0}}]}",
                "retry.attempts must be between 1 and 10",
            ),
            (
                "    - {type: t, subscriptionID: s, requests: [{url: u, method: GET, timeout: soon}]}",
                "requests[0].timeout",
            ),
            (
                "    - {type: t, subscriptionID: s, requests: [{url: u, method: GET, bogus: 1}]}",
                "unknown field `bogus`",
            ),
            (
                "    - {type: t, subscriptionID: s, envFrom: [{name: a-b, secretRef: {name: n, key: k}}], requests: [{url: u, method: GET}]}",
                "envFrom[0].name \"a-b\" must be letters",
            ),
            (
                "    - {type: t, subscriptionID: s, envFrom: [{name: a, secretRef: {name: n}}], requests: [{url: u, method: GET}]}",
                "envFrom[0].secretRef.key is required",
            ),
        ];
        for (body, want) in cases {
            let text = if body.starts_with("    ") { format!("{head}{body}\n") } else { body.to_string() };
            let err = error_of(&text);
            assert!(err.contains(want), "{body}: {err}");
        }
    }

    #[test]
    fn lookup_takes_the_first_file_holding_the_subscription_and_skips_invalid_ones() {
        let other = BETA_FILE.replace("subscriptionID: s1", "subscriptionID: s2");
        let files: Vec<(String, &[u8])> = vec![
            ("service".into(), b"apiVersion: nope".as_slice()),
            ("stage".into(), other.as_bytes()),
            ("project".into(), BETA_FILE.as_bytes()),
        ];
        let (found, skipped) = find(&files, "s2");
        assert_eq!(found.unwrap().subscription_id, "s2");
        assert_eq!(skipped.len(), 1, "the invalid service file is reported");
        assert_eq!(find(&files, "s1").0.unwrap().subscription_id, "s1", "per subscription, not the first file");
        let err = find(&files, "s3").0.unwrap_err();
        assert!(err.starts_with("could not retrieve Webhook config: no valid webhook config found"), "{err}");
        assert!(err.contains("service: apiVersion \"nope\" is not supported"), "{err}");
    }
}
