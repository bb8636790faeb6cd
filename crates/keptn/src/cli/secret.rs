//! `create|update|delete secret NAME`, `get secret[s] [NAME]`: keptn's secret-service. Values go
//! in with `--from-literal key=value` and never come back: listings show names, scopes, keys.

use super::output::{self, Format};
use clap::Args;
use keptn_client::secrets::DEFAULT_SCOPE;
use keptn_integration::SecretData;
use serde_json::Value;

#[derive(Args, Debug)]
pub struct WriteSecret {
    name: String,
    /// A key and its value, `key=value` (repeat for more keys).
    #[arg(long = "from-literal", value_name = "KEY=VALUE", required = true)]
    from_literal: Vec<String>,
    /// The scope. Every integration reads keptn-default; keptn-<integration>-service (e.g.
    /// keptn-webhook-service) only that integration.
    #[arg(short = 's', long, default_value = DEFAULT_SCOPE)]
    scope: String,
}

#[derive(Args, Debug)]
pub struct DeleteSecret {
    name: String,
    #[arg(short = 's', long, default_value = DEFAULT_SCOPE)]
    scope: String,
}

#[derive(Args, Debug)]
pub struct GetSecret {
    /// Only secrets of this name.
    name: Option<String>,
    /// Only secrets of this scope.
    #[arg(short = 's', long)]
    scope: Option<String>,
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: Format,
}

/// `key=value` pairs as the secret's data. Errors say which pair by its key or position, never
/// by its value (clap would quote the whole argument).
pub fn literals(pairs: &[String]) -> anyhow::Result<SecretData> {
    let mut data = SecretData::new();
    for (i, pair) in pairs.iter().enumerate() {
        let Some((key, value)) = pair.split_once('=') else {
            anyhow::bail!("--from-literal #{} has no '=': give it as key=value", i + 1);
        };
        anyhow::ensure!(!key.is_empty(), "--from-literal #{} has no key before '=': give it as key=value", i + 1);
        anyhow::ensure!(
            data.insert(key.to_string(), value.to_string()).is_none(),
            "--from-literal key {key:?} is given twice"
        );
    }
    Ok(data)
}

pub async fn create(s: WriteSecret) -> anyhow::Result<()> {
    let data = literals(&s.from_literal)?;
    super::client::from_config()?.create_secret(&s.name, &s.scope, &data).await?;
    println!("Secret {} created in scope {}", s.name, s.scope);
    Ok(())
}

pub async fn update(s: WriteSecret) -> anyhow::Result<()> {
    let data = literals(&s.from_literal)?;
    super::client::from_config()?.update_secret(&s.name, &s.scope, &data).await?;
    println!("Secret {} updated in scope {}", s.name, s.scope);
    Ok(())
}

pub async fn delete(s: DeleteSecret) -> anyhow::Result<()> {
    super::client::from_config()?.delete_secret(&s.name, &s.scope).await?;
    println!("Secret {} deleted from scope {}", s.name, s.scope);
    Ok(())
}

pub async fn get(g: GetSecret) -> anyhow::Result<()> {
    let raw = super::client::from_config()?.list_secrets(g.name.as_deref(), g.scope.as_deref()).await?;
    let secrets = raw["Secrets"].as_array().cloned().unwrap_or_default();
    if let Some(name) = &g.name {
        anyhow::ensure!(
            !secrets.is_empty(),
            "there is no secret {name:?}{}; create it with `keptn create secret {name} --from-literal key=value`",
            g.scope.as_deref().map(|s| format!(" in scope {s:?}")).unwrap_or_default()
        );
    }
    output::print(g.output, &raw, rows(&secrets))
}

/// The table: NAME, SCOPE, KEYS (comma-separated).
fn rows(secrets: &[Value]) -> Vec<Vec<String>> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let mut rows = vec![vec!["NAME".into(), "SCOPE".into(), "KEYS".into()]];
    for s in secrets {
        let keys: Vec<String> = s["keys"].as_array().into_iter().flatten().map(text).collect();
        rows.push(vec![text(&s["name"]), text(&s["scope"]), keys.join(",")]);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pairs(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn literals_split_at_the_first_equals_sign() {
        let data = literals(&pairs(&["token=a=b", "empty="])).unwrap();
        assert_eq!(data["token"], "a=b");
        assert_eq!(data["empty"], "");
    }

    #[test]
    fn bad_literals_name_the_pair_not_the_value() {
        for (given, says) in [
            (&["s3cr3t"][..], "#1 has no '='"),
            (&["k=v", "=s3cr3t"][..], "#2 has no key"),
            (&["k=s3cr3t", "k=x"][..], "\"k\" is given twice"),
        ] {
            let e = literals(&pairs(given)).unwrap_err().to_string();
            assert!(e.contains(says) && !e.contains("s3cr3t"), "{e}");
        }
    }

    #[test]
    fn the_table_lists_keys() {
        let rows = rows(&[json!({"name": "api", "scope": "keptn-default", "keys": ["token", "user"]})]);
        assert_eq!(rows[1], ["api", "keptn-default", "token,user"]);
    }
}
