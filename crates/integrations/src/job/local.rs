//! The local runner: a task is a process on this host (no container runtime). Each task gets a
//! fresh temporary directory that plays the role of job-executor's `/keptn` volume: the task's
//! `files` are placed there, it is the default working directory, and `KEPTN_DIR` and `HOME`
//! name it. The process starts in a process group of its own with a cleared environment (only
//! `PATH` of the host, `HOME`, `KEPTN_DIR` and the task's variables: the server's own
//! environment, its tokens included, never reaches a job). When the task's leader exits, times
//! out, or the run is dropped (abort, shutdown), the whole group is killed, so nothing it
//! started in the background survives; a process that leaves the group on purpose (`setsid`)
//! is out of reach. Output is kept up to a limit per stream, the rest counted and noted.

use super::images::image_matches;
use super::runner::{JobRunner, TaskOutcome, TaskSpec};
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Output kept per stream (stdout, stderr) by default.
pub const DEFAULT_MAX_OUTPUT: usize = 1024 * 1024;
/// How long the output of a finished task is still read (from processes that left its group).
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// `PATH` of a job when the host has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The local runner's settings.
#[derive(Debug, Clone)]
pub struct LocalSettings {
    /// Image pattern (glob) → the local command standing in for the image's entrypoint, used
    /// when a task has no `cmd` (as Kubernetes uses the image's entrypoint then). First match wins.
    pub images: Vec<(String, Vec<String>)>,
    /// Output kept per stream.
    pub max_output: usize,
    /// Where the work directories are created (default: the system's temporary directory).
    pub work_root: Option<PathBuf>,
}

impl Default for LocalSettings {
    fn default() -> Self {
        LocalSettings { images: Vec::new(), max_output: DEFAULT_MAX_OUTPUT, work_root: None }
    }
}

/// `IMAGE=COMMAND` (`--job-image alpine=/bin/sh`, `--job-image 'locustio/locust*=/usr/bin/locust -f'`):
/// COMMAND is split at whitespace.
pub fn parse_image_command(text: &str) -> Result<(String, Vec<String>), String> {
    let (image, command) =
        text.split_once('=').ok_or_else(|| format!("{text:?} is not IMAGE=COMMAND (e.g. alpine=/bin/sh)"))?;
    let command: Vec<String> = command.split_whitespace().map(String::from).collect();
    if image.trim().is_empty() || command.is_empty() {
        return Err(format!("{text:?}: both IMAGE and COMMAND are needed (e.g. alpine=/bin/sh)"));
    }
    Ok((image.trim().to_string(), command))
}

pub struct LocalRunner {
    settings: LocalSettings,
}

impl LocalRunner {
    pub fn new(settings: LocalSettings) -> LocalRunner {
        LocalRunner { settings }
    }

    /// The program and its arguments: `cmd` + `args`, or the image's local command + `args`;
    /// `$(VAR)` expanded in `cmd` and `args` with `vars`.
    fn argv(&self, spec: &TaskSpec, vars: &[(String, String)]) -> Result<Vec<String>, String> {
        let expand = |items: &[String]| items.iter().map(|i| super::env::expand(i, vars)).collect::<Vec<_>>();
        let entry = match spec.cmd.is_empty() {
            false => expand(&spec.cmd),
            true => self
                .settings
                .images
                .iter()
                .find(|(pattern, _)| image_matches(pattern, &spec.image))
                .map(|(_, command)| command.clone())
                .ok_or_else(|| {
                    format!(
                        "task has no cmd and image {:?} has no local command (map one with --job-image {}=COMMAND)",
                        spec.image, spec.image
                    )
                })?,
        };
        Ok(entry.into_iter().chain(expand(&spec.args)).collect())
    }
}

/// A path below the work directory, or why it would leave it.
fn below(root: &Path, relative: &str) -> Result<PathBuf, String> {
    let mut out = root.to_path_buf();
    for part in Path::new(relative).components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return Err(format!("{relative:?} leaves the job's directory")),
        }
    }
    Ok(out)
}

/// `workingDir`: `/keptn[/…]` or a relative path, inside the work directory.
pub fn working_dir(root: &Path, configured: Option<&str>) -> Result<PathBuf, String> {
    let Some(dir) = configured.map(str::trim).filter(|d| !d.is_empty()) else { return Ok(root.to_path_buf()) };
    let relative = match dir.strip_prefix("/keptn") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest.trim_start_matches('/'),
        _ if dir.starts_with('/') => {
            return Err(format!(
                "workingDir {dir:?}: a local job runs in its own directory; use /keptn/… or a relative path"
            ));
        }
        _ => dir,
    };
    below(root, relative).map_err(|e| format!("workingDir {e}"))
}

/// What the two output streams left, in arrival order, within a budget per stream.
struct Output {
    text: Vec<u8>,
    kept: [usize; 2],
    dropped: [u64; 2],
    limit: usize,
}

impl Output {
    fn push(&mut self, stream: usize, chunk: &[u8]) {
        let room = self.limit.saturating_sub(self.kept[stream]);
        let take = room.min(chunk.len());
        self.text.extend_from_slice(&chunk[..take]);
        self.kept[stream] += take;
        self.dropped[stream] += (chunk.len() - take) as u64;
    }

    fn logs(&self) -> String {
        let mut logs = String::from_utf8_lossy(&self.text).into_owned();
        for (stream, name) in ["stdout", "stderr"].iter().enumerate() {
            if self.dropped[stream] > 0 {
                logs.push_str(&format!(
                    "\n[{name} truncated: {} more bytes after the first {} bytes]",
                    self.dropped[stream], self.limit
                ));
            }
        }
        logs
    }
}

async fn drain(mut from: impl AsyncRead + Unpin, stream: usize, output: Arc<Mutex<Output>>) {
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => output.lock().unwrap_or_else(|p| p.into_inner()).push(stream, &chunk[..n]),
        }
    }
}

/// Kills a process group when dropped: on every way out of a run (done, timed out, aborted).
struct Group(Option<i32>);

impl Group {
    /// Kills the group once (its id could be taken by a new group after it emptied).
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take().filter(|p| *p > 1) {
            // SAFETY: kill(2) with a negative pid signals that process group; no memory is touched.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The work directory's name prefix: the job name with anything but letters, digits, `-` and
/// `_` replaced (an event id may hold any character, `/` and `..` included).
fn dir_prefix(job_name: &str) -> String {
    let safe: String = job_name
        .chars()
        .take(100)
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    format!("keptn-{safe}-")
}

async fn place_files(root: &Path, files: &[(String, Vec<u8>)]) -> Result<(), String> {
    for (path, content) in files {
        let target = below(root, path.trim_start_matches('/')).map_err(|e| format!("file {e}"))?;
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| format!("could not create {}: {e}", parent.display()))?;
        }
        tokio::fs::write(&target, content).await.map_err(|e| format!("could not write {}: {e}", target.display()))?;
    }
    Ok(())
}

impl LocalRunner {
    async fn run_in(&self, spec: &TaskSpec, root: &Path, output: &Arc<Mutex<Output>>) -> Result<(), String> {
        let dir = root.to_string_lossy().into_owned();
        let mut vars = vec![("HOME".to_string(), dir.clone()), ("KEPTN_DIR".to_string(), dir)];
        vars.extend(spec.env.iter().cloned());
        let argv = self.argv(spec, &vars)?;
        place_files(root, &spec.files).await?;
        let cwd = working_dir(root, spec.working_dir.as_deref())?;
        tokio::fs::create_dir_all(&cwd).await.map_err(|e| format!("could not create {}: {e}", cwd.display()))?;
        let path = std::env::var("PATH").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| DEFAULT_PATH.into());
        let (program, arguments) = argv.split_first().ok_or("the task names no program (cmd is empty)")?;
        let mut command = tokio::process::Command::new(program);
        command
            .args(arguments)
            .current_dir(&cwd)
            .env_clear()
            .env("PATH", path)
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| format!("could not start {program:?}: {e}"))?;
        let mut group = Group(child.id().map(|pid| pid as i32));
        let mut readers = tokio::task::JoinSet::new();
        if let Some(out) = child.stdout.take() {
            readers.spawn(drain(out, 0, output.clone()));
        }
        if let Some(err) = child.stderr.take() {
            readers.spawn(drain(err, 1, output.clone()));
        }
        let status = tokio::time::timeout(spec.time_limit, child.wait()).await;
        // The leader is done (or out of time): what it left running in its group goes too, as
        // a pod's processes end with its container.
        group.kill();
        let result = match status {
            Err(_) => {
                let _ = child.wait().await;
                Err(format!("timed out after {} s (maxPollDuration)", spec.time_limit.as_secs()))
            }
            Ok(Err(e)) => Err(format!("could not wait for the process: {e}")),
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(match (status.code(), std::os::unix::process::ExitStatusExt::signal(&status)) {
                (Some(code), _) => format!("exited with code {code}"),
                (None, Some(signal)) => format!("killed by signal {signal}"),
                (None, None) => "failed".to_string(),
            }),
        };
        let _ = tokio::time::timeout(DRAIN_GRACE, async { while readers.join_next().await.is_some() {} }).await;
        result
    }
}

#[async_trait::async_trait]
impl JobRunner for LocalRunner {
    async fn run(&self, spec: TaskSpec) -> TaskOutcome {
        let started_ms = crate::now_ms();
        let output = Arc::new(Mutex::new(Output {
            text: Vec::new(),
            kept: [0; 2],
            dropped: [0; 2],
            limit: self.settings.max_output,
        }));
        let root = self.settings.work_root.clone().unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new().prefix(&dir_prefix(&spec.job_name)).tempdir_in(&root);
        let result = match &dir {
            Ok(dir) => self.run_in(&spec, dir.path(), &output).await,
            Err(e) => Err(format!("could not create a work directory in {}: {e}", root.display())),
        };
        let logs = output.lock().unwrap_or_else(|p| p.into_inner()).logs();
        TaskOutcome { started_ms, ended_ms: crate::now_ms(), logs, result }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(cmd: &[&str], limit: Duration) -> TaskSpec {
        TaskSpec {
            job_name: "job-test".into(),
            task_name: "t".into(),
            image: "alpine".into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            time_limit: limit,
            ..TaskSpec::default()
        }
    }

    fn runner() -> LocalRunner {
        LocalRunner::new(LocalSettings::default())
    }

    /// Processes of a group that are still alive (zombies waiting for their reaper do not run).
    fn alive_in_group(pgid: i32) -> Vec<String> {
        let mut alive = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            // pid (comm) state ppid pgrp …: comm may hold spaces, so split after the last ')'.
            let Some((_, rest)) = stat.rsplit_once(')') else { continue };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields.get(2).and_then(|g| g.parse::<i32>().ok()) == Some(pgid) && fields[0] != "Z" {
                alive.push(stat);
            }
        }
        alive
    }

    #[tokio::test]
    async fn a_successful_task_has_its_logs_env_and_files() {
        let mut s = spec(
            &[
                "sh",
                "-c",
                "echo out; echo err >&2; echo $GREETING; cat in.txt; pwd; test \"$HOME\" = \"$KEPTN_DIR\"; test -z \"$CARGO_MANIFEST_DIR\"",
            ],
            Duration::from_secs(10),
        );
        s.env = vec![("GREETING".into(), "hello".into())];
        s.files = vec![("data/in.txt".into(), b"from the repo".to_vec())];
        s.working_dir = Some("/keptn/data".into());
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some(), "the host environment has it");
        let outcome = runner().run(s).await;
        assert_eq!(outcome.result, Ok(()), "{}", outcome.logs);
        for want in ["out\n", "err\n", "hello\n", "from the repo"] {
            assert!(outcome.logs.contains(want), "{want:?} in {:?}", outcome.logs);
        }
        assert!(outcome.logs.contains("/data\n"), "runs in workingDir: {}", outcome.logs);
        assert!(outcome.started_ms <= outcome.ended_ms);
    }

    #[tokio::test]
    async fn a_failing_task_reports_its_exit_code_and_logs() {
        let outcome = runner().run(spec(&["sh", "-c", "echo about to fail; exit 3"], Duration::from_secs(10))).await;
        assert_eq!(outcome.result, Err("exited with code 3".into()));
        assert!(outcome.logs.contains("about to fail"));
        let missing = runner().run(spec(&["/nonexistent/program"], Duration::from_secs(10))).await;
        assert!(missing.result.unwrap_err().contains("could not start \"/nonexistent/program\""));
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        // `$$$$`: the runner expands `$$` to `$` as Kubernetes does.
        let script = format!("echo $$$$ > {}; sleep 100 & sleep 100", pid_file.display());
        let started = std::time::Instant::now();
        let outcome = runner().run(spec(&["sh", "-c", &script], Duration::from_secs(1))).await;
        assert_eq!(outcome.result, Err("timed out after 1 s (maxPollDuration)".into()));
        assert!(started.elapsed() < Duration::from_secs(5), "does not wait for the background sleep");
        let pgid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !alive_in_group(pgid).is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(alive_in_group(pgid), Vec::<String>::new(), "no process of the job's group survives");
    }

    #[tokio::test]
    async fn dropping_a_run_kills_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        // `$$$$`: the runner expands `$$` to `$` as Kubernetes does.
        let script = format!("echo $$$$ > {}; sleep 100 & sleep 100", pid_file.display());
        let r = runner();
        let run = r.run(spec(&["sh", "-c", &script], Duration::from_secs(100)));
        let _ = tokio::time::timeout(Duration::from_millis(500), run).await;
        let pgid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !alive_in_group(pgid).is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(alive_in_group(pgid), Vec::<String>::new());
    }

    #[tokio::test]
    async fn output_is_truncated_with_a_note() {
        let r = LocalRunner::new(LocalSettings { max_output: 1000, ..LocalSettings::default() });
        let outcome = r.run(spec(&["sh", "-c", "head -c 5000 /dev/zero | tr '\\0' a"], Duration::from_secs(10))).await;
        assert_eq!(outcome.result, Ok(()));
        assert!(outcome.logs.starts_with(&"a".repeat(1000)), "{}", &outcome.logs[..50]);
        assert!(
            outcome.logs.ends_with("[stdout truncated: 4000 more bytes after the first 1000 bytes]"),
            "{}",
            &outcome.logs[1000..]
        );
    }

    #[tokio::test]
    async fn an_image_maps_to_a_local_entrypoint() {
        let r = LocalRunner::new(LocalSettings {
            images: vec![parse_image_command("alpine=/bin/sh -c").unwrap()],
            ..LocalSettings::default()
        });
        let mut s = spec(&[], Duration::from_secs(10));
        s.args = vec!["echo mapped".into()];
        let outcome = r.run(s.clone()).await;
        assert_eq!((outcome.result, outcome.logs.as_str()), (Ok(()), "mapped\n"));
        s.image = "busybox".into();
        let unmapped = r.run(s).await;
        assert!(unmapped.result.unwrap_err().contains("--job-image busybox=COMMAND"));
        assert!(parse_image_command("alpine").is_err());
        assert!(parse_image_command("alpine=").is_err());
    }

    #[test]
    fn work_dir_names_cannot_leave_the_root() {
        assert_eq!(
            dir_prefix("job-executor-service-job-../../etc-001-001"),
            "keptn-job-executor-service-job-______etc-001-001-"
        );
    }

    #[test]
    fn working_dirs_stay_inside() {
        let root = Path::new("/w");
        assert_eq!(working_dir(root, None).unwrap(), PathBuf::from("/w"));
        assert_eq!(working_dir(root, Some("/keptn")).unwrap(), PathBuf::from("/w"));
        assert_eq!(working_dir(root, Some("/keptn/a/b")).unwrap(), PathBuf::from("/w/a/b"));
        assert_eq!(working_dir(root, Some("sub")).unwrap(), PathBuf::from("/w/sub"));
        assert!(working_dir(root, Some("/etc")).is_err());
        assert!(working_dir(root, Some("/keptnx")).is_err());
        assert!(working_dir(root, Some("../x")).is_err());
        assert!(working_dir(root, Some("/keptn/../x")).is_err());
    }
}
