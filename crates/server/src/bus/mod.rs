//! Where committed events go once stored, besides push delivery: a [`Bus`]. In-process, a
//! broadcast channel (built-ins, event stream, watchers subscribe to it); with `--nats-url`,
//! JetStream: out (`jetstream`: publishing from the NATS outbox the writer fills in each commit)
//! and in (`ingest`: integrations' events through the one door).
pub mod ingest;
pub mod jetstream;

use keptn_formats::KeptnEvent;
use std::sync::Arc;
use tokio::sync::{Notify, broadcast};

/// A destination of committed events. The dispatcher publishes each one, in commit order (a
/// `triggeredAfter` event when it falls due); publishing must not block.
pub trait Bus: Send + Sync + 'static {
    fn publish(&self, event: &Arc<KeptnEvent>);
}

/// The in-process bus: whoever subscribed gets every event; a slow receiver lags and reads the
/// store instead.
impl Bus for broadcast::Sender<Arc<KeptnEvent>> {
    fn publish(&self, event: &Arc<KeptnEvent>) {
        let _ = self.send(event.clone());
    }
}

/// JetStream: the event is already durable in the NATS outbox (written in its commit), so
/// publishing wakes the publisher, which sends the outbox in commit order.
pub struct JetStream {
    pub wake: Arc<Notify>,
}

impl Bus for JetStream {
    fn publish(&self, _event: &Arc<KeptnEvent>) {
        self.wake.notify_one();
    }
}
