//! The `dialects.gce` override block: what the canonical record cannot say about a GCE
//! instance. Every key is optional; [`check`] reports ill-typed and unknown keys, and rendering
//! ignores them.

use serde_json::{Map, Value};

/// Every key the block may hold, with the JSON type it must have.
pub const KEYS: &[(&str, &str)] = &[
    ("id", "an unsigned 64-bit integer (number or decimal string)"),
    ("project_id", "a string"),
    ("project_number", "an unsigned 64-bit integer (number or decimal string)"),
    ("zone", "a string"),
    ("machine_type", "a string"),
    ("hostname", "a string"),
    ("image", "a string"),
    ("description", "a string"),
    ("cpu_platform", "a string"),
    ("network", "a string"),
    ("tags", "a list of strings"),
    ("attributes", "an object of strings (null removes a derived attribute)"),
    ("project_attributes", "an object of strings"),
    ("service_account_email", "a string"),
    ("scopes", "a list of strings"),
    ("preemptible", "a boolean"),
];

/// The block, read leniently: a missing or ill-typed key is `None`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Overrides<'a> {
    block: Option<&'a Map<String, Value>>,
}

impl<'a> Overrides<'a> {
    pub(crate) fn new(block: Option<&'a Value>) -> Self {
        Self { block: block.and_then(Value::as_object) }
    }

    fn value(&self, key: &str) -> Option<&'a Value> {
        self.block.and_then(|block| block.get(key))
    }

    pub(crate) fn str(&self, key: &str) -> Option<&'a str> {
        self.value(key).and_then(Value::as_str)
    }

    pub(crate) fn u64(&self, key: &str) -> Option<u64> {
        self.value(key).and_then(as_u64)
    }

    pub(crate) fn bool(&self, key: &str) -> Option<bool> {
        self.value(key).and_then(Value::as_bool)
    }

    pub(crate) fn strings(&self, key: &str) -> Option<Vec<String>> {
        let list = self.value(key)?.as_array()?;
        list.iter().map(|v| v.as_str().map(str::to_owned)).collect()
    }

    /// An object of string-or-null members.
    pub(crate) fn attributes(&self, key: &str) -> Vec<(&'a str, Option<&'a str>)> {
        let Some(object) = self.value(key).and_then(Value::as_object) else {
            return Vec::new();
        };
        object
            .iter()
            .filter_map(|(name, value)| match value {
                Value::String(s) => Some((name.as_str(), Some(s.as_str()))),
                Value::Null => Some((name.as_str(), None)),
                _ => None,
            })
            .collect()
    }
}

fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        _ => None,
    }
}

/// Problems with a `dialects.gce` block, as `(key, message)` pairs; empty when it is valid.
pub fn check(block: &Value) -> Vec<(String, String)> {
    let Some(object) = block.as_object() else {
        return vec![(String::new(), "expected an object".to_owned())];
    };
    let mut problems = Vec::new();
    for (key, value) in object {
        let Some((_, expected)) = KEYS.iter().find(|(name, _)| name == key) else {
            let known: Vec<&str> = KEYS.iter().map(|(name, _)| *name).collect();
            problems.push((key.clone(), format!("unknown key; expected one of {}", known.join(", "))));
            continue;
        };
        let ok = match key.as_str() {
            "id" | "project_number" => as_u64(value).is_some(),
            "tags" | "scopes" => value.as_array().is_some_and(|list| list.iter().all(Value::is_string)),
            "attributes" => value.as_object().is_some_and(|o| o.values().all(|v| v.is_string() || v.is_null())),
            "project_attributes" => value.as_object().is_some_and(|o| o.values().all(Value::is_string)),
            "preemptible" => value.is_boolean(),
            _ => value.is_string(),
        };
        if !ok {
            problems.push((key.clone(), format!("expected {expected}")));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn check_names_unknown_and_ill_typed_keys() {
        assert!(check(&json!({"project_id": "p", "id": "123", "tags": ["a"], "attributes": {"a": "b", "c": null}}))
            .is_empty());
        let problems = check(&json!({"projectid": "p", "id": "x1", "tags": "a", "preemptible": "yes"}));
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["projectid", "id", "tags", "preemptible"]);
        assert_eq!(check(&json!([])).len(), 1);
    }
}
