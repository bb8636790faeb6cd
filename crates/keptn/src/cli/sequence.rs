//! `get sequence[s]` (keptn-rs addition: the state of sequences) and
//! `pause|resume|abort sequence`.

use super::Exit;
use super::output::{self, Format};
use clap::Args;
use serde_json::{Value, json};

const CP: &str = "/api/controlPlane/v1";

#[derive(Args, Debug)]
pub struct GetSequence {
    /// A keptn context: show its stages and tasks. Without it, list the project's sequences.
    context: Option<String>,
    #[arg(short = 'p', long)]
    project: String,
    #[arg(short = 's', long)]
    stage: Option<String>,
    #[arg(long)]
    service: Option<String>,
    /// Only sequences in this state (triggered, started, waiting, paused, finished, aborted, timedOut).
    #[arg(long)]
    state: Option<String>,
    /// Only sequences with this name (e.g. delivery).
    #[arg(long)]
    name: Option<String>,
    #[arg(long = "page-size", default_value_t = 20)]
    page_size: u32,
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: Format,
}

#[derive(Args, Debug)]
pub struct ControlSequence {
    #[arg(short = 'c', long = "keptn-context")]
    keptn_context: String,
    #[arg(short = 'p', long)]
    project: String,
    /// Only this stage (default: every stage of the context).
    #[arg(short = 's', long)]
    stage: Option<String>,
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

pub async fn get(g: GetSequence) -> anyhow::Result<Exit> {
    let client = super::client::from_config()?;
    if let Some(context) = &g.context {
        let path = format!("{CP}/sequence-execution?project={}&keptnContext={context}&pageSize=100", g.project);
        let execs = client.get(&path).await?;
        let states = client.get(&format!("{CP}/sequence/{}?keptnContext={context}", g.project)).await?;
        let state = states["states"].get(0).cloned().unwrap_or(Value::Null);
        anyhow::ensure!(
            !state.is_null(),
            "no sequence with keptn context {context} in project {}; list them with `keptn get sequences --project {}`",
            g.project,
            g.project
        );
        if !matches!(g.output, Format::Table) {
            return output::print(g.output, &execs, Vec::new()).map(|_| Exit::Ok);
        }
        println!(
            "{} of {}/{}, keptn context {context}, {}",
            s(&state["name"]),
            g.project,
            s(&state["service"]),
            s(&state["time"])
        );
        super::watch::print_static(
            execs["sequenceExecutions"].as_array().map(Vec::as_slice).unwrap_or_default(),
            &state,
        );
        return Ok(Exit::Ok);
    }
    let mut path = format!("{CP}/sequence/{}?pageSize={}", g.project, g.page_size);
    for (k, v) in [("state", &g.state), ("name", &g.name)] {
        if let Some(v) = v {
            path.push_str(&format!("&{k}={v}"));
        }
    }
    let mut raw = client.get(&path).await?;
    // The API filters by name and state; service and stage are filtered here.
    if let Some(states) = raw["states"].as_array_mut() {
        states.retain(|st| {
            g.service.as_deref().is_none_or(|svc| st["service"] == svc)
                && g.stage
                    .as_deref()
                    .is_none_or(|stage| st["stages"].as_array().into_iter().flatten().any(|x| x["name"] == stage))
        });
    }
    let mut rows = vec![["KEPTN CONTEXT", "SEQUENCE", "SERVICE", "STATE", "STAGES", "TIME"].map(String::from).to_vec()];
    for st in raw["states"].as_array().into_iter().flatten() {
        let stages: Vec<String> = st["stages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|x| {
                // keptn's stage state says `succeeded` for a stage whose result was `fail`.
                let state = if x["latestFailedEvent"].is_null() { s(&x["state"]) } else { "failed" };
                format!("{}:{state}", s(&x["name"]))
            })
            .collect();
        rows.push(vec![
            s(&st["shkeptncontext"]).into(),
            s(&st["name"]).into(),
            s(&st["service"]).into(),
            s(&st["state"]).into(),
            stages.join(","),
            s(&st["time"]).into(),
        ]);
    }
    output::print(g.output, &raw, rows)?;
    Ok(Exit::Ok)
}

pub async fn control(c: ControlSequence, action: &str) -> anyhow::Result<Exit> {
    let client = super::client::from_config()?;
    let body = json!({ "state": action, "stage": c.stage.clone().unwrap_or_default() });
    client.post(&format!("{CP}/sequence/{}/{}/control", c.project, c.keptn_context), &body).await?;
    let done = match action {
        "pause" => "paused",
        "resume" => "resumed",
        _ => "aborted",
    };
    match &c.stage {
        Some(stage) => println!("Sequence {} {done} in stage {stage}", c.keptn_context),
        None => println!("Sequence {} {done}", c.keptn_context),
    }
    Ok(Exit::Ok)
}
