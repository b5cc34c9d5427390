//! The dialect router: which dialect a path belongs to, and what a disabled dialect answers.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::borrow::Cow;

use http::{header, Method, StatusCode};
use imds_dialects::token::TokenKey;
use imds_dialects::{route, Context, Dialect, GuestRequest, Settings, Subject};
use imds_model::{Instance, Limits};
use serde_json::json;

#[test]
fn paths_pick_their_dialect() {
    let settings = Settings::default();
    let cases = [
        ("/", Dialect::Ec2),
        ("/latest/meta-data/", Dialect::Ec2),
        ("/2009-04-04/user-data", Dialect::Ec2),
        ("/computeMetadata/v1/instance/id", Dialect::Gce),
        ("/computeMetadata", Dialect::Gce),
        ("/computeMetadataX", Dialect::Ec2),
        ("/metadata/v1", Dialect::DigitalOcean),
        ("/metadata/v1.json", Dialect::DigitalOcean),
        ("/metadata/v1/hostname", Dialect::DigitalOcean),
        ("/metadata/instance", Dialect::Azure),
        ("/metadata/instance/compute/vmId", Dialect::Azure),
        ("/metadata/identity/oauth2/token", Dialect::Azure),
        ("/metadata/versions", Dialect::Azure),
        ("/metadata/other", Dialect::Ec2),
        ("/openstack", Dialect::OpenStack),
        ("/openstack/latest/meta_data.json", Dialect::OpenStack),
        ("/openstackish", Dialect::Ec2),
        ("/hetzner/v1/metadata", Dialect::Hetzner),
        ("/opc/v2/instance/", Dialect::Oracle),
        ("/opc", Dialect::Oracle),
        ("/opcx", Dialect::Ec2),
        ("/nocloud/meta-data", Dialect::NoCloud),
        ("/nocloud", Dialect::NoCloud),
    ];
    for (path, dialect) in cases {
        assert_eq!(Dialect::for_path(path, &settings), dialect, "{path}");
    }
    let moved = Settings { nocloud_prefix: Cow::Borrowed("/seed/nocloud/") };
    assert_eq!(Dialect::for_path("/seed/nocloud/user-data", &moved), Dialect::NoCloud);
    assert_eq!(Dialect::for_path("/nocloud/user-data", &moved), Dialect::Ec2);
}

#[test]
fn a_disabled_dialect_answers_as_if_its_paths_did_not_exist() {
    let key = TokenKey::from_bytes([1; 32]);
    let context = Context::new(&key, 1_800_000_000);
    let only_gce =
        Instance::parse(&json!({"id": "i-1", "dialects": {"enabled": ["gce"]}}), &Limits::default()).unwrap();
    let response = route(&Subject::new(&only_gce), &GuestRequest::new(Method::GET, "/latest/meta-data/"), &context);
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert!(std::str::from_utf8(&response.body).unwrap().contains("404 - Not Found"));

    let all = Instance::parse(&json!({"id": "i-1"}), &Limits::default()).unwrap();
    let response =
        route(&Subject::new(&all), &GuestRequest::new(Method::GET, "/latest/meta-data/instance-id"), &context);
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(&response.body[..], b"i-1");
    assert_eq!(response.header(&header::SERVER).unwrap(), "EC2ws");
}
