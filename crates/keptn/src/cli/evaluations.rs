//! `get evaluation[s]`: a service's quality-gate results over time.

use super::Exit;
use super::output::{self, Format};
use clap::Args;
use serde_json::Value;

#[derive(Args, Debug)]
pub struct GetEvaluations {
    #[arg(long)]
    project: String,
    #[arg(long)]
    stage: String,
    #[arg(long)]
    service: String,
    #[arg(long = "page-size", default_value_t = 20)]
    page_size: u32,
    /// Leave out evaluations marked invalid (`evaluation.invalidated`).
    #[arg(long = "exclude-invalidated")]
    exclude_invalidated: bool,
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: Format,
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.as_f64().map(|f| format!("{}", (f * 100.0).round() / 100.0)).unwrap_or_default(),
        _ => String::new(),
    }
}

pub async fn get(g: GetEvaluations) -> anyhow::Result<Exit> {
    let client = super::client::from_config()?;
    let path = format!(
        "/api/controlPlane/v1/project/{}/stage/{}/service/{}/evaluation?pageSize={}&excludeInvalidated={}",
        g.project, g.stage, g.service, g.page_size, g.exclude_invalidated
    );
    let raw = client.get(&path).await?;
    let mut rows = vec![["TIME", "RESULT", "SCORE", "OBJECTIVES", "KEPTN CONTEXT", "NOTE"].map(String::from).to_vec()];
    for e in raw["evaluations"].as_array().into_iter().flatten() {
        let results = e["evaluation"]["indicatorResults"].as_array().cloned().unwrap_or_default();
        let passed = results.iter().filter(|r| r["status"] == "pass").count();
        let scored = results.iter().filter(|r| r["status"] != "info").count();
        let note = if e["invalidated"] == true { "invalidated".to_string() } else { s(&e["message"]) };
        rows.push(vec![
            s(&e["time"]),
            s(&e["result"]),
            s(&e["evaluation"]["score"]),
            format!("{passed}/{scored} pass"),
            s(&e["keptnContext"]),
            note,
        ]);
    }
    output::print(g.output, &raw, rows)?;
    Ok(Exit::Ok)
}
