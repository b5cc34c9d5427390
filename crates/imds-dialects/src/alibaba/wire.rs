//! Alibaba Cloud ECS's wire strings.

/// The versions `/` lists (cloud-init reads `2016-01-01`).
pub const VERSIONS: &[&str] = &["2016-01-01", "latest"];
/// The version whose `api/token` mints tokens.
pub const LATEST: &str = "latest";
/// The token path under a version.
pub const TOKEN_PATH: &str = "api/token";
/// The request header giving a new token's lifetime in seconds.
pub const TTL_HEADER: &str = "x-aliyun-ecs-metadata-token-ttl-seconds";
/// The request header carrying a token.
pub const TOKEN_HEADER: &str = "x-aliyun-ecs-metadata-token";
/// Listings and text leaves.
pub const TEXT_PLAIN: &str = "text/plain";
/// JSON leaves (credentials, the identity document).
pub const JSON: &str = "application/json";
/// Error pages.
pub const TEXT_HTML: &str = "text/html";
/// `network-type`: imds serves VPC instances (the only kind with instance metadata).
pub const NETWORK_TYPE: &str = "vpc";
/// `Code` of servable credentials.
pub const SUCCESS: &str = "Success";

/// An error page titled `title` (`404 Not Found`).
pub fn error_page(title: &str) -> String {
    format!("<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n")
}
