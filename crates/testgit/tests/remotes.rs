//! Proves each remote with the real `git` CLI and with libgit2 (the `git2` calls the configuration repository uses).

use std::cell::Cell;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use git2::{CertificateCheckStatus, Cred, FetchOptions, PushOptions, RemoteCallbacks, Repository, Signature};
use keptn_testgit::{HttpRemote, SshRemote, init_bare};
use tempfile::TempDir;

/// Runs the git CLI in `dir` without any user or system configuration and without prompting.
fn git(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "/bin/false")
        // The environment may point git at the system CA bundle, which would override http.sslCAInfo.
        .env_remove("GIT_SSL_CAINFO")
        .env_remove("GIT_SSL_CAPATH")
        .envs(env.iter().copied())
        .output()
        .expect("run git")
}

fn git_ok(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = git(dir, args, env);
    assert!(out.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Clones `url` (empty), commits a file, pushes it, clones again and checks the file arrived.
fn cli_roundtrip(url: &str, config: &[&str], env: &[(&str, &str)]) {
    let work = TempDir::new().unwrap();
    fn with<'a>(config: &[&'a str], args: &[&'a str]) -> Vec<&'a str> {
        config.iter().chain(args).copied().collect()
    }
    git_ok(work.path(), &with(config, &["clone", url, "first"]), env);
    let first = work.path().join("first");
    fs::write(first.join("shipyard.yaml"), "stages: [dev]\n").unwrap();
    git_ok(&first, &["add", "."], env);
    git_ok(&first, &["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "add shipyard"], env);
    git_ok(&first, &with(config, &["push", "origin", "HEAD:master"]), env);
    git_ok(work.path(), &with(config, &["clone", url, "second"]), env);
    assert_eq!(fs::read_to_string(work.path().join("second/shipyard.yaml")).unwrap(), "stages: [dev]\n");
}

/// Commits a file with libgit2, pushes it with libgit2, clones with libgit2 and checks the file arrived.
fn git2_roundtrip(url: &str, callbacks: &dyn Fn() -> RemoteCallbacks<'static>) {
    let work = TempDir::new().unwrap();
    let repo = Repository::init(work.path().join("local")).unwrap();
    fs::write(work.path().join("local/shipyard.yaml"), "stages: [prod]\n").unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(Path::new("shipyard.yaml")).unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = Signature::now("t", "t@example.com").unwrap();
    repo.commit(Some("refs/heads/master"), &sig, &sig, "add shipyard", &tree, &[]).unwrap();

    let mut push_callbacks = callbacks();
    // push() succeeds even when the remote rejects a reference; only this callback tells.
    push_callbacks.push_update_reference(|name, status| match status {
        None => Ok(()),
        Some(msg) => Err(git2::Error::from_str(&format!("{name} rejected: {msg}"))),
    });
    let mut remote = repo.remote_anonymous(url).unwrap();
    remote
        .push(&["refs/heads/master:refs/heads/master"], Some(PushOptions::new().remote_callbacks(push_callbacks)))
        .unwrap();

    let mut fetch = FetchOptions::new();
    fetch.remote_callbacks(callbacks());
    git2::build::RepoBuilder::new().fetch_options(fetch).clone(url, &work.path().join("clone")).unwrap();
    assert_eq!(fs::read_to_string(work.path().join("clone/shipyard.yaml")).unwrap(), "stages: [prod]\n");
}

fn userpass(user: &'static str, token: &'static str) -> RemoteCallbacks<'static> {
    let mut callbacks = RemoteCallbacks::new();
    callbacks.credentials(move |_url, _username, _allowed| Cred::userpass_plaintext(user, token));
    callbacks
}

#[test]
fn http_without_credentials() {
    let root = TempDir::new().unwrap();
    init_bare(root.path(), "project.git");
    let remote = HttpRemote::start(root.path(), None);
    assert!(remote.ca_pem().is_none());
    cli_roundtrip(&remote.url("project.git"), &[], &[]);
    assert!(remote.requests() > 0);
}

#[test]
fn http_with_credentials() {
    let root = TempDir::new().unwrap();
    init_bare(root.path(), "project.git");
    let remote = HttpRemote::start(root.path(), Some(("keptn", "t0ken")));
    let url = remote.url("project.git");
    let work = TempDir::new().unwrap();

    // Raw request: the challenge must be Basic so git and libgit2 offer credentials.
    let mut stream = TcpStream::connect(url.trim_start_matches("http://").split('/').next().unwrap()).unwrap();
    stream.write_all(b"GET /project.git/info/refs?service=git-upload-pack HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut head = [0; 512];
    let n = stream.read(&mut head).unwrap();
    let head = String::from_utf8_lossy(&head[..n]);
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert!(head.to_ascii_lowercase().contains("www-authenticate: basic realm=\"git\""), "{head}");

    assert!(!git(work.path(), &["clone", &url, "anonymous"], &[]).status.success());
    let wrong = url.replace("http://", "http://keptn:wrong@");
    assert!(!git(work.path(), &["clone", &wrong, "wrong"], &[]).status.success());
    let wrong_user = url.replace("http://", "http://other:t0ken@");
    assert!(!git(work.path(), &["clone", &wrong_user, "wrong_user"], &[]).status.success());

    cli_roundtrip(&url.replace("http://", "http://keptn:t0ken@"), &[], &[]);
}

/// A push larger than git's 1 MiB post buffer is sent chunked, and a fetch with many "have" lines is gzipped.
#[test]
fn http_chunked_and_gzipped_request_bodies() {
    let root = TempDir::new().unwrap();
    init_bare(root.path(), "project.git");
    let remote = HttpRemote::start(root.path(), Some(("keptn", "t0ken")));
    let url = remote.url("project.git").replace("http://", "http://keptn:t0ken@");
    let work = TempDir::new().unwrap();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    let commit = ["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q"];
    git_ok(work.path(), &["clone", &url, "a"], &[]);

    // Incompressible content, so the pack really is larger than the post buffer.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let noise: Vec<u8> = (0..3 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    fs::write(a.join("noise.bin"), &noise).unwrap();
    git_ok(&a, &["add", "."], &[]);
    git_ok(&a, &[&commit[..], &["-m", "noise"]].concat(), &[]);
    git_ok(&a, &["push", "origin", "HEAD:master"], &[]);

    git_ok(work.path(), &["clone", &url, "b"], &[]);
    assert_eq!(fs::read(b.join("noise.bin")).unwrap(), noise);
    for i in 0..40 {
        git_ok(&b, &[&commit[..], &["--allow-empty", "-m", &format!("local {i}")]].concat(), &[]);
    }
    git_ok(&a, &[&commit[..], &["--allow-empty", "-m", "new"]].concat(), &[]);
    git_ok(&a, &["push", "origin", "HEAD:master"], &[]);
    git_ok(&b, &["fetch", "origin"], &[]);
    assert_eq!(git_ok(&b, &["rev-parse", "origin/master"], &[]), git_ok(&a, &["rev-parse", "HEAD"], &[]));
}

#[test]
fn https_with_ca() {
    let root = TempDir::new().unwrap();
    init_bare(root.path(), "project.git");
    let remote = HttpRemote::start_tls(root.path(), Some(("keptn", "t0ken")));
    let url = remote.url("project.git");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let ca = root.path().join("ca.pem");
    fs::write(&ca, remote.ca_pem().unwrap()).unwrap();
    let authed = url.replace("https://", "https://keptn:t0ken@");

    // Without the CA the certificate is not trusted.
    let work = TempDir::new().unwrap();
    let out = git(work.path(), &["clone", &authed, "untrusted"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("certificate"), "{}", String::from_utf8_lossy(&out.stderr));

    let ca_config = format!("http.sslCAInfo={}", ca.display());
    cli_roundtrip(&authed, &["-c", &ca_config], &[]);
    // localhost is in the certificate too.
    let by_name = authed.replace("127.0.0.1", "localhost");
    git_ok(work.path(), &["-c", &ca_config, "clone", &by_name, "by_name"], &[]);
}

#[test]
fn ssh_cli() {
    let root = TempDir::new().unwrap();
    let repo = init_bare(root.path(), "project.git");
    let remote = SshRemote::start();
    let key = root.path().join("id");
    fs::write(&key, remote.private_key_pem()).unwrap();
    // ssh ignores private keys that others can read.
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let ssh = format!(
        "ssh -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
        key.display()
    );
    cli_roundtrip(&remote.url(&repo), &[], &[("GIT_SSH_COMMAND", &ssh)]);
}

#[test]
fn git2_http_with_credentials() {
    let root = TempDir::new().unwrap();
    init_bare(root.path(), "project.git");
    let remote = HttpRemote::start(root.path(), Some(("keptn", "t0ken")));
    git2_roundtrip(&remote.url("project.git"), &|| userpass("keptn", "t0ken"));

    // libgit2 asks again after every 401, so a wrong token loops until the callback gives up.
    let calls = Cell::new(0);
    let mut callbacks = RemoteCallbacks::new();
    callbacks.credentials(|_url, _username, _allowed| {
        calls.set(calls.get() + 1);
        if calls.get() > 3 {
            return Err(git2::Error::from_str("giving up"));
        }
        Cred::userpass_plaintext("keptn", "wrong")
    });
    let mut fetch = FetchOptions::new();
    fetch.remote_callbacks(callbacks);
    let target = root.path().join("wrong");
    let err = git2::build::RepoBuilder::new().fetch_options(fetch).clone(&remote.url("project.git"), &target);
    assert!(err.is_err());
    assert_eq!(calls.get(), 4, "credentials callback calls");
}

#[test]
fn git2_http_without_credentials() {
    let root = TempDir::new().unwrap();
    init_bare(root.path(), "project.git");
    let remote = HttpRemote::start(root.path(), None);
    git2_roundtrip(&remote.url("project.git"), &RemoteCallbacks::new);
}

#[test]
fn git2_https() {
    let root = TempDir::new().unwrap();
    init_bare(root.path(), "project.git");
    let remote = HttpRemote::start_tls(root.path(), Some(("keptn", "t0ken")));
    let url = remote.url("project.git");

    // libgit2 does not know the CA: without a certificate_check override the connection fails.
    let mut fetch = FetchOptions::new();
    fetch.remote_callbacks(userpass("keptn", "t0ken"));
    let err = git2::build::RepoBuilder::new().fetch_options(fetch).clone(&url, &root.path().join("untrusted"));
    assert_eq!(err.err().map(|e| e.class()), Some(git2::ErrorClass::Ssl));

    git2_roundtrip(&url, &|| {
        let mut callbacks = userpass("keptn", "t0ken");
        callbacks.certificate_check(|_cert, _host| Ok(CertificateCheckStatus::CertificateOk));
        callbacks
    });
}

#[test]
fn git2_ssh_keys_from_memory() {
    let root = TempDir::new().unwrap();
    let remote = SshRemote::start();
    let plain = remote.private_key_pem();
    let (encrypted, passphrase) = remote.private_key_with_passphrase_pem();
    assert!(plain.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    assert!(encrypted.contains("Proc-Type: 4,ENCRYPTED"));

    for (name, pem, passphrase) in [("plain.git", plain, None), ("encrypted.git", encrypted, Some(passphrase))] {
        let url = remote.url(&init_bare(root.path(), name));
        git2_roundtrip(&url, &|| {
            let (pem, passphrase) = (pem.clone(), passphrase.clone());
            let mut callbacks = RemoteCallbacks::new();
            callbacks.credentials(move |_url, username, _allowed| {
                Cred::ssh_key_from_memory(username.unwrap_or("root"), None, &pem, passphrase.as_deref())
            });
            // libgit2 checks ~/.ssh/known_hosts when no callback decides about the host key.
            callbacks.certificate_check(|_cert, _host| Ok(CertificateCheckStatus::CertificateOk));
            callbacks
        });
    }
}

#[tokio::test]
async fn usable_from_tokio_tests() {
    let root = TempDir::new().unwrap();
    init_bare(root.path(), "project.git");
    let remote = HttpRemote::start_tls(root.path(), None);
    let url = remote.url("project.git");
    let before = remote.requests();
    let ca = root.path().join("ca.pem");
    fs::write(&ca, remote.ca_pem().unwrap()).unwrap();
    let work = root.path().to_owned();
    let ls = tokio::task::spawn_blocking(move || {
        git_ok(&work, &["-c", &format!("http.sslCAInfo={}", ca.display()), "ls-remote", &url], &[])
    })
    .await
    .unwrap();
    assert_eq!(ls, "");
    assert!(remote.requests() > before);
    drop(remote);
}
