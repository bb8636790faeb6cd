//! keptn's lighthouse-service (reference §1): turns `evaluation.triggered` into
//! `evaluation.started`, asks the SLI provider(s) with `get-sli.triggered`, and scores their
//! `get-sli.finished` against `slo.yaml` and earlier evaluations into `evaluation.finished`.
//!
//! Stateless between events: each step re-reads the evaluation's events from the store and
//! decides what is missing, so a restart, a duplicate or a late answer cannot produce a second
//! result. The answers' ids are derived from the evaluation (see `builtin::answer`), so even two
//! concurrent steps emit the same events and the writer keeps one. Fixes over keptn: every
//! `get-sli.finished` is matched to its own request by `triggeredid` (two providers, one
//! evaluation), and a provider that never answers ends the evaluation after the SLI timeout.

mod timeframe;

use super::sli::config::merge_indicators;
use super::sli::{providers_with_sli, read_levels};
use super::{BuiltIn, answer, common_data};
use crate::api::{self, Shared};
use crate::timers::now_ms;
use crate::writer::parse_time;
use keptn_configrepo::Scope;
use keptn_slo::{Evaluation, Previous, SliResult, Slo};
use keptn_spec::KeptnEvent;
use keptn_store::EventQuery;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const NAME: &str = "lighthouse-service";
const EVALUATION_TRIGGERED: &str = "sh.keptn.event.evaluation.triggered";
const EVALUATION_STARTED: &str = "sh.keptn.event.evaluation.started";
const EVALUATION_FINISHED: &str = "sh.keptn.event.evaluation.finished";
const EVALUATION_INVALIDATED: &str = "sh.keptn.event.evaluation.invalidated";
const GET_SLI_TRIGGERED: &str = "sh.keptn.event.get-sli.triggered";
const GET_SLI_FINISHED: &str = "sh.keptn.event.get-sli.finished";
const MONITORING_CONFIGURE: &str = "sh.keptn.event.monitoring.configure";
/// Where `keptn configure monitoring` stores the project's SLI provider (keptn: a ConfigMap).
pub const CONFIG_URI: &str = "lighthouse/config.yaml";

pub struct Lighthouse {
    state: Shared,
    sli_timeout: Duration,
    /// Evaluations with a timer armed, so a burst of events arms one.
    armed: Arc<Mutex<HashSet<String>>>,
}

impl Lighthouse {
    pub fn new(state: Shared, sli_timeout: Duration) -> Lighthouse {
        Lighthouse { state, sli_timeout, armed: Arc::default() }
    }
}

impl BuiltIn for Lighthouse {
    const NAME: &'static str = NAME;
    const SUBSCRIPTIONS: &'static [&'static str] = &[EVALUATION_TRIGGERED, GET_SLI_FINISHED, MONITORING_CONFIGURE];

    async fn handle(&self, event: &KeptnEvent) -> Vec<KeptnEvent> {
        match event.ty.as_str() {
            EVALUATION_TRIGGERED => step(&self.state, self.sli_timeout, &self.armed, event).await,
            GET_SLI_FINISHED => match evaluation_of(&self.state, event).await {
                Some(triggered) => step(&self.state, self.sli_timeout, &self.armed, &triggered).await,
                None => Vec::new(),
            },
            MONITORING_CONFIGURE => {
                select_provider(&self.state, event).await;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }
}

/// Stores `data.type` as the project's SLI provider (keptn sends no answer for this event).
async fn select_provider(state: &Shared, event: &KeptnEvent) {
    let provider = event.data["type"].as_str().unwrap_or_default().to_string();
    let project = event.project().to_string();
    if provider.is_empty() || project.is_empty() {
        return;
    }
    let content = format!(
        "# Written by `keptn configure monitoring`: the project's default SLI provider.\nsli-provider: {provider}\n"
    );
    let result = api::repo_write(state, &project.clone(), move |repo| {
        repo.write(&project, Scope::Project, &[(CONFIG_URI, content.as_bytes())], "Configure monitoring")
    })
    .await;
    if let Err(e) = result {
        tracing::warn!(project = %event.project(), error = %e.message, "could not store the SLI provider");
    }
}

async fn events(state: &Shared, q: EventQuery) -> Vec<KeptnEvent> {
    match state.store.query_events(&q).await {
        Ok((rows, _)) => rows.into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect(),
        Err(e) => {
            tracing::error!(error = %e, "lighthouse could not read events");
            Vec::new()
        }
    }
}

async fn event_by_id(state: &Shared, id: &str) -> Option<KeptnEvent> {
    if id.is_empty() {
        return None;
    }
    events(state, EventQuery { event_id: Some(id.into()), limit: 1, ..EventQuery::default() }).await.pop()
}

/// The `evaluation.triggered` a `get-sli.finished` belongs to: its request's `triggeredid`.
async fn evaluation_of(state: &Shared, finished: &KeptnEvent) -> Option<KeptnEvent> {
    let request = event_by_id(state, &finished.triggeredid).await?;
    if request.ty != GET_SLI_TRIGGERED || request.source != NAME {
        return None; // another lighthouse's request, or not a request at all
    }
    event_by_id(state, &request.triggeredid).await.filter(|e| e.ty == EVALUATION_TRIGGERED)
}

/// The next events of one evaluation, from what the store already holds.
async fn step(
    state: &Shared,
    timeout: Duration,
    armed: &Arc<Mutex<HashSet<String>>>,
    e: &KeptnEvent,
) -> Vec<KeptnEvent> {
    let context = events(state, EventQuery { context: Some(e.shkeptncontext.clone()), ..EventQuery::default() }).await;
    let ours: Vec<&KeptnEvent> = context.iter().filter(|x| x.triggeredid == e.id).collect();
    if ours.iter().any(|x| x.ty == EVALUATION_FINISHED) {
        return Vec::new();
    }
    let mut out = Vec::new();
    if !ours.iter().any(|x| x.ty == EVALUATION_STARTED && x.source == NAME) {
        let mut data = common_data(e);
        data["status"] = json!("succeeded");
        out.push(answer(NAME, e, EVALUATION_STARTED.into(), data));
    }
    let requests: Vec<&KeptnEvent> = ours.iter().copied().filter(|x| x.ty == GET_SLI_TRIGGERED).collect();
    let finished = if requests.is_empty() {
        match plan(state, e).await {
            Plan::Finish(evaluation) => evaluation,
            Plan::Ask(asks) => {
                out.extend(asks);
                arm(state, timeout, armed, e, now_ms() + timeout.as_millis() as i64);
                return out;
            }
        }
    } else {
        let answers: Vec<Option<&KeptnEvent>> = requests
            .iter()
            .map(|r| context.iter().find(|x| x.ty == GET_SLI_FINISHED && x.triggeredid == r.id))
            .collect();
        if answers.iter().any(Option::is_none) {
            let sent = requests.iter().filter_map(|r| parse_time(&r.time)).min().unwrap_or_else(now_ms);
            let deadline = sent + timeout.as_millis() as i64;
            if now_ms() < deadline {
                arm(state, timeout, armed, e, deadline);
                return out;
            }
            let silent: Vec<&str> = requests
                .iter()
                .zip(&answers)
                .filter(|(_, a)| a.is_none())
                .map(|(r, _)| r.data["get-sli"]["sliProvider"].as_str().unwrap_or(""))
                .collect();
            let (start, end) = window(&requests);
            keptn_slo::errored(no_answer_message(&silent, timeout), None, &start, &end)
        } else {
            let answers: Vec<&KeptnEvent> = answers.into_iter().flatten().collect();
            score(state, e, &requests, &answers).await
        }
    };
    let mut data = common_data(e);
    merge(&mut data, finished.to_data());
    out.push(answer(NAME, e, EVALUATION_FINISHED.into(), data));
    out
}

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, from) {
        a.extend(b);
    }
}

fn no_answer_message(silent: &[&str], timeout: Duration) -> String {
    format!(
        "no answer from SLI provider {} within {}s: is an integration for it subscribed to {GET_SLI_TRIGGERED} \
         (a built-in provider answers only when configured, e.g. prometheus/config.yaml with a url)?",
        silent.join(", "),
        timeout.as_secs()
    )
}

/// The window the requests asked for.
fn window(requests: &[&KeptnEvent]) -> (String, String) {
    let g = &requests[0].data["get-sli"];
    (g["start"].as_str().unwrap_or("").into(), g["end"].as_str().unwrap_or("").into())
}

enum Plan {
    /// Nothing to ask: the evaluation ends right away with this.
    Finish(Evaluation),
    /// One `get-sli.triggered` per provider.
    Ask(Vec<KeptnEvent>),
}

/// Reads the SLO and the project's providers and decides whom to ask for which SLIs.
async fn plan(state: &Shared, e: &KeptnEvent) -> Plan {
    let tf = match timeframe::resolve(&e.data, now_ms()) {
        Ok(tf) => tf,
        Err(message) => return Plan::Finish(keptn_slo::errored(message, None, "", "")),
    };
    let (project, stage, service) = (e.project(), e.stage(), e.service());
    let raw = match read_slo(state, e, &e.gitcommitid).await {
        Ok(Some(raw)) => raw,
        Ok(None) => return Plan::Finish(keptn_slo::without_slo(project, &tf.start, &tf.end)),
        Err(message) => return Plan::Finish(keptn_slo::errored(message, None, &tf.start, &tf.end)),
    };
    let slo = match Slo::parse_lenient(&raw) {
        Ok(slo) => slo,
        Err(err) => {
            // keptn's message, with the reason it lacked.
            let message = format!("{}: {err}", keptn_slo::unparsable_slo_message(project, stage, service));
            return Plan::Finish(keptn_slo::errored(message, Some(&raw), &tf.start, &tf.end));
        }
    };
    let indicators = slo.indicators();
    if indicators.is_empty() {
        return Plan::Finish(keptn_slo::evaluate(&slo, &[], &[], &tf.start, &tf.end));
    }
    let configured = configured_provider(state, e).await;
    let mut defined: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    match providers_with_sli(state, project, stage, service, &e.gitcommitid).await {
        Ok(names) => {
            for name in names {
                let files =
                    read_levels(state, project, stage, service, &format!("{name}/sli.yaml"), &e.gitcommitid).await;
                let slis = files.and_then(|f| merge_indicators(&f.iter().map(Vec::as_slice).collect::<Vec<_>>()));
                match slis {
                    Ok(map) => {
                        defined.insert(name, map.into_keys().collect());
                    }
                    Err(message) => {
                        let message = format!("{name}/sli.yaml: {message}");
                        return Plan::Finish(keptn_slo::errored(message, Some(&raw), &tf.start, &tf.end));
                    }
                }
            }
        }
        Err(message) => return Plan::Finish(keptn_slo::errored(message, Some(&raw), &tf.start, &tf.end)),
    }
    let Some(groups) = assign(&indicators, configured.as_deref(), &defined) else {
        return Plan::Finish(keptn_slo::without_sli_provider(project, &tf.start, &tf.end));
    };
    let deployment = e.data.pointer("/deployment/deploymentNames/0").and_then(Value::as_str).unwrap_or("");
    let filters: Vec<Value> = slo.filters().into_iter().map(|(k, v)| json!({ "key": k, "value": v })).collect();
    let asks = groups
        .into_iter()
        .map(|(provider, slis)| {
            let mut data = common_data(e);
            let mut get_sli = json!({ "sliProvider": provider, "start": tf.start, "end": tf.end, "indicators": slis });
            if !filters.is_empty() {
                get_sli["customFilters"] = json!(filters);
            }
            data["get-sli"] = get_sli;
            data["deployment"] = json!(deployment);
            let mut ev = answer(NAME, e, GET_SLI_TRIGGERED.into(), data);
            // One request per provider: the id names the provider too.
            let name = format!("{}/{NAME}/{GET_SLI_TRIGGERED}/{provider}", e.id);
            ev.id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string();
            ev
        })
        .collect();
    Plan::Ask(asks)
}

/// Which provider is asked for which SLI: the one whose `sli.yaml` defines it (the configured
/// provider first when several do), else the configured provider (its built-in SLIs). None when
/// there is no provider at all.
fn assign(
    indicators: &[String],
    configured: Option<&str>,
    defined: &BTreeMap<String, HashSet<String>>,
) -> Option<BTreeMap<String, Vec<String>>> {
    if configured.is_none() && defined.is_empty() {
        return None;
    }
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for sli in indicators {
        let by_file = |p: &str| defined.get(p).is_some_and(|s| s.contains(sli));
        let provider = match configured {
            Some(c) if by_file(c) => c.to_string(),
            _ => match defined.iter().find(|(_, slis)| slis.contains(sli)) {
                Some((p, _)) => p.clone(),
                None => match configured {
                    Some(c) => c.to_string(),
                    // No provider knows it: ask the only one there is, which answers "no value".
                    None => defined.keys().next().expect("not empty").clone(),
                },
            },
        };
        groups.entry(provider).or_default().push(sli.clone());
    }
    Some(groups)
}

/// `slo.yaml` of the evaluation's service at revision `at`; None when there is none.
async fn read_slo(state: &Shared, e: &KeptnEvent, at: &str) -> Result<Option<Vec<u8>>, String> {
    let (p, st, svc) = (e.project().to_string(), e.stage().to_string(), e.service().to_string());
    let at = Some(at.to_string()).filter(|c| !c.is_empty());
    let found =
        api::repo(state, move |repo| match repo.read(&p, Scope::Service(&st, &svc), "slo.yaml", at.as_deref()) {
            Ok((bytes, _)) => Ok(Some(bytes)),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        })
        .await;
    found.map_err(|err| format!("error retrieving SLO file: {}", err.message))
}

/// The project's provider from `lighthouse/config.yaml` (`sli-provider`).
async fn configured_provider(state: &Shared, e: &KeptnEvent) -> Option<String> {
    let p = e.project().to_string();
    let raw = api::repo(state, move |repo| match repo.read(&p, Scope::Project, CONFIG_URI, None) {
        Ok((bytes, _)) => Ok(Some(bytes)),
        Err(err) if err.is_not_found() => Ok(None),
        Err(err) => Err(err),
    })
    .await
    .ok()
    .flatten()?;
    let doc: Value = yaml_serde::from_slice(&raw).ok()?;
    doc["sli-provider"].as_str().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

/// All answers are in: combine them and score.
async fn score(state: &Shared, e: &KeptnEvent, requests: &[&KeptnEvent], answers: &[&KeptnEvent]) -> Evaluation {
    let (mut start, mut end) = window(requests);
    let mut values: Vec<SliResult> = Vec::new();
    let (mut status, mut result, mut messages) = ("succeeded", "pass", Vec::new());
    for a in answers {
        let g = &a.data["get-sli"];
        // keptn reports the provider's window.
        if let (Some(s), Some(t)) = (g["start"].as_str().filter(|s| !s.is_empty()), g["end"].as_str()) {
            (start, end) = (s.to_string(), t.to_string());
        }
        for v in g["indicatorValues"].as_array().into_iter().flatten() {
            if let Ok(v) = serde_json::from_value::<SliResult>(v.clone()) {
                values.push(v);
            }
        }
        status = worse_status(status, a.status());
        result = worse_result(result, a.result());
        let values = g["indicatorValues"].as_array().map(Vec::as_slice).unwrap_or_default();
        let message = if matches!(a.result(), "fail" | "failed") {
            with_reasons(a.message(), values)
        } else {
            a.message().to_string()
        };
        if !message.is_empty() {
            messages.push(message);
        }
    }
    // keptn reads the SLO again at the answer's revision: a provider may have written it
    // (dynatrace-service's dashboard mode commits a generated slo.yaml before answering).
    let at = answers.iter().rev().map(|a| a.gitcommitid.as_str()).find(|c| !c.is_empty()).unwrap_or(&e.gitcommitid);
    let raw = match read_slo(state, e, at).await {
        Ok(Some(raw)) => raw,
        Ok(None) => return keptn_slo::without_slo(e.project(), &start, &end),
        Err(message) => return keptn_slo::errored(message, None, &start, &end),
    };
    let slo = match Slo::parse_lenient(&raw) {
        Ok(slo) => slo,
        Err(err) => return keptn_slo::errored(format!("error retrieving SLO file: {err}"), Some(&raw), &start, &end),
    };
    let candidates = match previous(state, e, &slo).await {
        Ok(c) => c,
        Err(message) => return keptn_slo::errored(message, Some(&raw), &start, &end),
    };
    let baseline = keptn_slo::select_baseline(&slo, &candidates);
    keptn_slo::from_sli_answer(&slo, status, result, &messages.join("; "), &values, &baseline, &start, &end)
}

/// A failed answer's message with the reasons its values give, once per reason: keptn's
/// "unable to retrieve metrics" alone does not say that the provider could not reach its source.
fn with_reasons(message: &str, values: &[Value]) -> String {
    let mut reasons: Vec<(&str, Vec<&str>)> = Vec::new();
    for v in values.iter().filter(|v| v["success"] == false) {
        let (metric, reason) = (v["metric"].as_str().unwrap_or(""), v["message"].as_str().unwrap_or(""));
        // A provider that already put the reason into its message is not repeated.
        if reason.is_empty() || message.contains(reason) {
            continue;
        }
        match reasons.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, metrics)) => metrics.push(metric),
            None => reasons.push((reason, vec![metric])),
        }
    }
    let mut parts: Vec<String> = Vec::from_iter((!message.is_empty()).then(|| message.to_string()));
    for (reason, metrics) in reasons {
        // A reason that names its SLI already (the HTTP provider's) is not prefixed again.
        let named = metrics.len() == 1 && reason.starts_with(&format!("{}: ", metrics[0]));
        parts.push(if named { reason.to_string() } else { format!("{}: {reason}", metrics.join(", ")) });
    }
    parts.join("; ")
}

fn worse_status<'a>(a: &'a str, b: &'a str) -> &'a str {
    let rank = |s: &str| match s {
        "aborted" => 2,
        "errored" => 1,
        _ => 0,
    };
    if rank(b) > rank(a) { b } else { a }
}

fn worse_result<'a>(a: &'a str, b: &'a str) -> &'a str {
    let rank = |s: &str| match s {
        "fail" | "failed" => 2,
        "warning" => 1,
        _ => 0,
    };
    if rank(b) > rank(a) { if b == "failed" { "fail" } else { b } } else { a }
}

/// Earlier `evaluation.finished` of the service, newest first, without invalidated ones and
/// with keptn's `include_result_with_score` applied, as many as the SLO compares with.
async fn previous(state: &Shared, e: &KeptnEvent, slo: &Slo) -> Result<Vec<Previous>, String> {
    let want = slo.comparison().results_wanted();
    let filter = slo.comparison().result_filter();
    let mut out = Vec::new();
    let mut q = EventQuery {
        project: Some(e.project().into()),
        stage: Some(e.stage().into()),
        service: Some(e.service().into()),
        ty: Some(EVALUATION_FINISHED.into()),
        exclude_triggered_by: Some(EVALUATION_INVALIDATED.into()),
        limit: 100,
        ..EventQuery::default()
    };
    loop {
        let (rows, total) = state
            .store
            .query_events(&q)
            .await
            .map_err(|err| format!("could not retrieve previous evaluation.finished events: {err}"))?;
        let n = rows.len() as i64;
        for row in rows {
            let result = row["data"]["result"].as_str().unwrap_or("");
            if filter.is_none_or(|allowed| allowed.contains(&result)) {
                out.push(Previous { id: row["id"].as_str().map(str::to_string), data: row["data"].clone() });
            }
            if out.len() >= want {
                return Ok(out);
            }
        }
        q.offset += n;
        if n == 0 || q.offset >= total {
            return Ok(out);
        }
    }
}

/// Runs the evaluation's next step again at `at` (the SLI timeout), once per evaluation.
fn arm(state: &Shared, timeout: Duration, armed: &Arc<Mutex<HashSet<String>>>, e: &KeptnEvent, at: i64) {
    if !armed.lock().expect("armed").insert(e.id.clone()) {
        return;
    }
    // Weak: a pending timer must not keep a stopping server's state (and its writer) alive.
    let (weak, armed, e) = (Arc::downgrade(state), armed.clone(), e.clone());
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis((at - now_ms()).max(0) as u64 + 10)).await;
        armed.lock().expect("armed").remove(&e.id);
        let Some(state) = weak.upgrade() else { return };
        for out in step(&state, timeout, &armed, &e).await {
            if let Err(err) = state.writer.ingest(out).await {
                tracing::error!(evaluation = %e.id, error = %err.message, "could not end a timed-out evaluation");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defined(entries: &[(&str, &[&str])]) -> BTreeMap<String, HashSet<String>> {
        entries.iter().map(|(p, s)| (p.to_string(), s.iter().map(|x| x.to_string()).collect())).collect()
    }

    #[test]
    fn each_sli_goes_to_the_provider_that_defines_it() {
        let slis: Vec<String> = ["rt", "errors", "availability", "throughput"].map(String::from).to_vec();
        let d = defined(&[("prometheus", &["rt", "errors"]), ("http", &["availability", "errors"])]);
        let g = assign(&slis, Some("prometheus"), &d).unwrap();
        assert_eq!(g["prometheus"], ["rt", "errors", "throughput"], "configured wins ties and takes the undefined");
        assert_eq!(g["http"], ["availability"]);
        let g = assign(&slis, None, &d).unwrap();
        assert_eq!(
            g["http"],
            ["errors", "availability", "throughput"],
            "without a configured one: the first that defines it; an SLI nobody defines to the first provider"
        );
        assert!(assign(&slis, None, &BTreeMap::new()).is_none(), "no provider at all");
    }

    #[test]
    fn a_failed_answer_says_why_its_values_failed() {
        let refused = "could not reach Prometheus at http://127.0.0.1:9: Connection refused";
        let values = [
            json!({ "metric": "rt", "value": 0, "success": false, "message": refused }),
            json!({ "metric": "errors", "value": 0, "success": false, "message": refused }),
            json!({ "metric": "availability", "value": 0, "success": false, "message": "availability: GET x failed" }),
            json!({ "metric": "ok", "value": 1, "success": true }),
        ];
        assert_eq!(
            with_reasons("unable to retrieve metrics", &values),
            format!("unable to retrieve metrics; rt, errors: {refused}; availability: GET x failed")
        );
        assert_eq!(with_reasons("prometheus down", &[]), "prometheus down");
        let said = format!("unable to retrieve metrics: {refused}");
        assert_eq!(with_reasons(&said, &values[..2]), said, "a reason the message gives is not repeated");
        assert_eq!(with_reasons("", &values[..1]), format!("rt: {refused}"));
    }

    #[test]
    fn combined_status_and_result_take_the_worst() {
        assert_eq!(worse_status("succeeded", "errored"), "errored");
        assert_eq!(worse_status("aborted", "errored"), "aborted");
        assert_eq!(worse_result("pass", "warning"), "warning");
        assert_eq!(worse_result("warning", "failed"), "fail");
        assert_eq!(worse_result("fail", "pass"), "fail");
    }
}
