//! `keptn server`: flags (each also as `KEPTN_…` env), logging, token, signals.

use anyhow::Context as _;
use clap::Args;
use keptn_server::{ServerConfig, load_or_create_token};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Where the server keeps its database and API token.
    #[arg(long, env = "KEPTN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "KEPTN_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// A task nobody answers (.started or .finished) within this time ends its sequence.
    #[arg(long, env = "KEPTN_TASK_START_TIMEOUT", default_value = "10m", value_parser = parse_duration)]
    task_start_timeout: Duration,
    /// Database: default SQLite in the data dir; `postgres://user@host/db` for PostgreSQL.
    #[arg(long, env = "KEPTN_DATABASE_URL")]
    database_url: Option<String>,
    /// NATS server (nats://host:port): committed events are published to JetStream (docs/nats.md).
    #[arg(long, env = "KEPTN_NATS_URL")]
    nats_url: Option<String>,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "KEPTN_MAX_BODY_SIZE", default_value_t = 5 * 1024 * 1024)]
    max_body_size: usize,
    /// Integrations that have not pinged for this long are removed.
    #[arg(long, env = "KEPTN_INTEGRATION_TTL", default_value = "48h", value_parser = parse_duration)]
    integration_ttl: Duration,
    /// A project's upstream is fetched again when what we have is older than this (reads never
    /// wait for it: the fetch runs in the background; writes fetch when their push is rejected).
    #[arg(long, env = "KEPTN_UPSTREAM_FRESHNESS", default_value = "5s", value_parser = parse_duration)]
    upstream_freshness: Duration,
    /// Quality gates: an evaluation whose SLI provider does not answer within this time fails.
    #[arg(long, env = "KEPTN_SLI_TIMEOUT", default_value = "10m", value_parser = parse_duration)]
    sli_timeout: Duration,
    /// The Prometheus the built-in SLI provider queries for projects without prometheus/config.yaml.
    #[arg(long, env = "KEPTN_PROMETHEUS_URL")]
    prometheus_url: Option<String>,
    /// Targets of user-supplied URLs (SLI providers, Prometheus, pushURL, git upstreams) that
    /// the server may connect to although they are internal: `loopback`, `private` (RFC 1918,
    /// 100.64/10, fc00::/7), or an address or CIDR. By default loopback, link-local, cloud
    /// metadata and private addresses are refused. Comma-separated in the env variable.
    #[arg(long, env = "KEPTN_ALLOW_OUTBOUND", value_delimiter = ',', num_args = 1.., value_name = "loopback|private|CIDR")]
    allow_outbound: Vec<String>,
    /// The built-in integrations to run, comma-separated: approval, lighthouse, prometheus,
    /// http-sli, webhook, job-executor; `none` runs none (external services then answer those
    /// tasks). job-executor runs the commands of a project's job/config.yaml on this host: leave
    /// it out where those who may write the configuration repository must not run commands here.
    #[arg(
        long,
        env = "KEPTN_INTEGRATIONS",
        default_value = "approval,lighthouse,prometheus,http-sli,webhook,job-executor"
    )]
    integrations: String,
    #[command(flatten)]
    job: JobFlags,
    /// Open HTTP connections at most; more are answered 503 at once.
    #[arg(long, env = "KEPTN_MAX_CONNECTIONS", default_value_t = 1024)]
    max_connections: usize,
    /// A connection must send a complete request head within this time (from its start or its
    /// previous response); slower or silent connections are closed.
    #[arg(long, env = "KEPTN_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    header_read_timeout: Duration,
    /// A connection that moves no data for this long (a stalled body, a response nobody reads)
    /// is closed; requests the server is still working on do not count.
    #[arg(long, env = "KEPTN_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// Log format: text or json.
    #[arg(long, env = "KEPTN_LOG_FORMAT", default_value = "text")]
    log_format: String,
}

/// The job runner's flags (`keptn server`, `keptn integration run`): docs/jobs.md.
#[derive(Args, Debug, Clone)]
pub struct JobFlags {
    /// Images the job runner's tasks may name, as globs (`*` any characters; `alpine` also
    /// allows `alpine:3.20`); a task naming another fails before any task of its action runs.
    /// Default: every image (locally the image only selects a --job-image command).
    #[arg(long = "job-allowed-images", env = "KEPTN_JOB_ALLOWED_IMAGES", value_delimiter = ',', value_name = "GLOB")]
    job_allowed_images: Vec<String>,
    /// The local command that stands in for an image's entrypoint, for tasks without `cmd`:
    /// IMAGE=COMMAND (IMAGE a glob, COMMAND split at spaces), e.g. `alpine=/bin/sh`; repeatable,
    /// the first match counts (`;`-separated in the env variable).
    #[arg(long = "job-image", env = "KEPTN_JOB_IMAGES", value_delimiter = ';', value_name = "IMAGE=COMMAND",
          value_parser = keptn_integrations::job::local::parse_image_command)]
    job_image: Vec<(String, Vec<String>)>,
    /// Where the jobs' work directories are created (default: the system's temporary directory).
    #[arg(long = "job-work-dir", env = "KEPTN_JOB_WORK_DIR", value_name = "DIR")]
    job_work_dir: Option<PathBuf>,
}

impl JobFlags {
    pub(crate) fn settings(&self) -> keptn_integrations::job::JobSettings {
        keptn_integrations::job::JobSettings {
            allowed_images: self
                .job_allowed_images
                .iter()
                .map(|g| g.trim().to_string())
                .filter(|g| !g.is_empty())
                .collect(),
            local: keptn_integrations::job::LocalSettings {
                images: self.job_image.clone(),
                work_root: self.job_work_dir.clone(),
                ..Default::default()
            },
        }
    }
}

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    keptn_formats::duration::parse(s)
}

fn default_data_dir() -> PathBuf {
    dirs::data_dir().unwrap_or_else(std::env::temp_dir).join("keptn")
}

pub(crate) fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEPTN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal: log files and journald get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

/// `KEPTN_SECRET_KEY`: 32 bytes, base64; keeps the key that encrypts upstream credentials out of
/// the data dir (by default it is a file there).
fn secret_key_from_env() -> anyhow::Result<Option<[u8; 32]>> {
    use base64::Engine as _;
    let Some(b64) = std::env::var("KEPTN_SECRET_KEY").ok().filter(|k| !k.is_empty()) else { return Ok(None) };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .context("KEPTN_SECRET_KEY must be base64 (e.g. `openssl rand -base64 32`)")?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("KEPTN_SECRET_KEY must decode to exactly 32 bytes (`openssl rand -base64 32`)"))?;
    Ok(Some(key))
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    init_logging(&args.log_format);
    // Flags first: a bad value must not leave a data dir or token behind.
    let outbound = keptn_server::OutboundPolicy::allowing(&args.allow_outbound).map_err(anyhow::Error::msg)?;
    let integrations = keptn_server::select_integrations(&args.integrations).map_err(anyhow::Error::msg)?;
    let started = std::time::Instant::now();
    let data_dir = args.data_dir.unwrap_or_else(default_data_dir);
    // Before anything is created: a taken port must leave no data dir or token behind.
    let listener = keptn_server::bind(&args.listen).await.context("keptn server failed to start")?;
    let api_token = match std::env::var("KEPTN_API_TOKEN").ok().filter(|t| !t.is_empty()) {
        Some(t) => t,
        None => {
            let (token, fresh) = load_or_create_token(&data_dir)?;
            if fresh {
                println!("Generated API token (stored in {}): {token}", data_dir.join("api-token").display());
            }
            token
        }
    };
    let config = ServerConfig {
        data_dir: data_dir.clone(),
        listen: args.listen,
        task_start_timeout: args.task_start_timeout,
        database_url: args.database_url,
        api_token,
        max_body_bytes: args.max_body_size,
        integration_ttl: args.integration_ttl,
        secret_key: secret_key_from_env()?,
        upstream_freshness: args.upstream_freshness,
        quality_gates: keptn_server::QualityGates {
            sli_timeout: args.sli_timeout,
            prometheus_url: args.prometheus_url,
        },
        outbound,
        http: keptn_server::HttpLimits {
            max_connections: args.max_connections,
            header_read_timeout: args.header_read_timeout,
            idle_timeout: args.idle_timeout,
        },
        nats_url: args.nats_url,
        integrations,
        extra_integrations: Default::default(),
        execution: keptn_integrations::Execution { job: args.job.settings() },
    };
    let server =
        keptn_server::start_on(listener, config, shutdown_signal()).await.context("keptn server failed to start")?;
    tracing::info!(
        addr = %server.addr,
        data_dir = %data_dir.display(),
        startup_ms = started.elapsed().as_millis() as u64,
        "keptn server listening"
    );
    println!("keptn server listening on http://{}", server.addr);
    server.wait().await;
    Ok(())
}
