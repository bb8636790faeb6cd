//! Ingests events integrations publish on NATS (`sh.keptn.>`, as keptn 1.x integrations in NATS
//! mode do) through the one door (`crate::ingest`), the same checks and errors as HTTP.
//!
//! A durable JetStream consumer, so what integrations publish while the server is down is read
//! when it is back. Messages the control plane published itself (origin header) are skipped.
//! The event keeps its id, so a redelivery (crash between commit and ack) is dropped by the writer.
//! A refused event is logged with the reason and acknowledged (retrying cannot fix it); an
//! unavailable control plane leaves it unacknowledged, so JetStream delivers it again.

use super::jetstream::{ORIGIN, ORIGIN_HEADER, STREAM, ensure_stream};
use crate::ingest::{self, Ids};
use crate::state::Shared;
use async_nats::jetstream::{self, consumer::pull};
use futures_util::StreamExt;
use std::time::Duration;

/// The control plane's durable consumer.
pub const CONSUMER: &str = "keptn-control-plane";
const ACK_WAIT: Duration = Duration::from_secs(5);

pub fn spawn(state: Shared, url: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = match async_nats::ConnectOptions::new().retry_on_initial_connect().connect(&url).await {
            Ok(c) => c,
            Err(e) => return tracing::error!(error = %e, "invalid NATS configuration; not reading events from NATS"),
        };
        let js = jetstream::new(client);
        let mut backoff = Duration::from_millis(100);
        loop {
            match consume(&state, &js).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "reading events from NATS failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    })
}

/// Reads messages until the subscription ends or fails.
async fn consume(state: &Shared, js: &jetstream::Context) -> anyhow::Result<()> {
    ensure_stream(js).await?;
    let stream = js.get_stream(STREAM).await?;
    // A message whose ack was lost (NATS restarted mid-ack) comes back after this; its repeat is
    // dropped by id, so a short wait only costs a lookup.
    let config = pull::Config { durable_name: Some(CONSUMER.into()), ack_wait: ACK_WAIT, ..Default::default() };
    let consumer = stream.get_or_create_consumer(CONSUMER, config).await?;
    let mut messages = consumer.messages().await?;
    while let Some(msg) = messages.next().await {
        let msg = msg?;
        let ours = msg.headers.as_ref().and_then(|h| h.get(ORIGIN_HEADER)).is_some_and(|v| v.as_str() == ORIGIN);
        if !ours && !handle(state, &msg.subject, &msg.payload).await {
            continue; // unavailable: not acknowledged, delivered again after the ack wait
        }
        msg.double_ack().await.map_err(|e| anyhow::anyhow!(e))?;
    }
    Ok(())
}

/// Runs one published event through the door; false if it should be delivered again.
async fn handle(state: &Shared, subject: &str, payload: &[u8]) -> bool {
    let body: serde_json::Value = match serde_json::from_slice(payload) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(subject, error = %e, "ignoring a NATS message that is not a JSON CloudEvent");
            return true;
        }
    };
    let ids = match body["id"].as_str() {
        Some(id) if !id.is_empty() => Ids::Keep(id.to_string()),
        _ => Ids::Assign,
    };
    match ingest::ingest_json(state, body, ids).await {
        Ok(_) => true,
        Err(e) if e.status.is_client_error() => {
            tracing::warn!(subject, status = e.status.as_u16(), error = %e.message, "refused an event from NATS");
            true
        }
        Err(e) => {
            tracing::warn!(subject, error = %e.message, "could not ingest an event from NATS; it is delivered again");
            false
        }
    }
}
