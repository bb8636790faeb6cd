//! keptn's control plane in one process: HTTP API, engine writer (which owns the engine's time)
//! and dispatcher.

mod api;
mod body;
mod bus;
mod catalog;
mod clock;
mod config_sync;
mod dispatch;
mod error;
mod events_out;
mod host;
mod ingest;
mod inprocess;
mod metrics;
mod registrations;
mod repo;
mod secrets;
use keptn_outbound::http as outbound;
mod serve;
mod state;
mod stream;
mod token;
mod uniform;
mod views;
mod writer;

use anyhow::Context as _;
use catalog::{Catalog, ProjectEntry};
use keptn_formats::Shipyard;
use keptn_store::Store;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot};

pub use error::ApiError;
pub use keptn_integrations::{
    REGISTRY as BUILTIN_INTEGRATIONS, all_keys as all_integrations, select as select_integrations,
};
pub use keptn_outbound::OutboundPolicy;
pub use serve::HttpLimits;
pub use token::load_or_create_token;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub listen: String,
    pub task_start_timeout: Duration,
    /// `sqlite://…` or `postgres://…`; None = SQLite in the data dir.
    pub database_url: Option<String>,
    pub api_token: String,
    pub max_body_bytes: usize,
    pub integration_ttl: Duration,
    /// Encrypts upstream credentials at rest; None = a key file in the data dir
    /// (`config/.secret-key`, created on first use).
    pub secret_key: Option<[u8; 32]>,
    /// How long what was fetched from a project's upstream counts as current.
    pub upstream_freshness: Duration,
    /// Quality gates: how long the lighthouse waits for SLI providers, and the Prometheus of
    /// projects without `prometheus/config.yaml`.
    pub quality_gates: QualityGates,
    /// Which addresses user-supplied URLs (SLI providers, Prometheus, pushURL, git upstreams)
    /// may connect to; the default denies loopback, link-local, metadata and private ones.
    pub outbound: OutboundPolicy,
    /// Connection limit and timeouts of the HTTP layer.
    pub http: HttpLimits,
    /// NATS JetStream: committed events are published there (`docs/nats.md`).
    pub nats_url: Option<String>,
    /// The built-in integrations to run (keys of [`BUILTIN_INTEGRATIONS`]; see
    /// [`select_integrations`]).
    pub integrations: Vec<String>,
    /// Integrations the embedding program runs in-process besides the built-ins, on the
    /// in-process contract (`inprocess`): registered like built-ins, fed by the bus.
    pub extra_integrations: InProcessIntegrations,
    /// Settings of the execution-plane built-ins (webhooks, jobs).
    pub execution: keptn_integrations::Execution,
}

/// Integrations for [`ServerConfig::extra_integrations`]; shown by name.
#[derive(Clone, Default)]
pub struct InProcessIntegrations(pub Vec<Arc<dyn keptn_integration::Integration>>);

impl std::fmt::Debug for InProcessIntegrations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|i| i.name())).finish()
    }
}

#[derive(Debug, Clone)]
pub struct QualityGates {
    pub sli_timeout: Duration,
    pub prometheus_url: Option<String>,
}

impl Default for QualityGates {
    fn default() -> Self {
        QualityGates { sli_timeout: Duration::from_secs(600), prometheus_url: None }
    }
}

impl ServerConfig {
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", self.data_dir.join("keptn.db").display()))
    }
}

/// A started server: its address, and a way to stop it gracefully.
pub struct RunningServer {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
    state: std::sync::Weak<state::AppState>,
}

impl RunningServer {
    /// Stops accepting requests, finishes in-flight ones and waits for the writer to drain.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = self.done.await;
    }

    /// The server as the in-process context and control plane of an integration (what the
    /// integrations it runs itself use). Holds the server only weakly: once it stopped, every
    /// call fails as unavailable.
    pub fn control_plane(&self) -> Arc<dyn keptn_integration::ControlPlane> {
        Arc::new(inprocess::InProcess::from_weak(self.state.clone()))
    }

    /// Waits until the server stops (after `stop` or a shutdown signal passed to `start`).
    pub async fn wait(self) {
        let _ = self.done.await;
    }
}

pub async fn start(config: ServerConfig) -> anyhow::Result<RunningServer> {
    start_with_signal(config, std::future::pending()).await
}

/// Starts the server; it shuts down gracefully when `signal` completes or `stop` is called.
pub async fn start_with_signal(
    config: ServerConfig,
    signal: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<RunningServer> {
    let listener = bind(&config.listen).await?;
    start_on(listener, config, signal).await
}

/// Binds the API's address. First thing at start, so that a taken port fails before anything
/// (data dir, database, repositories, token) is created.
pub async fn bind(listen: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (choose another address with --listen or KEPTN_LISTEN)"))
}

/// Starts the server on a bound listener (see `bind`).
pub async fn start_on(
    listener: tokio::net::TcpListener,
    config: ServerConfig,
    signal: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<RunningServer> {
    host::private_files();
    let mut http_limits = config.http.clone();
    if let Some(open_files) = host::raise_open_files_limit() {
        // Leave descriptors for the database pool, repositories and outbound requests.
        let fit = (open_files.saturating_sub(256) as usize).max(16);
        if http_limits.max_connections > fit {
            tracing::warn!(
                max_connections = http_limits.max_connections,
                open_files,
                "lowering --max-connections to what the open-files limit allows"
            );
            http_limits.max_connections = fit;
        }
    }
    host::private_dir(&config.data_dir)?;
    let store = Store::connect(&config.database_url()).await.context("cannot open the database")?;
    let mut catalog = load_catalog(&store).await?;
    let config_root = config.data_dir.join("config");
    let mut configrepo = keptn_configrepo::ConfigRepo::open(&config_root)
        .with_context(|| format!("cannot open the configuration repository {}", config_root.display()))?
        .with_freshness(config.upstream_freshness)
        .with_outbound(config.outbound.clone());
    if let Some(key) = &config.secret_key {
        configrepo = configrepo.with_secret_key(keptn_configrepo::SecretKey::from_bytes(*key));
    }
    let configrepo = Arc::new(configrepo);
    let backfill = (configrepo.clone(), Catalog { projects: catalog.projects.clone() });
    let (revisions, from_git) = tokio::task::spawn_blocking(move || {
        let (repo, catalog) = backfill;
        backfill_config_repos(&repo, &catalog.projects)?;
        // Each project's current revision pins the sequences triggered without a gitcommitid.
        let heads = catalog.projects.keys().filter_map(|p| repo.head(p).ok().map(|h| (p.clone(), h)));
        let heads = heads.collect::<std::collections::HashMap<_, _>>();
        anyhow::Ok((heads, config_sync::shipyards_from_git(&repo, &catalog)))
    })
    .await
    .context("configuration repository backfill panicked")??;
    for (project, shipyard, yaml) in from_git {
        tracing::info!(project = %project, "taking the shipyard from the project's repository");
        store.update_project_shipyard(&project, &yaml, clock::now_ms()).await?;
        if let Some(p) = catalog.projects.get_mut(&project) {
            p.shipyard = shipyard;
            p.shipyard_yaml = yaml;
        }
    }
    let (dispatch_tx, dispatch_rx) = mpsc::unbounded_channel();
    let engine_config = keptn_engine::Config { task_start_timeout_ms: config.task_start_timeout.as_millis() as i64 };
    let directory = uniform::Directory::default();
    let writer = writer::Writer::load(store.clone(), engine_config, dispatch_tx, directory.clone(), revisions).await?;
    let nats_wake = Arc::new(tokio::sync::Notify::new());
    let writer = if config.nats_url.is_some() { writer.with_nats_outbox() } else { writer };
    let (writer_handle, writer_task) = writer.spawn();
    let (bus, _) = broadcast::channel(4096);
    let mut buses: Vec<Arc<dyn bus::Bus>> = vec![Arc::new(bus.clone())];
    if let Some(url) = &config.nats_url {
        let writer = writer_handle.downgrade();
        bus::jetstream::Publisher { store: store.clone(), url: url.clone(), writer, wake: nats_wake.clone() }.spawn();
        buses.push(Arc::new(bus::JetStream { wake: nats_wake }));
    }
    let http = outbound::Outbound::new(config.outbound.clone(), Duration::from_secs(30))?;
    let dispatcher = dispatch::Dispatcher {
        store: store.clone(),
        delivered: writer_handle.delivery_reports(),
        directory: directory.clone(),
        bus,
        buses,
        http: http.clone(),
    };
    let (stream, stream_commands) = stream::StreamHandle::new();
    // Subscribed before anything is served, so no committed event is missed.
    let stream_task =
        stream::shell::spawn(store.clone(), directory.clone(), dispatcher.bus.subscribe(), stream_commands);
    let state = Arc::new(state::AppState {
        store: store.clone(),
        writer: writer_handle,
        catalog: RwLock::new(catalog),
        configrepo,
        crud: tokio::sync::Mutex::new(()),
        directory,
        token: config.api_token.clone(),
        metrics: metrics::handle(),
        integration_ttl_ms: config.integration_ttl.as_millis() as i64,
        bus: dispatcher.bus.clone(),
        controls: broadcast::channel(256).0,
        outbound: http,
        stream,
    });
    registrations::refresh_directory(&state).await.map_err(|e| anyhow::anyhow!(e.message))?;
    // The selected built-ins and the embedder's own integrations run in-process on the same
    // contract; their tasks are aborted at shutdown, before the writer drains.
    let settings = keptn_integrations::Settings {
        sli_timeout: config.quality_gates.sli_timeout,
        prometheus_url: config.quality_gates.prometheus_url.clone(),
        outbound: state.outbound.clone(),
        execution: config.execution.clone(),
    };
    let mut integrations = Vec::new();
    for key in &config.integrations {
        match keptn_integrations::build(key, &settings) {
            Some(integration) => integrations.push(integration),
            None => anyhow::bail!("unknown built-in integration {key:?}; known: {}", all_integrations().join(", ")),
        }
    }
    integrations.extend(config.extra_integrations.0.iter().cloned());
    let mut builtin_tasks = inprocess::start(&state, &dispatcher.bus, integrations).await;
    if let Some(url) = &config.nats_url {
        // Holds the app state like the built-ins: stopped with them, before the writer drains.
        builtin_tasks.push(bus::ingest::spawn(state.clone(), url.clone()));
    }
    // Open streams end when this task stops (their channels close): it stops first at shutdown,
    // so the HTTP layer's graceful stop does not wait for them.
    let stream_stop = stream_task.abort_handle();
    builtin_tasks.push(stream_task);
    let dispatcher_task = dispatcher.spawn(dispatch_rx);
    let expiry_task = tokio::spawn(registrations::expire_integrations(state.clone()));
    let app = api::router(state.clone(), config.max_body_bytes);
    let addr = listener.local_addr()?;
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let weak_state = Arc::downgrade(&state);
    let done = tokio::spawn(async move {
        let stop = async move {
            tokio::select! {
                _ = shutdown_rx => {}
                _ = signal => {}
            }
            stream_stop.abort();
        };
        serve::serve(listener, app, http_limits, stop).await;
        expiry_task.abort();
        for task in builtin_tasks {
            task.abort();
        }
        // Dropping the last writer handle lets the writer finish its queue and stop.
        drop(state);
        let _ = writer_task.await;
        dispatcher_task.abort();
        tracing::info!("server stopped");
    });
    Ok(RunningServer { addr, shutdown: Some(shutdown_tx), done, state: weak_state })
}

async fn load_catalog(store: &Store) -> anyhow::Result<Catalog> {
    let mut projects = BTreeMap::new();
    for p in store.list_projects().await? {
        let services = store.list_services(&p.name).await?;
        let shipyard = match Shipyard::parse(&p.shipyard) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(project = %p.name, error = %e, "skipping project with an invalid stored shipyard");
                continue;
            }
        };
        let svc = services.iter().map(|s| (s.name.clone(), s.created_ms)).collect();
        projects.insert(
            p.name.clone(),
            ProjectEntry { shipyard, shipyard_yaml: p.shipyard, created_ms: p.created_ms, services: svc },
        );
    }
    Ok(Catalog { projects })
}

/// Projects created before the configuration repository existed get one: a stage per shipyard
/// stage, their services in every stage, and `shipyard.yaml`.
fn backfill_config_repos(
    repo: &keptn_configrepo::ConfigRepo,
    projects: &BTreeMap<String, ProjectEntry>,
) -> anyhow::Result<()> {
    let existing = repo.projects().context("cannot list the configuration repositories")?;
    for (name, entry) in projects.iter().filter(|(name, _)| !existing.contains(name)) {
        tracing::info!(project = %name, "creating the configuration repository of an existing project");
        let fill = || -> keptn_configrepo::Result<()> {
            repo.create_project(name)?;
            for stage in entry.shipyard.stage_names() {
                repo.create_stage(name, &stage)?;
                for service in entry.services.keys() {
                    repo.create_service(name, &stage, service)?;
                }
            }
            let shipyard = [("shipyard.yaml", entry.shipyard_yaml.as_bytes())];
            repo.write(name, keptn_configrepo::Scope::Project, &shipyard, "Added shipyard")?;
            Ok(())
        };
        if let Err(e) = fill() {
            tracing::error!(project = %name, error = %e, "cannot create the configuration repository; its resource API answers 404");
        }
    }
    Ok(())
}
