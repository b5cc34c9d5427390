//! Session tokens (EC2 IMDSv2, Firecracker MMDS V2): stateless and keyed; one module for every
//! dialect that has tokens, each with its own header names.
//!
//! A token is `base64url(version ‖ expiry ‖ nonce ‖ tag)`, the tag the first 24 bytes of
//! `HMAC-SHA256(key, version ‖ expiry ‖ nonce ‖ instance id)`: 1 + 8 + 8 + 24 bytes, 55
//! characters. The nonce is random per mint (the server draws it), so two tokens minted in the
//! same second differ, as on EC2 and Firecracker. Nothing is stored per token, so every node that shares the
//! deployment's [`TokenKey`] (the server keeps it in the store) accepts every token, restarts
//! included, and a token minted for one instance is refused for any other. Minting and checking
//! are pure functions of the key, the instance id and the clock value passed in; no I/O.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The shortest lifetime a client may ask for, in seconds (EC2's bound).
pub const MIN_TTL: u64 = 1;
/// The longest lifetime a client may ask for, in seconds: six hours (EC2's bound).
pub const MAX_TTL: u64 = 21_600;

const VERSION: u8 = 2;
const NONCE_LEN: usize = 8;
const TAG_LEN: usize = 24;
const TOKEN_LEN: usize = 1 + 8 + NONCE_LEN + TAG_LEN;

/// The deployment's secret for minting tokens. Its `Debug` never shows it.
#[derive(Clone)]
pub struct TokenKey {
    bytes: [u8; 32],
    /// HMAC keyed with `bytes`, copied for each tag: keying costs two of a tag's four SHA-256
    /// blocks, and every token-carrying guest request checks a tag.
    keyed: Hmac<Sha256>,
}

impl PartialEq for TokenKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for TokenKey {}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token this service minted (wrong length, encoding, version or signature), or
    /// minted for another instance.
    #[error("token is invalid")]
    Invalid,
    /// A genuine token past its expiry.
    #[error("token has expired")]
    Expired,
    /// The requested lifetime is outside 1..=21600 seconds.
    #[error("token lifetime must be {MIN_TTL} to {MAX_TTL} seconds")]
    BadTtl,
}

impl TokenKey {
    /// A key from its bytes (tests, and loading from the store).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let keyed = Hmac::<Sha256>::new_from_slice(&bytes).expect("HMAC accepts keys of any length");
        Self { bytes, keyed }
    }

    /// The key's bytes, to store it.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.bytes
    }

    fn tag(&self, expiry: u64, nonce: &[u8], instance_id: &str) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(&[VERSION]);
        mac.update(&expiry.to_be_bytes());
        mac.update(nonce);
        mac.update(instance_id.as_bytes());
        mac
    }

    /// HMAC-SHA256(key, `label` ‖ 0 ‖ `data`): a value every node sharing the key derives alike
    /// (EC2's instance-identity credentials), unguessable without the key.
    pub fn derive(&self, label: &str, data: &[u8]) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        mac.update(label.as_bytes());
        mac.update(&[0]);
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// Mints a token for `instance_id` valid for `ttl` seconds from `now` (Unix seconds), with
    /// `nonce` (random per mint: [`Context::nonce`](crate::Context::nonce)).
    pub fn mint(&self, instance_id: &str, now: u64, ttl: u64, nonce: u64) -> Result<String, TokenError> {
        if !(MIN_TTL..=MAX_TTL).contains(&ttl) {
            return Err(TokenError::BadTtl);
        }
        let expiry = now.saturating_add(ttl);
        let nonce = nonce.to_be_bytes();
        let mut bytes = Vec::with_capacity(TOKEN_LEN);
        bytes.push(VERSION);
        bytes.extend_from_slice(&expiry.to_be_bytes());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&self.tag(expiry, &nonce, instance_id).finalize().into_bytes()[..TAG_LEN]);
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Checks `token` for `instance_id` at `now`; returns the seconds it has left (at least 1).
    pub fn verify(&self, token: &str, instance_id: &str, now: u64) -> Result<u64, TokenError> {
        // Decoded on the stack: a longer token does not fit, and is refused like any other.
        let mut decoded = [0u8; TOKEN_LEN];
        let length = URL_SAFE_NO_PAD.decode_slice(token.trim(), &mut decoded).map_err(|_| TokenError::Invalid)?;
        let bytes = &decoded[..length];
        if bytes.len() != TOKEN_LEN || bytes[0] != VERSION {
            return Err(TokenError::Invalid);
        }
        let expiry = u64::from_be_bytes(bytes[1..9].try_into().expect("eight bytes by the length check"));
        let (nonce, tag) = bytes[9..].split_at(NONCE_LEN);
        // Constant-time comparison: a forger learns nothing from how long the check took.
        self.tag(expiry, nonce, instance_id).verify_truncated_left(tag).map_err(|_| TokenError::Invalid)?;
        if expiry <= now {
            return Err(TokenError::Expired);
        }
        Ok(expiry - now)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn key(byte: u8) -> TokenKey {
        TokenKey::from_bytes([byte; 32])
    }

    #[test]
    fn a_token_is_valid_for_its_instance_until_it_expires() {
        let token = key(1).mint("i-a", NOW, 21_600, 7).unwrap();
        assert_eq!(token.len(), 55);
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{token}");
        assert_eq!(key(1).verify(&token, "i-a", NOW), Ok(21_600));
        assert_eq!(key(1).verify(&token, "i-a", NOW + 21_599), Ok(1));
        assert_eq!(key(1).verify(&token, "i-a", NOW + 21_600), Err(TokenError::Expired));
    }

    #[test]
    fn a_token_is_refused_for_another_instance_key_or_any_change() {
        let token = key(1).mint("i-a", NOW, 60, 7).unwrap();
        assert_eq!(key(1).verify(&token, "i-b", NOW), Err(TokenError::Invalid));
        assert_eq!(key(2).verify(&token, "i-a", NOW), Err(TokenError::Invalid));
        // Stretching the expiry invalidates the signature.
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        bytes[8] = bytes[8].wrapping_add(1);
        assert_eq!(key(1).verify(&URL_SAFE_NO_PAD.encode(&bytes), "i-a", NOW), Err(TokenError::Invalid));
        for junk in ["", "x", "not a token at all", &token[..54], &format!("{token}A")] {
            assert_eq!(key(1).verify(junk, "i-a", NOW), Err(TokenError::Invalid), "{junk:?}");
        }
    }

    #[test]
    fn tokens_with_different_nonces_differ_and_each_verifies() {
        let (first, second) = (key(1).mint("i-a", NOW, 60, 1).unwrap(), key(1).mint("i-a", NOW, 60, 2).unwrap());
        assert_ne!(first, second);
        assert_eq!(key(1).verify(&first, "i-a", NOW), Ok(60));
        assert_eq!(key(1).verify(&second, "i-a", NOW), Ok(60));
        // The nonce is signed: changing it invalidates the token.
        let mut bytes = URL_SAFE_NO_PAD.decode(&first).unwrap();
        bytes[12] ^= 1;
        assert_eq!(key(1).verify(&URL_SAFE_NO_PAD.encode(&bytes), "i-a", NOW), Err(TokenError::Invalid));
    }

    #[test]
    fn lifetimes_outside_ec2_bounds_are_refused() {
        assert_eq!(key(1).mint("i-a", NOW, 0, 7), Err(TokenError::BadTtl));
        assert_eq!(key(1).mint("i-a", NOW, 21_601, 7), Err(TokenError::BadTtl));
        assert!(key(1).mint("i-a", NOW, 1, 7).is_ok());
        assert_eq!(format!("{:?}", key(7)), "TokenKey(<redacted>)");
    }

    proptest! {
        #[test]
        fn mint_then_verify_round_trips(id in "[a-z0-9-]{1,40}", nonce in any::<u64>(), ttl in MIN_TTL..=MAX_TTL, now in 0u64..4_000_000_000, elapsed in 0u64..30_000) {
            let key = key(9);
            let token = key.mint(&id, now, ttl, nonce).unwrap();
            let checked = key.verify(&token, &id, now + elapsed);
            if elapsed < ttl {
                prop_assert_eq!(checked, Ok(ttl - elapsed));
            } else {
                prop_assert_eq!(checked, Err(TokenError::Expired));
            }
        }
    }
}
