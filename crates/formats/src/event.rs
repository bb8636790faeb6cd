//! CloudEvents 1.0 (structured JSON) with keptn's extensions, and keptn's common data block.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const SPEC_VERSION: &str = "1.0";
pub const KEPTN_SPEC_VERSION: &str = "0.2.4";
pub const CONTROL_PLANE_SOURCE: &str = "shipyard-controller";

/// The longest id stored: event ids, `triggeredid`, `shkeptncontext`, `gitcommitid`, integration
/// ids. keptn's are UUIDs (36) and SHA-1 hex (40); the limit leaves room for other schemes.
pub const ID_MAX: usize = 256;
/// The longest `source` (a URI reference, e.g. `https://github.com/keptn/keptn/api`).
pub const SOURCE_MAX: usize = 2048;

/// The first characters of a long value, for error messages that should not echo all of it.
pub fn prefix(value: &str) -> &str {
    let end = value.char_indices().nth(40).map_or(value.len(), |(i, _)| i);
    &value[..end]
}

/// `field` must be at most `max` bytes long.
pub fn check_length(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.len() > max {
        return Err(format!("{field} {:?}… is {} bytes long; at most {max} are allowed", prefix(value), value.len()));
    }
    Ok(())
}

/// One keptn CloudEvent as it travels over HTTP, NATS and the datastore API.
/// Unknown attributes are kept in `extra` so nothing a client sent is lost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct KeptnEvent {
    #[serde(default = "spec_version")]
    pub specversion: String,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub source: String,
    #[serde(rename = "type", default)]
    pub ty: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacontenttype: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub shkeptncontext: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub triggeredid: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub shkeptnspecversion: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gitcommitid: String,
    #[serde(default)]
    pub data: Value,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn spec_version() -> String {
    SPEC_VERSION.into()
}

impl KeptnEvent {
    fn data_str(&self, key: &str) -> &str {
        self.data.get(key).and_then(Value::as_str).unwrap_or("")
    }
    pub fn project(&self) -> &str {
        self.data_str("project")
    }
    pub fn stage(&self) -> &str {
        self.data_str("stage")
    }
    pub fn service(&self) -> &str {
        self.data_str("service")
    }
    pub fn result(&self) -> &str {
        self.data_str("result")
    }
    pub fn status(&self) -> &str {
        self.data_str("status")
    }
    pub fn message(&self) -> &str {
        self.data_str("message")
    }

    /// Checks that every attribute the control plane stores and indexes fits the limits, so the
    /// event cannot fail a database write (and with it the writer's batch): type, ids, source
    /// and the project, stage and service it names.
    pub fn check_limits(&self) -> Result<(), String> {
        crate::event_type::check("type", &self.ty)?;
        for (field, value) in [
            ("id", &self.id),
            ("triggeredid", &self.triggeredid),
            ("shkeptncontext", &self.shkeptncontext),
            ("gitcommitid", &self.gitcommitid),
        ] {
            check_length(field, value, ID_MAX)?;
        }
        check_length("source", &self.source, SOURCE_MAX)?;
        check_length("data.project", self.project(), crate::names::PROJECT_NAME_MAX)?;
        check_length("data.stage", self.stage(), crate::names::STAGE_NAME_MAX)?;
        check_length("data.service", self.service(), crate::names::SERVICE_NAME_MAX)
    }

    /// A new control-plane event with keptn's envelope defaults.
    pub fn new(id: String, ty: String, context: String, time: String, data: Value) -> KeptnEvent {
        KeptnEvent {
            specversion: SPEC_VERSION.into(),
            id,
            source: CONTROL_PLANE_SOURCE.into(),
            ty,
            time,
            datacontenttype: Some("application/json".into()),
            shkeptncontext: context,
            shkeptnspecversion: KEPTN_SPEC_VERSION.into(),
            data,
            ..KeptnEvent::default()
        }
    }
}

/// The business result of a task (`pass` / `warning` / `fail`), ordered best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum TaskResult {
    Pass,
    Warning,
    Fail,
}

impl TaskResult {
    /// keptn counts anything other than pass/warning (including empty) as fail.
    pub fn parse(s: &str) -> TaskResult {
        match s {
            "pass" => TaskResult::Pass,
            "warning" => TaskResult::Warning,
            _ => TaskResult::Fail,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            TaskResult::Pass => "pass",
            TaskResult::Warning => "warning",
            TaskResult::Fail => "fail",
        }
    }
}

/// Whether the executor ran without a technical error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Succeeded,
    Errored,
    Aborted,
    Unknown,
}

impl TaskStatus {
    pub fn parse(s: &str) -> TaskStatus {
        match s {
            "succeeded" => TaskStatus::Succeeded,
            "errored" => TaskStatus::Errored,
            "aborted" => TaskStatus::Aborted,
            _ => TaskStatus::Unknown,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Errored => "errored",
            TaskStatus::Aborted => "aborted",
            TaskStatus::Unknown => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn limits_name_the_field() {
        let ok = KeptnEvent::new(
            "1".into(),
            "sh.keptn.event.deployment.finished".into(),
            "c".into(),
            String::new(),
            json!({ "project": "p" }),
        );
        assert!(ok.check_limits().is_ok());
        let cases: Vec<(&str, KeptnEvent)> = vec![
            ("type", KeptnEvent { ty: "x".repeat(8000), ..ok.clone() }),
            ("type", KeptnEvent { ty: String::new(), ..ok.clone() }),
            ("triggeredid", KeptnEvent { triggeredid: "t".repeat(ID_MAX + 1), ..ok.clone() }),
            ("shkeptncontext", KeptnEvent { shkeptncontext: "c".repeat(ID_MAX + 1), ..ok.clone() }),
            ("source", KeptnEvent { source: "s".repeat(SOURCE_MAX + 1), ..ok.clone() }),
            ("data.stage", KeptnEvent { data: json!({ "stage": "s".repeat(4000) }), ..ok.clone() }),
        ];
        for (field, ev) in cases {
            let e = ev.check_limits().unwrap_err();
            assert!(e.starts_with(field), "{field}: {e}");
            assert!(e.len() < 200, "a prefix, not the whole value: {e}");
        }
        assert!(KeptnEvent { triggeredid: "t".repeat(ID_MAX), ..ok }.check_limits().is_ok());
    }

    #[test]
    fn round_trips_unknown_attributes() {
        let raw = json!({
            "specversion": "1.0", "id": "1", "source": "helm", "type": "sh.keptn.event.deployment.finished",
            "shkeptncontext": "c", "triggeredid": "t", "data": {"project": "p", "result": "pass"},
            "contenttype": "application/json", "myext": 42
        });
        let ev: KeptnEvent = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(ev.project(), "p");
        assert_eq!(ev.extra["myext"], json!(42));
        let back = serde_json::to_value(&ev).unwrap();
        assert_eq!(back["myext"], json!(42));
        assert_eq!(back["triggeredid"], json!("t"));
    }

    #[test]
    fn results_order_worst_last() {
        assert!(TaskResult::Fail > TaskResult::Warning && TaskResult::Warning > TaskResult::Pass);
        assert_eq!(TaskResult::parse(""), TaskResult::Fail);
        assert_eq!(TaskResult::parse("failed"), TaskResult::Fail);
    }
}
