//! `keptn`: the control plane (`keptn server`) and keptn's CLI in one binary.

mod bench;
mod cli;
mod evaluate;
mod integration_cmd;
mod server_cmd;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "keptn", version, about = "keptn-rs: event-driven continuous delivery and operations")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane.
    Server(server_cmd::ServerArgs),
    /// Measure a fresh server (embedded defaults) and print the figures.
    Bench(bench::BenchArgs),
    /// Run built-in integrations against a remote control plane, or list them.
    #[command(subcommand)]
    Integration(integration_cmd::IntegrationCommand),
    /// Evaluate SLIs against an slo.yaml offline (keptn's quality gate, no server needed).
    Evaluate(evaluate::EvaluateArgs),
    #[command(flatten)]
    Cli(cli::CliCommand),
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::try_parse().unwrap_or_else(|e| cli::retired::exit_on(e));
    if matches!(cli.command, Command::Cli(_) | Command::Evaluate(_)) {
        restore_sigpipe();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Server(args) => runtime.block_on(server_cmd::run(args)),
        Command::Bench(args) => runtime.block_on(bench::run(args)),
        Command::Integration(cmd) => runtime.block_on(integration_cmd::run(cmd)),
        Command::Evaluate(args) => match (args.exit_code, evaluate::run(args)) {
            (exit_code, Ok(failed)) => std::process::exit(i32::from(failed && exit_code)),
            (_, Err(e)) => {
                eprintln!("Error: {e:#}");
                std::process::exit(1);
            }
        },
        Command::Cli(cli::CliCommand::Completion { shell }) => {
            clap_complete::generate(shell, &mut Cli::command(), "keptn", &mut std::io::stdout());
            Ok(())
        }
        Command::Cli(cmd) => match runtime.block_on(cli::run(cmd)) {
            Ok(exit) => std::process::exit(exit as i32),
            Err(e) => {
                // One line that says what is wrong and what to do; scripts get exit status 1.
                eprintln!("Error: {e:#}");
                std::process::exit(1);
            }
        },
    }
}

/// A CLI command piped into `head` ends quietly when the pipe closes, as other Unix tools do
/// (Rust ignores SIGPIPE, which turns that into a panic on the next print). The server keeps
/// ignoring it: a client hanging up must not stop it.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called at start, before any other thread exists; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
