//! Integrations ("uniform") as the server keeps them: the in-memory directory the dispatcher
//! reads on every event. The model and matching are the contract's (`keptn-integration`).

pub use keptn_integration::{Registration as Integration, Subscription, integration_id};
use std::sync::{Arc, RwLock};

/// As API answers show it: the pushURL's userinfo masked.
pub fn redacted(mut integration: Integration) -> Integration {
    integration.push_url = crate::outbound::redact_url(&integration.push_url);
    integration
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

    /// The name of one integration; None if it is not registered.
    pub fn name_of(&self, id: &str) -> Option<String> {
        let all = self.0.read().expect("directory lock");
        all.iter().find(|i| i.id == id).map(|i| i.name.clone())
    }

    /// The current subscriptions of one integration; None if it is not registered.
    pub fn subscriptions_of(&self, id: &str) -> Option<Vec<Subscription>> {
        let all = self.0.read().expect("directory lock");
        all.iter().find(|i| i.id == id).map(|i| i.subscriptions.clone())
    }
}

/// A sequence's task `.triggered` that no integration subscribes to waits for nothing until the
/// task start timeout ends it: say so when it goes out, not only then.
pub fn warn_if_unsubscribed(directory: &Directory, event: &keptn_formats::KeptnEvent) {
    use keptn_formats::event_type::EventType;
    let is_task = matches!(EventType::parse(&event.ty), EventType::Task { kind, .. } if kind == "triggered");
    if !is_task || event.source != keptn_formats::event::CONTROL_PLANE_SOURCE {
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
