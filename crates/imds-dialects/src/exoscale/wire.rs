//! Exoscale (CloudStack) wire strings.

/// The API versions the metadata tree is served at (`GET /` lists them).
pub(crate) const VERSIONS: &[&str] = &["1.0", "latest"];
/// `Content-Type` of every metadata answer.
pub(crate) const TEXT: &str = "text/plain; charset=utf-8";
/// `Content-Type` of `user-data`.
pub(crate) const OCTET_STREAM: &str = "application/octet-stream";
/// `Content-Type` of Apache's error pages.
pub(crate) const TEXT_HTML: &str = "text/html; charset=iso-8859-1";
/// The header a password-server request names its request in.
pub(crate) const DOMU_REQUEST: &str = "domu_request";
/// Asks for the password.
pub(crate) const SEND_MY_PASSWORD: &str = "send_my_password";
/// Acknowledges the password; also the answer when there is none to send.
pub(crate) const SAVED_PASSWORD: &str = "saved_password";
/// The answer to any other request.
pub(crate) const BAD_REQUEST: &str = "bad_request";
/// The SMBIOS manufacturer.
pub(crate) const MANUFACTURER: &str = "Exoscale";
/// The SMBIOS product name; cloud-init's Exoscale datasource requires it to start with
/// `Exoscale`.
pub(crate) const PRODUCT: &str = "Exoscale Compute Platform";

/// An Apache error page, as the virtual router's web server sends it.
pub(crate) fn error_page(status: &str, message: &str) -> String {
    format!(
        "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>{status}</title>\n</head><body>\n<h1>{}</h1>\n<p>{message}</p>\n</body></html>\n",
        status.split_once(' ').map_or(status, |(_, reason)| reason)
    )
}
