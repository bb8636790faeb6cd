//! Publishes committed events to NATS JetStream from the NATS outbox, in commit order.
//!
//! Subject = event type (keptn's convention), `Nats-Msg-Id` = event id, so JetStream drops a
//! republish inside the stream's duplicate window (a crash between the ack and the row's
//! removal). A row leaves the outbox in the writer's next transaction once JetStream acked it.
//! NATS down: rows wait; the task wakes on new commits and on a backoff timer after a failure.

use crate::writer::WriteCmd;
use async_nats::jetstream;
use keptn_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

pub const STREAM: &str = "KEPTN";
pub const SUBJECTS: &str = "sh.keptn.>";
/// Header marking events the control plane published (its own consumer skips them).
pub const ORIGIN_HEADER: &str = "Keptn-Origin";
pub const ORIGIN: &str = "keptn-control-plane";
const DUPLICATE_WINDOW: Duration = Duration::from_secs(300);
const BATCH: i64 = 256;

pub struct Publisher {
    pub store: Store,
    pub url: String,
    pub writer: mpsc::WeakSender<WriteCmd>,
    /// Notified by the writer after a commit that added NATS outbox rows.
    pub wake: Arc<Notify>,
}

impl Publisher {
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let client = match async_nats::ConnectOptions::new().retry_on_initial_connect().connect(&self.url).await {
                Ok(c) => c,
                Err(e) => return tracing::error!(error = %e, "invalid NATS configuration; not publishing"),
            };
            let js = jetstream::new(client);
            let mut backoff = Duration::from_millis(100);
            // Rows up to `cursor` were acked; their removal is on its way to the writer.
            let mut cursor = 0i64;
            let mut stream_ready = false;
            loop {
                let result = async {
                    if !stream_ready {
                        ensure_stream(&js).await?;
                        stream_ready = true;
                    }
                    self.publish_pending(&js, &mut cursor).await
                }
                .await;
                match result {
                    Ok(true) => backoff = Duration::from_millis(100),
                    Ok(false) => {
                        backoff = Duration::from_millis(100);
                        self.wake.notified().await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?backoff, "publishing to NATS failed");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
                if self.writer.upgrade().is_none() {
                    return;
                }
            }
        })
    }

    /// Publishes one page of pending rows; true if it published anything.
    async fn publish_pending(&self, js: &jetstream::Context, cursor: &mut i64) -> anyhow::Result<bool> {
        let rows = self.store.nats_outbox_pending(*cursor, BATCH).await?;
        if rows.is_empty() {
            return Ok(false);
        }
        let mut acked = Vec::with_capacity(rows.len());
        let mut result = Ok(());
        for (seq, body) in rows {
            let (Some(id), Some(ty)) = (body["id"].as_str(), body["type"].as_str()) else { continue };
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", id);
            headers.insert(ORIGIN_HEADER, ORIGIN);
            let payload = serde_json::to_vec(&body)?;
            let sent = async { js.publish_with_headers(ty.to_string(), headers, payload.into()).await?.await }.await;
            if let Err(e) = sent {
                result = Err(anyhow::anyhow!(e));
                break;
            }
            acked.push(id.to_string());
            *cursor = seq;
        }
        if !acked.is_empty()
            && let Some(writer) = self.writer.upgrade()
        {
            let _ = writer.send(WriteCmd::Published(acked)).await;
        }
        result.map(|_| true)
    }
}

pub async fn ensure_stream(js: &jetstream::Context) -> anyhow::Result<()> {
    js.get_or_create_stream(jetstream::stream::Config {
        name: STREAM.into(),
        subjects: vec![SUBJECTS.into()],
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    })
    .await?;
    Ok(())
}
