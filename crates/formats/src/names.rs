//! keptn entity name rules (project, stage, service), with errors that say what to do.

pub const PROJECT_NAME_MAX: usize = 200;
pub const SERVICE_NAME_MAX: usize = 43;
/// keptn has no limit of its own; ours keeps every event type built from a stage, a sequence
/// and a kind within [`crate::event_type::TYPE_MAX`], and so within the database's index limits.
pub const STAGE_NAME_MAX: usize = 200;
/// Sequence and task names (each becomes part of event types).
pub const EVENT_SEGMENT_MAX: usize = 200;

/// keptn's entity name: lowercase letters, digits and `-`, starting with a letter, not ending with `-`.
fn is_entity_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let Some(first) = bytes.first() else { return false };
    first.is_ascii_lowercase()
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && *bytes.last().unwrap() != b'-'
}

pub fn check_project(name: &str) -> Result<(), String> {
    check_entity("project", name, PROJECT_NAME_MAX)
}

pub fn check_stage(name: &str) -> Result<(), String> {
    check_entity("stage", name, STAGE_NAME_MAX)
}

fn check_entity(what: &str, name: &str, max: usize) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} name must not be empty"));
    }
    if name.len() > max {
        return Err(format!(
            "{what} name {:?}… is {} characters long; at most {max} are allowed",
            crate::event::prefix(name),
            name.len()
        ));
    }
    if !is_entity_name(name) {
        return Err(format!(
            "{what} name {name:?} is invalid: use lowercase letters, digits and '-', start with a letter and do not end with '-'"
        ));
    }
    Ok(())
}

pub fn check_service(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("service name must not be empty".into());
    }
    if name.len() > SERVICE_NAME_MAX {
        return Err(format!(
            "service name {:?}… is {} characters long; at most {SERVICE_NAME_MAX} are allowed",
            crate::event::prefix(name),
            name.len()
        ));
    }
    // keptn only demanded a valid directory name; we also demand an entity name so that the
    // service can appear in event types, git paths and URLs without escaping.
    if !is_entity_name(name) {
        return Err(format!(
            "service name {name:?} is invalid: use lowercase letters, digits and '-', start with a letter and do not end with '-'"
        ));
    }
    Ok(())
}

/// Sequence and task names appear inside event types, so they must not contain `.` or spaces.
pub fn check_event_segment(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} name must not be empty"));
    }
    if name.len() > EVENT_SEGMENT_MAX {
        return Err(format!(
            "{what} name {:?}… is {} characters long; at most {EVENT_SEGMENT_MAX} are allowed",
            crate::event::prefix(name),
            name.len()
        ));
    }
    if name.contains('.') || name.chars().any(char::is_whitespace) || name.contains('/') {
        return Err(format!(
            "{what} name {name:?} is invalid: it becomes part of event types, so it must not contain '.', '/' or whitespace"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_names() {
        assert!(check_project("sockshop").is_ok());
        assert!(check_project("a").is_ok());
        assert!(check_project("my-project-2").is_ok());
        assert!(check_project("My").is_err());
        assert!(check_project("2x").is_err());
        assert!(check_project("x-").is_err());
        assert!(check_project(&"a".repeat(201)).unwrap_err().contains("at most 200"));
        assert!(check_service(&"a".repeat(44)).unwrap_err().contains("at most 43"));
        assert!(check_service("carts").is_ok());
        assert!(check_event_segment("task", "deploy.x").is_err());
        assert!(check_stage(&"a".repeat(200)).is_ok());
        assert!(check_stage(&"a".repeat(201)).unwrap_err().contains("at most 200"));
        assert!(check_event_segment("task", &"a".repeat(200)).is_ok());
        let long = check_event_segment("task", &"a".repeat(3000)).unwrap_err();
        assert!(
            long.contains("task name") && long.contains("3000 characters") && long.contains("at most 200"),
            "{long}"
        );
        assert!(long.len() < 200, "the message quotes a prefix, not the whole name: {long}");
    }
}
