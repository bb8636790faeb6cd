//! What a new user meets first: keptn 1.x commands that keptn-rs does not have, `keptn evaluate
//! --previous` given the wrong file, the server's log off a terminal, an evaluation whose SLI
//! provider cannot be reached, and a task no integration subscribes to. The real binary, as a
//! user runs it.

mod support;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::cli::keptn;
use support::*;

const CP: &str = "/api/controlPlane/v1";
const RS: &str = "/api/resource-service/v1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keptn_1x_commands_say_what_to_use_instead() {
    let home = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["send", "event", "new-artifact", "--project", "p", "--service", "s", "--image", "i"],
            "keptn trigger delivery",
        ),
        (&["install"], "keptn server"),
        (&["upgrade", "--chart-repo", "x"], "keptn server"),
        (&["uninstall"], "data dir"),
        (&["create", "secret", "s", "--from-literal", "a=b"], "secrets are not supported"),
        (&["update", "secret", "s"], "secrets are not supported"),
        (&["delete", "secret", "s"], "secrets are not supported"),
        (&["get", "secrets"], "secrets are not supported"),
        (&["generate", "support-archive"], "--data-dir"),
        (&["generate", "docs"], "keptn --help"),
        (&["configure", "bridge", "--user", "u"], "no Bridge"),
        (&["set", "config", "AutomaticVersionCheck", "false"], "KEPTN_CONFIG_DIR"),
        (&["onboard", "service", "carts", "--project", "p"], "keptn create service"),
        (&["auth", "--oauth", "--endpoint", "http://x"], "--api-token"),
    ];
    for (args, hint) in cases {
        let o = keptn(home.path(), args).await;
        assert_eq!(o.code, 2, "bad usage for keptn {args:?}: {o}");
        assert!(o.stderr.contains(hint), "keptn {args:?} names {hint:?}: {o}");
        assert!(
            !o.stderr.contains("similar") && !o.stderr.contains("tip:"),
            "no nearest-spelling guess for keptn {args:?}: {o}"
        );
        assert_eq!(o.stderr.trim().lines().count(), 1, "one line: {o}");
    }
    // A misspelt command that keptn never had still gets clap's help.
    let o = keptn(home.path(), &["trigger", "delivry"]).await;
    assert_eq!(o.code, 2, "{o}");
    assert!(o.stderr.contains("delivery"), "{o}");
}

