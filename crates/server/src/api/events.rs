//! Event ingestion (`POST /api/v1/event`), the datastore reads, the pull API for integrations
//! and the evaluation trigger.

use super::paging::{Page, time_param};
use crate::body::JsonBody;
use crate::clock::now_ms;
use crate::error::{ApiError, ApiResult};
use crate::ingest::Ids;
use crate::state::Shared;
use crate::writer::parse_time;
use axum::Json;
use axum::extract::{Path, Query, State};
use keptn_engine::format_time;
use keptn_formats::event_type;
use keptn_formats::{KeptnEvent, duration};
use keptn_store::{EventCursor, EventField, EventPage, EventQuery, OpenTriggeredQuery};
use serde::Deserialize;
use serde_json::{Value, json};

pub use crate::ingest::API_SOURCE;

pub async fn post_event(
    State(state): State<Shared>,
    headers: axum::http::HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Json<Value>> {
    let ids = match headers.get(crate::ingest::IDEMPOTENCY_KEY) {
        Some(key) => Ids::Keep(
            key.to_str()
                .ok()
                .filter(|k| !k.is_empty())
                .ok_or_else(|| ApiError::bad_request("the Idempotency-Key header must be a non-empty ASCII string"))?
                .to_string(),
        ),
        None => Ids::Assign,
    };
    let context = crate::ingest::ingest_json(&state, body, ids).await?;
    Ok(Json(json!({ "keptnContext": context })))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DatastoreParams {
    project: Option<String>,
    stage: Option<String>,
    service: Option<String>,
    keptn_context: Option<String>,
    #[serde(rename = "type")]
    ty: Option<String>,
    #[serde(rename = "eventID")]
    event_id: Option<String>,
    source: Option<String>,
    from_time: Option<String>,
    before_time: Option<String>,
    root: Option<String>,
    page_size: Option<String>,
    next_page_key: Option<String>,
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.clone().filter(|s| !s.is_empty())
}

/// `totalCount` counts at most this many events from a page's start on (see docs/compatibility.md):
/// a page then costs the same at a million stored events as at a thousand.
const COUNT_CAP: i64 = 1000;

/// Where a datastore page starts: events before it (for `totalCount`) and the keyset position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PageKey {
    before: i64,
    after: Option<EventCursor>,
    /// Rows to skip after `after`: keptn's plain numeric keys (an offset), still accepted.
    skip: i64,
}

/// Our keys read `<events before>_<time_ms>_<seq>` (opaque to clients, as keptn's are); a plain
/// number is an offset as keptn's datastore made them; empty or "0" is the first page.
fn parse_page_key(key: Option<&str>) -> ApiResult<PageKey> {
    let invalid =
        |k: &str| ApiError::bad_request(format!("nextPageKey {k:?} is invalid; pass the value of a previous response"));
    let Some(k) = key.filter(|k| !k.is_empty()) else { return Ok(PageKey { before: 0, after: None, skip: 0 }) };
    let nums: Vec<i64> = k
        .split('_')
        .map(|n| n.parse::<i64>().ok().filter(|n| *n >= 0))
        .collect::<Option<_>>()
        .ok_or_else(|| invalid(k))?;
    match nums[..] {
        [offset] => Ok(PageKey { before: offset, after: None, skip: offset }),
        [before, time_ms, seq] => Ok(PageKey { before, after: Some(EventCursor { time_ms, seq }), skip: 0 }),
        _ => Err(invalid(k)),
    }
}

fn page_key_after(key: PageKey, page: &EventPage) -> String {
    match page.next {
        Some(c) => format!("{}_{}_{}", key.before + page.events.len() as i64, c.time_ms, c.seq),
        None => "0".into(),
    }
}

pub async fn datastore_events(State(state): State<Shared>, Query(p): Query<DatastoreParams>) -> ApiResult<Json<Value>> {
    let page = Page::parse(p.page_size.as_deref(), None, 100)?;
    let key = parse_page_key(p.next_page_key.as_deref())?;
    let q = EventQuery {
        project: nonempty(&p.project),
        stage: nonempty(&p.stage),
        service: nonempty(&p.service),
        context: nonempty(&p.keptn_context),
        ty: nonempty(&p.ty),
        event_id: nonempty(&p.event_id),
        source: nonempty(&p.source),
        from_ms: time_param("fromTime", p.from_time.as_deref())?,
        before_ms: time_param("beforeTime", p.before_time.as_deref())?,
        root: p.root.as_deref().is_some_and(|r| !r.is_empty()),
        after: key.after,
        offset: key.skip,
        limit: page.limit,
        ..EventQuery::default()
    };
    let found = state.store.page_events(&q, COUNT_CAP).await?;
    let next = page_key_after(key, &found);
    let total = key.before + found.remaining;
    Ok(Json(
        json!({ "events": found.events, "nextPageKey": next, "pageSize": found.events.len(), "totalCount": total }),
    ))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ByTypeParams {
    filter: Option<String>,
    exclude_invalidated: Option<String>,
    from_time: Option<String>,
    limit: Option<String>,
}

/// Rows read per round trip when clauses must be matched against the event JSON.
const SCAN_BATCH: i64 = 500;

const FILTER_HELP: &str = "use key:value or key:v1,v2 clauses joined by \" AND \", \
                           e.g. filter=data.project:sockshop AND data.stage:dev AND data.result:pass,warning";

/// Filter keys answered by an indexed column of the event log.
fn indexed_field(key: &str) -> Option<EventField> {
    Some(match key {
        "data.project" => EventField::Project,
        "data.stage" => EventField::Stage,
        "data.service" => EventField::Service,
        "shkeptncontext" => EventField::Context,
        "source" => EventField::Source,
        "id" => EventField::Id,
        "triggeredid" => EventField::TriggeredId,
        "type" => EventField::Type,
        _ => return None,
    })
}

/// A `filter` clause on any other key: a dotted path into the event and the accepted values.
struct JsonClause {
    pointer: String,
    values: Vec<String>,
}

impl JsonClause {
    /// Strings compare as they are, other JSON values as their JSON text.
    fn matches(&self, ev: &Value) -> bool {
        ev.pointer(&self.pointer)
            .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
            .is_some_and(|v| self.values.contains(&v))
    }
}

/// keptn's `filter` syntax: clauses `key:value` or `key:v1,v2` (any of the values) joined by
/// ` AND `. Indexed keys go into the store query, the others are matched against the JSON.
fn parse_filter(filter: &str, q: &mut EventQuery) -> ApiResult<Vec<JsonClause>> {
    let mut json_clauses = Vec::new();
    let mut scoped = false;
    for clause in filter.split(" AND ").map(str::trim).filter(|c| !c.is_empty()) {
        let (key, values) = clause
            .split_once(':')
            .ok_or_else(|| ApiError::bad_request(format!("filter clause {clause:?} has no value; {FILTER_HELP}")))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(ApiError::bad_request(format!("filter clause {clause:?} has no key; {FILTER_HELP}")));
        }
        let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).collect();
        if values.iter().any(String::is_empty) {
            return Err(ApiError::bad_request(format!("filter clause {clause:?} has an empty value; {FILTER_HELP}")));
        }
        match indexed_field(key) {
            Some(field) => {
                scoped |= matches!(field, EventField::Project | EventField::Context);
                q.any_of.push((field, values));
            }
            None => json_clauses.push(JsonClause { pointer: format!("/{}", key.replace('.', "/")), values }),
        }
    }
    if !scoped {
        return Err(ApiError::bad_request(format!(
            "filter must contain data.project:<project> or shkeptncontext:<keptnContext>; {FILTER_HELP}"
        )));
    }
    Ok(json_clauses)
}

fn bool_param(name: &str, v: Option<&str>) -> ApiResult<bool> {
    match v.map(str::to_ascii_lowercase).as_deref() {
        None | Some("" | "false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::bad_request(format!("{name} {:?} must be true or false", v.unwrap_or("")))),
    }
}

/// `GET /event/type/{eventType}?filter=data.project:p AND data.result:pass,warning` — lighthouse's
/// query for comparison evaluations. Newest first, at most `limit` events; `totalCount` counts
/// all matching events. Indexed clauses and `excludeInvalidated` are answered by the store; when
/// other clauses remain, the candidates are scanned in batches until all are matched.
pub async fn datastore_events_by_type(
    State(state): State<Shared>,
    Path(event_type): Path<String>,
    Query(p): Query<ByTypeParams>,
) -> ApiResult<Json<Value>> {
    let limit = match p.limit.as_deref().filter(|s| !s.is_empty()) {
        None => 20,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| ApiError::bad_request(format!("limit {s:?} must be a number from 1 to 100")))?,
    };
    let mut q = EventQuery { ty: Some(event_type), ..EventQuery::default() };
    q.from_ms = time_param("fromTime", p.from_time.as_deref())?;
    if bool_param("excludeInvalidated", p.exclude_invalidated.as_deref())? {
        q.exclude_triggered_by = Some(event_type::task("evaluation", "invalidated"));
    }
    let filter = p.filter.unwrap_or_default();
    if filter.trim().is_empty() {
        return Err(ApiError::bad_request(format!(
            "filter is required and must contain data.project:<project> or shkeptncontext:<keptnContext>; \
             {FILTER_HELP}"
        )));
    }
    let json_clauses = parse_filter(&filter, &mut q)?;
    let (events, total) = if json_clauses.is_empty() {
        q.limit = limit;
        state.store.query_events(&q).await?
    } else {
        let (mut events, mut total) = (Vec::new(), 0i64);
        state
            .store
            .scan_events(&q, SCAN_BATCH, |ev| {
                if json_clauses.iter().all(|c| c.matches(&ev)) {
                    total += 1;
                    if (events.len() as i64) < limit {
                        events.push(ev);
                    }
                }
                true
            })
            .await?;
        (events, total)
    };
    Ok(Json(json!({ "events": events, "nextPageKey": "0", "pageSize": events.len(), "totalCount": total })))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct OpenParams {
    project: Option<String>,
    stage: Option<String>,
    service: Option<String>,
    #[serde(rename = "eventID")]
    event_id: Option<String>,
    page_size: Option<String>,
    next_page_key: Option<String>,
}

/// Open `.triggered` events of one type: what keptn 1.x integrations in remote mode poll.
pub async fn open_triggered(
    State(state): State<Shared>,
    Path(event_type): Path<String>,
    Query(p): Query<OpenParams>,
) -> ApiResult<Json<Value>> {
    let page = Page::parse(p.page_size.as_deref(), p.next_page_key.as_deref(), 100)?;
    if let Some(project) = nonempty(&p.project)
        && state.catalog.read().expect("catalog").project(&project).is_none()
    {
        return Err(ApiError::not_found(format!("project {project:?} does not exist")));
    }
    let q = OpenTriggeredQuery {
        ty: event_type,
        project: nonempty(&p.project),
        stage: nonempty(&p.stage),
        service: nonempty(&p.service),
        event_id: nonempty(&p.event_id),
        now_ms: now_ms(),
        offset: page.offset,
        limit: page.limit,
    };
    let (events, total) = state.store.open_triggered(&q).await?;
    Ok(Json(
        json!({ "events": events, "nextPageKey": page.next_key(total), "pageSize": events.len(), "totalCount": total }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_keys() {
        let first = PageKey { before: 0, after: None, skip: 0 };
        assert_eq!(parse_page_key(None).unwrap(), first);
        assert_eq!(parse_page_key(Some("0")).unwrap(), first);
        assert_eq!(parse_page_key(Some("40")).unwrap(), PageKey { before: 40, after: None, skip: 40 });
        let cursor = EventCursor { time_ms: 1700000000000, seq: 17 };
        assert_eq!(
            parse_page_key(Some("20_1700000000000_17")).unwrap(),
            PageKey { before: 20, after: Some(cursor), skip: 0 }
        );
        for bad in ["x", "-1", "1_2", "1_2_3_4", "1__2", "1_2_x"] {
            assert_eq!(parse_page_key(Some(bad)).unwrap_err().status, 400, "{bad}");
        }
        let page = EventPage { events: vec![json!({}); 20], next: Some(cursor), remaining: 1000 };
        assert_eq!(page_key_after(first, &page), "20_1700000000000_17");
        let last = EventPage { next: None, ..page };
        assert_eq!(page_key_after(first, &last), "0");
    }
}

#[derive(Deserialize, Default)]
pub struct EvaluationBody {
    #[serde(default)]
    start: String,
    #[serde(default)]
    end: String,
    #[serde(default)]
    timeframe: String,
    #[serde(default)]
    labels: Option<Value>,
    #[serde(default)]
    gitcommitid: String,
}

/// keptn's time formats for evaluation windows: RFC 3339, or `2006-01-02T15:04:05` (UTC).
fn evaluation_time(name: &str, s: &str) -> ApiResult<String> {
    if parse_time(s).is_some() {
        return Ok(s.to_string());
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
        .map(|t| format_time(t.and_utc().timestamp_millis()))
        .map_err(|_| ApiError::bad_request(format!("{name} {s:?} is not a time; use e.g. 2023-12-01T10:00:00.000Z")))
}

/// `POST …/stage/{s}/service/{svc}/evaluation`: triggers the built-in evaluation sequence.
pub async fn trigger_evaluation(
    State(state): State<Shared>,
    Path((project, stage, service)): Path<(String, String, String)>,
    raw: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let body: EvaluationBody = if raw.iter().all(u8::is_ascii_whitespace) {
        EvaluationBody::default()
    } else {
        crate::body::json_object(&raw).map_err(|e| {
            ApiError::bad_request(format!("request body is not a valid evaluation request: {}", e.message))
        })?
    };
    state.catalog.read().expect("catalog").check_scope(&project, &stage, &service).map_err(ApiError::not_found)?;
    if !body.end.is_empty() && !body.timeframe.is_empty() {
        return Err(ApiError::bad_request("end and timeframe are mutually exclusive; send one of them"));
    }
    let mut evaluation = serde_json::Map::new();
    if !body.timeframe.is_empty() {
        duration::parse(&body.timeframe).map_err(|e| ApiError::bad_request(format!("timeframe: {e}")))?;
        evaluation.insert("timeframe".into(), json!(body.timeframe));
    }
    if !body.start.is_empty() {
        evaluation.insert("start".into(), json!(evaluation_time("start", &body.start)?));
    }
    if !body.end.is_empty() {
        if body.start.is_empty() {
            return Err(ApiError::bad_request("end needs a start"));
        }
        evaluation.insert("end".into(), json!(evaluation_time("end", &body.end)?));
    }
    if body.end.is_empty() && body.timeframe.is_empty() {
        evaluation.insert("timeframe".into(), json!("5m"));
    }
    let mut data = json!({ "project": project, "stage": stage, "service": service, "evaluation": evaluation });
    if let Some(labels) = body.labels {
        data["labels"] = labels;
    }
    let context = uuid::Uuid::now_v7().to_string();
    let mut event = KeptnEvent::new(
        uuid::Uuid::now_v7().to_string(),
        event_type::sequence(&stage, "evaluation", "triggered"),
        context.clone(),
        format_time(now_ms()),
        data,
    );
    event.source = API_SOURCE.into();
    event.gitcommitid = body.gitcommitid;
    crate::config_sync::refresh_before_sequence(&state, &project).await;
    state.writer.ingest(event).await?;
    Ok(Json(json!({ "keptnContext": context })))
}
