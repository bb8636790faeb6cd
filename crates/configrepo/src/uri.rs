//! The rules for paths that become git tree entries: resource URIs and the files unpacked from helm
//! chart archives go through [`path_problem`] before anything is written.

use crate::error::{Error, Result};

/// Longest path component, in bytes: most filesystems' limit, so a clone of the upstream can check
/// it out. (libgit2 stores a tree entry's name length in 16 bits: a name of 65,536 bytes or more
/// makes it write a corrupt tree.)
pub const MAX_COMPONENT_BYTES: usize = 255;
/// Longest path, in bytes (Linux's `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;

/// Validates a resource URI (relative to its project, stage or service directory) and returns
/// it unchanged. Rejected, as keptn's resource-service does: empty URIs, `..` anywhere, `~`,
/// absolute paths. Also rejected, because git can't store them or a checkout would break:
/// everything [`path_problem`] finds and a trailing `/`.
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
    if uri.ends_with('/') {
        return bad("must name a file, not a directory (trailing '/')");
    }
    match path_problem(uri) {
        Some(reason) => bad(reason),
        None => Ok(uri),
    }
}

/// Why `path` (components separated by `/`) can't be stored as git tree entries, or `None`.
/// Git's own rules (`verify_path` with `core.protectNTFS` and `core.protectHFS`, which a clone
/// on Windows or macOS applies) plus length limits; see [`component_problem`].
pub(crate) fn path_problem(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("must not be empty");
    }
    if path.len() > MAX_PATH_BYTES {
        return Some("is longer than 4096 bytes; use a shorter path");
    }
    path.split('/').find_map(component_problem)
}

/// Why one path component can't be a git tree entry name, or `None`.
fn component_problem(c: &str) -> Option<&'static str> {
    if c.is_empty() || c == "." || c == ".." {
        return Some("must not contain empty, '.' or '..' path components");
    }
    if c.len() > MAX_COMPONENT_BYTES {
        return Some("has a path component longer than 255 bytes; use shorter file and directory names");
    }
    if c.contains('\\') || c.chars().any(char::is_control) {
        return Some("must not contain '\\' or control characters; separate directories with '/'");
    }
    if is_dot_git(c) {
        return Some("must not contain a \".git\" component (nor one Windows or macOS reads as \".git\")");
    }
    None
}

/// Whether a component names the repository's own `.git` directory on some filesystem: `.git`
/// in any case; on NTFS also with trailing dots or spaces, an alternate stream (`.git::$DATA`)
/// and the short name `git~1`; on HFS+ also with ignorable code points (`.g\u{200c}it`).
fn is_dot_git(c: &str) -> bool {
    let lower = c.to_ascii_lowercase();
    let ntfs_rest = lower.strip_prefix(".git").or_else(|| lower.strip_prefix("git~1"));
    if let Some(rest) = ntfs_rest {
        let rest = rest.trim_start_matches(['.', ' ']);
        if rest.is_empty() || rest.starts_with(':') {
            return true;
        }
    }
    let hfs: String = lower.chars().filter(|&ch| !is_hfs_ignorable(ch)).collect();
    hfs == ".git"
}

/// Code points HFS+ ignores when comparing names (git's `is_hfs_dotgit` list).
fn is_hfs_ignorable(ch: char) -> bool {
    matches!(ch, '\u{200c}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{206a}'..='\u{206f}' | '\u{feff}')
}

/// A path for messages: long ones are cut (a 70,000-byte name is not echoed back).
pub(crate) fn shorten(path: &str) -> String {
    const KEEP: usize = 80;
    if path.len() <= KEEP {
        return path.to_string();
    }
    let mut end = KEEP;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &path[..end], path.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_reserved_names() {
        for c in [
            ".git",
            ".GIT",
            ".git.",
            ".git ",
            ".git. .",
            ".git::$INDEX_ALLOCATION",
            ".git:$DATA",
            "git~1",
            "GIT~1",
            "GIT~1.",
            ".g\u{200c}it",
            "\u{feff}.git",
        ] {
            assert!(is_dot_git(c), "{c:?}");
            assert!(path_problem(&format!("a/{c}/b")).is_some(), "{c:?}");
        }
        for c in [".gitignore", ".github", "git", ".gi", "git~2", ".git-x", "x.git"] {
            assert!(!is_dot_git(c), "{c:?}");
            assert_eq!(path_problem(&format!("a/{c}")), None, "{c:?}");
        }
    }

    #[test]
    fn lengths() {
        assert_eq!(path_problem(&"a".repeat(255)), None);
        assert!(path_problem(&"a".repeat(256)).is_some());
        assert!(path_problem(&"é".repeat(128)).is_some(), "bytes, not characters");
        let deep = vec!["abcdefg"; 512].join("/");
        assert_eq!(deep.len(), 4095);
        assert_eq!(path_problem(&deep), None);
        assert!(path_problem(&format!("{deep}/x")).is_some());
        assert!(validate_uri(&"a".repeat(65_536)).is_err());
    }

    #[test]
    fn shortens_long_paths_only() {
        assert_eq!(shorten("helm/carts.tgz"), "helm/carts.tgz");
        let long = shorten(&"é".repeat(70_000));
        assert!(long.len() < 100 && long.ends_with("(140000 bytes)"), "{long}");
    }
}
