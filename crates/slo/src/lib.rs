//! Quality gates as keptn 1.x's lighthouse-service computes them: `slo.yaml`, criteria, baselines
//! from previous evaluations, scoring, and the `evaluation.finished` data. Pure functions, no I/O.
//!
//! Flow for one `get-sli.finished`: parse the SLO with [`Slo::parse_lenient`] (keptn-exact: bad
//! criteria give keptn's failed evaluation, not a parse error), fetch up to
//! [`Comparison::results_wanted`] previous evaluations (newest first, matching
//! [`Comparison::result_filter`] on `data.result`, invalidated ones removed), pick them with
//! [`select_baseline`], then [`from_sli_answer`] (or [`evaluate`]). [`Slo::parse`] is the strict
//! variant for validating a file up front.
//!
//! Scores equal keptn's on the same inputs except for these deliberate fixes, each documented
//! where it is made:
//! - F1 a second objective for the same SLI gets the value too (`evaluate.rs`);
//! - F2 an objective whose pass groups are all empty is informational ([`Objective::is_scored`]);
//! - F3 an unknown `aggregate_function` is an SLO error ([`SloError::AggregateFunction`], `evaluate.rs`);
//! - F4 an unparsable warning criterion aborts like a pass criterion (`objective.rs`);
//! - F5 `keySli` is reported for objectives whose value is missing or failed (`objective.rs`);
//! - F6 those objectives report computed relative targets, not the raw baseline (`objective.rs`).

mod baseline;
mod criteria;
mod error;
mod evaluate;
mod evaluation;
mod gofloat;
mod objective;
mod raw;
mod slo;
mod total;

use serde::{Deserialize, Serialize};

pub use baseline::{Previous, aggregate_values, select_baseline};
pub use criteria::{Criterion, CriterionError, Operator, Reference};
pub use error::SloError;
pub use evaluate::{evaluate, from_sli_answer};
pub use evaluation::{Evaluation, errored, unparsable_slo_message, without_sli_provider, without_slo};
pub use slo::{Aggregate, CompareWith, Comparison, IncludeResults, MAX_COMPARISON_RESULTS, Objective, Slo, TotalScore};

/// One entry of `get-sli.finished` `data.get-sli.indicatorValues`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
pub struct SliResult {
    pub metric: String,
    #[serde(default)]
    pub value: f64,
    #[serde(default)]
    pub success: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}
