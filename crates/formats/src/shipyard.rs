//! Shipyard `spec.keptn.sh/0.2.x`: parsing and validation.
//!
//! keptn only YAML-decoded the shipyard; we also reject what would silently break at run time
//! (duplicate names, dangling or circular `triggeredOn`, bad durations, dots in names) and
//! shipyards too large to handle (see the `MAX_*` limits). Every error names the field and the
//! rule.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

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

/// Most stages in a shipyard (each is a directory in the project's repository).
pub const MAX_STAGES: usize = 100;
/// Most sequences in one stage.
pub const MAX_SEQUENCES_PER_STAGE: usize = 100;
/// Most tasks in one sequence.
pub const MAX_TASKS_PER_SEQUENCE: usize = 100;
/// Most tasks in the whole shipyard.
pub const MAX_TASKS: usize = 10_000;
/// Most `triggeredOn` entries of one sequence.
pub const MAX_TRIGGERS_PER_SEQUENCE: usize = 100;

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
        self.check_size()?;
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
        self.check_trigger_cycles()
    }

    /// The limits, checked before anything else looks at every element.
    fn check_size(&self) -> Result<(), ShipyardError> {
        let too_many = |field: String, what: &str, max: usize| {
            Err(err(field, format!("has more than {max} {what}; split the project or simplify its shipyard")))
        };
        if self.spec.stages.len() > MAX_STAGES {
            return too_many("spec.stages".into(), "stages", MAX_STAGES);
        }
        let mut tasks = 0;
        for (i, stage) in self.spec.stages.iter().enumerate() {
            if stage.sequences.len() > MAX_SEQUENCES_PER_STAGE {
                return too_many(format!("spec.stages[{i}].sequences"), "sequences", MAX_SEQUENCES_PER_STAGE);
            }
            for (j, seq) in stage.sequences.iter().enumerate() {
                let base = format!("spec.stages[{i}].sequences[{j}]");
                if seq.tasks.len() > MAX_TASKS_PER_SEQUENCE {
                    return too_many(format!("{base}.tasks"), "tasks", MAX_TASKS_PER_SEQUENCE);
                }
                if seq.triggered_on.len() > MAX_TRIGGERS_PER_SEQUENCE {
                    return too_many(format!("{base}.triggeredOn"), "entries", MAX_TRIGGERS_PER_SEQUENCE);
                }
                tasks += seq.tasks.len();
            }
        }
        if tasks > MAX_TASKS {
            return too_many("spec.stages".into(), "tasks in all", MAX_TASKS);
        }
        Ok(())
    }

    /// Sequences that trigger each other in a circle (`dev.delivery` on `prod.delivery.finished`
    /// and back) would run forever: refused, naming the circle. Called once every `triggeredOn`
    /// is known to name a declared sequence (or a stage's implicit `evaluation`).
    fn check_trigger_cycles(&self) -> Result<(), ShipyardError> {
        // Nodes: the declared sequences, in order; an edge runs from a sequence to each sequence
        // its `.finished` triggers (with the index of that `triggeredOn` entry).
        let mut pos = Vec::new();
        let mut id: HashMap<(&str, &str), usize> = HashMap::new();
        for (i, stage) in self.spec.stages.iter().enumerate() {
            for (j, seq) in stage.sequences.iter().enumerate() {
                id.insert((stage.name.as_str(), seq.name.as_str()), pos.len());
                pos.push((i, j));
            }
        }
        let mut next: Vec<Vec<(usize, usize)>> = vec![Vec::new(); pos.len()];
        for (to, &(i, j)) in pos.iter().enumerate() {
            for (t, trig) in self.spec.stages[i].sequences[j].triggered_on.iter().enumerate() {
                let mut parts = trig.event.split('.');
                if let (Some(st), Some(sq)) = (parts.next(), parts.next())
                    && let Some(&from) = id.get(&(st, sq))
                {
                    next[from].push((to, t));
                }
            }
        }
        let name = |k: usize| {
            let (i, j) = pos[k];
            format!("{}.{}", self.spec.stages[i].name, self.spec.stages[i].sequences[j].name)
        };
        // Depth first, without recursion; `on_path` marks the sequences of the current chain.
        let (mut done, mut on_path) = (vec![false; pos.len()], vec![false; pos.len()]);
        for start in 0..pos.len() {
            if done[start] {
                continue;
            }
            let mut chain: Vec<(usize, usize)> = vec![(start, 0)];
            on_path[start] = true;
            while let Some(&(node, edge)) = chain.last() {
                let Some(&(to, t)) = next[node].get(edge) else {
                    chain.pop();
                    (on_path[node], done[node]) = (false, true);
                    continue;
                };
                chain.last_mut().expect("not empty").1 += 1;
                if on_path[to] {
                    let from = chain.iter().position(|&(k, _)| k == to).expect("on the chain");
                    let circle: Vec<String> = chain[from..].iter().map(|&(k, _)| name(k)).chain([name(to)]).collect();
                    let (i, j) = pos[to];
                    return Err(err(
                        format!("spec.stages[{i}].sequences[{j}].triggeredOn[{t}].event"),
                        format!(
                            "sequences trigger each other in a circle, which would never end: {}; remove one of these triggeredOn entries",
                            circle.join(" → ")
                        ),
                    ));
                }
                if !done[to] {
                    on_path[to] = true;
                    chain.push((to, 0));
                }
            }
        }
        Ok(())
    }
}

/// `spec.keptn.sh/0.2` or `spec.keptn.sh/0.2.<patch>`: the shipyard format keptn 1.x defines
/// (keptn itself took any version ≥ 0.2, so a later format would have been misread).
fn check_api_version(v: &str) -> Result<(), ShipyardError> {
    let supported = v
        .strip_prefix("spec.keptn.sh/0.2")
        .is_some_and(|patch| patch.is_empty() || patch.strip_prefix('.').is_some_and(|p| p.parse::<u64>().is_ok()));
    if supported {
        return Ok(());
    }
    Err(err(
        "apiVersion",
        format!("{v:?} is not supported: the accepted versions are spec.keptn.sh/0.2.x (e.g. spec.keptn.sh/0.2.3)"),
    ))
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

    #[test]
    fn only_the_0_2_format_is_accepted() {
        for ok in ["spec.keptn.sh/0.2", "spec.keptn.sh/0.2.0", "spec.keptn.sh/0.2.4"] {
            Shipyard::parse(&SOCKSHOP.replace("spec.keptn.sh/0.2.3", ok)).unwrap();
        }
        for bad in
            ["spec.keptn.sh/0.3.0", "spec.keptn.sh/1.0.0", "spec.keptn.sh/0.20", "spec.keptn.sh/0.2.x", "0.2.3", ""]
        {
            let e = error_of(&SOCKSHOP.replace("spec.keptn.sh/0.2.3", bad));
            assert_eq!(e.field, "apiVersion", "{bad}");
            assert!(e.rule.contains("spec.keptn.sh/0.2.x"), "names the accepted versions: {e}");
        }
    }

    #[test]
    fn trigger_cycles_are_named() {
        let two = SOCKSHOP.replace(
            "        - name: delivery\n          tasks:\n            - name: deployment\n              properties: { deploymentstrategy: direct }",
            "        - name: delivery\n          triggeredOn:\n            - event: production.delivery.finished\n          tasks:\n            - name: deployment\n              properties: { deploymentstrategy: direct }",
        );
        assert_ne!(two, SOCKSHOP);
        let e = error_of(&two);
        assert_eq!(e.field, "spec.stages[0].sequences[0].triggeredOn[0].event", "{e}");
        assert!(e.rule.contains("dev.delivery → production.delivery → dev.delivery"), "{e}");
        // A sequence that triggers itself.
        let own = SOCKSHOP.replace("event: production.delivery.finished", "event: production.rollback.finished");
        let e = error_of(&own);
        assert!(e.rule.contains("production.rollback → production.rollback"), "{e}");
        // Three stages around: found wherever the walk starts.
        let ring = r#"
apiVersion: spec.keptn.sh/0.2.3
spec:
  stages:
    - name: a
      sequences:
        - { name: s, triggeredOn: [ { event: c.s.finished } ], tasks: [ { name: t } ] }
    - name: b
      sequences:
        - { name: x, tasks: [ { name: t } ] }
        - { name: s, triggeredOn: [ { event: b.x.finished }, { event: a.s.finished } ], tasks: [ { name: t } ] }
    - name: c
      sequences:
        - { name: s, triggeredOn: [ { event: b.s.finished } ], tasks: [ { name: t } ] }
"#;
        let e = error_of(ring);
        assert!(e.rule.contains("a.s → b.s → c.s → a.s"), "{e}");
        // A diamond is no circle; nor is triggering on a stage's evaluation.
        let diamond = ring.replace("event: c.s.finished", "event: b.x.finished");
        Shipyard::parse(&diamond).unwrap();
    }

    #[test]
    fn size_limits() {
        let stages = |n: usize| {
            let list: String = (0..n).map(|i| format!("    - {{ name: s{i} }}\n")).collect();
            format!("apiVersion: spec.keptn.sh/0.2.3\nspec:\n  stages:\n{list}")
        };
        Shipyard::parse(&stages(MAX_STAGES)).unwrap();
        let e = error_of(&stages(10_000));
        assert_eq!(e.field, "spec.stages");
        assert!(e.rule.contains("more than 100 stages"), "{e}");
        let tasks = |n: usize| {
            let list: String = (0..n).map(|i| format!("{{ name: t{i} }},")).collect();
            format!(
                "apiVersion: spec.keptn.sh/0.2.3\nspec:\n  stages:\n    - {{ name: dev, sequences: [ {{ name: d, tasks: [ {list} ] }} ] }}\n"
            )
        };
        Shipyard::parse(&tasks(MAX_TASKS_PER_SEQUENCE)).unwrap();
        let e = error_of(&tasks(MAX_TASKS_PER_SEQUENCE + 1));
        assert_eq!(e.field, "spec.stages[0].sequences[0].tasks", "{e}");
        let seqs: String = (0..MAX_SEQUENCES_PER_STAGE)
            .map(|j| {
                format!(
                    "{{ name: q{j}, tasks: [ {} ] }},",
                    (0..MAX_TASKS_PER_SEQUENCE).map(|k| format!("{{ name: t{k} }},")).collect::<String>()
                )
            })
            .collect();
        let big = format!(
            "apiVersion: spec.keptn.sh/0.2.3\nspec:\n  stages:\n    - {{ name: a, sequences: [ {seqs} ] }}\n    - {{ name: b, sequences: [ {seqs} ] }}\n"
        );
        let e = error_of(&big);
        assert!(e.rule.contains("more than 10000 tasks in all"), "{e}");
    }
}
