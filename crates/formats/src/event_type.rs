//! keptn's event type grammar: `sh.keptn.event.<task>.<kind>` (5 parts) and
//! `sh.keptn.event.<stage>.<sequence>.<kind>` (6 parts).

pub const PREFIX: &str = "sh.keptn.event.";

/// The longest event type stored (bytes). Types built from valid names stay below it
/// (`PREFIX` + stage + sequence + kind); the database indexes types, and PostgreSQL refuses
/// index entries of more than about 2.7 kB, so a longer one is refused at the door.
pub const TYPE_MAX: usize = 512;

/// An event type the control plane can store: not empty, at most [`TYPE_MAX`] bytes.
pub fn check(field: &str, ty: &str) -> Result<(), String> {
    if ty.is_empty() {
        return Err(format!("{field} is required, e.g. sh.keptn.event.dev.delivery.triggered"));
    }
    crate::event::check_length(field, ty, TYPE_MAX)
}

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

    #[test]
    fn limits() {
        let longest_built = sequence(&"s".repeat(200), &"q".repeat(200), "triggered");
        assert!(check("type", &longest_built).is_ok());
        assert!(check("type", "").unwrap_err().contains("required"));
        let e = check("type", &"x".repeat(8000)).unwrap_err();
        assert!(e.contains("type") && e.contains("8000") && e.contains("at most 512"), "{e}");
    }
}
