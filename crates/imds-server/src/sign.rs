//! The deployment's identity signing keys, kept in the store (`secrets/signing-keys`) so every
//! node signs with the same key and a rotation reaches all of them through the change feed.
//!
//! [`load_or_create`] generates the first key on first start (racing nodes agree on one, as
//! for the session-token key); [`KeyringSigner`] is what the view holds and dialects sign with
//! (`imds_dialects::credentials::Signer`); [`replace`] stores a rotated or operator-supplied key.

use std::sync::Arc;

use imds_sign::{Keyring, SigningKey};
use imds_store::{Expect, Key, Put, Store, StoreError};

use crate::view::{SECRETS, SIGNING_KEYS};

/// A keyring as the guest plane signs with it.
#[derive(Debug)]
pub struct KeyringSigner {
    keyring: Keyring,
}

impl KeyringSigner {
    /// Wraps a keyring.
    pub fn new(keyring: Keyring) -> Self {
        Self { keyring }
    }

    /// The keyring.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }
}

impl imds_dialects::credentials::Signer for KeyringSigner {
    fn rsa_sha256(&self, data: &[u8]) -> Option<Vec<u8>> {
        Some(self.keyring.active().sign_rsa_sha256(data))
    }

    fn pkcs7(&self, data: &[u8]) -> Option<Vec<u8>> {
        match self.keyring.active().pkcs7(data) {
            Ok(der) => Some(der),
            Err(error) => {
                tracing::error!(%error, "cannot build a PKCS#7 signature");
                None
            }
        }
    }

    fn jwt_rs256(&self, claims: &serde_json::Value) -> Option<String> {
        Some(self.keyring.active().jwt_rs256(claims))
    }
}

fn key() -> Key {
    Key::new(SECRETS, SIGNING_KEYS)
}

fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("signing keys: {error}"))
}

/// Reads the keyring from the store, or generates one and stores it (first start).
pub async fn load_or_create(store: &Arc<dyn Store>) -> Result<Keyring, StoreError> {
    for _ in 0..3 {
        if let Some(record) = store.get(&key()).await? {
            return Keyring::from_bytes(&record.value).map_err(unavailable);
        }
        // Generating an RSA key takes a while: off the async threads.
        let keyring =
            tokio::task::spawn_blocking(Keyring::generate).await.map_err(unavailable)?.map_err(unavailable)?;
        let value = keyring.to_bytes().map_err(unavailable)?;
        let put = Put { key: key(), node: None, claims: Vec::new(), value, expect: Expect::Absent };
        match store.put(put).await {
            Ok(_) => {
                tracing::info!(kid = keyring.active().kid(), "generated the identity signing key");
                return Ok(keyring);
            }
            Err(StoreError::AlreadyExists { .. }) => continue,
            Err(other) => return Err(other),
        }
    }
    Err(unavailable("kept changing while being created"))
}

/// Makes `key` the active signing key (the previous one stays published) and stores the
/// keyring; returns it and the write's revision.
pub async fn replace(
    store: &Arc<dyn Store>,
    key_to_install: SigningKey,
) -> Result<(Keyring, imds_store::Revision), StoreError> {
    for _ in 0..8 {
        let (mut keyring, expect) = match store.get(&key()).await? {
            Some(record) => (Keyring::from_bytes(&record.value).map_err(unavailable)?, Expect::Revision(record.rev)),
            None => (Keyring::generate().map_err(unavailable)?, Expect::Absent),
        };
        keyring.install(key_to_install.clone());
        let value = keyring.to_bytes().map_err(unavailable)?;
        match store.put(Put { key: key(), node: None, claims: Vec::new(), value, expect }).await {
            Ok(written) => return Ok((keyring, written.rev)),
            Err(StoreError::RevisionMismatch { .. } | StoreError::AlreadyExists { .. }) => continue,
            Err(other) => return Err(other),
        }
    }
    Err(unavailable("kept changing while being replaced"))
}
