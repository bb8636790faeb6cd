//! The parsed `slo.yaml` with keptn's defaults applied, and its validation.

use std::collections::BTreeMap;

use crate::criteria::Criterion;
use crate::error::SloError;
use crate::gofloat;
use crate::raw::{self, RawComparison, RawGroup, RawObjective};

/// keptn's datastore refuses `limit` outside 1..=100, failing the evaluation.
pub const MAX_COMPARISON_RESULTS: usize = 100;

/// A parsed `slo.yaml`. Criteria stay strings: keptn reports unparsable ones per evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    raw: Vec<u8>,
    filter: BTreeMap<String, String>,
    comparison: Comparison,
    objectives: Vec<Objective>,
    total_score: Option<TotalScore>,
}

/// One entry of `objectives` (`null` entries are dropped, as keptn does).
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    pub sli: String,
    pub display_name: String,
    /// OR of groups; each group's criteria are ANDed. A `null` group is an empty one.
    pub pass: Vec<Vec<String>>,
    pub warning: Vec<Vec<String>>,
    /// `0` or absent became `1`; negative values pass through, as in keptn.
    pub weight: i64,
    pub key_sli: bool,
    /// Index in the file's `objectives` list, for error paths.
    position: usize,
}

/// `total_score`; empty strings where a key is absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotalScore {
    pub pass: String,
    pub warning: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    pub compare_with: CompareWith,
    pub include_result_with_score: IncludeResults,
    pub number_of_comparison_results: usize,
    pub aggregate_function: Aggregate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompareWith {
    SingleResult,
    SeveralResults,
    /// Empty or unknown (case-sensitive): keptn then uses 3 previous results.
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncludeResults {
    All,
    Pass,
    PassOrWarn,
    /// Lower-cased unknown value: no filter, like `all`.
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Aggregate {
    Avg,
    P50,
    P90,
    P95,
    /// Accepted by [`Slo::parse_lenient`] only; evaluating it is an error (fix F3).
    Unknown(String),
}

impl Comparison {
    /// keptn's defaults when the `comparison` block is absent.
    fn absent() -> Comparison {
        Comparison {
            compare_with: CompareWith::SingleResult,
            include_result_with_score: IncludeResults::All,
            number_of_comparison_results: 1,
            aggregate_function: Aggregate::Avg,
        }
    }

    fn from_raw(raw: RawComparison) -> Comparison {
        let compare_with = match raw.compare_with.unwrap_or_default().as_str() {
            "single_result" => CompareWith::SingleResult,
            "several_results" => CompareWith::SeveralResults,
            other => CompareWith::Other(other.to_string()),
        };
        let include_result_with_score = match raw.include_result_with_score.unwrap_or_default().to_lowercase().as_str()
        {
            "" | "all" => IncludeResults::All,
            "pass" => IncludeResults::Pass,
            "pass_or_warn" => IncludeResults::PassOrWarn,
            other => IncludeResults::Other(other.to_string()),
        };
        // 0/absent means 3; a negative count becomes 0, which fails like keptn's datastore query.
        let number_of_comparison_results = match raw.number_of_comparison_results.map_or(0, |n| n.0) {
            0 => 3,
            n => usize::try_from(n).unwrap_or(0),
        };
        let aggregate_function = match raw.aggregate_function.unwrap_or_default().as_str() {
            "" | "avg" => Aggregate::Avg,
            "p50" => Aggregate::P50,
            "p90" => Aggregate::P90,
            "p95" => Aggregate::P95,
            other => Aggregate::Unknown(other.to_string()),
        };
        Comparison { compare_with, include_result_with_score, number_of_comparison_results, aggregate_function }
    }

    /// How many previous evaluations to use (1 / N / 3 per keptn's rules).
    pub fn results_wanted(&self) -> usize {
        match self.compare_with {
            CompareWith::SingleResult => 1,
            CompareWith::SeveralResults => self.number_of_comparison_results,
            CompareWith::Other(_) => 3,
        }
    }

    /// keptn's `data.result` filter: `None` = any, `Some(&["pass"])` or `Some(&["pass","warning"])`.
    pub fn result_filter(&self) -> Option<&'static [&'static str]> {
        match self.include_result_with_score {
            IncludeResults::Pass => Some(&["pass"]),
            IncludeResults::PassOrWarn => Some(&["pass", "warning"]),
            IncludeResults::All | IncludeResults::Other(_) => None,
        }
    }
}

impl Objective {
    fn from_raw(raw: RawObjective, position: usize) -> Objective {
        let weight = match raw.weight.map_or(0, |w| w.0) {
            0 => 1,
            w => w,
        };
        Objective {
            sli: raw.sli.unwrap_or_default(),
            display_name: raw.display_name.unwrap_or_default(),
            pass: groups(raw.pass),
            warning: groups(raw.warning),
            weight,
            key_sli: raw.key_sli.is_some_and(|k| k.0),
            position,
        }
    }

    /// The name keptn uses in messages: `displayName`, else `sli`.
    pub fn name(&self) -> &str {
        if self.display_name.is_empty() { &self.sli } else { &self.display_name }
    }

    /// Whether the objective counts towards the score: it has at least one pass criterion.
    ///
    /// Fix F2: keptn counted any non-empty `pass` list, so `pass: [{criteria: []}]` added its weight
    /// to the maximum score while its own score was excluded, silently lowering the percentage.
    /// Here such an objective is informational.
    pub fn is_scored(&self) -> bool {
        self.pass.iter().any(|group| !group.is_empty())
    }
}

fn groups(raw: Option<Vec<Option<RawGroup>>>) -> Vec<Vec<String>> {
    raw.unwrap_or_default()
        .into_iter()
        .map(|group| {
            let criteria = group.and_then(|g| g.criteria).unwrap_or_default();
            criteria.into_iter().map(Option::unwrap_or_default).collect()
        })
        .collect()
}

impl Slo {
    /// Accepts what keptn's YAML decoding accepts; criteria, `aggregate_function` and `total_score`
    /// are checked when evaluating, where keptn checks them. The server's evaluation path uses this
    /// one, so a bad criterion yields keptn's failed evaluation instead of a parse error; an unknown
    /// `aggregate_function` still yields an errored evaluation there (fix F3).
    pub fn parse_lenient(raw: &[u8]) -> Result<Slo, SloError> {
        let parsed = raw::decode(raw).map_err(SloError::Yaml)?;
        let objectives = parsed
            .objectives
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .filter_map(|(position, objective)| objective.map(|o| Objective::from_raw(o, position)))
            .collect();
        Ok(Slo {
            raw: raw.to_vec(),
            filter: parsed.filter.unwrap_or_default().into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect(),
            comparison: parsed.comparison.map_or_else(Comparison::absent, Comparison::from_raw),
            objectives,
            total_score: parsed
                .total_score
                .map(|t| TotalScore { pass: t.pass.unwrap_or_default(), warning: t.warning.unwrap_or_default() }),
        })
    }

    /// [`Slo::parse_lenient`] plus [`Slo::problems`]: fails on the first problem. For `keptn evaluate`
    /// and uploads, where reporting early beats a failed evaluation later.
    pub fn parse(raw: &[u8]) -> Result<Slo, SloError> {
        let slo = Slo::parse_lenient(raw)?;
        match slo.problems().into_iter().next() {
            Some(problem) => Err(problem),
            None => Ok(slo),
        }
    }

    /// Everything that would make keptn fail or mis-score an evaluation of this file, in file order:
    /// unknown `aggregate_function`, a comparison count outside 1..=100, invalid criteria, and a
    /// missing or unparsable `total_score` when some objective is scored.
    pub fn problems(&self) -> Vec<SloError> {
        let mut problems = Vec::new();
        if let Aggregate::Unknown(name) = &self.comparison.aggregate_function {
            problems.push(SloError::AggregateFunction(name.clone()));
        }
        if !(1..=MAX_COMPARISON_RESULTS).contains(&self.comparison.results_wanted()) {
            problems.push(SloError::Invalid {
                path: "comparison.number_of_comparison_results".into(),
                problem: format!("must be between 1 and {MAX_COMPARISON_RESULTS}"),
            });
        }
        for objective in &self.objectives {
            for (block, groups) in [("pass", &objective.pass), ("warning", &objective.warning)] {
                for (g, group) in groups.iter().enumerate() {
                    for (c, criterion) in group.iter().enumerate() {
                        if let Err(reason) = Criterion::parse(criterion) {
                            problems.push(SloError::Criterion {
                                path: format!("objectives[{}].{block}[{g}].criteria[{c}]", objective.position),
                                criterion: criterion.clone(),
                                reason,
                            });
                        }
                    }
                }
            }
        }
        if self.objectives.iter().any(Objective::is_scored) {
            problems.extend(self.total_score_problems());
        }
        problems
    }

    fn total_score_problems(&self) -> Vec<SloError> {
        let invalid = |path: &str, problem: &str| SloError::Invalid { path: path.into(), problem: problem.into() };
        let Some(total) = self.total_score.as_ref().filter(|t| !t.pass.is_empty()) else {
            return vec![invalid("total_score.pass", "missing; write e.g. pass: \"90%\"")];
        };
        let mut problems = Vec::new();
        if percentage(&total.pass).is_none() {
            problems.push(invalid("total_score.pass", "is not a percentage; write e.g. \"90%\""));
        }
        if !total.warning.is_empty() && percentage(&total.warning).is_none() {
            problems.push(invalid("total_score.warning", "is not a percentage; write e.g. \"75%\""));
        }
        problems
    }

    /// Every objective's `sli` in file order, without repeats: the get-sli `indicators`.
    pub fn indicators(&self) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        self.objectives.iter().filter(|o| seen.insert(o.sli.as_str())).map(|o| o.sli.clone()).collect()
    }

    /// The `filter` map sorted by key: the get-sli `customFilters`.
    pub fn filters(&self) -> Vec<(String, String)> {
        self.filter.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub fn comparison(&self) -> &Comparison {
        &self.comparison
    }

    pub fn objectives(&self) -> &[Objective] {
        &self.objectives
    }

    pub fn total_score(&self) -> Option<&TotalScore> {
        self.total_score.as_ref()
    }

    /// The file as given; evaluations carry it base64-encoded, not the defaulted form (keptn #1495).
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }
}

/// `"90%"` → 90: one trailing `%` removed, then Go float syntax, as keptn reads `total_score`.
pub(crate) fn percentage(text: &str) -> Option<f64> {
    gofloat::parse(text.strip_suffix('%').unwrap_or(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lenient(yaml: &str) -> Slo {
        Slo::parse_lenient(yaml.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn comparison_absent_defaults() {
        let slo = lenient("objectives: []");
        assert_eq!(slo.comparison(), &Comparison::absent());
        assert_eq!(slo.comparison().results_wanted(), 1);
        assert_eq!(lenient("comparison:\nobjectives: []").comparison(), &Comparison::absent());
    }

    #[test]
    fn comparison_present_defaults() {
        let c = lenient("comparison: {}").comparison;
        assert_eq!(c.compare_with, CompareWith::Other(String::new()));
        assert_eq!(c.include_result_with_score, IncludeResults::All);
        assert_eq!(c.number_of_comparison_results, 3);
        assert_eq!(c.aggregate_function, Aggregate::Avg);
        assert_eq!(c.results_wanted(), 3);
        assert_eq!(c.result_filter(), None);
    }

    #[test]
    fn compare_with_rules() {
        let wanted = |yaml: &str| lenient(yaml).comparison.results_wanted();
        assert_eq!(wanted("comparison: {compare_with: single_result, number_of_comparison_results: 5}"), 1);
        assert_eq!(wanted("comparison: {compare_with: several_results, number_of_comparison_results: 5}"), 5);
        assert_eq!(wanted("comparison: {compare_with: several_results}"), 3);
        // Empty or unknown (case-sensitive) ignores number_of_comparison_results.
        assert_eq!(wanted("comparison: {compare_with: '', number_of_comparison_results: 5}"), 3);
        assert_eq!(wanted("comparison: {compare_with: Single_Result, number_of_comparison_results: 5}"), 3);
        assert_eq!(wanted("comparison: {number_of_comparison_results: 5}"), 3);
    }

    #[test]
    fn include_result_with_score_is_lower_cased() {
        let filter = |value: &str| lenient(&format!("comparison: {{include_result_with_score: {value}}}")).comparison;
        assert_eq!(filter("PASS").result_filter(), Some(&["pass"][..]));
        assert_eq!(filter("pass_or_warn").result_filter(), Some(&["pass", "warning"][..]));
        assert_eq!(filter("all").result_filter(), None);
        assert_eq!(
            filter("pass_or_warning").include_result_with_score,
            IncludeResults::Other("pass_or_warning".into())
        );
        assert_eq!(filter("pass_or_warning").result_filter(), None);
    }

    #[test]
    fn aggregate_functions() {
        let aggregate = |value: &str| lenient(&format!("comparison: {{aggregate_function: {value}}}")).comparison;
        assert_eq!(aggregate("p90").aggregate_function, Aggregate::P90);
        assert_eq!(aggregate("''").aggregate_function, Aggregate::Avg);
        assert_eq!(aggregate("max").aggregate_function, Aggregate::Unknown("max".into()));
    }

    #[test]
    fn objective_defaults_and_null_entries() {
        let slo = lenient(
            "objectives:\n  - ~\n  - sli: a\n    weight: 0\n  - sli: b\n    weight: -2\n    key_sli: yes\n  - sli: c\n    weight: 3\n",
        );
        let weights: Vec<_> = slo.objectives().iter().map(|o| (o.sli.as_str(), o.weight, o.key_sli)).collect();
        assert_eq!(weights, [("a", 1, false), ("b", -2, true), ("c", 3, false)]);
    }

    #[test]
    fn scalars_are_accepted_as_strings() {
        let slo = lenient(
            "objectives:\n  - sli: 5\n    pass:\n      - criteria: [<5, ~]\n      - ~\ntotal_score:\n  pass: 90\n",
        );
        let objective = &slo.objectives()[0];
        assert_eq!(objective.sli, "5");
        assert_eq!(objective.pass, vec![vec!["<5".to_string(), String::new()], vec![]]);
        assert_eq!(slo.total_score().map(|t| t.pass.as_str()), Some("90"));
    }

    #[test]
    fn shapes_keptn_rejects() {
        for yaml in
            ["invalid", "objectives:\n  - sli: a\n    weight: 0.5\n", "objectives: x", "objectives:\n  - sli: [a]\n"]
        {
            assert!(matches!(Slo::parse_lenient(yaml.as_bytes()), Err(SloError::Yaml(_))), "{yaml}");
        }
        let error = Slo::parse_lenient(b"objectives:\n  - sli: a\n    weight: 0.5\n").unwrap_err().to_string();
        assert!(error.contains("objectives[0].weight"), "{error}");
    }

    #[test]
    fn empty_file_is_an_empty_slo() {
        let slo = lenient("# nothing yet\n");
        assert!(slo.objectives().is_empty());
        assert_eq!(slo.total_score(), None);
    }

    #[test]
    fn indicators_and_filters() {
        let slo = lenient("filter: {z: 1, a: x, m: ~}\nobjectives:\n  - sli: b\n  - sli: a\n  - sli: b\n");
        assert_eq!(slo.indicators(), ["b", "a"]);
        assert_eq!(
            slo.filters(),
            [("a".to_string(), "x".to_string()), ("m".into(), String::new()), ("z".into(), "1".into())]
        );
    }

    #[test]
    fn raw_bytes_are_kept() {
        let yaml = "objectives: []   # as typed\n";
        assert_eq!(lenient(yaml).raw(), yaml.as_bytes());
    }

    #[test]
    fn strict_parse_reports_criteria_with_their_place() {
        let yaml = "objectives:\n  - ~\n  - sli: a\n    pass:\n      - criteria: [\"<5\", \"<=abc\"]\ntotal_score: {pass: 90%}\n";
        assert!(Slo::parse_lenient(yaml.as_bytes()).is_ok());
        let error = Slo::parse(yaml.as_bytes()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "objectives[1].pass[0].criteria[1]: \"<=abc\" is not a criterion; write e.g. \"<=+10%\" or \"<600\""
        );
    }

    #[test]
    fn strict_parse_checks_warning_criteria_aggregate_and_total_score() {
        let strict = |yaml: &str| Slo::parse(yaml.as_bytes()).unwrap_err();
        assert!(matches!(
            strict(
                "objectives:\n  - sli: a\n    pass: [{criteria: [<5]}]\n    warning: [{criteria: [x]}]\ntotal_score: {pass: 90%}"
            ),
            SloError::Criterion { .. }
        ));
        assert_eq!(
            strict("comparison: {aggregate_function: max}").to_string(),
            "comparison.aggregate_function: \"max\" is not supported; use avg, p50, p90 or p95"
        );
        assert!(
            strict("objectives:\n  - sli: a\n    pass: [{criteria: [<5]}]").to_string().starts_with("total_score.pass")
        );
        assert!(
            strict("objectives:\n  - sli: a\n    pass: [{criteria: [<5]}]\ntotal_score: {pass: 90%, warning: x}")
                .to_string()
                .starts_with("total_score.warning")
        );
        assert!(
            strict("comparison: {compare_with: several_results, number_of_comparison_results: 101}")
                .to_string()
                .starts_with("comparison.number_of_comparison_results")
        );
        // Informational-only files need no total_score, as in keptn.
        assert!(Slo::parse(b"objectives:\n  - sli: a\n").is_ok());
    }

    #[test]
    fn percentages() {
        assert_eq!(percentage("90%"), Some(90.0));
        assert_eq!(percentage("90"), Some(90.0));
        assert_eq!(percentage("90 %"), None);
        assert_eq!(percentage("90%%"), None);
    }
}
