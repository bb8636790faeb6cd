//! `add-resource`: a local file into the project's configuration repository, at project, stage
//! or service level (or every stage with `--all-stages`).

use super::Exit;
use anyhow::Context as _;
use base64::Engine as _;
use clap::Args;
use serde_json::json;

#[derive(Args, Debug)]
pub struct AddResource {
    #[arg(short = 'p', long)]
    project: String,
    #[arg(short = 's', long, conflicts_with = "all_stages")]
    stage: Option<String>,
    /// Add the resource to every stage of the project.
    #[arg(long = "all-stages")]
    all_stages: bool,
    #[arg(long)]
    service: Option<String>,
    /// The local file.
    #[arg(short = 'r', long)]
    resource: String,
    /// Where it goes in the repository (default: the file's path as given).
    #[arg(long = "resourceUri", alias = "resource-uri")]
    resource_uri: Option<String>,
}

/// The repository path: `--resourceUri`, else the path as given, without `./` or a leading `/`.
fn target_uri(a: &AddResource) -> String {
    let uri = a.resource_uri.as_deref().unwrap_or(&a.resource);
    uri.trim_start_matches("./").trim_start_matches('/').to_string()
}

pub async fn add(a: AddResource) -> anyhow::Result<Exit> {
    if a.service.is_some() && a.stage.is_none() && !a.all_stages {
        anyhow::bail!("--service needs a stage: add --stage <stage> or --all-stages");
    }
    let client = super::client::from_config()?;
    let content =
        std::fs::read(&a.resource).with_context(|| format!("cannot read the resource file {}", a.resource))?;
    let uri = target_uri(&a);
    let body = json!({ "resources": [{ "resourceURI": uri,
                                       "resourceContent": base64::engine::general_purpose::STANDARD.encode(&content) }] });
    let stages: Vec<Option<String>> = if a.all_stages {
        let raw = client.get(&format!("/api/controlPlane/v1/project/{}/stage?pageSize=100", a.project)).await?;
        raw["stages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["stageName"].as_str())
            .map(|s| Some(s.into()))
            .collect()
    } else {
        vec![a.stage.clone()]
    };
    for stage in stages {
        let mut path = format!("/api/resource-service/v1/project/{}", a.project);
        let mut place = format!("project {}", a.project);
        if let Some(stage) = &stage {
            path.push_str(&format!("/stage/{stage}"));
            place.push_str(&format!(", stage {stage}"));
            if let Some(service) = &a.service {
                path.push_str(&format!("/service/{service}"));
                place.push_str(&format!(", service {service}"));
            }
        }
        let answer = client.post(&format!("{path}/resource"), &body).await?;
        let commit = answer["commitID"].as_str().unwrap_or_default();
        println!("Resource {uri} added to {place} (commit {})", &commit[..commit.len().min(12)]);
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_defaults_to_the_path_as_given() {
        let a = |resource: &str, uri: Option<&str>| AddResource {
            project: "p".into(),
            stage: None,
            all_stages: false,
            service: None,
            resource: resource.into(),
            resource_uri: uri.map(Into::into),
        };
        assert_eq!(target_uri(&a("./helm/carts.tgz", None)), "helm/carts.tgz");
        assert_eq!(target_uri(&a("/tmp/x/slo.yaml", Some("slo.yaml"))), "slo.yaml");
    }
}
