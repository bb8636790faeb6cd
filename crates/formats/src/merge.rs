//! Deep merge of event data, as the control plane builds the next task's payload.
//!
//! keptn's rules with one deliberate fix (docs/compatibility.md): later scalars (numbers,
//! booleans) override earlier ones; keptn kept the first. Arrays concatenate, newer items first.

use serde_json::Value;

/// Merges `newer` into `base` in place.
pub fn merge(base: &mut Value, newer: &Value) {
    match (base, newer) {
        (_, Value::Null) => {}
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(existing) => merge(existing, v),
                    None if v.is_null() => {}
                    None => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            let mut merged = b.clone();
            merged.append(a);
            *a = merged;
        }
        (slot, other) => *slot = other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merges_objects_arrays_and_scalars() {
        let mut a = json!({"a": {"x": 1, "keep": "k"}, "list": [1], "n": 1, "b": true, "s": "old"});
        merge(&mut a, &json!({"a": {"x": 2, "y": 3}, "list": [2], "n": 5, "b": false, "s": "new", "z": null}));
        assert_eq!(a, json!({"a": {"x": 2, "y": 3, "keep": "k"}, "list": [2, 1], "n": 5, "b": false, "s": "new"}));
    }
}
