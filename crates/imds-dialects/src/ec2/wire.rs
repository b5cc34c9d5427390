//! EC2's wire strings: content types, the exact error page, the version list and the fixed leaf
//! values real instances serve. Constants only; no I/O.

/// Content type of every listing and leaf, JSON leaves included.
pub const TEXT_PLAIN: &str = "text/plain";
/// Content type of `user-data`.
pub const OCTET_STREAM: &str = "application/octet-stream";
/// Content type of error pages.
pub const TEXT_HTML: &str = "text/html";
/// The `Server` header of every answer.
pub const SERVER: &str = "EC2ws";

/// The 339-byte page EC2 sends with every 404; scripts grep for `404 - Not Found`.
pub const NOT_FOUND_PAGE: &str = "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n\
<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\"\n\
\t\t \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n\
<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n \
<head>\n  \
<title>404 - Not Found</title>\n \
</head>\n \
<body>\n  \
<h1>404 - Not Found</h1>\n \
</body>\n\
</html>\n";

/// Request header carrying an IMDSv2 session token.
pub const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
/// [`TOKEN_HEADER`] as a header name: a lookup by name skips parsing the string every request.
pub static TOKEN_NAME: http::HeaderName = http::HeaderName::from_static(TOKEN_HEADER);
/// Request header of the token PUT (the lifetime asked for) and response header of the token
/// PUT and of every token-carrying GET (the seconds left).
pub const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
/// [`TTL_HEADER`] as a header name (every token-carrying GET's answer has it).
pub static TTL_NAME: http::HeaderName = http::HeaderName::from_static(TTL_HEADER);
/// The path that mints tokens (only under `latest`).
pub const TOKEN_PATH: &str = "api/token";

/// EC2's error page for another status, in the layout of [`NOT_FOUND_PAGE`].
pub fn error_page(title: &str) -> String {
    NOT_FOUND_PAGE.replace("404 - Not Found", title)
}

/// The dated API versions `GET /` lists (a 2022 instance's list), oldest first; `latest` follows.
pub(crate) const VERSIONS: &[&str] = &[
    "1.0",
    "2007-01-19",
    "2007-03-01",
    "2007-08-29",
    "2007-10-10",
    "2007-12-15",
    "2008-02-01",
    "2008-09-01",
    "2009-04-04",
    "2011-01-01",
    "2011-05-01",
    "2012-01-12",
    "2014-02-25",
    "2014-11-05",
    "2015-10-20",
    "2016-04-19",
    "2016-06-30",
    "2016-09-02",
    "2018-03-28",
    "2018-08-17",
    "2018-09-24",
    "2019-10-01",
    "2020-10-27",
    "2021-01-03",
    "2021-03-23",
    "2021-07-15",
    "2022-07-09",
    "2022-09-24",
];
/// The version that always serves the newest tree.
pub(crate) const LATEST: &str = "latest";

/// `ami-manifest-path` of an EBS-backed AMI.
pub(crate) const AMI_MANIFEST_PATH: &str = "(unknown)";
/// Device name of the root volume (`block-device-mapping/ami` and `root`).
pub(crate) const ROOT_DEVICE: &str = "/dev/xvda";
/// `events/maintenance/scheduled` and `history` when there are no events: an empty JSON array.
pub(crate) const NO_EVENTS: &str = "[]";
/// `instance-action`: the legacy bundling signal, always `none`.
pub(crate) const INSTANCE_ACTION: &str = "none";
/// `instance-life-cycle` of an ordinary instance.
pub(crate) const LIFE_CYCLE: &str = "on-demand";
/// `instance-type` when the record has none: the type AWS's own examples use.
pub(crate) const DEFAULT_INSTANCE_TYPE: &str = "t3.micro";
/// `profile` of an HVM instance (undocumented, listed on real instances).
pub(crate) const PROFILE: &str = "default-hvm";
/// `security-groups` (and per-interface `security-groups`): the VPC's default group.
pub(crate) const SECURITY_GROUP: &str = "default";
/// `dynamic/fws/instance-monitoring`: detailed monitoring off.
pub(crate) const MONITORING: &str = "disabled";
/// `architecture` in the identity document.
pub(crate) const ARCHITECTURE: &str = "x86_64";
/// `version` in the identity document.
pub(crate) const IDENTITY_VERSION: &str = "2017-09-30";
/// Timestamp used when the record has no `created_at`.
pub(crate) const EPOCH: &str = "1970-01-01T00:00:00Z";
/// The region EC2 treats specially in host names (`ec2.internal`, `compute-1`).
pub(crate) const US_EAST_1: &str = "us-east-1";

/// `services/domain` and `services/partition` of the commercial partition.
pub(crate) const AWS_PARTITION: (&str, &str) = ("amazonaws.com", "aws");
/// `services/domain` and `services/partition` of the China partition (regions `cn-*`).
pub(crate) const CHINA_PARTITION: (&str, &str) = ("amazonaws.com.cn", "aws-cn");

/// `Code` of the credentials error form (EC2 could not assume the role).
pub(crate) const ASSUME_ROLE_FAILED: &str = "AssumeRoleUnauthorizedAccess";
/// The pointer EC2's credentials error message ends with.
pub(crate) const ROLE_HELP: &str =
    "Please see documentation at http://docs.amazonwebservices.com/IAM/latest/UserGuide/RolesTroubleshooting.html.";
