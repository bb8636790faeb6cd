//! Sequence state view, sequence executions and sequence control (pause / resume / abort).

use super::Shared;
use super::paging::Page;
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::views;
use crate::writer::parse_time;
use axum::Json;
use axum::extract::{Path, Query, State};
use keptn_engine::Control;
use keptn_store::{ContextQuery, ExecutionQuery};
use serde::Deserialize;
use serde_json::{Value, json};

fn require_project(state: &Shared, project: &str) -> ApiResult<()> {
    match state.catalog.read().expect("catalog").project(project) {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found(format!("project {project:?} does not exist"))),
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct StateParams {
    name: Option<String>,
    state: Option<String>,
    from_time: Option<String>,
    before_time: Option<String>,
    keptn_context: Option<String>,
    page_size: Option<String>,
    next_page_key: Option<String>,
}

fn opt_time(name: &str, v: &Option<String>) -> ApiResult<Option<i64>> {
    match v.as_deref().filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => parse_time(s)
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("{name} {s:?} is not an ISO 8601 time"))),
    }
}

pub async fn states(
    State(state): State<Shared>,
    Path(project): Path<String>,
    Query(p): Query<StateParams>,
) -> ApiResult<Json<Value>> {
    require_project(&state, &project)?;
    let page = Page::parse(p.page_size.as_deref(), p.next_page_key.as_deref(), 100)?;
    let contexts: Vec<String> = p
        .keptn_context
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect();
    let q = ContextQuery {
        project: project.clone(),
        name: p.name.clone().filter(|s| !s.is_empty()),
        from_ms: opt_time("fromTime", &p.from_time)?,
        before_ms: opt_time("beforeTime", &p.before_time)?,
        contexts,
        offset: page.offset,
        limit: page.limit,
    };
    let (page_contexts, total) = state.store.contexts_page(&q).await?;
    let execs = state.store.executions_of_contexts(&project, &page_contexts).await?;
    let mut docs = Vec::new();
    for ctx in &page_contexts {
        let of_ctx: Vec<_> = execs.iter().filter(|e| &e.context == ctx).collect();
        if let Some(doc) = views::sequence_state(of_ctx)
            && p.state.as_deref().is_none_or(|s| s.is_empty() || doc["state"] == s)
        {
            docs.push(doc);
        }
    }
    Ok(Json(
        json!({ "states": docs, "nextPageKey": page.next_key(total), "pageSize": docs.len(), "totalCount": total }),
    ))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExecParams {
    project: Option<String>,
    stage: Option<String>,
    service: Option<String>,
    keptn_context: Option<String>,
    name: Option<String>,
    status: Option<String>,
    page_size: Option<String>,
    next_page_key: Option<String>,
}

pub async fn executions(State(state): State<Shared>, Query(p): Query<ExecParams>) -> ApiResult<Json<Value>> {
    let project = p
        .project
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("query parameter project is required"))?;
    require_project(&state, &project)?;
    let page = Page::parse(p.page_size.as_deref(), p.next_page_key.as_deref(), 100)?;
    let ne = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    let q = ExecutionQuery {
        project,
        stage: ne(&p.stage),
        service: ne(&p.service),
        context: ne(&p.keptn_context),
        name: ne(&p.name),
        state: ne(&p.status),
        offset: page.offset,
        limit: page.limit,
    };
    let (execs, total) = state.store.query_executions(&q).await?;
    let docs: Vec<Value> = execs.iter().map(views::execution_doc).collect();
    Ok(Json(
        json!({ "sequenceExecutions": docs, "nextPageKey": page.next_key(total), "pageSize": docs.len(), "totalCount": total }),
    ))
}

#[derive(Deserialize)]
pub struct ControlBody {
    #[serde(default)]
    state: String,
    #[serde(default)]
    stage: String,
}

pub async fn control(
    State(state): State<Shared>,
    Path((project, context)): Path<(String, String)>,
    JsonBody(body): JsonBody<ControlBody>,
) -> ApiResult<Json<Value>> {
    require_project(&state, &project)?;
    let action = match body.state.as_str() {
        "pause" => Control::Pause,
        "resume" => Control::Resume,
        "abort" => Control::Abort,
        other => {
            return Err(ApiError::bad_request(format!("state {other:?} is not a control; use pause, resume or abort")));
        }
    };
    let known = state.store.executions_of_contexts(&project, std::slice::from_ref(&context)).await?;
    if known.is_empty() {
        return Err(ApiError::not_found(format!("no sequence with keptnContext {context:?} in project {project:?}")));
    }
    let stage = Some(body.stage).filter(|s| !s.is_empty());
    state.writer.control(project, context, stage, action).await?;
    Ok(Json(json!({})))
}
