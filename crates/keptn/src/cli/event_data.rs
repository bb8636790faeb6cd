//! Building event data from command-line flags: labels, `--data k.sub=v`, event type names.

use serde_json::{Map, Value, json};

/// `-l a=b,c=d` (repeatable) → `{"a":"b","c":"d"}`.
pub fn labels(flags: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut out = Map::new();
    for pair in flags.iter().flat_map(|f| f.split(',')).map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').filter(|(k, _)| !k.trim().is_empty()).ok_or_else(|| {
            anyhow::anyhow!("label {pair:?} is not key=value; write e.g. --labels buildId=42,owner=team-a")
        })?;
        out.insert(k.trim().to_string(), json!(v.trim()));
    }
    Ok(out)
}

/// `-d a.b=1,c=x` (repeatable) → `{"a":{"b":"1"},"c":"x"}`: dots make nested objects, as keptn's CLI.
pub fn unfold(flags: &[String]) -> anyhow::Result<Value> {
    let mut root = json!({});
    for pair in flags.iter().flat_map(|f| f.split(',')).map(str::trim).filter(|p| !p.is_empty()) {
        let (path, v) =
            pair.split_once('=').filter(|(k, _)| !k.is_empty() && !k.split('.').any(str::is_empty)).ok_or_else(
                || anyhow::anyhow!("data {pair:?} is not key.sub=value; write e.g. --data image.tag=1.2,replicas=2"),
            )?;
        let mut node = &mut root;
        let keys: Vec<&str> = path.split('.').collect();
        for (i, key) in keys.iter().enumerate() {
            if !node.is_object() {
                anyhow::bail!("data {pair:?} sets a key below {key:?}, which already holds a value");
            }
            if i + 1 == keys.len() {
                node[*key] = json!(v);
            } else {
                node = node.as_object_mut().expect("object").entry(*key).or_insert_with(|| json!({}));
            }
        }
    }
    Ok(root)
}

/// `deployment.finished` → `sh.keptn.event.deployment.finished`; full types stay as they are.
pub fn full_type(ty: &str) -> String {
    if ty.starts_with("sh.keptn.") { ty.to_string() } else { format!("sh.keptn.event.{ty}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_errors() {
        let l = labels(&["a=1,b = two".into(), "c=".into()]).unwrap();
        assert_eq!(Value::Object(l), json!({ "a": "1", "b": "two", "c": "" }));
        assert!(labels(&["novalue".into()]).unwrap_err().to_string().contains("key=value"));
    }

    #[test]
    fn data_unfolds_into_objects() {
        let d = unfold(&[
            "configurationChange.values.image=carts:1,x=y".into(),
            "configurationChange.values.replicas=2".into(),
        ])
        .unwrap();
        assert_eq!(
            d,
            json!({ "configurationChange": { "values": { "image": "carts:1", "replicas": "2" } }, "x": "y" })
        );
        assert!(unfold(&["a=1,a.b=2".into()]).is_err());
        assert!(unfold(&["a..b=1".into()]).is_err());
    }

    #[test]
    fn short_types() {
        assert_eq!(full_type("approval.triggered"), "sh.keptn.event.approval.triggered");
        assert_eq!(full_type("sh.keptn.log.error"), "sh.keptn.log.error");
    }
}
