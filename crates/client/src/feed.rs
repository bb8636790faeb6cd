//! [`Feed`] over the control plane's event stream: the subscribed events of one registration,
//! shared between its replicas by the server, each acked after handling. The stream is opened
//! again (with backoff) when it drops; a control plane without the stream (keptn 1.x) is told
//! apart so the caller can poll instead.

use crate::{Client, ClientError, EventStream};
use keptn_formats::KeptnEvent;
use keptn_integration::runner::{Delivery, Feed};
use std::sync::Arc;
use std::time::Duration;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// The server sends a keep-alive every 5 s: this much silence means the connection is dead.
const SILENCE: Duration = Duration::from_secs(15);

/// Why a stream could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum NoStream {
    /// The control plane has no event stream (keptn 1.x answers 404): poll
    /// `GET /api/controlPlane/v1/event/triggered/{type}` instead.
    #[error(
        "the control plane at {endpoint} has no event stream (a keptn 1.x control plane?); falling back to polling"
    )]
    Unsupported { endpoint: String },
    /// It has one but refused or could not be reached (e.g. the integration is not registered).
    #[error(transparent)]
    Failed(#[from] ClientError),
}

impl NoStream {
    pub fn is_unsupported(&self) -> bool {
        matches!(self, NoStream::Unsupported { .. })
    }
}

/// The event stream of one replica of a registered integration.
pub struct StreamFeed {
    client: Client,
    integration_id: String,
    replica: String,
    stream: Option<EventStream>,
    backoff: Duration,
    last_error: Option<String>,
}

/// keptn-rs answers 404 on its stream path only for an unregistered integration, saying so;
/// any other 404 (or 405) comes from a control plane without the route.
fn classify(endpoint: &str, e: ClientError) -> NoStream {
    match &e {
        ClientError::Status { status: 404, message } if message.starts_with("no integration ") => NoStream::Failed(e),
        ClientError::Status { status: 404 | 405, .. } => NoStream::Unsupported { endpoint: endpoint.to_string() },
        _ => NoStream::Failed(e),
    }
}

impl StreamFeed {
    /// Opens the stream for replica `replica` (any string naming this process, unique among the
    /// replicas of the registration `integration_id`).
    pub async fn connect(client: Client, integration_id: &str, replica: &str) -> Result<StreamFeed, NoStream> {
        let stream =
            client.triggered_stream(integration_id, replica).await.map_err(|e| classify(client.endpoint(), e))?;
        Ok(StreamFeed {
            client,
            integration_id: integration_id.to_string(),
            replica: replica.to_string(),
            stream: Some(stream),
            backoff: BACKOFF_MIN,
            last_error: None,
        })
    }

    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Why the stream dropped or could not be opened again, last time (None while it is fine).
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    fn ack_of(&self, id: &str) -> keptn_integration::runner::Ack {
        let (client, integration, replica) = (self.client.clone(), self.integration_id.clone(), self.replica.clone());
        let ids = vec![id.to_string()];
        Box::pin(async move {
            // One retry; an ack lost for good only means the event may go to another replica if
            // this one's stream ends while the event is still open.
            for attempt in 0..2 {
                if client.ack_stream(&integration, &replica, &ids).await.is_ok() {
                    return;
                }
                if attempt == 0 {
                    tokio::time::sleep(BACKOFF_MIN).await;
                }
            }
        })
    }

    /// The next frame of the open stream; None when it ended or went silent.
    async fn frame(&mut self) -> Option<Arc<KeptnEvent>> {
        let stream = self.stream.as_mut()?;
        loop {
            match tokio::time::timeout(SILENCE, stream.next()).await {
                Ok(Ok(Some((name, data)))) if name == "triggered" || name == "event" => {
                    match serde_json::from_value(data) {
                        Ok(event) => return Some(Arc::new(event)),
                        Err(e) => self.last_error = Some(format!("skipped an undecodable event: {e}")),
                    }
                }
                Ok(Ok(Some(_))) => {}
                Ok(Ok(None)) => {
                    self.last_error = Some("the server closed the event stream".into());
                    break;
                }
                Ok(Err(e)) => {
                    self.last_error = Some(e.to_string());
                    break;
                }
                Err(_) => {
                    self.last_error = Some(format!("no keep-alive from the server for {}s", SILENCE.as_secs()));
                    break;
                }
            }
        }
        self.stream = None;
        None
    }
}

#[async_trait::async_trait]
impl Feed for StreamFeed {
    async fn next(&mut self) -> Option<Delivery> {
        loop {
            if let Some(event) = self.frame().await {
                let ack = Some(self.ack_of(&event.id));
                return Some(Delivery::Event { event, ack });
            }
            tokio::time::sleep(self.backoff).await;
            match self.client.triggered_stream(&self.integration_id, &self.replica).await {
                Ok(stream) => {
                    self.stream = Some(stream);
                    self.backoff = BACKOFF_MIN;
                    self.last_error = None;
                    // The server offers what is open again; the runner may check on its own too.
                    return Some(Delivery::Lagged);
                }
                // A token the server refuses stays refused.
                Err(e @ ClientError::Unauthorized { .. }) => {
                    self.last_error = Some(e.to_string());
                    return None;
                }
                Err(e) => {
                    self.last_error = Some(e.to_string());
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    fn delivers_open_events(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, message: &str) -> ClientError {
        ClientError::Status { status, message: message.into() }
    }

    #[test]
    fn a_missing_route_is_told_apart_from_a_missing_registration() {
        let client = "http://keptn";
        let unregistered = status(404, "no integration x is registered; register it with POST … first");
        assert!(!classify(client, unregistered).is_unsupported());
        assert!(classify(client, status(404, "404 page not found")).is_unsupported());
        assert!(classify(client, status(405, "")).is_unsupported());
        assert!(!classify(client, status(503, "busy")).is_unsupported());
        let refused = ClientError::Unauthorized { endpoint: "http://keptn".into() };
        assert!(!classify(client, refused).is_unsupported());
    }
}
