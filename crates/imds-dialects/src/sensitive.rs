//! Which guest requests ask for something an operator audits: role credentials, session tokens,
//! identity signatures, user-data and MMDS documents ([`Read`]), and whether a request of a
//! dialect with session tokens carried one ([`carries_token`]).
//!
//! Pure, like the rest of the crate: the server classifies a request by its dialect, method and
//! path (whatever the answer, so refused and missing reads are recorded too) and writes the
//! audit line and metrics; nothing here sees a secret. Paths are matched as each dialect routes
//! them: repeated slashes collapse and a trailing slash is ignored.

use http::Method;

use crate::{ec2, gce, mmds, Dialect, GuestRequest, Settings};

/// The kinds of sensitive reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Read {
    /// Role or managed-identity credentials (EC2 `iam/security-credentials/<role>` and
    /// `identity-credentials/…`, GCE `service-accounts/<sa>/token`, Azure `identity/oauth2/token`).
    Credentials,
    /// A session token minted (`PUT /latest/api/token`, EC2 and MMDS).
    Token,
    /// An identity signature (EC2 `instance-identity/{signature,pkcs7,rsa2048}`, GCE
    /// `service-accounts/<sa>/identity`, Azure `attested/document`).
    Signature,
    /// The instance's user-data, from any dialect's user-data leaf.
    UserData,
    /// The Firecracker MMDS document (every non-token read of an MMDS instance).
    Mmds,
}

impl Read {
    /// The name used in audit lines and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Read::Credentials => "credentials",
            Read::Token => "token",
            Read::Signature => "signature",
            Read::UserData => "user-data",
            Read::Mmds => "mmds",
        }
    }
}

/// What sensitive thing `request`, answered by `dialect`, asks for; `None` for ordinary
/// metadata.
pub fn read_of(dialect: Dialect, request: &GuestRequest, settings: &Settings) -> Option<Read> {
    let path = ec2::collapse_slashes(&request.path);
    let path = path.trim_end_matches('/');
    // Every sensitive path has at most this many segments: a longer one is ordinary metadata.
    // An array on the stack: the guest path classifies every request and allocates nothing here.
    let mut array = [""; 8];
    let mut count = 0;
    for segment in path.split('/').skip(1) {
        if count == array.len() {
            return (dialect == Dialect::Mmds).then_some(Read::Mmds);
        }
        array[count] = segment;
        count += 1;
    }
    let segments = &array[..count];
    match dialect {
        Dialect::Ec2 => ec2_read(&request.method, segments),
        Dialect::Mmds if request.method == Method::PUT && path == mmds::wire::TOKEN_PATH => Some(Read::Token),
        Dialect::Mmds => Some(Read::Mmds),
        Dialect::Gce => gce_read(segments, request.query.as_deref()),
        Dialect::Azure => match segments {
            ["metadata", "identity", "oauth2", "token"] => Some(Read::Credentials),
            ["metadata", "attested", "document"] => Some(Read::Signature),
            // The whole document, and its `compute` part, carry `userData` too.
            ["metadata", "instance", "compute", "userData"]
            | ["metadata", "instance"]
            | ["metadata", "instance", "compute"] => Some(Read::UserData),
            _ => None,
        },
        Dialect::OpenStack => matches!(segments, ["openstack", _, "user_data"]).then_some(Read::UserData),
        // `v1.json`, the whole document, carries `user_data` too.
        Dialect::DigitalOcean => {
            matches!(segments, ["metadata", "v1", "user-data"] | ["metadata", "v1.json"]).then_some(Read::UserData)
        }
        Dialect::NoCloud => {
            let prefix = settings.nocloud_prefix.trim_end_matches('/');
            (path.strip_prefix(prefix) == Some("/user-data")).then_some(Read::UserData)
        }
        Dialect::Hetzner => matches!(segments, ["hetzner", "v1", "userdata"]).then_some(Read::UserData),
        // EC2-shaped trees: the role's credentials under `ram/` (Alibaba) or `cam/` (Tencent).
        Dialect::Alibaba | Dialect::Tencent => match segments {
            [_version, "api", "token"] if request.method == Method::PUT => Some(Read::Token),
            [_version, "user-data"] => Some(Read::UserData),
            [_version, "meta-data", "ram" | "cam", "security-credentials", _role] => Some(Read::Credentials),
            _ => None,
        },
        Dialect::Linode => match segments {
            ["v1", "token"] if request.method == Method::PUT => Some(Read::Token),
            ["v1", "user-data"] => Some(Read::UserData),
            _ => None,
        },
        Dialect::Vultr => matches!(segments, [_, "user-data"] | ["v1.json"]).then_some(Read::UserData),
        Dialect::Exoscale => matches!(segments, [_version, "user-data"]).then_some(Read::UserData),
        Dialect::Scaleway => matches!(segments, ["user_data", ..]).then_some(Read::UserData),
        // UpCloud's one document carries `user_data`.
        Dialect::UpCloud => matches!(segments, ["metadata", "v1.json"]).then_some(Read::UserData),
        // Every request of the container endpoints asks for credentials.
        Dialect::Container => Some(Read::Credentials),
        // The instance document and its `metadata` member carry `user_data` too.
        Dialect::Oracle => matches!(
            segments,
            ["opc", _, "instance"]
                | ["opc", _, "instance", "metadata"]
                | ["opc", _, "instance", "metadata", "user_data"]
        )
        .then_some(Read::UserData),
    }
}

fn ec2_read(method: &Method, segments: &[&str]) -> Option<Read> {
    let (_version, rest) = segments.split_first()?;
    match rest {
        ["api", "token"] if method == Method::PUT => Some(Read::Token),
        ["user-data"] => Some(Read::UserData),
        ["meta-data", "iam", "security-credentials", _role] => Some(Read::Credentials),
        ["meta-data", "identity-credentials", "ec2", "security-credentials", _] => Some(Read::Credentials),
        ["dynamic", "instance-identity", "signature" | "pkcs7" | "rsa2048"] => Some(Read::Signature),
        _ => None,
    }
}

fn gce_read(segments: &[&str], query: Option<&str>) -> Option<Read> {
    let root = gce::wire::ROOT.trim_start_matches('/');
    // A recursive read of a directory holding `attributes/user-data` returns it too.
    let recursive =
        || crate::query::pairs(query).any(|(name, value)| name == "recursive" && value.eq_ignore_ascii_case("true"));
    match segments {
        [r, _version, "instance", "service-accounts", _, "token"] if *r == root => Some(Read::Credentials),
        [r, _version, "instance", "service-accounts", _, "identity"] if *r == root => Some(Read::Signature),
        [r, _version, "instance", "attributes", "user-data"] if *r == root => Some(Read::UserData),
        [r, _] | [r, _, "instance"] | [r, _, "instance", "attributes"] if *r == root && recursive() => {
            Some(Read::UserData)
        }
        _ => None,
    }
}

/// For the dialects with session tokens (EC2, MMDS, Alibaba, Linode): whether `request` carries one in the
/// dialect's header; `None` for the other dialects.
pub fn carries_token(dialect: Dialect, request: &GuestRequest) -> Option<bool> {
    let headers = &request.headers;
    match dialect {
        Dialect::Ec2 => Some(headers.contains_key(&ec2::wire::TOKEN_NAME)),
        Dialect::Mmds => {
            Some(headers.contains_key(mmds::wire::TOKEN_HEADER) || headers.contains_key(mmds::wire::AWS_TOKEN_HEADER))
        }
        Dialect::Alibaba => Some(headers.contains_key(crate::alibaba::wire::TOKEN_HEADER)),
        Dialect::Linode => Some(
            headers.contains_key(crate::linode::wire::TOKEN_HEADER)
                || headers.contains_key(crate::linode::wire::LEGACY_TOKEN_HEADER),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dialect: Dialect, method: Method, target: &str) -> Option<Read> {
        read_of(dialect, &GuestRequest::new(method, target), &Settings::default())
    }

    #[test]
    fn each_dialects_sensitive_paths_are_named() {
        use Dialect::*;
        let cases = [
            (Ec2, Method::PUT, "/latest/api/token", Some(Read::Token)),
            (Ec2, Method::GET, "/latest/api/token", None),
            (Ec2, Method::GET, "//latest//user-data/", Some(Read::UserData)),
            (Ec2, Method::GET, "/2021-01-03/meta-data/iam/security-credentials/web", Some(Read::Credentials)),
            (Ec2, Method::GET, "/latest/meta-data/iam/security-credentials/", None),
            (
                Ec2,
                Method::GET,
                "/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance",
                Some(Read::Credentials),
            ),
            (Ec2, Method::GET, "/latest/dynamic/instance-identity/pkcs7", Some(Read::Signature)),
            (Ec2, Method::GET, "/latest/dynamic/instance-identity/document", None),
            (Ec2, Method::GET, "/latest/meta-data/instance-id", None),
            (Ec2, Method::GET, "/latest/meta-data/a/b/c/d/e/f/g/h/i", None),
            (Mmds, Method::GET, "/a/b/c/d/e/f/g/h/i", Some(Read::Mmds)),
            (Mmds, Method::PUT, "/latest/api/token", Some(Read::Token)),
            (Mmds, Method::GET, "/latest/meta-data/", Some(Read::Mmds)),
            (Gce, Method::GET, "/computeMetadata/v1/instance/service-accounts/default/token", Some(Read::Credentials)),
            (Gce, Method::GET, "/computeMetadata/v1/instance/service-accounts/default/identity", Some(Read::Signature)),
            (Gce, Method::GET, "/computeMetadata/v1/instance/attributes/user-data", Some(Read::UserData)),
            (Gce, Method::GET, "/computeMetadata/v1/instance/hostname", None),
            (Azure, Method::GET, "/metadata/identity/oauth2/token", Some(Read::Credentials)),
            (Azure, Method::GET, "/metadata/attested/document", Some(Read::Signature)),
            (Azure, Method::GET, "/metadata/instance/compute/userData", Some(Read::UserData)),
            (OpenStack, Method::GET, "/openstack/latest/user_data", Some(Read::UserData)),
            (DigitalOcean, Method::GET, "/metadata/v1/user-data", Some(Read::UserData)),
            (NoCloud, Method::GET, "/nocloud/user-data", Some(Read::UserData)),
            (NoCloud, Method::GET, "/nocloud/meta-data", None),
            (Hetzner, Method::GET, "/hetzner/v1/userdata", Some(Read::UserData)),
            (Alibaba, Method::PUT, "/latest/api/token", Some(Read::Token)),
            (Alibaba, Method::GET, "/latest/meta-data/ram/security-credentials/app", Some(Read::Credentials)),
            (Tencent, Method::GET, "/latest/meta-data/cam/security-credentials/app", Some(Read::Credentials)),
            (Tencent, Method::GET, "/latest/user-data", Some(Read::UserData)),
            (Linode, Method::PUT, "/v1/token", Some(Read::Token)),
            (Linode, Method::GET, "/v1/user-data", Some(Read::UserData)),
            (Vultr, Method::GET, "/latest/user-data", Some(Read::UserData)),
            (Exoscale, Method::GET, "/1.0/user-data", Some(Read::UserData)),
            (Scaleway, Method::GET, "/user_data/cloud-init", Some(Read::UserData)),
            (Container, Method::GET, "/v1/credentials", Some(Read::Credentials)),
            (Container, Method::GET, "/v2/credentials/abc", Some(Read::Credentials)),
            (Oracle, Method::GET, "/opc/v2/instance/metadata/user_data", Some(Read::UserData)),
            (Oracle, Method::GET, "/opc/v2/instance/hostname", None),
            // Whole documents that carry the user-data.
            (Azure, Method::GET, "/metadata/instance?api-version=2021-02-01", Some(Read::UserData)),
            (Azure, Method::GET, "/metadata/instance/network", None),
            (DigitalOcean, Method::GET, "/metadata/v1.json", Some(Read::UserData)),
            (UpCloud, Method::GET, "/metadata/v1.json", Some(Read::UserData)),
            (Vultr, Method::GET, "/v1.json", Some(Read::UserData)),
            (Oracle, Method::GET, "/opc/v2/instance/", Some(Read::UserData)),
            (Gce, Method::GET, "/computeMetadata/v1/instance/?recursive=true", Some(Read::UserData)),
            (Gce, Method::GET, "/computeMetadata/v1/?recursive=True&alt=json", Some(Read::UserData)),
            (Gce, Method::GET, "/computeMetadata/v1/instance/", None),
            (Gce, Method::GET, "/computeMetadata/v1/instance/network-interfaces/?recursive=true", None),
        ];
        for (dialect, method, target, expected) in cases {
            assert_eq!(read(dialect, method.clone(), target), expected, "{dialect:?} {method} {target}");
        }
    }

    #[test]
    fn token_headers_are_seen_only_for_dialects_with_sessions() {
        let with = GuestRequest::new(Method::GET, "/latest/meta-data/")
            .with_header(http::HeaderName::from_static(ec2::wire::TOKEN_HEADER), http::HeaderValue::from_static("t"));
        let without = GuestRequest::new(Method::GET, "/latest/meta-data/");
        assert_eq!(carries_token(Dialect::Ec2, &with), Some(true));
        assert_eq!(carries_token(Dialect::Ec2, &without), Some(false));
        assert_eq!(carries_token(Dialect::Mmds, &with), Some(true), "MMDS accepts the EC2 header too");
        assert_eq!(carries_token(Dialect::Gce, &with), None);
    }
}
