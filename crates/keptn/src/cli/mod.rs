//! keptn's CLI: an HTTP client of the API (it never touches a server's data dir). Every command
//! prints one line that says what went wrong and how to fix it, and exits non-zero on failure.

mod client;
mod config;
mod output;
mod project;

use clap::{Args, Subcommand};
pub use client::Client;

/// Commands that talk to a keptn server.
#[derive(Subcommand, Debug)]
pub enum CliCommand {
    /// Check an endpoint and token and store them for later commands.
    Auth(AuthArgs),
    /// Show the endpoint in use and whether the token is accepted.
    Status,
    /// Print the CLI's and the server's versions.
    Version,
    /// Create a project or a service.
    #[command(subcommand)]
    Create(Box<project::CreateCommand>),
    /// Show projects, stages or services.
    #[command(subcommand)]
    Get(project::GetCommand),
}

#[derive(Args, Debug)]
pub struct AuthArgs {
    /// The server, as `http://host:8080` or keptn's `http://host:8080/api`.
    #[arg(short = 'e', long, env = "KEPTN_ENDPOINT")]
    endpoint: String,
    /// The API token (printed by `keptn server` on its first start).
    #[arg(short = 'a', long = "api-token", env = "KEPTN_API_TOKEN")]
    api_token: String,
}

pub async fn run(cmd: CliCommand) -> anyhow::Result<()> {
    match cmd {
        CliCommand::Auth(a) => {
            let client = Client::new(config::Credentials::new(&a.endpoint, &a.api_token));
            client.post("/api/v1/auth", &serde_json::json!({})).await?;
            let path = config::save(client.credentials())?;
            println!("Successfully authenticated against {}", client.credentials().endpoint);
            println!("Credentials stored in {}", path.display());
            Ok(())
        }
        CliCommand::Status => {
            let client = Client::from_config()?;
            client.post("/api/v1/auth", &serde_json::json!({})).await?;
            println!("Successfully authenticated against {}", client.credentials().endpoint);
            Ok(())
        }
        CliCommand::Version => {
            println!("CLI version: {}", env!("CARGO_PKG_VERSION"));
            match Client::from_config() {
                Ok(client) => {
                    let meta = client.get("/api/v1/metadata").await?;
                    println!("Server version: {}", meta["keptnversion"].as_str().unwrap_or("unknown"));
                }
                Err(_) => println!("Server version: unknown (not authenticated; run `keptn auth`)"),
            }
            Ok(())
        }
        CliCommand::Create(c) => project::create(*c).await,
        CliCommand::Get(g) => project::get(g).await,
    }
}
