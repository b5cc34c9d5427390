//! Vultr wire strings.

/// `Content-Type` of `/v1.json`.
pub(crate) const JSON: &str = "application/json";
/// `Content-Type` of the `/latest/` tree and of errors.
pub(crate) const TEXT: &str = "text/plain; charset=utf-8";
/// `Content-Type` of `/latest/user-data`.
pub(crate) const OCTET_STREAM: &str = "application/octet-stream";
/// The JSON document's path.
pub(crate) const JSON_PATH: &str = "/v1.json";
/// The EC2-shaped tree's root.
pub(crate) const LATEST: &str = "/latest";
/// The body of a 404.
pub(crate) const NOT_FOUND: &str = "404 page not found\n";
/// The SMBIOS manufacturer cloud-init's Vultr datasource requires.
pub(crate) const MANUFACTURER: &str = "Vultr";
/// The SMBIOS product.
pub(crate) const PRODUCT: &str = "VC2";
