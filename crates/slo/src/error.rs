//! What can be wrong with an `slo.yaml`, each naming the place in the file.

use crate::criteria::CriterionError;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SloError {
    /// Not YAML, or YAML keptn's decoder rejects (wrong type for a field, duplicate key). The text
    /// carries the field path and line, e.g. `objectives[0].weight: invalid type: floating point…`.
    #[error("slo.yaml could not be parsed: {0}")]
    Yaml(String),
    /// A criterion keptn cannot parse; it would fail every evaluation that reaches it.
    #[error("{path}: {criterion:?} is not a criterion; write e.g. \"<=+10%\" or \"<600\"")]
    Criterion { path: String, criterion: String, reason: CriterionError },
    /// keptn silently compared with baseline 0 for anything but these four (fix F3).
    #[error("comparison.aggregate_function: {0:?} is not supported; use avg, p50, p90 or p95")]
    AggregateFunction(String),
    /// Any other value keptn accepts at parse time but fails on when evaluating.
    #[error("{path}: {problem}")]
    Invalid { path: String, problem: String },
}
