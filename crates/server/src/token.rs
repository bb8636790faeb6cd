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
    crate::host::private_dir(data_dir)?;
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

/// The token of an `Authorization: Bearer <token>` header. The scheme is case-insensitive
/// (RFC 9110 §11.1), so `bearer` and `BEARER` work as well.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for header in ["Bearer abc", "bearer abc", "BEARER abc", "bEaReR  abc "] {
            assert_eq!(bearer_token(header), Some("abc"), "{header:?}");
        }
        for header in ["Basic abc", "Bearer", "Bearer ", "Bearerabc", ""] {
            assert_eq!(bearer_token(header), None, "{header:?}");
        }
    }
}
