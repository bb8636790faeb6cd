//! `job/config.yaml` (job-executor-service's `apiVersion: v2`), parsed strictly: an unknown
//! key is an error naming it, so a typo (`maxPollDurtion`) is not silently ignored. Pure.

use serde::Deserialize;
use std::collections::BTreeMap;

/// Where the file lives, at service, stage or project level.
pub const URI: &str = "job/config.yaml";
/// A task's time limit when `maxPollDuration` is not set (job-executor's default).
pub const DEFAULT_MAX_POLL_SECONDS: u64 = 300;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JobConfig {
    pub api_version: String,
    #[serde(default)]
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Action {
    pub name: String,
    /// No `.finished` (nor error events) for this action.
    #[serde(default)]
    pub silent: bool,
    pub events: Vec<EventMatch>,
    pub tasks: Vec<Task>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EventMatch {
    /// A Go regular expression matched (unanchored) against the event type.
    pub name: String,
    #[serde(default)]
    pub jsonpath: Option<JsonPathMatch>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JsonPathMatch {
    pub property: String,
    #[serde(rename = "match")]
    pub equals: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Task {
    pub name: String,
    pub image: String,
    #[serde(default)]
    pub image_pull_policy: Option<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default)]
    pub env: Vec<Env>,
    /// Kubernetes only (recorded, not applied by the local runner).
    #[serde(default)]
    pub resources: Option<Resources>,
    #[serde(default)]
    pub max_poll_duration: Option<u64>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub ttl_seconds_after_finished: Option<i64>,
    #[serde(default)]
    pub security_context: Option<SecurityContext>,
    #[serde(default)]
    pub service_account: Option<String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Env {
    pub name: String,
    #[serde(default)]
    pub value: String,
    pub value_from: ValueFrom,
    /// How an event value is formatted: `string` (default), `json` or `yaml`.
    #[serde(default, rename = "as")]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ValueFrom {
    Event,
    Secret,
    String,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    String,
    Json,
    Yaml,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default)]
    pub limits: BTreeMap<String, String>,
    #[serde(default)]
    pub requests: BTreeMap<String, String>,
}

/// The subset of a Kubernetes container security context job-executor passed through.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecurityContext {
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub run_as_non_root: Option<bool>,
    pub read_only_root_filesystem: Option<bool>,
    pub privileged: Option<bool>,
    pub allow_privilege_escalation: Option<bool>,
    pub capabilities: Option<Capabilities>,
    pub seccomp_profile: Option<BTreeMap<String, String>>,
    pub se_linux_options: Option<BTreeMap<String, String>>,
    pub proc_mount: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub drop: Vec<String>,
}

impl Task {
    /// The task's time limit in seconds.
    pub fn max_poll_seconds(&self) -> u64 {
        self.max_poll_duration.unwrap_or(DEFAULT_MAX_POLL_SECONDS)
    }
}

/// Parses and checks a `job/config.yaml`; the error says what is wrong and where.
pub fn parse(text: &str) -> Result<JobConfig, String> {
    let config: JobConfig = yaml_serde::from_str(text).map_err(|e| e.to_string())?;
    if config.api_version != "v2" {
        return Err(format!(
            "apiVersion must be v2 (keptn's job-executor-service format), not {:?}",
            config.api_version
        ));
    }
    for (a, action) in config.actions.iter().enumerate() {
        let at = format!("actions[{a}] ({:?})", action.name);
        if action.name.trim().is_empty() {
            return Err(format!("actions[{a}].name must not be empty"));
        }
        if action.events.is_empty() {
            return Err(format!("{at}: events must name at least one event type"));
        }
        for (e, event) in action.events.iter().enumerate() {
            crate::job::matching::compile(&event.name)
                .map_err(|err| format!("{at}.events[{e}].name {:?} is not a regular expression: {err}", event.name))?;
            if let Some(filter) = &event.jsonpath {
                serde_json_path::JsonPath::parse(&filter.property).map_err(|err| {
                    format!("{at}.events[{e}].jsonpath.property {:?} is not a JSONPath: {err}", filter.property)
                })?;
            }
        }
        if action.tasks.is_empty() {
            return Err(format!("{at}: tasks must list at least one task"));
        }
        for (t, task) in action.tasks.iter().enumerate() {
            let tat = format!("{at}.tasks[{t}] ({:?})", task.name);
            if task.name.trim().is_empty() {
                return Err(format!("{at}.tasks[{t}].name must not be empty"));
            }
            if task.image.trim().is_empty() {
                return Err(format!("{tat}: image must not be empty"));
            }
            if task.max_poll_duration == Some(0) {
                return Err(format!("{tat}: maxPollDuration must be at least 1 (seconds)"));
            }
            for (v, env) in task.env.iter().enumerate() {
                if env.name.trim().is_empty() {
                    return Err(format!("{tat}.env[{v}].name must not be empty"));
                }
                if env.value_from == ValueFrom::Event {
                    serde_json_path::JsonPath::parse(&env.value).map_err(|err| {
                        format!("{tat}.env[{v}] ({}): value {:?} is not a JSONPath: {err}", env.name, env.value)
                    })?;
                }
            }
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
apiVersion: v2
actions:
  - name: "Run locust"
    silent: false
    events:
      - name: "sh.keptn.event.test.triggered"
        jsonpath:
          property: "$.data.test.teststrategy"
          match: "locust"
    tasks:
      - name: "Run locust tests"
        image: "locustio/locust"
        imagePullPolicy: IfNotPresent
        cmd: ["locust"]
        args: ["--config", "/keptn/locust/locust.conf", "--host", "$(HOST)"]
        workingDir: /keptn
        files: ["locust/basic.py", "/helm"]
        env:
          - name: HOST
            value: "$.data.deployment.deploymentURIsLocal[0]"
            valueFrom: event
          - name: EVENT
            value: "$"
            valueFrom: event
            as: json
          - name: locust-secret
            valueFrom: secret
          - name: DATA_DIR
            valueFrom: string
            value: /tmp/data
        resources:
          limits: {cpu: "1", memory: 512Mi}
          requests: {cpu: 50m, memory: 128Mi}
        maxPollDuration: 1200
        namespace: carts
        ttlSecondsAfterFinished: 600
        securityContext: {runAsUser: 7000, readOnlyRootFilesystem: false}
        serviceAccount: my-sa
        annotations: {key1: value1}
"#;

    #[test]
    fn keptns_full_example_parses() {
        let config = parse(FULL).unwrap();
        let task = &config.actions[0].tasks[0];
        assert_eq!(task.args[3], "$(HOST)");
        assert_eq!(task.env[1].format, Format::Json);
        assert_eq!(task.env[2].value_from, ValueFrom::Secret);
        assert_eq!(task.max_poll_seconds(), 1200);
        assert_eq!(task.files, ["locust/basic.py", "/helm"]);
        assert_eq!(config.actions[0].events[0].jsonpath.as_ref().unwrap().equals, "locust");
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let typo = FULL.replace("maxPollDuration: 1200", "maxPollDurtion: 1200");
        let err = parse(&typo).unwrap_err();
        assert!(err.contains("maxPollDurtion"), "{err}");
        let top = "apiVersion: v2\nactionz: []\n";
        assert!(parse(top).unwrap_err().contains("actionz"));
        let nested = FULL.replace("runAsUser: 7000", "runAsUsr: 7000");
        assert!(parse(&nested).unwrap_err().contains("runAsUsr"));
    }

    #[test]
    fn wrong_version_values_and_expressions_are_refused() {
        let v1 = FULL.replace("apiVersion: v2", "apiVersion: v1");
        assert!(parse(&v1).unwrap_err().contains("apiVersion must be v2"));
        let from = FULL.replace("valueFrom: string", "valueFrom: file");
        assert!(parse(&from).unwrap_err().contains("file"), "{}", parse(&from).unwrap_err());
        let re = FULL.replace("sh.keptn.event.test.triggered", "sh.keptn.event.(test");
        let err = parse(&re).unwrap_err();
        assert!(err.contains("actions[0] (\"Run locust\").events[0].name"), "{err}");
        let path = FULL.replace("$.data.test.teststrategy", "$.data[");
        assert!(parse(&path).unwrap_err().contains("jsonpath.property"));
        let no_image =
            "apiVersion: v2\nactions:\n  - name: a\n    events: [{name: x}]\n    tasks: [{name: t, image: ''}]\n";
        assert!(parse(no_image).unwrap_err().contains("image must not be empty"));
        assert!(parse("apiVersion: [").is_err());
    }

    #[test]
    fn defaults_apply() {
        let text =
            "apiVersion: v2\nactions:\n  - name: a\n    events: [{name: x}]\n    tasks: [{name: t, image: alpine}]\n";
        let config = parse(text).unwrap();
        assert!(!config.actions[0].silent);
        assert_eq!(config.actions[0].tasks[0].max_poll_seconds(), 300);
    }
}
