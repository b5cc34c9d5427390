//! [`Mmds`]: an instance's Firecracker MMDS document and its configuration.
//!
//! In the store it is one record per instance (collection `mmds`, keyed by instance id), apart
//! from the instance record: the MMDS document is free-form JSON the operator replaces and
//! patches through its own endpoints, with Firecracker's semantics.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Invalid;

/// Which MMDS protocol the guest speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MmdsVersion {
    /// Session tokens optional.
    #[default]
    V1,
    /// Session tokens required.
    V2,
}

/// One instance's MMDS: configuration and document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mmds {
    /// The protocol version.
    #[serde(default)]
    pub version: MmdsVersion,
    /// Answer in EC2 IMDS style (text listings) whatever the `Accept` header says.
    #[serde(default)]
    pub imds_compat: bool,
    /// The document; `None` until the first PUT. A PUT of `null` stores `Some(Value::Null)`:
    /// the store is then initialised (a PATCH is accepted) although it holds `null`.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub data: Option<Value>,
}

/// Keeps a stored `null` document as `Some(Value::Null)`; only an absent member is `None`.
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

impl Mmds {
    /// Decodes the stored form. Errors say the record is corrupt.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Invalid> {
        serde_json::from_slice(bytes).map_err(|error| Invalid::one("", format!("corrupt MMDS record: {error}")))
    }

    /// The stored form: compact JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an Mmds serializes")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_stored_null_document_stays_initialised() {
        for mmds in [
            Mmds::default(),
            Mmds { version: MmdsVersion::V2, imds_compat: true, data: Some(Value::Null) },
            Mmds { data: Some(json!({"a": [1, "b"]})), ..Mmds::default() },
        ] {
            assert_eq!(Mmds::from_bytes(&mmds.to_bytes()).unwrap(), mmds);
        }
        assert!(Mmds::from_bytes(b"{\"version\":\"V3\"}").is_err());
    }
}
