//! Vultr: `/v1.json`, and the `/latest/` tree when the instance puts `vultr` before `ec2`.

use serde_json::{json, Value};

use super::{body, enabling, full, full_doc, get, golden, ok_body, parse, ED, RSA, USER_DATA};

#[test]
fn the_document_of_the_full_fixture() {
    golden("vultr", "v1.json", &ok_body(&full(), "/v1.json"));
}

#[test]
fn the_document_of_the_minimal_fixture() {
    golden("vultr", "v1-minimal.json", &ok_body(&parse(json!({"id": "vm-minimal"})), "/v1.json"));
}

#[test]
fn interfaces_carry_what_cloud_init_s_helper_indexes() {
    let doc: Value = serde_json::from_str(&ok_body(&full(), "/v1.json")).unwrap();
    let interfaces = doc["interfaces"].as_array().unwrap();
    assert_eq!(interfaces.len(), 2);
    for interface in interfaces {
        assert!(
            interface["ipv4"]["additional"].is_array() && interface["ipv6"]["additional"].is_array(),
            "{interface}"
        );
    }
    assert_eq!(interfaces[1]["ipv4"]["additional"], json!([{"address": "10.0.0.12", "netmask": "255.255.0.0"}]));
    assert_eq!(doc["region"], json!({"regioncode": "fra1"}));
}

#[test]
fn the_latest_tree_is_vultr_s_only_when_vultr_comes_first() {
    let vultr = enabling(full_doc(), &["vultr", "ec2"]);
    golden("vultr", "latest-meta-data.txt", &ok_body(&vultr, "/latest/meta-data/"));
    assert_eq!(ok_body(&vultr, "/latest"), "meta-data/\nuser-data");
    assert_eq!(ok_body(&vultr, "/latest/user-data"), USER_DATA);
    assert_eq!(ok_body(&vultr, "/latest/meta-data/public-keys"), format!("{ED}\n{RSA}"));
    let uuid = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, b"imds:instance/web-1-prod").to_string();
    assert_eq!(ok_body(&vultr, "/latest/meta-data/instance-id"), uuid);
    for path in ["/latest/meta-data/nope", "/latest/user-data/x", "/latestx"] {
        let response = get(&vultr, path);
        assert_eq!(response.status, 404, "{path}");
    }
    // EC2 first (or everything enabled): EC2's tree, with its ids.
    assert_eq!(ok_body(&full(), "/latest/meta-data/instance-id"), "web-1-prod");
    assert_eq!(ok_body(&enabling(full_doc(), &["ec2", "vultr"]), "/latest/meta-data/instance-id"), "web-1-prod");
    // Dated versions are EC2's alone.
    let response = get(&enabling(full_doc(), &["vultr"]), "/2009-04-04/meta-data/");
    assert_eq!(response.status, 404);
    assert!(body(&response).contains("404 - Not Found"));
}
