//! Stand-ins for what the server hands the dialects: the session-token key, a credential cache
//! and a signer. Shared by the test binaries that render credentials and signatures.

use imds_dialects::credentials::{CredentialState, IssuedCredentials, RoleCredentials, Signer};
use imds_dialects::token::TokenKey;
use sha2::{Digest, Sha256};

/// The time the tests render at, Unix seconds.
pub(crate) const NOW: u64 = 1_800_000_000;

/// A fixed session-token key.
pub(crate) fn key() -> &'static TokenKey {
    static KEY: std::sync::LazyLock<TokenKey> = std::sync::LazyLock::new(|| TokenKey::from_bytes([7; 32]));
    &KEY
}

/// A credential cache: `app-role` holds these credentials, refreshed a minute ago and valid for
/// `lifetime` seconds; `broken-role` has none yet; any other role is unknown.
#[derive(Debug)]
pub(crate) struct Roles {
    pub(crate) access_key_id: &'static str,
    pub(crate) secret_access_key: &'static str,
    pub(crate) token: &'static str,
    pub(crate) lifetime: u64,
}

impl RoleCredentials for Roles {
    fn credentials(&self, role: &str, now: u64) -> Option<CredentialState> {
        match role {
            "app-role" => Some(CredentialState::Ready(IssuedCredentials {
                access_key_id: self.access_key_id.into(),
                secret_access_key: self.secret_access_key.into(),
                token: self.token.into(),
                expiration: now + self.lifetime,
                last_updated: now - 60,
            })),
            "broken-role" => Some(CredentialState::Unavailable { last_updated: now - 5 }),
            _ => None,
        }
    }
}

/// "Signs" so that tests see exactly what was signed: the raw signature is the SHA-256 of the
/// data, PKCS#7 is `P7:` followed by the data, and the JWT is `jwt:` followed by the claims.
#[derive(Debug)]
pub(crate) struct FakeSigner;

impl Signer for FakeSigner {
    fn rsa_sha256(&self, data: &[u8]) -> Option<Vec<u8>> {
        Some(Sha256::digest(data).to_vec())
    }
    fn pkcs7(&self, data: &[u8]) -> Option<Vec<u8>> {
        Some([b"P7:".as_slice(), data].concat())
    }
    fn jwt_rs256(&self, claims: &serde_json::Value) -> Option<String> {
        Some(format!("jwt:{claims}"))
    }
}
