//! keptn's CLI: an HTTP client of the API (it never touches a server's data dir). Every command
//! prints one line that says what went wrong and how to fix it, and exits non-zero on failure:
//! 1 the command failed, 2 bad usage (also a keptn command keptn-rs does not have, with what to
//! use instead: see `retired`), 3 the sequence it followed failed, 4 `--watch-time` passed.

mod client;
pub(crate) mod config;
mod evaluations;
mod event_data;
mod events;
pub mod output;
mod progress;
mod project;
mod resource;
pub mod retired;
mod secret;
mod sequence;
mod trigger;
mod watch;
mod webhook;

use clap::{Args, Subcommand};
pub use client::Client;

/// How a command that ran ended, for the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// The sequence followed with `--watch` failed, errored, was aborted or timed out.
    SequenceFailed = 3,
    /// `--watch-time` passed while the sequence was still running.
    StillRunning = 4,
}

/// Commands that talk to a keptn server.
#[derive(Subcommand, Debug)]
pub enum CliCommand {
    /// Check an endpoint and token and store them for later commands.
    Auth(AuthArgs),
    /// Show the endpoint in use and whether the token is accepted.
    Status,
    /// Print the CLI's and the server's versions.
    Version,
    /// Create a project, a service, a secret or a webhook.
    #[command(subcommand)]
    Create(Box<CreateCommand>),
    /// Move a project to a (new) git upstream, or change a secret.
    #[command(subcommand)]
    Update(UpdateCommand),
    /// Delete a project, a service or a secret.
    #[command(subcommand)]
    Delete(DeleteCommand),
    /// Add a file to a project's configuration (project, stage or service level).
    #[command(name = "add-resource")]
    AddResource(resource::AddResource),
    /// Start a delivery, any sequence, or an evaluation.
    #[command(subcommand)]
    Trigger(TriggerCommand),
    /// Send an event: a CloudEvent from a file, or the answer to an approval.
    #[command(subcommand)]
    Send(SendCommand),
    /// Show projects, stages, services, events or sequences.
    #[command(subcommand)]
    Get(GetCommand),
    /// Pause a running sequence.
    #[command(subcommand)]
    Pause(ControlTarget),
    /// Resume a paused sequence.
    #[command(subcommand)]
    Resume(ControlTarget),
    /// Abort a sequence.
    #[command(subcommand)]
    Abort(ControlTarget),
    /// Select the monitoring (SLI) provider of a project.
    #[command(subcommand)]
    Configure(ConfigureCommand),
    /// Print a shell completion script: `source <(keptn completion bash)`.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Args, Debug)]
pub struct AuthArgs {
    /// The server, as `http://host:8080` or keptn's `http://host:8080/api`.
    #[arg(short = 'e', long, env = "KEPTN_ENDPOINT")]
    endpoint: String,
    /// The API token (printed by `keptn server` on its first start).
    #[arg(short = 'a', long = "api-token", env = "KEPTN_API_TOKEN")]
    api_token: String,
}

#[derive(Subcommand, Debug)]
pub enum CreateCommand {
    #[command(flatten)]
    Catalog(project::CreateCommand),
    /// Create a secret (its values are never shown again): `--from-literal key=value`…
    Secret(secret::WriteSecret),
}

#[derive(Subcommand, Debug)]
pub enum UpdateCommand {
    /// Move a project to a git upstream (the whole history is pushed there).
    Project(project::UpdateProject),
    /// Replace a secret's keys and values.
    Secret(secret::WriteSecret),
}

#[derive(Subcommand, Debug)]
pub enum DeleteCommand {
    #[command(flatten)]
    Catalog(project::DeleteCommand),
    /// Delete a secret.
    Secret(secret::DeleteSecret),
}

#[derive(Subcommand, Debug)]
pub enum TriggerCommand {
    /// Deliver an image: starts the delivery sequence (or --sequence) in the first stage (or --stage).
    Delivery(trigger::TriggerDelivery),
    /// Start any sequence of the shipyard.
    Sequence(trigger::TriggerSequence),
    /// Evaluate a service's SLOs over a timeframe.
    Evaluation(trigger::TriggerEvaluation),
}

#[derive(Subcommand, Debug)]
pub enum SendCommand {
    /// `-f event.json`, or `approval.finished` to approve or decline an open approval.
    Event(SendEvent),
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SendEvent {
    #[command(subcommand)]
    kind: Option<SendEventKind>,
    #[command(flatten)]
    file: Option<trigger::SendEventFile>,
}

#[derive(Subcommand, Debug)]
pub enum SendEventKind {
    /// Approve or decline an open approval (asks which and how; --id and --approve/--decline for scripts).
    #[command(name = "approval.finished")]
    ApprovalFinished(events::ApprovalFinished),
    /// Deprecated in keptn: same as `keptn trigger evaluation`.
    #[command(name = "start-evaluation", hide = true)]
    StartEvaluation(trigger::TriggerEvaluation),
}

#[derive(Subcommand, Debug)]
pub enum GetCommand {
    #[command(flatten)]
    Catalog(project::GetCommand),
    /// Events of a project (newest first); `approval.triggered` lists open approvals.
    #[command(alias = "events")]
    Event(events::GetEvent),
    /// Sequences of a project, or the stages and tasks of one keptn context.
    #[command(alias = "sequences")]
    Sequence(sequence::GetSequence),
    /// A service's quality-gate evaluations, newest first.
    #[command(alias = "evaluations")]
    Evaluation(evaluations::GetEvaluations),
    /// Secrets: name, scope and keys (never values).
    #[command(alias = "secrets")]
    Secret(secret::GetSecret),
}

#[derive(Subcommand, Debug)]
pub enum ControlTarget {
    /// A sequence, by keptn context (all its stages, or --stage).
    Sequence(sequence::ControlSequence),
}

#[derive(Subcommand, Debug)]
pub enum ConfigureCommand {
    /// Tell the SLI provider integration (e.g. prometheus) to configure a service.
    Monitoring(trigger::ConfigureMonitoring),
}

pub async fn run(cmd: CliCommand) -> anyhow::Result<Exit> {
    let ok = |r: anyhow::Result<()>| r.map(|_| Exit::Ok);
    match cmd {
        CliCommand::Auth(a) => {
            let creds = config::Credentials::new(&a.endpoint, &a.api_token);
            client::from_credentials(&creds).post("/api/v1/auth", &serde_json::json!({})).await?;
            let path = config::save(&creds)?;
            println!("Successfully authenticated against {}", creds.endpoint);
            println!("Credentials stored in {}", path.display());
            Ok(Exit::Ok)
        }
        CliCommand::Status => {
            let client = client::from_config()?;
            client.post("/api/v1/auth", &serde_json::json!({})).await?;
            println!("Successfully authenticated against {}", client.endpoint());
            Ok(Exit::Ok)
        }
        CliCommand::Version => {
            println!("CLI version: {}", env!("CARGO_PKG_VERSION"));
            match client::from_config() {
                Ok(client) => {
                    let meta = client.get("/api/v1/metadata").await?;
                    println!("Server version: {}", meta["keptnversion"].as_str().unwrap_or("unknown"));
                }
                Err(_) => println!("Server version: unknown (not authenticated; run `keptn auth`)"),
            }
            Ok(Exit::Ok)
        }
        CliCommand::Create(c) => match *c {
            CreateCommand::Catalog(c) => ok(project::create(c).await),
            CreateCommand::Secret(s) => ok(secret::create(s).await),
        },
        CliCommand::Update(UpdateCommand::Project(p)) => ok(project::update(p).await),
        CliCommand::Update(UpdateCommand::Secret(s)) => ok(secret::update(s).await),
        CliCommand::Delete(DeleteCommand::Catalog(d)) => ok(project::delete(d).await),
        CliCommand::Delete(DeleteCommand::Secret(s)) => ok(secret::delete(s).await),
        CliCommand::AddResource(a) => resource::add(a).await,
        CliCommand::Trigger(TriggerCommand::Delivery(t)) => trigger::delivery(t).await,
        CliCommand::Trigger(TriggerCommand::Sequence(t)) => trigger::sequence(t).await,
        CliCommand::Trigger(TriggerCommand::Evaluation(t)) => trigger::evaluation(t).await,
        CliCommand::Send(SendCommand::Event(e)) => match (e.kind, e.file) {
            (Some(SendEventKind::ApprovalFinished(a)), _) => events::approval_finished(a).await,
            (Some(SendEventKind::StartEvaluation(t)), _) => trigger::evaluation(t).await,
            (None, Some(f)) => trigger::send_file(f).await,
            (None, None) => anyhow::bail!(
                "nothing to send: give a CloudEvent file with `keptn send event -f event.json`, or answer an approval with `keptn send event approval.finished --project <p> --stage <s>`"
            ),
        },
        CliCommand::Get(GetCommand::Catalog(g)) => ok(project::get(g).await),
        CliCommand::Get(GetCommand::Event(g)) => events::get(g).await,
        CliCommand::Get(GetCommand::Sequence(g)) => sequence::get(g).await,
        CliCommand::Get(GetCommand::Evaluation(g)) => evaluations::get(g).await,
        CliCommand::Get(GetCommand::Secret(g)) => ok(secret::get(g).await),
        CliCommand::Pause(ControlTarget::Sequence(c)) => sequence::control(c, "pause").await,
        CliCommand::Resume(ControlTarget::Sequence(c)) => sequence::control(c, "resume").await,
        CliCommand::Abort(ControlTarget::Sequence(c)) => sequence::control(c, "abort").await,
        CliCommand::Configure(ConfigureCommand::Monitoring(c)) => trigger::configure_monitoring(c).await,
        CliCommand::Completion { .. } => unreachable!("completion is printed by main, which owns the command tree"),
    }
}
