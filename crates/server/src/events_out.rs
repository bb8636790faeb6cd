//! Events the control plane creates outside the engine (system events).

use crate::clock::now_ms;
use keptn_engine::format_time;
use keptn_formats::KeptnEvent;
use serde_json::Value;

/// `sh.keptn.event.<name>` with source `shipyard-controller`, e.g. `project.create.started`.
pub fn system_event(name: &str, context: &str, data: Value) -> KeptnEvent {
    KeptnEvent::new(
        crate::writer::new_id(),
        format!("sh.keptn.event.{name}"),
        context.to_string(),
        format_time(now_ms()),
        data,
    )
}
