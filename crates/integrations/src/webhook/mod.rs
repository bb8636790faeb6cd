//! keptn's webhook-service: calls HTTP APIs configured in `webhook/webhook.yaml` when an event
//! of one of its uniform subscriptions arrives, and answers `.triggered` tasks as keptn did.
//!
//! The runner hands it one copy of an event per matching subscription, with keptn's
//! `data.temporaryData.distributor.subscriptionID` set ([`Integration::per_subscription`]); the
//! webhook answering a subscription is the first one with that `subscriptionID` in
//! `webhook/webhook.yaml` at service, stage, then project level, read at the event's commit.
//! Then, in order: `.started` (per `sendStarted`), the `envFrom` secrets, each request rendered
//! (`template.rs`), parsed (`curl.rs`, v1alpha1) or built (v1beta1) and sent through the outbound
//! client (`send.rs`) — the first failure stops the rest —, and the `.finished` answers of
//! keptn's table (`plan`). Secret values are masked as `***` in everything it sends or logs.

pub mod config;
pub mod curl;
pub mod send;
pub mod template;
#[cfg(test)]
mod tests;

use crate::reads::{self, Reads};
use config::{RequestSpec, Structured, Webhook as Hook};
use keptn_formats::{EventType, KeptnEvent};
use keptn_integration::{Context, ContextError, ContextResult, Integration, Redactor, answer, common_data};
use keptn_outbound::http::Outbound;
use serde_json::{Value, json};
use std::sync::Arc;

pub const NAME: &str = "webhook-service";
/// The answers' bytes one `.finished` carries; later ones are left out (named by size), so the
/// event stays well inside the control plane's request limit (5 MiB by default).
pub const RESPONSES_LIMIT: usize = 1 << 20;

/// The webhook built-in.
pub struct Webhook {
    outbound: Outbound,
    reads: Reads,
    renderer: template::Renderer,
}

impl Webhook {
    pub fn new(outbound: Outbound) -> Webhook {
        Webhook { outbound, reads: Reads::default(), renderer: template::Renderer::new() }
    }
}

/// keptn's distributor field naming the subscription an event was delivered for.
pub fn subscription_id(event: &KeptnEvent) -> Option<&str> {
    event.data.pointer("/temporaryData/distributor/subscriptionID").and_then(Value::as_str).filter(|s| !s.is_empty())
}

#[async_trait::async_trait]
impl Integration for Webhook {
    fn name(&self) -> &'static str {
        NAME
    }

    /// None at first: the subscriptions are the users' (`keptn create webhook`, the uniform API).
    fn subscriptions(&self) -> &'static [&'static str] {
        &[]
    }

    fn per_subscription(&self) -> bool {
        true
    }

    async fn handle(&self, event: Arc<KeptnEvent>, ctx: Arc<dyn Context>) -> ContextResult<()> {
        let Some(sid) = subscription_id(&event) else {
            tracing::info!(event = %event.id, r#type = %event.ty, "no subscription id on the event; a webhook answers only its subscription's events");
            return Ok(());
        };
        // Only a task's `.triggered` is answered; anything else is a notification.
        let task = match EventType::parse(&event.ty) {
            EventType::Task { task, kind } if kind == "triggered" => Some(task),
            _ => None,
        };
        let mut redactor = Redactor::new();
        let found = self.lookup(ctx.as_ref(), &event, sid).await?;
        let flags = match &found {
            Ok(hook) => Flags {
                send_started: hook.send_started,
                send_finished: hook.send_finished,
                requests: hook.requests.len(),
            },
            // keptn: `.started` and an errored `.finished`, whatever the flags would have been.
            Err(_) => Flags { send_started: true, send_finished: true, requests: 0 },
        };
        if let Some(task) = &task {
            let started = plan::started(sid, flags).into_iter().map(|d| reply(&event, task, "started", &d, json!({})));
            if !crate::send_all(NAME, ctx.as_ref(), &event, started.collect()).await? {
                return Ok(());
            }
        }
        let outcome = match found {
            Ok(hook) => self.execute(ctx.as_ref(), &event, &hook, &mut redactor).await?,
            Err(message) => Outcome { executed: 0, responses: Vec::new(), error: Some(message) },
        };
        let handling = Handling { ctx: ctx.as_ref(), event: &event, sid, task: task.as_deref() };
        self.answer(&handling, flags, outcome, &redactor).await
    }
}

/// One event being handled for one subscription.
#[derive(Clone, Copy)]
struct Handling<'a> {
    ctx: &'a dyn Context,
    event: &'a KeptnEvent,
    sid: &'a str,
    /// The task, when the event is a task's `.triggered` (then it is answered).
    task: Option<&'a str>,
}

/// What keptn's table depends on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flags {
    pub send_started: bool,
    pub send_finished: bool,
    pub requests: usize,
}

/// How the requests went: how many succeeded, their responses, and the first failure.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub executed: usize,
    pub responses: Vec<Value>,
    pub error: Option<String>,
}

/// keptn's §5.6 table as data: which answers, each named by its discriminator (the
/// subscription id, with `/<request index>` for the per-request ones).
pub mod plan {
    use super::{Flags, Outcome};

    /// The `.started` events sent before the requests.
    pub fn started(sid: &str, flags: Flags) -> Vec<String> {
        match (flags.send_started, flags.send_finished) {
            (false, _) => Vec::new(),
            (true, true) => vec![sid.to_string()],
            // The called systems answer each request with a `.finished` of their own.
            (true, false) => (0..flags.requests).map(|i| format!("{sid}/{i}")).collect(),
        }
    }

    /// A `.finished` to send: discriminator and whether it is the errored one.
    #[derive(Debug, PartialEq)]
    pub struct Finished {
        pub discriminator: String,
        pub errored: bool,
    }

    /// The `.finished` events sent after the requests.
    pub fn finished(sid: &str, flags: Flags, outcome: &Outcome) -> Vec<Finished> {
        let errored = outcome.error.is_some();
        if flags.send_finished {
            return vec![Finished { discriminator: sid.to_string(), errored }];
        }
        if !errored {
            return Vec::new();
        }
        // Balances the `.started` of the requests that will not call anyone.
        (outcome.executed..flags.requests)
            .map(|i| Finished { discriminator: format!("{sid}/{i}"), errored: true })
            .collect()
    }
}

fn reply(event: &KeptnEvent, task: &str, kind: &str, discriminator: &str, extra: Value) -> KeptnEvent {
    let mut data = common_data(event);
    if let (Some(data), Value::Object(extra)) = (data.as_object_mut(), extra) {
        data.extend(extra);
    }
    answer(NAME, event, keptn_formats::event_type::task(task, kind), discriminator, data)
}

impl Webhook {
    /// The webhook for `sid`: `Ok(Err(message))` when there is none (or only invalid files).
    async fn lookup(&self, ctx: &dyn Context, event: &KeptnEvent, sid: &str) -> ContextResult<Result<Hook, String>> {
        let commit = event.gitcommitid.as_str();
        let mut places = reads::levels(event.project(), event.stage(), event.service(), config::URI, commit);
        places.reverse(); // service, stage, project
        let mut files = Vec::new();
        for place in places {
            let level = match (&place.stage, &place.service) {
                (Some(stage), Some(service)) => format!("service {service} (stage {stage})"),
                (Some(stage), None) => format!("stage {stage}"),
                _ => format!("project {}", place.project),
            };
            match reads::split(self.reads.resource(ctx, &place).await)? {
                Ok(Some(bytes)) => files.push((format!("{} of {level}", config::URI), bytes)),
                Ok(None) => {}
                Err(refused) => tracing::warn!(level = %level, error = %refused, "could not read the webhook config"),
            }
        }
        let files: Vec<(String, &[u8])> = files.iter().map(|(n, b)| (n.clone(), b.as_slice())).collect();
        let (found, skipped) = config::find(&files, sid);
        for reason in skipped {
            tracing::warn!(subscription = sid, "skipping an invalid webhook config: {reason}");
        }
        Ok(found)
    }

    /// Secrets, then each request in order until the first failure.
    async fn execute(
        &self,
        ctx: &dyn Context,
        event: &KeptnEvent,
        hook: &Hook,
        redactor: &mut Redactor,
    ) -> ContextResult<Outcome> {
        let mut outcome = Outcome { executed: 0, responses: Vec::new(), error: None };
        let env = match self.secrets(ctx, hook, redactor).await? {
            Ok(env) => env,
            Err(message) => {
                outcome.error = Some(message);
                return Ok(outcome);
            }
        };
        let mut root = serde_json::to_value(event).unwrap_or_else(|_| json!({}));
        let mut kept = 0;
        root["env"] = Value::Object(env);
        for (i, spec) in hook.requests.iter().enumerate() {
            let request = match self.build(spec, &root) {
                Ok(request) => request,
                Err(message) => {
                    outcome.error = Some(format!("could not parse request {}: {message}", i + 1));
                    return Ok(outcome);
                }
            };
            let shown = format!("{} {}", request.effective_method(), keptn_outbound::redact_url(&request.url));
            match send::send(&self.outbound, &request, redactor).await {
                Ok(response) => {
                    outcome.executed += 1;
                    let fits = kept + response.body.len() <= RESPONSES_LIMIT;
                    if fits {
                        kept += response.body.len();
                    }
                    outcome.responses.push(if !fits {
                        Value::String(format!(
                            "(an answer of {} bytes, left out: the answers in one .finished are kept up to {RESPONSES_LIMIT} bytes)",
                            response.body.len()
                        ))
                    } else {
                        serde_json::from_str::<Value>(&response.body).unwrap_or(Value::String(response.body))
                    });
                }
                Err(message) => {
                    outcome.error = Some(format!("request {} ({shown}) failed: {message}", i + 1));
                    return Ok(outcome);
                }
            }
        }
        Ok(outcome)
    }

    /// `env` for the templates from the `envFrom` secrets; remembers every value read.
    async fn secrets(
        &self,
        ctx: &dyn Context,
        hook: &Hook,
        redactor: &mut Redactor,
    ) -> ContextResult<Result<serde_json::Map<String, Value>, String>> {
        let mut env = serde_json::Map::new();
        for from in &hook.env_from {
            let secret = match reads::split(ctx.secret(&from.secret).await)? {
                Ok(Some(secret)) => secret,
                Ok(None) => {
                    return Ok(Err(format!(
                        "secret {:?} (envFrom {:?}) does not exist or is not in a scope the webhook-service may read (keptn-default, keptn-webhook-service): create it with keptn create secret {} --from-literal={}=…",
                        from.secret, from.name, from.secret, from.key
                    )));
                }
                Err(refused) => return Ok(Err(format!("could not read secret {:?}: {refused}", from.secret))),
            };
            redactor.add_all(secret.values());
            match secret.get(&from.key) {
                Some(value) => {
                    env.insert(from.name.clone(), Value::String(value.clone()));
                }
                None => {
                    return Ok(Err(format!(
                        "secret {:?} has no key {:?} (envFrom {:?})",
                        from.secret, from.key, from.name
                    )));
                }
            }
        }
        Ok(Ok(env))
    }

    /// One request rendered over the event: a curl string parsed, or the fields of a
    /// structured request.
    fn build(&self, spec: &RequestSpec, root: &Value) -> Result<curl::Request, String> {
        let render = |t: &str| self.renderer.render(t, root);
        match spec {
            RequestSpec::Curl(command) => curl::parse_command(&render(command)?),
            RequestSpec::Structured(s) => structured(s, render),
        }
    }

    /// Sends the `.finished` answers (for a `.triggered`), and reports a failure to the error
    /// log (through the runner) either way.
    async fn answer(&self, h: &Handling<'_>, flags: Flags, outcome: Outcome, redactor: &Redactor) -> ContextResult<()> {
        let Handling { ctx, event, sid, task } = *h;
        let message = outcome.error.as_deref().map(|m| redactor.scrub(m));
        if let Some(task) = task {
            let finished = plan::finished(sid, flags, &outcome).into_iter().map(|f| {
                let mut extra = if f.errored {
                    json!({ "status": "errored", "result": "fail", "message": message.clone().unwrap_or_default() })
                } else {
                    json!({ "status": "succeeded", "result": "pass", task: { "responses": outcome.responses.clone() } })
                };
                redactor.scrub_json(&mut extra);
                reply(event, task, "finished", &f.discriminator, extra)
            });
            if !crate::send_all(NAME, ctx, event, finished.collect()).await? {
                return Ok(());
            }
        }
        match message {
            // Permanent: the runner writes it to the control plane's error log.
            Some(message) => Err(ContextError::Refused { status: 422, message: format!("webhook {sid}: {message}") }),
            None => Ok(()),
        }
    }
}

/// A v1beta1 request: each field rendered, the options with the curl rules, then keptn-rs's
/// `timeout` and `retry`.
fn structured(s: &Structured, render: impl Fn(&str) -> Result<String, String>) -> Result<curl::Request, String> {
    let mut request = curl::Request { method: Some(s.method.clone()), url: render(&s.url)?, ..Default::default() };
    for (k, v) in &s.headers {
        request.headers.push((render(k)?, render(v)?));
    }
    if !s.payload.is_empty() {
        request.body = Some(render(&s.payload)?);
    }
    if !s.options.trim().is_empty() {
        curl::parse_options(&render(&s.options)?, &mut request)?;
    }
    request.method = Some(s.method.clone());
    if let Some(timeout) = s.timeout {
        request.timeout = Some(timeout);
    }
    if let Some(retry) = s.retry {
        request.attempts = Some(retry.attempts);
        request.backoff = Some(retry.backoff);
    }
    Ok(request)
}
