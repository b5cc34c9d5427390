//! [`Dialects`]: which cloud dialects an instance answers and its per-dialect override blocks.
//!
//! In JSON: `{"enabled": ["ec2", "gce"], "gce": {...}, "azure": {...}}`. Every key other than
//! `enabled` names a dialect and holds an object stored verbatim; `imds-dialects` interprets it.

use std::collections::BTreeMap;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;

/// Every dialect name the record may mention, in `enabled` or as an override key.
pub const DIALECT_NAMES: &[&str] = &[
    "ec2",
    "mmds",
    "gce",
    "azure",
    "openstack",
    "digitalocean",
    "nocloud",
    "hetzner",
    "oracle",
    "linode",
    "vultr",
    "scaleway",
];

/// Per-instance dialect selection and overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dialects {
    /// Dialects this instance answers; `None` means all of them.
    pub enabled: Option<Vec<String>>,
    /// Override blocks keyed by dialect name, each a JSON object kept verbatim.
    pub overrides: BTreeMap<String, Value>,
}

impl Dialects {
    /// Whether nothing is set (the record then omits `dialects`).
    pub fn is_empty(&self) -> bool {
        self.enabled.is_none() && self.overrides.is_empty()
    }

    /// Whether `dialect` is enabled for this instance.
    pub fn is_enabled(&self, dialect: &str) -> bool {
        self.enabled.as_ref().is_none_or(|list| list.iter().any(|d| d == dialect))
    }

    /// The override block for `dialect`, if any.
    pub fn override_for(&self, dialect: &str) -> Option<&Value> {
        self.overrides.get(dialect)
    }
}

impl Serialize for Dialects {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if let Some(enabled) = &self.enabled {
            map.serialize_entry("enabled", enabled)?;
        }
        for (name, block) in &self.overrides {
            map.serialize_entry(name, block)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn enabled_defaults_to_all() {
        let all = Dialects::default();
        assert!(all.is_empty());
        assert!(all.is_enabled("gce"));
        let some = Dialects {
            enabled: Some(vec!["ec2".into()]),
            overrides: BTreeMap::from([("gce".to_owned(), json!({"zone": "z"}))]),
        };
        assert!(some.is_enabled("ec2"));
        assert!(!some.is_enabled("gce"));
        assert_eq!(some.override_for("gce"), Some(&json!({"zone": "z"})));
        assert_eq!(serde_json::to_value(&some).unwrap(), json!({"enabled": ["ec2"], "gce": {"zone": "z"}}));
    }
}
