//! [`ContainerTokens`]: the container credential tokens the operator issued for one instance
//! (one per workload: an ECS task's container, an EKS pod), kept in a record of their own
//! (collection `container-tokens`, keyed by instance id) so an admin replace of the instance
//! never touches them.
//!
//! Only each token's SHA-256 is stored: the secret is shown once, when it is issued. A guest
//! presents it as the `Authorization` header of `GET /v1/credentials` (EKS Pod Identity, the
//! SDKs' `AWS_CONTAINER_AUTHORIZATION_TOKEN`) or as the last segment of
//! `/v2/credentials/<token>` (an ECS relative URI).

use serde::{Deserialize, Serialize};

use crate::error::Invalid;
use crate::RoleName;

/// The tokens of one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerTokens {
    /// In issue order.
    pub tokens: Vec<ContainerToken>,
}

/// One issued token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerToken {
    /// Its public id (what the admin API lists and deletes by); not a secret.
    pub id: String,
    /// The workload it was issued for (a container or pod name).
    pub workload: String,
    /// The role whose credentials it gets; `None`: the instance's `iam_role`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<RoleName>,
    /// Lower-case hex SHA-256 of the secret.
    pub sha256: String,
    /// When it was issued (RFC 3339).
    pub created: String,
}

impl ContainerTokens {
    /// Decodes the stored form. Errors say the record is corrupt.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Invalid> {
        serde_json::from_slice(bytes).map_err(|error| Invalid::one("", format!("corrupt container tokens: {error}")))
    }

    /// The stored form: compact JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("container tokens always serialize")
    }

    /// The token whose secret hashes to `sha256` (lower-case hex).
    pub fn by_hash(&self, sha256: &str) -> Option<&ContainerToken> {
        self.tokens.iter().find(|token| token.sha256 == sha256)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_finds_by_hash() {
        let tokens = ContainerTokens {
            tokens: vec![ContainerToken {
                id: "ct-1".into(),
                workload: "web".into(),
                role: Some(RoleName::try_from("app").unwrap()),
                sha256: "ab".into(),
                created: "2026-01-01T00:00:00Z".into(),
            }],
        };
        let back = ContainerTokens::from_bytes(&tokens.to_bytes()).unwrap();
        assert_eq!(back, tokens);
        assert_eq!(back.by_hash("ab").map(|t| t.workload.as_str()), Some("web"));
        assert!(back.by_hash("cd").is_none());
        assert!(ContainerTokens::from_bytes(b"[]").is_err());
    }
}
