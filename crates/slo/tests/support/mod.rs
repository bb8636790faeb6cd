//! Builders shared by the integration tests.
#![allow(dead_code)] // each test file uses a different subset

use keptn_slo::{Evaluation, Previous, SliResult, Slo, evaluate, select_baseline};
use serde_json::{Value, json};

pub const START: &str = "2023-01-01T10:00:00.000Z";
pub const END: &str = "2023-01-01T10:05:00.000Z";

pub fn slo(yaml: &str) -> Slo {
    Slo::parse_lenient(yaml.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

pub fn ok(metric: &str, value: f64) -> SliResult {
    SliResult { metric: metric.into(), value, success: true, message: String::new() }
}

pub fn failed(metric: &str, message: &str) -> SliResult {
    SliResult { metric: metric.into(), value: 0.0, success: false, message: message.into() }
}

/// A previous evaluation.finished data object with the given `data.result` and indicator values
/// `(metric, value, success)`.
pub fn previous(id: &str, result: &str, values: &[(&str, f64, bool)]) -> Previous {
    let indicators: Vec<Value> = values
        .iter()
        .map(|(metric, value, success)| json!({"value": {"metric": metric, "value": value, "success": success}}))
        .collect();
    Previous {
        id: Some(id.into()),
        data: json!({"result": result, "evaluation": {"result": result, "indicatorResults": indicators}}),
    }
}

/// Selects the baseline like the server does, then evaluates.
pub fn run(slo: &Slo, values: &[SliResult], history: &[Previous]) -> Evaluation {
    let chosen = select_baseline(slo, history);
    evaluate(slo, values, &chosen, START, END)
}

pub fn indicator(evaluation: &Evaluation, index: usize) -> &Value {
    &evaluation.evaluation["indicatorResults"][index]
}

pub fn targets(indicator: &Value, key: &str) -> Vec<(String, f64, bool)> {
    indicator[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} is not an array: {indicator}"))
        .iter()
        .map(|t| {
            (
                t["criteria"].as_str().unwrap().to_string(),
                t["targetValue"].as_f64().unwrap(),
                t["violated"].as_bool().unwrap(),
            )
        })
        .collect()
}

pub fn target(criteria: &str, value: f64, violated: bool) -> (String, f64, bool) {
    (criteria.to_string(), value, violated)
}

pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// A one-objective SLO with the given pass criteria (one group), scored against 90%/75%.
pub fn single(sli: &str, criteria: &[&str], comparison: &str) -> Slo {
    let list = criteria.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", ");
    slo(&format!(
        "comparison: {comparison}\nobjectives:\n  - sli: {sli}\n    pass:\n      - criteria: [{list}]\ntotal_score: {{pass: \"90%\", warning: \"75%\"}}\n"
    ))
}
