//! `create project|service` (and `create webhook`, in `webhook.rs`), `get project(s)|stage(s)|service(s)`.

use super::output::{self, Format};
use anyhow::Context as _;
use base64::Engine as _;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

const CP: &str = "/api/controlPlane/v1";

#[derive(Subcommand, Debug)]
pub enum CreateCommand {
    /// Create a project from a shipyard (a file path or an http(s) URL).
    Project(Box<CreateProject>),
    /// Create a service in every stage of a project.
    Service(CreateService),
    /// Create a webhook for a task: its webhook-service subscription and webhook/webhook.yaml entry.
    Webhook(Box<super::webhook::CreateWebhook>),
}

#[derive(Args, Debug)]
pub struct CreateProject {
    name: String,
    #[arg(short = 's', long)]
    shipyard: String,
    #[command(flatten)]
    git: GitFlags,
}

/// keptn's git upstream flags.
#[derive(Args, Debug, Default)]
pub struct GitFlags {
    #[arg(short = 'u', long = "git-user")]
    git_user: Option<String>,
    #[arg(short = 'r', long = "git-remote-url")]
    git_remote_url: Option<String>,
    #[arg(short = 't', long = "git-token")]
    git_token: Option<String>,
    /// Path of the ssh private key.
    #[arg(short = 'k', long = "git-private-key")]
    git_private_key: Option<String>,
    #[arg(short = 'l', long = "git-private-key-pass")]
    git_private_key_pass: Option<String>,
    #[arg(short = 'x', long = "insecure-skip-tls")]
    insecure_skip_tls: bool,
    /// Path of a PEM CA certificate to trust for the upstream.
    #[arg(short = 'g', long = "git-pem-certificate")]
    git_pem_certificate: Option<String>,
    #[arg(short = 'p', long = "git-proxy-url")]
    git_proxy_url: Option<String>,
    #[arg(short = 'j', long = "git-proxy-scheme", default_value = "http")]
    git_proxy_scheme: String,
    #[arg(short = 'w', long = "git-proxy-user")]
    git_proxy_user: Option<String>,
    #[arg(short = 'e', long = "git-proxy-password")]
    git_proxy_password: Option<String>,
}

impl GitFlags {
    /// keptn's `gitCredentials` (certificate and key base64), or None without a remote URL.
    fn credentials(&self) -> anyhow::Result<Option<Value>> {
        let Some(url) = &self.git_remote_url else { return Ok(None) };
        let b64 = |path: &str| -> anyhow::Result<String> {
            let bytes = std::fs::read(path).with_context(|| format!("cannot read {path}"))?;
            Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
        };
        let mut creds = json!({ "remoteURL": url, "user": self.git_user.clone().unwrap_or_default() });
        if let Some(key) = &self.git_private_key {
            creds["ssh"] = json!({ "privateKey": b64(key)?, "privateKeyPass": self.git_private_key_pass.clone().unwrap_or_default() });
        } else {
            let mut https = json!({ "token": self.git_token.clone().unwrap_or_default(), "insecureSkipTLS": self.insecure_skip_tls });
            if let Some(cert) = &self.git_pem_certificate {
                https["certificate"] = json!(b64(cert)?);
            }
            if let Some(proxy) = &self.git_proxy_url {
                https["proxy"] = json!({ "url": proxy, "scheme": self.git_proxy_scheme,
                    "user": self.git_proxy_user.clone().unwrap_or_default(),
                    "password": self.git_proxy_password.clone().unwrap_or_default() });
            }
            creds["https"] = https;
        }
        Ok(Some(creds))
    }
}

#[derive(Args, Debug)]
pub struct UpdateProject {
    name: String,
    #[command(flatten)]
    git: GitFlags,
}

#[derive(Args, Debug)]
pub struct DeleteProject {
    name: String,
}

#[derive(Subcommand, Debug)]
pub enum DeleteCommand {
    /// Delete a project: its stages, services, sequences and configuration repository.
    Project(DeleteProject),
    /// Delete a service from every stage of a project.
    Service(CreateService),
}

#[derive(Args, Debug)]
pub struct CreateService {
    name: String,
    #[arg(short = 'p', long)]
    project: String,
}

#[derive(Subcommand, Debug)]
pub enum GetCommand {
    /// Projects (all, or one by name).
    #[command(alias = "projects")]
    Project(GetProject),
    /// The stages of a project.
    #[command(alias = "stages")]
    Stage(GetStage),
    /// The services of a project.
    #[command(alias = "services")]
    Service(GetService),
}

#[derive(Args, Debug)]
pub struct GetProject {
    name: Option<String>,
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: Format,
}

#[derive(Args, Debug)]
pub struct GetStage {
    #[arg(long)]
    project: String,
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: Format,
}

#[derive(Args, Debug)]
pub struct GetService {
    name: Option<String>,
    #[arg(long)]
    project: String,
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: Format,
}

/// The shipyard's text, from a file or an http(s) URL.
async fn read_shipyard(source: &str) -> anyhow::Result<String> {
    if source.starts_with("http://") || source.starts_with("https://") {
        let resp = reqwest::get(source).await.with_context(|| format!("cannot download the shipyard from {source}"))?;
        anyhow::ensure!(
            resp.status().is_success(),
            "cannot download the shipyard from {source}: HTTP {}",
            resp.status()
        );
        return Ok(resp.text().await?);
    }
    std::fs::read_to_string(source).with_context(|| format!("cannot read the shipyard file {source}"))
}

pub async fn create(cmd: CreateCommand) -> anyhow::Result<()> {
    let client = super::client::from_config()?;
    match cmd {
        CreateCommand::Project(p) => {
            let yaml = read_shipyard(&p.shipyard).await?;
            let mut body =
                json!({ "name": p.name, "shipyard": base64::engine::general_purpose::STANDARD.encode(yaml) });
            if let Some(creds) = p.git.credentials()? {
                body["gitCredentials"] = creds;
            }
            client.post(&format!("{CP}/project"), &body).await?;
            println!("Project {} created", p.name);
        }
        CreateCommand::Service(s) => {
            client.post(&format!("{CP}/project/{}/service", s.project), &json!({ "serviceName": s.name })).await?;
            println!("Service {} created in project {}", s.name, s.project);
        }
        CreateCommand::Webhook(w) => super::webhook::create(&client, *w).await?,
    }
    Ok(())
}

/// Moves a project to a (new) git upstream; keptn requires the remote URL here.
pub async fn update(p: UpdateProject) -> anyhow::Result<()> {
    let client = super::client::from_config()?;
    let creds = p.git.credentials()?.context("--git-remote-url is required: the upstream to move the project to")?;
    client.put(&format!("{CP}/project"), &json!({ "name": p.name, "gitCredentials": creds })).await?;
    println!("Project {} updated", p.name);
    Ok(())
}

pub async fn delete(cmd: DeleteCommand) -> anyhow::Result<()> {
    let client = super::client::from_config()?;
    match cmd {
        DeleteCommand::Project(p) => {
            client.delete(&format!("{CP}/project/{}", p.name)).await?;
            println!("Project {} deleted", p.name);
        }
        DeleteCommand::Service(s) => {
            client.delete(&format!("{CP}/project/{}/service/{}", s.project, s.name)).await?;
            println!("Service {} deleted from project {}", s.name, s.project);
        }
    }
    Ok(())
}

fn text(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_default()
}

/// keptn's creationDate is nanoseconds since the epoch as a string.
fn created(v: &Value) -> String {
    let ns: i64 = text(v).parse().unwrap_or(0);
    chrono_like(ns / 1_000_000)
}

fn chrono_like(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()
}

pub async fn get(cmd: GetCommand) -> anyhow::Result<()> {
    let client = super::client::from_config()?;
    match cmd {
        GetCommand::Project(p) => {
            let (raw, projects) = match &p.name {
                Some(name) => {
                    let one = client.get(&format!("{CP}/project/{name}")).await?;
                    (one.clone(), vec![one])
                }
                None => {
                    let all = client.get(&format!("{CP}/project?pageSize=100")).await?;
                    let list = all["projects"].as_array().cloned().unwrap_or_default();
                    (all, list)
                }
            };
            let mut rows = vec![vec!["NAME".into(), "CREATION DATE".into(), "STAGES".into(), "UPSTREAM".into()]];
            for p in &projects {
                let stages: Vec<String> =
                    p["stages"].as_array().into_iter().flatten().map(|s| text(&s["stageName"])).collect();
                rows.push(vec![
                    text(&p["projectName"]),
                    created(&p["creationDate"]),
                    stages.join(","),
                    text(&p["gitCredentials"]["remoteURL"]),
                ]);
            }
            output::print(p.output, &raw, rows)
        }
        GetCommand::Stage(s) => {
            let raw = client.get(&format!("{CP}/project/{}/stage?pageSize=100", s.project)).await?;
            let mut rows = vec![vec!["NAME".into(), "SERVICES".into()]];
            for st in raw["stages"].as_array().into_iter().flatten() {
                let services: Vec<String> =
                    st["services"].as_array().into_iter().flatten().map(|s| text(&s["serviceName"])).collect();
                rows.push(vec![text(&st["stageName"]), services.join(",")]);
            }
            output::print(s.output, &raw, rows)
        }
        GetCommand::Service(s) => {
            let project = client.get(&format!("{CP}/project/{}", s.project)).await?;
            let mut rows = vec![vec!["NAME".into(), "STAGE".into(), "DEPLOYED IMAGE".into(), "CREATION DATE".into()]];
            let mut found = Vec::new();
            for st in project["stages"].as_array().into_iter().flatten() {
                for svc in st["services"].as_array().into_iter().flatten() {
                    if s.name.as_deref().is_none_or(|n| svc["serviceName"] == n) {
                        rows.push(vec![
                            text(&svc["serviceName"]),
                            text(&st["stageName"]),
                            text(&svc["deployedImage"]),
                            created(&svc["creationDate"]),
                        ]);
                        found.push(svc.clone());
                    }
                }
            }
            if let Some(name) = &s.name {
                anyhow::ensure!(
                    !found.is_empty(),
                    "service {name:?} does not exist in project {:?}; create it with `keptn create service {name} --project {}`",
                    s.project,
                    s.project
                );
            }
            output::print(s.output, &json!({ "services": found }), rows)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::chrono_like(0), "1970-01-01 00:00:00");
        assert_eq!(super::chrono_like(1_701_424_800_000), "2023-12-01 10:00:00");
    }
}
