//! The built-in integrations of keptn-rs: approval-service, lighthouse-service, the
//! Prometheus and HTTP/JSON SLI providers, webhook-service and job-executor-service. Each is a [`keptn_integration::Integration`]: it only
//! uses the [`keptn_integration::Context`] it is handed, so the same code runs inside the control
//! plane or as a remote integration. Answers have ids derived from what they answer, so a
//! repeated step (duplicate delivery, restart, another replica) sends the same events and the
//! control plane keeps one.

pub mod approval;
pub mod job;
pub mod lighthouse;
mod reads;
pub mod sli;
#[cfg(test)]
mod testing;
pub mod webhook;

use keptn_formats::KeptnEvent;
use keptn_integration::{ContextResult, Integration};
use std::sync::Arc;
use std::time::Duration;

/// The built-ins by key (`keptn server --integrations`), with what each does.
pub const REGISTRY: &[(&str, &str)] = &[
    ("approval", "approval-service: answers approval.triggered (automatic per the shipyard, or waits for a user)"),
    ("lighthouse", "lighthouse-service: evaluates quality gates (slo.yaml) from the SLI providers' values"),
    ("prometheus", "prometheus-sli-provider: SLI values from Prometheus queries (sli.yaml)"),
    ("http-sli", "http-sli-provider: SLI values from JSON over HTTP (sli.yaml)"),
    (
        "webhook",
        "webhook-service: calls HTTP APIs per webhook/webhook.yaml for its subscriptions (keptn create webhook)",
    ),
    ("job-executor", "job-executor-service: runs the tasks of job/config.yaml as processes on this host"),
];

/// Every built-in's key, the default selection.
pub fn all_keys() -> Vec<String> {
    REGISTRY.iter().map(|(key, _)| key.to_string()).collect()
}

/// The built-ins a comma-separated list names (`none` = no built-in), or why it is not a valid
/// list: an unknown name is refused with the known ones, so a typo does not silently drop one.
pub fn select(list: &str) -> Result<Vec<String>, String> {
    let names: Vec<&str> = list.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
    if names == ["none"] {
        return Ok(Vec::new());
    }
    let mut keys = Vec::new();
    for name in names {
        if !REGISTRY.iter().any(|(key, _)| *key == name) {
            let known: Vec<&str> = REGISTRY.iter().map(|(key, _)| *key).collect();
            return Err(format!("unknown integration {name:?}; known: {} (or none)", known.join(", ")));
        }
        if !keys.iter().any(|k| k == name) {
            keys.push(name.to_string());
        }
    }
    Ok(keys)
}

/// What the built-ins are configured with.
#[derive(Clone)]
pub struct Settings {
    /// How long lighthouse waits for the SLI providers before the evaluation ends errored.
    pub sli_timeout: Duration,
    /// `--prometheus-url`: the Prometheus SLI provider's endpoint where no
    /// `prometheus/config.yaml` names one.
    pub prometheus_url: Option<String>,
    /// The one outbound HTTP client (the server's outbound policy applies to every request).
    pub outbound: keptn_outbound::http::Outbound,
    /// How the execution-plane built-ins (webhooks, jobs) act.
    pub execution: Execution,
}

/// Settings of the built-ins that act on the world (webhook calls, local and Kubernetes jobs);
/// `keptn server` and `keptn integration run` fill them from their flags. Each built-in owns a
/// field; every field has a default that is safe on a laptop.
#[derive(Clone, Debug, Default)]
pub struct Execution {
    /// The job runner (`job-executor`): allowed images, the local runner's image commands.
    pub job: job::JobSettings,
}

/// The built-in of a [`REGISTRY`] key; None for an unknown key.
pub fn build(key: &str, settings: &Settings) -> Option<Arc<dyn Integration>> {
    let integration: Arc<dyn Integration> = match key {
        "approval" => Arc::new(approval::Approval),
        "lighthouse" => Arc::new(lighthouse::Lighthouse::new(settings.sli_timeout)),
        "prometheus" => {
            Arc::new(sli::prometheus::Prometheus::new(settings.outbound.clone(), settings.prometheus_url.clone()))
        }
        "http-sli" => Arc::new(sli::HttpJson::new(settings.outbound.clone())),
        "webhook" => Arc::new(webhook::Webhook::new(settings.outbound.clone())),
        "job-executor" => Arc::new(job::Job::new(&settings.execution.job)),
        _ => return None,
    };
    Some(integration)
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

/// An RFC 3339 time in milliseconds since the epoch.
pub(crate) fn parse_time(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_millis())
}

/// Sends answers in order. A transient failure is returned (the runner offers the event again
/// and the derived ids make the repeat exactly-once); a refused answer is logged and the rest
/// are not sent, as retrying would be refused again. Returns whether all were accepted.
pub(crate) async fn send_all(
    source: &str,
    ctx: &dyn keptn_integration::Context,
    answering: &KeptnEvent,
    events: Vec<KeptnEvent>,
) -> ContextResult<bool> {
    for event in events {
        let ty = event.ty.clone();
        match ctx.send(event).await {
            Ok(()) => {}
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                tracing::error!(integration = source, event = %answering.id, answer = %ty, error = %e, "the control plane refused an answer");
                return Ok(false);
            }
        }
    }
    Ok(true)
}

#[cfg(test)]
mod registry_tests {
    use super::*;

    #[test]
    fn lists_select_known_built_ins() {
        assert_eq!(select("approval, lighthouse,approval").unwrap(), ["approval", "lighthouse"]);
        assert!(select("none").unwrap().is_empty());
        assert_eq!(select("approval,prometheus,http-sli,lighthouse,webhook,job-executor").unwrap().len(), 6);
        let err = select("approval,lighthous").unwrap_err();
        assert!(
            err.contains("\"lighthous\"")
                && err.contains("approval, lighthouse, prometheus, http-sli, webhook, job-executor"),
            "{err}"
        );
    }

    #[test]
    fn every_registry_key_builds() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let outbound =
            keptn_outbound::http::Outbound::new(keptn_outbound::OutboundPolicy::default(), Duration::from_secs(5))
                .unwrap();
        let settings = Settings {
            sli_timeout: Duration::from_secs(1),
            prometheus_url: None,
            outbound,
            execution: Execution::default(),
        };
        let names: Vec<&str> = all_keys().iter().map(|k| build(k, &settings).expect("builds").name()).collect();
        let expected = [
            "approval-service",
            "lighthouse-service",
            "prometheus-sli-provider",
            "http-sli-provider",
            "webhook-service",
            "job-executor-service",
        ];
        assert_eq!(names, expected);
        assert!(build("nope", &settings).is_none());
    }
}
