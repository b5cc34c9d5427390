//! [`SshKey`]: an OpenSSH public key with optional owner, name and expiry.
//!
//! In JSON a key is a string (just the key) or `{key, user?, name?, expires?}`; it serialises
//! back as a plain string when only `key` is set. [`check_key`] rejects values that are plainly
//! not an `authorized_keys` line (private keys, PEM blocks, several lines, a bare blob).

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

/// Decoder for the key blob: standard alphabet, padding optional.
const BLOB: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Longest key line accepted, in bytes (a 16384-bit RSA key is about 2.8 KB).
const MAX_KEY_LEN: usize = 16_384;

/// One SSH public key the guest should accept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SshKey {
    /// The key line: `<type> <base64>[ comment]`, e.g. `ssh-ed25519 AAAAC3Nza… alice@example`.
    pub key: String,
    /// The guest user the key is for (GCE `user:key`, Linode); default user when absent.
    pub user: Option<String>,
    /// A name for the key (EC2 key pair name, OpenStack key name).
    pub name: Option<String>,
    /// Expiry time, RFC 3339 UTC (`2027-01-01T00:00:00Z`), as GCE's `expireOn`.
    pub expires: Option<String>,
}

impl SshKey {
    /// A key with no user, name or expiry.
    pub fn new(key: impl Into<String>) -> Self {
        Self { key: key.into(), user: None, name: None, expires: None }
    }

    /// The key's type, e.g. `ssh-ed25519`.
    pub fn key_type(&self) -> &str {
        self.key.split(' ').next().unwrap_or_default()
    }

    /// The key's comment (text after the blob), if any.
    pub fn comment(&self) -> Option<&str> {
        self.key.splitn(3, ' ').nth(2)
    }
}

impl Serialize for SshKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.user.is_none() && self.name.is_none() && self.expires.is_none() {
            return serializer.serialize_str(&self.key);
        }
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("key", &self.key)?;
        if let Some(user) = &self.user {
            map.serialize_entry("user", user)?;
        }
        if let Some(name) = &self.name {
            map.serialize_entry("name", name)?;
        }
        if let Some(expires) = &self.expires {
            map.serialize_entry("expires", expires)?;
        }
        map.end()
    }
}

/// Checks an `authorized_keys`-style public key line and returns it with surrounding
/// whitespace trimmed (a pasted key often ends in a newline).
pub(crate) fn check_key(raw: &str) -> Result<String, String> {
    let line = raw.trim();
    if line.is_empty() {
        return Err("ssh key must not be empty".into());
    }
    if line.len() > MAX_KEY_LEN {
        return Err(format!("ssh key is {} bytes; the limit is {MAX_KEY_LEN}", line.len()));
    }
    if line.contains(['\n', '\r']) {
        return Err("ssh key must be a single line".into());
    }
    if line.starts_with("-----") {
        return Err("expected an OpenSSH public key line, not a PEM block".into());
    }
    if line.chars().any(char::is_control) {
        return Err("ssh key contains control characters".into());
    }
    let mut parts = line.splitn(3, ' ');
    let key_type = parts.next().unwrap_or_default();
    let blob = parts.next().unwrap_or_default();
    let type_ok = ["ssh-", "ecdsa-", "sk-"].iter().any(|p| key_type.starts_with(p))
        && key_type.len() > 4
        && key_type.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '@' | '.'));
    if !type_ok {
        return Err(format!(
            "expected \"<type> <base64>[ comment]\" with a type like ssh-ed25519, got type {key_type:?}"
        ));
    }
    if blob.is_empty() {
        return Err("ssh key has no base64 key data after its type".into());
    }
    if !matches!(BLOB.decode(blob), Ok(bytes) if bytes.len() >= 4) {
        return Err("ssh key data is not valid base64".into());
    }
    Ok(line.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb2bJ0yYzUeC7t0xv1kq0vO3cVtZ0b8Vz3XcWqTqH6m alice@example";

    #[test]
    fn key_lines() {
        let cases: &[(&str, bool)] = &[
            (ED, true),
            ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7", true),
            ("ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY=", true),
            ("sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t", true),
            ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 comment with spaces", true),
            ("", false),
            ("   ", false),
            ("ssh-ed25519", false),
            ("ssh-ed25519 ", false),
            ("AAAAC3NzaC1lZDI1NTE5", false),
            ("rsa AAAAB3NzaC1yc2E=", false),
            ("ssh-ed25519 not*base64", false),
            ("ssh-ed25519 AAAA\nssh-rsa AAAA", false),
            ("-----BEGIN OPENSSH PRIVATE KEY-----", false),
            ("ssh- AAAAB3NzaC1yc2E=", false),
        ];
        for (input, ok) in cases {
            assert_eq!(check_key(input).is_ok(), *ok, "{input:?}: {:?}", check_key(input));
        }
        assert_eq!(check_key(&format!("  {ED}\n")).unwrap(), ED);
    }

    #[test]
    fn serialises_plain_when_only_key() {
        let plain = SshKey::new(ED);
        assert_eq!(serde_json::to_value(&plain).unwrap(), json!(ED));
        assert_eq!(plain.key_type(), "ssh-ed25519");
        assert_eq!(plain.comment(), Some("alice@example"));
        let full = SshKey { user: Some("bob".into()), expires: Some("2027-01-01T00:00:00Z".into()), ..plain };
        assert_eq!(
            serde_json::to_value(&full).unwrap(),
            json!({"key": ED, "user": "bob", "expires": "2027-01-01T00:00:00Z"})
        );
    }
}
