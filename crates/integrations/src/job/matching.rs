//! Which actions of a `job/config.yaml` an event matches. Pure.
//!
//! As job-executor-service: an action matches when one of its `events` names the event type by
//! a Go regular expression, matched *unanchored* (Go's `regexp.MatchString`: `test.triggered`
//! matches `sh.keptn.event.test.triggered`; write `^…$` for an exact match), and, when it has a
//! `jsonpath` filter, the property resolves to a string equal to `match`. JSONPath runs over
//! the event map `{id, shkeptncontext, time, source, data, specversion, type, gitcommitid}`.

use super::config::{Action, JobConfig};
use keptn_formats::KeptnEvent;
use regex::Regex;
use serde_json::{Value, json};

/// A Go-style regular expression (the `regex` crate accepts RE2 syntax, as Go does).
pub fn compile(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| e.to_string())
}

/// The event as JSONPath and `valueFrom: event` see it.
pub fn event_map(event: &KeptnEvent) -> Value {
    json!({
        "id": event.id,
        "shkeptncontext": event.shkeptncontext,
        "time": event.time,
        "source": event.source,
        "data": event.data,
        "specversion": event.specversion,
        "type": event.ty,
        "gitcommitid": event.gitcommitid,
    })
}

/// The one value a JSONPath selects, or None (nothing, several, or not a valid path).
pub fn select<'a>(path: &str, map: &'a Value) -> Option<&'a Value> {
    let path = serde_json_path::JsonPath::parse(path).ok()?;
    path.query(map).exactly_one().ok()
}

fn matches(action: &Action, ty: &str, map: &Value) -> bool {
    action.events.iter().any(|event| {
        let type_matches = compile(&event.name).is_ok_and(|re| re.is_match(ty));
        type_matches
            && event.jsonpath.as_ref().is_none_or(|filter| {
                select(&filter.property, map).and_then(Value::as_str) == Some(filter.equals.as_str())
            })
    })
}

/// The matching actions with their index in the file, in the file's order.
pub fn matching_actions<'a>(config: &'a JobConfig, event: &KeptnEvent) -> Vec<(usize, &'a Action)> {
    let map = event_map(event);
    config.actions.iter().enumerate().filter(|(_, action)| matches(action, &event.ty, &map)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::config::parse;

    fn event(ty: &str, data: Value) -> KeptnEvent {
        let mut e = KeptnEvent::new("id1".into(), ty.into(), "ctx".into(), "2024-01-01T00:00:00.000Z".into(), data);
        e.gitcommitid = "abc".into();
        e
    }

    fn names(config: &JobConfig, e: &KeptnEvent) -> Vec<String> {
        matching_actions(config, e).iter().map(|(_, a)| a.name.clone()).collect()
    }

    const CONFIG: &str = r#"
apiVersion: v2
actions:
  - name: exact
    events: [{name: "^sh\\.keptn\\.event\\.test\\.triggered$"}]
    tasks: [{name: t, image: alpine}]
  - name: wildcard
    events: [{name: "sh.keptn.event.*.triggered"}]
    tasks: [{name: t, image: alpine}]
  - name: unanchored
    events: [{name: "deployment"}]
    tasks: [{name: t, image: alpine}]
  - name: filtered
    events:
      - name: "test.triggered"
        jsonpath: {property: "$.data.test.teststrategy", match: "locust"}
    tasks: [{name: t, image: alpine}]
  - name: by-commit
    events:
      - name: "."
        jsonpath: {property: "$.gitcommitid", match: "abc"}
    tasks: [{name: t, image: alpine}]
"#;

    #[test]
    fn types_match_as_go_regexp_match_string() {
        let config = parse(CONFIG).unwrap();
        let plain = event("sh.keptn.event.test.triggered", json!({}));
        assert_eq!(names(&config, &plain), ["exact", "wildcard", "by-commit"]);
        let deploy = event("sh.keptn.event.deployment.finished", json!({}));
        assert_eq!(names(&config, &deploy), ["unanchored", "by-commit"]);
    }

    #[test]
    fn jsonpath_filters_need_an_equal_string() {
        let config = parse(CONFIG).unwrap();
        let locust = event("sh.keptn.event.test.triggered", json!({"test": {"teststrategy": "locust"}}));
        assert!(names(&config, &locust).contains(&"filtered".to_string()));
        let other = event("sh.keptn.event.test.triggered", json!({"test": {"teststrategy": "jmeter"}}));
        assert!(!names(&config, &other).contains(&"filtered".to_string()));
        let number = event("sh.keptn.event.test.triggered", json!({"test": {"teststrategy": 5}}));
        assert!(!names(&config, &number).contains(&"filtered".to_string()));
    }

    #[test]
    fn the_event_map_has_keptns_keys() {
        let map = event_map(&event("t", json!({"a": 1})));
        for key in ["id", "shkeptncontext", "time", "source", "data", "specversion", "type", "gitcommitid"] {
            assert!(map.get(key).is_some(), "{key}");
        }
        assert_eq!(select("$.data.a", &map), Some(&json!(1)));
        assert_eq!(select("$.data.missing", &map), None);
    }
}
