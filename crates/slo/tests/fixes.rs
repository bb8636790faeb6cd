//! The deliberate differences from keptn (F1–F6); each test states what keptn did instead.

mod support;

use keptn_slo::{Slo, SloError};
use serde_json::json;
use support::*;

#[test]
fn f1_every_objective_naming_an_sli_gets_its_value() {
    let slo = slo("objectives:
  - sli: rt
    pass: [{criteria: [\"<600\"]}]
  - sli: rt
    displayName: rt, stricter
    pass: [{criteria: [\"<300\"]}]
total_score: {pass: \"90%\", warning: \"50%\"}
");
    let evaluation = run(&slo, &[ok("rt", 200.0)], &[]);
    // keptn: the second objective failed with "no value received from SLI provider" (score 50).
    for index in [0, 1] {
        assert_eq!(indicator(&evaluation, index)["status"], "pass");
        assert_eq!(indicator(&evaluation, index)["value"]["value"], 200.0);
    }
    assert_eq!(evaluation.score(), 100.0);
    assert_eq!(evaluation.message, "");
}

#[test]
fn f2_objective_with_only_empty_pass_groups_is_informational() {
    let slo = slo("objectives:
  - sli: a
    pass: [{criteria: []}]
  - sli: b
    pass: [{criteria: [\"<1\"]}]
total_score: {pass: \"90%\"}
");
    let evaluation = run(&slo, &[ok("a", 5.0), ok("b", 0.0)], &[]);
    // keptn: max score 2, total 1 (a's vacuous pass was excluded) → 50, fail.
    assert_eq!(indicator(&evaluation, 0)["status"], "info");
    assert_eq!(indicator(&evaluation, 0)["passTargets"], json!([]));
    assert_eq!(evaluation.score(), 100.0);
    assert_eq!(evaluation.result, "pass");
    // Only-empty groups everywhere means nothing is scored: 100, pass, no total_score needed.
    let all_empty =
        run(&support::slo("objectives:\n  - sli: a\n    pass: [{criteria: []}, ~]\n"), &[ok("a", 5.0)], &[]);
    assert_eq!((all_empty.result.as_str(), all_empty.score()), ("pass", 100.0));
}

#[test]
fn f3_unknown_aggregate_function_is_an_slo_error() {
    let yaml = "comparison: {aggregate_function: p99}\nobjectives:\n  - sli: a\n    pass: [{criteria: [\"<=+10%\"]}]\ntotal_score: {pass: \"90%\"}\n";
    assert_eq!(Slo::parse(yaml.as_bytes()), Err(SloError::AggregateFunction("p99".into())));
    // The lenient parse accepts the file; evaluating it is errored (keptn compared with baseline 0).
    let evaluation = run(&slo(yaml), &[ok("a", 1.0)], &[previous("p", "pass", &[("a", 10.0, true)])]);
    assert_eq!(evaluation.status, "errored");
    assert_eq!(evaluation.result, "fail");
    assert_eq!(
        evaluation.message,
        "invalid SLO file: comparison.aggregate_function \"p99\" is not supported; use avg, p50, p90 or p95"
    );
}

#[test]
fn f4_invalid_warning_criterion_aborts_like_a_pass_criterion() {
    let slo = slo("objectives:
  - sli: rt
    displayName: Response time
    pass: [{criteria: [\"<600\"]}]
    warning: [{criteria: [\"<=eight hundred\"]}]
total_score: {pass: \"90%\"}
");
    // keptn: the warning block was silently treated as not satisfied.
    let evaluation = run(&slo, &[ok("rt", 100.0)], &[]);
    assert_eq!(evaluation.result, "fail");
    assert_eq!(evaluation.status, "succeeded");
    assert_eq!(evaluation.evaluation["indicatorResults"], serde_json::Value::Null);
    assert_eq!(evaluation.message, "error with Response time: could not parse criteria target value");
    assert!(matches!(Slo::parse(slo.raw()), Err(SloError::Criterion { .. })));
}

#[test]
fn f5_key_sli_is_reported_for_missing_values() {
    let slo = slo("objectives:
  - sli: rt
    displayName: RT
    key_sli: true
    pass: [{criteria: [\"<600\"]}]
  - sli: err
    pass: [{criteria: [\"<1\"]}]
total_score: {pass: \"40%\"}
");
    let evaluation = run(&slo, &[ok("err", 0.0)], &[]);
    // keptn: keySli false in this result (though it still failed the evaluation).
    assert_eq!(indicator(&evaluation, 0)["keySli"], true);
    assert_eq!(evaluation.result, "fail");
    assert_eq!(
        evaluation.message,
        "Evaluation failed due to key_sli objective 'RT': no value received from SLI provider"
    );
    let failed_value = run(&slo, &[failed("rt", "query timed out"), ok("err", 0.0)], &[]);
    assert_eq!(indicator(&failed_value, 0)["keySli"], true);
    assert_eq!(failed_value.message, "Evaluation failed due to key_sli objective 'RT': query timed out");
}

#[test]
fn f6_missing_values_report_computed_relative_targets() {
    let slo = slo("objectives:
  - sli: rt
    pass: [{criteria: [\"<=+10%\", \"<600\"]}]
    warning: [{criteria: [\"<=+5\"]}]
total_score: {pass: \"90%\"}
");
    let history = [previous("p", "pass", &[("rt", 10.0, true)])];
    let evaluation = run(&slo, &[failed("rt", "no data")], &history);
    let rt = indicator(&evaluation, 0);
    // keptn: 10 (the raw baseline) for both relative criteria.
    let pass = targets(rt, "passTargets");
    assert!(close(pass[0].1, 11.0) && pass[0].2, "{pass:?}");
    assert_eq!(pass[1], target("<600", 600.0, true));
    assert_eq!(targets(rt, "warningTargets"), [target("<=+5", 15.0, true)]);
    assert_eq!(rt["value"]["message"], "no data");
    assert_eq!(rt["status"], "fail");
    // Without a usable baseline: 0, as keptn.
    let first = run(&slo, &[failed("rt", "no data")], &[]);
    assert_eq!(targets(indicator(&first, 0), "passTargets")[0], target("<=+10%", 0.0, true));
}
