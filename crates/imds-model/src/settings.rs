//! [`ImdsSettings`]: the EC2 instance-metadata options (`imds` in the record).
//!
//! These gate EC2 paths only (rule R5 of docs/dialects.md): IMDSv2 tokens, the PUT response hop
//! limit, the endpoint switch and tags-in-metadata. They are always present in a parsed record,
//! with AWS's defaults filled in.

use serde::{Deserialize, Serialize};

/// Whether EC2 requests must carry an IMDSv2 session token (`HttpTokens`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenMode {
    /// IMDSv1 and IMDSv2 both work (`"optional"`).
    #[default]
    Optional,
    /// Only IMDSv2: requests without a valid token get 401 (`"required"`).
    Required,
}

/// Whether the EC2 metadata endpoint answers at all (`HttpEndpoint`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointMode {
    /// The endpoint answers (`"enabled"`).
    #[default]
    Enabled,
    /// The endpoint is switched off (`"disabled"`).
    Disabled,
}

/// Whether instance tags are served: EC2's `meta-data/tags/instance/` (`InstanceMetadataTags`)
/// and every other dialect's tags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TagsMode {
    /// Tags are not served (`"off"`).
    #[default]
    Off,
    /// Tags are served (`"on"`).
    On,
}

/// The EC2 metadata options of one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct ImdsSettings {
    /// IMDSv2 token requirement.
    pub tokens: TokenMode,
    /// IP TTL of token PUT responses, 1 to 64 (default 1).
    pub hop_limit: u8,
    /// Endpoint on or off.
    pub endpoint: EndpointMode,
    /// Tags in metadata: on or off in every dialect when set; unset, each dialect follows its
    /// cloud (EC2 off, the others on). See [`ImdsSettings::tags_served`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<TagsMode>,
}

impl ImdsSettings {
    /// Lowest accepted hop limit.
    pub const MIN_HOP_LIMIT: u8 = 1;
    /// Highest accepted hop limit (AWS's maximum).
    pub const MAX_HOP_LIMIT: u8 = 64;

    /// Whether a dialect serves the instance's tags, given whether its cloud shows them when
    /// nothing says otherwise (`shown_by_default`: false for EC2, true for the others).
    pub fn tags_served(&self, shown_by_default: bool) -> bool {
        match self.tags {
            Some(TagsMode::On) => true,
            Some(TagsMode::Off) => false,
            None => shown_by_default,
        }
    }
}

impl Default for ImdsSettings {
    /// AWS's defaults: tokens optional, hop limit 1, endpoint enabled; tags unset.
    fn default() -> Self {
        Self { tokens: TokenMode::Optional, hop_limit: 1, endpoint: EndpointMode::Enabled, tags: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn default_serialises_in_full() {
        assert_eq!(
            serde_json::to_value(ImdsSettings::default()).unwrap(),
            json!({"tokens": "optional", "hop_limit": 1, "endpoint": "enabled"})
        );
        let custom = ImdsSettings {
            tokens: TokenMode::Required,
            hop_limit: 2,
            endpoint: EndpointMode::Disabled,
            tags: Some(TagsMode::On),
        };
        assert_eq!(
            serde_json::to_value(custom).unwrap(),
            json!({"tokens": "required", "hop_limit": 2, "endpoint": "disabled", "tags": "on"})
        );
    }
}
