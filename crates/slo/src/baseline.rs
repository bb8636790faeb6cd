//! Which previous evaluations a new one is compared with, and the per-SLI baseline they give.

use std::collections::HashMap;

use serde_json::Value;

use crate::slo::{Aggregate, Slo};

/// One earlier `evaluation.finished`: its event id and its `data` object
/// (with `data.result` and `data.evaluation.indicatorResults`).
#[derive(Debug, Clone, PartialEq)]
pub struct Previous {
    pub id: Option<String>,
    pub data: Value,
}

impl Previous {
    /// `data.result`, which keptn filters on (not `data.evaluation.result`).
    pub fn result(&self) -> Option<&str> {
        self.data.get("result").and_then(Value::as_str)
    }
}

/// Applies `compare_with` / `include_result_with_score` / `number_of_comparison_results` to
/// candidates given newest first (the caller removes invalidated ones): the chosen ones, newest first.
/// Like keptn's datastore query, any `evaluation.finished` of the service qualifies, errored ones too.
pub fn select_baseline<'a>(slo: &Slo, candidates: &'a [Previous]) -> Vec<&'a Previous> {
    let comparison = slo.comparison();
    let filter = comparison.result_filter();
    candidates
        .iter()
        .filter(|p| filter.is_none_or(|accepted| p.result().is_some_and(|r| accepted.contains(&r))))
        .take(comparison.results_wanted())
        .collect()
}

/// Successful previous values per SLI name, gathered once per evaluation so that each objective
/// is a hash lookup rather than a scan of every previous result.
pub(crate) struct History<'a> {
    values: HashMap<&'a str, Vec<f64>>,
}

impl<'a> History<'a> {
    /// Entries with a `null` value or `success: false` are skipped (tests "6096", "BUG 1263").
    /// Order is keptn's: events newest first, results in event order (it matters for float sums).
    pub(crate) fn new(baseline: &[&'a Previous]) -> History<'a> {
        let mut values: HashMap<&str, Vec<f64>> = HashMap::new();
        let results = baseline
            .iter()
            .filter_map(|p| p.data.pointer("/evaluation/indicatorResults").and_then(Value::as_array))
            .flatten();
        for result in results {
            if let Some((metric, number)) = successful_value(result) {
                values.entry(metric).or_default().push(number);
            }
        }
        History { values }
    }

    /// The aggregated baseline for an SLI; `None` when there is no usable previous value.
    pub(crate) fn baseline(&self, sli: &str, aggregate: &Aggregate) -> Option<f64> {
        self.values.get(sli).filter(|v| !v.is_empty()).map(|v| aggregate_values(v, aggregate))
    }
}

/// `(metric, value)` of an `indicatorResults[]` entry whose `value.success` is true.
/// Walks each object once instead of keyed lookups: this loop runs for every previous result
/// (30 000 in the bench) and map lookups were most of an evaluation's time.
fn successful_value(result: &Value) -> Option<(&str, f64)> {
    let value = result.as_object()?.iter().find_map(|(k, v)| (k == "value").then_some(v))?.as_object()?;
    let (mut metric, mut number, mut success) = ("", Some(0.0), false);
    for (key, field) in value {
        match key.as_str() {
            "metric" => metric = field.as_str().unwrap_or(""),
            // Missing or null decodes to 0 in Go; a non-number would fail the decode: skip it.
            "value" => number = if field.is_null() { Some(0.0) } else { field.as_f64() },
            "success" => success = field.as_bool() == Some(true),
            _ => {}
        }
    }
    if success { number.map(|n| (metric, n)) } else { None }
}

/// keptn's aggregation of previous values (non-empty). An unknown function yields 0 as in keptn;
/// evaluations never get there because of fix F3.
pub fn aggregate_values(values: &[f64], aggregate: &Aggregate) -> f64 {
    match aggregate {
        Aggregate::Avg => values.iter().sum::<f64>() / values.len() as f64,
        Aggregate::P50 => percentile(values, 0.5),
        Aggregate::P90 => percentile(values, 0.9),
        Aggregate::P95 => percentile(values, 0.95),
        Aggregate::Unknown(_) => 0.0,
    }
}

/// Position `p · (n + 1)` in the sorted values, linearly interpolated; clamped to min and max.
fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let pos = p * (n + 1) as f64;
    if pos < 1.0 {
        sorted[0]
    } else if pos >= n as f64 {
        sorted[n - 1]
    } else {
        // 1 <= pos < n, so both indices are in range.
        let index = pos.floor() as usize;
        let (lower, upper) = (sorted[index - 1], sorted[index]);
        lower + (pos - pos.floor()) * (upper - lower)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn percentiles_over_zero_to_ten() {
        let values: Vec<f64> = (0..=10).rev().map(f64::from).collect();
        assert!(close(aggregate_values(&values, &Aggregate::P50), 5.0));
        assert!(close(aggregate_values(&values, &Aggregate::P90), 9.8));
        assert!(close(aggregate_values(&values, &Aggregate::P95), 10.0));
        assert!(close(aggregate_values(&values, &Aggregate::Avg), 5.0));
    }

    #[test]
    fn percentile_position_below_one_is_the_minimum() {
        // Two values, p50: pos = 0.5 · 3 = 1.5 → halfway. One value, p50: pos = 1 ≥ n → max.
        assert_eq!(aggregate_values(&[10.0, 5.0], &Aggregate::P50), 7.5);
        assert_eq!(aggregate_values(&[7.0], &Aggregate::P50), 7.0);
        // p5 of two values: pos = 0.15 < 1 → min.
        assert_eq!(percentile(&[3.0, 1.0], 0.05), 1.0);
    }

    #[test]
    fn unknown_aggregate_is_zero_like_keptn() {
        assert_eq!(aggregate_values(&[3.0, 4.0], &Aggregate::Unknown("max".into())), 0.0);
    }

    fn previous(id: &str, result: &str, indicators: Value) -> Previous {
        Previous {
            id: Some(id.to_string()),
            data: json!({"result": result, "evaluation": {"result": result, "indicatorResults": indicators}}),
        }
    }

    #[test]
    fn history_skips_null_and_failed_values() {
        let events = [
            previous(
                "1",
                "pass",
                json!([
                    {"value": {"metric": "rt", "value": 10.0, "success": true}},
                    {"value": {"metric": "rt", "value": 99.0, "success": false}},
                    {"value": null},
                    {"value": {"metric": "err", "value": 1.0, "success": true}}
                ]),
            ),
            previous("2", "fail", json!([{"value": {"metric": "rt", "value": 20.0, "success": true}}])),
            previous("3", "pass", json!(null)),
        ];
        let chosen: Vec<&Previous> = events.iter().collect();
        let history = History::new(&chosen);
        assert_eq!(history.baseline("rt", &Aggregate::Avg), Some(15.0));
        assert_eq!(history.baseline("err", &Aggregate::Avg), Some(1.0));
        assert_eq!(history.baseline("none", &Aggregate::Avg), None);
    }

    fn slo(comparison: &str) -> Slo {
        Slo::parse_lenient(format!("comparison: {comparison}\n").as_bytes()).unwrap()
    }

    fn ids(chosen: Vec<&Previous>) -> Vec<&str> {
        chosen.iter().filter_map(|p| p.id.as_deref()).collect()
    }

    #[test]
    fn selection_filters_on_data_result_and_takes_the_newest() {
        let candidates = [
            previous("a", "fail", json!([])),
            previous("b", "warning", json!([])),
            previous("c", "pass", json!([])),
            previous("d", "pass", json!([])),
            previous("e", "pass", json!([])),
        ];
        let several = "{compare_with: several_results, number_of_comparison_results: 2";
        assert_eq!(ids(select_baseline(&slo(&format!("{several}}}")), &candidates)), ["a", "b"]);
        assert_eq!(
            ids(select_baseline(&slo(&format!("{several}, include_result_with_score: pass}}")), &candidates)),
            ["c", "d"]
        );
        assert_eq!(
            ids(select_baseline(&slo(&format!("{several}, include_result_with_score: pass_or_warn}}")), &candidates)),
            ["b", "c"]
        );
        assert_eq!(ids(select_baseline(&slo("{compare_with: single_result}"), &candidates)), ["a"]);
        assert_eq!(ids(select_baseline(&slo("{}"), &candidates)), ["a", "b", "c"]);
    }

    #[test]
    fn pass_filter_uses_data_result_not_evaluation_result() {
        // An evaluation whose SLI fetch failed: data.result fail, evaluation.result pass.
        let diverged = Previous {
            id: Some("x".into()),
            data: json!({"result": "fail", "evaluation": {"result": "pass", "indicatorResults": []}}),
        };
        let candidates = [diverged, previous("y", "pass", json!([]))];
        let chosen = select_baseline(&slo("{include_result_with_score: pass}"), &candidates);
        assert_eq!(ids(chosen), ["y"]);
    }
}
