//! DigitalOcean wire strings.

/// `Content-Type` of `/metadata/v1.json`.
pub(crate) const JSON: &str = "application/json";
/// `Content-Type` of text-tree leaves and listings.
pub(crate) const TEXT: &str = "text/plain; charset=utf-8";
/// The body of a 404.
pub(crate) const NOT_FOUND: &str = "404 page not found\n";
/// The JSON document's path.
pub(crate) const JSON_PATH: &str = "/metadata/v1.json";
/// The text tree's root.
pub(crate) const TREE_ROOT: &str = "/metadata/v1";
