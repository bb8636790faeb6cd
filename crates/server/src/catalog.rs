//! In-memory view of projects, their shipyards and services, for validating requests without a
//! database round trip. The store is the source of truth; handlers update both under one lock.

use keptn_formats::Shipyard;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct ProjectEntry {
    pub shipyard: Shipyard,
    pub shipyard_yaml: String,
    pub created_ms: i64,
    pub services: BTreeMap<String, i64>,
}

#[derive(Debug, Default)]
pub struct Catalog {
    pub projects: BTreeMap<String, ProjectEntry>,
}

impl Catalog {
    pub fn project(&self, name: &str) -> Option<&ProjectEntry> {
        self.projects.get(name)
    }

    /// Checks that the project, stage and service named by an event exist, if it names them.
    pub fn check_scope(&self, project: &str, stage: &str, service: &str) -> Result<(), String> {
        if project.is_empty() {
            return Ok(());
        }
        let Some(p) = self.projects.get(project) else {
            return Err(format!("project {project:?} does not exist; create it with `keptn create project`"));
        };
        if !stage.is_empty() && p.shipyard.stage(stage).is_none() {
            return Err(format!(
                "stage {stage:?} does not exist in project {project:?}; its stages are {:?}",
                p.shipyard.stage_names()
            ));
        }
        if !service.is_empty() && !p.services.contains_key(service) {
            return Err(format!(
                "service {service:?} does not exist in project {project:?}; create it with `keptn create service {service} --project {project}`"
            ));
        }
        Ok(())
    }
}
