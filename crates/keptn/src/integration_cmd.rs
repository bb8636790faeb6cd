//! `keptn integration run NAME…`: runs built-in integrations in this process against a remote
//! control plane, as keptn 1.x's remote execution plane ran its services: each registers (with
//! its `location`), sends heartbeats and handles the `.triggered` events of its subscriptions.
//! Events arrive on the control plane's event stream, which shares them between the replicas of
//! one integration (each event goes to one replica); against a control plane without the stream
//! (keptn 1.x) it polls `GET /api/controlPlane/v1/event/triggered/{type}` instead. With
//! `--nats-url` the events come from NATS JetStream instead (a durable consumer per
//! integration, shared by its replicas; docs/nats.md), everything else stays HTTP.

use crate::cli::config;
use anyhow::Context as _;
use clap::{Args, Subcommand};
use keptn_client::{Client, JetStreamFeed, StreamFeed};
use keptn_integration::runner::{self, Feed, Runner, Tick};
use keptn_integration::{ControlPlane, Integration};
use std::sync::Arc;
use std::time::Duration;

#[derive(Subcommand, Debug)]
pub enum IntegrationCommand {
    /// Run built-in integrations against a control plane (in another process or cluster).
    Run(Box<RunArgs>),
    /// List the built-in integrations.
    List,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The integrations to run: approval, lighthouse, prometheus, http-sli, job-executor.
    #[arg(required = true, value_name = "NAME")]
    names: Vec<String>,
    /// The control plane's API (default: `keptn auth`'s endpoint, or KEPTN_ENDPOINT).
    #[arg(long)]
    endpoint: Option<String>,
    /// Its API token (default: `keptn auth`'s token, or KEPTN_API_TOKEN).
    #[arg(long)]
    api_token: Option<String>,
    /// Host name in the registration: replicas on one host share one registration (keptn's rule).
    #[arg(long, env = "KEPTN_INTEGRATION_HOSTNAME")]
    hostname: Option<String>,
    /// Namespace in the registration (keptn: the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "keptn")]
    namespace: String,
    /// Where the integration runs, as shown with its registration.
    #[arg(long, env = "LOCATION", default_value = "remote-execution-plane")]
    location: String,
    /// Names this process among the replicas of a registration (default: host name and pid).
    #[arg(long)]
    replica: Option<String>,
    /// Poll for open events every this often instead of using the event stream (keptn 1.x's
    /// behaviour; chosen automatically against a control plane without the stream).
    #[arg(long, value_parser = crate::server_cmd::parse_duration, conflicts_with = "nats_url")]
    poll: Option<Duration>,
    /// Take the events from NATS JetStream (the control plane runs with the same --nats-url):
    /// a durable consumer `keptn-<integration>` per integration, shared by its replicas (each
    /// event goes to one of them). Sending events, the datastore, resources and registration
    /// stay on the control plane's API.
    #[arg(long, env = "KEPTN_NATS_URL", value_name = "nats://HOST:PORT")]
    nats_url: Option<String>,
    /// Quality gates: an evaluation whose SLI provider does not answer within this time fails.
    #[arg(long, env = "KEPTN_SLI_TIMEOUT", default_value = "10m", value_parser = crate::server_cmd::parse_duration)]
    sli_timeout: Duration,
    /// The Prometheus the SLI provider queries for projects without prometheus/config.yaml.
    #[arg(long, env = "KEPTN_PROMETHEUS_URL")]
    prometheus_url: Option<String>,
    /// Internal targets the SLI providers may connect to: `loopback`, `private`, or a CIDR
    /// (as `keptn server --allow-outbound`).
    #[arg(long, env = "KEPTN_ALLOW_OUTBOUND", value_delimiter = ',', num_args = 1.., value_name = "loopback|private|CIDR")]
    allow_outbound: Vec<String>,
    #[command(flatten)]
    job: crate::server_cmd::JobFlags,
    /// Log format: text or json.
    #[arg(long, env = "KEPTN_LOG_FORMAT", default_value = "text")]
    log_format: String,
    /// The secrets the integrations may read (keptn's API never returns a secret's value): a
    /// YAML or JSON list of `{name, scope, data: {key: value}}`, readable by its owner only
    /// (chmod 600). Each integration reads the scopes `keptn-default` and `keptn-<name>-service`.
    #[arg(long, env = "KEPTN_SECRETS_FILE", value_name = "PATH")]
    secrets_file: Option<std::path::PathBuf>,
}

pub async fn run(cmd: IntegrationCommand) -> anyhow::Result<()> {
    match cmd {
        IntegrationCommand::List => {
            for (key, what) in keptn_integrations::REGISTRY {
                println!("{key:<12} {what}");
            }
            Ok(())
        }
        IntegrationCommand::Run(args) => run_integrations(*args).await,
    }
}

/// Endpoint and token: flags, else the environment and `keptn auth`'s stored ones.
fn client(args: &RunArgs) -> anyhow::Result<Client> {
    let (endpoint, token) = match (&args.endpoint, &args.api_token) {
        (Some(e), Some(t)) => (e.clone(), t.clone()),
        (e, t) => {
            let stored = config::load()?;
            (e.clone().unwrap_or(stored.endpoint), t.clone().unwrap_or(stored.api_token))
        }
    };
    Ok(Client::new(config::normalize_endpoint(&endpoint), token))
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string()))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

async fn run_integrations(args: RunArgs) -> anyhow::Result<()> {
    crate::server_cmd::init_logging(&args.log_format);
    let keys = keptn_integrations::select(&args.names.join(",")).map_err(anyhow::Error::msg)?;
    if keys.is_empty() {
        anyhow::bail!(
            "no integration to run: name at least one of approval, lighthouse, prometheus, http-sli, job-executor"
        );
    }
    let policy = keptn_outbound::OutboundPolicy::allowing(&args.allow_outbound).map_err(anyhow::Error::msg)?;
    let settings = keptn_integrations::Settings {
        sli_timeout: args.sli_timeout,
        prometheus_url: args.prometheus_url.clone(),
        outbound: keptn_outbound::http::Outbound::new(policy, Duration::from_secs(30))?,
        execution: keptn_integrations::Execution { job: args.job.settings() },
    };
    let client = client(&args)?;
    let secrets = match &args.secrets_file {
        Some(path) => Arc::new(keptn_client::LocalSecrets::load(path).map_err(anyhow::Error::msg)?),
        None => Arc::default(),
    };
    let hostname = args.hostname.clone().unwrap_or_else(host_name);
    let replica = args.replica.clone().unwrap_or_else(|| format!("{hostname}-{}", std::process::id()));
    let mut runners = tokio::task::JoinSet::new();
    for key in &keys {
        let integration = keptn_integrations::build(key, &settings).context("a selected integration is built")?;
        // Each integration's own context: it reads the secrets of its key's scopes.
        let plane: Arc<dyn ControlPlane> = Arc::new(client.clone().with_local_secrets(key, secrets.clone()));
        let registration = runner::registration(
            integration.name(),
            integration.version(),
            &hostname,
            &args.location,
            &args.namespace,
            integration.subscriptions(),
        );
        let feed: Box<dyn Feed> = match &args.nats_url {
            // Before the runner registers, so that what is committed once the registration shows
            // reaches the consumer; earlier events come from the runner's open-events read.
            Some(url) => Box::new(JetStreamFeed::connect(url, integration.name(), integration.subscriptions()).await?),
            None => feed(&client, &plane, &*integration, registration.clone(), &replica, args.poll).await?,
        };
        let runner = Runner::new(integration, plane.clone(), registration);
        runners.spawn(runner.run(feed));
    }
    let via = args.nats_url.as_deref().map(|url| format!(", events from NATS at {url}")).unwrap_or_default();
    println!("running {} against {} as replica {replica}{via}", keys.join(", "), client.endpoint());
    let stop = crate::server_cmd::shutdown_signal();
    tokio::select! {
        _ = stop => {}
        _ = runners.join_next() => anyhow::bail!("an integration's event feed ended: the control plane refused the API token (check --api-token) or NATS closed the consumer; start it again"),
    }
    Ok(())
}

/// The stream of the integration's registration, or polling when asked for or when the control
/// plane has no stream. Registers first: the stream is per registration.
async fn feed(
    client: &Client,
    plane: &Arc<dyn ControlPlane>,
    integration: &dyn Integration,
    registration: keptn_integration::Registration,
    replica: &str,
    poll: Option<Duration>,
) -> anyhow::Result<Box<dyn Feed>> {
    if let Some(every) = poll {
        return Ok(Box::new(Tick::new(every)));
    }
    let name = integration.name();
    let id = plane.register(registration).await.with_context(|| format!("could not register {name}"))?;
    match StreamFeed::connect(client.clone(), &id, replica).await {
        Ok(feed) => Ok(Box::new(feed)),
        Err(e) if e.is_unsupported() => {
            tracing::warn!(integration = name, "{e}");
            Ok(Box::new(Tick::new(Duration::from_secs(10))))
        }
        Err(e) => Err(anyhow::anyhow!("could not open the event stream of {name}: {e}")),
    }
}
