//! A full disk: writes fail with 503 and `/ready` says why; once space is back the writer
//! commits again by itself (no restart), and nothing committed before is lost.
//!
//! The data dir is a small tmpfs this test mounts (we run as root); where mounting is not
//! possible the test says so and passes.

mod support;

use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::*;

/// A tmpfs mounted on a directory, unmounted when dropped (lazily, so a failed test's open
/// files do not keep it).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(dir.to_path_buf())),
            Ok(o) => {
                eprintln!("notice: skipping the disk-full test, mount failed: {}", String::from_utf8_lossy(&o.stderr));
                None
            }
            Err(e) => {
                eprintln!("notice: skipping the disk-full test, cannot run mount: {e}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Writes a file until the filesystem is full.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0x5au8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "filling stops at a full disk: {e}");
                break;
            }
        }
    }
    let _ = f.sync_all();
    written
}

fn event(i: usize, padding: usize) -> Value {
    json!({ "type": "sh.keptn.event.deployment.finished", "source": "disk-full-test", "triggeredid": format!("t{i}"),
            "data": { "n": i, "padding": "x".repeat(padding) } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_recover_by_themselves_after_the_disk_was_full() {
    let dir = tempfile::tempdir().unwrap();
    let Some(tmpfs) = Tmpfs::mount(dir.path(), "16m") else { return };
    let server = TestServer::start_in(Db::Sqlite, dir, Duration::from_secs(600), Default::default())
        .await
        .expect("sqlite always available");
    let client = server.client();
    let ready = |client: Client| async move {
        let r = client.http.get(format!("{}/ready", client.url)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap())
    };
    assert_eq!(ready(client.clone()).await.0, 200);

    let mut accepted = Vec::new();
    for i in 0..20 {
        accepted.push((i, client.send(event(i, 100)).await));
    }

    let filler = tmpfs.0.join("filler");
    let filled = fill(&filler);
    assert!(filled > 0);
    // Events until one fails: those that still fitted are accepted and must survive.
    let mut refused = None;
    for i in 20..400 {
        let (s, b) = client.post("/api/v1/event", event(i, 30_000)).await;
        match s {
            200 => accepted.push((i, b["keptnContext"].as_str().unwrap().to_string())),
            503 => {
                refused = Some(b);
                break;
            }
            other => panic!("a write on a full disk answers 200 or 503, not {other}: {b}"),
        }
    }
    let refused = refused.expect("a write fails once the disk is full");
    assert_eq!(refused["code"], 503, "{refused}");
    let (s, b) = ready(client.clone()).await;
    assert_eq!(s, 503, "/ready reports the writer that cannot commit: {b}");
    let message = b["message"].as_str().unwrap();
    assert!(message.contains("cannot commit") && message.contains("disk"), "says why: {message}");

    std::fs::remove_file(&filler).unwrap();
    // Without any request, the writer's probe notices that the database takes writes again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (s, b) = ready(client.clone()).await;
        if s == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "/ready stays 503 after space came back: {b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // No restart: the next writes commit.
    for i in 400..410 {
        let (s, b) = client.post("/api/v1/event", event(i, 30_000)).await;
        assert_eq!(s, 200, "a write after space came back: {b}");
        accepted.push((i, b["keptnContext"].as_str().unwrap().to_string()));
    }
    let (s, b) = ready(client.clone()).await;
    assert_eq!(s, 200, "ready again: {b}");

    for (i, ctx) in &accepted {
        let events = client.events_of(ctx).await;
        assert_eq!(events.len(), 1, "accepted event {i} is stored");
        assert_eq!(events[0]["data"]["n"], *i as u64);
    }
    server.stop().await;
    drop(tmpfs);
}
