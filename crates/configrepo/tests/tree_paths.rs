//! Paths git can't store are refused before anything is written, and a commit that fails leaves
//! the repository exactly as it was (`git fsck` clean, every later write and read working).

use keptn_configrepo::{ConfigRepo, Error, Scope};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// A project "p" with stage "dev" and service "carts".
fn project() -> (tempfile::TempDir, ConfigRepo) {
    let dir = tempfile::tempdir().unwrap();
    let r = ConfigRepo::open(dir.path()).unwrap();
    r.create_project("p").unwrap();
    r.create_stage("p", "dev").unwrap();
    r.create_service("p", "dev", "carts").unwrap();
    (dir, r)
}

/// Every file of a repository with its content.
fn snapshot(repo: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                out.insert(p.strip_prefix(root).unwrap().display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(repo, repo, &mut out);
    out
}

/// `git fsck --strict` finds nothing wrong, not even an unreachable object.
fn assert_fsck_clean(repo: &Path) {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(["fsck", "--strict", "--unreachable", "--no-progress"])
        .output()
        .unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.trim().is_empty(), "git fsck: {report}");
}

fn chart_with(path: &str) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()));
    for (p, content) in [("carts/Chart.yaml", "name: carts\n"), (path, "x")] {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, p, content.as_bytes()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

#[test]
fn names_git_cannot_store_are_refused_before_anything_is_written() {
    let (dir, r) = project();
    let repo = dir.path().join("p");
    let before = snapshot(&repo);
    let long = "a".repeat(65_536);
    let deep = vec!["abcdefgh"; 460].join("/");
    let bad = [
        long.as_str(),
        &"b".repeat(256),
        &format!("dir/{}", "é".repeat(128)),
        &deep,
        ".git.",
        "x/.git ",
        ".git::$INDEX_ALLOCATION/config",
        ".GIT:$DATA",
        "x/.g\u{200c}it/config",
    ];
    for uri in bad {
        for scope in [Scope::Project, Scope::Stage("dev"), Scope::Service("dev", "carts")] {
            let e = r.write("p", scope, &[(uri, b"x")], "m").unwrap_err();
            assert!(matches!(e, Error::InvalidUri { .. }) && e.is_bad_request(), "{}: {e}", &uri[..uri.len().min(40)]);
            assert!(e.to_string().len() < 300, "the message does not echo a long name: {e}");
        }
    }
    assert_eq!(snapshot(&repo), before, "nothing was written");
    // A name at the limits is fine.
    let ok = "c".repeat(255);
    r.write("p", Scope::Stage("dev"), &[(ok.as_str(), b"y")], "m").unwrap();
    r.write("p", Scope::Stage("dev"), &[("next.yaml", b"z")], "m").unwrap();
    assert_eq!(r.read("p", Scope::Stage("dev"), &ok, None).unwrap().0, b"y");
    assert_eq!(
        r.list("p", Scope::Stage("dev"), None).unwrap(),
        vec![ok.clone(), "metadata.yaml".into(), "next.yaml".into()]
    );
    assert_fsck_clean(&repo);
}

#[test]
fn helm_entries_follow_the_same_rules() {
    let (dir, r) = project();
    let repo = dir.path().join("p");
    let before = snapshot(&repo);
    let long = format!("carts/templates/{}", "a".repeat(70_000));
    for entry in [long.as_str(), "carts/.git./config", "carts/x/.GIT::$INDEX_ALLOCATION", "carts/GIT~1/config"] {
        let e =
            r.write("p", Scope::Service("dev", "carts"), &[("helm/carts.tgz", &chart_with(entry))], "m").unwrap_err();
        assert!(matches!(e, Error::InvalidHelmChart { .. }) && e.is_bad_request(), "{entry:.40}: {e}");
        assert!(e.to_string().contains("can't be stored in git") && e.to_string().len() < 400, "{e}");
    }
    assert_eq!(snapshot(&repo), before, "nothing was written");
    r.write("p", Scope::Service("dev", "carts"), &[("helm/carts.tgz", &chart_with("carts/values.yaml"))], "m").unwrap();
    assert_eq!(r.read("p", Scope::Service("dev", "carts"), "helm/carts/values.yaml", None).unwrap().0, b"x");
    assert_fsck_clean(&repo);
}

#[test]
fn metadata_yaml_is_managed_by_keptn() {
    let (dir, r) = project();
    let before = snapshot(&dir.path().join("p"));
    for (scope, uri) in [
        (Scope::Project, "metadata.yaml"),
        (Scope::Stage("dev"), "metadata.yaml"),
        (Scope::Stage("dev"), "orders/metadata.yaml"),
        (Scope::Service("dev", "carts"), "metadata.yaml"),
    ] {
        let e = r.write("p", scope, &[(uri, b"projectName: evil\n")], "m").unwrap_err();
        assert!(e.is_bad_request() && e.to_string().contains("managed by keptn"), "{uri}: {e}");
    }
    assert!(r.delete("p", Scope::Stage("dev"), "carts/metadata.yaml", "m").unwrap_err().is_bad_request());
    assert_eq!(snapshot(&dir.path().join("p")), before);
    // Deeper files of that name are ordinary resources.
    r.write("p", Scope::Service("dev", "carts"), &[("helm/metadata.yaml", b"x")], "m").unwrap();
    r.write("p", Scope::Stage("dev"), &[("a/b/metadata.yaml", b"x")], "m").unwrap();
}

#[test]
fn a_project_with_its_stages_and_files_is_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    let r = ConfigRepo::open(dir.path()).unwrap();
    let stages: Vec<String> = (0..100).map(|i| format!("stage{i}")).collect();
    let stages: Vec<&str> = stages.iter().map(String::as_str).collect();
    let id = r.create_project_with("p", &stages, &[("shipyard.yaml", b"spec: {}\n")], "Created project p").unwrap();
    let git = git2::Repository::open_bare(dir.path().join("p")).unwrap();
    let head = git.head().unwrap().peel_to_commit().unwrap();
    assert_eq!(head.id().to_string(), id);
    assert_eq!(head.parent_count(), 0, "one commit");
    assert_eq!(r.read("p", Scope::Project, "shipyard.yaml", None).unwrap().0, b"spec: {}\n");
    let meta = r.read("p", Scope::Stage("stage99"), "metadata.yaml", None).unwrap().0;
    assert!(String::from_utf8(meta).unwrap().contains("stageName: stage99"));
    assert!(matches!(r.create_stage("p", "stage7"), Err(Error::StageExists { .. })));
    assert_fsck_clean(&dir.path().join("p"));

    // Bad input creates nothing.
    assert!(matches!(r.create_project_with("q", &["dev", "dev"], &[], "m"), Err(Error::StageExists { .. })));
    assert!(matches!(r.create_project_with("q", &["a/b"], &[], "m"), Err(Error::InvalidName { .. })));
    assert!(matches!(r.create_project_with("q", &["dev"], &[(".git.", b"x")], "m"), Err(Error::InvalidUri { .. })));
    assert_eq!(r.projects().unwrap(), vec!["p".to_string()]);
}
