//! Scaleway wire strings.

/// The instance document's path (`?format=json` for JSON, else shell variables).
pub(crate) const CONF: &str = "/conf";
/// The user data directory.
pub(crate) const USER_DATA: &str = "/user_data";
/// The vendor data directory.
pub(crate) const VENDOR_DATA: &str = "/vendor_data";
/// The one user/vendor data key imds serves.
pub(crate) const CLOUD_INIT: &str = "cloud-init";
/// User and vendor data answer only connections from a port below this one.
pub(crate) const PRIVILEGED_PORTS: u16 = 1024;
/// `Content-Type` of JSON answers.
pub(crate) const JSON: &str = "application/json";
/// `Content-Type` of text answers and errors.
pub(crate) const TEXT: &str = "text/plain; charset=utf-8";
/// `Content-Type` of user and vendor data.
pub(crate) const OCTET_STREAM: &str = "application/octet-stream";
/// The SMBIOS manufacturer cloud-init's Scaleway datasource looks for.
pub(crate) const MANUFACTURER: &str = "Scaleway";
/// The SMBIOS product.
pub(crate) const PRODUCT: &str = "SCW-DEV1-S";
