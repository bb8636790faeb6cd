//! Image names: the allowed-image list and the local runner's image → command mapping, both by
//! glob (`*` any run of characters, `?` one). Pure.
//!
//! A pattern without a tag or digest also matches the image with any tag or digest (`alpine`
//! allows `alpine:3.20` and `alpine@sha256:…`), as job-executor-service's list did; unlike it,
//! no registry (`docker.io/`) or user (`library/`) is implied: write `*alpine` to allow
//! `docker.io/library/alpine`.

/// Whether `text` matches the glob `pattern` as a whole.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Iterative matching with one backtrack point for the last `*` (linear in practice).
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None::<usize>, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The image without its tag or digest (`a/b:1` → `a/b`; a registry port is kept).
fn untagged(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    match image.rfind(':') {
        Some(colon) if !image[colon..].contains('/') => &image[..colon],
        _ => image,
    }
}

/// Whether an image matches a pattern (see the module doc).
pub fn image_matches(pattern: &str, image: &str) -> bool {
    glob(pattern, image) || (untagged(pattern) == pattern && glob(pattern, untagged(image)))
}

/// Whether the allowed-image list allows `image` (an empty list allows every image).
pub fn allowed(list: &[String], image: &str) -> bool {
    list.is_empty() || list.iter().any(|pattern| image_matches(pattern, image))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*", ""));
        assert!(glob("docker.io/*", "docker.io/library/alpine:3"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob("*a*b*", "xxaxxbxx"));
        assert!(!glob("*a*b", "xxaxxbxx"));
    }

    #[test]
    fn images_match_with_any_tag_unless_the_pattern_has_one() {
        assert!(image_matches("alpine", "alpine"));
        assert!(image_matches("alpine", "alpine:3.20"));
        assert!(image_matches("alpine", "alpine@sha256:abc"));
        assert!(!image_matches("alpine:3.19", "alpine:3.20"));
        assert!(image_matches("localhost:5000/tools", "localhost:5000/tools:1"));
        assert!(!image_matches("alpine", "docker.io/library/alpine"));
        assert!(image_matches("*alpine", "docker.io/library/alpine:3"));
        assert!(!image_matches("alpine", "alpine-evil"));
    }

    #[test]
    fn the_allowed_list() {
        assert!(allowed(&[], "anything"));
        let list = vec!["alpine".to_string(), "ghcr.io/acme/*".to_string()];
        assert!(allowed(&list, "ghcr.io/acme/tool:1"));
        assert!(!allowed(&list, "busybox"));
    }
}
