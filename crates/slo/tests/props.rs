//! Property: whatever the values, criteria and history, the total score stays within [0, 100]
//! and nothing serializes as NaN (keptn #1213). Weights are non-negative here: keptn lets negative
//! weights through, and with them a score outside [0, 100] is keptn's arithmetic, not a bug.

mod support;

use keptn_slo::{Previous, SliResult, Slo, from_sli_answer, select_baseline};
use proptest::prelude::*;
use support::{END, START, previous};

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => -1000.0..1000.0f64,
        1 => Just(0.0),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(1e308),
    ]
}

fn criterion() -> impl Strategy<Value = String> {
    let operator = prop::sample::select(vec!["<", "<=", "=", ">=", ">"]);
    let sign = prop::sample::select(vec!["", "+", "-"]);
    let percent = prop::sample::select(vec!["", "%"]);
    prop_oneof![
        8 => (operator, sign, 0u32..2000, percent).prop_map(|(o, s, n, p)| format!("{o}{s}{n}{p}")),
        1 => prop::sample::select(vec!["<=abc", "!=5", "==3", "", "<nan", "> + 5 %", "<1e400"]).prop_map(String::from),
        1 => "[<=>|+%0-9. -]{0,6}",
    ]
}

fn groups() -> impl Strategy<Value = Vec<Vec<String>>> {
    prop::collection::vec(prop::collection::vec(criterion(), 0..3), 0..3)
}

#[derive(Debug, Clone)]
struct ObjectiveSpec {
    pass: Vec<Vec<String>>,
    warning: Vec<Vec<String>>,
    weight: u8,
    key: bool,
}

fn objective() -> impl Strategy<Value = ObjectiveSpec> {
    (groups(), groups(), 0u8..5, any::<bool>()).prop_map(|(pass, warning, weight, key)| ObjectiveSpec {
        pass,
        warning,
        weight,
        key,
    })
}

fn yaml_groups(name: &str, groups: &[Vec<String>]) -> String {
    if groups.is_empty() {
        return String::new();
    }
    let mut out = format!("    {name}:\n");
    for group in groups {
        let list = group.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", ");
        out += &format!("      - criteria: [{list}]\n");
    }
    out
}

fn slo_yaml(objectives: &[ObjectiveSpec], aggregate: &str, pass: u8, warning: Option<u8>) -> String {
    let mut yaml =
        format!("comparison:\n  compare_with: several_results\n  aggregate_function: {aggregate}\nobjectives:\n");
    for (i, o) in objectives.iter().enumerate() {
        yaml += &format!("  - sli: m{}\n    weight: {}\n    key_sli: {}\n", i % 4, o.weight, o.key);
        yaml += &yaml_groups("pass", &o.pass);
        yaml += &yaml_groups("warning", &o.warning);
    }
    yaml += &format!("total_score:\n  pass: \"{pass}%\"\n");
    if let Some(w) = warning {
        yaml += &format!("  warning: \"{w}%\"\n");
    }
    yaml
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn total_score_is_within_0_and_100(
        objectives in prop::collection::vec(objective(), 0..6),
        aggregate in prop::sample::select(vec!["avg", "p50", "p90", "p95"]),
        pass in 0u8..=100,
        warning in prop::option::of(0u8..=100),
        values in prop::collection::vec((0usize..5, number(), any::<bool>()), 0..6),
        history in prop::collection::vec(prop::collection::vec((0usize..4, number(), any::<bool>()), 0..5), 0..4),
        sli_result in prop::sample::select(vec!["pass", "fail"]),
    ) {
        let slo = Slo::parse_lenient(slo_yaml(&objectives, aggregate, pass, warning).as_bytes()).unwrap();
        let values: Vec<SliResult> = values
            .iter()
            .map(|(m, value, success)| SliResult { metric: format!("m{m}"), value: *value, success: *success, message: String::new() })
            .collect();
        let history: Vec<Previous> = history
            .iter()
            .enumerate()
            .map(|(i, entries)| {
                let names: Vec<String> = entries.iter().map(|(m, _, _)| format!("m{m}")).collect();
                let triples: Vec<(&str, f64, bool)> =
                    entries.iter().zip(&names).map(|((_, v, s), name)| (name.as_str(), *v, *s)).collect();
                previous(&format!("p{i}"), "pass", &triples)
            })
            .collect();
        let chosen = select_baseline(&slo, &history);
        let evaluation = from_sli_answer(&slo, "succeeded", sli_result, "provider says no", &values, &chosen, START, END);
        let score = evaluation.evaluation["score"].as_f64();
        prop_assert!(score.is_some_and(|s| (0.0..=100.0).contains(&s)), "score {:?}", score);
        prop_assert!(["pass", "warning", "fail"].contains(&evaluation.result.as_str()));
        prop_assert!(["succeeded", "errored"].contains(&evaluation.status.as_str()));
        let text = serde_json::to_string(&evaluation.to_data()).unwrap();
        prop_assert!(!text.contains("NaN"));
    }
}
