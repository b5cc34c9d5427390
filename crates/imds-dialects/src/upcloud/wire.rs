//! UpCloud wire strings.

/// `Content-Type` of the document.
pub(crate) const JSON: &str = "application/json";
/// `Content-Type` of errors.
pub(crate) const TEXT: &str = "text/plain; charset=utf-8";
/// The document's path.
pub(crate) const JSON_PATH: &str = "/metadata/v1.json";
/// The body of a 404.
pub(crate) const NOT_FOUND: &str = "404 page not found\n";
/// `cloud_name`.
pub(crate) const CLOUD_NAME: &str = "upcloud";
/// `platform`.
pub(crate) const PLATFORM: &str = "servers";
/// `subplatform`.
pub(crate) const SUBPLATFORM: &str = "metadata (http://169.254.169.254)";
/// The SMBIOS manufacturer cloud-init's UpCloud datasource requires.
pub(crate) const MANUFACTURER: &str = "UpCloud";
