//! Keeping secret values out of what an integration sends: every value it read through
//! [`crate::Context::secret`] is replaced by `***` (as keptn's webhook-service did) in messages,
//! logs and event data before they leave it.

use serde_json::Value;

/// What replaces a secret value.
pub const MASK: &str = "***";

/// The secret values one handling has read; scrubs them from text and JSON.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    /// Longest first, so a value containing another is masked whole.
    values: Vec<String>,
}

impl Redactor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Remembers the values of a secret. Empty values are ignored (they would mask everything
    /// between characters).
    pub fn add_all<'a>(&mut self, values: impl IntoIterator<Item = &'a String>) {
        for value in values {
            self.add(value);
        }
    }

    /// Remembers one secret value.
    pub fn add(&mut self, value: &str) {
        if value.is_empty() || self.values.iter().any(|v| v == value) {
            return;
        }
        self.values.push(value.to_string());
        self.values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every remembered value replaced by [`MASK`].
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for value in &self.values {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), MASK);
            }
        }
        out
    }

    /// Scrubs every string (keys too) inside a JSON value, in place.
    pub fn scrub_json(&self, value: &mut Value) {
        if self.values.is_empty() {
            return;
        }
        match value {
            Value::String(s) => *s = self.scrub(s),
            Value::Array(items) => items.iter_mut().for_each(|item| self.scrub_json(item)),
            Value::Object(map) => {
                let entries = std::mem::take(map);
                for (key, mut item) in entries {
                    self.scrub_json(&mut item);
                    map.insert(self.scrub(&key), item);
                }
            }
            _ => {}
        }
    }
}

/// The secret scopes an integration named `name` may read: `keptn-default` and
/// `keptn-<name>-service` (keptn's scope names: `keptn-webhook-service` for the webhook
/// integration, `keptn-prometheus-service` for the Prometheus provider, …).
pub fn secret_scopes(name: &str) -> [String; 2] {
    ["keptn-default".to_string(), format!("keptn-{name}-service")]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_masked_in_text_longest_first() {
        let mut r = Redactor::new();
        r.add("abc");
        r.add("abcdef");
        r.add("");
        assert_eq!(r.scrub("token=abcdef and abc, not ab"), "token=*** and ***, not ab");
    }

    #[test]
    fn values_are_masked_everywhere_in_json() {
        let mut r = Redactor::new();
        r.add("s3cr3t");
        let mut v = json!({"message": "call with s3cr3t failed", "s3cr3t": [1, "xs3cr3tx"], "n": 5});
        r.scrub_json(&mut v);
        assert_eq!(v, json!({"message": "call with *** failed", "***": [1, "x***x"], "n": 5}));
    }

    #[test]
    fn scopes_follow_keptn_names() {
        assert_eq!(secret_scopes("webhook"), ["keptn-default".to_string(), "keptn-webhook-service".to_string()]);
    }
}
