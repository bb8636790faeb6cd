//! The integration contract over keptn's HTTP API, so `keptn integration run` and the tests run
//! an integration against a remote control plane exactly as the server runs it in-process.

use crate::{Client, ClientError, resource_level};
use keptn_integration::{
    Context, ContextError, ContextResult, ControlPlane, EventQuery, LogEntry, Registration, ResourceAt, Subscription,
};
use keptn_spec::KeptnEvent;
use serde_json::{Value, json};

impl From<ClientError> for ContextError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Status { status, message } if status < 500 => ContextError::Refused { status, message },
            ClientError::Unauthorized { .. } => ContextError::Refused { status: 401, message: e.to_string() },
            other => ContextError::Unavailable(other.to_string()),
        }
    }
}

fn events_of(values: Vec<Value>) -> Vec<KeptnEvent> {
    values.into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect()
}

fn level(at: &ResourceAt) -> String {
    resource_level(&at.project, at.stage.as_deref(), at.service.as_deref())
}

#[async_trait::async_trait]
impl Context for Client {
    async fn send(&self, event: KeptnEvent) -> ContextResult<()> {
        self.send_idempotent(&event).await?;
        Ok(())
    }

    async fn events(&self, query: EventQuery) -> ContextResult<Vec<KeptnEvent>> {
        let fields = [
            ("keptnContext", &query.keptn_context),
            ("eventID", &query.event_id),
            ("type", &query.ty),
            ("project", &query.project),
            ("stage", &query.stage),
            ("service", &query.service),
        ];
        let params: Vec<(&str, &str)> = fields.iter().filter_map(|(k, v)| v.as_deref().map(|v| (*k, v))).collect();
        // The datastore answers newest first; the contract is oldest first. All pages are read
        // so `limit` keeps the oldest ones.
        let mut events = self.datastore(&params, 0).await?;
        events.reverse();
        if query.limit > 0 {
            events.truncate(query.limit);
        }
        Ok(events_of(events))
    }

    async fn resource(&self, at: &ResourceAt) -> ContextResult<Option<Vec<u8>>> {
        Ok(Client::resource(self, &level(at), &at.uri, at.gitcommitid.as_deref()).await?)
    }

    async fn put_resources(&self, at: &ResourceAt, files: Vec<(String, Vec<u8>)>, message: &str) -> ContextResult<()> {
        Client::put_resources(self, &level(at), &files, message).await?;
        Ok(())
    }

    async fn secret(&self, _name: &str, _key: &str) -> ContextResult<Option<String>> {
        // keptn-rs has no secret API for integrations yet (issue 12); none is readable.
        Ok(None)
    }

    async fn log_error(&self, entry: LogEntry) -> ContextResult<()> {
        let log = json!({
            "integrationid": entry.integration_id,
            "message": entry.message,
            "shkeptncontext": entry.keptn_context,
            "triggeredid": entry.triggered_id,
            "task": entry.task,
        });
        self.log(vec![log]).await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl ControlPlane for Client {
    async fn register(&self, registration: Registration) -> ContextResult<String> {
        let body = serde_json::to_value(&registration).unwrap_or(Value::Null);
        Ok(Client::register(self, &body).await?)
    }

    async fn heartbeat(&self, id: &str) -> ContextResult<Option<Vec<Subscription>>> {
        match self.ping(id).await {
            Ok(v) => {
                let reg: Registration = serde_json::from_value(v)
                    .map_err(|e| ContextError::Unavailable(format!("unexpected registration from the server: {e}")))?;
                Ok(Some(reg.subscriptions))
            }
            Err(ClientError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn open_triggered(&self, ty: &str) -> ContextResult<Vec<KeptnEvent>> {
        Ok(events_of(Client::open_triggered(self, ty, &[]).await?))
    }
}
