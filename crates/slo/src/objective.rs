//! Scoring one objective against its SLI value and baseline (keptn's per-objective algorithm),
//! producing the `indicatorResults[]` entry.

use serde::Serialize;

use crate::SliResult;
use crate::criteria::{Criterion, Reference};
use crate::slo::Objective;

pub(crate) const NO_VALUE: &str = "no value received from SLI provider";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    Pass,
    Warning,
    Fail,
    Info,
}

/// One `indicatorResults[]` entry, field names as keptn emits them.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IndicatorResult {
    pub score: f64,
    pub value: Option<ValueOut>,
    pub display_name: String,
    pub pass_targets: Option<Vec<Target>>,
    pub warning_targets: Option<Vec<Target>>,
    pub key_sli: bool,
    pub status: Status,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ValueOut {
    pub metric: String,
    pub value: f64,
    pub compared_value: f64,
    pub success: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Target {
    pub criteria: String,
    pub target_value: f64,
    pub violated: bool,
}

/// What one objective contributes to the total.
pub(crate) struct Scored {
    pub result: IndicatorResult,
    /// Set when a key SLI failed: the message keptn puts after "key_sli objective '…': ".
    pub key_failure: Option<String>,
}

/// A criterion that does not parse aborts the whole evaluation; the text is keptn's message.
pub(crate) struct Abort(pub String);

/// Scores one objective. `value` is the SLI result named by the objective, `baseline` the
/// aggregated previous value (`None` when there is none with `success: true`).
pub(crate) fn score(objective: &Objective, value: Option<&SliResult>, baseline: Option<f64>) -> Result<Scored, Abort> {
    let compared = baseline.unwrap_or(0.0);
    if !objective.is_scored() {
        return Ok(informational(objective, value, baseline));
    }
    match value.filter(|v| v.success) {
        Some(value) => measured(objective, value, baseline),
        None => Ok(missing(objective, value, baseline, compared)),
    }
}

/// No pass criteria: never affects the result; warning criteria are listed as violated with their
/// literal or raw-baseline target, unevaluated, and `keySli` is not reported (keptn's behaviour).
fn informational(objective: &Objective, value: Option<&SliResult>, baseline: Option<f64>) -> Scored {
    let raw_baseline = |_: &Criterion| baseline.unwrap_or(0.0);
    Scored {
        result: IndicatorResult {
            score: 0.0,
            value: value.map(|v| value_out(v, baseline.unwrap_or(0.0))),
            display_name: objective.display_name.clone(),
            pass_targets: Some(Vec::new()),
            warning_targets: non_empty(listed(&objective.warning, raw_baseline)),
            key_sli: false,
            status: Status::Info,
        },
        key_failure: None,
    }
}

/// Value absent or `success: false`: the objective fails and every criterion is listed as violated.
fn missing(objective: &Objective, value: Option<&SliResult>, baseline: Option<f64>, compared: f64) -> Scored {
    let value = match value {
        Some(failed) => value_out(failed, compared),
        None => ValueOut {
            metric: objective.sli.clone(),
            value: 0.0,
            compared_value: compared,
            success: false,
            message: NO_VALUE.to_string(),
        },
    };
    // Fix F6: keptn reported the raw baseline for relative criteria here (10 for `<=+10%` over 10);
    // report the target the criterion would have had, 0 without a usable baseline as before.
    let computed = |c: &Criterion| c.target(baseline).unwrap_or(0.0);
    Scored {
        key_failure: objective.key_sli.then(|| value.message.clone()),
        result: IndicatorResult {
            score: 0.0,
            value: Some(value),
            display_name: objective.display_name.clone(),
            pass_targets: non_empty(listed(&objective.pass, computed)),
            warning_targets: non_empty(listed(&objective.warning, computed)),
            // Fix F5: keptn left `keySli` false on this path.
            key_sli: objective.key_sli,
            status: Status::Fail,
        },
    }
}

/// A successful value: pass groups decide, warning groups give half the weight.
fn measured(objective: &Objective, value: &SliResult, baseline: Option<f64>) -> Result<Scored, Abort> {
    let weight = objective.weight as f64;
    let (passed, pass_targets) = check_groups(objective, &objective.pass, value.value, baseline)?;
    let (mut status, mut score) = if passed { (Status::Pass, weight) } else { (Status::Fail, 0.0) };
    // Warning targets are reported even when the objective passed.
    let warning_targets = if objective.warning.is_empty() {
        None
    } else {
        // Fix F4: keptn swallowed parse errors here (treating them as "not warning").
        let (warned, targets) = check_groups(objective, &objective.warning, value.value, baseline)?;
        if !passed && warned {
            (status, score) = (Status::Warning, 0.5 * weight);
        }
        non_empty(targets)
    };
    // A key SLI in warning is not a key-SLI failure.
    let key_failure =
        (status == Status::Fail && objective.key_sli).then(|| "failed evaluation with score 0.000000".into());
    Ok(Scored {
        key_failure,
        result: IndicatorResult {
            score,
            value: Some(value_out(value, baseline.unwrap_or(0.0))),
            display_name: objective.display_name.clone(),
            pass_targets: non_empty(pass_targets),
            warning_targets,
            key_sli: objective.key_sli,
            status,
        },
    })
}

/// OR over groups, AND within a group; every group is evaluated so every criterion is reported.
fn check_groups(
    objective: &Objective,
    groups: &[Vec<String>],
    measured: f64,
    baseline: Option<f64>,
) -> Result<(bool, Vec<Target>), Abort> {
    let mut any_group = false;
    let mut targets = Vec::with_capacity(groups.iter().map(Vec::len).sum());
    for group in groups {
        let mut all = true;
        for text in group {
            let criterion =
                Criterion::parse(text).map_err(|e| Abort(format!("error with {}: {e}", objective.name())))?;
            let (satisfied, target) = criterion.check(measured, baseline);
            all &= satisfied;
            targets.push(Target { criteria: text.clone(), target_value: target, violated: !satisfied });
        }
        any_group |= all;
    }
    Ok((any_group, targets))
}

/// Unevaluated criteria, all violated. A criterion that does not parse reports target 0.
fn listed(groups: &[Vec<String>], relative_target: impl Fn(&Criterion) -> f64) -> Vec<Target> {
    let target = |text: &str| match Criterion::parse(text) {
        Ok(c) if c.reference == Reference::Absolute => c.value,
        Ok(c) => relative_target(&c),
        Err(_) => 0.0,
    };
    groups
        .iter()
        .flatten()
        .map(|text| Target { criteria: text.clone(), target_value: target(text), violated: true })
        .collect()
}

/// keptn's target lists are Go slices: `null` when nothing was appended.
fn non_empty(targets: Vec<Target>) -> Option<Vec<Target>> {
    (!targets.is_empty()).then_some(targets)
}

fn value_out(value: &SliResult, compared: f64) -> ValueOut {
    ValueOut {
        metric: value.metric.clone(),
        value: value.value,
        compared_value: compared,
        success: value.success,
        message: value.message.clone(),
    }
}
