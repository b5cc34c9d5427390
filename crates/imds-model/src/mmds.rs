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
    /// The document; `None` until the first PUT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
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
