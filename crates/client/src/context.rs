//! The integration contract over keptn's HTTP API, so `keptn integration run` and the tests run
//! an integration against a remote control plane exactly as the server runs it in-process.

use crate::{Client, ClientError, encode, resource_level, with_query};
use keptn_formats::KeptnEvent;
use keptn_integration::{
    Context, ContextError, ContextResult, ControlPlane, EventQuery, LogEntry, Registration, ResourceAt, Subscription,
};
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

impl Client {
    /// Events without invalidated evaluations: keptn's by-type datastore query (lighthouse's own),
    /// newest first, at most 100 from `offset` on.
    async fn valid_events(&self, query: &EventQuery) -> ContextResult<Vec<KeptnEvent>> {
        let Some(ty) = query.ty.as_deref() else {
            return Err(ContextError::Refused {
                status: 400,
                message: "excluding invalidated events needs the event type".into(),
            });
        };
        let clauses =
            [("data.project", &query.project), ("data.stage", &query.stage), ("data.service", &query.service)];
        let mut filter: Vec<String> =
            clauses.iter().filter_map(|(k, v)| v.as_deref().map(|v| format!("{k}:{v}"))).collect();
        if let Some(context) = &query.keptn_context {
            filter.push(format!("shkeptncontext:{context}"));
        }
        let want = if query.limit == 0 { 100 } else { (query.offset + query.limit).min(100) };
        let (filter, want) = (filter.join(" AND "), want.to_string());
        let params = [("filter", filter.as_str()), ("excludeInvalidated", "true"), ("limit", want.as_str())];
        let page = self.get(&with_query(&format!("/api/mongodb-datastore/event/type/{}", encode(ty)), &params)).await?;
        let mut events = page["events"].as_array().cloned().unwrap_or_default();
        if !query.newest_first {
            events.reverse();
        }
        let mut events: Vec<Value> = events.into_iter().skip(query.offset).collect();
        if query.limit > 0 {
            events.truncate(query.limit);
        }
        Ok(events_of(events))
    }
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
        if query.exclude_invalidated {
            return self.valid_events(&query).await;
        }
        let params: Vec<(&str, &str)> = fields.iter().filter_map(|(k, v)| v.as_deref().map(|v| (*k, v))).collect();
        // The datastore answers newest first. Oldest first needs every page; newest first only
        // the pages up to offset + limit.
        let want = if query.newest_first && query.limit > 0 { query.offset + query.limit } else { 0 };
        let mut events = self.datastore(&params, want).await?;
        if !query.newest_first {
            events.reverse();
        }
        let mut events: Vec<Value> = events.into_iter().skip(query.offset).collect();
        if query.limit > 0 {
            events.truncate(query.limit);
        }
        Ok(events_of(events))
    }

    async fn resource(&self, at: &ResourceAt) -> ContextResult<Option<Vec<u8>>> {
        Ok(Client::resource(self, &level(at), &at.uri, at.gitcommitid.as_deref()).await?)
    }

    async fn resources(&self, at: &ResourceAt) -> ContextResult<Option<Vec<String>>> {
        Ok(self.resource_uris(&level(at), at.gitcommitid.as_deref()).await?)
    }

    async fn put_resources(&self, at: &ResourceAt, files: Vec<(String, Vec<u8>)>, message: &str) -> ContextResult<()> {
        Client::put_resources(self, &level(at), &files, message).await?;
        Ok(())
    }

    /// From the local secrets file (`--secrets-file`): keptn's API never returns a value.
    async fn secret(&self, name: &str) -> ContextResult<Option<keptn_integration::SecretData>> {
        Ok(self.local_secret(name))
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

    async fn subscriptions(&self, id: &str) -> ContextResult<Option<Vec<Subscription>>> {
        let path = format!("/api/controlPlane/v1/uniform/registration/{}/subscription", encode(id));
        match self.get(&path).await {
            Ok(v) => serde_json::from_value(v)
                .map(Some)
                .map_err(|e| ContextError::Unavailable(format!("unexpected subscriptions from the server: {e}"))),
            Err(ClientError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn open_triggered(&self, ty: &str) -> ContextResult<Vec<KeptnEvent>> {
        Ok(events_of(Client::open_triggered(self, ty, &[]).await?))
    }
}
