//! SLI providers built into the server. Each answers `get-sli.triggered` for its `sliProvider`
//! name exactly as an external integration would (`.started`, then `.finished` with
//! `get-sli.indicatorValues`), reading its queries from `<provider>/sli.yaml` and its settings
//! from `<provider>/config.yaml` in the project's configuration (project → stage → service).

pub mod config;
pub mod http;
pub mod prometheus;

use crate::api::{self, Shared};
use keptn_configrepo::Scope;
use serde_json::{Value, json};

pub use crate::outbound::root_cause;

/// One SLI's answer, as in `get-sli.finished` (`success: false` carries the reason).
pub fn value(metric: &str, result: Result<f64, String>) -> Value {
    match result {
        Ok(v) => json!({ "metric": metric, "value": v, "success": true }),
        Err(message) => json!({ "metric": metric, "value": 0, "success": false, "message": message }),
    }
}

/// Project, stage and service level, as far as the scope names them.
fn levels<'a>(stage: &'a str, service: &'a str) -> Vec<Scope<'a>> {
    match (stage, service) {
        ("", _) => vec![Scope::Project],
        (st, "") => vec![Scope::Project, Scope::Stage(st)],
        (st, svc) => vec![Scope::Project, Scope::Stage(st), Scope::Service(st, svc)],
    }
}

/// `uri` at project, stage and service level (lowest first) at revision `at`; missing levels
/// (or a missing stage/service) are skipped, other failures are errors.
pub async fn read_levels(
    state: &Shared,
    project: &str,
    stage: &str,
    service: &str,
    uri: &str,
    at: &str,
) -> Result<Vec<Vec<u8>>, String> {
    let (p, st, svc, uri) = (project.to_string(), stage.to_string(), service.to_string(), uri.to_string());
    let at = Some(at.to_string()).filter(|a| !a.is_empty());
    api::repo(state, move |repo| {
        let mut out = Vec::new();
        for scope in levels(&st, &svc) {
            match repo.read(&p, scope, &uri, at.as_deref()) {
                Ok((bytes, _)) => out.push(bytes),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| e.message)
}

/// Providers with an `sli.yaml` at some level: the `x` of every `x/sli.yaml`.
pub async fn providers_with_sli(
    state: &Shared,
    project: &str,
    stage: &str,
    service: &str,
    at: &str,
) -> Result<Vec<String>, String> {
    let (p, st, svc) = (project.to_string(), stage.to_string(), service.to_string());
    let at = Some(at.to_string()).filter(|a| !a.is_empty());
    api::repo(state, move |repo| {
        let mut names = Vec::new();
        for scope in levels(&st, &svc) {
            let uris = match repo.list(&p, scope, at.as_deref()) {
                Ok(uris) => uris,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            for uri in uris {
                if let Some((dir, "sli.yaml")) = uri.trim_start_matches('/').split_once('/')
                    && !dir.is_empty()
                    && !dir.starts_with('.')
                {
                    names.push(dir.to_string());
                }
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    })
    .await
    .map_err(|e| e.message)
}

/// `.started`, then `.finished` with the values (keptn: all succeeded → pass, some → warning,
/// none → fail "unable to retrieve metrics"; a provider failure → errored).
pub fn answers(
    source: &str,
    triggered: &keptn_spec::KeptnEvent,
    req: &config::SliRequest,
    outcome: Result<Vec<Value>, String>,
) -> Vec<keptn_spec::KeptnEvent> {
    use crate::builtin::{answer, common_data};
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
        answer(source, triggered, "sh.keptn.event.get-sli.started".into(), started),
        answer(source, triggered, "sh.keptn.event.get-sli.finished".into(), finished),
    ]
}

/// The HTTP/JSON provider (`sliProvider: http`): each SLI of `http/sli.yaml` is a request and a
/// JSONPath into its answer (see `http.rs`).
pub struct HttpJson {
    pub state: Shared,
    pub http: crate::outbound::Outbound,
}

const GET_SLI_TRIGGERED: &str = "sh.keptn.event.get-sli.triggered";

impl crate::builtin::BuiltIn for HttpJson {
    const NAME: &'static str = "http-sli-provider";
    const SUBSCRIPTIONS: &'static [&'static str] = &[GET_SLI_TRIGGERED];

    async fn handle(&self, event: &keptn_spec::KeptnEvent) -> Vec<keptn_spec::KeptnEvent> {
        if event.ty != GET_SLI_TRIGGERED || event.data["get-sli"]["sliProvider"] != http::PROVIDER {
            return Vec::new();
        }
        let req = config::SliRequest::from_event(event);
        let outcome = self.values(&req, &event.gitcommitid).await;
        answers(<Self as crate::builtin::BuiltIn>::NAME, event, &req, outcome)
    }
}

impl HttpJson {
    async fn values(&self, req: &config::SliRequest, at: &str) -> Result<Vec<Value>, String> {
        let files = read_levels(&self.state, &req.project, &req.stage, &req.service, "http/sli.yaml", at).await?;
        let specs = config::merge_indicators(&files.iter().map(Vec::as_slice).collect::<Vec<_>>())
            .map_err(|e| format!("http/{e}"))?;
        let specs = &specs;
        let fetches = req.indicators.iter().map(|sli| async move {
            let result = match specs.get(sli) {
                Some(spec) => http::fetch(&self.http, req, sli, spec).await,
                None => Err(format!("{sli} is not defined in http/sli.yaml")),
            };
            value(sli, result)
        });
        Ok(futures_util::future::join_all(fetches).await)
    }
}
