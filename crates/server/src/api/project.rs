//! Projects, stages and services (`/api/controlPlane/v1/project…`), with keptn's shapes.

use super::paging::{Page, PageParams};
use crate::body::JsonBody;
use crate::catalog::ProjectEntry;
use crate::clock::now_ms;
use crate::config_sync::repo_write;
use crate::error::{ApiError, ApiResult};
use crate::events_out::system_event;
use crate::repo::repo;
use crate::state::Shared;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use base64::Engine as _;
use keptn_configrepo::{GitCredentials, Scope};
use keptn_formats::{Shipyard, names};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

#[derive(Deserialize)]
pub struct ProjectBody {
    #[serde(default)]
    name: String,
    #[serde(default)]
    shipyard: Option<String>,
    #[serde(rename = "gitCredentials", default)]
    git_credentials: Option<Value>,
}

/// keptn's API `gitCredentials`: the https certificate and the ssh private key arrive
/// base64-encoded (a PEM given as is is accepted too).
fn parse_credentials(value: Option<&Value>) -> ApiResult<Option<GitCredentials>> {
    let Some(value) = value.filter(|v| !v.is_null()) else { return Ok(None) };
    let mut creds: GitCredentials = serde_json::from_value(value.clone())
        .map_err(|e| ApiError::bad_request(format!("gitCredentials has an unexpected shape: {e}")))?;
    if creds.remote_url.is_empty() && creds.https.is_none() && creds.ssh.is_none() {
        return Ok(None);
    }
    let pem = |field: &str, v: &str| -> ApiResult<String> {
        if v.is_empty() || v.contains("-----BEGIN") {
            return Ok(v.to_string());
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .map_err(|_| ApiError::bad_request(format!("gitCredentials.{field} must be base64-encoded PEM")))?;
        String::from_utf8(bytes).map_err(|_| ApiError::bad_request(format!("gitCredentials.{field} is not PEM text")))
    };
    if let Some(h) = creds.https.as_mut() {
        h.certificate = pem("https.certificate", &h.certificate)?;
    }
    if let Some(k) = creds.ssh.as_mut() {
        k.private_key = pem("ssh.privateKey", &k.private_key)?;
    }
    if !creds.remote_url.starts_with("http://")
        && !creds.remote_url.starts_with("https://")
        && !creds.remote_url.starts_with("ssh://")
    {
        return Err(ApiError::bad_request(format!(
            "gitCredentials.remoteURL {:?} must start with http://, https:// or ssh://",
            creds.remote_url
        )));
    }
    creds.validate()?;
    Ok(Some(creds))
}

/// Connects the project's repository to its upstream (pushing the history there).
async fn connect_upstream(state: &Shared, project: &str, creds: GitCredentials) -> ApiResult<()> {
    let name = project.to_string();
    repo_write(state, project, move |r| r.set_upstream(&name, creds)).await
}

fn decode_shipyard(b64: &str) -> ApiResult<(Shipyard, String)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| ApiError::bad_request(format!("shipyard must be base64-encoded YAML: {e}")))?;
    let yaml = String::from_utf8(bytes).map_err(|_| ApiError::bad_request("shipyard is not UTF-8 text"))?;
    let shipyard = Shipyard::parse(&yaml).map_err(|e| ApiError::bad_request(format!("invalid shipyard: {e}")))?;
    Ok((shipyard, yaml))
}

/// Creates the project's configuration repository in one commit: `metadata.yaml`, one stage per
/// shipyard stage and `shipyard.yaml` (the shipyard's limits bound its size). A repository left
/// over from an interrupted create or delete (the catalog has no such project) is replaced.
async fn create_repo(state: &Shared, project: &str, shipyard: &Shipyard, yaml: &str) -> ApiResult<()> {
    let (name, stages, yaml) = (project.to_string(), shipyard.stage_names(), yaml.to_string());
    repo_write(state, project, move |r| {
        let project = name;
        if r.projects()?.contains(&project) {
            tracing::warn!(project = %project, "replacing a stale configuration repository");
            r.delete_project(&project)?;
        }
        let stages: Vec<&str> = stages.iter().map(String::as_str).collect();
        let files = [("shipyard.yaml", yaml.as_bytes())];
        r.create_project_with(
            &project,
            &stages,
            &files,
            &format!("Created project {project} with its stages and shipyard"),
        )?;
        Ok(())
    })
    .await
}

/// Deletes the project's configuration repository; a missing one is fine.
async fn delete_repo(state: &Shared, project: &str) -> ApiResult<()> {
    let project = project.to_string();
    repo(state, move |r| match r.delete_project(&project) {
        Err(keptn_configrepo::Error::ProjectNotFound { .. }) => Ok(()),
        other => other,
    })
    .await
}

pub async fn create(
    State(state): State<Shared>,
    JsonBody(body): JsonBody<ProjectBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    names::check_project(&body.name).map_err(ApiError::bad_request)?;
    let b64 = body
        .shipyard
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("shipyard is required: send the shipyard YAML base64-encoded"))?;
    let (shipyard, yaml) = decode_shipyard(b64)?;
    let creds = parse_credentials(body.git_credentials.as_ref())?;
    let remote_url = creds.as_ref().map(|c| c.remote_url.clone()).unwrap_or_default();
    let _guard = state.crud.lock().await;
    if state.catalog.read().expect("catalog").project(&body.name).is_some() {
        return Err(ApiError::conflict(format!("project {:?} already exists", body.name)));
    }
    let ctx = crate::writer::new_id();
    state.writer.ingest(system_event("project.create.started", &ctx, json!({ "project": body.name }))).await?;
    create_repo(&state, &body.name, &shipyard, &yaml).await?;
    if let Some(creds) = creds
        && let Err(e) = connect_upstream(&state, &body.name, creds).await
    {
        let _ = delete_repo(&state, &body.name).await;
        let failed = json!({ "project": body.name, "status": "errored", "result": "fail", "message": e.message });
        state.writer.ingest(system_event("project.create.finished", &ctx, failed)).await?;
        return Err(e);
    }
    let now = now_ms();
    if let Err(e) = state.store.create_project(&body.name, &yaml, now).await {
        let _ = delete_repo(&state, &body.name).await;
        return Err(e.into());
    }
    state.catalog.write().expect("catalog").projects.insert(
        body.name.clone(),
        ProjectEntry {
            shipyard: shipyard.clone(),
            shipyard_yaml: yaml.clone(),
            created_ms: now,
            services: BTreeMap::new(),
        },
    );
    state.writer.set_shipyard(body.name.clone(), shipyard).await?;
    let finished = json!({
        "project": body.name, "status": "succeeded", "result": "pass",
        "createdProject": { "projectName": body.name, "gitRemoteURL": remote_url, "shipyard": b64 },
    });
    state.writer.ingest(system_event("project.create.finished", &ctx, finished)).await?;
    Ok((StatusCode::CREATED, Json(json!({}))))
}

pub async fn update(
    State(state): State<Shared>,
    JsonBody(body): JsonBody<ProjectBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    names::check_project(&body.name).map_err(ApiError::bad_request)?;
    let _guard = state.crud.lock().await;
    let old = state
        .catalog
        .read()
        .expect("catalog")
        .project(&body.name)
        .map(|p| p.shipyard.clone())
        .ok_or_else(|| ApiError::not_found(format!("project {:?} does not exist", body.name)))?;
    let creds = parse_credentials(body.git_credentials.as_ref())?;
    let shipyard = match body.shipyard.as_deref().filter(|s| !s.is_empty()) {
        Some(b64) => {
            let (shipyard, yaml) = decode_shipyard(b64)?;
            let (mut before, mut after) = (old.stage_names(), shipyard.stage_names());
            before.sort();
            after.sort();
            if before != after {
                return Err(ApiError::bad_request(format!(
                    "stages cannot be added, removed or renamed after a project is created (current stages: {before:?}, new: {after:?})"
                )));
            }
            Some(yaml)
        }
        None => None,
    };
    // The new upstream first: if it is refused, nothing else changed.
    if let Some(creds) = creds {
        connect_upstream(&state, &body.name, creds).await?;
    }
    if let Some(yaml) = shipyard {
        // Committing shipyard.yaml makes it the project's shipyard (store, catalog, engine).
        let project = body.name.clone();
        repo_write(&state, &body.name, move |r| {
            r.write(&project, Scope::Project, &[("shipyard.yaml", yaml.as_bytes())], "Updated shipyard").map(drop)
        })
        .await?;
    }
    Ok((StatusCode::CREATED, Json(json!({}))))
}

pub async fn delete(State(state): State<Shared>, Path(project): Path<String>) -> ApiResult<Json<Value>> {
    let _guard = state.crud.lock().await;
    if state.catalog.read().expect("catalog").project(&project).is_none() {
        return Err(ApiError::not_found(format!("project {project:?} does not exist")));
    }
    state.writer.delete_project(project.clone()).await?;
    state.catalog.write().expect("catalog").projects.remove(&project);
    delete_repo(&state, &project).await?;
    let ctx = crate::writer::new_id();
    let data = json!({ "project": project, "status": "succeeded", "result": "pass" });
    state.writer.ingest(system_event("project.delete.finished", &ctx, data)).await?;
    Ok(Json(
        json!({ "message": format!("project {project:?} deleted: its configuration, sequences and events are gone") }),
    ))
}

#[derive(Deserialize)]
pub struct ServiceBody {
    #[serde(rename = "serviceName", default)]
    service_name: String,
}

pub async fn create_service(
    State(state): State<Shared>,
    Path(project): Path<String>,
    JsonBody(body): JsonBody<ServiceBody>,
) -> ApiResult<Json<Value>> {
    names::check_service(&body.service_name).map_err(ApiError::bad_request)?;
    let _guard = state.crud.lock().await;
    let stages = {
        let catalog = state.catalog.read().expect("catalog");
        let p = catalog
            .project(&project)
            .ok_or_else(|| ApiError::not_found(format!("project {project:?} does not exist")))?;
        if p.services.contains_key(&body.service_name) {
            return Err(ApiError::conflict(format!(
                "service {:?} already exists in project {project:?}",
                body.service_name
            )));
        }
        p.shipyard.stage_names()
    };
    let ctx = crate::writer::new_id();
    let data = json!({ "project": project, "service": body.service_name });
    state.writer.ingest(system_event("service.create.started", &ctx, data.clone())).await?;
    create_service_repo(&state, &project, &body.service_name, stages.clone()).await?;
    let now = now_ms();
    if let Err(e) = state.store.create_service(&project, &body.service_name, now).await {
        let _ = delete_service_repo(&state, &project, &body.service_name, stages).await;
        return Err(e.into());
    }
    if let Some(p) = state.catalog.write().expect("catalog").projects.get_mut(&project) {
        p.services.insert(body.service_name.clone(), now);
    }
    let mut finished = data;
    finished["status"] = json!("succeeded");
    finished["result"] = json!("pass");
    state.writer.ingest(system_event("service.create.finished", &ctx, finished)).await?;
    Ok(Json(json!({})))
}

pub async fn delete_service(
    State(state): State<Shared>,
    Path((project, service)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let _guard = state.crud.lock().await;
    let stages = {
        let catalog = state.catalog.read().expect("catalog");
        let p = catalog
            .project(&project)
            .ok_or_else(|| ApiError::not_found(format!("project {project:?} does not exist")))?;
        if !p.services.contains_key(&service) {
            return Err(ApiError::not_found(format!("service {service:?} does not exist in project {project:?}")));
        }
        p.shipyard.stage_names()
    };
    let ctx = crate::writer::new_id();
    let data = json!({ "project": project, "service": service });
    state.writer.ingest(system_event("service.delete.started", &ctx, data.clone())).await?;
    state.store.delete_service(&project, &service).await?;
    delete_service_repo(&state, &project, &service, stages).await?;
    if let Some(p) = state.catalog.write().expect("catalog").projects.get_mut(&project) {
        p.services.remove(&service);
    }
    let mut finished = data;
    finished["status"] = json!("succeeded");
    finished["result"] = json!("pass");
    state.writer.ingest(system_event("service.delete.finished", &ctx, finished)).await?;
    Ok(Json(json!({})))
}

/// Creates the service in every stage of the configuration repository; one that already exists
/// (left over from an interrupted create) is kept.
async fn create_service_repo(state: &Shared, project: &str, service: &str, stages: Vec<String>) -> ApiResult<()> {
    let (name, service) = (project.to_string(), service.to_string());
    repo_write(state, project, move |r| {
        let project = name;
        for stage in &stages {
            match r.create_service(&project, stage, &service) {
                Err(keptn_configrepo::Error::ServiceExists { .. }) => {}
                other => drop(other?),
            }
        }
        Ok(())
    })
    .await
}

/// Deletes the service from every stage of the configuration repository; missing ones are fine.
async fn delete_service_repo(state: &Shared, project: &str, service: &str, stages: Vec<String>) -> ApiResult<()> {
    let (name, service) = (project.to_string(), service.to_string());
    repo_write(state, project, move |r| {
        let project = name;
        for stage in &stages {
            match r.delete_service(&project, stage, &service) {
                Err(
                    keptn_configrepo::Error::ServiceNotFound { .. } | keptn_configrepo::Error::StageNotFound { .. },
                ) => {}
                other => drop(other?),
            }
        }
        Ok(())
    })
    .await
}

fn nanos(ms: i64) -> String {
    (ms as i128 * 1_000_000).to_string()
}

/// keptn's ExpandedProject, with per-service `lastEventTypes` and `deployedImage`.
async fn expanded_project(state: &Shared, name: &str, entry: &ProjectEntry) -> ApiResult<Value> {
    let per_stage: HashMap<(String, String), (Option<String>, Value)> = state
        .store
        .service_stage_states(name)
        .await?
        .into_iter()
        .map(|r| ((r.stage, r.service), (r.deployed_image, r.last_event_types)))
        .collect();
    let stages: Vec<Value> = entry
        .shipyard
        .spec
        .stages
        .iter()
        .map(|st| {
            let services: Vec<Value> = entry
                .services
                .iter()
                .map(|(svc, created)| {
                    let (image, last) =
                        per_stage.get(&(st.name.clone(), svc.clone())).cloned().unwrap_or((None, json!({})));
                    let mut v = json!({
                        "serviceName": svc, "creationDate": nanos(*created),
                        "lastEventTypes": last, "openRemediations": [],
                    });
                    if let Some(image) = image {
                        v["deployedImage"] = json!(image);
                    }
                    v
                })
                .collect();
            json!({ "stageName": st.name, "parentStages": entry.shipyard.parent_stages(&st.name), "services": services })
        })
        .collect();
    let mut project = json!({
        "projectName": name,
        "creationDate": nanos(entry.created_ms),
        "shipyard": entry.shipyard_yaml,
        "shipyardVersion": entry.shipyard.api_version,
        "isUpstreamAutoProvisioned": false,
        "stages": stages,
    });
    let name = name.to_string();
    if let Ok(Some(creds)) = repo(state, move |r| r.upstream(&name)).await {
        project["gitCredentials"] = creds.redacted();
    }
    Ok(project)
}

fn entry(state: &Shared, project: &str) -> ApiResult<ProjectEntry> {
    state
        .catalog
        .read()
        .expect("catalog")
        .project(project)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("project {project:?} does not exist")))
}

pub async fn list(State(state): State<Shared>, Query(page): Query<PageParams>) -> ApiResult<Json<Value>> {
    let page = Page::from(&page, 100)?;
    let entries: Vec<(String, ProjectEntry)> =
        state.catalog.read().expect("catalog").projects.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let total = entries.len() as i64;
    let mut projects = Vec::new();
    for (name, e) in page.slice(&entries) {
        projects.push(expanded_project(&state, &name, &e).await?);
    }
    Ok(Json(
        json!({ "projects": projects, "nextPageKey": page.next_key(total), "pageSize": projects.len(), "totalCount": total }),
    ))
}

pub async fn get_one(State(state): State<Shared>, Path(project): Path<String>) -> ApiResult<Json<Value>> {
    let e = entry(&state, &project)?;
    Ok(Json(expanded_project(&state, &project, &e).await?))
}

fn stage_of(project: &Value, stage: &str) -> ApiResult<Value> {
    project["stages"].as_array().and_then(|s| s.iter().find(|s| s["stageName"] == stage)).cloned().ok_or_else(|| {
        ApiError::not_found(format!("stage {stage:?} does not exist in project {:?}", project["projectName"]))
    })
}

pub async fn stages(
    State(state): State<Shared>,
    Path(project): Path<String>,
    Query(page): Query<PageParams>,
) -> ApiResult<Json<Value>> {
    let page = Page::from(&page, 100)?;
    let e = entry(&state, &project)?;
    let view = expanded_project(&state, &project, &e).await?;
    let all = view["stages"].as_array().cloned().unwrap_or_default();
    let total = all.len() as i64;
    let stages = page.slice(&all);
    Ok(Json(
        json!({ "stages": stages, "nextPageKey": page.next_key(total), "pageSize": stages.len(), "totalCount": total }),
    ))
}

pub async fn stage(
    State(state): State<Shared>,
    Path((project, stage)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let e = entry(&state, &project)?;
    let view = expanded_project(&state, &project, &e).await?;
    Ok(Json(stage_of(&view, &stage)?))
}

pub async fn stage_services(
    State(state): State<Shared>,
    Path((project, stage)): Path<(String, String)>,
    Query(page): Query<PageParams>,
) -> ApiResult<Json<Value>> {
    let page = Page::from(&page, 100)?;
    let e = entry(&state, &project)?;
    let view = expanded_project(&state, &project, &e).await?;
    let all = stage_of(&view, &stage)?["services"].as_array().cloned().unwrap_or_default();
    let total = all.len() as i64;
    let services = page.slice(&all);
    Ok(Json(
        json!({ "services": services, "nextPageKey": page.next_key(total), "pageSize": services.len(), "totalCount": total }),
    ))
}

pub async fn stage_service(
    State(state): State<Shared>,
    Path((project, stage, service)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let e = entry(&state, &project)?;
    let view = expanded_project(&state, &project, &e).await?;
    stage_of(&view, &stage)?["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["serviceName"] == service))
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("service {service:?} does not exist in project {project:?}")))
}
