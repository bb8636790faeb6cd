//! Running the real `keptn` binary as a user would: its own config dir, no endpoint or token
//! from the environment, no colours, and standard input given or closed.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == 0
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

/// `keptn <args>` with its config in `config_dir`, not yet started (stdio piped).
pub fn command(config_dir: &Path, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_keptn"));
    cmd.args(args)
        .env("KEPTN_CONFIG_DIR", config_dir)
        .env_remove("KEPTN_ENDPOINT")
        .env_remove("KEPTN_API_TOKEN")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Runs `keptn <args>` in `cwd` (or here) with `stdin` as its input, then closed.
pub async fn keptn_full(config_dir: &Path, args: &[&str], cwd: Option<&Path>, stdin: &str) -> Out {
    let mut cmd = command(config_dir, args);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().expect("run keptn");
    let mut input = child.stdin.take().expect("stdin piped");
    input.write_all(stdin.as_bytes()).await.expect("write stdin");
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("keptn {args:?} did not end within 120 s"))
        .expect("keptn ran");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub async fn keptn(config_dir: &Path, args: &[&str]) -> Out {
    keptn_full(config_dir, args, None, "").await
}

pub async fn keptn_in(config_dir: &Path, args: &[&str], cwd: Option<&Path>) -> Out {
    keptn_full(config_dir, args, cwd, "").await
}

pub async fn keptn_with_input(config_dir: &Path, args: &[&str], stdin: &str) -> Out {
    keptn_full(config_dir, args, None, stdin).await
}
