//! Which resources of the configuration repository a task's `files` name. Pure.
//!
//! As job-executor-service: an entry names a file or a whole directory of the service's
//! resources (`locust/basic.py`, `/helm`, leading slash optional); each is placed at the same
//! path below the job's `/keptn`.

/// The URIs of `listing` that `wanted` names, in listing order, or the first entry that names
/// nothing.
pub fn select(listing: &[String], wanted: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for entry in wanted {
        let name = entry.trim().trim_matches('/');
        let mut named_any = false;
        for uri in listing {
            let path = uri.trim_start_matches('/');
            let named =
                !name.is_empty() && (path == name || path.strip_prefix(name).is_some_and(|rest| rest.starts_with('/')));
            named_any |= named;
            if named && !out.iter().any(|u| u == path) {
                out.push(path.to_string());
            }
        }
        if !named_any {
            return Err(format!("{entry:?} is neither a file nor a directory of the service's resources"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn files_and_directories() {
        let listing =
            s(&["helm/chart/Chart.yaml", "helm/values.yaml", "helmfile", "locust/basic.py", "job/config.yaml"]);
        assert_eq!(select(&listing, &s(&["/helm"])).unwrap(), s(&["helm/chart/Chart.yaml", "helm/values.yaml"]));
        assert_eq!(select(&listing, &s(&["locust/basic.py", "helm/"])).unwrap().len(), 3);
        assert_eq!(select(&listing, &s(&["helmfile"])).unwrap(), s(&["helmfile"]));
        let err = select(&listing, &s(&["locust/missing.py"])).unwrap_err();
        assert!(err.contains("\"locust/missing.py\""), "{err}");
        assert!(select(&listing, &s(&["/"])).is_err());
    }
}
