//! `keptn evaluate`: the quality gate offline, as a CI step runs it (no server).

use serde_json::{Value, json};
use std::path::Path;

const SLO: &str = r#"comparison: { compare_with: several_results, number_of_comparison_results: 2, include_result_with_score: pass, aggregate_function: avg }
objectives:
  - sli: response_time_p95
    displayName: Response time P95
    pass: [ { criteria: ["<=+10%", "<600"] } ]
    warning: [ { criteria: ["<=800"] } ]
  - sli: error_rate
    key_sli: true
    pass: [ { criteria: ["<=0.05"] } ]
  - sli: throughput
total_score: { pass: "90%", warning: "75%" }
"#;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn keptn(dir: &Path, args: &[&str]) -> Out {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keptn"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run keptn");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn values(rt: f64, errors: f64) -> String {
    json!([
        { "metric": "response_time_p95", "value": rt, "success": true },
        { "metric": "error_rate", "value": errors, "success": true },
        { "metric": "throughput", "value": 120, "success": true },
    ])
    .to_string()
}

fn previous_result(result: &str, rt: f64) -> Value {
    json!({ "result": result, "evaluation": { "result": result,
        "indicatorResults": [{ "value": { "metric": "response_time_p95", "value": rt, "success": true } }] } })
}

#[test]
fn evaluates_offline_with_keptns_rules() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("slo.yaml"), SLO).unwrap();
    std::fs::write(d.join("good.json"), values(420.0, 0.01)).unwrap();
    std::fs::write(d.join("slow.json"), values(700.0, 0.01)).unwrap();
    std::fs::write(d.join("errors.json"), values(420.0, 0.2)).unwrap();
    // Newest first: a failed run (ignored: only passes count), then two passes averaging 400.
    let previous = json!([
        previous_result("fail", 900.0),
        previous_result("pass", 380.0),
        previous_result("pass", 420.0),
        previous_result("pass", 10.0)
    ]);
    std::fs::write(d.join("previous.json"), previous.to_string()).unwrap();

    let o =
        keptn(d, &["evaluate", "--slo", "slo.yaml", "--sli", "good.json", "--previous", "previous.json", "-o", "json"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: Value = serde_json::from_str(&o.stdout).expect("evaluation.finished data");
    assert_eq!((v["result"].as_str(), v["evaluation"]["score"].as_f64()), (Some("pass"), Some(100.0)), "{v:#}");
    let rt = &v["evaluation"]["indicatorResults"][0];
    assert_eq!(rt["value"]["comparedValue"].as_f64(), Some(400.0), "avg of the two newest passes: {rt}");
    assert_eq!(rt["passTargets"][0]["targetValue"].as_f64(), Some(440.0), "<=+10% of 400");
    assert_eq!(v["evaluation"]["comparedEvents"].as_array().unwrap().len(), 2);
    assert_eq!(v["evaluation"]["indicatorResults"][2]["status"], "info");

    // 700 ms: misses pass (both the relative and the absolute limit), within warning → 75 → warning.
    let o = keptn(
        d,
        &["evaluate", "--slo", "slo.yaml", "--sli", "slow.json", "--previous", "previous.json", "--exit-code"],
    );
    assert_eq!(o.code, 0, "warning is not fail: {}{}", o.stdout, o.stderr);
    let row = o.stdout.lines().find(|l| l.starts_with("Response time P95")).expect("a row per objective");
    assert!(row.contains("warning") && row.contains("target 440") && row.contains("target 600"), "says why: {row}");
    assert!(o.stdout.contains("Result: warning (score 75)"), "{}", o.stdout);

    // The key SLI fails: fail whatever the score; exit 1 only with --exit-code.
    let o = keptn(d, &["evaluate", "--slo", "slo.yaml", "--sli", "errors.json", "-o", "yaml"]);
    assert_eq!(o.code, 0, "the evaluation ran: {}", o.stderr);
    assert!(o.stdout.contains("result: fail") && o.stdout.contains("key_sli objective"), "{}", o.stdout);
    let o = keptn(d, &["evaluate", "--slo", "slo.yaml", "--sli", "errors.json", "--exit-code"]);
    assert_eq!(o.code, 1, "a failed gate fails the step: {}", o.stdout);

    // No SLO: keptn's answer for a service without one.
    let o = keptn(d, &["evaluate", "--sli", "good.json", "-o", "json"]);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!((v["result"].as_str(), v["evaluation"]["score"].as_f64()), (Some("pass"), Some(0.0)));

    // Mistakes are named with where they are.
    std::fs::write(
        d.join("bad.yaml"),
        "objectives: [{sli: a, pass: [{criteria: [\"<=abc\"]}]}]\ntotal_score: {pass: 90%}\n",
    )
    .unwrap();
    let o = keptn(d, &["evaluate", "--slo", "bad.yaml", "--sli", "good.json"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("objectives[0].pass[0].criteria[0]") && o.stderr.contains("<=abc"), "{}", o.stderr);
    std::fs::write(d.join("notarray.json"), "{}").unwrap();
    let o = keptn(d, &["evaluate", "--slo", "slo.yaml", "--sli", "notarray.json"]);
    assert!(o.code == 1 && o.stderr.contains("JSON array of SLI results"), "{}", o.stderr);
    let o = keptn(d, &["evaluate", "--slo", "missing.yaml", "--sli", "good.json"]);
    assert!(o.code == 1 && o.stderr.contains("missing.yaml"), "{}", o.stderr);
}
