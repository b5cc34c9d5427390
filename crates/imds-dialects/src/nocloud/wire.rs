//! NoCloud wire strings.

/// `Content-Type` of the YAML documents and listings.
pub(crate) const TEXT: &str = "text/plain; charset=utf-8";
/// `Content-Type` of user and vendor data.
pub(crate) const OCTET_STREAM: &str = "application/octet-stream";
/// The body of a 404.
pub(crate) const NOT_FOUND: &str = "404 Not Found\n";
/// The seed's files.
pub(crate) const META_DATA: &str = "meta-data";
/// See [`META_DATA`].
pub(crate) const USER_DATA: &str = "user-data";
/// See [`META_DATA`].
pub(crate) const VENDOR_DATA: &str = "vendor-data";
/// See [`META_DATA`].
pub(crate) const NETWORK_CONFIG: &str = "network-config";
/// The override key holding a whole `network-config` document.
pub(crate) const NETWORK_CONFIG_OVERRIDE: &str = "network-config";
