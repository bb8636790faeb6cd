//! The project's git repository is the source of truth for its configuration: when its head
//! moves (a write through the API, or a change fetched from the upstream) the engine learns the
//! new revision, and a changed `shipyard.yaml` becomes the project's shipyard.

use crate::catalog::Catalog;
use crate::clock::now_ms;
use crate::error::{ApiError, ApiResult};
use crate::repo::repo;
use crate::state::AppState;
use keptn_configrepo::{ConfigRepo, Scope};
use keptn_formats::Shipyard;
use std::sync::Arc;

pub const SHIPYARD: &str = "shipyard.yaml";

/// Runs a configuration-repository call that changes `project`, then tells the engine the
/// project's new revision (sequences triggered without a `gitcommitid` are pinned to it) and
/// applies a changed `shipyard.yaml`.
pub async fn repo_write<T, F>(state: &AppState, project: &str, f: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce(&ConfigRepo) -> keptn_configrepo::Result<T> + Send + 'static,
{
    let name = project.to_string();
    let (out, head) = repo(state, move |r| {
        let out = f(r)?;
        Ok((out, r.head(&name).ok()))
    })
    .await?;
    if let Some(head) = head {
        after_head_change(state, project, head).await?;
    }
    Ok(out)
}

/// Checks a shipyard written to the repository: valid, and with the project's stages (keptn
/// forbids adding, removing or renaming stages after a project is created).
pub fn check_shipyard(catalog: &Catalog, project: &str, yaml: &str) -> Result<Shipyard, String> {
    let shipyard = Shipyard::parse(yaml).map_err(|e| format!("invalid shipyard: {e}"))?;
    if let Some(current) = catalog.project(project) {
        let (mut before, mut after) = (current.shipyard.stage_names(), shipyard.stage_names());
        before.sort();
        after.sort();
        if before != after {
            return Err(format!(
                "stages cannot be added, removed or renamed after a project is created (current stages: {before:?}, new: {after:?})"
            ));
        }
    }
    Ok(shipyard)
}

/// Tells the engine the project's new revision and applies a changed `shipyard.yaml`. An invalid
/// shipyard that arrived from the upstream is logged and the last valid one stays in force.
pub async fn after_head_change(state: &AppState, project: &str, head: String) -> ApiResult<()> {
    state.writer.set_revision(project.to_string(), head.clone()).await?;
    let (name, at) = (project.to_string(), head.clone());
    let yaml = match repo(state, move |r| r.read(&name, Scope::Project, SHIPYARD, Some(&at))).await {
        Ok((bytes, _)) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            tracing::warn!(project, error = %e.message, "the project's repository has no shipyard.yaml; keeping the last one");
            return Ok(());
        }
    };
    let checked = {
        let catalog = state.catalog.read().expect("catalog");
        match catalog.project(project) {
            Some(p) if p.shipyard_yaml == yaml => return Ok(()),
            Some(_) => check_shipyard(&catalog, project, &yaml),
            None => return Ok(()),
        }
    };
    match checked {
        Ok(shipyard) => apply_shipyard(state, project, shipyard, yaml).await,
        Err(why) => {
            tracing::error!(project, commit = %head, error = %why, "shipyard.yaml in the repository is not usable; keeping the last valid one");
            Ok(())
        }
    }
}

/// Makes `shipyard` the project's shipyard in the store, the catalog and the engine.
pub async fn apply_shipyard(state: &AppState, project: &str, shipyard: Shipyard, yaml: String) -> ApiResult<()> {
    state.store.update_project_shipyard(project, &yaml, now_ms()).await?;
    if let Some(p) = state.catalog.write().expect("catalog").projects.get_mut(project) {
        p.shipyard = shipyard.clone();
        p.shipyard_yaml = yaml;
    }
    state.writer.set_shipyard(project.to_string(), shipyard).await?;
    tracing::info!(project, "shipyard updated from the configuration repository");
    Ok(())
}

/// If the project's upstream was last asked longer ago than the freshness window, fetches it in
/// the background (the request that noticed does not wait) and applies what changed.
pub fn refresh_in_background(state: &Arc<AppState>, project: &str) {
    if !state.configrepo.is_stale(project) {
        return;
    }
    let (state, project) = (state.clone(), project.to_string());
    tokio::spawn(async move {
        let name = project.clone();
        match repo(&state, move |r| r.refresh_if_stale(&name)).await {
            Ok(Some(head)) => {
                if let Err(e) = after_head_change(&state, &project, head).await {
                    tracing::warn!(project, error = %e.message, "could not apply the upstream's changes");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(project, error = %e.message, "could not fetch the upstream"),
        }
    });
}

/// Reads at the head with `read`; a miss (404) on a project whose upstream was last asked longer
/// ago than the freshness window fetches first (waiting for a fetch already running), applies
/// what changed and reads again: the file may have been pushed there. An unreachable upstream is
/// logged and the miss stands.
pub async fn read_fresh<T, F>(state: &AppState, project: &str, read: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: Fn(&ConfigRepo) -> keptn_configrepo::Result<T> + Clone + Send + 'static,
{
    let miss = match repo(state, read.clone()).await {
        Err(e) if e.status == axum::http::StatusCode::NOT_FOUND => e,
        other => return other,
    };
    let name = project.to_string();
    match repo(state, move |r| r.refresh_stale(&name)).await {
        Ok(Some(head)) => after_head_change(state, project, head).await?,
        Ok(None) => return Err(miss),
        Err(e) => {
            tracing::warn!(project, error = %e.message, "could not fetch the upstream; answering from what we have");
            return Err(miss);
        }
    }
    repo(state, read).await
}

/// Before a sequence starts: if the project's upstream is older than the freshness window, fetch
/// it now, so the sequence runs with what was pushed there (keptn read the shipyard and
/// configuration fresh for every sequence). An unreachable upstream does not stop the sequence:
/// it runs at the revision we have.
pub async fn refresh_before_sequence(state: &AppState, project: &str) {
    if !state.configrepo.is_stale(project) {
        return;
    }
    let name = project.to_string();
    match repo(state, move |r| r.refresh_if_stale(&name)).await {
        Ok(Some(head)) => {
            if let Err(e) = after_head_change(state, project, head).await {
                tracing::warn!(project, error = %e.message, "could not apply the upstream's changes");
            }
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(project, error = %e.message, "could not fetch the upstream; the sequence runs at the last fetched revision")
        }
    }
}

/// At start: the shipyard committed in each project's repository wins over the copy in the
/// database (it may have changed upstream or through the resource API while we were down).
pub fn shipyards_from_git(repo: &ConfigRepo, catalog: &Catalog) -> Vec<(String, Shipyard, String)> {
    let mut changed = Vec::new();
    for (name, entry) in &catalog.projects {
        let Ok((bytes, _)) = repo.read(name, Scope::Project, SHIPYARD, None) else { continue };
        let yaml = String::from_utf8_lossy(&bytes).into_owned();
        if yaml == entry.shipyard_yaml {
            continue;
        }
        match check_shipyard(catalog, name, &yaml) {
            Ok(shipyard) => changed.push((name.clone(), shipyard, yaml)),
            Err(why) => {
                tracing::error!(project = %name, error = %why, "shipyard.yaml in the repository is not usable; keeping the last valid one")
            }
        }
    }
    changed
}

/// A project-level `shipyard.yaml` becomes the project's shipyard: refuse one that can't be.
pub fn check_shipyard_write(
    state: &AppState,
    project: &str,
    stage: Option<&str>,
    uri: &str,
    content: &[u8],
) -> ApiResult<()> {
    if stage.is_some() || uri != SHIPYARD {
        return Ok(());
    }
    let yaml = std::str::from_utf8(content).map_err(|_| ApiError::bad_request("shipyard.yaml is not UTF-8 text"))?;
    let catalog = state.catalog.read().expect("catalog");
    check_shipyard(&catalog, project, yaml).map(drop).map_err(ApiError::bad_request)
}

/// The upstream's URL without credentials, if the project has one.
pub fn upstream_url(r: &ConfigRepo, project: &str) -> Option<String> {
    r.upstream(project).ok().flatten().map(|c| c.display_url())
}

/// Writes resources at one level in one commit, as the resource API does (a project-level
/// `shipyard.yaml` must be a usable shipyard); returns the commit and the upstream's URL.
pub async fn write_resources(
    state: &AppState,
    project: String,
    stage: Option<String>,
    service: Option<String>,
    files: Vec<(String, Vec<u8>)>,
    message: String,
) -> ApiResult<(String, Option<String>)> {
    // keptn clients may send `/shipyard.yaml`; the repository wants relative URIs.
    let files: Vec<(String, Vec<u8>)> =
        files.into_iter().map(|(uri, content)| (uri.strip_prefix('/').unwrap_or(&uri).to_string(), content)).collect();
    for (uri, content) in &files {
        check_shipyard_write(state, &project, stage.as_deref(), uri, content)?;
    }
    repo_write(state, &project.clone(), move |r| {
        let scope = match (&stage, &service) {
            (Some(s), Some(svc)) => Scope::Service(s, svc),
            (Some(s), None) => Scope::Stage(s),
            _ => Scope::Project,
        };
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(u, c)| (u.as_str(), c.as_slice())).collect();
        Ok((r.write(&project, scope, &refs, &message)?, upstream_url(r, &project)))
    })
    .await
}
