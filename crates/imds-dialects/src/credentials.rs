//! What dialects need to serve role credentials and signed identity, as small trait objects
//! the server implements: [`RoleCredentials`] (the current cached credentials of a role, read
//! without I/O) and [`Signer`] (the deployment's identity key). Dialects stay pure: they only
//! call these, never fetch.

use std::fmt;

/// One set of role credentials as a guest receives them (all times Unix seconds). `Debug`
/// never shows the secret or the token.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedCredentials {
    /// `AccessKeyId`.
    pub access_key_id: String,
    /// `SecretAccessKey`.
    pub secret_access_key: String,
    /// `Token` (empty when the source has none).
    pub token: String,
    /// `Expiration`.
    pub expiration: u64,
    /// `LastUpdated`: when these credentials were obtained.
    pub last_updated: u64,
}

impl fmt::Debug for IssuedCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("token", &"<redacted>")
            .field("expiration", &self.expiration)
            .field("last_updated", &self.last_updated)
            .finish()
    }
}

/// A role's credentials at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialState {
    /// Credentials that can be served (at least five minutes before their expiry).
    Ready(IssuedCredentials),
    /// The role exists but has no servable credentials (its source failed, or has not
    /// answered yet). `last_updated`: the last attempt.
    Unavailable {
        /// When the last attempt was made, Unix seconds.
        last_updated: u64,
    },
}

/// The current credentials of every configured role, as cached by the server.
pub trait RoleCredentials: Send + Sync + fmt::Debug {
    /// Role `role`'s credentials at `now`; `None` when no such role is configured.
    fn credentials(&self, role: &str, now: u64) -> Option<CredentialState>;

    /// Role `role`'s credentials for instance `instance` at `now`: its own set when the role
    /// has a session per instance, else the role's ([`RoleCredentials::credentials`]).
    fn credentials_for(&self, role: &str, instance: &str, now: u64) -> Option<CredentialState> {
        let _ = instance;
        self.credentials(role, now)
    }
}

/// No roles at all (tests, and dialects that do not serve credentials).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCredentials;

impl RoleCredentials for NoCredentials {
    fn credentials(&self, _role: &str, _now: u64) -> Option<CredentialState> {
        None
    }
}

/// The deployment's identity signing key (RSA, SHA-256).
pub trait Signer: Send + Sync + fmt::Debug {
    /// RSASSA-PKCS1-v1_5 SHA-256 signature over `data` (EC2's `signature`), raw bytes.
    fn rsa_sha256(&self, data: &[u8]) -> Option<Vec<u8>>;
    /// DER PKCS#7 SignedData with `data` attached (EC2's `pkcs7` and `rsa2048`).
    fn pkcs7(&self, data: &[u8]) -> Option<Vec<u8>>;
    /// A compact RS256 JWT of `claims` (GCE identity tokens).
    fn jwt_rs256(&self, claims: &serde_json::Value) -> Option<String>;
}

/// `%Y-%m-%dT%H:%M:%SZ` for Unix seconds: the exact form of EC2's `LastUpdated` and
/// `Expiration` (botocore parses it with that strptime format).
pub use imds_model::time::format_rfc3339 as format_time;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_render_as_ec2_does() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(1_632_174_146), "2021-09-20T21:42:26Z");
        assert_eq!(format_time(1_709_164_800), "2024-02-29T00:00:00Z");
    }

    #[test]
    fn debug_hides_secrets() {
        let issued = IssuedCredentials {
            access_key_id: "ASIAX".into(),
            secret_access_key: "hush".into(),
            token: "tok".into(),
            expiration: 1,
            last_updated: 0,
        };
        let debug = format!("{issued:?}");
        assert!(debug.contains("ASIAX") && !debug.contains("hush") && !debug.contains("tok\""), "{debug}");
    }
}
