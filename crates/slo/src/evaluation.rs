//! The `evaluation.finished` data lighthouse emits, and keptn's cases that need no SLI values.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde_json::{Value, json};

use crate::objective::IndicatorResult;

/// An evaluation outcome: the `data` of `evaluation.finished`, minus project/stage/service/labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// `data.result`: pass | warning | fail. May differ from `evaluation.result` (SLI provider failed).
    pub result: String,
    /// `data.status`: succeeded | errored.
    pub status: String,
    pub message: String,
    /// `data.evaluation`: result, score, indicatorResults, sloFileContent, timeStart, timeEnd,
    /// comparedEvents (omitted when empty).
    pub evaluation: Value,
}

impl Evaluation {
    /// `{"result","status","message","evaluation":{…}}`.
    pub fn to_data(&self) -> Value {
        json!({
            "result": self.result,
            "status": self.status,
            "message": self.message,
            "evaluation": self.evaluation,
        })
    }

    /// `evaluation.score` (0 when absent).
    pub fn score(&self) -> f64 {
        self.evaluation.get("score").and_then(Value::as_f64).unwrap_or(0.0)
    }

    /// `evaluation.result`.
    pub fn evaluation_result(&self) -> &str {
        self.evaluation.get("result").and_then(Value::as_str).unwrap_or("")
    }
}

/// `data.evaluation` as keptn's `EvaluationDetails` serializes it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Details<'a> {
    pub time_start: &'a str,
    pub time_end: &'a str,
    pub result: &'a str,
    pub score: f64,
    pub slo_file_content: String,
    pub indicator_results: Option<Vec<IndicatorResult>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub compared_events: Vec<String>,
}

impl Details<'_> {
    pub(crate) fn finish(self, result: &str, status: &str, message: String) -> Evaluation {
        // Plain structs of strings and numbers: serializing to a Value cannot fail (NaN becomes null).
        let evaluation = serde_json::to_value(&self).unwrap_or(Value::Null);
        Evaluation { result: result.into(), status: status.into(), message, evaluation }
    }
}

pub(crate) fn encode_slo(raw: Option<&[u8]>) -> String {
    raw.map(|r| STANDARD.encode(r)).unwrap_or_default()
}

/// An evaluation without indicator results.
fn bare<'a>(time_start: &'a str, time_end: &'a str, result: &'a str, raw_slo: Option<&[u8]>) -> Details<'a> {
    Details {
        time_start,
        time_end,
        result,
        score: 0.0,
        slo_file_content: encode_slo(raw_slo),
        indicator_results: None,
        compared_events: Vec::new(),
    }
}

/// No `slo.yaml` for the service (an SLI provider is configured): pass with score 0.
pub fn without_slo(project: &str, time_start: &str, time_end: &str) -> Evaluation {
    let message = format!("no evaluation performed by lighthouse because no SLO file configured for project {project}");
    bare(time_start, time_end, "pass", None).finish("pass", "succeeded", message)
}

/// No SLI provider configured for the project: pass with score 0.
pub fn without_sli_provider(project: &str, time_start: &str, time_end: &str) -> Evaluation {
    let message =
        format!("no evaluation performed by lighthouse because no SLI-provider configured for project {project}");
    bare(time_start, time_end, "pass", None).finish("pass", "succeeded", message)
}

/// keptn's errored evaluation: status errored, result fail, score 0, the raw SLO when known.
/// Used for an SLO that does not parse (see [`unparsable_slo_message`]), a missing or bad
/// `total_score` (from [`crate::evaluate`]), and failures of the server's own lookups.
pub fn errored(message: impl Into<String>, raw_slo: Option<&[u8]>, time_start: &str, time_end: &str) -> Evaluation {
    bare(time_start, time_end, "fail", raw_slo).finish("fail", "errored", message.into())
}

/// keptn's message for an `slo.yaml` that does not decode.
pub fn unparsable_slo_message(project: &str, stage: &str, service: &str) -> String {
    format!(
        "error retrieving SLO file: Could not parse SLO file for service {service} in stage {stage} in project {project}"
    )
}

/// get-sli.finished with `status: aborted` or `errored`: keptn answers before reading the SLO,
/// leaving `evaluation.result` at its initial `pass`.
pub(crate) fn sli_not_delivered(message: String, time_start: &str, time_end: &str) -> Evaluation {
    bare(time_start, time_end, "pass", None).finish("fail", "errored", message)
}
