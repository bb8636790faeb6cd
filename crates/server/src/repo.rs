//! The configuration repository's adapter: libgit2 is synchronous, so every call runs on the
//! blocking pool. Writes that move a project's head go through `config_sync::repo_write`.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use keptn_configrepo::ConfigRepo;

/// Runs a configuration-repository call on the blocking pool (libgit2 is synchronous).
pub async fn repo<T, F>(state: &AppState, f: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce(&ConfigRepo) -> keptn_configrepo::Result<T> + Send + 'static,
{
    let repo = state.configrepo.clone();
    tokio::task::spawn_blocking(move || f(&repo))
        .await
        .map_err(|e| ApiError::unavailable(format!("the configuration repository task failed; retry later ({e})")))?
        .map_err(ApiError::from)
}
