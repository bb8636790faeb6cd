//! A service's evaluations over time (keptn-rs addition, for the Bridge's heatmap and
//! `keptn get evaluations`): `evaluation.finished` events of one project/stage/service, newest
//! first, paginated, each marked `invalidated` when an `evaluation.invalidated` names it.

use super::paging::{Page, PageParams, time_param};
use crate::error::{ApiError, ApiResult};
use crate::state::Shared;
use axum::Json;
use axum::extract::{Path, Query, State};
use keptn_store::EventQuery;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashSet;

const FINISHED: &str = "sh.keptn.event.evaluation.finished";
const INVALIDATED: &str = "sh.keptn.event.evaluation.invalidated";

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct HistoryParams {
    #[serde(flatten)]
    page: PageParams,
    from_time: Option<String>,
    before_time: Option<String>,
    exclude_invalidated: Option<String>,
}

pub async fn history(
    State(state): State<Shared>,
    Path((project, stage, service)): Path<(String, String, String)>,
    Query(p): Query<HistoryParams>,
) -> ApiResult<Json<Value>> {
    state.catalog.read().expect("catalog").check_scope(&project, &stage, &service).map_err(ApiError::not_found)?;
    let page = Page::from(&p.page, 100)?;
    let exclude = match p.exclude_invalidated.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("" | "false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!("excludeInvalidated {other:?} must be true or false")));
        }
    };
    let scope = EventQuery {
        project: Some(project.clone()),
        stage: Some(stage.clone()),
        service: Some(service.clone()),
        ..EventQuery::default()
    };
    let q = EventQuery {
        ty: Some(FINISHED.into()),
        from_ms: time_param("fromTime", p.from_time.as_deref())?,
        before_ms: time_param("beforeTime", p.before_time.as_deref())?,
        exclude_triggered_by: exclude.then(|| INVALIDATED.to_string()),
        offset: page.offset,
        limit: page.limit,
        ..scope.clone()
    };
    let (events, total) = state.store.query_events(&q).await?;
    let (invalidations, _) = state.store.query_events(&EventQuery { ty: Some(INVALIDATED.into()), ..scope }).await?;
    let invalidated: HashSet<&str> = invalidations.iter().filter_map(|e| e["triggeredid"].as_str()).collect();
    let docs: Vec<Value> = events.iter().map(|e| doc(e, &invalidated)).collect();
    Ok(Json(
        json!({ "evaluations": docs, "nextPageKey": page.next_key(total), "pageSize": docs.len(), "totalCount": total }),
    ))
}

/// One evaluation: the event's identity and the scores the Bridge and CLI show.
fn doc(event: &Value, invalidated: &HashSet<&str>) -> Value {
    let d = &event["data"];
    let triggered = event["triggeredid"].as_str().unwrap_or("");
    json!({
        "id": event["id"],
        "keptnContext": event["shkeptncontext"],
        "triggeredid": triggered,
        "gitcommitid": event.get("gitcommitid").cloned().unwrap_or(Value::Null),
        "time": event["time"],
        "source": event["source"],
        "result": d["result"],
        "status": d["status"],
        "message": d["message"],
        "labels": d.get("labels").cloned().unwrap_or(json!({})),
        "invalidated": !triggered.is_empty() && invalidated.contains(triggered),
        "evaluation": d["evaluation"],
    })
}
