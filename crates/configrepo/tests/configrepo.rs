use keptn_configrepo::{Author, ConfigRepo, Error, Scope};
use std::time::Instant;

fn repo() -> (tempfile::TempDir, ConfigRepo) {
    let dir = tempfile::tempdir().unwrap();
    let repo = ConfigRepo::open(dir.path()).unwrap();
    (dir, repo)
}

/// A project "p" with stage "dev" and service "carts".
fn project() -> (tempfile::TempDir, ConfigRepo) {
    let (dir, r) = repo();
    r.create_project("p").unwrap();
    r.create_stage("p", "dev").unwrap();
    r.create_service("p", "dev", "carts").unwrap();
    (dir, r)
}

fn read(r: &ConfigRepo, scope: Scope<'_>, uri: &str) -> String {
    String::from_utf8(r.read("p", scope, uri, None).unwrap().0).unwrap()
}

#[test]
fn create_project_makes_initial_commit_with_metadata() {
    let (dir, r) = repo();
    let id = r.create_project("sockshop").unwrap();
    assert_eq!(id.len(), 40);
    assert_eq!(r.head("sockshop").unwrap(), id);
    let (meta, version) = r.read("sockshop", Scope::Project, "metadata.yaml", None).unwrap();
    let meta = String::from_utf8(meta).unwrap();
    assert!(meta.contains("projectName: sockshop"), "{meta}");
    assert!(meta.contains("isUsingDirectoryStructure: true"), "{meta}");
    assert_eq!(version, id);
    assert_eq!(r.projects().unwrap(), vec!["sockshop".to_string()]);

    // A plain git repository: the commit is on master, authored by keptn.
    let git = git2::Repository::open_bare(dir.path().join("sockshop")).unwrap();
    let head = git.head().unwrap();
    assert_eq!(head.name().ok(), Some("refs/heads/master"));
    let commit = head.peel_to_commit().unwrap();
    assert_eq!(commit.author().name().ok(), Some("keptn"));
    assert_eq!(commit.author().email().ok(), Some("keptn@keptn.sh"));
    assert_eq!(commit.committer().name().ok(), Some("keptn"));
    assert!(commit.message().unwrap().contains("sockshop"));

    assert!(matches!(r.create_project("sockshop"), Err(Error::ProjectExists { .. })));
}

#[test]
fn configurable_author() {
    let dir = tempfile::tempdir().unwrap();
    let r =
        ConfigRepo::open(dir.path()).unwrap().with_author(Author { name: "ci".into(), email: "ci@example.com".into() });
    r.create_project("p").unwrap();
    r.write("p", Scope::Project, &[("a", b"1")], "Updated resource").unwrap();
    let git = git2::Repository::open_bare(dir.path().join("p")).unwrap();
    let c = git.head().unwrap().peel_to_commit().unwrap();
    assert_eq!(c.author().email().ok(), Some("ci@example.com"));
    assert_eq!(c.message().ok(), Some("Updated resource"));
}

#[test]
fn stage_and_service_layout() {
    let (dir, r) = project();
    assert!(read(&r, Scope::Stage("dev"), "metadata.yaml").contains("stageName: dev"));
    assert!(read(&r, Scope::Service("dev", "carts"), "metadata.yaml").contains("serviceName: carts"));
    assert!(matches!(r.create_stage("p", "dev"), Err(Error::StageExists { .. })));
    assert!(matches!(r.create_service("p", "dev", "carts"), Err(Error::ServiceExists { .. })));
    assert!(matches!(r.create_service("p", "prod", "carts"), Err(Error::StageNotFound { .. })));

    // keptn's directory layout in the git tree.
    let git = git2::Repository::open_bare(dir.path().join("p")).unwrap();
    let tree = git.head().unwrap().peel_to_tree().unwrap();
    for path in ["metadata.yaml", ".keptn-stages/dev/metadata.yaml", ".keptn-stages/dev/carts/metadata.yaml"] {
        tree.get_path(std::path::Path::new(path)).unwrap();
    }
}

#[test]
fn write_read_list_at_each_level() {
    let (_dir, r) = project();
    let before = r.head("p").unwrap();
    let id = r
        .write(
            "p",
            Scope::Project,
            &[("shipyard.yaml", b"kind: Shipyard"), ("webhook/webhook.yaml", b"w")],
            "Updated resource",
        )
        .unwrap();
    assert_ne!(id, before);
    assert_eq!(r.head("p").unwrap(), id);
    r.write("p", Scope::Stage("dev"), &[("sli.yaml", b"stage sli")], "Updated resource").unwrap();
    let last = r
        .write(
            "p",
            Scope::Service("dev", "carts"),
            &[("slo.yaml", b"svc slo"), ("files/blob.bin", &[0x1f, 0x8b, 0, 255])],
            "Updated resource",
        )
        .unwrap();

    assert_eq!(read(&r, Scope::Project, "shipyard.yaml"), "kind: Shipyard");
    assert_eq!(read(&r, Scope::Stage("dev"), "sli.yaml"), "stage sli");
    assert_eq!(read(&r, Scope::Service("dev", "carts"), "slo.yaml"), "svc slo");
    let (bin, version) = r.read("p", Scope::Service("dev", "carts"), "files/blob.bin", None).unwrap();
    assert_eq!(bin, vec![0x1f, 0x8b, 0, 255]);
    assert_eq!(version, last);

    // Same URI on different levels are different files.
    assert!(matches!(r.read("p", Scope::Project, "slo.yaml", None), Err(Error::ResourceNotFound { .. })));

    assert_eq!(
        r.list("p", Scope::Project, None).unwrap(),
        vec!["metadata.yaml", "shipyard.yaml", "webhook/webhook.yaml"]
    );
    assert_eq!(r.list("p", Scope::Stage("dev"), None).unwrap(), vec!["metadata.yaml", "sli.yaml"]);
    assert_eq!(
        r.list("p", Scope::Service("dev", "carts"), None).unwrap(),
        vec!["files/blob.bin", "metadata.yaml", "slo.yaml"]
    );

    // Overwrite, then an identical write makes no commit.
    let id2 = r.write("p", Scope::Project, &[("shipyard.yaml", b"v2")], "Updated resource").unwrap();
    assert_eq!(read(&r, Scope::Project, "shipyard.yaml"), "v2");
    let id3 = r.write("p", Scope::Project, &[("shipyard.yaml", b"v2")], "Updated resource").unwrap();
    assert_eq!(id2, id3);
}

#[test]
fn delete_resource_and_service() {
    let (_dir, r) = project();
    r.write("p", Scope::Service("dev", "carts"), &[("a/b.yaml", b"x")], "add").unwrap();
    let id = r.delete("p", Scope::Service("dev", "carts"), "a/b.yaml", "Deleted resource").unwrap();
    assert_eq!(r.head("p").unwrap(), id);
    assert!(matches!(
        r.read("p", Scope::Service("dev", "carts"), "a/b.yaml", None),
        Err(Error::ResourceNotFound { .. })
    ));
    assert!(matches!(
        r.delete("p", Scope::Service("dev", "carts"), "a/b.yaml", "again"),
        Err(Error::ResourceNotFound { .. })
    ));
    assert!(matches!(r.delete("p", Scope::Stage("dev"), "metadata.yaml", "no"), Err(Error::InvalidUri { .. })));

    r.delete_service("p", "dev", "carts").unwrap();
    assert!(matches!(
        r.read("p", Scope::Service("dev", "carts"), "metadata.yaml", None),
        Err(Error::ServiceNotFound { .. })
    ));
    assert_eq!(r.list("p", Scope::Stage("dev"), None).unwrap(), vec!["metadata.yaml"]);
    assert!(matches!(r.delete_service("p", "dev", "carts"), Err(Error::ServiceNotFound { .. })));
}

#[test]
fn read_at_older_commit() {
    let (_dir, r) = project();
    let v1 = r.write("p", Scope::Stage("dev"), &[("slo.yaml", b"one")], "v1").unwrap();
    let v2 = r.write("p", Scope::Stage("dev"), &[("slo.yaml", b"two"), ("new.yaml", b"n")], "v2").unwrap();
    let (old, version) = r.read("p", Scope::Stage("dev"), "slo.yaml", Some(&v1)).unwrap();
    assert_eq!(old, b"one");
    assert_eq!(version, v1);
    // Abbreviated ids work too.
    let (old, version) = r.read("p", Scope::Stage("dev"), "slo.yaml", Some(&v1[..8])).unwrap();
    assert_eq!((old.as_slice(), version.as_str()), (&b"one"[..], v1.as_str()));
    assert_eq!(read(&r, Scope::Stage("dev"), "slo.yaml"), "two");
    assert_eq!(r.list("p", Scope::Stage("dev"), Some(&v1)).unwrap(), vec!["metadata.yaml", "slo.yaml"]);
    assert_eq!(r.list("p", Scope::Stage("dev"), Some(&v2)).unwrap(), vec!["metadata.yaml", "new.yaml", "slo.yaml"]);
    assert!(matches!(r.read("p", Scope::Stage("dev"), "new.yaml", Some(&v1)), Err(Error::ResourceNotFound { .. })));
    for bad in ["0000000000000000000000000000000000000000", "HEAD~1", "master", "abc", "zzzzzzzz"] {
        let e = r.read("p", Scope::Stage("dev"), "slo.yaml", Some(bad)).unwrap_err();
        assert!(matches!(e, Error::RevisionNotFound { .. }), "{bad}: {e}");
        assert!(e.is_not_found());
    }
}

#[test]
fn uri_validation() {
    let (_dir, r) = project();
    for bad in [
        "",
        "/etc/passwd",
        "../x",
        "a/../../x",
        "a..b",
        "~/x",
        "a/~b",
        "a\\b",
        "a//b",
        "./a",
        "dir/",
        ".git/config",
        "a/.git/x",
        "a\0b",
    ] {
        for scope in [Scope::Project, Scope::Stage("dev"), Scope::Service("dev", "carts")] {
            let e = r.write("p", scope, &[(bad, b"x")], "m").unwrap_err();
            assert!(matches!(e, Error::InvalidUri { .. }), "{bad:?}: {e}");
            assert!(e.is_bad_request());
            let e = r.read("p", scope, bad, None).unwrap_err();
            assert!(matches!(e, Error::InvalidUri { .. }), "{bad:?}: {e}");
        }
    }
    // Stage files are not writable through the project level.
    assert!(matches!(
        r.write("p", Scope::Project, &[(".keptn-stages/dev/x", b"x")], "m"),
        Err(Error::InvalidUri { .. })
    ));
    // Names become path components.
    for bad in ["", "..", ".x", "a/b", "a\\b", "~"] {
        assert!(matches!(r.create_stage("p", bad), Err(Error::InvalidName { .. })), "{bad:?}");
        assert!(matches!(r.create_project(bad), Err(Error::InvalidName { .. })), "{bad:?}");
    }
    // One bad URI rejects the whole batch: nothing is committed.
    let head = r.head("p").unwrap();
    assert!(r.write("p", Scope::Project, &[("ok.yaml", b"x"), ("../bad", b"x")], "m").is_err());
    assert_eq!(r.head("p").unwrap(), head);
}

#[test]
fn not_found_cases() {
    let (_dir, r) = project();
    let e = r.read("nope", Scope::Project, "a", None).unwrap_err();
    assert!(matches!(e, Error::ProjectNotFound { .. }));
    assert!(e.is_not_found());
    assert!(e.to_string().contains("create the project first"), "{e}");
    assert!(matches!(r.head("nope"), Err(Error::ProjectNotFound { .. })));
    assert!(matches!(r.create_stage("nope", "dev"), Err(Error::ProjectNotFound { .. })));
    assert!(matches!(r.delete_project("nope"), Err(Error::ProjectNotFound { .. })));
    assert!(matches!(r.write("nope", Scope::Project, &[("a", b"x")], "m"), Err(Error::ProjectNotFound { .. })));
    assert!(matches!(r.read("p", Scope::Stage("prod"), "a", None), Err(Error::StageNotFound { .. })));
    assert!(matches!(r.list("p", Scope::Stage("prod"), None), Err(Error::StageNotFound { .. })));
    assert!(matches!(r.write("p", Scope::Stage("prod"), &[("a", b"x")], "m"), Err(Error::StageNotFound { .. })));
    assert!(matches!(r.read("p", Scope::Service("dev", "orders"), "a", None), Err(Error::ServiceNotFound { .. })));
    assert!(matches!(
        r.write("p", Scope::Service("dev", "orders"), &[("a", b"x")], "m"),
        Err(Error::ServiceNotFound { .. })
    ));
    let e = r.read("p", Scope::Service("dev", "carts"), "slo.yaml", None).unwrap_err();
    assert!(matches!(e, Error::ResourceNotFound { .. }));
    assert!(e.to_string().contains("slo.yaml"), "{e}");
    // A directory is not a resource.
    r.write("p", Scope::Project, &[("dir/a", b"x")], "m").unwrap();
    assert!(matches!(r.read("p", Scope::Project, "dir", None), Err(Error::ResourceNotFound { .. })));
}

#[test]
fn delete_and_recreate_project() {
    let (dir, r) = project();
    r.write("p", Scope::Project, &[("a", b"x")], "m").unwrap();
    r.delete_project("p").unwrap();
    assert!(!dir.path().join("p").exists());
    assert!(matches!(r.head("p"), Err(Error::ProjectNotFound { .. })));
    assert!(r.projects().unwrap().is_empty());
    r.create_project("p").unwrap();
    assert_eq!(r.list("p", Scope::Project, None).unwrap(), vec!["metadata.yaml"]);
}

#[test]
fn concurrent_writes_to_two_projects_and_one_project() {
    let (_dir, r) = repo();
    r.create_project("a").unwrap();
    r.create_project("b").unwrap();
    let r = &r;
    std::thread::scope(|s| {
        for project in ["a", "b"] {
            for t in 0..4 {
                s.spawn(move || {
                    for i in 0..25 {
                        let uri = format!("t{t}/f{i}.yaml");
                        r.write(project, Scope::Project, &[(&uri, uri.as_bytes())], "m").unwrap();
                        // Readers run beside the writers.
                        let (got, _) = r.read(project, Scope::Project, &uri, None).unwrap();
                        assert_eq!(got, uri.as_bytes());
                    }
                });
            }
        }
    });
    for project in ["a", "b"] {
        // Every write landed: none lost to a race on the ref.
        assert_eq!(r.list(project, Scope::Project, None).unwrap().len(), 4 * 25 + 1);
    }
}

#[test]
fn reopen_after_drop_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let head = {
        let r = ConfigRepo::open(dir.path()).unwrap();
        r.create_project("p").unwrap();
        r.create_stage("p", "dev").unwrap();
        r.write("p", Scope::Stage("dev"), &[("slo.yaml", b"kept")], "m").unwrap()
    };
    let r = ConfigRepo::open(dir.path()).unwrap();
    assert_eq!(r.head("p").unwrap(), head);
    assert_eq!(r.read("p", Scope::Stage("dev"), "slo.yaml", None).unwrap(), (b"kept".to_vec(), head.clone()));
    assert_eq!(r.projects().unwrap(), vec!["p".to_string()]);
}

/// A crash mid-write: objects of the next commit were written but the ref was not moved, and a
/// stale `master.lock` was left behind. A reopened repository is at the last complete commit and
/// accepts writes.
#[test]
fn crash_mid_write_leaves_last_complete_commit() {
    let dir = tempfile::tempdir().unwrap();
    let last = {
        let r = ConfigRepo::open(dir.path()).unwrap();
        r.create_project("p").unwrap();
        r.write("p", Scope::Project, &[("slo.yaml", b"complete")], "m").unwrap()
    };
    let path = dir.path().join("p");
    {
        // What the crashed process got done: blob, tree and commit objects…
        let git = git2::Repository::open_bare(&path).unwrap();
        let parent = git.head().unwrap().peel_to_commit().unwrap();
        let blob = git.blob(b"half").unwrap();
        let mut tb = git.treebuilder(Some(&parent.tree().unwrap())).unwrap();
        tb.insert("slo.yaml", blob, 0o100644).unwrap();
        let tree = git.find_tree(tb.write().unwrap()).unwrap();
        let sig = git2::Signature::now("keptn", "keptn@keptn.sh").unwrap();
        let orphan = git.commit(None, &sig, &sig, "crashed", &tree, &[&parent]).unwrap();
        // …and the ref lock it had started writing, never renamed.
        std::fs::write(path.join("refs/heads/master.lock"), format!("{orphan}\n")).unwrap();
        // A torn temporary object file.
        std::fs::write(path.join("objects/tmp_object_git2_crash"), b"\x78\x01garbage").unwrap();
    }
    let r = ConfigRepo::open(dir.path()).unwrap();
    assert_eq!(r.head("p").unwrap(), last);
    assert_eq!(r.read("p", Scope::Project, "slo.yaml", None).unwrap().0, b"complete");
    let next = r.write("p", Scope::Project, &[("slo.yaml", b"after restart")], "m").unwrap();
    let git = git2::Repository::open_bare(&path).unwrap();
    let c = git.head().unwrap().peel_to_commit().unwrap();
    assert_eq!(c.id().to_string(), next);
    assert_eq!(c.parent_id(0).unwrap().to_string(), last);
}

/// Throughput figure for the report (`cargo test -p keptn-configrepo -- --nocapture throughput`);
/// never asserts timings.
#[test]
fn throughput() {
    let (_dir, r) = project();
    let n = 300;
    let t = Instant::now();
    for i in 0..n {
        let body = format!("objectives: {i}\n");
        r.write(
            "p",
            Scope::Service("dev", "carts"),
            &[(&format!("f{}.yaml", i % 20), body.as_bytes())],
            "Updated resource",
        )
        .unwrap();
    }
    let w = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let reads = 3000;
    for i in 0..reads {
        r.read("p", Scope::Service("dev", "carts"), &format!("f{}.yaml", i % 20), None).unwrap();
    }
    let rd = reads as f64 / t.elapsed().as_secs_f64();
    let head = r.head("p").unwrap();
    let t = Instant::now();
    for i in 0..reads {
        r.read("p", Scope::Service("dev", "carts"), &format!("f{}.yaml", i % 20), Some(&head)).unwrap();
    }
    let rp = reads as f64 / t.elapsed().as_secs_f64();
    println!(
        "configrepo throughput (one project, one thread, {n} commits in history): writes/s {w:.0}, reads/s {rd:.0}, pinned reads/s {rp:.0}"
    );
}
