//! Shipyard `spec.keptn.sh/0.2.x`: parsing and validation.
//!
//! keptn only YAML-decoded the shipyard; we also reject what would silently break at run time
//! (duplicate names, dangling `triggeredOn`, bad durations, dots in names). Every error names
//! the field and the rule.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashSet;

use crate::{duration, names};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shipyard {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: Metadata,
    pub spec: Spec,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    #[serde(default)]
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub sequences: Vec<Sequence>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sequence {
    #[serde(default)]
    pub name: String,
    #[serde(rename = "triggeredOn", default, skip_serializing_if = "Vec::is_empty")]
    pub triggered_on: Vec<Trigger>,
    #[serde(default)]
    pub tasks: Vec<Task>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    #[serde(default)]
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<Selector>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Selector {
    #[serde(default)]
    pub r#match: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    #[serde(default)]
    pub name: String,
    #[serde(rename = "triggeredAfter", default, skip_serializing_if = "String::is_empty")]
    pub triggered_after: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Value>,
}

impl Task {
    pub fn properties_object(&self) -> Map<String, Value> {
        match &self.properties {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        }
    }
}

/// A shipyard problem: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct ShipyardError {
    pub field: String,
    pub rule: String,
}

fn err(field: impl Into<String>, rule: impl Into<String>) -> ShipyardError {
    ShipyardError { field: field.into(), rule: rule.into() }
}

impl Shipyard {
    /// Parses YAML (or JSON) and validates it.
    pub fn parse(yaml: &str) -> Result<Shipyard, ShipyardError> {
        let shipyard: Shipyard =
            yaml_serde::from_str(yaml).map_err(|e| err("shipyard", format!("not a valid shipyard document: {e}")))?;
        shipyard.validate()?;
        Ok(shipyard)
    }

    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.spec.stages.iter().find(|s| s.name == name)
    }

    pub fn stage_names(&self) -> Vec<String> {
        self.spec.stages.iter().map(|s| s.name.clone()).collect()
    }

    /// The stages whose sequences a stage's `triggeredOn` refers to (keptn's `parentStages`).
    pub fn parent_stages(&self, stage: &str) -> Vec<String> {
        let mut parents: Vec<String> = Vec::new();
        if let Some(st) = self.stage(stage) {
            for seq in &st.sequences {
                for t in &seq.triggered_on {
                    if let Some((s, _)) = t.event.split_once('.')
                        && s != stage
                        && !parents.iter().any(|p| p == s)
                    {
                        parents.push(s.to_string());
                    }
                }
            }
        }
        parents
    }

    pub fn validate(&self) -> Result<(), ShipyardError> {
        check_api_version(&self.api_version)?;
        if !self.kind.is_empty() && self.kind != "Shipyard" {
            return Err(err("kind", format!("must be \"Shipyard\", not {:?}", self.kind)));
        }
        if self.spec.stages.is_empty() {
            return Err(err("spec.stages", "a shipyard needs at least one stage"));
        }
        let mut stage_names = HashSet::new();
        for (i, stage) in self.spec.stages.iter().enumerate() {
            let field = format!("spec.stages[{i}].name");
            names::check_stage(&stage.name).map_err(|r| err(&field, r))?;
            if !stage_names.insert(stage.name.as_str()) {
                return Err(err(
                    field,
                    format!("stage {:?} is declared twice; stage names must be unique", stage.name),
                ));
            }
            let mut seq_names = HashSet::new();
            for (j, seq) in stage.sequences.iter().enumerate() {
                let base = format!("spec.stages[{i}].sequences[{j}]");
                names::check_event_segment("sequence", &seq.name).map_err(|r| err(format!("{base}.name"), r))?;
                if !seq_names.insert(seq.name.as_str()) {
                    return Err(err(
                        format!("{base}.name"),
                        format!(
                            "sequence {:?} is declared twice in stage {:?}; sequence names must be unique per stage",
                            seq.name, stage.name
                        ),
                    ));
                }
                if seq.tasks.is_empty() {
                    return Err(err(
                        format!("{base}.tasks"),
                        format!("sequence {:?} needs at least one task", seq.name),
                    ));
                }
                let mut task_names = HashSet::new();
                for (k, task) in seq.tasks.iter().enumerate() {
                    let tf = format!("{base}.tasks[{k}]");
                    names::check_event_segment("task", &task.name).map_err(|r| err(format!("{tf}.name"), r))?;
                    if !task_names.insert(task.name.as_str()) {
                        return Err(err(
                            format!("{tf}.name"),
                            format!(
                                "task {:?} appears twice in sequence {:?}; task names must be unique per sequence",
                                task.name, seq.name
                            ),
                        ));
                    }
                    if !task.triggered_after.is_empty() {
                        duration::parse(&task.triggered_after).map_err(|r| err(format!("{tf}.triggeredAfter"), r))?;
                    }
                    match &task.properties {
                        None | Some(Value::Object(_)) | Some(Value::Null) => {}
                        Some(_) => return Err(err(format!("{tf}.properties"), "must be a map of properties")),
                    }
                    if let Some(Value::String(t)) = task.properties.as_ref().and_then(|p| p.get("timeout")) {
                        duration::parse(t).map_err(|r| err(format!("{tf}.properties.timeout"), r))?;
                    }
                }
            }
        }
        // triggeredOn must name "<stage>.<sequence>.finished" of a sequence that exists.
        for (i, stage) in self.spec.stages.iter().enumerate() {
            for (j, seq) in stage.sequences.iter().enumerate() {
                for (t, trig) in seq.triggered_on.iter().enumerate() {
                    let field = format!("spec.stages[{i}].sequences[{j}].triggeredOn[{t}].event");
                    let parts: Vec<&str> = trig.event.split('.').collect();
                    let [st, sq, kind] = parts.as_slice() else {
                        return Err(err(
                            field,
                            format!("{:?} must have the form <stage>.<sequence>.finished", trig.event),
                        ));
                    };
                    if *kind != "finished" {
                        return Err(err(field, format!("{:?} must end in \".finished\"", trig.event)));
                    }
                    let Some(target) = self.stage(st) else {
                        return Err(err(
                            field,
                            format!("{:?} refers to stage {st:?}, which this shipyard does not declare", trig.event),
                        ));
                    };
                    if *sq != "evaluation" && !target.sequences.iter().any(|s| s.name == *sq) {
                        return Err(err(
                            field,
                            format!("{:?} refers to sequence {sq:?}, which stage {st:?} does not declare", trig.event),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// `spec.keptn.sh/<semver>` with version ≥ 0.2 (as keptn checks).
fn check_api_version(v: &str) -> Result<(), ShipyardError> {
    let rule =
        || err("apiVersion", format!("{v:?} is not supported: use spec.keptn.sh/0.2.x (e.g. spec.keptn.sh/0.2.3)"));
    let version = v.strip_prefix("spec.keptn.sh/").ok_or_else(rule)?;
    let mut parts = version.split('.').map(|p| p.parse::<u64>());
    let (Some(Ok(major)), Some(Ok(minor))) = (parts.next(), parts.next()) else {
        return Err(rule());
    };
    if parts.any(|p| p.is_err()) || (major, minor) < (0, 2) {
        return Err(rule());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOCKSHOP: &str = r#"
apiVersion: spec.keptn.sh/0.2.3
kind: Shipyard
metadata: { name: shipyard-sockshop }
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: deployment
              properties: { deploymentstrategy: direct }
            - name: test
              properties: { teststrategy: functional }
            - name: evaluation
            - name: release
    - name: production
      sequences:
        - name: delivery
          triggeredOn:
            - event: dev.delivery.finished
          tasks:
            - name: approval
              properties: { pass: automatic, warning: manual }
            - name: deployment
              triggeredAfter: "10m"
        - name: rollback
          triggeredOn:
            - event: production.delivery.finished
              selector: { match: { result: fail } }
          tasks:
            - name: rollback
"#;

    #[test]
    fn parses_the_sockshop_shipyard() {
        let s = Shipyard::parse(SOCKSHOP).unwrap();
        assert_eq!(s.stage_names(), vec!["dev", "production"]);
        assert_eq!(s.parent_stages("production"), vec!["dev"]);
        let rollback = &s.stage("production").unwrap().sequences[1];
        assert_eq!(rollback.triggered_on[0].selector.as_ref().unwrap().r#match["result"], "fail");
    }

    fn error_of(yaml: &str) -> ShipyardError {
        Shipyard::parse(yaml).unwrap_err()
    }

    #[test]
    fn rejects_with_field_and_rule() {
        let e = error_of(&SOCKSHOP.replace("spec.keptn.sh/0.2.3", "spec.keptn.sh/0.1.4"));
        assert_eq!(e.field, "apiVersion");
        let e = error_of(&SOCKSHOP.replace("- name: production", "- name: dev"));
        assert_eq!(e.field, "spec.stages[1].name");
        assert!(e.rule.contains("twice"));
        let e = error_of(&SOCKSHOP.replace("- name: test", "- name: release"));
        assert_eq!(e.field, "spec.stages[0].sequences[0].tasks[3].name");
        let e = error_of(&SOCKSHOP.replace("event: dev.delivery.finished", "event: qa.delivery.finished"));
        assert!(e.field.ends_with("triggeredOn[0].event") && e.rule.contains("stage \"qa\""), "{e}");
        let e = error_of(&SOCKSHOP.replace("event: dev.delivery.finished", "event: dev.hotfix.finished"));
        assert!(e.rule.contains("sequence \"hotfix\""), "{e}");
        let e = error_of(&SOCKSHOP.replace("\"10m\"", "\"10 minutes\""));
        assert!(e.field.ends_with("triggeredAfter"), "{e}");
        let e = error_of(&SOCKSHOP.replace("- name: dev", "- name: Dev"));
        assert_eq!(e.field, "spec.stages[0].name");
        let e = error_of("apiVersion: spec.keptn.sh/0.2.0\nspec:\n  stages: []\n");
        assert_eq!(e.field, "spec.stages");
        let e = error_of("apiVersion: [");
        assert_eq!(e.field, "shipyard");
    }
}
