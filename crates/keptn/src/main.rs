//! `keptn`: the control plane (`keptn server`) and, over time, keptn's CLI in one binary.

mod bench;
mod server_cmd;

use clap::{Parser, Subcommand};

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
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Server(args) => runtime.block_on(server_cmd::run(args)),
        Command::Bench(args) => runtime.block_on(bench::run(args)),
    }
}
