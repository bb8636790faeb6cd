//! `trigger delivery|sequence|evaluation`, `send event -f`, `configure monitoring`: events posted
//! to the API, optionally followed live (`--watch`) until the sequence ends.

use super::event_data::{labels, unfold};
use super::output::Format;
use super::watch::{self, Watched};
use super::{Client, Exit};
use anyhow::Context as _;
use clap::Args;
use serde_json::{Map, Value, json};
use std::time::Duration;

const CLI_SOURCE: &str = "https://github.com/keptn/keptn/cli";

/// `--watch`, `--watch-time` and `-o` of every `trigger …` command.
#[derive(Args, Debug)]
pub struct WatchFlags {
    /// Follow the sequence live until it ends; the exit status says how it ended.
    #[arg(short = 'w', long)]
    watch: bool,
    /// Stop watching after this many seconds (exit status 4 if still running).
    #[arg(long = "watch-time", value_name = "SECONDS")]
    watch_time: Option<u64>,
    /// json|yaml print the API's answer (with --watch: every state change).
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: Format,
}

#[derive(Args, Debug)]
pub struct TriggerDelivery {
    #[arg(long)]
    project: String,
    #[arg(long)]
    service: String,
    /// The image to deliver, e.g. docker.io/keptnexamples/carts:0.13.1.
    #[arg(long)]
    image: String,
    /// The stage to start in (default: the shipyard's first stage).
    #[arg(long)]
    stage: Option<String>,
    #[arg(long, default_value = "delivery")]
    sequence: String,
    /// YAML or JSON files whose values are merged into configurationChange.values (repeatable).
    #[arg(long)]
    values: Vec<String>,
    /// key=value pairs, comma separated (repeatable).
    #[arg(short = 'l', long)]
    labels: Vec<String>,
    #[command(flatten)]
    watch: WatchFlags,
}

#[derive(Args, Debug)]
pub struct TriggerSequence {
    /// The sequence name, as in the shipyard.
    sequence: String,
    #[arg(long)]
    project: String,
    #[arg(long)]
    stage: String,
    #[arg(long)]
    service: String,
    #[arg(short = 'l', long)]
    labels: Vec<String>,
    /// Event data as key.sub=value pairs, comma separated (repeatable).
    #[arg(short = 'd', long)]
    data: Vec<String>,
    #[command(flatten)]
    watch: WatchFlags,
}

#[derive(Args, Debug)]
pub struct TriggerEvaluation {
    #[arg(long)]
    project: String,
    #[arg(long)]
    stage: String,
    #[arg(long)]
    service: String,
    /// How far back from --end (or now), e.g. 5m, 1h30m.
    #[arg(long)]
    timeframe: Option<String>,
    /// Start, e.g. 2026-11-27T10:00:00.
    #[arg(long)]
    start: Option<String>,
    #[arg(long)]
    end: Option<String>,
    #[arg(short = 'l', long)]
    labels: Vec<String>,
    /// Evaluate the SLOs of this configuration revision.
    #[arg(long = "git-commit-id")]
    git_commit_id: Option<String>,
    #[command(flatten)]
    watch: WatchFlags,
}

#[derive(Args, Debug)]
pub struct SendEventFile {
    /// A CloudEvent as JSON (type, source and data are required).
    #[arg(short = 'f', long)]
    pub file: String,
}

#[derive(Args, Debug)]
pub struct ConfigureMonitoring {
    /// The SLI provider, e.g. prometheus.
    provider: String,
    #[arg(short = 'p', long)]
    project: String,
    #[arg(short = 's', long)]
    service: String,
    /// How long to wait for the provider's confirmation.
    #[arg(long = "wait-time", value_name = "SECONDS", default_value_t = 30)]
    wait_time: u64,
}

/// Posts a sequence `.triggered` event, prints the context, and follows it with `--watch`.
async fn trigger(client: &Client, ty: String, data: Value, watch: &WatchFlags, what: &str) -> anyhow::Result<Exit> {
    let event = json!({ "specversion": "1.0", "type": ty, "source": format!("{CLI_SOURCE}#configuration-change"),
                        "datacontenttype": "application/json", "shkeptnspecversion": "0.2.4", "data": data });
    let answer = client.post("/api/v1/event", &event).await?;
    let project = data["project"].as_str().unwrap_or_default();
    after_trigger(client, project, &answer, watch, what).await
}

async fn after_trigger(
    client: &Client,
    project: &str,
    answer: &Value,
    w: &WatchFlags,
    what: &str,
) -> anyhow::Result<Exit> {
    let context = answer["keptnContext"].as_str().context("the server did not return a keptnContext")?.to_string();
    if !w.watch {
        match w.output {
            Format::Table => {
                println!("Started {what}");
                println!("ID of Keptn context: {context}");
                println!("Follow it with `keptn get sequence {context} --project {project}`");
            }
            f => super::output::print(f, answer, Vec::new())?,
        }
        return Ok(Exit::Ok);
    }
    if matches!(w.output, Format::Table) {
        println!("Started {what}, keptn context {context}");
    }
    let limit = w.watch_time.map(Duration::from_secs);
    match watch::follow(client, project, &context, w.output, limit).await? {
        Watched::Finished(o) if o.failed => Ok(Exit::SequenceFailed),
        Watched::Finished(_) => Ok(Exit::Ok),
        Watched::StillRunning => {
            eprintln!(
                "Still running after {}s; follow it with `keptn get sequence {context} --project {project}`",
                w.watch_time.unwrap_or(0)
            );
            Ok(Exit::StillRunning)
        }
    }
}

/// keptn's default stage: the shipyard's first.
async fn first_stage(client: &Client, project: &str) -> anyhow::Result<String> {
    let p = client.get(&format!("/api/controlPlane/v1/project/{project}")).await?;
    p["stages"][0]["stageName"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("project {project:?} has no stages"))
}

fn read_values(path: &str) -> anyhow::Result<Map<String, Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the values file {path}"))?;
    let v: Value = yaml_serde::from_str(&text).with_context(|| format!("{path} is not YAML or JSON"))?;
    match v {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        _ => anyhow::bail!("{path} must hold a mapping of values (key: value)"),
    }
}

pub async fn delivery(t: TriggerDelivery) -> anyhow::Result<Exit> {
    let client = super::client::from_config()?;
    let stage = match t.stage {
        Some(s) => s,
        None => first_stage(&client, &t.project).await?,
    };
    let mut values = Map::new();
    for path in &t.values {
        values.extend(read_values(path)?);
    }
    values.insert("image".into(), json!(t.image));
    let data = json!({ "project": t.project, "stage": stage, "service": t.service, "labels": labels(&t.labels)?,
                       "configurationChange": { "values": values } });
    let ty = format!("sh.keptn.event.{stage}.{}.triggered", t.sequence);
    let what = format!("{} of {} in {}/{} (stage {stage})", t.sequence, t.image, t.project, t.service);
    trigger(&client, ty, data, &t.watch, &what).await
}

pub async fn sequence(t: TriggerSequence) -> anyhow::Result<Exit> {
    let client = super::client::from_config()?;
    let mut data = unfold(&t.data)?;
    for (k, v) in [("project", &t.project), ("stage", &t.stage), ("service", &t.service)] {
        data[k] = json!(v);
    }
    data["labels"] = Value::Object(labels(&t.labels)?);
    let ty = format!("sh.keptn.event.{}.{}.triggered", t.stage, t.sequence);
    let what = format!("sequence {} in {}/{} (stage {})", t.sequence, t.project, t.service, t.stage);
    trigger(&client, ty, data, &t.watch, &what).await
}

pub async fn evaluation(t: TriggerEvaluation) -> anyhow::Result<Exit> {
    let client = super::client::from_config()?;
    if t.end.is_some() && t.timeframe.is_some() {
        anyhow::bail!("--end and --timeframe cannot be combined; give --start and --end, or --timeframe");
    }
    let mut body = json!({ "labels": labels(&t.labels)? });
    for (k, v) in [("timeframe", &t.timeframe), ("start", &t.start), ("end", &t.end), ("gitcommitid", &t.git_commit_id)]
    {
        if let Some(v) = v {
            body[k] = json!(v);
        }
    }
    let path = format!("/api/controlPlane/v1/project/{}/stage/{}/service/{}/evaluation", t.project, t.stage, t.service);
    let answer = client.post(&path, &body).await?;
    let what = format!("evaluation of {}/{} in stage {}", t.project, t.service, t.stage);
    after_trigger(&client, &t.project, &answer, &t.watch, &what).await
}

pub async fn send_file(s: SendEventFile) -> anyhow::Result<Exit> {
    let client = super::client::from_config()?;
    let text = std::fs::read_to_string(&s.file).with_context(|| format!("cannot read the event file {}", s.file))?;
    let event: Value = serde_json::from_str(&text).with_context(|| format!("{} is not a JSON CloudEvent", s.file))?;
    let answer = client.post("/api/v1/event", &event).await?;
    println!("ID of Keptn context: {}", answer["keptnContext"].as_str().unwrap_or_default());
    Ok(Exit::Ok)
}

const FINISHED: &str = "sh.keptn.event.configure-monitoring.finished";

/// keptn's legacy `sh.keptn.event.monitoring.configure`; waits for a provider's
/// `configure-monitoring.finished` in the same context and prints its message.
pub async fn configure_monitoring(c: ConfigureMonitoring) -> anyhow::Result<Exit> {
    let client = super::client::from_config()?;
    let event = json!({ "specversion": "1.0", "type": "sh.keptn.event.monitoring.configure", "source": CLI_SOURCE,
                        "datacontenttype": "application/json",
                        "data": { "type": c.provider, "project": c.project, "service": c.service } });
    let answer = client.post("/api/v1/event", &event).await?;
    let context = answer["keptnContext"].as_str().context("the server did not return a keptnContext")?.to_string();
    println!("Monitoring provider {} selected for project {} (keptn context {context})", c.provider, c.project);
    let mut stream = client.stream(&format!("/api/controlPlane/v1/sequence/{}/{context}/watch", c.project)).await?;
    // An answer that came before the stream was open is in the datastore; later ones arrive live.
    let stored =
        client.get(&format!("/api/mongodb-datastore/event?keptnContext={context}&type={FINISHED}&pageSize=1")).await?;
    let earlier = stored["events"].get(0).cloned();
    let wait = async {
        if earlier.is_some() {
            return anyhow::Ok(earlier);
        }
        loop {
            let Some((_, frame)) = stream.next().await? else { return anyhow::Ok(None) };
            if frame["event"]["type"] == FINISHED {
                return Ok(Some(frame["event"].clone()));
            }
        }
    };
    match tokio::time::timeout(Duration::from_secs(c.wait_time), wait).await {
        Ok(Ok(Some(finished))) => {
            let d = &finished["data"];
            let message = d["message"].as_str().unwrap_or_default();
            println!(
                "{}: {} {message}",
                finished["source"].as_str().unwrap_or("integration"),
                d["result"].as_str().unwrap_or("")
            );
            if d["result"] == "fail" || d["status"] == "errored" {
                return Ok(Exit::SequenceFailed);
            }
            Ok(Exit::Ok)
        }
        Ok(Ok(None)) | Err(_) => {
            println!(
                "No monitoring integration confirmed within {}s (no integration subscribed to \
                 sh.keptn.event.monitoring.configure answered with sh.keptn.event.configure-monitoring.finished)",
                c.wait_time
            );
            Ok(Exit::Ok)
        }
        Ok(Err(e)) => Err(e),
    }
}
