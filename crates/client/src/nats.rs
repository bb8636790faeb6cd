//! [`Feed`] over NATS JetStream: the events a keptn-rs control plane started with `--nats-url`
//! publishes to the stream `KEPTN` (docs/nats.md), read by a durable pull consumer per
//! integration, `keptn-<integration name>`. The replicas of an integration share that consumer,
//! so JetStream hands each message to one of them and redelivers it (to any) when its ack does
//! not come within [`ACK_WAIT`].
//!
//! The consumer starts at new messages when it is created: what was published before is read by
//! the runner's open-events catch-up at start ([`Feed::delivers_open_events`] is false). A
//! delayed `.triggered` (its `time` in the future; the server publishes it when committed) is
//! not delivered early: it is negatively acknowledged with a delay, so JetStream offers it again
//! when it is due, to whichever replica pulls then. The connection is opened again (backoff
//! 100 ms doubling to 5 s) when the consumer's message stream fails; after that the feed yields
//! [`Delivery::Lagged`].

use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures_util::StreamExt;
use keptn_formats::KeptnEvent;
use keptn_integration::runner::{Ack, Delivery, Feed};
use std::sync::Arc;
use std::time::Duration;

/// The control plane's stream and its subjects. The same values as keptn-server's
/// `bus::jetstream` (duplicated so that this client does not depend on the server): whichever
/// side starts first creates the stream, with the same configuration.
pub const STREAM: &str = "KEPTN";
pub const SUBJECTS: &str = "sh.keptn.>";
const DUPLICATE_WINDOW: Duration = Duration::from_secs(300);
/// How long a replica has to handle a message before JetStream offers it again.
pub const ACK_WAIT: Duration = Duration::from_secs(30);
/// Messages one pull asks for: small, so that the replicas' pulls share a burst of events.
const BATCH: usize = 16;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The durable consumer of an integration, shared by its replicas.
pub fn consumer_name(integration: &str) -> String {
    format!("keptn-{integration}")
}

/// Why the feed could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("cannot reach NATS at {url} ({cause}); start nats-server with JetStream (-js) or fix --nats-url")]
    Unreachable { url: String, cause: String },
    #[error("NATS JetStream at {url} refused the consumer {consumer}: {cause}")]
    JetStream { url: String, consumer: String, cause: String },
}

/// The events of one integration's subscribed types from JetStream.
pub struct JetStreamFeed {
    url: String,
    js: jetstream::Context,
    consumer: String,
    subjects: Vec<String>,
    messages: Option<pull::Stream>,
    backoff: Duration,
}

impl JetStreamFeed {
    /// Connects to `url` and opens (creating if missing) the stream and the durable consumer of
    /// `integration` filtered on `subjects` (keptn's subject convention: event types, where `*`
    /// and `>` work as NATS wildcards). Fails if NATS cannot be reached now.
    pub async fn connect(url: &str, integration: &str, subjects: &[&str]) -> Result<JetStreamFeed, NatsError> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|e| NatsError::Unreachable { url: url.to_string(), cause: e.to_string() })?;
        let mut feed = JetStreamFeed {
            url: url.to_string(),
            js: jetstream::new(client),
            consumer: consumer_name(integration),
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
            messages: None,
            backoff: BACKOFF_MIN,
        };
        let messages = feed.open().await.map_err(|cause| NatsError::JetStream {
            url: feed.url.clone(),
            consumer: feed.consumer.clone(),
            cause,
        })?;
        feed.messages = Some(messages);
        Ok(feed)
    }

    /// The consumer's name (`keptn-<integration>`).
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// The consumer's configuration on creation; an existing consumer is used as it is.
    fn consumer_config(&self) -> pull::Config {
        let mut config = pull::Config {
            durable_name: Some(self.consumer.clone()),
            description: Some("keptn-rs integration; replicas share it".into()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            deliver_policy: jetstream::consumer::DeliverPolicy::New,
            ..Default::default()
        };
        // One subject works on every JetStream server; several need nats-server 2.10.
        match self.subjects.as_slice() {
            [one] => config.filter_subject = one.clone(),
            many => config.filter_subjects = many.to_vec(),
        }
        config
    }

    async fn open(&self) -> Result<pull::Stream, String> {
        let stream = self
            .js
            .get_or_create_stream(jetstream::stream::Config {
                name: STREAM.into(),
                subjects: vec![SUBJECTS.into()],
                duplicate_window: DUPLICATE_WINDOW,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("stream {STREAM}: {e}"))?;
        let consumer = stream
            .get_or_create_consumer(&self.consumer, self.consumer_config())
            .await
            .map_err(|e| format!("consumer: {e}"))?;
        consumer.stream().max_messages_per_batch(BATCH).messages().await.map_err(|e| format!("pull: {e}"))
    }

    /// A delivery for the message, or None when it was settled here (undecodable, not due).
    async fn delivery(&self, msg: jetstream::Message) -> Option<Delivery> {
        let (msg, acker) = msg.split();
        let event: KeptnEvent = match serde_json::from_slice(&msg.payload) {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(consumer = %self.consumer, subject = %msg.subject, error = %e,
                    "dropping a NATS message that is not a keptn CloudEvent");
                // Term: redelivering cannot make it decodable.
                if let Err(e) = acker.ack_with(AckKind::Term).await {
                    tracing::warn!(consumer = %self.consumer, error = %e, "could not terminate the message");
                }
                return None;
            }
        };
        if let Some(wait) = not_due(&event.time, chrono::Utc::now().timestamp_millis()) {
            // Held by JetStream rather than here: a message held past the ack wait would be
            // offered to another replica as well.
            if let Err(e) = acker.ack_with(AckKind::Nak(Some(wait))).await {
                tracing::warn!(consumer = %self.consumer, error = %e, "could not postpone a delayed event");
            }
            return None;
        }
        tracing::debug!(consumer = %self.consumer, event = %event.id, r#type = %event.ty, "event from NATS");
        let consumer = self.consumer.clone();
        let ack: Ack = Box::pin(async move {
            // Double ack: the server confirms, so the message is not redelivered to a replica.
            if let Err(e) = acker.double_ack().await {
                tracing::warn!(%consumer, error = %e, "could not acknowledge; JetStream will redeliver the event");
            }
        });
        Some(Delivery::Event { event: Arc::new(event), ack: Some(ack) })
    }
}

/// How long until an event of keptn time `time` is due, if it is in the future.
fn not_due(time: &str, now_ms: i64) -> Option<Duration> {
    let due = chrono::DateTime::parse_from_rfc3339(time).ok()?.timestamp_millis();
    (due > now_ms).then(|| Duration::from_millis((due - now_ms) as u64))
}

#[async_trait::async_trait]
impl Feed for JetStreamFeed {
    async fn next(&mut self) -> Option<Delivery> {
        loop {
            if let Some(messages) = self.messages.as_mut() {
                match messages.next().await {
                    Some(Ok(msg)) => {
                        if let Some(delivery) = self.delivery(msg).await {
                            return Some(delivery);
                        }
                        continue;
                    }
                    Some(Err(e)) => {
                        tracing::warn!(consumer = %self.consumer, error = %e, "reading from NATS failed; reconnecting")
                    }
                    None => tracing::warn!(consumer = %self.consumer, "the NATS consumer ended; reconnecting"),
                }
                self.messages = None;
            }
            tokio::time::sleep(self.backoff).await;
            match self.open().await {
                Ok(messages) => {
                    self.messages = Some(messages);
                    self.backoff = BACKOFF_MIN;
                    // Whatever went unacknowledged meanwhile is redelivered; the runner reads the
                    // open events as well.
                    return Some(Delivery::Lagged);
                }
                Err(e) => {
                    tracing::warn!(consumer = %self.consumer, url = %self.url, error = %e, retry_in = ?self.backoff,
                        "could not open the NATS consumer");
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    fn delivers_open_events(&self) -> bool {
        false
    }

    /// The consumer filters on event types; the stored subscriptions' filters (projects,
    /// stages, services), and edits of them, are the runner's to apply.
    fn selects_by_type_only(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumers_are_named_after_the_integration() {
        assert_eq!(consumer_name("lighthouse-service"), "keptn-lighthouse-service");
    }

    #[test]
    fn a_delayed_event_waits_until_its_time() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T10:00:00Z").unwrap().timestamp_millis();
        assert_eq!(not_due("2026-01-01T10:00:01.500Z", now), Some(Duration::from_millis(1500)));
        assert_eq!(not_due("2026-01-01T10:00:00Z", now), None, "due now");
        assert_eq!(not_due("2026-01-01T09:59:00Z", now), None);
        assert_eq!(not_due("", now), None, "no time: handled at once");
    }
}
