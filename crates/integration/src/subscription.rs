//! keptn's uniform model: an integration's registration and its subscriptions, and the
//! NATS-style subject matching that decides which events a subscription receives.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Registration {
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
        use keptn_formats::{event::check_length, event_type::TYPE_MAX, names};
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
