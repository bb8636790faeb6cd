//! keptn's event type grammar: `sh.keptn.event.<task>.<kind>` (5 parts) and
//! `sh.keptn.event.<stage>.<sequence>.<kind>` (6 parts).

pub const PREFIX: &str = "sh.keptn.event.";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventType {
    /// `sh.keptn.event.<task>.<kind>`
    Task { task: String, kind: String },
    /// `sh.keptn.event.<stage>.<sequence>.<kind>` (also system events like `project.create.started`)
    Sequence { stage: String, sequence: String, kind: String },
    /// Anything else (`sh.keptn.log.error`, `sh.keptn.events.problem`, foreign types).
    Other,
}

impl EventType {
    pub fn parse(ty: &str) -> EventType {
        let Some(rest) = ty.strip_prefix(PREFIX) else {
            return EventType::Other;
        };
        let parts: Vec<&str> = rest.split('.').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return EventType::Other;
        }
        match parts.as_slice() {
            [task, kind] => EventType::Task { task: task.to_string(), kind: kind.to_string() },
            [stage, sequence, kind] => {
                EventType::Sequence { stage: stage.to_string(), sequence: sequence.to_string(), kind: kind.to_string() }
            }
            _ => EventType::Other,
        }
    }
}

pub fn task(task: &str, kind: &str) -> String {
    format!("{PREFIX}{task}.{kind}")
}

pub fn sequence(stage: &str, sequence: &str, kind: &str) -> String {
    format!("{PREFIX}{stage}.{sequence}.{kind}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_keptn() {
        assert_eq!(
            EventType::parse("sh.keptn.event.deployment.finished"),
            EventType::Task { task: "deployment".into(), kind: "finished".into() }
        );
        assert_eq!(
            EventType::parse("sh.keptn.event.dev.delivery.triggered"),
            EventType::Sequence { stage: "dev".into(), sequence: "delivery".into(), kind: "triggered".into() }
        );
        // status.changed has six parts and is therefore not a task event, as in keptn.
        assert!(matches!(EventType::parse("sh.keptn.event.test.status.changed"), EventType::Sequence { .. }));
        assert_eq!(EventType::parse("sh.keptn.log.error"), EventType::Other);
        assert_eq!(EventType::parse("sh.keptn.event..x"), EventType::Other);
    }
}
