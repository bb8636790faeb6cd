//! Sequence state view, sequence executions and sequence control (pause / resume / abort).

use super::paging::{Page, time_param};
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::state::Shared;
use crate::views;
use axum::Json;
use axum::extract::{Path, Query, State};
use keptn_engine::Control;
use keptn_store::{ContextQuery, ExecutionQuery};
use serde::Deserialize;
use serde_json::{Value, json};

pub(super) fn require_project(state: &Shared, project: &str) -> ApiResult<()> {
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
    let mut q = ContextQuery {
        project: project.clone(),
        name: p.name.clone().filter(|s| !s.is_empty()),
        from_ms: time_param("fromTime", p.from_time.as_deref())?,
        before_ms: time_param("beforeTime", p.before_time.as_deref())?,
        contexts,
        offset: page.offset,
        limit: page.limit,
    };
    let wanted = p.state.as_deref().filter(|s| !s.is_empty());
    let Some(wanted) = wanted else {
        let (page_contexts, total) = state.store.contexts_page(&q).await?;
        let docs = state_docs(&state, &project, &page_contexts).await?;
        return Ok(Json(
            json!({ "states": docs, "nextPageKey": page.next_offset(total), "pageSize": docs.len(), "totalCount": total }),
        ));
    };
    // The state is computed, not stored: filter every context in chunks, then page the matches,
    // so that pages and totalCount count only matching sequences (as keptn's query does).
    const CHUNK: i64 = 500;
    let mut matching = Vec::new();
    q.offset = 0;
    q.limit = CHUNK;
    loop {
        let (chunk, total) = state.store.contexts_page(&q).await?;
        let n = chunk.len() as i64;
        matching.extend(state_docs(&state, &project, &chunk).await?.into_iter().filter(|d| d["state"] == wanted));
        q.offset += CHUNK;
        if n < CHUNK || q.offset >= total {
            break;
        }
    }
    let total = matching.len() as i64;
    let docs = page.slice(&matching);
    Ok(Json(
        json!({ "states": docs, "nextPageKey": page.next_offset(total), "pageSize": docs.len(), "totalCount": total }),
    ))
}

/// keptn's sequence state documents of these contexts, in the given order.
async fn state_docs(state: &Shared, project: &str, contexts: &[String]) -> ApiResult<Vec<Value>> {
    let execs = state.store.executions_of_contexts(project, contexts).await?;
    Ok(contexts
        .iter()
        .filter_map(|ctx| views::sequence_state(execs.iter().filter(|e| &e.context == ctx).collect()))
        .collect())
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
    let docs: Vec<Value> = execs.iter().map(|e| views::execution_doc(e, &state.directory)).collect();
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
    state.writer.control(project, context.clone(), stage, action).await?;
    let _ = state.controls.send(context);
    Ok(Json(json!({})))
}
