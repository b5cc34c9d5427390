//! The `dialects.openstack` override block: what it may hold, read for rendering
//! ([`Overrides::of`]) and checked for the admin API ([`check`]).

use serde_json::{Map, Value};
use uuid::Uuid;

use imds_model::Instance;

/// The keys of `dialects.openstack`, with what each must be.
const KEYS: &[(&str, &str)] = &[
    ("uuid", "a UUID string"),
    ("project_id", "a string"),
    ("availability_zone", "a string"),
    ("meta", "an object of string values"),
    ("devices", "an array"),
    ("dedicated_cpus", "an array of integers"),
    ("vendor_data", "a JSON document"),
    ("vendor_data2", "a JSON document"),
    ("network_data", "an object"),
];

/// The override block, each value present only when it is well-typed.
#[derive(Debug, Default)]
pub(crate) struct Overrides<'a> {
    pub(crate) uuid: Option<Uuid>,
    pub(crate) project_id: Option<&'a str>,
    pub(crate) availability_zone: Option<&'a str>,
    pub(crate) meta: Option<&'a Map<String, Value>>,
    pub(crate) devices: Option<&'a Value>,
    pub(crate) dedicated_cpus: Option<&'a Value>,
    pub(crate) vendor_data: Option<&'a Value>,
    pub(crate) vendor_data2: Option<&'a Value>,
    pub(crate) network_data: Option<&'a Value>,
}

impl<'a> Overrides<'a> {
    /// The instance's block; ill-typed values are ignored (the admin API refuses them).
    pub(crate) fn of(instance: &'a Instance) -> Self {
        let Some(block) = instance.dialects.override_for("openstack").and_then(Value::as_object) else {
            return Self::default();
        };
        let valid = |key: &str| block.get(key).filter(|value| problem(key, value).is_none());
        Self {
            uuid: valid("uuid").and_then(Value::as_str).and_then(|s| Uuid::try_parse(s).ok()),
            project_id: valid("project_id").and_then(Value::as_str),
            availability_zone: valid("availability_zone").and_then(Value::as_str),
            meta: valid("meta").and_then(Value::as_object),
            devices: valid("devices"),
            dedicated_cpus: valid("dedicated_cpus"),
            vendor_data: valid("vendor_data"),
            vendor_data2: valid("vendor_data2"),
            network_data: valid("network_data"),
        }
    }
}

/// Checks a `dialects.openstack` block: `(key, message)` for every unknown or ill-typed key.
pub fn check(block: &Map<String, Value>) -> Vec<(String, String)> {
    block
        .iter()
        .filter_map(|(key, value)| match KEYS.iter().find(|(known, _)| known == key) {
            None => {
                let names: Vec<&str> = KEYS.iter().map(|(name, _)| *name).collect();
                Some((key.clone(), format!("unknown OpenStack override; expected one of {}", names.join(", "))))
            }
            Some(_) => problem(key, value).map(|message| (key.clone(), message)),
        })
        .collect()
}

/// What is wrong with `value` under `key`, if anything.
fn problem(key: &str, value: &Value) -> Option<String> {
    let (_, expected) = KEYS.iter().find(|(known, _)| *known == key)?;
    let fine = match key {
        "uuid" => value.as_str().is_some_and(|s| Uuid::try_parse(s).is_ok()),
        "project_id" | "availability_zone" => value.is_string(),
        "meta" => value.as_object().is_some_and(|map| map.values().all(Value::is_string)),
        "devices" => value.is_array(),
        "dedicated_cpus" => value.as_array().is_some_and(|cpus| cpus.iter().all(Value::is_u64)),
        "network_data" => value.is_object(),
        _ => true,
    };
    (!fine).then(|| format!("expected {expected}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn check_names_unknown_and_ill_typed_keys() {
        let block = json!({
            "uuid": "not-a-uuid",
            "meta": {"a": 1},
            "project_id": "p",
            "dedicated_cpus": [1, 2],
            "flavor": "m1.small",
        });
        let mut problems = check(block.as_object().unwrap());
        problems.sort();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert_eq!(problems[0].0, "flavor");
        assert!(problems[0].1.contains("unknown OpenStack override"));
        assert_eq!(problems[1], ("meta".into(), "expected an object of string values".into()));
        assert_eq!(problems[2], ("uuid".into(), "expected a UUID string".into()));
        assert!(check(json!({"vendor_data": [1], "network_data": {}}).as_object().unwrap()).is_empty());
    }
}
