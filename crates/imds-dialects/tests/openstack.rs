//! The OpenStack dialect through `route`, as the server calls it: listings, every file at the
//! versions that have it, the password protocol, overrides, and golden files for long bodies
//! (under `tests/data/openstack/`; `IMDS_UPDATE_GOLDEN=1` rewrites them from the output).

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use base64::Engine as _;
use http::{header, Method, StatusCode};
use imds_dialects::token::TokenKey;
use imds_dialects::{openstack, route, Context, GuestRequest, GuestResponse, Subject};
use imds_model::{GuestState, Instance, Limits};
use serde_json::{json, Value};

const ALICE: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb2bJ0yYzUeC7t0xv1kq0vO3cVtZ0b8Vz3XcWqTqH6m alice@example";
const BOB: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 bob@desk";
/// 2027-01-15: every dated version is in the past.
const NOW: u64 = 1_800_000_000;

fn parse(doc: Value) -> Instance {
    Instance::parse(&doc, &Limits::default()).unwrap()
}

/// Everything OpenStack renders: two interfaces (one on a VLAN, one dual-stack), routes, name
/// servers, two keys, tags, an account, binary user data and vendor data.
fn full_doc() -> Value {
    json!({
        "id": "web-1",
        "name": "Web server 1",
        "hostname": "web-1",
        "domain": "example.internal",
        "ipv4": ["192.0.2.10"],
        "mac": ["02:00:00:00:00:0b"],
        "zone": "az-1",
        "launch_index": 2,
        "account": {"id": "4f1c2d3e5a6b7c8d9e0f1a2b3c4d5e6f", "name": "web"},
        "tags": {"role": "web", "env": "prod"},
        "ssh_keys": [ALICE, {"key": BOB, "name": "bob-desk"}],
        "user_data": {"base64": "H4sIAAAAAAAA/0vOzy0oSi0uTk1RSEksSQQAl6NJFQwAAAA="},
        "vendor_data": "#cloud-config\npackages: [htop]\n",
        "network": {
            "interfaces": [
                {
                    "mac": "02:00:00:00:00:0b",
                    "mtu": 9000,
                    "ipv4": [{"address": "10.0.0.11", "prefix": 24, "gateway": "10.0.0.1"}],
                    "ipv6": [{"address": "2001:db8::b", "prefix": 64, "gateway": "2001:db8::1"}]
                },
                {"mac": "02:00:00:00:00:0c", "vlan": 42, "dhcp4": true}
            ],
            "nameservers": ["10.0.0.2", "2001:db8::53"],
            "routes": [{"to": "192.168.0.0/16", "via": "10.0.0.254"}, {"to": "172.16.0.0/12", "via": "10.9.9.9"}]
        }
    })
}

fn full() -> Instance {
    parse(full_doc())
}

fn minimal() -> Instance {
    parse(json!({"id": "i-minimal", "mac": ["02:00:00:00:00:aa"]}))
}

fn context() -> Context<'static> {
    context_at(NOW)
}

fn context_at(now: u64) -> Context<'static> {
    static KEY: std::sync::LazyLock<TokenKey> = std::sync::LazyLock::new(|| TokenKey::from_bytes([9; 32]));
    Context::new(&KEY, now)
}

fn send_with(subject: &Subject<'_>, request: GuestRequest) -> GuestResponse {
    route(subject, &request, &context())
}

fn get(instance: &Instance, path: &str) -> GuestResponse {
    send_with(&Subject::new(instance), GuestRequest::new(Method::GET, path))
}

fn body(response: &GuestResponse) -> &str {
    std::str::from_utf8(&response.body).unwrap()
}

fn content_type(response: &GuestResponse) -> &str {
    response.header(&header::CONTENT_TYPE).unwrap().to_str().unwrap()
}

fn ok_json(instance: &Instance, path: &str) -> Value {
    let response = get(instance, path);
    assert_eq!(response.status, StatusCode::OK, "{path}: {}", body(&response));
    serde_json::from_slice(&response.body).unwrap()
}

fn assert_not_found(response: &GuestResponse, what: &str) {
    assert_eq!(response.status, StatusCode::NOT_FOUND, "{what}");
    assert_eq!(content_type(response), "text/html; charset=UTF-8", "{what}");
    assert!(body(response).contains("<title>404 Not Found</title>"), "{what}: {}", body(response));
}

/// Compares `actual` with golden file `name`, or rewrites it when `IMDS_UPDATE_GOLDEN=1`.
fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/openstack").join(name);
    if std::env::var_os("IMDS_UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with IMDS_UPDATE_GOLDEN=1 to create it)", path.display()));
    assert_eq!(expected, actual, "{} differs from the output", path.display());
}

/// A JSON body pretty-printed for a golden file, `random_seed` (checked on its own) replaced.
fn golden_json(name: &str, mut value: Value) {
    if let Some(seed) = value.get_mut("random_seed") {
        *seed = json!("<512 bytes, base64>");
    }
    golden(name, &(serde_json::to_string_pretty(&value).unwrap() + "\n"));
}

#[test]
fn the_root_lists_versions_up_to_today_then_latest() {
    let instance = full();
    for path in ["/openstack", "/openstack/", "/openstack//"] {
        let response = get(&instance, path);
        assert_eq!(response.status, StatusCode::OK, "{path}");
        assert_eq!(content_type(&response), "text/plain; charset=UTF-8");
        golden("versions.txt", &(body(&response).to_owned() + "\n"));
    }
    // On 2020-01-01 the 2020 and 2025 versions are still in the future.
    let early =
        route(&Subject::new(&instance), &GuestRequest::new(Method::GET, "/openstack"), &context_at(1_577_836_800));
    assert!(body(&early).ends_with("2018-08-27\nlatest"), "{}", body(&early));
}

#[test]
fn each_version_lists_the_files_it_has() {
    let instance = full();
    let cases = [
        ("2012-08-10", "meta_data.json\nuser_data"),
        ("2013-04-04", "meta_data.json\nuser_data\npassword"),
        ("2013-10-17", "meta_data.json\nuser_data\npassword\nvendor_data.json"),
        ("2015-10-15", "meta_data.json\nuser_data\npassword\nvendor_data.json\nnetwork_data.json"),
        ("2018-08-27", "meta_data.json\nuser_data\npassword\nvendor_data.json\nnetwork_data.json\nvendor_data2.json"),
        ("latest", "meta_data.json\nuser_data\npassword\nvendor_data.json\nnetwork_data.json\nvendor_data2.json"),
    ];
    for (version, listing) in cases {
        for path in [format!("/openstack/{version}"), format!("/openstack/{version}/")] {
            let response = get(&instance, &path);
            assert_eq!((response.status, body(&response)), (StatusCode::OK, listing), "{path}");
        }
    }
    // Without user data the file is neither listed nor served.
    let response = get(&minimal(), "/openstack/latest");
    assert!(!body(&response).contains("user_data"), "{}", body(&response));
    assert_not_found(&get(&minimal(), "/openstack/latest/user_data"), "user_data without user data");
}

#[test]
fn unknown_versions_files_and_paths_are_nova_404s() {
    let instance = full();
    for path in [
        "/openstack/2012-01-01",
        "/openstack/2012-01-01/meta_data.json",
        "/openstack/latest/nope.json",
        "/openstack/latest/meta_data.json/uuid",
        "/openstack/2012-08-10/password",
        "/openstack/2013-04-04/vendor_data.json",
        "/openstack/2013-10-17/network_data.json",
        "/openstack/2016-06-30/vendor_data2.json",
        "/openstack/content",
        "/openstack/content/0000",
        "/openstack/..",
    ] {
        assert_not_found(&get(&instance, path), path);
    }
}

#[test]
fn meta_data_json_of_the_full_record() {
    let response = get(&full(), "/openstack/latest/meta_data.json");
    assert_eq!(content_type(&response), "application/json");
    let doc: Value = serde_json::from_slice(&response.body).unwrap();
    golden_json("meta_data-full.json", doc);
}

#[test]
fn meta_data_json_of_a_minimal_record() {
    golden_json("meta_data-minimal.json", ok_json(&minimal(), "/openstack/latest/meta_data.json"));
}

#[test]
fn meta_data_json_grows_with_the_version() {
    let instance = full();
    let keys = |version: &str| -> Vec<String> {
        ok_json(&instance, &format!("/openstack/{version}/meta_data.json"))
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    let folsom = keys("2012-08-10");
    assert_eq!(
        folsom,
        ["uuid", "meta", "public_keys", "keys", "hostname", "name", "launch_index", "availability_zone"]
    );
    assert!(keys("2013-04-04").contains(&"random_seed".to_owned()));
    assert!(!keys("2013-10-17").contains(&"project_id".to_owned()));
    assert!(keys("2015-10-15").contains(&"project_id".to_owned()));
    assert!(!keys("2015-10-15").contains(&"devices".to_owned()));
    assert!(keys("2016-06-30").contains(&"devices".to_owned()));
    assert!(!keys("2018-08-27").contains(&"dedicated_cpus".to_owned()));
    assert!(keys("2020-10-14").contains(&"dedicated_cpus".to_owned()));
}

#[test]
fn the_random_seed_is_512_bytes_that_change_every_second() {
    let instance = full();
    let seed_at = |now: u64| {
        let request = GuestRequest::new(Method::GET, "/openstack/latest/meta_data.json");
        let response = route(&Subject::new(&instance), &request, &context_at(now));
        let doc: Value = serde_json::from_slice(&response.body).unwrap();
        base64::engine::general_purpose::STANDARD.decode(doc["random_seed"].as_str().unwrap()).unwrap()
    };
    let (first, second) = (seed_at(NOW), seed_at(NOW + 1));
    assert_eq!(first.len(), 512);
    assert_ne!(first, second);
    assert_eq!(first, seed_at(NOW), "a pure function of key, instance and time");
}

#[test]
fn uuids_pass_through_or_derive_deterministically() {
    let given = parse(json!({"id": "6F0B5A3E-1C2D-4E5F-8A9B-0C1D2E3F4A5B"}));
    assert_eq!(openstack::instance_uuid(&given).to_string(), "6f0b5a3e-1c2d-4e5f-8a9b-0c1d2e3f4a5b");
    let derived = openstack::instance_uuid(&full());
    assert_eq!(derived.get_version_num(), 5);
    assert_eq!(derived, openstack::instance_uuid(&full()));
    assert_ne!(derived, openstack::instance_uuid(&minimal()));
    assert_eq!(ok_json(&full(), "/openstack/latest/meta_data.json")["uuid"], json!(derived.to_string()));
}

#[test]
fn user_data_is_served_byte_for_byte() {
    let instance = full();
    let response = get(&instance, "/openstack/2012-08-10/user_data");
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(content_type(&response), "text/plain; charset=UTF-8");
    assert_eq!(response.body.as_ref(), instance.user_data.as_ref().unwrap().as_bytes());
    assert_eq!(&response.body[..2], &[0x1f, 0x8b], "gzip bytes, not text");
}

#[test]
fn network_data_json_of_the_full_record() {
    let response = get(&full(), "/openstack/latest/network_data.json");
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(content_type(&response), "text/plain; charset=UTF-8");
    golden_json("network_data-full.json", serde_json::from_slice(&response.body).unwrap());
}

#[test]
fn network_data_json_derived_from_the_first_mac_uses_dhcp() {
    let doc = ok_json(&minimal(), "/openstack/latest/network_data.json");
    golden_json("network_data-minimal.json", doc.clone());
    assert_eq!(doc["links"][0]["ethernet_mac_address"], "02:00:00:00:00:aa");
    assert_eq!(doc["networks"][0]["type"], "ipv4_dhcp");
    let bare = parse(json!({"id": "i-bare"}));
    assert_eq!(
        ok_json(&bare, "/openstack/latest/network_data.json"),
        json!({"links": [], "networks": [], "services": []})
    );
}

#[test]
fn vendor_data_carries_the_record_s_vendor_data_for_cloud_init() {
    let instance = full();
    assert_eq!(
        ok_json(&instance, "/openstack/latest/vendor_data.json"),
        json!({"cloud-init": "#cloud-config\npackages: [htop]\n"})
    );
    assert_eq!(ok_json(&instance, "/openstack/latest/vendor_data2.json"), json!({}));
    assert_eq!(ok_json(&minimal(), "/openstack/latest/vendor_data.json"), json!({}));
}

#[test]
fn overrides_win_over_derived_values() {
    let mut doc = full_doc();
    doc["dialects"] = json!({"openstack": {
        "uuid": "0b8f3a1c-2d4e-4f60-8a1b-2c3d4e5f6a7b",
        "project_id": "p-override",
        "availability_zone": "zone-b",
        "meta": {"dsmode": "net"},
        "devices": [{"type": "nic", "bus": "pci", "address": "0000:00:03.0", "mac": "02:00:00:00:00:0b", "tags": ["a"]}],
        "dedicated_cpus": [2, 3],
        "vendor_data": {"static": 1},
        "vendor_data2": {"static": {"x": "y"}},
        "network_data": {"links": [], "networks": [], "services": [{"type": "dns", "address": "9.9.9.9"}]},
        "bogus": true
    }});
    let instance = parse(doc);
    let meta = ok_json(&instance, "/openstack/latest/meta_data.json");
    assert_eq!(meta["uuid"], "0b8f3a1c-2d4e-4f60-8a1b-2c3d4e5f6a7b");
    assert_eq!(meta["project_id"], "p-override");
    assert_eq!(meta["availability_zone"], "zone-b");
    assert_eq!(meta["meta"], json!({"dsmode": "net"}));
    assert_eq!(meta["devices"][0]["tags"], json!(["a"]));
    assert_eq!(meta["dedicated_cpus"], json!([2, 3]));
    assert_eq!(ok_json(&instance, "/openstack/latest/vendor_data.json"), json!({"static": 1}));
    assert_eq!(ok_json(&instance, "/openstack/latest/vendor_data2.json"), json!({"static": {"x": "y"}}));
    assert_eq!(ok_json(&instance, "/openstack/latest/network_data.json")["services"][0]["address"], "9.9.9.9");
    let problems =
        openstack::check_overrides(instance.dialects.override_for("openstack").unwrap().as_object().unwrap());
    assert_eq!(problems.iter().map(|(key, _)| key.as_str()).collect::<Vec<_>>(), ["bogus"]);
}

#[test]
fn the_password_is_write_once_guest_state() {
    let instance = full();
    let empty = Subject::new(&instance);
    let read = send_with(&empty, GuestRequest::new(Method::GET, "/openstack/latest/password"));
    assert_eq!((read.status, body(&read)), (StatusCode::OK, ""));

    let post =
        send_with(&empty, GuestRequest::new(Method::POST, "/openstack/2013-04-04/password").with_body("c2VjcmV0"));
    assert_eq!(post.status, StatusCode::OK);
    assert!(post.body.is_empty());
    let write = post.write.as_ref().expect("a POST carries a write");
    assert_eq!(write.write.dialect, "openstack");
    assert_eq!(write.write.path, ["password"]);
    assert_eq!(write.write.value, Some(json!("c2VjcmV0")));
    assert!(write.write.only_if_absent);
    assert_eq!(write.conflict.status, StatusCode::CONFLICT);

    let state = GuestState::from_bytes(br#"{"openstack":{"password":"c2VjcmV0"}}"#).unwrap();
    let set = Subject { state: &state, ..Subject::new(&instance) };
    let read = send_with(&set, GuestRequest::new(Method::GET, "/openstack/latest/password"));
    assert_eq!((read.status, body(&read)), (StatusCode::OK, "c2VjcmV0"));
    let again = send_with(&set, GuestRequest::new(Method::POST, "/openstack/latest/password").with_body("other"));
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.write.is_none());
    assert!(body(&again).contains("409 Conflict"));
}

#[test]
fn bad_password_requests_are_refused_and_write_nothing() {
    let instance = full();
    let subject = Subject::new(&instance);
    let path = "/openstack/latest/password";
    let cases = [
        (GuestRequest::new(Method::POST, path).with_body(vec![b'a'; 1021]), "Request is too large."),
        (GuestRequest::new(Method::POST, path).with_body(vec![0xff, 0xfe]), "UTF-8"),
        (GuestRequest::new(Method::PUT, path).with_body("x"), "GET and POST only are supported."),
        (GuestRequest::new(Method::DELETE, path), "GET and POST only are supported."),
    ];
    for (request, message) in cases {
        let response = send_with(&subject, request);
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{message}");
        assert!(body(&response).contains(message), "{}", body(&response));
        assert!(response.write.is_none());
    }
    let at_limit = send_with(&subject, GuestRequest::new(Method::POST, path).with_body(vec![b'a'; 1020]));
    assert_eq!(at_limit.status, StatusCode::OK);
    assert!(at_limit.write.is_some());
    let empty = send_with(&subject, GuestRequest::new(Method::POST, path));
    assert_eq!(empty.status, StatusCode::OK);
    assert!(empty.write.is_none(), "an empty password stores nothing, as in Nova");
}

#[test]
fn a_disabled_openstack_answers_as_if_absent() {
    let mut doc = full_doc();
    doc["dialects"] = json!({"enabled": ["ec2"]});
    let instance = parse(doc);
    let response = get(&instance, "/openstack/latest/meta_data.json");
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert_eq!(body(&response), body(&get(&instance, "/no/such/path")), "EC2's not-found page");
    assert_eq!(get(&instance, "/latest/meta-data/instance-id").status, StatusCode::OK);
}

#[test]
fn the_story_matches_ec2() {
    let instance = full();
    let meta = ok_json(&instance, "/openstack/latest/meta_data.json");
    let ec2_names = body(&get(&instance, "/latest/meta-data/public-keys/")).to_owned();
    let names: Vec<String> =
        meta["keys"].as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ec2_names, format!("0={}\n1={}", names[0], names[1]));
    assert_eq!(meta["public_keys"]["bob-desk"], BOB);
    let ec2_user_data = get(&instance, "/latest/user-data");
    assert_eq!(get(&instance, "/openstack/latest/user_data").body, ec2_user_data.body);
}
