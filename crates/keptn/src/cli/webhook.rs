//! `create webhook`: a webhook for a task, as keptn's Bridge made one — the uniform subscription
//! of the webhook-service registration and its entry in `webhook/webhook.yaml` (v1beta1) at
//! project, stage or service level, merged into the file that is there. The subscription is
//! made first (the file names its id) and deleted again should the file not be written.

use super::client::Client;
use anyhow::{Context as _, bail};
use clap::Args;
use keptn_integrations::webhook::{NAME, config};
use serde_json::{Value, json};

#[derive(Args, Debug)]
pub struct CreateWebhook {
    #[arg(short = 'p', long)]
    project: String,
    /// The task whose `.triggered` events call the webhook, e.g. `deployment` or `test`.
    #[arg(short = 't', long)]
    task: String,
    /// The URL to call; `{{.data.project}}`-style templates and `{{.secret.NAME.KEY}}` allowed.
    #[arg(short = 'u', long)]
    url: String,
    #[arg(short = 'm', long, default_value = "POST")]
    method: String,
    /// A request header `Name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// The request body (templated like the URL).
    #[arg(long)]
    payload: Option<String>,
    /// Only for this stage (the file goes to the stage level).
    #[arg(short = 's', long)]
    stage: Option<String>,
    /// Only for this service of `--stage` (the file goes to the service level).
    #[arg(long, requires = "stage")]
    service: Option<String>,
    /// A secret key the templates read as `{{.env.secret_NAME_KEY}}`, as `NAME:KEY` (repeatable);
    /// `{{.secret.NAME.KEY}}` in the URL, a header or the payload adds it by itself.
    #[arg(long = "secret")]
    secrets: Vec<String>,
    /// The called system sends the `.finished` itself (keptn's `sendFinished: false`).
    #[arg(long = "long-running")]
    long_running: bool,
}

/// A secret reference: template variable, secret name, key.
#[derive(Debug, Clone, PartialEq)]
struct SecretRef {
    env: String,
    name: String,
    key: String,
}

/// The Bridge's variable name for a secret key: `secret_<name>_<key>`, non-alphanumerics dropped.
fn env_name(name: &str, key: &str) -> String {
    let clean = |s: &str| s.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>();
    format!("secret_{}_{}", clean(name), clean(key))
}

fn parse_secret(text: &str) -> anyhow::Result<SecretRef> {
    match text.split_once(':') {
        Some((name, key)) if !name.is_empty() && !key.is_empty() => {
            Ok(SecretRef { env: env_name(name, key), name: name.into(), key: key.into() })
        }
        _ => bail!("--secret {text:?} must be NAME:KEY, e.g. --secret slack:token"),
    }
}

/// `{{.secret.NAME.KEY}}` (the Bridge's form) → `{{.env.secret_NAME_KEY}}`, collecting the refs.
fn rewrite_secrets(text: &str, refs: &mut Vec<SecretRef>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{.secret.") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "{{.secret.".len()..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        match after[..end].trim().split_once('.') {
            Some((name, key)) if !name.is_empty() && !key.is_empty() && !key.contains('.') => {
                let r = SecretRef { env: env_name(name, key), name: name.into(), key: key.into() };
                out.push_str(&format!("{{{{.env.{}}}}}", r.env));
                if !refs.contains(&r) {
                    refs.push(r);
                }
            }
            _ => out.push_str(&rest[start..start + "{{.secret.".len() + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The webhook entry for `subscription_id`.
fn entry(w: &CreateWebhook, subscription_id: &str) -> anyhow::Result<Value> {
    let mut refs = Vec::new();
    for s in &w.secrets {
        let r = parse_secret(s)?;
        if !refs.contains(&r) {
            refs.push(r);
        }
    }
    let url = rewrite_secrets(&w.url, &mut refs);
    let mut headers = Vec::new();
    for h in &w.headers {
        let Some((k, v)) = h.split_once(':') else { bail!("--header {h:?} must be 'Name: value'") };
        headers.push(json!({ "key": k.trim(), "value": rewrite_secrets(v.trim(), &mut refs) }));
    }
    let mut request = json!({ "url": url, "method": w.method.to_ascii_uppercase() });
    if !headers.is_empty() {
        request["headers"] = Value::Array(headers);
    }
    if let Some(payload) = &w.payload {
        request["payload"] = Value::String(rewrite_secrets(payload, &mut refs));
    }
    let mut hook = json!({
        "type": format!("sh.keptn.event.{}.triggered", w.task),
        "subscriptionID": subscription_id,
        "sendStarted": true,
        "sendFinished": !w.long_running,
        "requests": [request],
    });
    if !refs.is_empty() {
        let env: Vec<Value> =
            refs.iter().map(|r| json!({ "name": r.env, "secretRef": { "name": r.name, "key": r.key } })).collect();
        hook["envFrom"] = Value::Array(env);
    }
    Ok(hook)
}

/// `existing` (the file at that level, if any) with `hook` added; checked as a whole.
fn merged(existing: Option<&[u8]>, hook: Value) -> anyhow::Result<String> {
    let mut file = match existing {
        None => json!({ "apiVersion": config::BETA, "kind": "WebhookConfig",
                        "metadata": { "name": "webhook-configuration" }, "spec": { "webhooks": [] } }),
        Some(bytes) => {
            let text = String::from_utf8_lossy(bytes);
            let file: Value = yaml_serde::from_str(&text)
                .with_context(|| format!("the existing {} is not YAML; fix or remove it first", config::URI))?;
            match file["apiVersion"].as_str() {
                Some(config::BETA) => {}
                Some(other) => bail!(
                    "the existing {} is {other}; keptn create webhook writes {} entries: convert the file to {} first",
                    config::URI,
                    config::BETA,
                    config::BETA
                ),
                None => bail!("the existing {} has no apiVersion; fix or remove it first", config::URI),
            }
            file
        }
    };
    match file.pointer_mut("/spec/webhooks") {
        Some(Value::Array(hooks)) => hooks.push(hook),
        _ => file["spec"] = json!({ "webhooks": [hook] }),
    }
    let text = yaml_serde::to_string(&file).context("cannot write the webhook config")?;
    if let Err(e) = config::parse(&text) {
        bail!("the webhook config would not be valid: {e}");
    }
    Ok(text)
}

pub async fn create(client: &Client, w: CreateWebhook) -> anyhow::Result<()> {
    if w.task.is_empty() || w.task.contains('.') {
        bail!("--task {:?} must be a task name like deployment or test", w.task);
    }
    let registrations = client.registrations_named(NAME).await?;
    let Some(id) = registrations.first().and_then(|r| r["id"].as_str()).map(str::to_string) else {
        bail!(
            "no {NAME} is registered: start the server with the webhook built-in (it is on by default) or run `keptn integration run webhook`"
        );
    };
    let mut filter = json!({ "projects": [w.project] });
    if let Some(stage) = &w.stage {
        filter["stages"] = json!([stage]);
    }
    if let Some(service) = &w.service {
        filter["services"] = json!([service]);
    }
    // Checked before anything is created.
    entry(&w, "check")?;
    let level = keptn_client::resource_level(&w.project, w.stage.as_deref(), w.service.as_deref());
    let existing = client.resource(&level, config::URI, None).await?;
    merged(existing.as_deref(), entry(&w, "check")?)?;

    let event = format!("sh.keptn.event.{}.triggered", w.task);
    let sid = client.create_subscription(&id, &json!({ "event": event, "filter": filter })).await?;
    let written = async {
        let text = merged(existing.as_deref(), entry(&w, &sid)?)?;
        let message = format!("Add webhook for {} (subscription {sid})", w.task);
        client.put_resources(&level, &[(config::URI.to_string(), text.into_bytes())], &message).await?;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = written {
        // No subscription without its webhook: it would answer every task with an error.
        let _ = client.delete_subscription(&id, &sid).await;
        return Err(e);
    }
    let place = match (&w.stage, &w.service) {
        (Some(stage), Some(service)) => format!("service {service} of stage {stage}"),
        (Some(stage), None) => format!("stage {stage}"),
        _ => "project".to_string(),
    };
    println!(
        "Webhook for task {} created: subscription {sid} of {NAME}, {} at {place} level of project {}",
        w.task,
        config::URI,
        w.project
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> CreateWebhook {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            w: CreateWebhook,
        }
        let mut argv = vec!["x", "--project", "p", "--task", "test", "--url", "https://h/{{.data.project}}"];
        argv.extend_from_slice(extra);
        Cli::parse_from(argv).w
    }

    #[test]
    fn secrets_become_env_from_entries_in_the_bridge_form() {
        let w = args(&[
            "-H",
            "x-token: {{.secret.slack.token}}",
            "--secret",
            "ci:key",
            "--payload",
            "{\"p\": \"{{.data.project}}\"}",
        ]);
        let hook = entry(&w, "sid").unwrap();
        assert_eq!(
            hook["requests"][0]["headers"][0],
            json!({ "key": "x-token", "value": "{{.env.secret_slack_token}}" })
        );
        let env: Vec<&str> = hook["envFrom"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
        assert_eq!(env, ["secret_ci_key", "secret_slack_token"]);
        assert_eq!(hook["sendFinished"], true);
        assert!(parse_secret("nokey").unwrap_err().to_string().contains("NAME:KEY"));
    }

    #[test]
    fn a_new_entry_is_merged_into_the_file_and_the_result_checked() {
        let first = merged(None, entry(&args(&[]), "s1").unwrap()).unwrap();
        let both = merged(Some(first.as_bytes()), entry(&args(&["--long-running"]), "s2").unwrap()).unwrap();
        let hooks = config::parse(&both).unwrap();
        assert_eq!(hooks.iter().map(|h| h.subscription_id.as_str()).collect::<Vec<_>>(), ["s1", "s2"]);
        assert!(!hooks[1].send_finished);
        let alpha = "apiVersion: webhookconfig.keptn.sh/v1alpha1\nspec: {webhooks: []}\n";
        assert!(
            merged(Some(alpha.as_bytes()), entry(&args(&[]), "s").unwrap())
                .unwrap_err()
                .to_string()
                .contains("convert the file")
        );
        let bad = entry(&args(&["-m", "FETCH"]), "s").unwrap();
        assert!(merged(None, bad).unwrap_err().to_string().contains("method \"FETCH\" must be one of"));
    }
}
