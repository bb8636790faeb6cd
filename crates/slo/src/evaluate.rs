//! The evaluation pipeline: objectives → total score → result and message, with keptn's
//! overrides for a failed SLI fetch and for an SLO without objectives.

use std::collections::HashMap;

use crate::SliResult;
use crate::baseline::{History, Previous};
use crate::evaluation::{Details, Evaluation, encode_slo, errored, sli_not_delivered};
use crate::objective::{self, Abort};
use crate::slo::{Aggregate, MAX_COMPARISON_RESULTS, Slo};
use crate::total::{self, KeyFailure, Outcome};

/// Scores SLI values against the SLO and the chosen previous evaluations (already selected by
/// [`crate::select_baseline`], newest first). `time_start`/`time_end` are copied verbatim.
pub fn evaluate(
    slo: &Slo,
    values: &[SliResult],
    baseline: &[&Previous],
    time_start: &str,
    time_end: &str,
) -> Evaluation {
    run(slo, values, baseline, time_start, time_end, None)
}

/// The evaluation for a `get-sli.finished` answer, with keptn's special cases:
/// `status: aborted` / `errored` → errored without scoring; `result: fail` → scored normally, but
/// `data.result` is fail with "lighthouse failed because SLI failed with message …".
/// Status is checked first when both are set.
#[allow(clippy::too_many_arguments)] // mirrors the get-sli.finished fields one to one
pub fn from_sli_answer(
    slo: &Slo,
    status: &str,
    result: &str,
    message: &str,
    values: &[SliResult],
    baseline: &[&Previous],
    time_start: &str,
    time_end: &str,
) -> Evaluation {
    match status {
        "aborted" => sli_not_delivered("evaluation performed by lighthouse was aborted".into(), time_start, time_end),
        "errored" => sli_not_delivered(
            format!("evaluation performed by lighthouse received an unexpected error: {message}"),
            time_start,
            time_end,
        ),
        _ => run(slo, values, baseline, time_start, time_end, (result == "fail").then_some(message)),
    }
}

fn run(
    slo: &Slo,
    values: &[SliResult],
    baseline: &[&Previous],
    time_start: &str,
    time_end: &str,
    sli_failure: Option<&str>,
) -> Evaluation {
    let raw = Some(slo.raw());
    let comparison = slo.comparison();
    // Fix F3: keptn compared with baseline 0 for an unknown aggregate function.
    if let Aggregate::Unknown(name) = &comparison.aggregate_function {
        let message = format!(
            "invalid SLO file: comparison.aggregate_function {name:?} is not supported; use avg, p50, p90 or p95"
        );
        return errored(message, raw, time_start, time_end);
    }
    // keptn's datastore rejects the query for previous evaluations outside this range.
    if !(1..=MAX_COMPARISON_RESULTS).contains(&comparison.results_wanted()) {
        return errored("could not retrieve previous evaluation.finished events", raw, time_start, time_end);
    }

    let history = History::new(baseline);
    // Fix F1: every objective naming an SLI gets its value (keptn consumed it on first use, so a
    // second objective for the same SLI failed with "no value received from SLI provider").
    let mut by_metric: HashMap<&str, &SliResult> = HashMap::with_capacity(values.len());
    for value in values {
        by_metric.entry(value.metric.as_str()).or_insert(value);
    }

    let objectives = slo.objectives();
    let mut results = Vec::with_capacity(objectives.len());
    let mut max = 0.0;
    let mut total = 0.0;
    let mut key_failure: Option<KeyFailure> = None;
    for objective in objectives {
        if objective.is_scored() {
            max += objective.weight as f64;
        }
        let baseline = history.baseline(&objective.sli, &comparison.aggregate_function);
        let scored = match objective::score(objective, by_metric.get(objective.sli.as_str()).copied(), baseline) {
            Ok(scored) => scored,
            Err(Abort(message)) => return invalid_criteria(message, slo, time_start, time_end),
        };
        if scored.result.pass_targets.as_ref().is_some_and(|t| !t.is_empty()) {
            total += scored.result.score;
        }
        if key_failure.is_none() {
            key_failure =
                scored.key_failure.map(|message| KeyFailure { display_name: objective.display_name.clone(), message });
        }
        results.push(scored.result);
    }
    if objectives.is_empty() {
        // keptn #9198: without objectives the score is 0 out of 100, not a vacuous 100.
        max = 100.0;
    }

    let verdict = match total::judge(max, total, slo.total_score(), key_failure.as_ref()) {
        Ok(verdict) => verdict,
        Err(message) => return errored(message, raw, time_start, time_end),
    };
    let mut result = verdict.outcome;
    let mut message = verdict.message.unwrap_or_else(|| additional_slis(slo, values));
    if let Some(provider_message) = sli_failure {
        result = Outcome::Fail;
        message = format!("lighthouse failed because SLI failed with message {provider_message}");
    }
    if objectives.is_empty() {
        result = Outcome::Fail;
        message = "lighthouse failed because no SLO objective was provided".into();
    }
    let details = Details {
        time_start,
        time_end,
        result: verdict.outcome.as_str(),
        score: verdict.score,
        slo_file_content: encode_slo(raw),
        indicator_results: (!results.is_empty()).then_some(results),
        compared_events: baseline.iter().filter_map(|p| p.id.clone()).collect(),
    };
    details.finish(result.as_str(), "succeeded", message)
}

/// An invalid criterion: keptn's failed (not errored) evaluation without indicator results.
fn invalid_criteria(message: String, slo: &Slo, time_start: &str, time_end: &str) -> Evaluation {
    let details = Details {
        time_start,
        time_end,
        result: "fail",
        score: 0.0,
        slo_file_content: encode_slo(Some(slo.raw())),
        indicator_results: None,
        compared_events: Vec::new(),
    };
    details.finish("fail", "succeeded", message)
}

/// keptn's "additional SLIs" note: each objective takes one value of its SLI out of the list by
/// swap-removal, and what is left is named in that (permuted) order.
fn additional_slis(slo: &Slo, values: &[SliResult]) -> String {
    let mut left: Vec<&str> = values.iter().map(|v| v.metric.as_str()).collect();
    for objective in slo.objectives() {
        if let Some(at) = left.iter().position(|m| *m == objective.sli) {
            left.swap_remove(at);
        }
    }
    // keptn only adds ", " after a non-empty prefix, so empty metric names vanish oddly; kept.
    let names =
        left.iter().fold(String::new(), |acc, name| if acc.is_empty() { name.to_string() } else { acc + ", " + name });
    if names.is_empty() {
        String::new()
    } else {
        format!(
            "Lighthouse received additional SLIs, which are not specified as SLO: {names} . Please consider using them as an SLO."
        )
    }
}
