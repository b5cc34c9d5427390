//! One instance through EC2, DigitalOcean, Hetzner and NoCloud: the same host name, keys, user-data
//! bytes and addresses.

use serde_json::Value;

use super::{full, get, ok_body, ED, RSA, USER_DATA};

#[test]
fn one_instance_tells_one_story() {
    let instance = full();
    let v1: Value = serde_json::from_slice(&get(&instance, "/metadata/v1.json").body).unwrap();
    let hetzner = ok_body(&instance, "/hetzner/v1/metadata");
    let nocloud = ok_body(&instance, "/nocloud/meta-data");

    // Host name: the FQDN, as EC2's local-hostname.
    let fqdn = ok_body(&instance, "/latest/meta-data/local-hostname");
    assert_eq!(fqdn, "web-1.example.internal");
    assert_eq!(v1["hostname"], fqdn.as_str());
    assert_eq!(ok_body(&instance, "/hetzner/v1/metadata/hostname"), fqdn);
    assert!(nocloud.contains(&format!("\"local-hostname\": \"{fqdn}\"\n")), "{nocloud}");
    // Keys, same order everywhere.
    assert_eq!(v1["public_keys"], serde_json::json!([ED, RSA]));
    let yaml_keys = format!("\"public-keys\":\n  - \"{ED}\"\n  - \"{RSA}\"\n");
    assert!(hetzner.contains(&yaml_keys), "{hetzner}");
    assert!(nocloud.contains(&yaml_keys), "{nocloud}");
    // EC2 ends the key with a newline, as AWS does.
    assert_eq!(ok_body(&instance, "/latest/meta-data/public-keys/0/openssh-key"), format!("{ED}\n"));
    // User data bytes.
    assert_eq!(ok_body(&instance, "/latest/user-data"), USER_DATA);
    assert_eq!(ok_body(&instance, "/metadata/v1/user-data"), USER_DATA);
    assert_eq!(ok_body(&instance, "/hetzner/v1/userdata"), USER_DATA);
    assert_eq!(ok_body(&instance, "/nocloud/user-data"), USER_DATA);
    assert_eq!(v1["user_data"], USER_DATA);
    // Addresses.
    assert_eq!(ok_body(&instance, "/latest/meta-data/local-ipv4"), "203.0.113.10");
    assert_eq!(v1["interfaces"]["public"][0]["ipv4"]["ip_address"], "203.0.113.10");
    assert_eq!(ok_body(&instance, "/hetzner/v1/metadata/public-ipv4"), "203.0.113.10");
    assert!(ok_body(&instance, "/nocloud/network-config").contains("\"203.0.113.10/24\""));
    assert!(hetzner.contains("\"address\": \"203.0.113.10/24\""), "{hetzner}");
}
