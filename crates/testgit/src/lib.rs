//! Real git remotes for tests: `git-http-backend` behind a small HTTP(S) server and a private `sshd`.
//!
//! Every server runs on its own thread (or as its own child process), so it works the same from plain
//! `#[test]`s and from `#[tokio::test]`s; dropping it stops the server and its child processes.

pub mod bare;
mod http;
mod ssh;
mod tls;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use http::HttpRemote;
pub use ssh::SshRemote;

/// Creates an empty bare repository `<root>/<name>` (with `git init --bare`, initial branch master) and returns its path.
pub fn init_bare(root: &Path, name: &str) -> PathBuf {
    let path = root.join(name);
    run(Command::new("git").args(["init", "--quiet", "--bare", "--initial-branch=master"]).arg(&path));
    path
}

/// A port that was free a moment ago. Another process may grab it before the caller binds it, which is
/// acceptable for tests on loopback.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind 127.0.0.1:0").port()
}

/// Runs a helper command and panics with its stderr if it fails.
fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
}
