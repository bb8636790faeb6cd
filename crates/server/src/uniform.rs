//! Integrations ("uniform"): the registration model, subscription matching and the in-memory
//! directory the dispatcher reads on every event.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};
use std::sync::{Arc, RwLock};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Integration {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub metadata: Metadata,
    #[serde(default)]
    pub subscriptions: Vec<Subscription>,
    /// keptn-rs addition: where the server POSTs matching events (CloudEvents HTTP binding).
    #[serde(rename = "pushURL", default, skip_serializing_if = "String::is_empty")]
    pub push_url: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub integrationversion: String,
    #[serde(default)]
    pub distributorversion: String,
    #[serde(default)]
    pub location: String,
    #[serde(default)]
    pub kubernetesmetadata: KubernetesMetadata,
    #[serde(default)]
    pub lastseen: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KubernetesMetadata {
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub podname: String,
    #[serde(default)]
    pub deploymentname: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub event: String,
    #[serde(default)]
    pub filter: Filter,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    #[serde(default)]
    pub projects: Vec<String>,
    #[serde(default)]
    pub stages: Vec<String>,
    #[serde(default)]
    pub services: Vec<String>,
}

/// keptn's integration id: hex SHA1 of `<name>-<namespace>-<nodename>`.
pub fn integration_id(name: &str, namespace: &str, hostname: &str) -> String {
    hex::encode(Sha1::digest(format!("{name}-{namespace}-{hostname}").as_bytes()))
}

impl Subscription {
    pub fn validate(&self) -> Result<(), String> {
        if self.event.trim().is_empty() {
            return Err("subscription.event must name an event type, e.g. sh.keptn.event.deployment.triggered".into());
        }
        use keptn_spec::{event::check_length, event_type::TYPE_MAX, names};
        check_length("subscription.event", &self.event, TYPE_MAX)?;
        let lists = [
            ("subscription.filter.projects", &self.filter.projects, names::PROJECT_NAME_MAX),
            ("subscription.filter.stages", &self.filter.stages, names::STAGE_NAME_MAX),
            ("subscription.filter.services", &self.filter.services, names::SERVICE_NAME_MAX),
        ];
        for (field, values, max) in lists {
            values.iter().try_for_each(|v| check_length(field, v, max))?;
        }
        if !self.filter.services.is_empty() && self.filter.stages.is_empty() {
            return Err("subscription.filter.services needs subscription.filter.stages as well (keptn's rule)".into());
        }
        Ok(())
    }

    pub fn matches(&self, ty: &str, project: &str, stage: &str, service: &str) -> bool {
        let within = |list: &Vec<String>, v: &str| list.is_empty() || list.iter().any(|x| x == v);
        subject_matches(&self.event, ty)
            && within(&self.filter.projects, project)
            && within(&self.filter.stages, stage)
            && within(&self.filter.services, service)
    }
}

/// NATS subject matching: `*` matches one token, a trailing `>` one or more.
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut pat = pattern.split('.');
    let mut sub = subject.split('.');
    loop {
        match (pat.next(), sub.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(p), Some(s)) if p == s => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

impl Integration {
    /// As API answers show it: the pushURL's userinfo masked.
    pub fn redacted(mut self) -> Integration {
        self.push_url = crate::outbound::redact_url(&self.push_url);
        self
    }
}

/// Current integrations, shared between the API (writes) and the dispatcher (reads).
#[derive(Clone, Default)]
pub struct Directory(Arc<RwLock<Vec<Integration>>>);

impl Directory {
    pub fn replace(&self, all: Vec<Integration>) {
        *self.0.write().expect("directory lock") = all;
    }

    /// Push targets for an event: (integration id, push URL, subscription id).
    pub fn push_targets(&self, ty: &str, project: &str, stage: &str, service: &str) -> Vec<(String, String, String)> {
        let all = self.0.read().expect("directory lock");
        let mut out = Vec::new();
        for i in all.iter().filter(|i| !i.push_url.is_empty()) {
            if let Some(s) = i.subscriptions.iter().find(|s| s.matches(ty, project, stage, service)) {
                out.push((i.id.clone(), i.push_url.clone(), s.id.clone()));
            }
        }
        out
    }

    /// Whether any registered integration (push, pull or built-in) subscribes to the event.
    pub fn subscribed(&self, ty: &str, project: &str, stage: &str, service: &str) -> bool {
        let all = self.0.read().expect("directory lock");
        all.iter().any(|i| i.subscriptions.iter().any(|s| s.matches(ty, project, stage, service)))
    }

    /// The current subscriptions of one integration; None if it is not registered.
    pub fn subscriptions_of(&self, id: &str) -> Option<Vec<Subscription>> {
        let all = self.0.read().expect("directory lock");
        all.iter().find(|i| i.id == id).map(|i| i.subscriptions.clone())
    }
}

/// A sequence's task `.triggered` that no integration subscribes to waits for nothing until the
/// task start timeout ends it: say so when it goes out, not only then.
pub fn warn_if_unsubscribed(directory: &Directory, event: &keptn_spec::KeptnEvent) {
    use keptn_spec::event_type::EventType;
    let is_task = matches!(EventType::parse(&event.ty), EventType::Task { kind, .. } if kind == "triggered");
    if !is_task || event.source != keptn_spec::event::CONTROL_PLANE_SOURCE {
        return;
    }
    if !directory.subscribed(&event.ty, event.project(), event.stage(), event.service()) {
        tracing::warn!(
            event_type = %event.ty,
            project = %event.project(),
            stage = %event.stage(),
            service = %event.service(),
            keptn_context = %event.shkeptncontext,
            "no integration subscribes to this task; nothing will answer until the task start timeout \
             (register one for {} or remove the task from the shipyard)",
            event.ty
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_wildcards() {
        assert!(subject_matches("sh.keptn.event.deployment.triggered", "sh.keptn.event.deployment.triggered"));
        assert!(subject_matches("sh.keptn.event.*.triggered", "sh.keptn.event.test.triggered"));
        assert!(subject_matches("sh.keptn.>", "sh.keptn.event.dev.delivery.finished"));
        assert!(!subject_matches("sh.keptn.event.*.triggered", "sh.keptn.event.dev.delivery.triggered"));
        assert!(!subject_matches("sh.keptn.event.test.triggered", "sh.keptn.event.test.finished"));
    }

    #[test]
    fn filters_are_and_across_or_within() {
        let s = Subscription {
            id: "s".into(),
            event: "sh.keptn.event.test.triggered".into(),
            filter: Filter { projects: vec!["a".into(), "b".into()], stages: vec!["dev".into()], services: vec![] },
        };
        assert!(s.matches("sh.keptn.event.test.triggered", "b", "dev", "x"));
        assert!(!s.matches("sh.keptn.event.test.triggered", "c", "dev", "x"));
        assert!(!s.matches("sh.keptn.event.test.triggered", "a", "prod", "x"));
        assert_eq!(integration_id("a", "b", "c").len(), 40);
    }
}
