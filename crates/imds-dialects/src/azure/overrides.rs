//! The `dialects.azure` override block: what it may hold, how it is read, how it is checked.

use serde_json::{Map, Value};

/// Keys whose value is a string that replaces the derived `compute.<key>` (or, for
/// `adminUsername`/`computerName`, `compute.osProfile.<key>`; for `ppsType`,
/// `extended.compute.ppsType`).
pub(crate) const STRING_KEYS: &[&str] = &[
    "adminUsername",
    "azEnvironment",
    "computerName",
    "evictionPolicy",
    "licenseType",
    "location",
    "name",
    "offer",
    "osType",
    "placementGroupId",
    "platformFaultDomain",
    "platformUpdateDomain",
    "ppsType",
    "priority",
    "publisher",
    "resourceGroupName",
    "resourceId",
    "sku",
    "subscriptionId",
    "version",
    "vmId",
    "vmScaleSetName",
    "vmSize",
    "zone",
];

/// Keys whose value is an object of strings: `plan` (`name`, `product`, `publisher`) and
/// `securityProfile` (any keys, merged over the defaults).
pub(crate) const OBJECT_KEYS: &[&str] = &["plan", "securityProfile"];

/// The keys `plan` takes.
pub(crate) const PLAN_KEYS: &[&str] = &["name", "product", "publisher"];

/// A view of the instance's `dialects.azure` block (empty when absent).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Overrides<'a>(Option<&'a Map<String, Value>>);

impl<'a> Overrides<'a> {
    /// Reads the block; anything but an object counts as absent.
    pub(crate) fn new(block: Option<&'a Value>) -> Self {
        Self(block.and_then(Value::as_object))
    }

    /// The string under `key`, if set to a string.
    pub(crate) fn str(&self, key: &str) -> Option<&'a str> {
        self.0?.get(key)?.as_str()
    }

    /// The string under `object.key`, if set to a string.
    pub(crate) fn nested(&self, object: &str, key: &str) -> Option<&'a str> {
        self.0?.get(object)?.get(key)?.as_str()
    }

    /// The string entries of the object under `object`, in the order given.
    pub(crate) fn entries(&self, object: &str) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.0
            .and_then(|map| map.get(object))
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|map| map.iter().filter_map(|(k, v)| Some((k.as_str(), v.as_str()?))))
    }
}

/// Checks a `dialects.azure` block and returns every problem as `(field, message)`, the field
/// relative to the block (e.g. `plan.name`). An empty list means the block is valid.
pub fn check(block: &Value) -> Vec<(String, String)> {
    let Some(map) = block.as_object() else {
        return vec![(String::new(), "expected an object".to_owned())];
    };
    let mut problems = Vec::new();
    for (key, value) in map {
        if STRING_KEYS.contains(&key.as_str()) {
            match value.as_str() {
                None => problems.push((key.clone(), "expected a string".to_owned())),
                Some(text) if key == "vmId" && uuid::Uuid::try_parse(text).is_err() => {
                    problems.push((key.clone(), "expected a UUID (8-4-4-4-12 hex digits)".to_owned()))
                }
                Some(_) => {}
            }
        } else if OBJECT_KEYS.contains(&key.as_str()) {
            let Some(object) = value.as_object() else {
                problems.push((key.clone(), "expected an object of strings".to_owned()));
                continue;
            };
            for (inner, inner_value) in object {
                let field = format!("{key}.{inner}");
                if key == "plan" && !PLAN_KEYS.contains(&inner.as_str()) {
                    problems.push((field, format!("unknown key; expected one of {}", PLAN_KEYS.join(", "))));
                } else if !inner_value.is_string() {
                    problems.push((field, "expected a string".to_owned()));
                }
            }
        } else {
            let known: Vec<&str> = STRING_KEYS.iter().chain(OBJECT_KEYS).copied().collect();
            problems.push((key.clone(), format!("unknown key; expected one of {}", known.join(", "))));
        }
    }
    problems
}
