//! `get event[s] [TYPE]` and `send event approval.finished` (approve or decline an open approval,
//! chosen interactively or with `--id`).

use super::Exit;
use super::event_data::{full_type, labels};
use super::output::{self, Format};
use anyhow::Context as _;
use clap::Args;
use serde_json::{Value, json};
use std::io::BufRead;

#[derive(Args, Debug)]
pub struct GetEvent {
    /// Event type, short (`deployment.finished`) or full (`sh.keptn.event.deployment.finished`).
    /// `approval.triggered` lists the approvals still open.
    r#type: Option<String>,
    #[arg(long)]
    project: String,
    #[arg(long = "keptn-context")]
    keptn_context: Option<String>,
    #[arg(long)]
    stage: Option<String>,
    #[arg(long)]
    service: Option<String>,
    #[arg(long = "page-size", default_value_t = 100)]
    page_size: u32,
    /// At most this many pages are fetched.
    #[arg(long = "num-of-pages", default_value_t = 100)]
    num_of_pages: u32,
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: Format,
}

#[derive(Args, Debug)]
pub struct ApprovalFinished {
    #[arg(long)]
    project: String,
    #[arg(long)]
    stage: String,
    #[arg(long)]
    service: Option<String>,
    /// The id of the approval.triggered event to answer (for scripts).
    #[arg(long)]
    id: Option<String>,
    #[arg(short = 'l', long)]
    labels: Vec<String>,
    /// Approve without asking.
    #[arg(long, conflicts_with = "decline")]
    approve: bool,
    /// Decline without asking.
    #[arg(long)]
    decline: bool,
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| format!("{k}={}", url_escape(v))))
        .collect();
    parts.join("&")
}

/// Percent-encodes a query value.
fn url_escape(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn get(g: GetEvent) -> anyhow::Result<Exit> {
    let client = super::client::from_config()?;
    let ty = g.r#type.as_deref().map(full_type);
    if ty.as_deref() == Some("sh.keptn.event.approval.triggered") {
        let path = format!(
            "/api/controlPlane/v1/event/triggered/sh.keptn.event.approval.triggered?{}",
            query(&[("project", Some(&g.project)), ("stage", g.stage.as_deref()), ("service", g.service.as_deref())])
        );
        let raw = client.get(&path).await?;
        print_events(g.output, &raw)?;
        return Ok(Exit::Ok);
    }
    let filter = query(&[
        ("project", Some(&g.project)),
        ("keptnContext", g.keptn_context.as_deref()),
        ("stage", g.stage.as_deref()),
        ("service", g.service.as_deref()),
        ("type", ty.as_deref()),
    ]);
    let mut all: Option<Value> = None;
    let mut key = String::new();
    for _ in 0..g.num_of_pages.max(1) {
        let mut path = format!("/api/mongodb-datastore/event?{filter}&pageSize={}", g.page_size);
        if !key.is_empty() {
            path.push_str(&format!("&nextPageKey={key}"));
        }
        let page = client.get(&path).await?;
        key = page["nextPageKey"].as_str().unwrap_or_default().to_string();
        match &mut all {
            None => all = Some(page),
            Some(acc) => {
                let more = page["events"].as_array().cloned().unwrap_or_default();
                acc["events"].as_array_mut().expect("events").extend(more);
                acc["nextPageKey"] = page["nextPageKey"].clone();
                acc["pageSize"] = json!(acc["events"].as_array().map_or(0, Vec::len));
            }
        }
        if key.is_empty() || key == "0" {
            break;
        }
    }
    let raw = all.unwrap_or(Value::Null);
    if raw["events"].as_array().is_none_or(Vec::is_empty) && matches!(g.output, Format::Table) {
        println!("No events found");
        return Ok(Exit::Ok);
    }
    print_events(g.output, &raw)?;
    Ok(Exit::Ok)
}

fn print_events(format: Format, raw: &Value) -> anyhow::Result<()> {
    let mut rows =
        vec![["TIME", "TYPE", "STAGE", "SERVICE", "SOURCE", "KEPTN CONTEXT", "ID"].map(String::from).to_vec()];
    for e in raw["events"].as_array().into_iter().flatten() {
        rows.push(vec![
            s(&e["time"]).into(),
            s(&e["type"]).into(),
            s(&e["data"]["stage"]).into(),
            s(&e["data"]["service"]).into(),
            s(&e["source"]).into(),
            s(&e["shkeptncontext"]).into(),
            s(&e["id"]).into(),
        ]);
    }
    output::print(format, raw, rows)
}

/// Reads one answer line from stdin; None when stdin is closed.
fn ask(prompt: &str, input: &mut impl BufRead) -> anyhow::Result<Option<String>> {
    eprint!("{prompt}");
    let mut line = String::new();
    if input.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim().to_string()))
}

const NO_ANSWER: &str = "no answer on standard input; in scripts use --id <event id> with --approve or --decline";

pub async fn approval_finished(a: ApprovalFinished) -> anyhow::Result<Exit> {
    let client = super::client::from_config()?;
    let path = format!(
        "/api/controlPlane/v1/event/triggered/sh.keptn.event.approval.triggered?{}",
        query(&[("project", Some(&a.project)), ("stage", Some(&a.stage)), ("service", a.service.as_deref())])
    );
    let open = client.get(&path).await?["events"].as_array().cloned().unwrap_or_default();
    let list_cmd = format!("keptn get event approval.triggered --project {} --stage {}", a.project, a.stage);
    let mut stdin = std::io::stdin().lock();
    let chosen = match &a.id {
        Some(id) => open.iter().find(|e| e["id"] == id.as_str()).cloned().with_context(|| {
            format!(
                "no open approval with id {id} in project {} stage {}; list them with `{list_cmd}`",
                a.project, a.stage
            )
        })?,
        None if open.is_empty() => {
            anyhow::bail!("no open approval in project {} stage {}; list them with `{list_cmd}`", a.project, a.stage)
        }
        None => {
            eprintln!("Open approvals:");
            for (i, e) in open.iter().enumerate() {
                let d = &e["data"];
                let image = d["configurationChange"]["values"]["image"].as_str().unwrap_or("");
                eprintln!(
                    "  ({}) {} {} {}  keptn context {}",
                    i + 1,
                    s(&d["service"]),
                    image,
                    s(&e["time"]),
                    s(&e["shkeptncontext"])
                );
            }
            if open.len() == 1 {
                open[0].clone()
            } else {
                let answer =
                    ask(&format!("Select the approval (1-{}): ", open.len()), &mut stdin)?.context(NO_ANSWER)?;
                let n: usize = answer
                    .parse()
                    .ok()
                    .filter(|n| (1..=open.len()).contains(n))
                    .with_context(|| format!("{answer:?} is not one of 1 to {}", open.len()))?;
                open[n - 1].clone()
            }
        }
    };
    let approve = if a.approve || a.decline {
        a.approve
    } else {
        let answer = ask("Do you want to (a)pprove or (d)ecline: ", &mut stdin)?.context(NO_ANSWER)?;
        match answer.to_lowercase().as_str() {
            "a" | "approve" => true,
            "d" | "decline" => false,
            other => anyhow::bail!("{other:?} is neither (a)pprove nor (d)ecline"),
        }
    };
    let d = &chosen["data"];
    let mut lbl = d["labels"].as_object().cloned().unwrap_or_default();
    lbl.extend(labels(&a.labels)?);
    let event = json!({
        "specversion": "1.0", "type": "sh.keptn.event.approval.finished", "source": "https://github.com/keptn/keptn/cli",
        "datacontenttype": "application/json", "shkeptncontext": chosen["shkeptncontext"], "triggeredid": chosen["id"],
        "data": { "project": d["project"], "stage": d["stage"], "service": d["service"], "labels": lbl,
                  "status": "succeeded", "result": if approve { "pass" } else { "fail" } },
    });
    client.post("/api/v1/event", &event).await?;
    println!(
        "{} {} in stage {} (keptn context {})",
        if approve { "Approved" } else { "Declined" },
        s(&d["service"]),
        s(&d["stage"]),
        s(&chosen["shkeptncontext"])
    );
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_values_are_escaped_and_empty_ones_dropped() {
        let q = super::query(&[("project", Some("a b")), ("stage", None), ("type", Some("sh.keptn.x"))]);
        assert_eq!(q, "project=a%20b&type=sh.keptn.x");
    }

    #[test]
    fn closed_stdin_is_no_answer() {
        let mut empty: &[u8] = b"";
        assert_eq!(super::ask("? ", &mut empty).unwrap(), None);
        let mut one: &[u8] = b" 2 \n";
        assert_eq!(super::ask("? ", &mut one).unwrap().as_deref(), Some("2"));
    }
}
