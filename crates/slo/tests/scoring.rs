//! Scoring (digest §1.5–§1.8): comparisons against baselines, OR/AND groups, warnings, weights,
//! key SLIs and the total score.

mod support;

use support::*;

const TWO: &str = "{compare_with: several_results, number_of_comparison_results: 2}";

fn history_of(metric: &str, values: &[f64]) -> Vec<keptn_slo::Previous> {
    values.iter().enumerate().map(|(i, v)| previous(&format!("prev-{i}"), "pass", &[(metric, *v, true)])).collect()
}

fn status(evaluation: &keptn_slo::Evaluation, index: usize) -> &str {
    indicator(evaluation, index)["status"].as_str().unwrap()
}

#[test]
fn ten_is_within_avg_of_ten_and_ten_plus_ten_percent() {
    let evaluation = run(&single("rt", &["<=+10%"], TWO), &[ok("rt", 10.0)], &history_of("rt", &[10.0, 10.0]));
    assert_eq!(status(&evaluation, 0), "pass");
    let t = targets(indicator(&evaluation, 0), "passTargets");
    assert_eq!(t.len(), 1);
    assert!(close(t[0].1, 11.0) && !t[0].2, "{t:?}");
    assert_eq!(indicator(&evaluation, 0)["value"]["comparedValue"], 10.0);
}

#[test]
fn eleven_point_zero_one_is_not_at_most_eleven() {
    let evaluation = run(&single("rt", &["<=11"], TWO), &[ok("rt", 11.01)], &[]);
    assert_eq!(status(&evaluation, 0), "fail");
    assert_eq!(targets(indicator(&evaluation, 0), "passTargets"), [target("<=11", 11.0, true)]);
}

#[test]
fn equality_with_absolute_deltas() {
    let history = history_of("rt", &[10.0, 10.0]);
    let plus = run(&single("rt", &["=+1.0"], TWO), &[ok("rt", 11.0)], &history);
    assert_eq!(status(&plus, 0), "pass");
    assert_eq!(targets(indicator(&plus, 0), "passTargets"), [target("=+1.0", 11.0, false)]);
    let minus = run(&single("rt", &["=-1.0"], TWO), &[ok("rt", 9.0)], &history);
    assert_eq!(status(&minus, 0), "pass");
    assert_eq!(targets(indicator(&minus, 0), "passTargets"), [target("=-1.0", 9.0, false)]);
}

#[test]
fn p50_baselines() {
    // keptn's test named "10 <= p50([10, 5]) + 10%" really checks 10 >= p50([10, 10]) - 10%.
    let p50 = "{compare_with: several_results, number_of_comparison_results: 2, aggregate_function: p50}";
    let evaluation = run(&single("rt", &[">=-10%"], p50), &[ok("rt", 10.0)], &history_of("rt", &[10.0, 10.0]));
    assert_eq!(targets(indicator(&evaluation, 0), "passTargets"), [target(">=-10%", 9.0, false)]);
    // p50 of [10, 5] interpolates to 7.5, so +10% is 8.25 and 10 is above it.
    let evaluation = run(&single("rt", &["<=+10%"], p50), &[ok("rt", 10.0)], &history_of("rt", &[10.0, 5.0]));
    let t = targets(indicator(&evaluation, 0), "passTargets");
    assert!(close(t[0].1, 8.25) && t[0].2, "{t:?}");
    assert_eq!(indicator(&evaluation, 0)["value"]["comparedValue"], 7.5);
}

#[test]
fn groups_are_or_combined_and_all_reported() {
    let slo = slo(
        "objectives:\n  - sli: rt\n    pass:\n      - criteria: [\"<=+10%\"]\n      - criteria: [\"<=10.0\"]\ntotal_score: {pass: 90%}\n",
    );
    let history = history_of("rt", &[10.0]);
    let eleven = run(&slo, &[ok("rt", 11.0)], &history);
    assert_eq!(status(&eleven, 0), "pass");
    let t = targets(indicator(&eleven, 0), "passTargets");
    assert_eq!(t.len(), 2);
    assert!(!t[0].2 && t[1].2, "{t:?}");
    let twenty = run(&slo, &[ok("rt", 20.0)], &history);
    assert_eq!(status(&twenty, 0), "fail");
    assert_eq!(twenty.result, "fail");
}

#[test]
fn criteria_within_a_group_are_and_combined() {
    let evaluation = run(&single("rt", &["<=+75%", "<800"], "{}"), &[ok("rt", 850.0)], &history_of("rt", &[600.0]));
    assert_eq!(status(&evaluation, 0), "fail");
    assert_eq!(
        targets(indicator(&evaluation, 0), "passTargets"),
        [target("<=+75%", 1050.0, false), target("<800", 800.0, true)]
    );
}

#[test]
fn warning_gives_half_the_weight() {
    let slo = slo("objectives:
  - sli: rt
    pass: [{criteria: [\"<600\"]}]
    warning: [{criteria: [\"<=800\"]}]
  - sli: err
    pass: [{criteria: [\"<1\"]}]
total_score: {pass: \"90%\", warning: \"75%\"}
");
    let evaluation = run(&slo, &[ok("rt", 700.0), ok("err", 0.0)], &[]);
    assert_eq!(status(&evaluation, 0), "warning");
    assert_eq!(indicator(&evaluation, 0)["score"], 0.5);
    assert_eq!(targets(indicator(&evaluation, 0), "warningTargets"), [target("<=800", 800.0, false)]);
    assert_eq!(evaluation.score(), 75.0);
    assert_eq!(evaluation.result, "warning");
    assert_eq!(
        evaluation.message,
        "Evaluation returned a warning: the calculated score of 75 is close to the warning target value of 75"
    );
    // Warning targets are reported for passing objectives too.
    let passing = run(&slo, &[ok("rt", 500.0), ok("err", 0.0)], &[]);
    assert_eq!(status(&passing, 0), "pass");
    assert_eq!(targets(indicator(&passing, 0), "warningTargets"), [target("<=800", 800.0, false)]);
    assert_eq!(indicator(&passing, 1)["warningTargets"], serde_json::Value::Null);
}

#[test]
fn weights_scale_scores_and_zero_means_one() {
    let slo = slo("objectives:
  - sli: a
    weight: 3
    pass: [{criteria: [\"<1\"]}]
  - sli: b
    weight: 0
    pass: [{criteria: [\"<1\"]}]
total_score: {pass: \"70%\"}
");
    let evaluation = run(&slo, &[ok("a", 0.0), ok("b", 5.0)], &[]);
    assert_eq!(indicator(&evaluation, 0)["score"], 3.0);
    assert_eq!(indicator(&evaluation, 1)["score"], 0.0);
    assert_eq!(evaluation.score(), 75.0);
    assert_eq!(evaluation.result, "pass");
    assert_eq!(evaluation.message, "");
}

#[test]
fn score_is_not_rounded() {
    let slo = slo("objectives:
  - sli: a
    pass: [{criteria: [\"<1\"]}]
  - sli: b
    pass: [{criteria: [\"<1\"]}]
  - sli: c
    pass: [{criteria: [\"<1\"]}]
total_score: {pass: \"90%\"}
");
    let evaluation = run(&slo, &[ok("a", 0.0), ok("b", 0.0), ok("c", 5.0)], &[]);
    assert_eq!(evaluation.score(), 100.0 * (2.0 / 3.0));
    assert_eq!(
        evaluation.message,
        "Evaluation failed since the calculated score of 66.66666666666666 is below the target value of 90"
    );
}

#[test]
fn failed_key_sli_fails_the_evaluation_at_score_50() {
    let slo = slo("objectives:
  - sli: rt
    displayName: Response time
    key_sli: true
    pass: [{criteria: [\"<600\"]}]
  - sli: err
    pass: [{criteria: [\"<1\"]}]
total_score: {pass: \"40%\", warning: \"30%\"}
");
    let evaluation = run(&slo, &[ok("rt", 900.0), ok("err", 0.0)], &[]);
    assert_eq!(evaluation.score(), 50.0);
    assert_eq!(evaluation.result, "fail");
    assert_eq!(evaluation.evaluation_result(), "fail");
    assert_eq!(evaluation.status, "succeeded");
    assert_eq!(
        evaluation.message,
        "Evaluation failed due to key_sli objective 'Response time': failed evaluation with score 0.000000"
    );
    assert_eq!(indicator(&evaluation, 0)["keySli"], true);
}

#[test]
fn key_sli_in_warning_is_not_a_key_failure() {
    let slo = slo("objectives:
  - sli: rt
    key_sli: true
    pass: [{criteria: [\"<600\"]}]
    warning: [{criteria: [\"<800\"]}]
  - sli: err
    pass: [{criteria: [\"<1\"]}]
total_score: {pass: \"90%\", warning: \"75%\"}
");
    let evaluation = run(&slo, &[ok("rt", 700.0), ok("err", 0.0)], &[]);
    assert_eq!(evaluation.result, "warning");
}

#[test]
fn score_at_the_limit_passes() {
    let slo = slo("objectives:
  - sli: a
    pass: [{criteria: [\"<1\"]}]
  - sli: b
    pass: [{criteria: [\"<1\"]}]
total_score: {pass: \"50%\"}
");
    assert_eq!(run(&slo, &[ok("a", 0.0), ok("b", 5.0)], &[]).result, "pass");
}

#[test]
fn baseline_uses_only_chosen_events_and_lists_them() {
    let slo = single(
        "rt",
        &["<=+10%"],
        "{compare_with: several_results, number_of_comparison_results: 2, include_result_with_score: pass}",
    );
    let history = [
        previous("newest-failed", "fail", &[("rt", 1000.0, true)]),
        previous("p1", "pass", &[("rt", 100.0, true)]),
        previous("p2", "pass", &[("other", 5.0, true)]),
        previous("p3", "pass", &[("rt", 300.0, true)]),
    ];
    let evaluation = run(&slo, &[ok("rt", 105.0)], &history);
    // Only p1 contributes a value for rt; p2 is still a compared event.
    assert_eq!(evaluation.evaluation["comparedEvents"], serde_json::json!(["p1", "p2"]));
    assert_eq!(indicator(&evaluation, 0)["value"]["comparedValue"], 100.0);
    assert_eq!(status(&evaluation, 0), "pass");
}

#[test]
fn avg_over_several_results() {
    let slo = single("rt", &["<=+0%"], "{compare_with: several_results, number_of_comparison_results: 3}");
    let evaluation = run(&slo, &[ok("rt", 20.0)], &history_of("rt", &[10.0, 20.0, 30.0, 1000.0]));
    assert_eq!(indicator(&evaluation, 0)["value"]["comparedValue"], 20.0);
    assert_eq!(status(&evaluation, 0), "pass");
}

#[test]
fn compared_value_is_reported_for_absolute_criteria_too() {
    let evaluation = run(&single("rt", &["<600"], "{}"), &[ok("rt", 100.0)], &history_of("rt", &[123.0]));
    assert_eq!(indicator(&evaluation, 0)["value"]["comparedValue"], 123.0);
    let first = run(&single("rt", &["<600"], "{}"), &[ok("rt", 100.0)], &[]);
    assert_eq!(indicator(&first, 0)["value"]["comparedValue"], 0.0);
    assert!(first.evaluation.get("comparedEvents").is_none());
}
