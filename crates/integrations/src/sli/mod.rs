//! The built-in SLI providers. Each answers `get-sli.triggered` for its `sliProvider` name
//! exactly as an external integration would (`.started`, then `.finished` with
//! `get-sli.indicatorValues`), reading its queries from `<provider>/sli.yaml` and its settings
//! from `<provider>/config.yaml` in the project's configuration (project → stage → service).

pub mod config;
pub mod http;
pub mod prometheus;

use crate::reads::{Reads, split};
use keptn_formats::KeptnEvent;
use keptn_integration::{Context, ContextResult, Integration, answer, common_data};
use serde_json::{Value, json};
use std::sync::Arc;

pub use keptn_outbound::http::root_cause;

const GET_SLI_TRIGGERED: &str = "sh.keptn.event.get-sli.triggered";

/// One SLI's answer, as in `get-sli.finished` (`success: false` carries the reason).
pub fn value(metric: &str, result: Result<f64, String>) -> Value {
    match result {
        Ok(v) => json!({ "metric": metric, "value": v, "success": true }),
        Err(message) => json!({ "metric": metric, "value": 0, "success": false, "message": message }),
    }
}

/// `.started`, then `.finished` with the values (keptn: all succeeded → pass, some → warning,
/// none → fail "unable to retrieve metrics"; a provider failure → errored).
pub fn answers(
    source: &str,
    triggered: &KeptnEvent,
    req: &config::SliRequest,
    outcome: Result<Vec<Value>, String>,
) -> Vec<KeptnEvent> {
    let mut started = common_data(triggered);
    started["status"] = json!("succeeded");
    let mut finished = common_data(triggered);
    let values = match outcome {
        Ok(values) => {
            let ok = values.iter().filter(|v| v["success"] == true).count();
            let (result, message) = match ok {
                n if n == values.len() => ("pass", ""),
                0 => ("fail", "unable to retrieve metrics"),
                _ => ("warning", ""),
            };
            finished["status"] = json!("succeeded");
            finished["result"] = json!(result);
            finished["message"] = json!(message);
            values
        }
        Err(message) => {
            finished["status"] = json!("errored");
            finished["result"] = json!("fail");
            finished["message"] = json!(message);
            Vec::new()
        }
    };
    finished["get-sli"] = json!({ "start": req.start, "end": req.end, "indicatorValues": values });
    vec![
        answer(source, triggered, "sh.keptn.event.get-sli.started".into(), "", started),
        answer(source, triggered, "sh.keptn.event.get-sli.finished".into(), "", finished),
    ]
}

/// The HTTP/JSON provider (`sliProvider: http`): each SLI of `http/sli.yaml` is a request and a
/// JSONPath into its answer (see `http.rs`).
pub struct HttpJson {
    http: keptn_outbound::http::Outbound,
    reads: Reads,
}

const HTTP_NAME: &str = "http-sli-provider";

impl HttpJson {
    pub fn new(http: keptn_outbound::http::Outbound) -> HttpJson {
        HttpJson { http, reads: Reads::default() }
    }

    async fn values(
        &self,
        ctx: &dyn Context,
        req: &config::SliRequest,
        at: &str,
    ) -> ContextResult<Result<Vec<Value>, String>> {
        let files = self.reads.levels(ctx, &req.project, &req.stage, &req.service, "http/sli.yaml", at).await;
        let files = match split(files)? {
            Ok(files) => files,
            Err(message) => return Ok(Err(message)),
        };
        let specs = match config::merge_indicators(&files.iter().map(|f| f.as_slice()).collect::<Vec<_>>()) {
            Ok(specs) => specs,
            Err(e) => return Ok(Err(format!("http/{e}"))),
        };
        let specs = &specs;
        let fetches = req.indicators.iter().map(|sli| async move {
            let result = match specs.get(sli) {
                Some(spec) => http::fetch(&self.http, req, sli, spec).await,
                None => Err(format!("{sli} is not defined in http/sli.yaml")),
            };
            value(sli, result)
        });
        Ok(Ok(futures_util::future::join_all(fetches).await))
    }
}

#[async_trait::async_trait]
impl Integration for HttpJson {
    fn name(&self) -> &'static str {
        HTTP_NAME
    }

    fn subscriptions(&self) -> &'static [&'static str] {
        &[GET_SLI_TRIGGERED]
    }

    async fn handle(&self, event: Arc<KeptnEvent>, ctx: Arc<dyn Context>) -> ContextResult<()> {
        if event.ty != GET_SLI_TRIGGERED || event.data["get-sli"]["sliProvider"] != http::PROVIDER {
            return Ok(());
        }
        let req = config::SliRequest::from_event(&event);
        let outcome = self.values(ctx.as_ref(), &req, &event.gitcommitid).await?;
        crate::send_all(HTTP_NAME, ctx.as_ref(), &event, answers(HTTP_NAME, &event, &req, outcome)).await.map(drop)
    }
}
