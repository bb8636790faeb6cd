//! The `evaluation.finished` data shape (digest §1.10), compared as a whole.

mod support;

use base64::Engine;
use keptn_slo::SliResult;
use serde_json::json;
use support::*;

const SLO: &str = "spec_version: \"1.0\"
comparison:
  compare_with: single_result
  include_result_with_score: pass
objectives:
  - sli: response_time_p95
    pass:
      - criteria: [\"<=+75%\", \"<800\"]
    warning:
      - criteria: [\"<=1000\"]
  - sli: throughput
    displayName: Throughput
    key_sli: true
    pass:
      - criteria: [\">=-80%\"]
  - sli: error_rate
total_score:
  pass: \"90%\"
  warning: \"75%\"
";

#[test]
fn full_evaluation_finished_data() {
    let slo = slo(SLO);
    let history = [
        previous("older-fail", "fail", &[("response_time_p95", 1.0, true)]),
        previous("prev-1", "pass", &[("response_time_p95", 180.0, true), ("throughput", 50.0, true)]),
    ];
    let values = [
        ok("response_time_p95", 200.0),
        SliResult { metric: "throughput".into(), value: 45.0, success: true, message: "sampled".into() },
        ok("error_rate", 0.0),
    ];
    let evaluation = run(&slo, &values, &history);
    let encoded = base64::engine::general_purpose::STANDARD.encode(SLO);
    assert_eq!(
        evaluation.to_data(),
        json!({
            "result": "pass",
            "status": "succeeded",
            "message": "",
            "evaluation": {
                "timeStart": START,
                "timeEnd": END,
                "result": "pass",
                "score": 100.0,
                "sloFileContent": encoded,
                "comparedEvents": ["prev-1"],
                "indicatorResults": [
                    {
                        "score": 1.0,
                        "value": {"metric": "response_time_p95", "value": 200.0, "comparedValue": 180.0, "success": true},
                        "displayName": "",
                        "passTargets": [
                            {"criteria": "<=+75%", "targetValue": 315.0, "violated": false},
                            {"criteria": "<800", "targetValue": 800.0, "violated": false}
                        ],
                        "warningTargets": [{"criteria": "<=1000", "targetValue": 1000.0, "violated": false}],
                        "keySli": false,
                        "status": "pass"
                    },
                    {
                        "score": 1.0,
                        "value": {"metric": "throughput", "value": 45.0, "comparedValue": 50.0, "success": true,
                                  "message": "sampled"},
                        "displayName": "Throughput",
                        "passTargets": [{"criteria": ">=-80%", "targetValue": 10.0, "violated": false}],
                        "warningTargets": null,
                        "keySli": true,
                        "status": "pass"
                    },
                    {
                        "score": 0.0,
                        "value": {"metric": "error_rate", "value": 0.0, "comparedValue": 0.0, "success": true},
                        "displayName": "",
                        "passTargets": [],
                        "warningTargets": null,
                        "keySli": false,
                        "status": "info"
                    }
                ]
            }
        })
    );
}

#[test]
fn serialized_json_never_contains_nan() {
    let slo = single("a", &["<nan"], "{}");
    let evaluation = run(&slo, &[ok("a", f64::NAN)], &[]);
    let text = serde_json::to_string(&evaluation.to_data()).unwrap();
    assert!(!text.contains("NaN") && !text.contains("nan,"), "{text}");
    assert_eq!(evaluation.score(), 0.0);
}
