//! OpenStack's wire strings: the metadata API versions, file names, content types and the exact
//! error pages Nova's metadata service (WebOb) sends. Constants and one page renderer; no I/O.

/// The dated metadata versions Nova knows, oldest first (`/openstack` lists those not in the
/// future, then `latest`).
pub const VERSIONS: &[&str] = &[
    "2012-08-10",
    "2013-04-04",
    "2013-10-17",
    "2015-10-15",
    "2016-06-30",
    "2016-10-06",
    "2017-02-22",
    "2018-08-27",
    "2020-10-14",
    "2025-04-04",
];
/// The alias of the newest version.
pub const LATEST: &str = "latest";

/// Grizzly: `password`, `random_seed`.
pub const GRIZZLY: &str = "2013-04-04";
/// Havana: `vendor_data.json`.
pub const HAVANA: &str = "2013-10-17";
/// Liberty: `network_data.json`, `project_id`.
pub const LIBERTY: &str = "2015-10-15";
/// Newton (first): `devices`.
pub const NEWTON_ONE: &str = "2016-06-30";
/// Newton (second): `vendor_data2.json`.
pub const NEWTON_TWO: &str = "2016-10-06";
/// Victoria: `dedicated_cpus`.
pub const VICTORIA: &str = "2020-10-14";

/// `meta_data.json`.
pub const META_DATA: &str = "meta_data.json";
/// `user_data`.
pub const USER_DATA: &str = "user_data";
/// `password`.
pub const PASSWORD: &str = "password";
/// `vendor_data.json`.
pub const VENDOR_DATA: &str = "vendor_data.json";
/// `network_data.json`.
pub const NETWORK_DATA: &str = "network_data.json";
/// `vendor_data2.json`.
pub const VENDOR_DATA2: &str = "vendor_data2.json";

/// Content type of listings, `user_data`, `network_data.json` and `password` (WebOb adds the
/// charset to text types).
pub const TEXT_PLAIN: &str = "text/plain; charset=UTF-8";
/// Content type of `meta_data.json` and the vendor data documents.
pub const APPLICATION_JSON: &str = "application/json";
/// Content type of error pages and of the empty answer to a password write.
pub const TEXT_HTML: &str = "text/html; charset=UTF-8";

/// The longest password a guest may post: Nova keeps four chunks of 255 characters.
pub const PASSWORD_MAX_BYTES: usize = 4 * 255;

/// The domain of host names without one: Nova's default `dhcp_domain`.
pub const DEFAULT_DHCP_DOMAIN: &str = "novalocal";

/// `404 Not Found`'s explanation.
pub const NOT_FOUND: (&str, &str) = ("404 Not Found", "The resource could not be found.");
/// `409 Conflict`'s explanation (a second password write).
pub const CONFLICT: (&str, &str) = ("409 Conflict", "There was a conflict when trying to complete your request.");
/// `400 Bad Request` for an oversized password.
pub const TOO_LARGE: (&str, &str) = ("400 Bad Request", "Request is too large.");
/// `400 Bad Request` for a password method other than `GET` and `POST`.
pub const GET_AND_POST_ONLY: (&str, &str) = ("400 Bad Request", "GET and POST only are supported.");
/// `400 Bad Request` for a password that is not UTF-8 (Nova stores it as text).
pub const NOT_UTF8: (&str, &str) = ("400 Bad Request", "The password must be UTF-8 text.");

/// WebOb's HTML error page for `(status line, explanation)`.
pub fn error_page((status, explanation): (&str, &str)) -> String {
    format!(
        "<html>\n <head>\n  <title>{status}</title>\n </head>\n <body>\n  <h1>{status}</h1>\n  \
         {explanation}<br /><br />\n\n\n\n </body>\n</html>"
    )
}
