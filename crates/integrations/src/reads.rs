//! Reading configuration through the [`Context`]: the project → stage → service levels, and a
//! small cache of what was read at a named commit. A commit's content never changes, so what
//! was read at one is valid for as long as the process runs; reads at the head are never
//! cached (someone may commit in between).

use keptn_integration::{Context, ContextError, ContextResult, ResourceAt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Entries kept per cache before it starts afresh: enough for the configuration of many
/// services at a few commits, small enough not to matter.
const CACHE_ENTRIES: usize = 1024;

/// A read's outcome split in two: `Err` for a transient failure (return it, the runner offers the
/// event again), `Ok(Err(message))` for a refusal, which the integration reports in its answer.
pub(crate) fn split<T>(result: ContextResult<T>) -> ContextResult<Result<T, String>> {
    match result {
        Ok(v) => Ok(Ok(v)),
        Err(e) if e.is_transient() => Err(e),
        Err(ContextError::Refused { message, .. }) => Ok(Err(message)),
        Err(e) => Ok(Err(e.to_string())),
    }
}

/// Where `uri` lives; empty stage, service or commit are left out.
pub(crate) fn place(project: &str, stage: &str, service: &str, uri: &str, at: &str) -> ResourceAt {
    let some = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
    ResourceAt {
        project: project.into(),
        stage: some(stage),
        service: some(service),
        uri: uri.into(),
        gitcommitid: some(at),
    }
}

/// Project, stage and service level (lowest first), as far as the scope names them.
pub(crate) fn levels(project: &str, stage: &str, service: &str, uri: &str, at: &str) -> Vec<ResourceAt> {
    match (stage, service) {
        ("", _) => vec![place(project, "", "", uri, at)],
        (st, "") => vec![place(project, "", "", uri, at), place(project, st, "", uri, at)],
        (st, svc) => {
            vec![place(project, "", "", uri, at), place(project, st, "", uri, at), place(project, st, svc, uri, at)]
        }
    }
}

type Key = (String, Option<String>, Option<String>, String, String);

fn key(at: &ResourceAt, uri: &str) -> Option<Key> {
    let commit = at.gitcommitid.clone().filter(|c| !c.is_empty())?;
    Some((at.project.clone(), at.stage.clone(), at.service.clone(), uri.to_string(), commit))
}

/// Reads through a context, remembering what was read at a commit.
#[derive(Default)]
pub(crate) struct Reads {
    files: Mutex<HashMap<Key, Option<Arc<Vec<u8>>>>>,
    listings: Mutex<HashMap<Key, Option<Arc<Vec<String>>>>>,
}

fn remember<V: Clone>(map: &Mutex<HashMap<Key, V>>, key: Option<Key>, value: &V) {
    if let Some(key) = key {
        let mut map = map.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if map.len() >= CACHE_ENTRIES {
            map.clear();
        }
        map.insert(key, value.clone());
    }
}

fn recall<V: Clone>(map: &Mutex<HashMap<Key, V>>, key: &Option<Key>) -> Option<V> {
    let key = key.as_ref()?;
    map.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(key).cloned()
}

impl Reads {
    /// A resource's content; None when there is none (a missing stage or service included).
    pub(crate) async fn resource(&self, ctx: &dyn Context, at: &ResourceAt) -> ContextResult<Option<Arc<Vec<u8>>>> {
        let key = key(at, &at.uri);
        if let Some(hit) = recall(&self.files, &key) {
            return Ok(hit);
        }
        let found = match ctx.resource(at).await {
            Ok(found) => found.map(Arc::new),
            Err(ContextError::Refused { status: 404, .. }) => None,
            Err(e) => return Err(e),
        };
        remember(&self.files, key, &found);
        Ok(found)
    }

    /// The URIs at one place; None when the project, stage or service is not there.
    pub(crate) async fn resources(
        &self,
        ctx: &dyn Context,
        at: &ResourceAt,
    ) -> ContextResult<Option<Arc<Vec<String>>>> {
        let key = key(at, "");
        if let Some(hit) = recall(&self.listings, &key) {
            return Ok(hit);
        }
        let found = match ctx.resources(at).await {
            Ok(found) => found.map(Arc::new),
            Err(ContextError::Refused { status: 404, .. }) => None,
            Err(e) => return Err(e),
        };
        remember(&self.listings, key, &found);
        Ok(found)
    }

    /// `uri` at project, stage and service level (lowest first) at revision `at`; missing levels
    /// are skipped.
    pub(crate) async fn levels(
        &self,
        ctx: &dyn Context,
        project: &str,
        stage: &str,
        service: &str,
        uri: &str,
        at: &str,
    ) -> ContextResult<Vec<Arc<Vec<u8>>>> {
        let mut out = Vec::new();
        for place in levels(project, stage, service, uri, at) {
            if let Some(bytes) = self.resource(ctx, &place).await? {
                out.push(bytes);
            }
        }
        Ok(out)
    }
}

/// The `x` of every `x/sli.yaml` in a listing.
pub(crate) fn sli_providers(uris: &[String]) -> impl Iterator<Item = &str> {
    uris.iter().filter_map(|uri| match uri.trim_start_matches('/').split_once('/') {
        Some((dir, "sli.yaml")) if !dir.is_empty() && !dir.starts_with('.') => Some(dir),
        _ => None,
    })
}
