//! Integrations: registration, heartbeat, subscriptions and error logs (keptn's "uniform").

use super::paging::{Page, time_param};
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::registrations::{find, heartbeat, insert_logs, load_all, refresh, save, upsert_registration};
use crate::state::Shared;
use crate::uniform::{Integration, Subscription};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

pub async fn register(
    State(state): State<Shared>,
    JsonBody(body): JsonBody<Integration>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (status, id) = upsert_registration(&state, body).await?;
    Ok((status, Json(json!({ "id": id }))))
}

#[derive(Deserialize, Default)]
pub struct ListParams {
    id: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
    hostname: Option<String>,
    project: Option<String>,
    stage: Option<String>,
    service: Option<String>,
}

pub async fn list(State(state): State<Shared>, Query(p): Query<ListParams>) -> ApiResult<Json<Vec<Integration>>> {
    let eq = |want: &Option<String>, got: &str| want.as_deref().is_none_or(|w| w.is_empty() || w == got);
    let in_subs = |want: &Option<String>, i: &Integration, pick: fn(&Subscription) -> &Vec<String>| {
        want.as_deref().is_none_or(|w| {
            w.is_empty() || i.subscriptions.iter().any(|s| pick(s).is_empty() || pick(s).iter().any(|x| x == w))
        })
    };
    let all = load_all(&state).await?;
    Ok(Json(
        all.into_iter()
            .map(crate::uniform::redacted)
            .filter(|i| {
                eq(&p.id, &i.id)
                    && eq(&p.name, &i.name)
                    && eq(&p.namespace, &i.metadata.kubernetesmetadata.namespace)
                    && eq(&p.hostname, &i.metadata.hostname)
                    && in_subs(&p.project, i, |s| &s.filter.projects)
                    && in_subs(&p.stage, i, |s| &s.filter.stages)
                    && in_subs(&p.service, i, |s| &s.filter.services)
            })
            .collect(),
    ))
}

pub async fn get_one(State(state): State<Shared>, Path(id): Path<String>) -> ApiResult<Json<Integration>> {
    Ok(Json(crate::uniform::redacted(find(&state, &id).await?)))
}

pub async fn unregister(State(state): State<Shared>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    if !state.store.delete_integration(&id).await? {
        return Err(ApiError::not_found(format!("integration {id:?} is not registered")));
    }
    refresh(&state).await?;
    Ok(Json(json!({})))
}

pub async fn ping(State(state): State<Shared>, Path(id): Path<String>) -> ApiResult<Json<Integration>> {
    Ok(Json(crate::uniform::redacted(heartbeat(&state, &id).await?)))
}

pub async fn list_subscriptions(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<Subscription>>> {
    Ok(Json(find(&state, &id).await?.subscriptions))
}

pub async fn get_subscription(
    State(state): State<Shared>,
    Path((id, sid)): Path<(String, String)>,
) -> ApiResult<Json<Subscription>> {
    find(&state, &id)
        .await?
        .subscriptions
        .into_iter()
        .find(|s| s.id == sid)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("subscription {sid:?} does not exist on integration {id:?}")))
}

pub async fn create_subscription(
    State(state): State<Shared>,
    Path(id): Path<String>,
    JsonBody(mut sub): JsonBody<Subscription>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    sub.validate().map_err(ApiError::bad_request)?;
    let mut integration = find(&state, &id).await?;
    sub.id = uuid::Uuid::new_v4().to_string();
    integration.subscriptions.push(sub.clone());
    save(&state, &integration).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": sub.id }))))
}

pub async fn put_subscription(
    State(state): State<Shared>,
    Path((id, sid)): Path<(String, String)>,
    JsonBody(mut sub): JsonBody<Subscription>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    sub.validate().map_err(ApiError::bad_request)?;
    let mut integration = find(&state, &id).await?;
    sub.id = sid.clone();
    match integration.subscriptions.iter_mut().find(|s| s.id == sid) {
        Some(slot) => *slot = sub,
        None => integration.subscriptions.push(sub),
    }
    save(&state, &integration).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": sid }))))
}

pub async fn delete_subscription(
    State(state): State<Shared>,
    Path((id, sid)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let mut integration = find(&state, &id).await?;
    let before = integration.subscriptions.len();
    integration.subscriptions.retain(|s| s.id != sid);
    if integration.subscriptions.len() == before {
        return Err(ApiError::not_found(format!("subscription {sid:?} does not exist on integration {id:?}")));
    }
    save(&state, &integration).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct LogParams {
    integration_id: Option<String>,
    from_time: Option<String>,
    before_time: Option<String>,
    page_size: Option<String>,
    next_page_key: Option<String>,
}

pub async fn logs(State(state): State<Shared>, Query(p): Query<LogParams>) -> ApiResult<Json<Value>> {
    let page = Page::parse(p.page_size.as_deref(), p.next_page_key.as_deref(), 100)?;
    let (logs, total) = state
        .store
        .query_logs(
            p.integration_id.as_deref().filter(|s| !s.is_empty()),
            time_param("fromTime", p.from_time.as_deref())?,
            time_param("beforeTime", p.before_time.as_deref())?,
            page.offset,
            page.limit,
        )
        .await?;
    Ok(Json(
        json!({ "logs": logs, "nextPageKey": page.next_offset(total), "pageSize": logs.len(), "totalCount": total }),
    ))
}

#[derive(Deserialize)]
pub struct LogsBody {
    #[serde(default)]
    logs: Vec<Value>,
}

pub async fn post_logs(State(state): State<Shared>, JsonBody(body): JsonBody<LogsBody>) -> ApiResult<Json<Value>> {
    insert_logs(&state, body.logs).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DeleteLogParams {
    integration_id: Option<String>,
}

pub async fn delete_logs(State(state): State<Shared>, Query(p): Query<DeleteLogParams>) -> ApiResult<Json<Value>> {
    state.store.delete_logs(p.integration_id.as_deref().filter(|s| !s.is_empty())).await?;
    Ok(Json(json!({})))
}
