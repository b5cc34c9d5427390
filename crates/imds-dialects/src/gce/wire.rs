//! GCE's wire strings: header names and values, content types, fixed leaf values and the error
//! pages. Constants and string builders only; no I/O.

/// The request header every `/computeMetadata/` request must carry, and every answer carries.
pub const FLAVOR_HEADER: &str = "metadata-flavor";
/// [`FLAVOR_HEADER`] as a header name (looked up on every request).
pub static FLAVOR_NAME: http::HeaderName = http::HeaderName::from_static(FLAVOR_HEADER);
/// `X-Forwarded-For`, which GCE refuses.
pub static FORWARDED_FOR_NAME: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");
/// The only accepted value of [`FLAVOR_HEADER`].
pub const FLAVOR: &str = "Google";
/// The `Server` header of every answer.
pub const SERVER: &str = "Metadata Server for VM";
/// Content type of text leaves and listings (sic: not `text/plain`).
pub const TEXT: &str = "application/text";
/// Content type of JSON answers.
pub const JSON: &str = "application/json";
/// Content type of error pages.
pub const HTML: &str = "text/html; charset=UTF-8";
/// `X-XSS-Protection` value.
pub const XSS_PROTECTION: &str = "0";
/// `X-Frame-Options` value.
pub const FRAME_OPTIONS: &str = "SAMEORIGIN";

/// The API's prefix.
pub const ROOT: &str = "/computeMetadata";
/// The one API version served.
pub const VERSION: &str = "v1";

/// `iss` of identity tokens.
pub const TOKEN_ISSUER: &str = "https://accounts.google.com";

/// Default scope of a service account when the record names none.
pub const DEFAULT_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Zone when the record has neither zone nor region.
pub const DEFAULT_ZONE: &str = "local-a";
/// Machine type when the record has no instance type.
pub const DEFAULT_MACHINE_TYPE: &str = "e2-medium";
/// Project id when the record has no account.
pub const DEFAULT_PROJECT: &str = "imds-project";
/// SSH user of keys without a user when the record has no default user (cloud-init installs
/// `cloudinit:` keys for the image's default user).
pub const DEFAULT_SSH_USER: &str = "cloudinit";
/// MTU of interfaces that do not set one (GCE's VPC default).
pub const DEFAULT_MTU: u16 = 1460;
/// Access-config type of a 1:1 NAT address.
pub const ONE_TO_ONE_NAT: &str = "ONE_TO_ONE_NAT";
/// `maintenance-event` when nothing is scheduled.
pub const NO_MAINTENANCE: &str = "NONE";
/// `maintenance-event` while the host is about to be maintained and the VM live-migrated.
pub const MIGRATE_ON_HOST_MAINTENANCE: &str = "MIGRATE_ON_HOST_MAINTENANCE";
/// `maintenance-event` while the VM is about to be stopped (maintenance or preemption).
pub const TERMINATE_ON_HOST_MAINTENANCE: &str = "TERMINATE_ON_HOST_MAINTENANCE";

/// The instance attribute (or, failing that, project attribute) that enables guest attributes.
pub const ENABLE_GUEST_ATTRIBUTES: &str = "enable-guest-attributes";
/// The guest-state member guest attributes live under.
pub const GUEST_ATTRIBUTES: &str = "guest-attributes";
/// Longest guest-attribute namespace or key, in bytes.
pub const MAX_GUEST_ATTRIBUTE_NAME: usize = 128;
/// Largest guest-attribute value, in bytes.
pub const MAX_GUEST_ATTRIBUTE_VALUE: usize = 16 * 1024;

/// `timeout_sec` upper bound (larger values are clamped), and the timeout of a wait that names
/// none.
pub const MAX_WAIT_SECS: u64 = 3600;

/// Google's error page layout with `status` (e.g. `404`), `reason` (e.g. `Not Found`) and a
/// message.
pub fn error_page(status: u16, reason: &str, message: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error {status} ({reason})!!1</title>\n  \
         <p><b>{status}.</b> <ins>That\u{2019}s an error.</ins>\n  <p>{message} <ins>That\u{2019}s all we know.</ins>\n"
    )
}

/// Escapes `<`, `>`, `&` and `"` for an error page.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}
