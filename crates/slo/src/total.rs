//! The total score and the result it gives against `total_score` (keptn's `calculateScore`).

use crate::gofloat;
use crate::slo::{TotalScore, percentage};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Pass,
    Warning,
    Fail,
}

impl Outcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Warning => "warning",
            Outcome::Fail => "fail",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Verdict {
    pub outcome: Outcome,
    pub score: f64,
    /// Replaces the evaluation message when set; a pass keeps whatever message was there.
    pub message: Option<String>,
}

/// The first key SLI that failed: its display name and the reason.
pub(crate) struct KeyFailure {
    pub display_name: String,
    pub message: String,
}

/// Scores `total` out of `max` and judges it. `Err` is keptn's errored-evaluation message; the
/// percentages are only read when needed, so an informational-only SLO needs no `total_score`.
pub(crate) fn judge(
    max: f64,
    total: f64,
    total_score: Option<&TotalScore>,
    key_failure: Option<&KeyFailure>,
) -> Result<Verdict, String> {
    if max == 0.0 {
        // Nothing is scored (keptn #1213: avoid 0/0).
        return Ok(Verdict { outcome: Outcome::Pass, score: 100.0, message: None });
    }
    let score = 100.0 * (total / max);
    let limits = total_score.filter(|t| !t.pass.is_empty()).ok_or("no target score defined")?;
    let pass = percentage(&limits.pass).ok_or("could not parse pass target percentage")?;
    let verdict = |outcome, message| Ok(Verdict { outcome, score, message });
    let shown = gofloat::format(score);
    if score >= pass && key_failure.is_none() {
        verdict(Outcome::Pass, None)
    } else if !limits.warning.is_empty() && key_failure.is_none() {
        let warning = percentage(&limits.warning).ok_or("could not parse warning target percentage")?;
        let warning_shown = gofloat::format(warning);
        if score >= warning {
            let text = format!(
                "Evaluation returned a warning: the calculated score of {shown} is close to the warning target value of {warning_shown}"
            );
            verdict(Outcome::Warning, Some(text))
        } else {
            let text = format!(
                "Evaluation failed since the calculated score of {shown} is below the warning value of {warning_shown}"
            );
            verdict(Outcome::Fail, Some(text))
        }
    } else if let Some(key) = key_failure {
        let text = format!("Evaluation failed due to key_sli objective '{}': {}", key.display_name, key.message);
        verdict(Outcome::Fail, Some(text))
    } else {
        let text = format!(
            "Evaluation failed since the calculated score of {shown} is below the target value of {}",
            gofloat::format(pass)
        );
        verdict(Outcome::Fail, Some(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(pass: &str, warning: &str) -> TotalScore {
        TotalScore { pass: pass.into(), warning: warning.into() }
    }

    #[test]
    fn calculate_score_examples() {
        let t = limits("90%", "75%");
        let warning = judge(2.0, 1.506, Some(&t), None).unwrap();
        assert_eq!(warning.outcome, Outcome::Warning);
        assert_eq!(warning.score, 75.3);
        assert_eq!(
            warning.message.as_deref(),
            Some(
                "Evaluation returned a warning: the calculated score of 75.3 is close to the warning target value of 75"
            )
        );
        let fail = judge(2.0, 1.48, Some(&t), None).unwrap();
        assert_eq!(fail.outcome, Outcome::Fail);
        assert_eq!(fail.score, 74.0);
        assert_eq!(
            fail.message.as_deref(),
            Some("Evaluation failed since the calculated score of 74 is below the warning value of 75")
        );
        let pass = judge(2.0, 2.0, Some(&t), None).unwrap();
        assert_eq!((pass.outcome, pass.score, pass.message), (Outcome::Pass, 100.0, None));
    }

    #[test]
    fn without_warning_limit() {
        let verdict = judge(2.0, 1.0, Some(&limits("90", "")), None).unwrap();
        assert_eq!(verdict.outcome, Outcome::Fail);
        assert_eq!(
            verdict.message.as_deref(),
            Some("Evaluation failed since the calculated score of 50 is below the target value of 90")
        );
    }

    #[test]
    fn key_failure_overrides_the_score() {
        let key = KeyFailure {
            display_name: "Response time".into(),
            message: "failed evaluation with score 0.000000".into(),
        };
        let verdict = judge(2.0, 2.0, Some(&limits("50%", "40%")), Some(&key)).unwrap();
        assert_eq!(verdict.outcome, Outcome::Fail);
        assert_eq!(
            verdict.message.as_deref(),
            Some("Evaluation failed due to key_sli objective 'Response time': failed evaluation with score 0.000000")
        );
    }

    #[test]
    fn nothing_scored_passes_with_100_even_without_limits() {
        assert_eq!(judge(0.0, 0.0, None, None), Ok(Verdict { outcome: Outcome::Pass, score: 100.0, message: None }));
    }

    #[test]
    fn bad_limits_are_errors() {
        assert_eq!(judge(1.0, 1.0, None, None), Err("no target score defined".into()));
        assert_eq!(judge(1.0, 1.0, Some(&limits("", "75%")), None), Err("no target score defined".into()));
        assert_eq!(judge(1.0, 1.0, Some(&limits("x", "")), None), Err("could not parse pass target percentage".into()));
        assert_eq!(
            judge(1.0, 0.0, Some(&limits("90%", "x")), None),
            Err("could not parse warning target percentage".into())
        );
        // The warning limit is only read when the pass limit is missed.
        assert!(judge(1.0, 1.0, Some(&limits("90%", "x")), None).is_ok());
    }
}
