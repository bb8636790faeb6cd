use crate::error::{Error, Result};

/// Validates a resource URI (relative to its project, stage or service directory) and returns
/// it unchanged. Rejected, as keptn's resource-service does: empty URIs, `..` anywhere, `~`,
/// absolute paths. Also rejected, because they can't be a file path in git: backslashes,
/// control characters, empty or `.` components, a trailing `/`, and `.git` components.
pub fn validate_uri(uri: &str) -> Result<&str> {
    let bad = |reason| Err(Error::InvalidUri { uri: uri.to_string(), reason });
    if uri.is_empty() {
        return bad("must not be empty; name the file, e.g. \"shipyard.yaml\"");
    }
    if uri.starts_with('/') {
        return bad("must be relative (no leading '/'), e.g. \"helm/carts.tgz\"");
    }
    if uri.contains("..") {
        return bad("must not contain \"..\"");
    }
    if uri.contains('~') {
        return bad("must not contain '~'");
    }
    if uri.contains('\\') || uri.chars().any(char::is_control) {
        return bad("must not contain '\\' or control characters; separate directories with '/'");
    }
    if uri.ends_with('/') {
        return bad("must name a file, not a directory (trailing '/')");
    }
    for c in uri.split('/') {
        if c.is_empty() || c == "." {
            return bad("must not contain empty or '.' path components");
        }
        if c.eq_ignore_ascii_case(".git") {
            return bad("must not contain a \".git\" component");
        }
    }
    Ok(uri)
}
