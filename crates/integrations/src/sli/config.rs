//! What SLI providers share: `<provider>/sli.yaml` merged project → stage → service, keptn's
//! placeholders, and the `get-sli` request. Pure.

use keptn_formats::KeptnEvent;
use serde_json::Value;
use std::collections::BTreeMap;

/// The `get-sli` part of a `get-sli.triggered` plus the scope it is for.
#[derive(Debug, Clone, Default)]
pub struct SliRequest {
    pub project: String,
    pub stage: String,
    pub service: String,
    pub start: String,
    pub end: String,
    pub indicators: Vec<String>,
    pub filters: Vec<(String, String)>,
    pub labels: BTreeMap<String, String>,
    pub deployment: String,
}

impl SliRequest {
    pub fn from_event(ev: &KeptnEvent) -> SliRequest {
        let d = &ev.data;
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let g = &d["get-sli"];
        SliRequest {
            project: ev.project().into(),
            stage: ev.stage().into(),
            service: ev.service().into(),
            start: s(&g["start"]),
            end: s(&g["end"]),
            indicators: g["indicators"].as_array().into_iter().flatten().map(s).collect(),
            filters: g["customFilters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| (s(&f["key"]), s(&f["value"])))
                .collect(),
            labels: d["labels"].as_object().into_iter().flatten().map(|(k, v)| (k.clone(), s(v))).collect(),
            deployment: s(&d["deployment"]),
        }
    }

    /// keptn's `$DEPLOYMENT`: the event's deployment, else the `deployment` label, else `primary`.
    pub fn deployment(&self) -> &str {
        match (self.deployment.as_str(), self.labels.get("deployment")) {
            ("", Some(label)) if !label.is_empty() => label,
            ("", _) => "primary",
            (d, _) => d,
        }
    }

    /// `end − start` rounded up to whole seconds, for `$DURATION_SECONDS` (e.g. `300s`).
    pub fn duration_seconds(&self) -> Option<i64> {
        let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_millis());
        let (start, end) = (t(&self.start)?, t(&self.end)?);
        Some(((end - start).max(0) + 999) / 1000)
    }

    /// Fills keptn's placeholders into a query, URL, header or body (prometheus-service's order:
    /// custom filters, then scope, then labels, then the duration).
    pub fn fill(&self, template: &str) -> String {
        let mut out = template.to_string();
        for (key, value) in &self.filters {
            let value: String = value.chars().filter(|c| *c != '\'' && *c != '"').collect();
            out = out.replace(&format!("${key}"), &value).replace(&format!("${}", key.to_uppercase()), &value);
        }
        out = out
            .replace("$PROJECT", &self.project)
            .replace("$STAGE", &self.stage)
            .replace("$SERVICE", &self.service)
            .replace("$DEPLOYMENT", self.deployment());
        for (key, value) in &self.labels {
            out = out.replace(&format!("$LABEL.{key}"), value);
        }
        if let Some(secs) = self.duration_seconds() {
            out = out.replace("$DURATION_SECONDS", &format!("{secs}s"));
        }
        out
    }
}

/// The `indicators` of `sli.yaml` files given lowest level first (project, stage, service);
/// later levels override earlier ones per indicator.
pub fn merge_indicators(files: &[&[u8]]) -> Result<BTreeMap<String, Value>, String> {
    let mut out = BTreeMap::new();
    for raw in files {
        let doc: Value = yaml_serde::from_slice(raw).map_err(|e| format!("sli.yaml is not valid YAML: {e}"))?;
        match &doc["indicators"] {
            Value::Object(map) => out.extend(map.iter().map(|(k, v)| (k.clone(), v.clone()))),
            Value::Null => {}
            _ => return Err("sli.yaml: indicators must be a map of SLI name to query".into()),
        }
    }
    Ok(out)
}

/// A provider's settings file (`<provider>/config.yaml`) merged the same way, key by key.
pub fn merge_settings(files: &[&[u8]]) -> Result<BTreeMap<String, Value>, String> {
    let mut out = BTreeMap::new();
    for raw in files {
        match yaml_serde::from_slice::<Value>(raw).map_err(|e| format!("config.yaml is not valid YAML: {e}"))? {
            Value::Object(map) => out.extend(map),
            Value::Null => {}
            _ => return Err("config.yaml must be a map of settings".into()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> SliRequest {
        SliRequest {
            project: "sockshop".into(),
            stage: "dev".into(),
            service: "carts".into(),
            start: "2023-01-01T10:00:00.000Z".into(),
            end: "2023-01-01T10:05:00.400Z".into(),
            filters: vec![("handler".into(), "'ItemsController'".into())],
            labels: [("buildId".into(), "42".into())].into(),
            ..SliRequest::default()
        }
    }

    #[test]
    fn placeholders_as_prometheus_service_fills_them() {
        let q = "rate(x{job='$SERVICE-$PROJECT-$STAGE',h='$handler',H='$HANDLER',d='$DEPLOYMENT',b='$LABEL.buildId'}[$DURATION_SECONDS])";
        assert_eq!(
            request().fill(q),
            "rate(x{job='carts-sockshop-dev',h='ItemsController',H='ItemsController',d='primary',b='42'}[301s])"
        );
    }

    #[test]
    fn deployment_falls_back_to_the_label_then_primary() {
        let mut r = request();
        assert_eq!(r.deployment(), "primary");
        r.labels.insert("deployment".into(), "canary".into());
        assert_eq!(r.deployment(), "canary");
        r.deployment = "direct".into();
        assert_eq!(r.deployment(), "direct");
    }

    #[test]
    fn service_level_overrides_project_level() {
        let project = b"indicators:\n  a: qa\n  b: qb\n".as_slice();
        let service = b"spec_version: '1.0'\nindicators:\n  b: qb2\n".as_slice();
        let m = merge_indicators(&[project, service]).unwrap();
        assert_eq!((m["a"].as_str(), m["b"].as_str()), (Some("qa"), Some("qb2")));
        assert!(merge_indicators(&[b"indicators: [1]".as_slice()]).is_err());
    }
}
