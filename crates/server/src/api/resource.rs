//! keptn's resource-service (`/api/resource-service/v1/project/{p}[/stage/{s}[/service/{svc}]]/resource…`)
//! over the git-backed configuration repository: base64 content, `metadata.version` = commit id,
//! `?gitCommitID=` reads at a revision.

use super::paging::Page;
use crate::body::JsonBody;
use crate::config_sync::repo_write;
use crate::config_sync::{SHIPYARD, read_fresh, refresh_in_background, upstream_url, write_resources};
use crate::error::{ApiError, ApiResult};
use crate::repo::repo;
use crate::state::Shared;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use base64::Engine as _;
use keptn_configrepo::{ConfigRepo, Scope};
use serde::Deserialize;
use serde_json::{Value, json};

/// The path parameters of every resource route; `stage`, `service` and `uri` are present only on
/// the routes that have them. axum has already percent-decoded them (`helm%2Fcarts.tgz` →
/// `helm/carts.tgz`).
#[derive(Deserialize)]
pub struct ResourcePath {
    project: String,
    stage: Option<String>,
    service: Option<String>,
    uri: Option<String>,
}

/// The level a request addresses, owned so it can move into a blocking task.
#[derive(Clone)]
struct Level {
    stage: Option<String>,
    service: Option<String>,
}

impl Level {
    fn of(p: &ResourcePath) -> Level {
        Level { stage: p.stage.clone(), service: p.service.clone() }
    }

    fn scope(&self) -> Scope<'_> {
        match (&self.stage, &self.service) {
            (Some(s), Some(svc)) => Scope::Service(s, svc),
            (Some(s), None) => Scope::Stage(s),
            _ => Scope::Project,
        }
    }
}

/// keptn clients may send `/shipyard.yaml`; the repository wants relative URIs.
fn strip_slash(uri: &str) -> String {
    uri.strip_prefix('/').unwrap_or(uri).to_string()
}

fn path_uri(p: &ResourcePath) -> ApiResult<String> {
    let uri = p.uri.as_deref().unwrap_or_default();
    let uri = strip_slash(uri);
    if uri.is_empty() {
        return Err(ApiError::bad_request(
            "the resource URI is missing; URL-escape it into the path, e.g. helm%2Fcarts.tgz",
        ));
    }
    Ok(uri)
}

fn decode(uri: &str, content: &str) -> ApiResult<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(content.trim())
        .map_err(|e| ApiError::bad_request(format!("resourceContent of {uri:?} must be base64-encoded: {e}")))
}

fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// keptn's resource metadata: the commit and, with an upstream, its URL.
fn metadata(upstream: &Option<String>, version: &str) -> Value {
    match upstream {
        Some(url) => json!({ "upstreamURL": url, "version": version }),
        None => json!({ "version": version }),
    }
}

fn commit_response((commit, upstream): (String, Option<String>)) -> Value {
    json!({ "commitID": commit, "metadata": metadata(&upstream, &commit) })
}

/// A project-level `shipyard.yaml` becomes the project's shipyard: refuse one that can't be.
fn check_shipyard_write(state: &Shared, project: &str, level: &Level, uri: &str, content: &[u8]) -> ApiResult<()> {
    crate::config_sync::check_shipyard_write(state, project, level.stage.as_deref(), uri, content)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceQuery {
    #[serde(rename = "gitCommitID")]
    git_commit_id: Option<String>,
    page_size: Option<String>,
    next_page_key: Option<String>,
}

impl ResourceQuery {
    fn at(&self) -> Option<String> {
        self.git_commit_id.clone().filter(|s| !s.is_empty())
    }
}

/// GET …/resource: the level's resources at the head, or at `gitCommitID` (keptn ignores it;
/// a remote integration lists what an event's commit holds).
pub async fn list(
    State(state): State<Shared>,
    Path(path): Path<ResourcePath>,
    Query(q): Query<ResourceQuery>,
) -> ApiResult<Json<Value>> {
    let page = Page::parse(q.page_size.as_deref(), q.next_page_key.as_deref(), 100)?;
    let level = Level::of(&path);
    let project = path.project.clone();
    let at = q.at();
    let (head, uris, upstream) = repo(&state, move |r| {
        let head = match at {
            Some(commit) => commit,
            None => r.head(&project)?,
        };
        let uris = r.list(&project, level.scope(), Some(&head))?;
        Ok((head, uris, upstream_url(r, &project)))
    })
    .await?;
    refresh_in_background(&state, &path.project);
    let total = uris.len() as i64;
    let resources: Vec<Value> = page
        .slice(&uris)
        .into_iter()
        .map(|uri| json!({ "resourceURI": uri, "metadata": metadata(&upstream, &head) }))
        .collect();
    Ok(Json(json!({
        "resources": resources, "nextPageKey": page.next_key(total), "pageSize": resources.len(), "totalCount": total,
    })))
}

#[derive(Deserialize)]
pub struct ResourceItem {
    #[serde(rename = "resourceURI", default)]
    resource_uri: String,
    #[serde(rename = "resourceContent", default)]
    resource_content: String,
}

#[derive(Deserialize)]
pub struct ResourcesBody {
    #[serde(default)]
    resources: Vec<ResourceItem>,
}

async fn write_many(
    state: &Shared,
    path: ResourcePath,
    body: ResourcesBody,
    message: &'static str,
) -> ApiResult<Value> {
    if body.resources.is_empty() {
        return Err(ApiError::bad_request(
            "resources is empty; send {\"resources\":[{\"resourceURI\":…,\"resourceContent\":<base64>}]}",
        ));
    }
    let mut files = Vec::with_capacity(body.resources.len());
    for item in &body.resources {
        let uri = strip_slash(&item.resource_uri);
        let content = decode(&uri, &item.resource_content)?;
        files.push((uri, content));
    }
    let commit = write_resources(state, path.project, path.stage, path.service, files, message.into()).await?;
    Ok(commit_response(commit))
}

/// POST …/resource: creates (or replaces) resources in one commit.
pub async fn create(
    State(state): State<Shared>,
    Path(path): Path<ResourcePath>,
    JsonBody(body): JsonBody<ResourcesBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    Ok((StatusCode::CREATED, Json(write_many(&state, path, body, "Added resources").await?)))
}

/// PUT …/resource: replaces (or creates) resources in one commit.
pub async fn update(
    State(state): State<Shared>,
    Path(path): Path<ResourcePath>,
    JsonBody(body): JsonBody<ResourcesBody>,
) -> ApiResult<Json<Value>> {
    Ok(Json(write_many(&state, path, body, "Updated resources").await?))
}

/// GET …/resource/{uri}: one resource at the head or at `gitCommitID`.
pub async fn get_one(
    State(state): State<Shared>,
    Path(path): Path<ResourcePath>,
    Query(q): Query<ResourceQuery>,
) -> ApiResult<Json<Value>> {
    let uri = path_uri(&path)?;
    let level = Level::of(&path);
    let (project, at, u) = (path.project.clone(), q.at(), uri.clone());
    let pinned = at.is_some();
    let read = move |r: &ConfigRepo| {
        let (content, version) = r.read(&project, level.scope(), &u, at.as_deref())?;
        Ok((content, version, upstream_url(r, &project)))
    };
    let (content, version, upstream) = if pinned {
        // A missing revision is fetched by the repository itself.
        repo(&state, read).await?
    } else {
        let found = read_fresh(&state, &path.project, read).await?;
        refresh_in_background(&state, &path.project);
        found
    };
    Ok(Json(
        json!({ "resourceURI": uri, "resourceContent": encode(&content), "metadata": metadata(&upstream, &version) }),
    ))
}

#[derive(Deserialize)]
pub struct ResourceContentBody {
    #[serde(rename = "resourceContent", default)]
    resource_content: String,
}

/// PUT …/resource/{uri}: writes one resource.
pub async fn put_one(
    State(state): State<Shared>,
    Path(path): Path<ResourcePath>,
    JsonBody(body): JsonBody<ResourceContentBody>,
) -> ApiResult<Json<Value>> {
    let uri = path_uri(&path)?;
    let content = decode(&uri, &body.resource_content)?;
    let level = Level::of(&path);
    check_shipyard_write(&state, &path.project, &level, &uri, &content)?;
    let project = path.project;
    let commit = repo_write(&state, &project.clone(), move |r| {
        let commit = r.write(&project, level.scope(), &[(uri.as_str(), content.as_slice())], "Updated resource")?;
        Ok((commit, upstream_url(r, &project)))
    })
    .await?;
    Ok(Json(commit_response(commit)))
}

/// DELETE …/resource/{uri}: deletes one resource.
pub async fn delete_one(State(state): State<Shared>, Path(path): Path<ResourcePath>) -> ApiResult<Json<Value>> {
    let uri = path_uri(&path)?;
    let level = Level::of(&path);
    let project = path.project;
    if level.stage.is_none() && uri == SHIPYARD {
        return Err(ApiError::bad_request("shipyard.yaml defines the project; update it instead of deleting it"));
    }
    let commit = repo_write(&state, &project.clone(), move |r| {
        Ok((r.delete(&project, level.scope(), &uri, "Deleted resource")?, upstream_url(r, &project)))
    })
    .await?;
    Ok(Json(commit_response(commit)))
}
