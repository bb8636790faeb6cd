//! Upstream sync against real remotes: local bare repositories (`file://`) here; the HTTP and ssh
//! transports are in `upstream_transports.rs`.

use keptn_configrepo::{ConfigRepo, Error, GitCredentials, OutboundPolicy, Scope, SecretKey};
use keptn_testgit::bare::{commit_file as commit_upstream, file as upstream_file, head as upstream_head};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn bare(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let mut opts = git2::RepositoryInitOptions::new();
    opts.bare(true).initial_head("master");
    git2::Repository::init_opts(&path, &opts).unwrap();
    path
}

fn file_creds(path: &Path) -> GitCredentials {
    GitCredentials { remote_url: format!("file://{}", path.display()), ..Default::default() }
}

struct Setup {
    dir: tempfile::TempDir,
    repo: ConfigRepo,
    upstream: PathBuf,
}

/// Project "p" (stage dev, service carts) connected to an empty bare upstream.
fn setup(freshness: Duration) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let repo = ConfigRepo::open(dir.path().join("config"))
        .unwrap()
        .with_outbound(OutboundPolicy::allow_loopback())
        .with_freshness(freshness);
    repo.create_project("p").unwrap();
    repo.create_stage("p", "dev").unwrap();
    repo.create_service("p", "dev", "carts").unwrap();
    let upstream = bare(dir.path(), "upstream.git");
    repo.set_upstream("p", file_creds(&upstream)).unwrap();
    Setup { dir, repo, upstream }
}

#[test]
fn every_write_is_pushed_in_keptns_layout() {
    let s = setup(Duration::from_secs(60));
    assert_eq!(upstream_head(&s.upstream), Some(s.repo.head("p").unwrap()), "history pushed on connect");
    let id = s.repo.write("p", Scope::Service("dev", "carts"), &[("slo.yaml", b"objectives: []")], "Updated").unwrap();
    assert_eq!(upstream_head(&s.upstream), Some(id.clone()));
    assert_eq!(upstream_file(&s.upstream, ".keptn-stages/dev/carts/slo.yaml").unwrap(), "objectives: []");
    let id2 = s.repo.delete("p", Scope::Service("dev", "carts"), "slo.yaml", "Removed").unwrap();
    assert_eq!(upstream_head(&s.upstream), Some(id2));
    assert!(upstream_file(&s.upstream, ".keptn-stages/dev/carts/slo.yaml").is_none());
    s.repo.delete_service("p", "dev", "carts").unwrap();
    assert!(upstream_file(&s.upstream, ".keptn-stages/dev/carts/metadata.yaml").is_none());
}

#[test]
fn upstream_changes_are_picked_up_after_the_freshness_window() {
    let s = setup(Duration::from_millis(200));
    let theirs = commit_upstream(&s.upstream, "shipyard.yaml", "edited upstream");
    // Inside the window reads use what we have; nothing fetched.
    assert!(!s.repo.is_stale("p"));
    assert_eq!(s.repo.refresh_if_stale("p").unwrap(), None);
    assert!(s.repo.read("p", Scope::Project, "shipyard.yaml", None).is_err());
    std::thread::sleep(Duration::from_millis(250));
    assert!(s.repo.is_stale("p"));
    assert_eq!(s.repo.refresh_if_stale("p").unwrap(), Some(theirs.clone()));
    let (content, version) = s.repo.read("p", Scope::Project, "shipyard.yaml", None).unwrap();
    assert_eq!((content.as_slice(), version.as_str()), (&b"edited upstream"[..], theirs.as_str()));
    assert_eq!(s.repo.refresh("p").unwrap(), None, "nothing new");
}

#[test]
fn a_write_on_a_stale_upstream_is_reapplied_on_its_head() {
    // Long window: the write does not fetch first, its push is rejected, and it is re-applied.
    let s = setup(Duration::from_secs(60));
    let theirs = commit_upstream(&s.upstream, "README.md", "# upstream");
    let ours = s.repo.write("p", Scope::Stage("dev"), &[("sli.yaml", b"x")], "Updated").unwrap();
    let git = git2::Repository::open_bare(&s.upstream).unwrap();
    let ours_oid = git2::Oid::from_str(&ours).unwrap();
    assert_eq!(git.find_commit(ours_oid).unwrap().parent_id(0).unwrap().to_string(), theirs);
    assert_eq!(upstream_file(&s.upstream, "README.md").unwrap(), "# upstream", "their change kept");
    assert_eq!(upstream_file(&s.upstream, ".keptn-stages/dev/sli.yaml").unwrap(), "x", "ours pushed");
    assert_eq!(
        String::from_utf8(s.repo.read("p", Scope::Project, "README.md", None).unwrap().0).unwrap(),
        "# upstream"
    );
}

#[test]
fn a_precondition_is_checked_again_on_the_upstreams_head() {
    // The service was deleted upstream: writing to it fails instead of resurrecting it.
    let s = setup(Duration::from_secs(60));
    let r = git2::Repository::open_bare(&s.upstream).unwrap();
    let parent = r.find_reference("refs/heads/master").unwrap().peel_to_commit().unwrap();
    let mut index = git2::Index::new().unwrap();
    index.read_tree(&parent.tree().unwrap()).unwrap();
    index.remove_dir(Path::new(".keptn-stages/dev/carts"), 0).unwrap();
    let tree = r.find_tree(index.write_tree_to(&r).unwrap()).unwrap();
    let sig = git2::Signature::now("someone", "s@example.com").unwrap();
    let id = r.commit(None, &sig, &sig, "remove carts", &tree, &[&parent]).unwrap();
    r.reference("refs/heads/master", id, true, "test").unwrap();
    let err = s.repo.write("p", Scope::Service("dev", "carts"), &[("slo.yaml", b"x")], "Updated").unwrap_err();
    assert!(matches!(err, Error::ServiceNotFound { .. }), "{err}");
    assert_eq!(upstream_head(&s.upstream), Some(id.to_string()));
}

#[test]
fn concurrent_writers_lose_nothing() {
    let s = setup(Duration::from_secs(60));
    let upstream = s.upstream.clone();
    let outside = std::thread::spawn(move || {
        for i in 0..15 {
            commit_upstream(&upstream, &format!("outside-{i}.txt"), "o");
            std::thread::sleep(Duration::from_millis(3));
        }
    });
    let mut busy = 0;
    for i in 0..15 {
        loop {
            let content = format!("ours {i}");
            match s.repo.write("p", Scope::Stage("dev"), &[(&format!("ours-{i}.txt"), content.as_bytes())], "w") {
                Ok(_) => break,
                Err(e @ Error::UpstreamBusy { .. }) => {
                    assert!(e.is_conflict());
                    busy += 1
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
    outside.join().unwrap();
    s.repo.refresh("p").unwrap();
    for i in 0..15 {
        assert_eq!(
            upstream_file(&s.upstream, &format!(".keptn-stages/dev/ours-{i}.txt")).unwrap(),
            format!("ours {i}")
        );
        assert_eq!(upstream_file(&s.upstream, &format!("outside-{i}.txt")).unwrap(), "o");
        s.repo.read("p", Scope::Project, &format!("outside-{i}.txt"), None).unwrap();
    }
    assert_eq!(upstream_head(&s.upstream), Some(s.repo.head("p").unwrap()));
    eprintln!("writes that had to be retried by the client: {busy}");
}

#[test]
fn a_failed_push_changes_nothing_locally() {
    let s = setup(Duration::from_secs(60));
    let before = s.repo.head("p").unwrap();
    let moved = s.dir.path().join("moved.git");
    std::fs::rename(&s.upstream, &moved).unwrap();
    let err = s.repo.write("p", Scope::Stage("dev"), &[("sli.yaml", b"lost?")], "Updated").unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains("was not found"), "{err}");
    assert_eq!(s.repo.head("p").unwrap(), before, "local branch did not move");
    assert!(s.repo.read("p", Scope::Stage("dev"), "sli.yaml", None).is_err());
    std::fs::rename(&moved, &s.upstream).unwrap();
    let id = s.repo.write("p", Scope::Stage("dev"), &[("sli.yaml", b"now")], "Updated").unwrap();
    assert_eq!(upstream_head(&s.upstream), Some(id));
}

#[test]
fn a_revision_made_upstream_is_fetched_when_asked_for() {
    let s = setup(Duration::from_secs(60));
    let theirs = commit_upstream(&s.upstream, "notes.txt", "pinned");
    let (content, version) = s.repo.read("p", Scope::Project, "notes.txt", Some(&theirs)).unwrap();
    assert_eq!((content.as_slice(), version), (&b"pinned"[..], theirs));
}

#[test]
fn moving_to_a_new_upstream_pushes_the_history() {
    let s = setup(Duration::from_secs(60));
    s.repo.write("p", Scope::Project, &[("a.txt", b"a")], "a").unwrap();
    let head = s.repo.write("p", Scope::Project, &[("b.txt", b"b")], "b").unwrap();
    let second = bare(s.dir.path(), "second.git");
    s.repo.set_upstream("p", file_creds(&second)).unwrap();
    assert_eq!(upstream_head(&second), Some(head.clone()));
    let count = |p: &Path| {
        let r = git2::Repository::open_bare(p).unwrap();
        let mut walk = r.revwalk().unwrap();
        walk.push_ref("refs/heads/master").unwrap();
        walk.count()
    };
    assert_eq!(count(&second), count(&s.upstream), "the whole history moved");
    let next = s.repo.write("p", Scope::Project, &[("c.txt", b"c")], "c").unwrap();
    assert_eq!(upstream_head(&second), Some(next));
    assert_eq!(upstream_head(&s.upstream), Some(head), "the old upstream is left alone");
    assert_eq!(s.repo.upstream("p").unwrap().unwrap().remote_url, format!("file://{}", second.display()));
}

#[test]
fn an_upstream_with_a_readme_is_merged_one_with_a_project_refused() {
    let dir = tempfile::tempdir().unwrap();
    let repo = ConfigRepo::open(dir.path().join("config")).unwrap().with_outbound(OutboundPolicy::allow_loopback());
    // A repository "initialised with a README" by the git host.
    let readme = bare(dir.path(), "readme.git");
    let seed = ConfigRepo::open(dir.path().join("seed")).unwrap().with_outbound(OutboundPolicy::allow_loopback());
    seed.create_project("seed").unwrap();
    seed.set_upstream("seed", file_creds(&readme)).unwrap();
    let r = git2::Repository::open_bare(&readme).unwrap();
    let mut index = git2::Index::new().unwrap();
    let blob = r.blob(b"# hello").unwrap();
    let parent = r.find_reference("refs/heads/master").unwrap().peel_to_commit().unwrap();
    let mut e = {
        let mut i = git2::Index::new().unwrap();
        i.read_tree(&parent.tree().unwrap()).unwrap();
        i.iter().next().unwrap()
    };
    e.id = blob;
    e.path = b"README.md".to_vec();
    index.add(&e).unwrap();
    let tree = r.find_tree(index.write_tree_to(&r).unwrap()).unwrap();
    let sig = git2::Signature::now("host", "h@example.com").unwrap();
    let root = r.commit(None, &sig, &sig, "Initial commit", &tree, &[]).unwrap();
    r.reference("refs/heads/master", root, true, "test").unwrap();

    repo.create_project("p").unwrap();
    repo.set_upstream("p", file_creds(&readme)).unwrap();
    assert_eq!(upstream_file(&readme, "README.md").unwrap(), "# hello");
    assert!(upstream_file(&readme, "metadata.yaml").unwrap().contains("projectName: p"));
    assert_eq!(upstream_head(&readme), Some(repo.head("p").unwrap()));

    // Now it holds project p: another project can't take it.
    repo.create_project("q").unwrap();
    let err = repo.set_upstream("q", file_creds(&readme)).unwrap_err();
    assert!(matches!(err, Error::UpstreamHasHistory { .. }) && err.is_conflict(), "{err}");
    assert!(repo.upstream("q").unwrap().is_none(), "nothing stored on failure");
}

#[test]
fn bad_upstreams_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let repo = ConfigRepo::open(dir.path().join("config")).unwrap().with_outbound(OutboundPolicy::allow_loopback());
    repo.create_project("p").unwrap();
    let missing = file_creds(&dir.path().join("nope.git"));
    let err = repo.set_upstream("p", missing).unwrap_err();
    assert!(err.is_not_found() && matches!(err, Error::UpstreamNotFound { .. }), "{err}");
    let refused = GitCredentials { remote_url: "http://127.0.0.1:9/r.git".into(), ..Default::default() };
    let err = repo.set_upstream("p", refused).unwrap_err();
    assert!(err.is_upstream_failure() && err.to_string().contains("can't be reached"), "{err}");
    let bad = GitCredentials { remote_url: "github.com/org/repo".into(), ..Default::default() };
    let err = repo.set_upstream("p", bad).unwrap_err();
    assert!(err.is_bad_request() && err.to_string().contains("must start with"), "{err}");
    assert!(repo.upstream("p").unwrap().is_none());
}

#[test]
fn credentials_are_encrypted_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("config");
    let upstream = bare(dir.path(), "u.git");
    let key = SecretKey::from_bytes([42; 32]);
    let creds = GitCredentials {
        user: "me".into(),
        https: Some(keptn_configrepo::HttpsCredentials { token: "sup3r-s3cret-t0ken".into(), ..Default::default() }),
        ..file_creds(&upstream)
    };
    {
        let repo = ConfigRepo::open(&root)
            .unwrap()
            .with_outbound(OutboundPolicy::allow_loopback())
            .with_secret_key(key.clone());
        repo.create_project("p").unwrap();
        repo.set_upstream("p", creds.clone()).unwrap();
    }
    let mut on_disk = Vec::new();
    for e in walk(&root) {
        on_disk.extend(std::fs::read(e).unwrap());
    }
    assert!(!on_disk.windows(18).any(|w| w == b"sup3r-s3cret-t0ken"), "token found in plain text under the root");
    let reopened =
        ConfigRepo::open(&root).unwrap().with_outbound(OutboundPolicy::allow_loopback()).with_secret_key(key);
    assert_eq!(reopened.upstream("p").unwrap(), Some(creds));
    let wrong = ConfigRepo::open(&root)
        .unwrap()
        .with_outbound(OutboundPolicy::allow_loopback())
        .with_secret_key(SecretKey::from_bytes([1; 32]));
    let err = wrong.upstream("p").unwrap_err();
    assert!(matches!(err, Error::CredentialsUnreadable { .. }), "{err}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

#[test]
fn the_upstream_survives_a_restart() {
    let s = setup(Duration::from_secs(60));
    let root = s.dir.path().join("config");
    drop(s.repo);
    let repo = ConfigRepo::open(&root).unwrap().with_outbound(OutboundPolicy::allow_loopback());
    let theirs = commit_upstream(&s.upstream, "x.txt", "x");
    // First write after the restart asks the upstream first.
    let id = repo.write("p", Scope::Project, &[("y.txt", b"y")], "y").unwrap();
    let git = git2::Repository::open_bare(&s.upstream).unwrap();
    assert_eq!(git.find_commit(git2::Oid::from_str(&id).unwrap()).unwrap().parent_id(0).unwrap().to_string(), theirs);
}
