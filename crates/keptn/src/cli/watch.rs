//! `--watch`: follows a keptnContext through the server's live state stream and shows it. On a
//! terminal the task lines are redrawn in place with a spinner and colours; otherwise (CI logs,
//! pipes) each change is printed once as a new line. `-o json|yaml` prints every state frame.

use super::Client;
use super::output::Format;
use super::progress::{self, Outcome, TaskLine, TaskState};
use anstyle::{AnsiColor, Style};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// What `--watch` ended with, for the exit status.
pub enum Watched {
    Finished(Outcome),
    /// `--watch-time` passed while the sequence was still running.
    StillRunning,
}

const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// Follows `context` until its sequence ends, or for at most `limit`.
pub async fn follow(
    client: &Client,
    project: &str,
    context: &str,
    format: Format,
    limit: Option<Duration>,
) -> anyhow::Result<Watched> {
    let mut stream = client.stream(&format!("/api/controlPlane/v1/sequence/{project}/{context}/watch")).await?;
    let tty = std::io::stdout().is_terminal() && matches!(format, Format::Table);
    let mut view = View::new(tty);
    let deadline = limit.map(|d| tokio::time::Instant::now() + d);
    let mut last: Option<(Vec<TaskLine>, Outcome)> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        let sleep_until = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let frame = tokio::select! {
            f = stream.next() => f?,
            _ = sleep_until => return Ok(Watched::StillRunning),
            // The spinner moves only on a terminal; elsewhere nothing is redrawn.
            _ = tick.tick(), if tty => {
                if let Some((lines, outcome)) = &last {
                    view.frame += 1;
                    view.redraw(lines, outcome);
                }
                continue;
            }
        };
        let Some((name, data)) = frame else {
            anyhow::bail!(
                "the keptn server closed the live view; follow the sequence with `keptn get sequence {context} --project {project}`"
            );
        };
        if name == "error" {
            anyhow::bail!("{} (HTTP {})", data["message"].as_str().unwrap_or("error"), data["code"]);
        }
        let executions = data["sequenceExecutions"].as_array().cloned().unwrap_or_default();
        let lines = progress::lines(&executions);
        let outcome = progress::outcome(&data["state"], &executions);
        match format {
            Format::Json => println!("{}", serde_json::to_string(&data)?),
            Format::Yaml => print!("---\n{}", yaml_serde::to_string(&data)?),
            Format::Table if tty => view.redraw(&lines, &outcome),
            Format::Table => view.append(&lines),
        }
        std::io::stdout().flush()?;
        if outcome.done {
            if matches!(format, Format::Table) {
                println!("{}", view.paint(&outcome.summary, outcome_style(&outcome)));
            }
            return Ok(Watched::Finished(outcome));
        }
        last = Some((lines, outcome));
    }
}

fn outcome_style(o: &Outcome) -> Style {
    let color = if o.failed { AnsiColor::Red } else { AnsiColor::Green };
    Style::new().fg_color(Some(color.into())).bold()
}

struct View {
    color: bool,
    /// Non-terminal output: the last printed state of each (stage, sequence, task).
    printed: HashMap<(String, String, String), String>,
    /// Terminal output: lines of the block drawn last, to move the cursor back over.
    drawn_lines: usize,
    frame: usize,
}

impl View {
    /// Colours only on a terminal, and not with `NO_COLOR` set.
    fn new(terminal: bool) -> View {
        let color = terminal && std::env::var_os("NO_COLOR").is_none();
        View { color, printed: HashMap::new(), drawn_lines: 0, frame: 0 }
    }

    /// A heading per stage, then its tasks' lines.
    fn block(&self, lines: &[TaskLine], spin: &str) -> String {
        let mut out = String::new();
        let mut stage = "";
        for l in lines {
            if l.stage != stage {
                stage = &l.stage;
                let heading = self.paint(&format!("{} · {}", l.stage, l.sequence), Style::new().bold());
                out.push_str(&format!("{heading}\n"));
            }
            out.push_str(&format!("  {:<16} {}\n", l.task, self.describe(&l.state, spin)));
        }
        out
    }

    fn paint(&self, text: &str, style: Style) -> String {
        if self.color { format!("{style}{text}{style:#}") } else { text.to_string() }
    }

    /// Appends a line for every task whose state changed since the last frame.
    fn append(&mut self, lines: &[TaskLine]) {
        for l in lines {
            if l.state == TaskState::Pending {
                continue;
            }
            let text = self.describe(&l.state, "");
            let key = (l.stage.clone(), l.sequence.clone(), l.task.clone());
            if self.printed.get(&key) != Some(&text) {
                println!("{:<14} {:<14} {}", l.stage, l.task, text);
                self.printed.insert(key, text);
            }
        }
    }

    /// Redraws the whole block in place (terminal only).
    fn redraw(&mut self, lines: &[TaskLine], outcome: &Outcome) {
        let mut out = String::new();
        if self.drawn_lines > 0 {
            out.push_str(&format!("\x1b[{}A\x1b[J", self.drawn_lines));
        }
        out.push_str(&self.block(lines, SPINNER[self.frame % SPINNER.len()]));
        out.push_str(&format!("{}\n", self.paint(&outcome.summary, Style::new().dimmed())));
        self.drawn_lines = out.matches('\n').count();
        print!("{out}");
        let _ = std::io::stdout().flush();
    }

    fn describe(&self, state: &TaskState, spin: &str) -> String {
        let fg = |c: AnsiColor| Style::new().fg_color(Some(c.into()));
        match state {
            TaskState::Pending => self.paint("pending", Style::new().dimmed()),
            TaskState::Skipped => self.paint("skipped", Style::new().dimmed()),
            TaskState::Running { paused: true, .. } => self.paint("paused", fg(AnsiColor::Yellow)),
            TaskState::Running { approval: true, .. } => {
                self.paint(format!("{spin} waiting for approval").trim_start(), fg(AnsiColor::Yellow))
            }
            TaskState::Running { by, unsubscribed: Some(ty), .. } if by.is_empty() => {
                self.paint(&format!("waiting: no integration subscribed to {ty}"), fg(AnsiColor::Yellow))
            }
            TaskState::Running { by, .. } if by.is_empty() => {
                self.paint(format!("{spin} triggered").trim_start(), fg(AnsiColor::Cyan))
            }
            TaskState::Running { by, .. } => {
                self.paint(format!("{spin} started by {}", by.join(", ")).trim_start(), fg(AnsiColor::Cyan))
            }
            TaskState::Done { result, status } => {
                let (word, color) = match (result.as_str(), status.as_str()) {
                    (_, "errored") => ("errored".to_string(), AnsiColor::Red),
                    (_, "aborted") => ("aborted".to_string(), AnsiColor::Red),
                    ("fail", _) => ("fail".to_string(), AnsiColor::Red),
                    ("warning", _) => ("warning".to_string(), AnsiColor::Yellow),
                    (r, _) => (r.to_string(), AnsiColor::Green),
                };
                self.paint(&word, fg(color))
            }
        }
    }
}

/// Prints the task lines of a finished or running context once (`keptn get sequence`).
pub fn print_static(executions: &[Value], state: &Value) {
    let view = View::new(std::io::stdout().is_terminal());
    let outcome = progress::outcome(state, executions);
    print!("{}", view.block(&progress::lines(executions), ""));
    let style = if outcome.done { outcome_style(&outcome) } else { Style::new().dimmed() };
    println!("{}", view.paint(&outcome.summary, style));
}
