//! DigitalOcean: `/metadata/v1.json` and the text tree.

use http::Method;
use imds_dialects::Settings;
use serde_json::{json, Value};

use super::{body, content_type, full, full_doc, get, golden, minimal, ok_body, parse, send, ED, RSA, USER_DATA};

#[test]
fn json_document_of_the_full_fixture() {
    let response = get(&full(), "/metadata/v1.json");
    assert_eq!(content_type(&response), "application/json");
    let doc: Value = serde_json::from_slice(&response.body).unwrap();
    golden("digitalocean", "v1.json", &(serde_json::to_string_pretty(&doc).unwrap() + "\n"));
    // Types as DigitalOcean sends them.
    assert!(doc["droplet_id"].is_u64());
    assert_eq!(doc["floating_ip"]["ipv4"]["active"], json!(true));
    assert_eq!(doc["interfaces"]["public"][0]["ipv6"]["cidr"], json!(64));
    assert_eq!(doc["features"]["dhcp_enabled"], json!(false));
}

#[test]
fn json_document_of_the_minimal_fixture() {
    let doc: Value = serde_json::from_slice(&get(&minimal(), "/metadata/v1.json").body).unwrap();
    golden("digitalocean", "v1-minimal.json", &(serde_json::to_string_pretty(&doc).unwrap() + "\n"));
}

#[test]
fn a_numeric_id_is_the_droplet_id() {
    let doc: Value = serde_json::from_slice(&get(&parse(json!({"id": "3164494"})), "/metadata/v1.json").body).unwrap();
    assert_eq!(doc["droplet_id"], json!(3_164_494));
    assert_eq!(ok_body(&parse(json!({"id": "3164494"})), "/metadata/v1/id"), "3164494");
}

#[test]
fn text_tree_leaves_and_listings() {
    let instance = full();
    golden("digitalocean", "root-listing.txt", &ok_body(&instance, "/metadata/v1/"));
    assert_eq!(ok_body(&instance, "/metadata/v1"), ok_body(&instance, "/metadata/v1/"));
    assert_eq!(ok_body(&instance, "/metadata/v1/hostname"), "web-1.example.internal");
    assert_eq!(ok_body(&instance, "/metadata/v1/user-data"), USER_DATA);
    assert_eq!(ok_body(&instance, "/metadata/v1/public-keys"), format!("{ED}\n{RSA}"));
    assert_eq!(ok_body(&instance, "/metadata/v1/region"), "fra1");
    assert_eq!(ok_body(&instance, "/metadata/v1/interfaces/"), "public/\nprivate/");
    assert_eq!(ok_body(&instance, "/metadata/v1/interfaces/public/"), "0/");
    assert_eq!(ok_body(&instance, "/metadata/v1/interfaces/public/0/"), "ipv4/\nipv6/\nmac\ntype");
    assert_eq!(ok_body(&instance, "/metadata/v1/interfaces/public/0/ipv4/"), "address\nnetmask\ngateway");
    assert_eq!(ok_body(&instance, "/metadata/v1/interfaces/public/0/ipv4/address"), "203.0.113.10");
    assert_eq!(ok_body(&instance, "/metadata/v1/interfaces/public/0/ipv6/cidr"), "64");
    assert_eq!(ok_body(&instance, "/metadata/v1/interfaces/private/0/mac"), "02:00:00:00:00:0c");
    assert_eq!(ok_body(&instance, "/metadata/v1/interfaces/private/0/type"), "private");
    assert_eq!(ok_body(&instance, "/metadata/v1/dns/nameservers"), "1.1.1.1\n2606:4700:4700::1111");
    assert_eq!(ok_body(&instance, "/metadata/v1/floating_ip/ipv4/active"), "true");
    assert_eq!(ok_body(&instance, "/metadata/v1/floating_ip/ipv4/ip_address"), "198.51.100.7");
    assert_eq!(ok_body(&instance, "/metadata/v1/tags/"), "env:prod\nweb");
    assert_eq!(ok_body(&instance, "/metadata/v1/features/dhcp_enabled"), "false");
}

#[test]
fn unknown_paths_and_json_spellings_are_404() {
    let instance = full();
    for path in [
        "/metadata/v1/nope",
        "/metadata/v1/droplet_id",
        "/metadata/v1/user_data",
        "/metadata/v1/interfaces/public/1/",
        "/metadata/v1/interfaces/public/00/",
        "/metadata/v1/interfaces/public/0/ipv4/ip_address",
        "/metadata/v1/hostname/x",
    ] {
        let response = get(&instance, path);
        assert_eq!(response.status, 404, "{path}");
        assert_eq!(body(&response), "404 page not found\n");
    }
    assert_eq!(get(&minimal(), "/metadata/v1/user-data").status, 404);
}

#[test]
fn writes_are_refused() {
    let response = send(&full(), Method::POST, "/metadata/v1.json", &Settings::DEFAULT);
    assert_eq!(response.status, 405);
    assert_eq!(response.header(&http::header::ALLOW).unwrap(), "GET, HEAD");
}

#[test]
fn the_override_block_wins() {
    let mut doc = full_doc();
    doc["dialects"] = json!({"digitalocean": {
        "id": "987",
        "auth_key": "secret",
        "features": {"dhcp_enabled": true},
        "tags": null
    }});
    let instance = parse(doc);
    let v1: Value = serde_json::from_slice(&get(&instance, "/metadata/v1.json").body).unwrap();
    assert_eq!(v1["droplet_id"], json!(987));
    assert_eq!(v1["auth_key"], json!("secret"));
    assert_eq!(v1["features"]["dhcp_enabled"], json!(true));
    assert!(v1.get("tags").is_none());
    assert_eq!(ok_body(&instance, "/metadata/v1/id"), "987");
    assert_eq!(ok_body(&instance, "/metadata/v1/auth-key"), "secret");
    assert_eq!(get(&instance, "/metadata/v1/tags/").status, 404);
}

#[test]
fn a_disabled_dialect_answers_as_if_absent() {
    let mut doc = full_doc();
    doc["dialects"] = json!({"enabled": ["ec2", "nocloud"]});
    let response = get(&parse(doc), "/metadata/v1.json");
    assert_eq!(response.status, 404);
    assert_ne!(body(&response), "404 page not found\n", "EC2's page, not DigitalOcean's");
}
