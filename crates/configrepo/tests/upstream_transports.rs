//! Upstream sync over the real network transports: smart HTTP(S) (`git-http-backend`) and ssh
//! (`sshd`), started by `keptn-testgit`. Sync semantics against `file://` remotes are in
//! `upstream.rs`.

use keptn_configrepo::{ConfigRepo, Error, GitCredentials, HttpsCredentials, OutboundPolicy, Scope, SshCredentials};
use keptn_testgit::bare::{commit_file as commit_upstream, file as upstream_file, head as upstream_head};
use keptn_testgit::{HttpRemote, SshRemote, init_bare};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tempfile::TempDir;

const USER: &str = "keptn";
const TOKEN: &str = "t0ken-7d1f0c9e-right";
const WRONG_TOKEN: &str = "t0ken-43b2aa71-wrong";
/// Longer than any test: only explicit refreshes and rejected pushes ask the upstream.
const LONG: Duration = Duration::from_secs(600);
/// libgit2's connect timeout is 10 s; failures must come well before a request would time out.
const QUICK: Duration = Duration::from_secs(15);

fn https_creds(url: &str, token: &str) -> GitCredentials {
    GitCredentials {
        remote_url: url.into(),
        user: USER.into(),
        https: Some(HttpsCredentials { token: token.into(), ..Default::default() }),
        ssh: None,
    }
}

fn tls_creds(url: &str, certificate: &str, insecure_skip_tls: bool) -> GitCredentials {
    GitCredentials {
        remote_url: url.into(),
        user: USER.into(),
        https: Some(HttpsCredentials {
            token: TOKEN.into(),
            certificate: certificate.into(),
            insecure_skip_tls,
            ..Default::default()
        }),
        ssh: None,
    }
}

fn ssh_creds(url: &str, private_key: &str, private_key_pass: &str) -> GitCredentials {
    GitCredentials {
        remote_url: url.into(),
        user: "root".into(),
        https: None,
        ssh: Some(SshCredentials { private_key: private_key.into(), private_key_pass: private_key_pass.into() }),
    }
}

/// A configuration repository under `dir` with project "p" (stage dev, service carts), no upstream.
fn local_project(dir: &Path, freshness: Duration) -> ConfigRepo {
    let repo = ConfigRepo::open(dir.join("config"))
        .unwrap()
        .with_outbound(OutboundPolicy::allow_loopback())
        .with_freshness(freshness);
    repo.create_project("p").unwrap();
    repo.create_stage("p", "dev").unwrap();
    repo.create_service("p", "dev", "carts").unwrap();
    repo
}

fn commit_count(repo: &Path) -> usize {
    let r = git2::Repository::open_bare(repo).unwrap();
    let mut walk = r.revwalk().unwrap();
    walk.push_ref("refs/heads/master").unwrap();
    walk.count()
}

fn parent_of(repo: &Path, commit: &str) -> String {
    let r = git2::Repository::open_bare(repo).unwrap();
    r.find_commit(git2::Oid::from_str(commit).unwrap()).unwrap().parent_id(0).unwrap().to_string()
}

fn read(repo: &ConfigRepo, scope: Scope<'_>, uri: &str) -> String {
    String::from_utf8(repo.read("p", scope, uri, None).unwrap().0).unwrap()
}

/// A port nothing listens on (bound a moment ago, then freed).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// PEM of a fresh self-signed CA that signed nothing the servers use.
fn unrelated_ca(dir: &Path) -> String {
    let out = Command::new("openssl")
        .args(["req", "-x509", "-new", "-days", "2", "-subj", "/CN=unrelated CA"])
        .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout"])
        .arg(dir.join("unrelated.key"))
        .arg("-out")
        .arg(dir.join("unrelated.pem"))
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::read_to_string(dir.join("unrelated.pem")).unwrap()
}

/// Project "p" connected over HTTP (Basic auth with [`USER`] / [`TOKEN`]) to the empty bare
/// repository `<dir>/served/p.git`.
struct Http {
    remote: HttpRemote,
    repo: ConfigRepo,
    bare: PathBuf,
    dir: TempDir,
}

fn http_setup(freshness: Duration) -> Http {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served");
    let bare = init_bare(&served, "p.git");
    let remote = HttpRemote::start(&served, Some((USER, TOKEN)));
    let repo = local_project(dir.path(), freshness);
    repo.set_upstream("p", https_creds(&remote.url("p.git"), TOKEN)).unwrap();
    Http { remote, repo, bare, dir }
}

#[test]
fn http_with_token_pushes_history_and_every_write() {
    let s = http_setup(LONG);
    let head = s.repo.head("p").unwrap();
    assert_eq!(upstream_head(&s.bare), Some(head), "history pushed on connect");
    assert_eq!(commit_count(&s.bare), 3, "project, stage and service commits");
    assert!(upstream_file(&s.bare, ".keptn-stages/dev/carts/metadata.yaml").unwrap().contains("serviceName: carts"));

    let id =
        s.repo.write("p", Scope::Service("dev", "carts"), &[("slo.yaml", b"objectives: []")], "Added slo").unwrap();
    assert_eq!(upstream_head(&s.bare), Some(id.clone()));
    assert_eq!(upstream_file(&s.bare, ".keptn-stages/dev/carts/slo.yaml").unwrap(), "objectives: []");
    let id = s.repo.create_service("p", "dev", "orders").unwrap();
    assert_eq!(upstream_head(&s.bare), Some(id));
    let id = s.repo.delete("p", Scope::Service("dev", "carts"), "slo.yaml", "Removed slo").unwrap();
    assert_eq!(upstream_head(&s.bare), Some(id.clone()));
    assert!(upstream_file(&s.bare, ".keptn-stages/dev/carts/slo.yaml").is_none());
    assert_eq!(s.repo.head("p").unwrap(), id);

    let stored = s.repo.upstream("p").unwrap().unwrap();
    assert_eq!(stored, https_creds(&s.remote.url("p.git"), TOKEN));
}

#[test]
fn http_upstream_changes_are_picked_up_after_the_freshness_window() {
    let window = Duration::from_millis(300);
    let s = http_setup(window);
    let theirs = commit_upstream(&s.bare, "shipyard.yaml", "stages: [edited upstream]");
    assert!(!s.repo.is_stale("p"), "just synced");
    assert_eq!(s.repo.refresh_if_stale("p").unwrap(), None, "inside the window nothing is fetched");
    assert!(s.repo.read("p", Scope::Project, "shipyard.yaml", None).is_err());

    std::thread::sleep(window + Duration::from_millis(50));
    assert!(s.repo.is_stale("p"));
    let before = s.remote.requests();
    assert_eq!(s.repo.refresh_if_stale("p").unwrap(), Some(theirs.clone()));
    assert!(s.remote.requests() > before, "the refresh asked the server");
    assert!(!s.repo.is_stale("p"), "fresh again");
    let (content, version) = s.repo.read("p", Scope::Project, "shipyard.yaml", None).unwrap();
    assert_eq!((content.as_slice(), version.as_str()), (&b"stages: [edited upstream]"[..], theirs.as_str()));

    // An explicit refresh does not wait for the window.
    let again = commit_upstream(&s.bare, "shipyard.yaml", "stages: [edited twice]");
    assert_eq!(s.repo.refresh("p").unwrap(), Some(again.clone()));
    assert_eq!(read(&s.repo, Scope::Project, "shipyard.yaml"), "stages: [edited twice]");
    assert_eq!(s.repo.refresh("p").unwrap(), None, "nothing new");
    assert_eq!(s.repo.head("p").unwrap(), again);
}

#[test]
fn http_write_while_the_upstream_moved_on_is_reapplied_on_top() {
    let s = http_setup(LONG);
    let theirs = commit_upstream(&s.bare, "README.md", "# edited on the git host");
    let before = s.remote.requests();
    let ours = s.repo.write("p", Scope::Stage("dev"), &[("sli.yaml", b"indicators: {}")], "Added sli").unwrap();
    eprintln!("HTTP requests of a write that had to be re-applied: {}", s.remote.requests() - before);
    assert_eq!(upstream_head(&s.bare), Some(ours.clone()));
    assert_eq!(parent_of(&s.bare, &ours), theirs, "re-applied on the upstream's head, no merge");
    assert_eq!(upstream_file(&s.bare, "README.md").unwrap(), "# edited on the git host", "their change kept");
    assert_eq!(upstream_file(&s.bare, ".keptn-stages/dev/sli.yaml").unwrap(), "indicators: {}", "ours pushed");
    assert_eq!(s.repo.head("p").unwrap(), ours);
    assert_eq!(read(&s.repo, Scope::Project, "README.md"), "# edited on the git host");
}

#[test]
fn http_reads_do_not_contact_the_upstream() {
    let s = http_setup(LONG);
    let head = s.repo.head("p").unwrap();
    let before = s.remote.requests();
    for _ in 0..50 {
        let (content, version) = s.repo.read("p", Scope::Project, "metadata.yaml", None).unwrap();
        assert!(String::from_utf8(content).unwrap().contains("projectName: p"));
        assert_eq!(version, head);
    }
    s.repo.list("p", Scope::Service("dev", "carts"), None).unwrap();
    s.repo.read("p", Scope::Stage("dev"), "metadata.yaml", Some(&head)).unwrap();
    assert!(!s.repo.is_stale("p"));
    assert_eq!(s.remote.requests(), before, "reads at the head and at a known commit stay local");

    let before = s.remote.requests();
    s.repo.write("p", Scope::Project, &[("shipyard.yaml", b"stages: []")], "Added shipyard").unwrap();
    let write = s.remote.requests() - before;
    eprintln!("HTTP requests of one write (fresh upstream, Basic auth): {write}");
    assert!((1..=6).contains(&write), "a write is one push: {write} requests");
}

#[test]
fn http_wrong_token_is_a_clear_auth_error_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served");
    let bare = init_bare(&served, "p.git");
    let remote = HttpRemote::start(&served, Some((USER, TOKEN)));
    let repo = local_project(dir.path(), LONG);

    let started = Instant::now();
    let err = repo.set_upstream("p", https_creds(&remote.url("p.git"), WRONG_TOKEN)).unwrap_err();
    eprintln!("wrong token refused after {:?}, {} requests", started.elapsed(), remote.requests());
    assert!(started.elapsed() < QUICK, "libgit2 re-asks after a 401; that must not loop");
    assert!(matches!(err, Error::UpstreamAuth { .. }) && err.is_bad_credentials(), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("check user and token"), "{msg}");
    assert!(msg.contains(&remote.url("p.git")), "{msg}");
    assert!(!msg.contains(WRONG_TOKEN) && !format!("{err:?}").contains(WRONG_TOKEN), "token leaked: {err:?}");
    assert!(repo.upstream("p").unwrap().is_none(), "nothing stored after a failed set_upstream");
    assert_eq!(upstream_head(&bare), None, "nothing pushed");

    // The token put into the URL (as people do) doesn't show either.
    let in_url = remote.url("p.git").replace("http://", &format!("http://{USER}:{WRONG_TOKEN}@"));
    let err = repo.set_upstream("p", https_creds(&in_url, WRONG_TOKEN)).unwrap_err();
    assert!(err.is_bad_credentials(), "{err:?}");
    assert!(!err.to_string().contains(WRONG_TOKEN), "token leaked: {err}");

    // A wrong user with the right token is refused the same way.
    let mut other_user = https_creds(&remote.url("p.git"), TOKEN);
    other_user.user = "someone-else".into();
    let err = repo.set_upstream("p", other_user).unwrap_err();
    assert!(matches!(err, Error::UpstreamAuth { .. }), "{err:?}");
    assert!(!err.to_string().contains(TOKEN), "token leaked: {err}");
    assert!(repo.upstream("p").unwrap().is_none());
}

#[test]
fn http_missing_credentials_are_a_clear_auth_error() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served");
    let bare = init_bare(&served, "p.git");
    let remote = HttpRemote::start(&served, Some((USER, TOKEN)));
    let repo = local_project(dir.path(), LONG);

    let cases = [
        ("no https settings", GitCredentials { remote_url: remote.url("p.git"), ..Default::default() }),
        ("empty token", https_creds(&remote.url("p.git"), "")),
    ];
    for (case, creds) in cases {
        let started = Instant::now();
        let err = repo.set_upstream("p", creds).unwrap_err();
        assert!(started.elapsed() < QUICK, "{case}: took {:?}", started.elapsed());
        assert!(matches!(err, Error::UpstreamAuth { .. }) && err.is_bad_credentials(), "{case}: {err:?}");
        let msg = err.to_string();
        assert!(msg.contains("https.token") && msg.contains("check user and token"), "{case}: {msg}");
        assert!(repo.upstream("p").unwrap().is_none(), "{case}: nothing stored");
    }
    assert_eq!(upstream_head(&bare), None, "nothing pushed");
}

#[test]
fn http_missing_repository_is_not_found_and_a_closed_port_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served");
    init_bare(&served, "p.git");
    let remote = HttpRemote::start(&served, Some((USER, TOKEN)));
    let repo = local_project(dir.path(), LONG);

    let err = repo.set_upstream("p", https_creds(&remote.url("nope.git"), TOKEN)).unwrap_err();
    assert!(matches!(err, Error::UpstreamNotFound { .. }) && err.is_not_found(), "{err:?}");
    assert!(err.to_string().contains("was not found"), "{err}");
    assert!(repo.upstream("p").unwrap().is_none());

    let url = format!("http://127.0.0.1:{}/x.git", closed_port());
    let started = Instant::now();
    let err = repo.set_upstream("p", https_creds(&url, TOKEN)).unwrap_err();
    eprintln!("closed port refused after {:?}", started.elapsed());
    assert!(started.elapsed() < QUICK, "took {:?}", started.elapsed());
    assert!(matches!(err, Error::UpstreamUnreachable { .. }) && err.is_upstream_failure(), "{err:?}");
    assert!(err.to_string().contains("can't be reached"), "{err}");
    assert!(repo.upstream("p").unwrap().is_none());
}

#[test]
fn http_failed_push_leaves_the_head_and_the_next_write_succeeds() {
    let s = http_setup(LONG);
    let before = s.repo.head("p").unwrap();
    let away = s.dir.path().join("served-away");
    std::fs::rename(s.dir.path().join("served"), &away).unwrap();
    let err = s.repo.write("p", Scope::Stage("dev"), &[("sli.yaml", b"lost?")], "Added sli").unwrap_err();
    assert!(err.is_not_found() && matches!(err, Error::UpstreamNotFound { .. }), "{err:?}");
    assert_eq!(s.repo.head("p").unwrap(), before, "local branch did not move");
    assert!(s.repo.read("p", Scope::Stage("dev"), "sli.yaml", None).is_err(), "the failed write is invisible");

    std::fs::rename(&away, s.dir.path().join("served")).unwrap();
    let id = s.repo.write("p", Scope::Stage("dev"), &[("sli.yaml", b"now")], "Added sli").unwrap();
    assert_eq!(parent_of(&s.bare, &id), before);
    assert_eq!(upstream_head(&s.bare), Some(id.clone()));
    assert_eq!(s.repo.head("p").unwrap(), id);
    assert_eq!(upstream_file(&s.bare, ".keptn-stages/dev/sli.yaml").unwrap(), "now");
}

#[test]
fn http_server_down_fails_the_write_quickly_and_a_new_server_takes_over() {
    let Http { remote, repo, bare, dir } = http_setup(LONG);
    let before = repo.head("p").unwrap();
    drop(remote);

    let started = Instant::now();
    let err = repo.write("p", Scope::Stage("dev"), &[("sli.yaml", b"lost?")], "Added sli").unwrap_err();
    eprintln!("write with the server down failed after {:?}", started.elapsed());
    assert!(started.elapsed() < QUICK, "took {:?}", started.elapsed());
    assert!(matches!(err, Error::UpstreamUnreachable { .. }) && err.is_upstream_failure(), "{err:?}");
    assert_eq!(repo.head("p").unwrap(), before, "local branch did not move");
    assert!(repo.read("p", Scope::Stage("dev"), "sli.yaml", None).is_err());
    assert!(repo.read("p", Scope::Project, "metadata.yaml", None).is_ok(), "reads keep working offline");
    assert!(repo.refresh("p").unwrap_err().is_upstream_failure());

    // The server comes back on another address: point the project at it.
    let remote = HttpRemote::start(&dir.path().join("served"), Some((USER, TOKEN)));
    repo.set_upstream("p", https_creds(&remote.url("p.git"), TOKEN)).unwrap();
    let id = repo.write("p", Scope::Stage("dev"), &[("sli.yaml", b"now")], "Added sli").unwrap();
    assert_eq!(parent_of(&bare, &id), before);
    assert_eq!(upstream_head(&bare), Some(id));
}

/// Project "p" and an HTTPS server (Basic auth) whose CA nobody trusts.
struct Https {
    remote: HttpRemote,
    repo: ConfigRepo,
    served: PathBuf,
    dir: TempDir,
}

fn https_setup() -> Https {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    let remote = HttpRemote::start_tls(&served, Some((USER, TOKEN)));
    let repo = local_project(dir.path(), LONG);
    Https { remote, repo, served, dir }
}

#[test]
fn https_without_certificate_settings_is_a_tls_error() {
    let s = https_setup();
    init_bare(&s.served, "p.git");
    let started = Instant::now();
    let err = s.repo.set_upstream("p", tls_creds(&s.remote.url("p.git"), "", false)).unwrap_err();
    assert!(started.elapsed() < QUICK, "took {:?}", started.elapsed());
    assert!(matches!(err, Error::UpstreamTls { .. }) && err.is_bad_credentials(), "{err:?}");
    assert!(err.to_string().contains("TLS"), "{err}");
    assert!(s.repo.upstream("p").unwrap().is_none());
    assert_eq!(upstream_head(&s.served.join("p.git")), None);
}

#[test]
fn https_with_the_servers_ca_pushes_and_refreshes() {
    let s = https_setup();
    let bare = init_bare(&s.served, "p.git");
    let ca = s.remote.ca_pem().unwrap();
    s.repo.set_upstream("p", tls_creds(&s.remote.url("p.git"), &ca, false)).unwrap();
    assert_eq!(upstream_head(&bare), Some(s.repo.head("p").unwrap()));
    let id = s.repo.write("p", Scope::Project, &[("shipyard.yaml", b"stages: []")], "Added shipyard").unwrap();
    assert_eq!(upstream_head(&bare), Some(id));
    let theirs = commit_upstream(&bare, "README.md", "# tls");
    assert_eq!(s.repo.refresh("p").unwrap(), Some(theirs));
    assert_eq!(read(&s.repo, Scope::Project, "README.md"), "# tls");

    // The certificate names localhost too; the name is checked like the IP address.
    s.repo.create_project("q").unwrap();
    let q = init_bare(&s.served, "q.git");
    let by_name = s.remote.url("q.git").replace("127.0.0.1", "localhost");
    s.repo.set_upstream("q", tls_creds(&by_name, &ca, false)).unwrap();
    assert_eq!(upstream_head(&q), Some(s.repo.head("q").unwrap()));
}

#[test]
fn https_with_insecure_skip_tls_works() {
    let s = https_setup();
    let bare = init_bare(&s.served, "p.git");
    s.repo.set_upstream("p", tls_creds(&s.remote.url("p.git"), "", true)).unwrap();
    assert_eq!(upstream_head(&bare), Some(s.repo.head("p").unwrap()));
    let id = s.repo.write("p", Scope::Project, &[("shipyard.yaml", b"stages: []")], "Added shipyard").unwrap();
    assert_eq!(upstream_head(&bare), Some(id));
    let theirs = commit_upstream(&bare, "README.md", "# insecure");
    assert_eq!(s.repo.refresh("p").unwrap(), Some(theirs));
}

#[test]
fn https_with_an_unrelated_ca_says_what_to_do() {
    let s = https_setup();
    let bare = init_bare(&s.served, "p.git");
    let other = unrelated_ca(s.dir.path());
    let err = s.repo.set_upstream("p", tls_creds(&s.remote.url("p.git"), &other, false)).unwrap_err();
    assert!(matches!(err, Error::UpstreamTls { .. }) && err.is_bad_credentials(), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("give the CA that signed it, or set insecureSkipTLS"), "{msg}");
    assert!(!msg.contains(TOKEN), "{msg}");
    assert!(s.repo.upstream("p").unwrap().is_none());
    assert_eq!(upstream_head(&bare), None);
}

#[test]
fn ssh_key_pushes_and_pulls() {
    let dir = tempfile::tempdir().unwrap();
    let remote = SshRemote::start();
    let bare = init_bare(dir.path(), "p.git");
    let repo = local_project(dir.path(), LONG);
    let started = Instant::now();
    repo.set_upstream("p", ssh_creds(&remote.url(&bare), &remote.private_key_pem(), "")).unwrap();
    eprintln!("set_upstream over ssh took {:?}", started.elapsed());
    assert_eq!(upstream_head(&bare), Some(repo.head("p").unwrap()));
    assert_eq!(commit_count(&bare), 3);

    let id = repo.write("p", Scope::Service("dev", "carts"), &[("slo.yaml", b"objectives: []")], "Added slo").unwrap();
    assert_eq!(upstream_head(&bare), Some(id));
    let theirs = commit_upstream(&bare, "README.md", "# over ssh");
    assert_eq!(repo.refresh("p").unwrap(), Some(theirs.clone()));
    assert_eq!(read(&repo, Scope::Project, "README.md"), "# over ssh");

    // And a write on an upstream that moved on is re-applied over ssh too.
    let moved = commit_upstream(&bare, "CHANGELOG.md", "moved on");
    let ours = repo.write("p", Scope::Project, &[("shipyard.yaml", b"stages: []")], "Added shipyard").unwrap();
    assert_eq!(parent_of(&bare, &ours), moved);
    assert_eq!(upstream_head(&bare), Some(ours));
}

#[test]
fn ssh_key_with_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let remote = SshRemote::start();
    let bare = init_bare(dir.path(), "p.git");
    let repo = local_project(dir.path(), LONG);
    let (key, passphrase) = remote.private_key_with_passphrase_pem();
    repo.set_upstream("p", ssh_creds(&remote.url(&bare), &key, &passphrase)).unwrap();
    assert_eq!(upstream_head(&bare), Some(repo.head("p").unwrap()));
    let id = repo.write("p", Scope::Project, &[("shipyard.yaml", b"stages: []")], "Added shipyard").unwrap();
    assert_eq!(upstream_head(&bare), Some(id));
    let theirs = commit_upstream(&bare, "README.md", "# passphrase");
    assert_eq!(repo.refresh("p").unwrap(), Some(theirs));
}

#[test]
fn ssh_wrong_passphrase_is_bad_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let remote = SshRemote::start();
    let bare = init_bare(dir.path(), "p.git");
    let repo = local_project(dir.path(), LONG);
    let (key, _) = remote.private_key_with_passphrase_pem();
    let started = Instant::now();
    let err = repo.set_upstream("p", ssh_creds(&remote.url(&bare), &key, "not-the-passphrase")).unwrap_err();
    assert!(started.elapsed() < QUICK, "took {:?}", started.elapsed());
    assert!(!err.to_string().contains("not-the-passphrase"), "{err}");
    assert!(repo.upstream("p").unwrap().is_none());
    assert_eq!(upstream_head(&bare), None);
    // A key that can't be decrypted is a credentials problem (424), not an unreachable upstream.
    assert!(matches!(err, Error::UpstreamAuth { .. }) && err.is_bad_credentials(), "{err:?}");
    assert!(err.to_string().contains("private key and passphrase"), "{err}");
}

#[test]
fn ssh_unknown_key_is_bad_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let remote = SshRemote::start();
    let bare = init_bare(dir.path(), "p.git");
    let repo = local_project(dir.path(), LONG);
    let key = dir.path().join("stranger");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-t", "rsa", "-b", "2048", "-m", "PEM", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
    let stranger = std::fs::read_to_string(&key).unwrap();

    let started = Instant::now();
    let err = repo.set_upstream("p", ssh_creds(&remote.url(&bare), &stranger, "")).unwrap_err();
    assert!(started.elapsed() < QUICK, "took {:?}", started.elapsed());
    assert!(matches!(err, Error::UpstreamAuth { .. }) && err.is_bad_credentials(), "{err:?}");
    assert!(repo.upstream("p").unwrap().is_none());
    assert_eq!(upstream_head(&bare), None);
}

#[test]
fn moving_from_http_to_ssh_pushes_the_whole_history() {
    let s = http_setup(LONG);
    s.repo.write("p", Scope::Project, &[("shipyard.yaml", b"stages: [dev]")], "Added shipyard").unwrap();
    let head = s.repo.write("p", Scope::Stage("dev"), &[("sli.yaml", b"x")], "Added sli").unwrap();
    let ssh = SshRemote::start();
    let target = init_bare(s.dir.path(), "moved.git");
    s.repo.set_upstream("p", ssh_creds(&ssh.url(&target), &ssh.private_key_pem(), "")).unwrap();
    assert_eq!(upstream_head(&target), Some(head.clone()));
    assert_eq!(commit_count(&target), commit_count(&s.bare), "the whole history moved");
    assert_eq!(commit_count(&target), 5);
    assert_eq!(s.repo.upstream("p").unwrap().unwrap().remote_url, ssh.url(&target));

    let requests = s.remote.requests();
    let next = s.repo.write("p", Scope::Project, &[("c.txt", b"c")], "c").unwrap();
    assert_eq!(upstream_head(&target), Some(next));
    assert_eq!(upstream_head(&s.bare), Some(head), "the old upstream is left alone");
    assert_eq!(s.remote.requests(), requests, "and not contacted any more");
}

/// An HTTP server on loopback answering every request with a redirect to `target` + its path.
fn redirector(target: String) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let path = line.split(' ').nth(1).unwrap_or("/").to_string();
            // Skip the headers.
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let answer = format!(
                "HTTP/1.1 301 Moved Permanently\r\nLocation: {target}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = (&stream).write_all(answer.as_bytes());
        }
    });
    url
}

#[test]
fn http_redirects_to_another_host_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served");
    init_bare(&served, "p.git");
    let remote = HttpRemote::start(&served, Some((USER, TOKEN)));
    // The remote under another host name (`localhost`, not the checked `127.0.0.1`). libgit2
    // still follows redirects on the same host (any port): that host was checked already.
    let target = remote.url("p.git").trim_end_matches("/p.git").replace("127.0.0.1", "localhost");
    let url = format!("{}/p.git", redirector(target));
    let repo = local_project(dir.path(), LONG);
    let err = repo.set_upstream("p", https_creds(&url, TOKEN)).unwrap_err();
    assert!(err.to_string().contains(&url), "{err}");
    assert_eq!(remote.requests(), 0, "the redirect to another host was followed");
    assert!(repo.upstream("p").unwrap().is_none());
}
