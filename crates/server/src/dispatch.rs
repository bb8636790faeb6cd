//! Delivers committed events: to in-process subscribers (the bus) and to push integrations
//! (HTTP POST with retries and backoff). An event leaves the outbox once every push target has
//! it or gave up; after a crash, what is still in the outbox is delivered again (at-least-once;
//! integrations dedup by event id, as keptn's SDK does).

use crate::outbound;
use crate::uniform::Directory;
use keptn_formats::KeptnEvent;
use keptn_store::Store;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

use crate::clock::now_ms;

#[derive(Debug, Clone)]
pub struct Outgoing {
    pub event: KeptnEvent,
    pub due_ms: i64,
    /// Has an outbox row to clear once delivered.
    pub in_outbox: bool,
}

const ATTEMPTS: u32 = 6;

pub struct Dispatcher {
    pub store: Store,
    /// Ids of delivered outbox events. The writer removes them from the outbox in its next
    /// transaction (`WriterHandle::delivery_reports`), so the dispatcher never competes with it
    /// for the database's write lock, and it does not know the writer.
    pub delivered: mpsc::UnboundedSender<String>,
    pub directory: Directory,
    /// The in-process bus (also in `buses`): what in-process receivers subscribe to.
    pub bus: broadcast::Sender<Arc<KeptnEvent>>,
    /// Every destination of committed events: the in-process bus, JetStream.
    pub buses: Vec<Arc<dyn crate::bus::Bus>>,
    pub http: crate::outbound::Outbound,
}

impl Dispatcher {
    /// Runs until the sender side closes. Events still in the outbox at start are sent first.
    pub fn spawn(self, mut rx: mpsc::UnboundedReceiver<Vec<Outgoing>>) -> tokio::task::JoinHandle<()> {
        let done_tx = self.delivered.clone();
        tokio::spawn(async move {
            let me = Arc::new(self);
            let mut delayed: BTreeMap<(i64, u64), Outgoing> = BTreeMap::new();
            let mut n = 0u64;
            match me.store.outbox_pending(i64::MAX).await {
                Ok(rows) => {
                    for (body, due_ms) in rows {
                        if let Ok(event) = serde_json::from_value::<KeptnEvent>(body) {
                            n += 1;
                            delayed.insert((due_ms, n), Outgoing { event, due_ms, in_outbox: true });
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "could not read the outbox"),
            }
            loop {
                let now = now_ms();
                while let Some(entry) = delayed.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    me.deliver(entry.remove(), &done_tx);
                }
                crate::metrics::queue_depth(delayed.len());
                let next = delayed.keys().next().map(|(at, _)| *at);
                let sleep = async {
                    match next {
                        Some(at) => tokio::time::sleep(Duration::from_millis((at - now_ms()).max(0) as u64)).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    msg = rx.recv() => match msg {
                        Some(batch) => {
                            let now = now_ms();
                            for out in batch {
                                if out.due_ms <= now {
                                    me.deliver(out, &done_tx);
                                } else {
                                    n += 1;
                                    delayed.insert((out.due_ms, n), out);
                                }
                            }
                        }
                        None => return,
                    },
                    _ = sleep => {}
                }
            }
        })
    }

    fn deliver(self: &Arc<Self>, out: Outgoing, done: &mpsc::UnboundedSender<String>) {
        let event = Arc::new(out.event);
        for bus in &self.buses {
            bus.publish(&event);
        }
        crate::uniform::warn_if_unsubscribed(&self.directory, &event);
        let targets = self.directory.push_targets(&event.ty, event.project(), event.stage(), event.service());
        let done = out.in_outbox.then(|| done.clone());
        if targets.is_empty() {
            if let Some(done) = done {
                let _ = done.send(event.id.clone());
            }
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let mut posts = tokio::task::JoinSet::new();
            for (integration, url, subscription) in targets {
                let mut ev = (*event).clone();
                if ev.data.is_object() {
                    ev.data["temporaryData"]["distributor"] = json!({ "subscriptionID": subscription });
                }
                let me = me.clone();
                posts.spawn(async move { me.post_with_retries(&integration, &url, &ev).await });
            }
            posts.join_all().await;
            if let Some(done) = done {
                let _ = done.send(event.id.clone());
            }
        });
    }

    async fn post_with_retries(&self, integration: &str, url: &str, event: &KeptnEvent) {
        // Logs and messages show the URL without its userinfo (it may hold a password).
        let shown = outbound::redact_url(url);
        let url = match reqwest::Url::parse(url) {
            Ok(url) => url,
            Err(e) => return self.give_up(integration, &shown, event, format!("pushURL is not a URL: {e}")).await,
        };
        let mut backoff = Duration::from_millis(100);
        for attempt in 1..=ATTEMPTS {
            let request = match self.http.request(reqwest::Method::POST, url.clone()) {
                Ok(request) => request,
                Err(denied) => return self.give_up(integration, &shown, event, denied.to_string()).await,
            };
            let sent = request.header("content-type", "application/cloudevents+json").json(event).send().await;
            match sent {
                Ok(r) if r.status().is_success() => return,
                Ok(r) => {
                    tracing::warn!(integration, url = %shown, status = %r.status(), attempt, "push delivery refused")
                }
                Err(e) if outbound::is_refused(&e) => {
                    return self.give_up(integration, &shown, event, outbound::root_cause(&e)).await;
                }
                Err(e) => {
                    let error = outbound::root_cause(&e.without_url());
                    tracing::warn!(integration, url = %shown, error = %error, attempt, "push delivery failed");
                }
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 4).min(Duration::from_secs(30));
            }
        }
        let why = format!("no success after {ATTEMPTS} attempts");
        self.give_up(integration, &shown, event, why).await;
    }

    /// Logs the failure and records it in the integration's error log (`GET /log`), where its
    /// owner looks for problems.
    async fn give_up(&self, integration: &str, shown: &str, event: &KeptnEvent, why: String) {
        crate::metrics::push_failed();
        tracing::error!(integration, url = %shown, event = %event.id, why = %why, "giving up push delivery");
        let now = now_ms();
        let triggered = if event.ty.ends_with(".triggered") { &event.id } else { &event.triggeredid };
        let entry = json!({
            "integrationid": integration,
            "shkeptncontext": event.shkeptncontext,
            "triggeredid": triggered,
            "time": keptn_engine::format_time(now),
            "message": format!("push delivery of {} {} to {shown} failed: {why}", event.ty, event.id),
        });
        let row = (uuid::Uuid::new_v4().to_string(), integration.to_string(), now, entry);
        if let Err(e) = self.store.insert_logs(&[row]).await {
            tracing::error!(integration, error = %e, "could not record the failed push delivery");
        }
    }
}
