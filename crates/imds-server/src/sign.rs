//! The deployment's identity signing keys, kept in the store (`secrets/signing-keys`) so every
//! node signs with the same key and a rotation reaches all of them through the change feed.
//!
//! [`load_or_create`] generates the first key on first start (racing nodes agree on one, as
//! for the session-token key); [`KeyringSigner`] is what the view holds and dialects sign with
//! (`imds_dialects::credentials::Signer`); [`replace`] stores a rotated or operator-supplied key.

use std::sync::Arc;

use imds_sign::{Keyring, SigningKey};
use imds_store::update::{update, Plan, Step};
use imds_store::{Expect, Op, Put, Store, StoreError};

use crate::records;

/// Signatures remembered per keyring: identity documents are stable, so a guest asking again
/// (or another node's guest with the same document) costs one hash, not an RSA operation.
const CACHE_ENTRIES: usize = 4096;

/// A keyring as the guest plane signs with it, with a lock-free cache of identity signatures
/// (read with one atomic load; a miss signs and publishes a new map by compare-and-swap).
#[derive(Debug)]
pub struct KeyringSigner {
    keyring: Keyring,
    cache: arc_swap::ArcSwap<std::collections::HashMap<[u8; 32], Arc<Vec<u8>>>>,
}

impl KeyringSigner {
    /// Wraps a keyring.
    pub fn new(keyring: Keyring) -> Self {
        Self { keyring, cache: arc_swap::ArcSwap::default() }
    }

    /// The cached signature of kind `kind` over `data`, else `sign(data)` (then cached).
    fn cached(&self, kind: u8, data: &[u8], sign: impl FnOnce() -> Option<Vec<u8>>) -> Option<Vec<u8>> {
        use sha2::Digest as _;
        let mut hasher = sha2::Sha256::new();
        hasher.update([kind]);
        hasher.update(data);
        let key: [u8; 32] = hasher.finalize().into();
        if let Some(hit) = self.cache.load().get(&key) {
            return Some(hit.to_vec());
        }
        let signature = Arc::new(sign()?);
        self.cache.rcu(|current| {
            let mut next = if current.len() >= CACHE_ENTRIES { Default::default() } else { (**current).clone() };
            next.insert(key, Arc::clone(&signature));
            next
        });
        Some(signature.to_vec())
    }

    /// The keyring.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }
}

impl imds_dialects::credentials::Signer for KeyringSigner {
    fn rsa_sha256(&self, data: &[u8]) -> Option<Vec<u8>> {
        self.cached(0, data, || Some(self.keyring.active().sign_rsa_sha256(data)))
    }

    fn pkcs7(&self, data: &[u8]) -> Option<Vec<u8>> {
        self.cached(1, data, || match self.keyring.active().pkcs7(data) {
            Ok(der) => Some(der),
            Err(error) => {
                tracing::error!(%error, "cannot build a PKCS#7 signature");
                None
            }
        })
    }

    fn jwt_rs256(&self, claims: &serde_json::Value) -> Option<String> {
        Some(self.keyring.active().jwt_rs256(claims))
    }
}

fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::unavailable_from("signing keys", error)
}

/// Generates a keyring on a blocking thread: an RSA key takes a while, off the async workers.
async fn generate() -> Result<Keyring, StoreError> {
    tokio::task::spawn_blocking(Keyring::generate).await.map_err(unavailable)?.map_err(unavailable)
}

/// Reads the keyring from the store, or generates one and stores it (first start).
pub async fn load_or_create(store: &Arc<dyn Store>) -> Result<Keyring, StoreError> {
    let updated = update(&**store, &records::signing_keys(), || async {
        if let Some(record) = store.get(&records::signing_keys()).await? {
            return Ok(Step::Done(records::decode_keyring(&record).map_err(unavailable)?));
        }
        let keyring = generate().await?;
        let value = keyring.to_bytes().map_err(unavailable)?;
        let put = Put { key: records::signing_keys(), node: None, claims: Vec::new(), value, expect: Expect::Absent };
        Ok(Step::Commit(Plan::new(keyring).guarded(Op::Put(put))))
    })
    .await?;
    if updated.committed.is_some() {
        tracing::info!(kid = updated.value.active().kid(), "generated the identity signing key");
    }
    Ok(updated.value)
}

/// Makes `key` the active signing key (the previous one stays published) and stores the
/// keyring; returns it and the write's revision.
pub async fn replace(
    store: &Arc<dyn Store>,
    key_to_install: SigningKey,
) -> Result<(Keyring, imds_store::Revision), StoreError> {
    let key_to_install = &key_to_install;
    let updated = update(&**store, &records::signing_keys(), || async {
        let (mut keyring, expect) = match store.get(&records::signing_keys()).await? {
            Some(record) => (records::decode_keyring(&record).map_err(unavailable)?, Expect::Revision(record.rev)),
            None => (generate().await?, Expect::Absent),
        };
        keyring.install(key_to_install.clone());
        let value = keyring.to_bytes().map_err(unavailable)?;
        let put = Put { key: records::signing_keys(), node: None, claims: Vec::new(), value, expect };
        Ok(Step::Commit(Plan::new(keyring).guarded(Op::Put(put))))
    })
    .await?;
    let rev = updated.committed.map_or(imds_store::Revision(0), |committed| committed.rev);
    Ok((updated.value, rev))
}

#[cfg(test)]
mod tests {
    use imds_dialects::credentials::Signer as _;

    use super::*;

    #[test]
    fn signatures_are_cached_per_document_and_kind() {
        let signer = KeyringSigner::new(Keyring::generate().unwrap());
        let first = signer.rsa_sha256(b"document").unwrap();
        assert_eq!(signer.rsa_sha256(b"document").unwrap(), first);
        let pkcs7 = signer.pkcs7(b"document").unwrap();
        assert_ne!(pkcs7, first, "each kind has its own entry");
        assert_eq!(signer.cache.load().len(), 2);
        let certs = imds_sign::parse_certificates(&signer.keyring().certificates_pem()).unwrap();
        imds_sign::verify::pkcs7(&certs, &imds_sign::base64_lines(&pkcs7)).unwrap();
        imds_sign::verify::signature(&certs, b"document", &imds_sign::base64_lines(&first)).unwrap();
    }
}
