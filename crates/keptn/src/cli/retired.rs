//! keptn commands that keptn-rs does not have (keptn 1.x's Bridge and cluster tooling,
//! and keptn 0.x's `install`, `send event new-artifact`, …): a user typing one is told what to
//! use instead, not given clap's nearest spelling.

/// keptn's command words, and what to do instead. More specific entries first.
const RETIRED: &[(&[&str], &str)] = &[
    (
        &["send", "event", "new-artifact"],
        "keptn 1.x replaced it with `keptn trigger delivery --project P --service S --image IMAGE`",
    ),
    (&["install"], "it needs no installation into a cluster: run `keptn server` (see `keptn server --help`)"),
    (
        &["upgrade"],
        "it needs no upgrade step: stop `keptn server`, then start the new binary with the same --data-dir (its database is migrated at start)",
    ),
    (
        &["uninstall"],
        "it is not installed into a cluster: stop `keptn server` and delete its data dir (--data-dir / KEPTN_DATA_DIR)",
    ),
    (
        &["generate", "support-archive"],
        "it has no cluster to collect from: the server logs to its stderr (KEPTN_LOG=debug for more) and keeps its state in --data-dir; attach those to a bug report",
    ),
    (&["generate", "cloud-events-spec"], "keptn's CloudEvents specification is at https://github.com/keptn/spec"),
    (&["generate"], "the CLI's documentation is `keptn --help` and `keptn <command> --help`"),
    (
        &["configure", "bridge"],
        "there is no Bridge yet: follow sequences with `keptn get sequences` / `keptn get sequence CONTEXT`, quality gates with `keptn get evaluations`",
    ),
    (
        &["configure", "domain"],
        "it needs no ingress domain: the server listens where `keptn server --listen` (KEPTN_LISTEN) says; give that address to `keptn auth --endpoint`",
    ),
    (
        &["set", "config"],
        "the CLI has no settings besides the credentials `keptn auth` stores (moved with KEPTN_CONFIG_DIR, overridden by KEPTN_ENDPOINT / KEPTN_API_TOKEN), and no version or kube-context check",
    ),
    (
        &["onboard", "service"],
        "keptn 1.x replaced it with `keptn create service NAME --project P` (add its files with `keptn add-resource`)",
    ),
];

/// What to say instead of clap's error for these arguments (without the program name), if they
/// start with a keptn command keptn-rs does not have.
pub fn advice(args: &[String]) -> Option<String> {
    let words: Vec<&str> = args.iter().map(String::as_str).take_while(|a| !a.starts_with('-')).collect();
    if words.first() == Some(&"auth") && args.iter().any(|a| a.starts_with("--oauth")) {
        return Some(
            "keptn-rs has no OAuth login (`keptn auth --oauth…`): the server checks its API token; run `keptn auth --endpoint URL --api-token TOKEN`"
                .into(),
        );
    }
    let (command, instead) = RETIRED.iter().find(|(command, _)| words.starts_with(command))?;
    Some(format!("keptn-rs has no `keptn {}`: {instead}", command.join(" ")))
}

/// Exits on a command-line error: with the advice for a keptn command keptn-rs lacks (one line,
/// exit status 2 for bad usage, as clap's own errors), else with clap's message.
pub fn exit_on(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    let shown = matches!(
        e.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    let args: Vec<String> = std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
    match advice(&args).filter(|_| !shown) {
        Some(advice) => {
            eprintln!("Error: {advice}");
            std::process::exit(2);
        }
        None => e.exit(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(line: &str) -> Option<String> {
        advice(&line.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn the_most_specific_entry_and_only_leading_words_count() {
        assert!(
            of("generate support-archive --dir x")
                .unwrap()
                .contains("`keptn generate support-archive`: it has no cluster")
        );
        assert!(of("generate foo").unwrap().contains("keptn --help"));
        assert!(of("send event -f new-artifact").is_none(), "a file named new-artifact is not the command");
        assert!(of("get events --project p").is_none());
        assert!(of("auth --endpoint x --oauth-client-id y").unwrap().contains("--api-token"));
    }
}
