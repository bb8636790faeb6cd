//! keptn's special cases and regression tests (digest §1.9–§1.11).

mod support;

use keptn_slo::{
    Slo, SloError, errored, from_sli_answer, select_baseline, unparsable_slo_message, without_sli_provider, without_slo,
};
use serde_json::{Value, json};
use support::*;

#[test]
fn bug_1125_first_evaluation_without_history() {
    let evaluation = run(&single("rt", &["<=+20%", "<500"], "{}"), &[ok("rt", 1011.0)], &[]);
    let result = indicator(&evaluation, 0);
    assert_eq!(targets(result, "passTargets"), [target("<=+20%", 0.0, false), target("<500", 500.0, true)]);
    assert_eq!(result["status"], "fail");
    assert_eq!(evaluation.result, "fail");
    assert_eq!(evaluation.score(), 0.0);
}

#[test]
fn bug_1263_failed_previous_values_are_ignored() {
    let history = [previous("p", "pass", &[("rt", 100.0, false)])];
    let evaluation = run(&single("rt", &["<=+10%"], "{}"), &[ok("rt", 5000.0)], &history);
    assert_eq!(targets(indicator(&evaluation, 0), "passTargets"), [target("<=+10%", 0.0, false)]);
    assert_eq!(evaluation.result, "pass");
}

#[test]
fn issue_6096_missing_sli_fails_its_objective() {
    let slo = slo("objectives:
  - sli: rt
    pass: [{criteria: [\"<=+10%\", \"<600\"]}]
  - sli: err
    pass: [{criteria: [\"<1\"]}]
total_score: {pass: \"90%\", warning: \"40%\"}
");
    // Previous results with a null value are skipped when computing targets.
    let history = [keptn_slo::Previous {
        id: Some("p".into()),
        data: json!({"result": "pass", "evaluation": {"indicatorResults": [
            {"value": null},
            {"value": {"metric": "rt", "value": 100.0, "success": true}}
        ]}}),
    }];
    let evaluation = run(&slo, &[ok("err", 0.0), ok("extra", 1.0)], &history);
    let rt = indicator(&evaluation, 0);
    assert_eq!(rt["status"], "fail");
    assert_eq!(rt["score"], 0.0);
    assert_eq!(
        rt["value"],
        json!({"metric": "rt", "value": 0.0, "comparedValue": 100.0, "success": false,
               "message": "no value received from SLI provider"})
    );
    assert_eq!(evaluation.score(), 50.0);
    assert_eq!(evaluation.result, "warning");
}

#[test]
fn issue_6096_additional_slis_are_named_when_nothing_overwrites_the_message() {
    let slo = single("a", &["<1"], "{}");
    let evaluation = run(&slo, &[ok("a", 0.0), ok("x", 1.0)], &[]);
    assert_eq!(evaluation.result, "pass");
    assert_eq!(
        evaluation.message,
        "Lighthouse received additional SLIs, which are not specified as SLO: x . Please consider using them as an SLO."
    );
    // A failing result replaces the note with the failure message.
    let failing = run(&slo, &[ok("a", 5.0), ok("x", 1.0)], &[]);
    assert!(failing.message.starts_with("Evaluation failed since"), "{}", failing.message);
}

#[test]
fn additional_slis_come_in_keptn_swap_removal_order() {
    let slo = slo("objectives:\n  - sli: a\n  - sli: b\n");
    let values = [ok("a", 1.0), ok("x", 1.0), ok("y", 1.0), ok("b", 1.0)];
    let evaluation = run(&slo, &values, &[]);
    assert_eq!(
        evaluation.message,
        "Lighthouse received additional SLIs, which are not specified as SLO: y, x . Please consider using them as an SLO."
    );
}

#[test]
fn issue_9198_no_objectives_fails() {
    for yaml in [
        "objectives: []\ntotal_score: {pass: \"90%\", warning: \"75%\"}\n",
        "objectives:\n  - ~\ntotal_score: {pass: \"90%\"}\n",
    ] {
        let evaluation = run(&slo(yaml), &[], &[]);
        assert_eq!(evaluation.result, "fail");
        assert_eq!(evaluation.status, "succeeded");
        assert_eq!(evaluation.evaluation_result(), "fail");
        assert_eq!(evaluation.score(), 0.0);
        assert_eq!(evaluation.message, "lighthouse failed because no SLO objective was provided");
        assert_eq!(evaluation.evaluation["indicatorResults"], Value::Null);
    }
    // A pass limit of 0% lets the evaluation itself pass; data.result stays fail.
    let zero = run(&slo("objectives: []\ntotal_score: {pass: \"0%\"}\n"), &[], &[]);
    assert_eq!((zero.result.as_str(), zero.evaluation_result()), ("fail", "pass"));
}

#[test]
fn no_objectives_message_wins_over_the_sli_failure() {
    let slo = slo("objectives:\ntotal_score: {pass: \"90%\", warning: \"75%\"}\n");
    let values = [failed("no metric", "no SLIs were requested")];
    let evaluation = from_sli_answer(&slo, "succeeded", "fail", "no SLIs were requested", &values, &[], START, END);
    assert_eq!(evaluation.result, "fail");
    assert_eq!(evaluation.status, "succeeded");
    assert_eq!(evaluation.message, "lighthouse failed because no SLO objective was provided");
}

#[test]
fn bug_2231_objectives_without_pass_criteria_are_informational() {
    let slo = slo("objectives:
  - sli: a
    pass: [{criteria: [\"<1\"]}]
  - sli: info_without_key
  - sli: info_empty
    pass: []
total_score: {pass: \"90%\"}
");
    let evaluation = run(&slo, &[ok("a", 0.0), ok("info_without_key", 7.0), ok("info_empty", 8.0)], &[]);
    for index in [1, 2] {
        let info = indicator(&evaluation, index);
        assert_eq!(info["status"], "info");
        assert_eq!(info["score"], 0.0);
        assert_eq!(info["passTargets"], json!([]));
        assert_eq!(info["warningTargets"], Value::Null);
    }
    assert_eq!(indicator(&evaluation, 1)["value"]["value"], 7.0);
    assert_eq!(evaluation.score(), 100.0);
    assert_eq!(evaluation.result, "pass");
}

#[test]
fn informational_warning_targets_are_listed_as_violated() {
    let slo = slo("objectives:\n  - sli: a\n    warning: [{criteria: [\"<=+10%\", \"<5\"]}]\n");
    let evaluation = run(&slo, &[ok("a", 1.0)], &[previous("p", "pass", &[("a", 20.0, true)])]);
    // The raw baseline (20, not 22) for relative criteria, as keptn reports it.
    assert_eq!(
        targets(indicator(&evaluation, 0), "warningTargets"),
        [target("<=+10%", 20.0, true), target("<5", 5.0, true)]
    );
    assert_eq!(indicator(&evaluation, 0)["keySli"], false);
}

#[test]
fn all_informational_passes_with_100_even_with_a_missing_value() {
    let slo = slo("objectives:\n  - sli: a\n  - sli: b\n");
    let evaluation = run(&slo, &[ok("a", 1.0)], &[]);
    assert_eq!(evaluation.result, "pass");
    assert_eq!(evaluation.evaluation_result(), "pass");
    assert_eq!(evaluation.score(), 100.0);
    assert_eq!(indicator(&evaluation, 1)["value"], Value::Null);
    assert_eq!(indicator(&evaluation, 1)["status"], "info");
}

#[test]
fn invalid_pass_criterion_fails_the_evaluation() {
    let slo = slo("objectives:
  - sli: rt
    displayName: Response time
    pass: [{criteria: [\"<=abc\"]}]
  - sli: err
    pass: [{criteria: [\"!=1\"]}]
total_score: {pass: \"90%\"}
");
    let evaluation = run(&slo, &[ok("rt", 1.0), ok("err", 0.0)], &[]);
    assert_eq!(evaluation.result, "fail");
    assert_eq!(evaluation.status, "succeeded");
    assert_eq!(evaluation.evaluation_result(), "fail");
    assert_eq!(evaluation.score(), 0.0);
    assert_eq!(evaluation.evaluation["indicatorResults"], Value::Null);
    assert_eq!(evaluation.message, "error with Response time: could not parse criteria target value");
    // Without displayName the SLI names the objective.
    let only_err = run(&slo, &[ok("err", 0.0)], &[]);
    assert_eq!(only_err.message, "error with err: invalid criteria string");
}

#[test]
fn missing_total_score_is_errored() {
    let evaluation = run(&single_without_total("a"), &[ok("a", 0.0)], &[]);
    assert_eq!(evaluation.status, "errored");
    assert_eq!(evaluation.result, "fail");
    assert_eq!(evaluation.evaluation_result(), "fail");
    assert_eq!(evaluation.score(), 0.0);
    assert_eq!(evaluation.message, "no target score defined");
    assert_eq!(evaluation.evaluation["sloFileContent"], base64_of(&single_without_total("a")));
}

fn single_without_total(sli: &str) -> Slo {
    slo(&format!("objectives:\n  - sli: {sli}\n    pass: [{{criteria: [\"<1\"]}}]\n"))
}

fn base64_of(slo: &Slo) -> Value {
    use base64::Engine;
    json!(base64::engine::general_purpose::STANDARD.encode(slo.raw()))
}

#[test]
fn unparsable_percentages_are_errored() {
    let evaluation = run(
        &slo("objectives:\n  - sli: a\n    pass: [{criteria: [\"<1\"]}]\ntotal_score: {pass: high}\n"),
        &[ok("a", 0.0)],
        &[],
    );
    assert_eq!(
        (evaluation.status.as_str(), evaluation.message.as_str()),
        ("errored", "could not parse pass target percentage")
    );
}

#[test]
fn unparsable_slo_is_a_parse_error_and_an_errored_evaluation() {
    let error = Slo::parse_lenient(b"invalid").unwrap_err();
    assert!(matches!(error, SloError::Yaml(_)));
    let evaluation = errored(unparsable_slo_message("P", "St", "S"), Some(b"invalid"), START, END);
    assert_eq!(
        evaluation.to_data(),
        json!({
            "result": "fail", "status": "errored",
            "message": "error retrieving SLO file: Could not parse SLO file for service S in stage St in project P",
            "evaluation": {"result": "fail", "score": 0.0, "sloFileContent": "aW52YWxpZA==",
                           "indicatorResults": null, "timeStart": START, "timeEnd": END}
        })
    );
}

#[test]
fn no_slo_file_passes_with_score_0() {
    assert_eq!(
        without_slo("sockshop", START, END).to_data(),
        json!({
            "result": "pass", "status": "succeeded",
            "message": "no evaluation performed by lighthouse because no SLO file configured for project sockshop",
            "evaluation": {"result": "pass", "score": 0.0, "sloFileContent": "", "indicatorResults": null,
                           "timeStart": START, "timeEnd": END}
        })
    );
    let no_provider = without_sli_provider("sockshop", START, END);
    assert_eq!(no_provider.result, "pass");
    assert_eq!(
        no_provider.message,
        "no evaluation performed by lighthouse because no SLI-provider configured for project sockshop"
    );
}

#[test]
fn sli_answer_aborted_and_errored() {
    let slo = single("a", &["<1"], "{}");
    let aborted = from_sli_answer(&slo, "aborted", "pass", "x", &[ok("a", 0.0)], &[], START, END);
    assert_eq!((aborted.status.as_str(), aborted.result.as_str()), ("errored", "fail"));
    assert_eq!(aborted.evaluation_result(), "pass");
    assert_eq!(aborted.score(), 0.0);
    assert_eq!(aborted.message, "evaluation performed by lighthouse was aborted");
    assert_eq!(aborted.evaluation["indicatorResults"], Value::Null);

    let errored = from_sli_answer(&slo, "errored", "pass", "some-silly-msg", &[], &[], START, END);
    assert_eq!((errored.status.as_str(), errored.result.as_str()), ("errored", "fail"));
    assert_eq!(errored.evaluation_result(), "pass");
    assert_eq!(errored.message, "evaluation performed by lighthouse received an unexpected error: some-silly-msg");
}

#[test]
fn sli_answer_fail_diverges_data_result_from_evaluation_result() {
    let slo = slo("objectives:
  - sli: rt
    pass: [{criteria: [\"<=+75%\", \"<800\"]}]
  - sli: err
total_score: {pass: \"100%\", warning: \"65%\"}
");
    let values = [ok("rt", 200.0), ok("err", 0.0)];
    let evaluation = from_sli_answer(&slo, "succeeded", "fail", "some-silly-msg", &values, &[], START, END);
    assert_eq!(evaluation.status, "succeeded");
    assert_eq!(evaluation.result, "fail");
    assert_eq!(evaluation.evaluation_result(), "pass");
    assert_eq!(evaluation.score(), 100.0);
    assert_eq!(evaluation.message, "lighthouse failed because SLI failed with message some-silly-msg");

    // Such an evaluation is not a baseline under include_result_with_score: pass.
    let stored = keptn_slo::Previous { id: Some("diverged".into()), data: evaluation.to_data() };
    let strict = support::slo("comparison: {include_result_with_score: pass}\n");
    assert!(select_baseline(&strict, std::slice::from_ref(&stored)).is_empty());

    let normal = from_sli_answer(&slo, "succeeded", "pass", "", &values, &[], START, END);
    assert_eq!((normal.result.as_str(), normal.message.as_str()), ("pass", ""));
}

#[test]
fn comparison_count_outside_keptn_limits_is_errored() {
    let slo = single("a", &["<1"], "{compare_with: several_results, number_of_comparison_results: 101}");
    let evaluation = run(&slo, &[ok("a", 0.0)], &[]);
    assert_eq!(evaluation.status, "errored");
    assert_eq!(evaluation.message, "could not retrieve previous evaluation.finished events");
}
