//! Linode (Akamai) wire strings.

/// The token path.
pub(crate) const TOKEN: &str = "/v1/token";
/// The instance path.
pub(crate) const INSTANCE: &str = "/v1/instance";
/// The network path.
pub(crate) const NETWORK: &str = "/v1/network";
/// The SSH keys path.
pub(crate) const SSH_KEYS: &str = "/v1/ssh-keys";
/// The user data path.
pub(crate) const USER_DATA: &str = "/v1/user-data";
/// The header every read carries its token in.
pub(crate) const TOKEN_HEADER: &str = "metadata-token";
/// The token header's early name, still accepted.
pub(crate) const LEGACY_TOKEN_HEADER: &str = "x-metadata-token";
/// The header a token request gives its lifetime in.
pub(crate) const EXPIRY_HEADER: &str = "metadata-token-expiry-seconds";
/// The lifetime header's early name, still accepted.
pub(crate) const LEGACY_EXPIRY_HEADER: &str = "x-metadata-token-expiry-seconds";
/// A token's lifetime when the request does not give one.
pub(crate) const DEFAULT_EXPIRY: u64 = 3600;
/// `Content-Type` of JSON answers and errors.
pub(crate) const JSON: &str = "application/json";
/// `Content-Type` of text answers.
pub(crate) const TEXT: &str = "text/plain; charset=utf-8";
/// An error body: Linode's `{"errors": [{"reason": …}]}`.
pub(crate) fn error(reason: &str) -> String {
    serde_json::json!({"errors": [{"reason": reason}]}).to_string()
}
/// The SMBIOS manufacturer cloud-init's Akamai datasource looks for.
pub(crate) const MANUFACTURER: &str = "Linode";
/// The SMBIOS product.
pub(crate) const PRODUCT: &str = "Compute Instance";
