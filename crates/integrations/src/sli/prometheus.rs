//! The Prometheus SLI provider, built in (keptn-contrib's prometheus-service, reference §2.3):
//! `prometheus/sli.yaml` queries (or the built-in throughput, error_rate and response_time_pNN),
//! keptn's placeholders, one instant query per SLI at the end of the window, exactly one sample.
//!
//! The endpoint comes from `prometheus/config.yaml` (`url`, optional `user`/`password`; merged
//! project → stage → service) or the server's `--prometheus-url`. Without one it stays silent,
//! so an external prometheus-service can answer instead.

use super::config::{SliRequest, merge_indicators, merge_settings};
use super::value;
use crate::reads::{Reads, split};
use keptn_formats::KeptnEvent;
use keptn_integration::{Context, ContextResult, Integration, answer, common_data};
use keptn_outbound::http::Outbound;
use serde_json::{Value, json};
use std::sync::Arc;

pub const PROVIDER: &str = "prometheus";
pub const NAME: &str = "prometheus-sli-provider";
const GET_SLI_TRIGGERED: &str = "sh.keptn.event.get-sli.triggered";
const MONITORING_CONFIGURE: &str = "sh.keptn.event.monitoring.configure";

pub struct Prometheus {
    http: Outbound,
    /// `--prometheus-url`: used where no `prometheus/config.yaml` names one.
    default_url: Option<String>,
    reads: Reads,
}

#[derive(Debug, Clone, PartialEq)]
struct Endpoint {
    url: String,
    user: String,
    password: String,
}

impl Endpoint {
    /// The URL for messages, without userinfo someone put into it.
    fn shown(&self) -> String {
        keptn_outbound::http::redact_url(&self.url)
    }
}

#[async_trait::async_trait]
impl Integration for Prometheus {
    fn name(&self) -> &'static str {
        NAME
    }

    fn subscriptions(&self) -> &'static [&'static str] {
        &[GET_SLI_TRIGGERED, MONITORING_CONFIGURE]
    }

    async fn handle(&self, event: Arc<KeptnEvent>, ctx: Arc<dyn Context>) -> ContextResult<()> {
        let out = match event.ty.as_str() {
            GET_SLI_TRIGGERED if event.data["get-sli"]["sliProvider"] == PROVIDER => {
                self.get_sli(ctx.as_ref(), &event).await?
            }
            MONITORING_CONFIGURE if event.data["type"] == PROVIDER => self.configure(ctx.as_ref(), &event).await?,
            _ => Vec::new(),
        };
        crate::send_all(NAME, ctx.as_ref(), &event, out).await.map(drop)
    }
}

impl Prometheus {
    pub fn new(http: Outbound, default_url: Option<String>) -> Prometheus {
        Prometheus { http, default_url, reads: Reads::default() }
    }

    async fn endpoint(
        &self,
        ctx: &dyn Context,
        req: &SliRequest,
        at: &str,
    ) -> ContextResult<Result<Option<Endpoint>, String>> {
        let files = self.reads.levels(ctx, &req.project, &req.stage, &req.service, "prometheus/config.yaml", at).await;
        let files = match split(files)? {
            Ok(files) => files,
            Err(message) => return Ok(Err(message)),
        };
        let settings = match merge_settings(&files.iter().map(|f| f.as_slice()).collect::<Vec<_>>()) {
            Ok(settings) => settings,
            Err(e) => return Ok(Err(format!("prometheus/{e}"))),
        };
        let s = |k: &str| settings.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let url = Some(s("url")).filter(|u| !u.is_empty()).or_else(|| self.default_url.clone());
        Ok(Ok(url.map(|url| Endpoint {
            url: url.trim_end_matches('/').to_string(),
            user: s("user"),
            password: s("password"),
        })))
    }

    /// keptn's prometheus-service answers the CLI's `configure monitoring prometheus`.
    async fn configure(&self, ctx: &dyn Context, event: &KeptnEvent) -> ContextResult<Vec<KeptnEvent>> {
        let req = SliRequest { project: event.project().into(), ..SliRequest::default() };
        let message = match self.endpoint(ctx, &req, "").await? {
            Ok(Some(ep)) => {
                format!("Prometheus SLI provider selected for project {}; queries go to {}", req.project, ep.shown())
            }
            _ => format!(
                "Prometheus SLI provider selected for project {}; give it an endpoint: add prometheus/config.yaml with `url: http://prometheus:9090` (keptn add-resource) or start the server with --prometheus-url",
                req.project
            ),
        };
        let mut started = common_data(event);
        started["status"] = json!("succeeded");
        let mut finished = started.clone();
        finished["result"] = json!("pass");
        finished["message"] = json!(message);
        Ok(vec![
            answer(NAME, event, "sh.keptn.event.configure-monitoring.started".into(), "", started),
            answer(NAME, event, "sh.keptn.event.configure-monitoring.finished".into(), "", finished),
        ])
    }

    async fn get_sli(&self, ctx: &dyn Context, event: &KeptnEvent) -> ContextResult<Vec<KeptnEvent>> {
        let req = SliRequest::from_event(event);
        let outcome = match self.endpoint(ctx, &req, &event.gitcommitid).await? {
            Ok(Some(ep)) => self.values(ctx, &req, &ep, &event.gitcommitid).await?,
            Ok(None) => return Ok(Vec::new()), // not configured here: leave it to an external provider
            Err(e) => Err(e),
        };
        Ok(super::answers(NAME, event, &req, outcome))
    }

    async fn values(
        &self,
        ctx: &dyn Context,
        req: &SliRequest,
        ep: &Endpoint,
        at: &str,
    ) -> ContextResult<Result<Vec<Value>, String>> {
        let files = self.reads.levels(ctx, &req.project, &req.stage, &req.service, "prometheus/sli.yaml", at).await;
        let files = match split(files)? {
            Ok(files) => files,
            Err(message) => return Ok(Err(message)),
        };
        let queries = match merge_indicators(&files.iter().map(|f| f.as_slice()).collect::<Vec<_>>()) {
            Ok(queries) => queries,
            Err(e) => return Ok(Err(format!("prometheus/{e}"))),
        };
        let queries = &queries;
        let fetches = req.indicators.iter().map(|sli| async move {
            let query = match queries.get(sli) {
                Some(Value::String(q)) => Ok(req.fill(q)),
                Some(_) => Err(format!("prometheus/sli.yaml: the query of {sli} must be a string")),
                None => builtin_query(sli, req),
            };
            let result = match query {
                Ok(q) => instant(&self.http, ep, &q, &req.end).await,
                Err(e) => Err(e),
            };
            value(sli, result)
        });
        Ok(Ok(futures_util::future::join_all(fetches).await))
    }
}

/// One instant query at `at`; exactly one sample is a value.
async fn instant(http: &Outbound, ep: &Endpoint, query: &str, at: &str) -> Result<f64, String> {
    let url = reqwest::Url::parse_with_params(&format!("{}/api/v1/query", ep.url), &[("query", query), ("time", at)])
        .map_err(|e| format!("prometheus url {} is not a URL: {e}", ep.shown()))?;
    let mut req = http
        .request(reqwest::Method::GET, url)
        .map_err(|denied| format!("Prometheus at {} is not queried: {denied}", ep.shown()))?;
    if !ep.user.is_empty() {
        req = req.basic_auth(&ep.user, Some(&ep.password));
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("could not reach Prometheus at {}: {}", ep.shown(), super::root_cause(&e)))?;
    let status = resp.status();
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(format!(
            "Prometheus at {} refused the credentials (HTTP {}); check user and password in prometheus/config.yaml",
            ep.shown(),
            status.as_u16()
        ));
    }
    let body: Value = resp.json().await.map_err(|_| {
        format!(
            "Prometheus at {} answered HTTP {} without JSON; check that url points at Prometheus",
            ep.shown(),
            status.as_u16()
        )
    })?;
    sample(&body)
}

/// keptn's checks on an instant-query answer.
fn sample(body: &Value) -> Result<f64, String> {
    if body["status"] != "success" {
        let error = body["error"].as_str().unwrap_or("unknown error");
        return Err(format!("Prometheus rejected the query: {error}"));
    }
    let data = &body["data"];
    let raw = match data["resultType"].as_str() {
        Some("scalar") => &data["result"][1],
        Some("vector") => match data["result"].as_array().map(Vec::as_slice).unwrap_or_default() {
            [] => return Err("query did not return any values".into()),
            [one] => &one["value"][1],
            _ => return Err("query did return multiple values".into()),
        },
        other => return Err(format!("query returned a {}, not a vector", other.unwrap_or("nothing"))),
    };
    raw.as_str()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .ok_or_else(|| "query did not return valid values".to_string())
}

/// keptn's built-in queries, for SLIs without a custom query.
fn builtin_query(sli: &str, req: &SliRequest) -> Result<String, String> {
    let mut filters = Vec::new();
    if !req.filters.iter().any(|(k, _)| k == "job") {
        filters.push(format!("job='{}-{}-{}-canary'", req.service, req.project, req.stage));
    }
    for (k, v) in &req.filters {
        let op = ["!=", "=~", "!~", "="].into_iter().find(|op| v.starts_with(op));
        filters.push(match op {
            Some(_) => format!("{k}{v}"),
            None => format!("{k}='{v}'"),
        });
    }
    let f = filters.join(",");
    let d = req.duration_seconds().map(|s| format!("{s}s")).unwrap_or_else(|| "300s".into());
    let quantile = |q: &str| {
        format!("histogram_quantile(0.{q},sum(rate(http_response_time_milliseconds_bucket{{{f}}}[{d}]))by(le))")
    };
    Ok(match sli {
        "throughput" => format!("sum(rate(http_requests_total{{{f}}}[{d}]))"),
        "error_rate" => format!(
            "sum(rate(http_requests_total{{{f},status!~'2..'}}[{d}]))/sum(rate(http_requests_total{{{f}}}[{d}]))"
        ),
        "response_time_p50" => quantile("50"),
        "response_time_p90" => quantile("90"),
        "response_time_p95" => quantile("95"),
        other => return Err(format!("unsupported SLI {other}: define its query in prometheus/sli.yaml")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Fake;
    use serde_json::json;

    #[tokio::test]
    async fn a_prometheus_on_loopback_is_refused_by_default() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let http = Outbound::new(keptn_outbound::OutboundPolicy::default(), std::time::Duration::from_secs(5)).unwrap();
        let ep = Endpoint { url: format!("http://{addr}"), user: String::new(), password: String::new() };
        let err = instant(&http, &ep, "up", "2024-01-01T00:00:00Z").await.unwrap_err();
        assert_eq!(
            err,
            format!(
                "Prometheus at http://{addr} is not queried: 127.0.0.1 is a loopback address, which the server's outbound policy denies; if this target is intended, start the server with --allow-outbound loopback"
            )
        );
        let with_user = Endpoint { url: format!("http://admin:pw-secret@{addr}"), ..ep.clone() };
        let err = instant(&http, &with_user, "up", "2024-01-01T00:00:00Z").await.unwrap_err();
        assert!(err.starts_with(&format!("Prometheus at http://***@{addr} is not queried: ")), "{err}");
        let ep = Endpoint { url: format!("http://localhost:{}", addr.port()), ..ep };
        let err = instant(&http, &ep, "up", "2024-01-01T00:00:00Z").await.unwrap_err();
        assert!(err.starts_with(&format!("could not reach Prometheus at {}: localhost resolves to ", ep.url)), "{err}");
        let accepted = tokio::time::timeout(std::time::Duration::from_millis(50), listener.accept()).await;
        assert!(accepted.is_err(), "a connection reached the listener");
    }

    #[test]
    fn exactly_one_sample() {
        let vector =
            |result: Value| json!({ "status": "success", "data": { "resultType": "vector", "result": result } });
        assert_eq!(sample(&vector(json!([{ "metric": {}, "value": [1.0, "12.5"] }]))), Ok(12.5));
        assert_eq!(sample(&vector(json!([]))).unwrap_err(), "query did not return any values");
        let two = json!([{ "value": [1.0, "1"] }, { "value": [1.0, "2"] }]);
        assert_eq!(sample(&vector(two)).unwrap_err(), "query did return multiple values");
        assert_eq!(
            sample(&vector(json!([{ "value": [1.0, "NaN"] }]))).unwrap_err(),
            "query did not return valid values"
        );
        let scalar = json!({ "status": "success", "data": { "resultType": "scalar", "result": [1.0, "3"] } });
        assert_eq!(sample(&scalar), Ok(3.0));
        let error = json!({ "status": "error", "error": "parse error at char 3" });
        assert!(sample(&error).unwrap_err().contains("parse error"));
    }

    #[test]
    fn builtin_queries_as_keptn() {
        let req = SliRequest {
            project: "sockshop".into(),
            stage: "dev".into(),
            service: "carts".into(),
            start: "2023-01-01T10:00:00.000Z".into(),
            end: "2023-01-01T10:05:00.000Z".into(),
            filters: vec![("handler".into(), "ItemsController".into()), ("status".into(), "!~'5..'".into())],
            ..SliRequest::default()
        };
        assert_eq!(
            builtin_query("throughput", &req).unwrap(),
            "sum(rate(http_requests_total{job='carts-sockshop-dev-canary',handler='ItemsController',status!~'5..'}[300s]))"
        );
        assert!(builtin_query("response_time_p95", &req).unwrap().starts_with("histogram_quantile(0.95,"));
        assert!(builtin_query("apdex", &req).unwrap_err().contains("prometheus/sli.yaml"));
    }

    fn provider(default_url: Option<String>) -> Prometheus {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let policy = keptn_outbound::OutboundPolicy::allow_loopback();
        Prometheus::new(Outbound::new(policy, std::time::Duration::from_secs(5)).unwrap(), default_url)
    }

    fn get_sli() -> Arc<KeptnEvent> {
        let data = json!({ "project": "p", "stage": "dev", "service": "carts",
                           "get-sli": { "sliProvider": "prometheus", "start": "2024-01-01T00:00:00.000Z",
                                        "end": "2024-01-01T00:05:00.000Z", "indicators": ["rt"] } });
        Arc::new(KeptnEvent::new("g1".into(), GET_SLI_TRIGGERED.into(), "c".into(), "".into(), data))
    }

    #[tokio::test]
    async fn without_an_endpoint_it_leaves_the_request_to_another_provider() {
        let ctx = Fake::new();
        ctx.place("p", Some("dev"), Some("carts"));
        provider(None).handle(get_sli(), ctx.clone()).await.unwrap();
        assert!(ctx.sent().is_empty(), "{:?}", ctx.sent());
    }

    #[tokio::test]
    async fn an_unreachable_prometheus_fails_the_sli_with_the_reason() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let ctx = Fake::new();
        ctx.file("p", None, None, "prometheus/config.yaml", &format!("url: http://{addr}\n"));
        ctx.file("p", Some("dev"), Some("carts"), "prometheus/sli.yaml", "indicators:\n  rt: up{job='$SERVICE'}\n");
        provider(None).handle(get_sli(), ctx.clone()).await.unwrap();
        let sent = ctx.sent();
        let types: Vec<&str> = sent.iter().map(|e| e.ty.as_str()).collect();
        assert_eq!(types, ["sh.keptn.event.get-sli.started", "sh.keptn.event.get-sli.finished"]);
        let d = &sent[1].data;
        assert_eq!((d["status"].as_str(), d["result"].as_str()), (Some("succeeded"), Some("fail")), "{d:#}");
        assert_eq!(d["message"], "unable to retrieve metrics");
        let value = &d["get-sli"]["indicatorValues"][0];
        assert_eq!((value["metric"].as_str(), value["success"].as_bool()), (Some("rt"), Some(false)));
        let reason = value["message"].as_str().unwrap();
        assert!(reason.starts_with(&format!("could not reach Prometheus at http://{addr}: ")), "{reason}");
        assert_eq!(sent[1].triggeredid, "g1");
    }

    #[tokio::test]
    async fn configure_monitoring_says_where_queries_go() {
        let ctx = Fake::new();
        ctx.place("p", None, None);
        let data = json!({ "type": "prometheus", "project": "p" });
        let event = Arc::new(KeptnEvent::new("m1".into(), MONITORING_CONFIGURE.into(), "c".into(), "".into(), data));
        provider(Some("http://prom:9090/".into())).handle(event.clone(), ctx.clone()).await.unwrap();
        let sent = ctx.sent();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[1].ty, "sh.keptn.event.configure-monitoring.finished");
        assert_eq!(
            sent[1].data["message"],
            "Prometheus SLI provider selected for project p; queries go to http://prom:9090"
        );
        let ctx = Fake::new();
        provider(None).handle(event, ctx.clone()).await.unwrap();
        assert!(ctx.sent()[1].data["message"].as_str().unwrap().contains("give it an endpoint"));
    }
}
