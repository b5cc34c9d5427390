//! UpCloud: `/metadata/v1.json`, served when the instance puts `upcloud` before `digitalocean`.

use serde_json::{json, Value};

use super::{body, enabling, full_doc, get, golden, ok_body, parse};

#[test]
fn the_document_of_the_full_fixture() {
    golden("upcloud", "v1.json", &ok_body(&enabling(full_doc(), &["upcloud"]), "/metadata/v1.json"));
}

#[test]
fn the_document_of_the_minimal_fixture() {
    let minimal = enabling(json!({"id": "vm-minimal"}), &["upcloud"]);
    golden("upcloud", "v1-minimal.json", &ok_body(&minimal, "/metadata/v1.json"));
}

#[test]
fn the_shared_path_is_digitalocean_s_unless_upcloud_comes_first() {
    let all = parse(full_doc());
    let doc: Value = serde_json::from_str(&ok_body(&all, "/metadata/v1.json")).unwrap();
    assert!(doc.get("droplet_id").is_some(), "{doc}");
    let both = enabling(full_doc(), &["digitalocean", "upcloud"]);
    assert!(ok_body(&both, "/metadata/v1.json").contains("droplet_id"));
    let upcloud_first = enabling(full_doc(), &["upcloud", "digitalocean"]);
    let doc: Value = serde_json::from_str(&ok_body(&upcloud_first, "/metadata/v1.json")).unwrap();
    assert_eq!(doc["cloud_name"], "upcloud");
    // DigitalOcean's own tree stays DigitalOcean's.
    assert_eq!(ok_body(&upcloud_first, "/metadata/v1/hostname"), "web-1.example.internal");
    // Enabling UpCloud alone leaves DigitalOcean's tree unserved: EC2's not-found.
    let only = enabling(full_doc(), &["upcloud"]);
    let response = get(&only, "/metadata/v1/hostname");
    assert_eq!(response.status, 404);
    assert!(body(&response).contains("404 - Not Found"));
}

#[test]
fn the_instance_id_is_the_uuid_and_overrides_replace_keys() {
    let mut doc = full_doc();
    doc["dialects"] = json!({"enabled": ["upcloud"], "upcloud": {"storage": null, "region": "fi-hel2"}});
    let answer: Value = serde_json::from_str(&ok_body(&parse(doc), "/metadata/v1.json")).unwrap();
    // UUIDv5 of `imds:instance/web-1-prod` (rule R1), as OpenStack's uuid and Azure's vmId.
    let uuid = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, b"imds:instance/web-1-prod").to_string();
    assert_eq!(answer["instance_id"], uuid);
    assert_eq!(answer["region"], "fi-hel2");
    assert!(answer.get("storage").is_none());
}
