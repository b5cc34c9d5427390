//! NoCloud: the seed files under the configured prefix.

use std::borrow::Cow;

use http::Method;
use imds_dialects::Settings;
use serde_json::json;

use super::{body, content_type, full, full_doc, get, golden, minimal, ok_body, parse, send, USER_DATA};

#[test]
fn meta_data_of_the_full_fixture() {
    golden("nocloud", "meta-data.yaml", &ok_body(&full(), "/nocloud/meta-data"));
}

#[test]
fn meta_data_of_the_minimal_fixture() {
    golden("nocloud", "meta-data-minimal.yaml", &ok_body(&minimal(), "/nocloud/meta-data"));
}

#[test]
fn network_config_of_the_full_fixture() {
    golden("nocloud", "network-config.yaml", &ok_body(&full(), "/nocloud/network-config"));
}

#[test]
fn network_config_derived_from_the_identifying_mac() {
    let instance = parse(json!({"id": "a", "mac": ["02:00:00:00:00:0d"], "ipv4": ["10.0.0.5"]}));
    assert_eq!(
        ok_body(&instance, "/nocloud/network-config"),
        "\"version\": 2\n\"ethernets\":\n  \"eth0\":\n    \"match\":\n      \"macaddress\": \"02:00:00:00:00:0d\"\n    \
         \"set-name\": \"eth0\"\n    \"dhcp4\": true\n"
    );
}

#[test]
fn user_data_is_200_even_when_empty_and_optional_files_404() {
    let response = get(&full(), "/nocloud/user-data");
    assert_eq!(response.status, 200);
    assert_eq!(body(&response), USER_DATA);
    assert_eq!(content_type(&response), "application/octet-stream");
    let instance = minimal();
    assert_eq!(ok_body(&instance, "/nocloud/user-data"), "");
    assert_eq!(get(&instance, "/nocloud/vendor-data").status, 404);
    assert_eq!(get(&instance, "/nocloud/network-config").status, 404);
    assert_eq!(get(&instance, "/nocloud/other").status, 404);
    assert_eq!(ok_body(&instance, "/nocloud/"), "meta-data\nuser-data\n");
    assert_eq!(ok_body(&full(), "/nocloud/"), "meta-data\nuser-data\nvendor-data\nnetwork-config\n");
    assert_eq!(ok_body(&full(), "/nocloud/vendor-data"), "#cloud-config\npackages: [htop]\n");
}

#[test]
fn the_prefix_is_configurable() {
    let settings = Settings { nocloud_prefix: Cow::Borrowed("/seed/v1/") };
    let response = send(&full(), Method::GET, "/seed/v1/user-data", &settings);
    assert_eq!(response.status, 200);
    assert_eq!(body(&response), USER_DATA);
    // The default prefix is then EC2's (no dialect claims it).
    assert_eq!(send(&full(), Method::GET, "/nocloud/user-data", &settings).status, 404);
}

#[test]
fn the_override_block_wins() {
    let mut doc = full_doc();
    doc["dialects"] = json!({"nocloud": {
        "instance-id": "iid-web-1",
        "dsmode": "net",
        "region": null,
        "network-config": {"version": 1, "config": []}
    }});
    let instance = parse(doc);
    let meta = ok_body(&instance, "/nocloud/meta-data");
    assert!(meta.starts_with("\"instance-id\": \"iid-web-1\"\n"), "{meta}");
    assert!(meta.contains("\"dsmode\": \"net\"\n"), "{meta}");
    assert!(!meta.contains("region"), "{meta}");
    assert_eq!(ok_body(&instance, "/nocloud/network-config"), "\"version\": 1\n\"config\": []\n");
}
