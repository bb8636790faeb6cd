//! keptn's lighthouse-service (reference §1): turns `evaluation.triggered` into
//! `evaluation.started`, asks the SLI provider(s) with `get-sli.triggered`, and scores their
//! `get-sli.finished` against `slo.yaml` and earlier evaluations into `evaluation.finished`.
//!
//! Stateless between events: each step reads the evaluation's events through the context and
//! decides what is missing, so a restart, a duplicate or a late answer cannot produce a second
//! result. The answers' ids are derived from the evaluation (see `keptn_integration::answer`),
//! so even two concurrent steps emit the same events and the control plane keeps one. Fixes
//! over keptn: every `get-sli.finished` is matched to its own request by `triggeredid` (two
//! providers, one evaluation), and a provider that never answers ends the evaluation after the
//! SLI timeout. What it reads at a commit (slo.yaml, sli.yaml, listings) it keeps in memory: a
//! commit's content never changes.

mod timeframe;

use crate::reads::{Reads, levels, place, sli_providers, split};
use crate::sli::config::merge_indicators;
use crate::{now_ms, parse_time, send_all};
use keptn_formats::KeptnEvent;
use keptn_integration::{Context, ContextResult, EventQuery, Integration, answer, common_data};
use keptn_slo::{Aggregate, Evaluation, MAX_COMPARISON_RESULTS, Previous, SliResult, Slo};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const NAME: &str = "lighthouse-service";
const EVALUATION_TRIGGERED: &str = "sh.keptn.event.evaluation.triggered";
const EVALUATION_STARTED: &str = "sh.keptn.event.evaluation.started";
const EVALUATION_FINISHED: &str = "sh.keptn.event.evaluation.finished";
const GET_SLI_TRIGGERED: &str = "sh.keptn.event.get-sli.triggered";
const GET_SLI_FINISHED: &str = "sh.keptn.event.get-sli.finished";
const MONITORING_CONFIGURE: &str = "sh.keptn.event.monitoring.configure";
/// Where `keptn configure monitoring` stores the project's SLI provider (keptn: a ConfigMap).
pub const CONFIG_URI: &str = "lighthouse/config.yaml";
/// Page size when previous evaluations are filtered by result (keptn's datastore pages).
const PAGE: usize = 100;
/// A timer's step that could not reach the control plane runs again this much later.
const TIMER_RETRY_MS: i64 = 5_000;

/// The lighthouse. Its SLI timeout timers hold the context they were armed with weakly (a
/// pending timer must not keep a stopping server alive): the runner should hand every event the
/// same long-lived `Arc<dyn Context>`, not a new one per event, or the timers find it gone.
pub struct Lighthouse {
    core: Arc<Core>,
}

/// What the steps of all evaluations share; the timers hold it too.
struct Core {
    sli_timeout: Duration,
    /// Evaluations with a timer armed, so a burst of events arms one. An entry is removed when
    /// the timer fires or when this process ended the evaluation (then the timer has nothing to do).
    armed: Mutex<HashSet<String>>,
    /// slo.yaml, sli.yaml and listings read at a commit.
    reads: Reads,
}

impl Core {
    fn armed(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.armed.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Lighthouse {
    pub fn new(sli_timeout: Duration) -> Lighthouse {
        Lighthouse { core: Arc::new(Core { sli_timeout, armed: Mutex::default(), reads: Reads::default() }) }
    }
}

#[async_trait::async_trait]
impl Integration for Lighthouse {
    fn name(&self) -> &'static str {
        NAME
    }

    fn subscriptions(&self) -> &'static [&'static str] {
        &[EVALUATION_TRIGGERED, GET_SLI_FINISHED, MONITORING_CONFIGURE]
    }

    async fn handle(&self, event: Arc<KeptnEvent>, ctx: Arc<dyn Context>) -> ContextResult<()> {
        match event.ty.as_str() {
            EVALUATION_TRIGGERED => {
                let context = context_of(ctx.as_ref(), &event).await?;
                step(&self.core, &ctx, &event, &context).await
            }
            GET_SLI_FINISHED => {
                // One query of the context answers which request and evaluation this answer
                // belongs to, and is what the step decides on.
                let mut context = context_of(ctx.as_ref(), &event).await?;
                if !context.iter().any(|e| e.id == event.id) {
                    context.push(event.as_ref().clone());
                }
                match evaluation_of(ctx.as_ref(), &event, &context).await? {
                    Some(triggered) => step(&self.core, &ctx, &triggered, &context).await,
                    None => Ok(()),
                }
            }
            MONITORING_CONFIGURE => select_provider(ctx.as_ref(), &event).await,
            _ => Ok(()),
        }
    }
}

/// Stores `data.type` as the project's SLI provider (keptn sends no answer for this event).
async fn select_provider(ctx: &dyn Context, event: &KeptnEvent) -> ContextResult<()> {
    let provider = event.data["type"].as_str().unwrap_or_default().to_string();
    let project = event.project();
    if provider.is_empty() || project.is_empty() {
        return Ok(());
    }
    let content = format!(
        "# Written by `keptn configure monitoring`: the project's default SLI provider.\nsli-provider: {provider}\n"
    );
    let at = place(project, "", "", "", "");
    match ctx.put_resources(&at, vec![(CONFIG_URI.into(), content.into_bytes())], "Configure monitoring").await {
        Ok(()) => Ok(()),
        Err(e) if e.is_transient() => Err(e),
        Err(e) => {
            tracing::warn!(project = %project, error = %e, "could not store the SLI provider");
            Ok(())
        }
    }
}

/// All events of the event's keptn context, oldest first.
async fn context_of(ctx: &dyn Context, e: &KeptnEvent) -> ContextResult<Vec<KeptnEvent>> {
    ctx.events(EventQuery { keptn_context: Some(e.shkeptncontext.clone()), ..EventQuery::default() }).await
}

/// The event of an id: from the context already read, else from the datastore (an answer
/// sent with another context than its request's).
async fn by_id(ctx: &dyn Context, id: &str, context: &[KeptnEvent]) -> ContextResult<Option<KeptnEvent>> {
    if id.is_empty() {
        return Ok(None);
    }
    if let Some(found) = context.iter().find(|e| e.id == id) {
        return Ok(Some(found.clone()));
    }
    let q = EventQuery { event_id: Some(id.into()), limit: 1, ..EventQuery::default() };
    Ok(ctx.events(q).await?.pop())
}

/// The `evaluation.triggered` a `get-sli.finished` belongs to: its request's `triggeredid`.
async fn evaluation_of(
    ctx: &dyn Context,
    finished: &KeptnEvent,
    context: &[KeptnEvent],
) -> ContextResult<Option<KeptnEvent>> {
    let Some(request) = by_id(ctx, &finished.triggeredid, context).await? else { return Ok(None) };
    if request.ty != GET_SLI_TRIGGERED || request.source != NAME {
        return Ok(None); // another lighthouse's request, or not a request at all
    }
    Ok(by_id(ctx, &request.triggeredid, context).await?.filter(|e| e.ty == EVALUATION_TRIGGERED))
}

/// The next events of one evaluation, decided from its context's events, and sent.
async fn step(core: &Arc<Core>, ctx: &Arc<dyn Context>, e: &KeptnEvent, context: &[KeptnEvent]) -> ContextResult<()> {
    let (out, finishes) = next(core, ctx, e, context).await?;
    if send_all(NAME, ctx.as_ref(), e, out).await? && finishes {
        core.armed().remove(&e.id);
    }
    Ok(())
}

/// The events to send, and whether they end the evaluation.
async fn next(
    core: &Arc<Core>,
    ctx: &Arc<dyn Context>,
    e: &KeptnEvent,
    context: &[KeptnEvent],
) -> ContextResult<(Vec<KeptnEvent>, bool)> {
    let timeout = core.sli_timeout;
    let ours: Vec<&KeptnEvent> = context.iter().filter(|x| x.triggeredid == e.id).collect();
    if ours.iter().any(|x| x.ty == EVALUATION_FINISHED) {
        return Ok((Vec::new(), false));
    }
    let mut out = Vec::new();
    if !ours.iter().any(|x| x.ty == EVALUATION_STARTED && x.source == NAME) {
        let mut data = common_data(e);
        data["status"] = json!("succeeded");
        out.push(answer(NAME, e, EVALUATION_STARTED.into(), "", data));
    }
    let requests: Vec<&KeptnEvent> = ours.iter().copied().filter(|x| x.ty == GET_SLI_TRIGGERED).collect();
    let finished = if requests.is_empty() {
        match plan(&core.reads, ctx.as_ref(), e).await? {
            Plan::Finish(evaluation) => evaluation,
            Plan::Ask(asks) => {
                out.extend(asks);
                arm(core, ctx, e, now_ms() + timeout.as_millis() as i64);
                return Ok((out, false));
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
                arm(core, ctx, e, deadline);
                return Ok((out, false));
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
            score(&core.reads, ctx.as_ref(), e, &requests, &answers).await?
        }
    };
    let mut data = common_data(e);
    merge(&mut data, finished.to_data());
    out.push(answer(NAME, e, EVALUATION_FINISHED.into(), "", data));
    Ok((out, true))
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
async fn plan(reads: &Reads, ctx: &dyn Context, e: &KeptnEvent) -> ContextResult<Plan> {
    let tf = match timeframe::resolve(&e.data, now_ms()) {
        Ok(tf) => tf,
        Err(message) => return Ok(Plan::Finish(keptn_slo::errored(message, None, "", ""))),
    };
    let (project, stage, service) = (e.project(), e.stage(), e.service());
    let raw = match read_slo(reads, ctx, e, &e.gitcommitid).await? {
        Ok(Some(raw)) => raw,
        Ok(None) => return Ok(Plan::Finish(keptn_slo::without_slo(project, &tf.start, &tf.end))),
        Err(message) => return Ok(Plan::Finish(keptn_slo::errored(message, None, &tf.start, &tf.end))),
    };
    let slo = match Slo::parse_lenient(&raw) {
        Ok(slo) => slo,
        Err(err) => {
            // keptn's message, with the reason it lacked.
            let message = format!("{}: {err}", keptn_slo::unparsable_slo_message(project, stage, service));
            return Ok(Plan::Finish(keptn_slo::errored(message, Some(&raw), &tf.start, &tf.end)));
        }
    };
    let indicators = slo.indicators();
    if indicators.is_empty() {
        return Ok(Plan::Finish(keptn_slo::evaluate(&slo, &[], &[], &tf.start, &tf.end)));
    }
    let configured = configured_provider(ctx, e).await?;
    let mut defined: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    let providers = match split(providers_with_sli(reads, ctx, e).await)? {
        Ok(providers) => providers,
        Err(message) => return Ok(Plan::Finish(keptn_slo::errored(message, Some(&raw), &tf.start, &tf.end))),
    };
    for (name, places) in providers {
        let mut files = Vec::new();
        for at in &places {
            match split(reads.resource(ctx, at).await)? {
                Ok(Some(bytes)) => files.push(bytes),
                Ok(None) => {}
                Err(message) => {
                    let message = format!("{name}/sli.yaml: {message}");
                    return Ok(Plan::Finish(keptn_slo::errored(message, Some(&raw), &tf.start, &tf.end)));
                }
            }
        }
        match merge_indicators(&files.iter().map(|f| f.as_slice()).collect::<Vec<_>>()) {
            Ok(map) => {
                defined.insert(name, map.into_keys().collect());
            }
            Err(message) => {
                let message = format!("{name}/sli.yaml: {message}");
                return Ok(Plan::Finish(keptn_slo::errored(message, Some(&raw), &tf.start, &tf.end)));
            }
        }
    }
    let Some(groups) = assign(&indicators, configured.as_deref(), &defined) else {
        return Ok(Plan::Finish(keptn_slo::without_sli_provider(project, &tf.start, &tf.end)));
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
            // One request per provider: the id names the provider too.
            answer(NAME, e, GET_SLI_TRIGGERED.into(), &provider, data)
        })
        .collect();
    Ok(Plan::Ask(asks))
}

/// Providers with an `sli.yaml` at some level (the `x` of every `x/sli.yaml`), sorted, each with
/// the levels (lowest first) that have one. The listings say where the files are, so only
/// those are read.
async fn providers_with_sli(
    reads: &Reads,
    ctx: &dyn Context,
    e: &KeptnEvent,
) -> ContextResult<BTreeMap<String, Vec<keptn_integration::ResourceAt>>> {
    let mut out: BTreeMap<String, Vec<keptn_integration::ResourceAt>> = BTreeMap::new();
    for level in levels(e.project(), e.stage(), e.service(), "", &e.gitcommitid) {
        let Some(uris) = reads.resources(ctx, &level).await? else { continue };
        for name in sli_providers(&uris) {
            let at = keptn_integration::ResourceAt { uri: format!("{name}/sli.yaml"), ..level.clone() };
            let places = out.entry(name.to_string()).or_default();
            if !places.contains(&at) {
                places.push(at);
            }
        }
    }
    Ok(out)
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
async fn read_slo(
    reads: &Reads,
    ctx: &dyn Context,
    e: &KeptnEvent,
    at: &str,
) -> ContextResult<Result<Option<Arc<Vec<u8>>>, String>> {
    let place = place(e.project(), e.stage(), e.service(), "slo.yaml", at);
    Ok(split(reads.resource(ctx, &place).await)?.map_err(|message| format!("error retrieving SLO file: {message}")))
}

/// The project's provider from `lighthouse/config.yaml` (`sli-provider`), at the head: the
/// provider chosen now counts, not the one of the evaluation's commit.
async fn configured_provider(ctx: &dyn Context, e: &KeptnEvent) -> ContextResult<Option<String>> {
    let at = place(e.project(), "", "", CONFIG_URI, "");
    let raw = match ctx.resource(&at).await {
        Ok(Some(raw)) => raw,
        Ok(None) => return Ok(None),
        Err(err) if err.is_transient() => return Err(err),
        Err(_) => return Ok(None),
    };
    let Ok(doc) = yaml_serde::from_slice::<Value>(&raw) else { return Ok(None) };
    Ok(doc["sli-provider"].as_str().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string))
}

/// All answers are in: combine them and score.
async fn score(
    reads: &Reads,
    ctx: &dyn Context,
    e: &KeptnEvent,
    requests: &[&KeptnEvent],
    answers: &[&KeptnEvent],
) -> ContextResult<Evaluation> {
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
    // At the evaluation's own commit this is the file the plan read, from the cache.
    let at = answers.iter().rev().map(|a| a.gitcommitid.as_str()).find(|c| !c.is_empty()).unwrap_or(&e.gitcommitid);
    let raw = match read_slo(reads, ctx, e, at).await? {
        Ok(Some(raw)) => raw,
        Ok(None) => return Ok(keptn_slo::without_slo(e.project(), &start, &end)),
        Err(message) => return Ok(keptn_slo::errored(message, None, &start, &end)),
    };
    let slo = match Slo::parse_lenient(&raw) {
        Ok(slo) => slo,
        Err(err) => {
            return Ok(keptn_slo::errored(format!("error retrieving SLO file: {err}"), Some(&raw), &start, &end));
        }
    };
    let candidates = if uses_baseline(&slo, status) {
        match previous(ctx, e, &slo).await? {
            Ok(c) => c,
            Err(message) => return Ok(keptn_slo::errored(message, Some(&raw), &start, &end)),
        }
    } else {
        Vec::new()
    };
    let baseline = keptn_slo::select_baseline(&slo, &candidates);
    Ok(keptn_slo::from_sli_answer(&slo, status, result, &messages.join("; "), &values, &baseline, &start, &end))
}

/// Whether scoring looks at previous evaluations at all: not for an aborted or errored answer
/// (`from_sli_answer` reports it without scoring), nor for a comparison keptn_slo refuses before
/// scoring (an unknown aggregate function, a number of results outside 1..=100).
fn uses_baseline(slo: &Slo, status: &str) -> bool {
    let comparison = slo.comparison();
    !matches!(status, "aborted" | "errored")
        && !matches!(comparison.aggregate_function, Aggregate::Unknown(_))
        && (1..=MAX_COMPARISON_RESULTS).contains(&comparison.results_wanted())
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
async fn previous(ctx: &dyn Context, e: &KeptnEvent, slo: &Slo) -> ContextResult<Result<Vec<Previous>, String>> {
    let want = slo.comparison().results_wanted();
    let filter = slo.comparison().result_filter();
    // Without a result filter the newest `want` are the ones: no need to read a full page.
    let page = if filter.is_none() { want.clamp(1, PAGE) } else { PAGE };
    let mut out = Vec::new();
    let mut q = EventQuery {
        project: Some(e.project().into()),
        stage: Some(e.stage().into()),
        service: Some(e.service().into()),
        ty: Some(EVALUATION_FINISHED.into()),
        exclude_invalidated: true,
        newest_first: true,
        limit: page,
        ..EventQuery::default()
    };
    loop {
        let rows = match split(ctx.events(q.clone()).await)? {
            Ok(rows) => rows,
            Err(err) => return Ok(Err(format!("could not retrieve previous evaluation.finished events: {err}"))),
        };
        let n = rows.len();
        for row in rows {
            let result = row.data["result"].as_str().unwrap_or("");
            if filter.is_none_or(|allowed| allowed.contains(&result)) {
                out.push(Previous { id: Some(row.id), data: row.data });
            }
            if out.len() >= want {
                return Ok(Ok(out));
            }
        }
        q.offset += n;
        if n < page {
            return Ok(Ok(out));
        }
    }
}

/// Runs the evaluation's next step again at `at` (the SLI timeout), once per evaluation.
fn arm(core: &Arc<Core>, ctx: &Arc<dyn Context>, e: &KeptnEvent, at: i64) {
    if !core.armed().insert(e.id.clone()) {
        return;
    }
    // Weak: a pending timer must not keep a stopping server's context (and its writer) alive.
    let (weak, core, e) = (Arc::downgrade(ctx), core.clone(), e.clone());
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis((at - now_ms()).max(0) as u64 + 10)).await;
        if !core.armed().remove(&e.id) {
            return; // this process ended the evaluation meanwhile
        }
        let Some(ctx) = weak.upgrade() else { return };
        let result = match context_of(ctx.as_ref(), &e).await {
            Ok(context) => step(&core, &ctx, &e, &context).await,
            Err(err) => Err(err),
        };
        match result {
            Ok(()) => {}
            Err(err) if err.is_transient() => {
                tracing::warn!(evaluation = %e.id, error = %err, "could not step a timed-out evaluation; retrying");
                arm(&core, &ctx, &e, now_ms() + TIMER_RETRY_MS);
            }
            Err(err) => tracing::error!(evaluation = %e.id, error = %err, "could not end a timed-out evaluation"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Fake;

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

    const SLO: &str =
        "objectives:\n  - sli: rt\n    pass: [ { criteria: [\"<300\"] } ]\ntotal_score: { pass: \"90%\" }\n";

    /// A project with an SLO for dev/carts and a Prometheus sli.yaml at project level.
    fn configured() -> Arc<Fake> {
        let ctx = Fake::new();
        ctx.file("p", Some("dev"), Some("carts"), "slo.yaml", SLO);
        ctx.file("p", None, None, "prometheus/sli.yaml", "indicators:\n  rt: histogram_quantile(0.95, x)\n");
        ctx
    }

    /// An `evaluation.triggered` as the control plane stored it.
    fn triggered(ctx: &Fake, id: &str) -> Arc<KeptnEvent> {
        let data = json!({ "project": "p", "stage": "dev", "service": "carts", "labels": { "build": "1" },
                           "evaluation": { "timeframe": "5m" } });
        let mut e = KeptnEvent::new(id.into(), EVALUATION_TRIGGERED.into(), format!("ctx-{id}"), "".into(), data);
        e.gitcommitid = "c1".into();
        ctx.store(e.clone());
        Arc::new(e)
    }

    /// The provider's answer to a request, stored as the control plane would.
    fn answered(ctx: &Fake, request: &KeptnEvent, rt: f64) -> Arc<KeptnEvent> {
        let mut data = common_data(request);
        data["status"] = json!("succeeded");
        data["result"] = json!("pass");
        data["get-sli"] = json!({ "start": request.data["get-sli"]["start"], "end": request.data["get-sli"]["end"],
                                  "indicatorValues": [{ "metric": "rt", "value": rt, "success": true }] });
        let mut finished = answer("prometheus-sli-provider", request, GET_SLI_FINISHED.into(), "", data);
        finished.time = keptn_engine::format_time(now_ms());
        ctx.store(finished.clone());
        Arc::new(finished)
    }

    fn of_type<'a>(events: &'a [KeptnEvent], ty: &str) -> Vec<&'a KeptnEvent> {
        events.iter().filter(|e| e.ty == ty).collect()
    }

    #[tokio::test]
    async fn an_evaluation_asks_the_provider_and_scores_its_answer() {
        let (ctx, lighthouse) = (configured(), Lighthouse::new(Duration::from_secs(60)));
        let e = triggered(&ctx, "e1");
        lighthouse.handle(e.clone(), ctx.clone()).await.unwrap();
        let sent = ctx.sent();
        let types: Vec<&str> = sent.iter().map(|x| x.ty.as_str()).collect();
        assert_eq!(types, [EVALUATION_STARTED, GET_SLI_TRIGGERED]);
        let request = &sent[1];
        assert_eq!(request.id, answer(NAME, &e, GET_SLI_TRIGGERED.into(), "prometheus", json!({})).id);
        assert_eq!((request.triggeredid.as_str(), request.gitcommitid.as_str()), ("e1", "c1"));
        assert_eq!(request.data["get-sli"]["sliProvider"], "prometheus");
        assert_eq!(request.data["get-sli"]["indicators"], json!(["rt"]));
        assert_eq!(request.data["labels"], json!({ "build": "1" }));

        let finished = answered(&ctx, request, 120.0);
        let queries_before = ctx.queries().len();
        lighthouse.handle(finished.clone(), ctx.clone()).await.unwrap();
        let sent = ctx.sent();
        let done = of_type(&sent, EVALUATION_FINISHED);
        assert_eq!(done.len(), 1, "{sent:?}");
        let d = &done[0].data;
        assert_eq!((d["result"].as_str(), d["status"].as_str()), (Some("pass"), Some("succeeded")), "{d:#}");
        assert_eq!(d["evaluation"]["score"].as_f64(), Some(100.0), "{d:#}");
        assert_eq!(d["evaluation"]["indicatorResults"][0]["value"]["value"].as_f64(), Some(120.0));
        assert_eq!(done[0].id, answer(NAME, &e, EVALUATION_FINISHED.into(), "", json!({})).id);
        assert_eq!(done[0].triggeredid, "e1");
        // The answer's step: one query of the context, one of the previous evaluations.
        let queries = ctx.queries()[queries_before..].to_vec();
        assert_eq!(queries.len(), 2, "{queries:?}");
        assert_eq!(queries[0].keptn_context.as_deref(), Some("ctx-e1"));
        assert!(queries[1].exclude_invalidated && queries[1].newest_first, "{queries:?}");

        // Duplicate deliveries (a redelivery, a restart) change nothing.
        lighthouse.handle(finished, ctx.clone()).await.unwrap();
        lighthouse.handle(e, ctx.clone()).await.unwrap();
        Lighthouse::new(Duration::from_secs(60)).handle(triggered(&ctx, "e1"), ctx.clone()).await.unwrap();
        assert_eq!(ctx.sent().len(), sent.len(), "{:?}", ctx.sent());
    }

    #[tokio::test]
    async fn the_next_evaluation_compares_with_the_previous_and_reuses_what_was_read_at_its_commit() {
        let (ctx, lighthouse) = (configured(), Lighthouse::new(Duration::from_secs(60)));
        let mut first = None;
        for id in ["e1", "e2"] {
            let reads = ctx.reads();
            let e = triggered(&ctx, id);
            lighthouse.handle(e.clone(), ctx.clone()).await.unwrap();
            let request = ctx.sent().into_iter().rfind(|x| x.ty == GET_SLI_TRIGGERED && x.triggeredid == id).unwrap();
            lighthouse.handle(answered(&ctx, &request, 100.0), ctx.clone()).await.unwrap();
            let done = ctx.sent().into_iter().rfind(|x| x.ty == EVALUATION_FINISHED).unwrap();
            assert_eq!(done.triggeredid, id);
            match &first {
                None => {
                    assert!(done.data["evaluation"].get("comparedEvents").is_none(), "{:#}", done.data);
                    first = Some(done.id.clone());
                }
                Some(first) => {
                    assert_eq!(done.data["evaluation"]["comparedEvents"], json!([first]), "{:#}", done.data);
                    // At the same commit only lighthouse/config.yaml (read at the head) is read again.
                    assert_eq!(ctx.reads() - reads, 1);
                }
            }
        }
    }

    #[tokio::test]
    async fn a_provider_that_never_answers_ends_the_evaluation_after_the_timeout() {
        let (ctx, lighthouse) = (configured(), Lighthouse::new(Duration::from_millis(300)));
        let e = triggered(&ctx, "e1");
        lighthouse.handle(e.clone(), ctx.clone()).await.unwrap();
        lighthouse.handle(e, ctx.clone()).await.unwrap(); // a duplicate arms no second timer
        assert!(of_type(&ctx.sent(), EVALUATION_FINISHED).is_empty());
        tokio::time::sleep(Duration::from_millis(800)).await;
        let sent = ctx.sent();
        let done = of_type(&sent, EVALUATION_FINISHED);
        assert_eq!(done.len(), 1, "{sent:?}");
        let d = &done[0].data;
        assert_eq!((d["status"].as_str(), d["result"].as_str()), (Some("errored"), Some("fail")), "{d:#}");
        let message = d["message"].as_str().unwrap();
        assert!(message.contains("no answer from SLI provider prometheus within 0s"), "{message}");
        assert!(lighthouse.core.armed().is_empty());
    }

    #[tokio::test]
    async fn configure_monitoring_stores_the_provider_the_next_evaluation_asks() {
        let ctx = Fake::new();
        ctx.file("p", Some("dev"), Some("carts"), "slo.yaml", SLO);
        let lighthouse = Lighthouse::new(Duration::from_secs(60));
        let data = json!({ "type": "dynatrace", "project": "p", "service": "carts" });
        let configure = KeptnEvent::new("m1".into(), MONITORING_CONFIGURE.into(), "cm".into(), "".into(), data);
        lighthouse.handle(Arc::new(configure), ctx.clone()).await.unwrap();
        let commits = ctx.commits();
        assert_eq!(commits.len(), 1);
        let (place, files, message) = &commits[0];
        assert_eq!(place, &("p".to_string(), None, None));
        assert_eq!(message, "Configure monitoring");
        assert_eq!(files[0].0, CONFIG_URI);
        assert!(String::from_utf8_lossy(&files[0].1).contains("sli-provider: dynatrace"));
        assert!(ctx.sent().is_empty(), "keptn sends no answer to monitoring.configure");

        lighthouse.handle(triggered(&ctx, "e1"), ctx.clone()).await.unwrap();
        let sent = ctx.sent();
        let ask = of_type(&sent, GET_SLI_TRIGGERED);
        assert_eq!(ask.len(), 1, "{sent:?}");
        assert_eq!(ask[0].data["get-sli"]["sliProvider"], "dynatrace");
    }

    #[tokio::test]
    async fn without_an_slo_the_evaluation_passes_at_once() {
        let (ctx, lighthouse) = (Fake::new(), Lighthouse::new(Duration::from_secs(60)));
        ctx.place("p", Some("dev"), Some("carts"));
        lighthouse.handle(triggered(&ctx, "e1"), ctx.clone()).await.unwrap();
        let sent = ctx.sent();
        let types: Vec<&str> = sent.iter().map(|x| x.ty.as_str()).collect();
        assert_eq!(types, [EVALUATION_STARTED, EVALUATION_FINISHED]);
        assert!(sent[1].data["message"].as_str().unwrap().contains("no SLO file configured for project p"));
    }

    #[tokio::test]
    async fn an_unavailable_control_plane_is_returned_for_a_retry() {
        let (ctx, lighthouse) = (configured(), Lighthouse::new(Duration::from_secs(60)));
        ctx.fail_sends(keptn_integration::ContextError::Unavailable("restarting".into()));
        let e = triggered(&ctx, "e1");
        assert!(lighthouse.handle(e.clone(), ctx.clone()).await.unwrap_err().is_transient());
        ctx.fail_sends(None);
        lighthouse.handle(e, ctx.clone()).await.unwrap();
        assert_eq!(ctx.sent().len(), 2, "the retry sends started and the request");
    }
}
