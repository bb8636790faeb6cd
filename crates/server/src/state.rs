//! What the server's parts share: the store, the writer's handle, the catalog, the configuration
//! repository, the integration directory and the buses. Built once in `lib.rs`; the HTTP layer,
//! config sync, ingestion and the built-ins all take it.

use crate::catalog::Catalog;
use crate::uniform::Directory;
use crate::writer::WriterHandle;
use keptn_configrepo::ConfigRepo;
use keptn_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::{Arc, RwLock};
use tokio::sync::Mutex;

pub struct AppState {
    pub store: Store,
    pub writer: WriterHandle,
    pub catalog: RwLock<Catalog>,
    /// keptn's resource-service storage: one git repository per project.
    pub configrepo: Arc<ConfigRepo>,
    /// Serialises project and service changes (store + catalog + engine stay in step).
    pub crud: Mutex<()>,
    pub directory: Directory,
    pub token: String,
    pub metrics: PrometheusHandle,
    pub integration_ttl_ms: i64,
    /// Every committed event, as the dispatcher delivers it (watchers listen here).
    pub bus: tokio::sync::broadcast::Sender<Arc<keptn_formats::KeptnEvent>>,
    /// keptnContexts whose state changed without an event (pause / resume).
    pub controls: tokio::sync::broadcast::Sender<String>,
    /// The HTTP client for user-supplied URLs, with the outbound policy.
    pub outbound: crate::outbound::Outbound,
    /// The push stream of `.triggered` events shared between an integration's replicas.
    pub stream: crate::stream::StreamHandle,
}

pub type Shared = Arc<AppState>;
