//! Integration registrations in the store (keptn's "uniform"): keptn's registration rules,
//! heartbeats, pushURL passwords sealed at rest, the dispatcher's `Directory` reloaded after
//! every change, and the TTL sweep. The HTTP handlers (`api/uniform.rs`) and the built-in
//! integrations both use it.

use crate::body::no_nul;
use crate::clock::now_ms;
use crate::error::{ApiError, ApiResult};
use crate::outbound::redact_url;
use crate::state::Shared;
use crate::uniform::{Integration, Subscription, integration_id};
use crate::writer::parse_time;
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use keptn_engine::format_time;
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

pub async fn load_all(state: &Shared) -> ApiResult<Vec<Integration>> {
    let rows = state.store.list_integrations().await?;
    Ok(rows.into_iter().filter_map(|v| from_stored(state, v)).collect())
}

pub async fn save(state: &Shared, integration: &Integration) -> ApiResult<()> {
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
async fn seal_stored_push_urls(state: &Shared) -> ApiResult<()> {
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

pub async fn find(state: &Shared, id: &str) -> ApiResult<Integration> {
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

/// keptn's registration semantics (reference §5.2), for the API and the built-in integrations:
/// `201` with a new id, or `200` with the id of the existing registration it refreshed.
pub async fn upsert_registration(state: &Shared, mut body: Integration) -> ApiResult<(StatusCode, String)> {
    if body.name.trim().is_empty() {
        return Err(ApiError::bad_request("name is required: the integration's name, e.g. jmeter-service"));
    }
    no_nul("name", &body.name)?;
    keptn_formats::event::check_length("name", &body.name, keptn_formats::event::ID_MAX)
        .map_err(ApiError::bad_request)?;
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

/// Sets `lastseen` to now; 404 if the integration is not registered (any more).
pub async fn heartbeat(state: &Shared, id: &str) -> ApiResult<Integration> {
    let mut integration = find(state, id).await?;
    integration.metadata.lastseen = format_time(now_ms());
    save(state, &integration).await?;
    Ok(integration)
}

/// Loads the integrations for the dispatcher (at start: after sealing pushURL passwords stored
/// in clear by an older version).
pub async fn refresh_directory(state: &Shared) -> ApiResult<()> {
    seal_stored_push_urls(state).await?;
    refresh(state).await
}

/// Integrations that stopped pinging disappear after the TTL (keptn's TTL index). A slow
/// housekeeping sweep, not on any event's path.
pub async fn expire_integrations(state: Shared) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
    loop {
        tick.tick().await;
        let cutoff = now_ms() - state.integration_ttl_ms;
        match state.store.expire_integrations(cutoff).await {
            Ok(n) if n > 0 => {
                tracing::info!(expired = n, "integrations expired");
                let _ = refresh_directory(&state).await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not expire integrations"),
        }
    }
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
        keptn_formats::event::check_length(
            &format!("logs[{i}].integrationid"),
            &integration,
            keptn_formats::event::ID_MAX,
        )
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
