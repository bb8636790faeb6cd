//! Integrations: registration, heartbeat, subscriptions and error logs (keptn's "uniform").

use super::Shared;
use super::paging::{Page, time_param};
use crate::body::{JsonBody, no_nul};
use crate::error::{ApiError, ApiResult};
use crate::outbound::redact_url;
use crate::timers::now_ms;
use crate::uniform::{Integration, Subscription, integration_id};
use crate::writer::parse_time;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use keptn_engine::format_time;
use serde::Deserialize;
use serde_json::{Value, json};

/// Where the stored body keeps the sealed pushURL when it has userinfo; the body's own
/// `pushURL` is the redacted form (what API answers show).
const SEALED_PUSH_URL: &str = "pushURLSealed";

fn secret_key(state: &Shared) -> ApiResult<&keptn_configrepo::SecretKey> {
    state.configrepo.secret_key().map_err(|e| ApiError::unavailable(format!("cannot read the secret key: {e}")))
}

/// The stored form: a password in the pushURL is sealed like upstream credentials.
fn to_stored(state: &Shared, integration: &Integration) -> ApiResult<Value> {
    let mut body = serde_json::to_value(crate::uniform::redacted(integration.clone())).expect("serialisable");
    if redact_url(&integration.push_url) != integration.push_url {
        let sealed = secret_key(state)?.seal(integration.push_url.as_bytes());
        body[SEALED_PUSH_URL] = json!(B64.encode(sealed));
    }
    Ok(body)
}

/// The integration as the dispatcher needs it (the whole pushURL). A pushURL that can't be
/// unsealed (another secret key) is dropped: the integration must register again.
fn from_stored(state: &Shared, mut body: Value) -> Option<Integration> {
    let sealed = body.as_object_mut()?.remove(SEALED_PUSH_URL);
    let mut integration: Integration = serde_json::from_value(body).ok()?;
    if let Some(sealed) = sealed {
        let plain = sealed.as_str().and_then(|s| B64.decode(s).ok()).and_then(|s| {
            let key = secret_key(state).ok()?;
            key.open(&s).and_then(|p| String::from_utf8(p).ok())
        });
        integration.push_url = plain.unwrap_or_else(|| {
            tracing::error!(integration = %integration.id, "its pushURL can't be decrypted (another secret key?); it must register again");
            String::new()
        });
    }
    Some(integration)
}

async fn load_all(state: &Shared) -> ApiResult<Vec<Integration>> {
    let rows = state.store.list_integrations().await?;
    Ok(rows.into_iter().filter_map(|v| from_stored(state, v)).collect())
}

async fn save(state: &Shared, integration: &Integration) -> ApiResult<()> {
    let body = to_stored(state, integration)?;
    state.store.upsert_integration(&integration.id, &integration.name, now_ms(), &body).await?;
    refresh(state).await
}

/// Reloads the dispatcher's view of integrations after a change.
pub async fn refresh(state: &Shared) -> ApiResult<()> {
    let all = load_all(state).await?;
    state.directory.replace(all);
    Ok(())
}

/// Seals the pushURL passwords of integrations stored in clear (by an older version).
pub async fn seal_stored_push_urls(state: &Shared) -> ApiResult<()> {
    for row in state.store.list_integrations().await? {
        let clear =
            row.get(SEALED_PUSH_URL).is_none() && row["pushURL"].as_str().is_some_and(|url| redact_url(url) != url);
        if let Some(integration) = from_stored(state, row).filter(|_| clear) {
            let body = to_stored(state, &integration)?;
            let seen = parse_time(&integration.metadata.lastseen).unwrap_or_else(now_ms);
            state.store.upsert_integration(&integration.id, &integration.name, seen, &body).await?;
        }
    }
    Ok(())
}

async fn find(state: &Shared, id: &str) -> ApiResult<Integration> {
    let v = state.store.get_integration(id).await?.ok_or_else(|| {
        ApiError::not_found(format!("integration {id:?} is not registered (it may have expired); register it again"))
    })?;
    from_stored(state, v).ok_or_else(|| ApiError::unavailable(format!("stored integration {id:?} is unreadable")))
}

/// An http(s) URL; a host that is an IP literal must be one the outbound policy allows (names
/// are checked on every delivery, as they resolve).
fn validate_push_url(state: &Shared, url: &str) -> ApiResult<()> {
    if url.is_empty() {
        return Ok(());
    }
    let shown = redact_url(url);
    let parsed = reqwest::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or_else(|| ApiError::bad_request(format!("pushURL {shown:?} must be an http:// or https:// URL")))?;
    state
        .outbound
        .check_url(&parsed)
        .map_err(|denied| ApiError::bad_request(format!("pushURL {shown:?} is refused: {denied}")))
}

pub async fn register(
    State(state): State<Shared>,
    JsonBody(body): JsonBody<Integration>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (status, id) = upsert_registration(&state, body).await?;
    Ok((status, Json(json!({ "id": id }))))
}

/// keptn's registration semantics (reference §5.2), for the API and the built-in integrations:
/// `201` with a new id, or `200` with the id of the existing registration it refreshed.
pub async fn upsert_registration(state: &Shared, mut body: Integration) -> ApiResult<(StatusCode, String)> {
    if body.name.trim().is_empty() {
        return Err(ApiError::bad_request("name is required: the integration's name, e.g. jmeter-service"));
    }
    no_nul("name", &body.name)?;
    keptn_spec::event::check_length("name", &body.name, keptn_spec::event::ID_MAX).map_err(ApiError::bad_request)?;
    validate_push_url(state, &body.push_url)?;
    for s in &body.subscriptions {
        s.validate().map_err(ApiError::bad_request)?;
    }
    let now = format_time(now_ms());
    let namespace = body.metadata.kubernetesmetadata.namespace.clone();
    let mut same: Vec<Integration> = load_all(state)
        .await?
        .into_iter()
        .filter(|i| i.name == body.name && i.metadata.kubernetesmetadata.namespace == namespace)
        .collect();
    if !same.is_empty() {
        // The most recently seen one survives; after the first registration the control plane
        // owns the subscriptions (keptn's rule), unless the survivor has none.
        same.sort_by(|a, b| b.metadata.lastseen.cmp(&a.metadata.lastseen));
        let mut target = same.remove(0);
        for dup in &same {
            for s in &dup.subscriptions {
                if !target.subscriptions.iter().any(|t| t.id == s.id) {
                    target.subscriptions.push(s.clone());
                }
            }
            state.store.delete_integration(&dup.id).await?;
        }
        if target.subscriptions.is_empty() {
            target.subscriptions = with_ids(body.subscriptions);
        }
        target.metadata = body.metadata;
        target.metadata.lastseen = now;
        // A client that read the registration and sends it back keeps the stored credentials.
        if body.push_url != redact_url(&target.push_url) {
            target.push_url = body.push_url;
        }
        save(state, &target).await?;
        return Ok((StatusCode::OK, target.id));
    }
    body.id = integration_id(&body.name, &namespace, &body.metadata.hostname);
    body.subscriptions = with_ids(std::mem::take(&mut body.subscriptions));
    body.metadata.lastseen = now;
    save(state, &body).await?;
    Ok((StatusCode::CREATED, body.id))
}

fn with_ids(subs: Vec<Subscription>) -> Vec<Subscription> {
    subs.into_iter()
        .map(|mut s| {
            if s.id.is_empty() {
                s.id = uuid::Uuid::new_v4().to_string();
            }
            s
        })
        .collect()
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

/// Sets `lastseen` to now; 404 if the integration is not registered (any more).
pub async fn heartbeat(state: &Shared, id: &str) -> ApiResult<Integration> {
    let mut integration = find(state, id).await?;
    integration.metadata.lastseen = format_time(now_ms());
    save(state, &integration).await?;
    Ok(integration)
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

/// Stores error log entries (keptn's `POST /controlPlane/v1/log`, and in-process integrations):
/// each names its integration; `time` defaults to now.
pub async fn insert_logs(state: &Shared, logs: Vec<Value>) -> ApiResult<()> {
    let mut rows = Vec::new();
    for (i, mut log) in logs.into_iter().enumerate() {
        let integration = log["integrationid"].as_str().unwrap_or("").to_string();
        if integration.is_empty() {
            return Err(ApiError::bad_request(format!("logs[{i}].integrationid is required")));
        }
        no_nul(&format!("logs[{i}].integrationid"), &integration)?;
        keptn_spec::event::check_length(&format!("logs[{i}].integrationid"), &integration, keptn_spec::event::ID_MAX)
            .map_err(ApiError::bad_request)?;
        let time = match log["time"].as_str() {
            Some(t) => parse_time(t)
                .ok_or_else(|| ApiError::bad_request(format!("logs[{i}].time {t:?} is not an ISO 8601 time")))?,
            None => {
                let now = now_ms();
                log["time"] = json!(format_time(now));
                now
            }
        };
        rows.push((uuid::Uuid::new_v4().to_string(), integration, time, log));
    }
    state.store.insert_logs(&rows).await?;
    Ok(())
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
