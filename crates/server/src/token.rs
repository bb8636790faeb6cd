//! The API token: from the environment, or generated once and kept in the data dir (0600).

use anyhow::Context as _;
use rand::Rng;
use std::path::Path;

/// Returns (token, newly_generated).
pub fn load_or_create_token(data_dir: &Path) -> anyhow::Result<(String, bool)> {
    let path = data_dir.join("api-token");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let t = existing.trim().to_string();
        if !t.is_empty() {
            return Ok((t, false));
        }
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let token: String = rand::rng().sample_iter(rand::distr::Alphanumeric).take(45).map(char::from).collect();
    write_private(&path, &token).with_context(|| format!("cannot write {}", path.display()))?;
    Ok((token, true))
}

#[cfg(unix)]
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(content.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    std::fs::write(path, content)
}
