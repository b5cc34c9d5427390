//! Tencent Cloud's wire strings.

/// The versions `/` lists.
pub const VERSIONS: &[&str] = &["1.0", "2017-09-19", "latest"];
/// Listings and text leaves.
pub const TEXT_PLAIN: &str = "text/plain";
/// Error pages.
pub const TEXT_HTML: &str = "text/html";
/// `Code` of servable credentials.
pub const SUCCESS: &str = "Success";

/// An error page titled `title` (`404 Not Found`).
pub fn error_page(title: &str) -> String {
    format!("<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n")
}
