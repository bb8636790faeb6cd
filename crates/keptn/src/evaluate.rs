//! `keptn evaluate`: the quality gate offline, for any CI. Reads `slo.yaml`, the SLI values (as
//! in `get-sli.finished`) and optionally earlier results (newest first), applies the SLO's
//! comparison rules itself, and prints keptn's `evaluation.finished` data or a readable report.
//! No server involved.

use crate::cli::output::{self, Format};
use anyhow::Context as _;
use clap::Args;
use keptn_slo::{Previous, SliResult, Slo};
use serde_json::Value;

#[derive(Args, Debug)]
pub struct EvaluateArgs {
    /// keptn's slo.yaml. Without it the result is keptn's for a service without an SLO (pass, score 0).
    #[arg(long)]
    slo: Option<String>,
    /// JSON array of SLI results: [{"metric","value","success","message"}].
    #[arg(long)]
    sli: String,
    /// JSON array, newest first, of earlier evaluation.finished data objects to compare with.
    #[arg(long)]
    previous: Option<String>,
    /// Printed as the evaluation's start and end.
    #[arg(long, default_value = "")]
    start: String,
    #[arg(long, default_value = "")]
    end: String,
    /// The project named in keptn's messages.
    #[arg(long, default_value = "local")]
    project: String,
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: Format,
    /// Exit with status 1 when the result is fail (otherwise 0 whenever the evaluation ran).
    #[arg(long = "exit-code")]
    pub exit_code: bool,
}

fn read_json(what: &str, path: &str) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the {what} file {path}"))?;
    serde_json::from_str(&text).with_context(|| format!("{path} is not JSON"))
}

fn previous(path: &str) -> anyhow::Result<Vec<Previous>> {
    let Value::Array(items) = read_json("previous results", path)? else {
        anyhow::bail!("{path} must be a JSON array of evaluation.finished data objects, newest first");
    };
    if let Some(problem) = items.iter().enumerate().find_map(|(i, item)| not_evaluation_data(item).map(|p| (i, p))) {
        anyhow::bail!(
            "{path}: previous[{}] {}; --previous takes a JSON array, newest first, of evaluation.finished data objects ({{\"result\", \"evaluation\": {{\"indicatorResults\": [...]}}}})",
            problem.0,
            problem.1
        );
    }
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(i, data)| Previous {
            // Files hold data objects without event ids; name them by position.
            id: Some(data.get("id").and_then(Value::as_str).map_or_else(|| format!("previous[{i}]"), str::to_string)),
            data,
        })
        .collect())
}

/// Why `item` is not the data of an `evaluation.finished` event, if it is not: scoring against
/// something else would silently compare with nothing.
fn not_evaluation_data(item: &Value) -> Option<String> {
    let Value::Object(o) = item else {
        return Some(format!("is {}, not an object", kind(item)));
    };
    if o.contains_key("type") && o.contains_key("data") {
        return Some("is a whole event; give its data (e.g. `jq '[.events[].data]'`)".into());
    }
    if o.contains_key("metric") {
        return Some("is an SLI value (metric, value, success), which belongs in --sli".into());
    }
    let Some(Value::Object(evaluation)) = o.get("evaluation") else {
        return Some("has no evaluation object".into());
    };
    if !matches!(evaluation.get("indicatorResults"), None | Some(Value::Null | Value::Array(_))) {
        return Some("has an evaluation.indicatorResults that is not an array".into());
    }
    if !o.get("result").is_some_and(Value::is_string) {
        return Some("has no result (pass, warning or fail)".into());
    }
    None
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Returns whether the result was `fail`.
pub fn run(a: EvaluateArgs) -> anyhow::Result<bool> {
    let values: Vec<SliResult> = serde_json::from_value(read_json("SLI values", &a.sli)?).with_context(|| {
        format!("{} must be a JSON array of SLI results like [{{\"metric\":\"error_rate\",\"value\":0.01,\"success\":true}}]", a.sli)
    })?;
    let evaluation = match &a.slo {
        None => keptn_slo::without_slo(&a.project, &a.start, &a.end),
        Some(path) => {
            let raw = std::fs::read(path).with_context(|| format!("cannot read the SLO file {path}"))?;
            // Strict: a CI user wants the file's mistakes named, not keptn's failed evaluation.
            let slo = Slo::parse(&raw).with_context(|| format!("{path} is not a valid SLO"))?;
            let candidates = match &a.previous {
                Some(p) => previous(p)?,
                None => Vec::new(),
            };
            let baseline = keptn_slo::select_baseline(&slo, &candidates);
            keptn_slo::evaluate(&slo, &values, &baseline, &a.start, &a.end)
        }
    };
    let data = evaluation.to_data();
    match a.output {
        Format::Table => print!("{}", report(&data)),
        f => output::print(f, &data, Vec::new())?,
    }
    Ok(evaluation.result == "fail")
}

fn num(v: &Value) -> String {
    v.as_f64().map(|f| format!("{}", (f * 1000.0).round() / 1000.0)).unwrap_or_else(|| "-".into())
}

fn targets(v: &Value) -> String {
    let list: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| format!("{}{}", t["criteria"].as_str().unwrap_or(""), if t["violated"] == true { " ✗" } else { "" }))
        .collect();
    if list.is_empty() { "-".into() } else { list.join(" ") }
}

/// Why an objective ended as it did, in words.
fn why(r: &Value) -> String {
    let value = &r["value"];
    if value["success"] == false {
        return value["message"].as_str().unwrap_or("no value").to_string();
    }
    let violated = |key: &str| -> Vec<String> {
        r[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["violated"] == true)
            .map(|t| format!("{} (target {})", t["criteria"].as_str().unwrap_or(""), num(&t["targetValue"])))
            .collect()
    };
    match r["status"].as_str().unwrap_or("") {
        "pass" => "meets the pass criteria".into(),
        "info" => "informational, not scored".into(),
        "warning" => format!("misses pass: {}", violated("passTargets").join(", ")),
        _ => format!("misses {}", violated("passTargets").join(", ")),
    }
}

/// A readable report: one row per objective, then the total.
fn report(data: &Value) -> String {
    let ev = &data["evaluation"];
    let mut rows = vec![
        ["OBJECTIVE", "VALUE", "BASELINE", "PASS", "WARNING", "STATUS", "SCORE", "WHY"].map(String::from).to_vec(),
    ];
    for r in ev["indicatorResults"].as_array().into_iter().flatten() {
        let name = r["displayName"].as_str().filter(|s| !s.is_empty()).or(r["value"]["metric"].as_str()).unwrap_or("");
        rows.push(vec![
            format!("{name}{}", if r["keySli"] == true { " (key)" } else { "" }),
            num(&r["value"]["value"]),
            num(&r["value"]["comparedValue"]),
            targets(&r["passTargets"]),
            targets(&r["warningTargets"]),
            r["status"].as_str().unwrap_or("").into(),
            num(&r["score"]),
            why(r),
        ]);
    }
    let mut out = if rows.len() > 1 { output::table(&rows) } else { String::new() };
    out.push_str(&format!("\nResult: {} (score {})", data["result"].as_str().unwrap_or(""), num(&ev["score"])));
    if let Some(compared) = ev["comparedEvents"].as_array().filter(|c| !c.is_empty()) {
        out.push_str(&format!(", compared with {} earlier result(s)", compared.len()));
    }
    out.push('\n');
    if let Some(m) = data["message"].as_str().filter(|m| !m.is_empty()) {
        out.push_str(&format!("{m}\n"));
    }
    out
}
