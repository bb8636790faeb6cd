//! Runs one integration on any transport: registers it, keeps it alive with heartbeats, takes
//! events from a [`Feed`], keeps those its current subscriptions match, handles each once per
//! process, and catches up on open `.triggered` events when the feed may have missed some.
//! (Interface only; the implementation lands with the runner.)

use keptn_spec::KeptnEvent;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Acknowledges a delivered event to its transport once it was handled (or refused for good).
pub type Ack = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One item of a feed.
pub enum Delivery {
    /// An event to handle; `ack`, when the transport wants one, is awaited after handling.
    Event { event: Arc<KeptnEvent>, ack: Option<Ack> },
    /// Events may have been missed (a lagging bus, a reconnect): read the open ones again.
    Lagged,
}

/// Where a runner's events come from: the in-process bus, the control plane's event stream,
/// a JetStream consumer, or polling.
#[async_trait::async_trait]
pub trait Feed: Send {
    /// The next delivery; None when the feed has ended for good.
    async fn next(&mut self) -> Option<Delivery>;
    /// Whether the feed itself delivers the open `.triggered` events (a server-side stream that
    /// shares work between replicas does); then the runner never reads them itself, so two
    /// replicas do not both take one.
    fn delivers_open_events(&self) -> bool {
        false
    }
}
