//! Hetzner wire strings.

/// `Content-Type` of every answer.
pub(crate) const TEXT: &str = "text/plain; charset=utf-8";
/// The body of a 404.
pub(crate) const NOT_FOUND: &str = "404 page not found\n";
/// The metadata document's path.
pub(crate) const METADATA: &str = "/hetzner/v1/metadata";
/// The user data's path.
pub(crate) const USERDATA: &str = "/hetzner/v1/userdata";
/// The private networks leaf under `metadata/`.
pub(crate) const PRIVATE_NETWORKS: &str = "private-networks";
