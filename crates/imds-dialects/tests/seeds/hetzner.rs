//! Hetzner: `/hetzner/v1/metadata`, its keys, `private-networks` and `userdata`.

use serde_json::json;

use super::{body, full, full_doc, get, golden, minimal, ok_body, parse, ED, USER_DATA};

#[test]
fn metadata_of_the_full_fixture() {
    golden("hetzner", "metadata.yaml", &ok_body(&full(), "/hetzner/v1/metadata"));
}

#[test]
fn metadata_of_the_minimal_fixture() {
    golden("hetzner", "metadata-minimal.yaml", &ok_body(&minimal(), "/hetzner/v1/metadata"));
}

#[test]
fn private_networks_of_the_full_fixture() {
    golden("hetzner", "private-networks.yaml", &ok_body(&full(), "/hetzner/v1/metadata/private-networks"));
}

#[test]
fn keys_are_served_one_by_one() {
    let instance = parse(json!({"id": "4711", "hostname": "h1", "ssh_keys": [ED]}));
    assert_eq!(ok_body(&instance, "/hetzner/v1/metadata/instance-id"), "4711");
    assert_eq!(ok_body(&instance, "/hetzner/v1/metadata/hostname"), "h1");
    assert_eq!(ok_body(&instance, "/hetzner/v1/metadata/public-keys"), format!("- \"{ED}\"\n"));
    assert_eq!(ok_body(&full(), "/hetzner/v1/metadata/public-ipv4"), "203.0.113.10");
    for path in
        ["/hetzner/v1/metadata/nope", "/hetzner/v1/metadata/hostname/x", "/hetzner/v1/other", "/hetzner/v2/metadata"]
    {
        let response = get(&instance, path);
        assert_eq!(response.status, 404, "{path}");
        assert_eq!(body(&response), "404 page not found\n");
    }
}

#[test]
fn userdata_is_raw_and_empty_when_absent() {
    assert_eq!(ok_body(&full(), "/hetzner/v1/userdata"), USER_DATA);
    assert_eq!(ok_body(&minimal(), "/hetzner/v1/userdata"), "");
}

#[test]
fn the_override_block_wins() {
    let mut doc = full_doc();
    doc["dialects"] = json!({"hetzner": {
        "instance-id": 42,
        "network-sysconfig": "DEVICE=eth0",
        "private-networks": [{"ip": "10.1.0.2", "network_id": 7}],
        "availability-zone": null
    }});
    let instance = parse(doc);
    assert_eq!(ok_body(&instance, "/hetzner/v1/metadata/instance-id"), "42");
    assert_eq!(ok_body(&instance, "/hetzner/v1/metadata/network-sysconfig"), "DEVICE=eth0");
    assert_eq!(
        ok_body(&instance, "/hetzner/v1/metadata/private-networks"),
        "- \"ip\": \"10.1.0.2\"\n  \"network_id\": 7\n"
    );
    assert_eq!(get(&instance, "/hetzner/v1/metadata/availability-zone").status, 404);
    let metadata = ok_body(&instance, "/hetzner/v1/metadata");
    assert!(metadata.contains("\"instance-id\": 42\n"), "{metadata}");
    assert!(!metadata.contains("private-networks"), "{metadata}");
}
