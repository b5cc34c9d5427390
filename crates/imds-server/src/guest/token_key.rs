//! The deployment's session-token key: created once in the store, shared by every node.
//!
//! Nodes starting together race to create it; the loser reads the winner's key, so all nodes
//! end up with the same one and accept each other's tokens, across restarts.

use std::sync::Arc;

use imds_dialects::token::TokenKey;
use imds_store::update::{update, Plan, Step};
use imds_store::{Expect, Op, Put, Store, StoreError};

use crate::records;

/// Reads the key from the store, or creates it there with 32 bytes from the operating system.
pub async fn load_or_create(store: &Arc<dyn Store>) -> Result<TokenKey, StoreError> {
    let key = records::token_key();
    let key_ref = &key;
    let updated = update(&**store, &key, || async move {
        if let Some(record) = store.get(key_ref).await? {
            let bytes: [u8; 32] = record.value.as_slice().try_into().map_err(|_| {
                StoreError::unavailable(format!("{key_ref} holds {} bytes, not a 32-byte key", record.value.len()))
            })?;
            return Ok(Step::Done(TokenKey::from_bytes(bytes)));
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| StoreError::unavailable_from("no randomness for the token key", e))?;
        let put =
            Put { key: key_ref.clone(), node: None, claims: Vec::new(), value: bytes.to_vec(), expect: Expect::Absent };
        Ok(Step::Commit(Plan::new(TokenKey::from_bytes(bytes)).guarded(Op::Put(put))))
    })
    .await?;
    Ok(updated.value)
}

#[cfg(test)]
mod tests {
    use imds_store::memory::MemoryStore;

    use super::*;

    #[tokio::test]
    async fn the_key_is_created_once_and_then_shared() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let first = load_or_create(&store).await.unwrap();
        let second = load_or_create(&store).await.unwrap();
        assert_eq!(first, second, "a restart reads the same key");
        let token = first.mint("i-a", 1_800_000_000, 60, 1).unwrap();
        assert!(second.verify(&token, "i-a", 1_800_000_000).is_ok());
        // Concurrent first starts agree on one key.
        let fresh: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let (a, b) = tokio::join!(load_or_create(&fresh), load_or_create(&fresh));
        assert_eq!(a.unwrap(), b.unwrap());
    }
}
