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

/// `imds.tags`, when set, reaches every dialect that shows tags; unset, each follows its cloud
/// (EC2 hides them, the others show them).
#[test]
fn imds_tags_set_applies_to_every_dialect() {
    let key = TokenKey::from_bytes([1; 32]);
    let context = Context::new(&key, 1_800_000_000);
    let get = |instance: &Instance, path: &str, headers: &[(&'static str, &'static str)]| {
        let mut request = GuestRequest::new(Method::GET, path);
        for (name, value) in headers {
            request.headers.insert(*name, value.parse().unwrap());
        }
        let response = route(&Subject::new(instance), &request, &context);
        (response.status, String::from_utf8(response.body.to_vec()).unwrap())
    };
    let record = |tags: Option<&str>| {
        let mut doc = json!({"id": "i-1", "ipv4": ["10.0.0.5"], "tags": {"team": "secret-project"}});
        if let Some(mode) = tags {
            doc["imds"] = json!({"tags": mode});
        }
        Instance::parse(&doc, &Limits::default()).unwrap()
    };
    let azure = [("metadata", "true")];
    let reads: [(&str, &[(&'static str, &'static str)]); 3] = [
        ("/metadata/v1.json", &[]),
        ("/metadata/instance/compute?api-version=2021-02-01", &azure),
        ("/openstack/latest/meta_data.json", &[]),
    ];
    for (mode, others_show, ec2_shows) in [(None, true, false), (Some("on"), true, true), (Some("off"), false, false)] {
        let instance = record(mode);
        for (path, headers) in reads {
            let (status, body) = get(&instance, path, headers);
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            assert_eq!(body.contains("secret-project"), others_show, "imds.tags {mode:?}: {path}: {body}");
        }
        let (_, listing) = get(&instance, "/latest/meta-data/tags/instance/team", &[]);
        assert_eq!(listing == "secret-project", ec2_shows, "imds.tags {mode:?}: EC2: {listing}");
    }
}

#[test]
fn shared_paths_follow_the_order_of_dialects_enabled() {
    let key = TokenKey::from_bytes([1; 32]);
    let context = Context::new(&key, 1_800_000_000);
    let with = |enabled: serde_json::Value| {
        Instance::parse(&json!({"id": "i-1", "hostname": "h", "dialects": {"enabled": enabled}}), &Limits::default())
            .unwrap()
    };
    let get = |instance: &Instance, path: &str| {
        let response = route(&Subject::new(instance), &GuestRequest::new(Method::GET, path), &context);
        String::from_utf8(response.body.to_vec()).unwrap()
    };
    assert!(get(&with(json!(["upcloud"])), "/metadata/v1.json").contains("\"cloud_name\":\"upcloud\""));
    assert!(get(&with(json!(["digitalocean", "upcloud"])), "/metadata/v1.json").contains("droplet_id"));
    assert!(get(&with(json!(["upcloud", "digitalocean"])), "/metadata/v1.json").contains("cloud_name"));
    assert_eq!(get(&with(json!(["exoscale"])), "/latest/meta-data/instance-id").len(), 36); // a UUID
    assert_eq!(get(&with(json!(["ec2", "exoscale"])), "/latest/meta-data/instance-id"), "i-1");
    assert_eq!(get(&with(json!(["vultr", "exoscale"])), "/latest/meta-data/hostname"), "h");
    assert!(get(&with(json!(["vultr"])), "/1.0/meta-data/").contains("404 - Not Found"));
}

#[test]
fn the_new_dialects_refuse_in_their_own_shape() {
    let key = TokenKey::from_bytes([1; 32]);
    let context = Context::new(&key, 1_800_000_000);
    let settings = Settings::default();
    let disabled = |enabled: &[&str]| {
        Instance::parse(
            &json!({"id": "i-1", "imds": {"endpoint": "disabled"}, "dialects": {"enabled": enabled, "exoscale": {"password": "secret"}}}),
            &Limits::default(),
        )
        .unwrap()
    };
    let text = |r: &imds_dialects::GuestResponse| String::from_utf8(r.body.to_vec()).unwrap();
    let cases: [(&[&str], GuestRequest, u16, &str); 6] = [
        (&["linode"], GuestRequest::new(Method::GET, "/v1/instance"), 403, r#"{"errors":[{"reason":"Forbidden"}]}"#),
        (&["vultr"], GuestRequest::new(Method::GET, "/v1.json"), 403, "Forbidden\n"),
        (&["upcloud"], GuestRequest::new(Method::GET, "/metadata/v1.json"), 403, "Forbidden\n"),
        (&["scaleway"], GuestRequest::new(Method::GET, "/conf").on_listener_of(Dialect::Scaleway), 403, "Forbidden\n"),
        (&["exoscale"], GuestRequest::new(Method::GET, "/1.0/meta-data/"), 403, "<title>403 Forbidden</title>"),
        (
            &["exoscale"],
            GuestRequest::new(Method::GET, "/").on_listener_of(Dialect::Exoscale).with_header(
                header::HeaderName::from_static("domu_request"),
                header::HeaderValue::from_static("send_my_password"),
            ),
            200,
            "saved_password",
        ),
    ];
    for (enabled, request, status, body) in cases {
        let instance = disabled(enabled);
        let response = route(&Subject::new(&instance), &request, &context);
        assert_eq!(response.status.as_u16(), status, "{enabled:?} {}", request.path);
        assert!(text(&response).contains(body), "{enabled:?}: {}", text(&response));
        assert!(!text(&response).contains("secret"));
        let throttled = imds_dialects::throttled(&Subject::new(&instance), &request, &settings);
        assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS, "{enabled:?}");
    }
    let unknown = imds_dialects::unknown_caller(
        "192.0.2.1".parse().unwrap(),
        &GuestRequest::new(Method::GET, "/v1/instance"),
        &settings,
    );
    assert_eq!((unknown.status.as_u16(), text(&unknown)), (404, r#"{"errors":[{"reason":"Not found"}]}"#.to_owned()));
    // A listener bound to a dialect the instance has not enabled answers that dialect's 404.
    let only_ec2 =
        Instance::parse(&json!({"id": "i-1", "dialects": {"enabled": ["ec2"]}}), &Limits::default()).unwrap();
    let request = GuestRequest::new(Method::GET, "/conf").on_listener_of(Dialect::Scaleway).from_port(5);
    let response = route(&Subject::new(&only_ec2), &request, &context);
    assert_eq!((response.status.as_u16(), text(&response)), (404, "Not Found\n".to_owned()));
}
