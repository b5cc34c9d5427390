//! The GCE dialect through its public API: headers, shapes, query parameters, guest attributes
//! and golden files for long bodies (`tests/data/gce/`; `IMDS_UPDATE_GOLDEN=1` rewrites them).

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use http::{header, HeaderName, HeaderValue, Method, StatusCode};
use imds_dialects::token::TokenKey;
use imds_dialects::{gce, route, Context, GuestRequest, GuestResponse, Subject};
use imds_model::{GuestState, Instance, Limits, StateWrite};
use serde_json::{json, Value};

const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb2bJ0yYzUeC7t0xv1kq0vO3cVtZ0b8Vz3XcWqTqH6m alice@example";
const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 bob@desk";

fn parse(doc: Value) -> Instance {
    Instance::parse(&doc, &Limits::default()).unwrap()
}

/// A record using every field GCE renders, plus an override block.
fn full() -> Instance {
    parse(json!({
        "id": "4815162342",
        "hostname": "web-1",
        "domain": "example.internal",
        "ipv4": ["10.0.0.11"],
        "mac": ["02:00:00:00:00:0b"],
        "network": {
            "interfaces": [
                {"mac": "02:00:00:00:00:0b", "mtu": 1500, "public_ipv4": "203.0.113.7",
                 "ipv4": [{"address": "10.0.0.11", "prefix": 24, "gateway": "10.0.0.1"}]},
                {"mac": "02:00:00:00:00:0c", "ipv4": [{"address": "10.1.0.5", "prefix": 16}]}
            ],
            "nameservers": ["10.0.0.2", "fd00::2"]
        },
        "user_data": "#cloud-config\nruncmd: [true]\n",
        "ssh_keys": [ED, {"key": RSA, "user": "bob", "expires": "2027-01-01T00:00:00Z"}],
        "default_user": "ubuntu",
        "zone": "europe-west1-b",
        "instance_type": "e2-small",
        "image_id": "debian-13",
        "account": {"id": "123456789012", "name": "acme-prod"},
        "iam_role": "app-role",
        "dialects": {"gce": {
            "tags": ["http-server", "ssh"],
            "attributes": {"startup-script": "#!/bin/sh\necho hi\n", "enable-guest-attributes": "TRUE"},
            "project_attributes": {"enable-oslogin": "FALSE", "ssh-keys": "carol:ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 carol"},
            "description": "the web server"
        }}
    }))
}

/// A record with only an id.
fn minimal() -> Instance {
    parse(json!({"id": "i-0abc"}))
}

fn context() -> Context<'static> {
    static KEY: std::sync::LazyLock<TokenKey> = std::sync::LazyLock::new(|| TokenKey::from_bytes([7; 32]));
    Context::new(&KEY, 1_800_000_000)
}

fn flavored(request: GuestRequest) -> GuestRequest {
    request.with_header(HeaderName::from_static("metadata-flavor"), HeaderValue::from_static("Google"))
}

fn send_with(instance: &Instance, state: &GuestState, request: GuestRequest) -> GuestResponse {
    let subject = Subject { instance, mmds: None, state, events: None, cache: None };
    route(&subject, &request, &context())
}

fn get(instance: &Instance, target: &str) -> GuestResponse {
    send_with(instance, &GuestState::default(), flavored(GuestRequest::new(Method::GET, target)))
}

fn body(response: &GuestResponse) -> &str {
    std::str::from_utf8(&response.body).unwrap()
}

fn header<'a>(response: &'a GuestResponse, name: &str) -> Option<&'a str> {
    response.header(&HeaderName::from_bytes(name.as_bytes()).unwrap()).map(|v| v.to_str().unwrap())
}

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/gce").join(name);
    if std::env::var_os("IMDS_UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with IMDS_UPDATE_GOLDEN=1 to create it)", path.display()));
    assert_eq!(expected, actual, "{} differs", path.display());
}

fn ok_body(instance: &Instance, target: &str) -> String {
    let response = get(instance, target);
    assert_eq!(response.status, StatusCode::OK, "{target}: {}", body(&response));
    body(&response).to_owned()
}

#[test]
fn golden_recursive_json_text_and_listings() {
    let full = full();
    golden("full-recursive.json", &ok_body(&full, "/computeMetadata/v1/?recursive=true"));
    golden("full-recursive.txt", &ok_body(&full, "/computeMetadata/v1/?recursive=true&alt=text"));
    golden("full-instance-listing.txt", &ok_body(&full, "/computeMetadata/v1/instance/"));
    golden("minimal-recursive.json", &ok_body(&minimal(), "/computeMetadata/v1/?recursive=TRUE"));
}

#[test]
fn every_answer_carries_googles_headers_and_every_200_an_etag_of_its_body() {
    let full = full();
    for target in ["/computeMetadata/v1/instance/id", "/computeMetadata/v1/nope", "/computeMetadata/v1/instance"] {
        let response = get(&full, target);
        assert_eq!(header(&response, "metadata-flavor"), Some("Google"), "{target}");
        assert_eq!(header(&response, "server"), Some("Metadata Server for VM"), "{target}");
        assert_eq!(header(&response, "x-xss-protection"), Some("0"), "{target}");
        assert_eq!(header(&response, "x-frame-options"), Some("SAMEORIGIN"), "{target}");
        assert_eq!(header(&response, "etag").is_some(), response.status == StatusCode::OK, "{target}");
    }
    let response = get(&full, "/computeMetadata/v1/instance/name");
    assert_eq!(header(&response, "etag"), Some(gce::etag(b"web-1").as_str()));
    assert_eq!(header(&response, "etag").unwrap().len(), 16);
    assert_eq!(header(&response, "content-type"), Some("application/text"));
}

#[test]
fn the_flavor_header_is_required_and_forwarded_requests_are_refused() {
    let full = full();
    let bare =
        send_with(&full, &GuestState::default(), GuestRequest::new(Method::GET, "/computeMetadata/v1/instance/id"));
    assert_eq!(bare.status, StatusCode::FORBIDDEN);
    assert!(body(&bare).contains("Missing Metadata-Flavor:Google header"), "{}", body(&bare));
    assert_eq!(header(&bare, "metadata-flavor"), Some("Google"));
    let wrong = send_with(
        &full,
        &GuestState::default(),
        GuestRequest::new(Method::GET, "/computeMetadata/v1/instance/id")
            .with_header(HeaderName::from_static("metadata-flavor"), HeaderValue::from_static("google-ish")),
    );
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let forwarded = send_with(
        &full,
        &GuestState::default(),
        flavored(GuestRequest::new(Method::GET, "/computeMetadata/v1/instance/id"))
            .with_header(HeaderName::from_static("x-forwarded-for"), HeaderValue::from_static("10.9.9.9")),
    );
    assert_eq!(forwarded.status, StatusCode::FORBIDDEN);
}

#[test]
fn leaves_listings_and_redirects() {
    let full = full();
    let min = minimal();
    let cases: &[(&Instance, &str, u16, &str, &str)] = &[
        (&full, "/computeMetadata/", 200, "application/text", "v1/\n"),
        (&full, "/computeMetadata/v1/", 200, "application/text", "instance/\nproject/\n"),
        (&full, "/computeMetadata/v1/instance/id", 200, "application/text", "4815162342"),
        (&full, "/computeMetadata/v1/instance/name", 200, "application/text", "web-1"),
        (&full, "/computeMetadata/v1/instance/hostname", 200, "application/text", "web-1.example.internal"),
        (&full, "/computeMetadata/v1/instance/zone", 200, "application/text", "projects/123456789012/zones/europe-west1-b"),
        (&full, "/computeMetadata/v1/instance/machine-type", 200, "application/text", "projects/123456789012/machineTypes/e2-small"),
        (&full, "/computeMetadata/v1/instance/image", 200, "application/text", "projects/acme-prod/global/images/debian-13"),
        (&full, "/computeMetadata/v1/instance/tags", 200, "application/json", "[\"http-server\",\"ssh\"]"),
        (&full, "/computeMetadata/v1/instance/id?alt=json", 200, "application/json", "4815162342"),
        (&full, "/computeMetadata/v1/instance/name?alt=json", 200, "application/json", "\"web-1\""),
        (&full, "/computeMetadata/v1/instance/maintenance-event", 200, "application/text", "NONE"),
        (&full, "/computeMetadata/v1/instance/preempted", 200, "application/text", "FALSE"),
        (&full, "/computeMetadata/v1/instance/attributes/ssh-keys", 200, "application/text",
            "ubuntu:ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb2bJ0yYzUeC7t0xv1kq0vO3cVtZ0b8Vz3XcWqTqH6m alice@example\n\
             bob:ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 google-ssh {\"userName\":\"bob\",\"expireOn\":\"2027-01-01T00:00:00Z\"}"),
        (&full, "/computeMetadata/v1/instance/attributes/user-data", 200, "application/text", "#cloud-config\nruncmd: [true]\n"),
        (&full, "/computeMetadata/v1/instance/network-interfaces/", 200, "application/text", "0/\n1/\n"),
        (&full, "/computeMetadata/v1/instance/network-interfaces/0/access-configs/0/external-ip", 200, "application/text", "203.0.113.7"),
        (&full, "/computeMetadata/v1/instance/network-interfaces/0/gateway", 200, "application/text", "10.0.0.1"),
        (&full, "/computeMetadata/v1/instance/network-interfaces/1/subnetmask", 200, "application/text", "255.255.0.0"),
        (&full, "/computeMetadata/v1/instance/network-interfaces/0/dns-servers", 200, "application/text", "10.0.0.2\n"),
        (&full, "/computeMetadata/v1/instance/service-accounts/", 200, "application/text",
            "app-role@acme-prod.iam.gserviceaccount.com/\ndefault/\n"),
        (&full, "/computeMetadata/v1/instance/service-accounts/default/", 200, "application/text",
            "aliases\nemail\nidentity\nscopes\ntoken\n"),
        (&full, "/computeMetadata/v1/instance/service-accounts/default/email", 200, "application/text",
            "app-role@acme-prod.iam.gserviceaccount.com"),
        (&full, "/computeMetadata/v1/instance/service-accounts/default/scopes", 200, "application/text",
            "https://www.googleapis.com/auth/cloud-platform\n"),
        (&full, "/computeMetadata/v1/instance/service-accounts/default/?recursive=true", 200, "application/json",
            "{\"aliases\":[\"default\"],\"email\":\"app-role@acme-prod.iam.gserviceaccount.com\",\"scopes\":[\"https://www.googleapis.com/auth/cloud-platform\"]}"),
        (&full, "/computeMetadata/v1/instance/service-accounts/default/?alt=json", 200, "application/json",
            "[\"aliases\",\"email\",\"identity\",\"scopes\",\"token\"]"),
        (&full, "/computeMetadata/v1/project/project-id", 200, "application/text", "acme-prod"),
        (&full, "/computeMetadata/v1/project/numeric-project-id", 200, "application/text", "123456789012"),
        (&full, "/computeMetadata/v1/project/attributes/?recursive=True", 200, "application/json",
            "{\"enable-oslogin\":\"FALSE\",\"ssh-keys\":\"carol:ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 carol\"}"),
        (&full, "/computeMetadata/v1/instance/attributes/?recursive=true&alt=text", 200, "application/text",
            "enable-guest-attributes TRUE\nssh-keys ubuntu:ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb2bJ0yYzUeC7t0xv1kq0vO3cVtZ0b8Vz3XcWqTqH6m alice@example\n\
             bob:ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 google-ssh {\"userName\":\"bob\",\"expireOn\":\"2027-01-01T00:00:00Z\"}\n\
             startup-script #!/bin/sh\necho hi\n\nuser-data #cloud-config\nruncmd: [true]\n\n"),
        // Minimal: derived defaults (R1 hash id, default project/zone/machine type).
        (&min, "/computeMetadata/v1/project/project-id", 200, "application/text", "imds-project"),
        (&min, "/computeMetadata/v1/instance/zone", 200, "application/text", ""),
        (&min, "/computeMetadata/v1/instance/service-accounts/", 200, "application/text", ""),
        (&min, "/computeMetadata/v1/instance/tags", 200, "application/json", "[]"),
        (&min, "/computeMetadata/v1/instance/name", 200, "application/text", "i-0abc"),
    ];
    for (instance, target, status, content_type, expected) in cases {
        let response = get(instance, target);
        assert_eq!(response.status.as_u16(), *status, "{target}: {}", body(&response));
        assert_eq!(header(&response, "content-type"), Some(*content_type), "{target}");
        if target.ends_with("/zone") && instance.id.as_str() == "i-0abc" {
            // The project number is a hash: check the shape.
            let zone = body(&response);
            assert!(zone.starts_with("projects/") && zone.ends_with("/zones/local-a"), "{zone}");
            continue;
        }
        assert_eq!(body(&response), *expected, "{target}");
    }
    for (target, location) in [
        ("/computeMetadata/v1/instance", "/computeMetadata/v1/instance/"),
        ("/computeMetadata/v1", "/computeMetadata/v1/"),
        ("/computeMetadata", "/computeMetadata/"),
        (
            "/computeMetadata/v1/instance/attributes?recursive=true",
            "/computeMetadata/v1/instance/attributes/?recursive=true",
        ),
    ] {
        let response = get(&full, target);
        assert_eq!(response.status, StatusCode::MOVED_PERMANENTLY, "{target}");
        assert_eq!(header(&response, "location"), Some(location), "{target}");
    }
    for target in [
        "/computeMetadata/v1/instance/nope",
        "/computeMetadata/v1/instance/id/",
        "/computeMetadata/v1//instance/id",
        "/computeMetadata/v2/instance/id",
        // The role is not configured in this context (no credentials at all): no token.
        "/computeMetadata/v1/instance/service-accounts/default/token",
        "/computeMetadata/v1/instance/attributes/absent",
    ] {
        let response = get(&full, target);
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{target}");
        assert_eq!(header(&response, "content-type"), Some("text/html; charset=UTF-8"), "{target}");
    }
    // The instance id of a non-numeric record id is a stable 63-bit number.
    let id: u64 = ok_body(&min, "/computeMetadata/v1/instance/id").parse().unwrap();
    assert!(id < 1 << 63);
    assert_eq!(ok_body(&min, "/computeMetadata/v1/instance/id"), id.to_string());
}

#[test]
fn query_parameters_are_checked() {
    let full = full();
    for target in [
        "/computeMetadata/v1/instance/id?recursive=yes",
        "/computeMetadata/v1/instance/id?alt=xml",
        "/computeMetadata/v1/instance/id?wait_for_change=true&timeout_sec=0",
        "/computeMetadata/v1/instance/id?wait_for_change=true&timeout_sec=abc",
        // Plain listings cannot be waited on.
        "/computeMetadata/v1/instance/?wait_for_change=true",
    ] {
        let response = get(&full, target);
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{target}");
        assert_eq!(header(&response, "metadata-flavor"), Some("Google"), "{target}");
    }
    let wait = |target: &str| gce::wait_request(&flavored(GuestRequest::new(Method::GET, target)));
    assert_eq!(
        wait("/computeMetadata/v1/instance/id?wait_for_change=True&last_etag=abc&timeout_sec=5"),
        Some(gce::Wait { last_etag: Some("abc".into()), timeout_secs: 5 })
    );
    assert_eq!(
        wait("/computeMetadata/v1/?recursive=true&wait_for_change=true&timeout_sec=99999"),
        Some(gce::Wait { last_etag: None, timeout_secs: gce::wire::MAX_WAIT_SECS })
    );
    assert_eq!(wait("/computeMetadata/v1/instance/id?wait_for_change=false"), None);
    assert_eq!(wait("/computeMetadata/v1/instance/id"), None);
    // A valid wait renders like the plain request (the server does the waiting).
    let waited = get(&full, "/computeMetadata/v1/instance/id?wait_for_change=true&last_etag=x&timeout_sec=1");
    assert_eq!((waited.status, body(&waited)), (StatusCode::OK, "4815162342"));
}

#[test]
fn the_root_answers_google_auths_ping_with_the_flavor_header() {
    let full = full();
    let ping = get(&full, "/");
    assert_eq!(ping.status, StatusCode::OK);
    assert_eq!(header(&ping, "metadata-flavor"), Some("Google"));
    assert!(body(&ping).ends_with("latest"), "EC2's version list: {}", body(&ping));
    let plain = send_with(&full, &GuestState::default(), GuestRequest::new(Method::GET, "/"));
    assert_eq!(header(&plain, "metadata-flavor"), None);
}

#[test]
fn guest_attributes_are_written_through_state_and_read_back() {
    let full = full();
    let put = send_with(
        &full,
        &GuestState::default(),
        flavored(GuestRequest::new(Method::PUT, "/computeMetadata/v1/instance/guest-attributes/hostkeys/ssh-ed25519"))
            .with_body("AAAA key"),
    );
    assert_eq!(put.status, StatusCode::OK);
    assert_eq!(header(&put, "etag"), Some(gce::etag(b"").as_str()), "every 200 has an ETag");
    let write = put.write.as_ref().expect("a PUT carries a write");
    assert_eq!(
        write.write,
        StateWrite {
            dialect: "gce".into(),
            path: vec!["guest-attributes".into(), "hostkeys".into(), "ssh-ed25519".into()],
            value: Some(json!("AAAA key")),
            only_if_absent: false,
        }
    );
    let mut state = GuestState::default();
    state.apply(&write.write).unwrap();
    let read = |target: &str| send_with(&full, &state, flavored(GuestRequest::new(Method::GET, target)));
    let key = read("/computeMetadata/v1/instance/guest-attributes/hostkeys/ssh-ed25519");
    assert_eq!((key.status, body(&key)), (StatusCode::OK, "AAAA key"));
    let ns = read("/computeMetadata/v1/instance/guest-attributes/hostkeys/");
    assert_eq!(body(&ns), "ssh-ed25519\n");
    let all = read("/computeMetadata/v1/instance/guest-attributes/?recursive=true");
    assert_eq!(body(&all), r#"{"hostkeys":{"ssh-ed25519":"AAAA key"}}"#);
    // Listed under instance/, never part of a recursive dump (a guest's write must not wake
    // its own wait on the whole tree).
    assert!(body(&read("/computeMetadata/v1/instance/")).contains("guest-attributes/\n"));
    assert!(!body(&read("/computeMetadata/v1/?recursive=true")).contains("hostkeys"));
    let delete = send_with(
        &full,
        &state,
        flavored(GuestRequest::new(
            Method::DELETE,
            "/computeMetadata/v1/instance/guest-attributes/hostkeys/ssh-ed25519",
        )),
    );
    assert_eq!(delete.write.as_ref().unwrap().write.value, None);

    for (target, status) in [
        ("/computeMetadata/v1/instance/guest-attributes/hostkeys", StatusCode::BAD_REQUEST),
        ("/computeMetadata/v1/instance/guest-attributes/bad%20ns/k", StatusCode::BAD_REQUEST),
        ("/computeMetadata/v1/instance/guest-attributes/a/b/c", StatusCode::BAD_REQUEST),
    ] {
        let response = send_with(&full, &state, flavored(GuestRequest::new(Method::PUT, target)).with_body("v"));
        assert_eq!(response.status, status, "{target}");
        assert!(response.write.is_none(), "{target}");
    }
    let huge = send_with(
        &full,
        &state,
        flavored(GuestRequest::new(Method::PUT, "/computeMetadata/v1/instance/guest-attributes/a/b"))
            .with_body(vec![b'x'; gce::wire::MAX_GUEST_ATTRIBUTE_VALUE + 1]),
    );
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Elsewhere, writes are not allowed.
    let elsewhere =
        send_with(&full, &state, flavored(GuestRequest::new(Method::PUT, "/computeMetadata/v1/instance/id")));
    assert_eq!(elsewhere.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&elsewhere, "allow"), Some("GET, HEAD"));
}

#[test]
fn guest_attributes_are_refused_unless_enabled() {
    let min = minimal();
    let put = send_with(
        &min,
        &GuestState::default(),
        flavored(GuestRequest::new(Method::PUT, "/computeMetadata/v1/instance/guest-attributes/ns/k")).with_body("v"),
    );
    assert_eq!(put.status, StatusCode::FORBIDDEN);
    assert!(put.write.is_none());
    assert_eq!(get(&min, "/computeMetadata/v1/instance/guest-attributes/").status, StatusCode::FORBIDDEN);
    assert!(!ok_body(&min, "/computeMetadata/v1/instance/").contains("guest-attributes"));
    // The project attribute enables them too.
    let project =
        parse(json!({"id": "i-1", "dialects": {"gce": {"project_attributes": {"enable-guest-attributes": "true"}}}}));
    assert_eq!(get(&project, "/computeMetadata/v1/instance/guest-attributes/").status, StatusCode::OK);
    // …unless the instance attribute says otherwise.
    let off = parse(json!({"id": "i-1", "dialects": {"gce": {
        "attributes": {"enable-guest-attributes": "FALSE"},
        "project_attributes": {"enable-guest-attributes": "TRUE"}}}}));
    assert_eq!(get(&off, "/computeMetadata/v1/instance/guest-attributes/").status, StatusCode::FORBIDDEN);
}

#[test]
fn binary_user_data_is_base64_with_its_encoding_attribute_and_overrides_apply() {
    let binary = parse(json!({"id": "42", "user_data": {"base64": "H4sIAAAAAAAA/w=="},
        "dialects": {"gce": {"attributes": {"user-data-encoding": null, "extra": "1"}, "zone": "us-east1-c", "project_id": "p", "project_number": "77"}}}));
    assert_eq!(ok_body(&binary, "/computeMetadata/v1/instance/attributes/user-data"), "H4sIAAAAAAAA/w==");
    assert_eq!(ok_body(&binary, "/computeMetadata/v1/instance/attributes/"), "extra\nuser-data\n");
    assert_eq!(ok_body(&binary, "/computeMetadata/v1/instance/id"), "42");
    assert_eq!(ok_body(&binary, "/computeMetadata/v1/instance/zone"), "projects/77/zones/us-east1-c");
    assert_eq!(ok_body(&binary, "/computeMetadata/v1/project/project-id"), "p");
    let plain_binary = parse(json!({"id": "42", "user_data": {"base64": "H4sIAAAAAAAA/w=="}}));
    assert_eq!(ok_body(&plain_binary, "/computeMetadata/v1/instance/attributes/user-data-encoding"), "base64");
}

#[test]
fn override_blocks_are_checked() {
    assert!(gce::overrides::check(&json!({"project_id": "p", "tags": ["a"]})).is_empty());
    let problems = gce::overrides::check(&json!({"tags": [1], "zonee": "x"}));
    assert_eq!(problems.len(), 2, "{problems:?}");
}

#[test]
fn a_disabled_gce_answers_like_a_missing_path() {
    let only_ec2 = parse(json!({"id": "i-1", "dialects": {"enabled": ["ec2"]}}));
    let response = get(&only_ec2, "/computeMetadata/v1/instance/id");
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert_eq!(header(&response, "metadata-flavor"), None);
    let _ = header::ETAG;
}
