//! One instance through EC2, DigitalOcean, Hetzner, NoCloud and the newer clouds: the same host name, keys, user-data
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

#[test]
fn the_new_dialects_tell_the_same_story() {
    use http::Method;
    use imds_dialects::{Dialect, GuestRequest};

    use super::{enabling, full_doc, send_request};

    let instance = full();
    let fqdn = "web-1.example.internal";
    let vultr: Value = serde_json::from_str(&ok_body(&instance, "/v1.json")).unwrap();
    let firsts = enabling(full_doc(), &["upcloud", "exoscale"]);
    let upcloud: Value = serde_json::from_str(&ok_body(&firsts, "/metadata/v1.json")).unwrap();
    let scaleway =
        send_request(&instance, &GuestRequest::new(Method::GET, "/conf?format=json").on_listener_of(Dialect::Scaleway));
    let scaleway: Value = serde_json::from_slice(&scaleway.body).unwrap();
    let token = send_request(&instance, &GuestRequest::new(Method::PUT, "/v1/token"));
    let linode = |path: &str| {
        let request = GuestRequest::new(Method::GET, path)
            .with_header(
                http::HeaderName::from_static("metadata-token"),
                http::HeaderValue::from_bytes(&token.body).unwrap(),
            )
            .with_header(http::header::ACCEPT, http::HeaderValue::from_static("application/json"));
        serde_json::from_slice::<Value>(&send_request(&instance, &request).body).unwrap()
    };
    // Host name.
    assert_eq!(vultr["hostname"], fqdn);
    assert_eq!(upcloud["hostname"], fqdn);
    assert_eq!(scaleway["hostname"], fqdn);
    assert_eq!(linode("/v1/instance")["label"], fqdn);
    assert_eq!(ok_body(&firsts, "/1.0/meta-data/local-hostname"), fqdn);
    // Keys.
    let keys = serde_json::json!([ED, RSA]);
    assert_eq!(vultr["public-keys"], keys);
    assert_eq!(upcloud["public_keys"], keys);
    assert_eq!(linode("/v1/ssh-keys")["users"]["root"], keys);
    assert_eq!(scaleway["ssh_public_keys"][0]["key"], ED);
    assert_eq!(ok_body(&firsts, "/1.0/meta-data/public-keys"), format!("{ED}\n{RSA}"));
    // User data.
    assert_eq!(vultr["user-data"], USER_DATA);
    assert_eq!(upcloud["user_data"], USER_DATA);
    assert_eq!(ok_body(&firsts, "/1.0/user-data"), USER_DATA);
    // Addresses and the one UUID.
    assert_eq!(vultr["interfaces"][0]["ipv4"]["address"], "203.0.113.10");
    assert_eq!(upcloud["network"]["interfaces"][0]["ip_addresses"][0]["address"], "203.0.113.10");
    assert_eq!(scaleway["public_ip"]["address"], "203.0.113.10");
    assert_eq!(linode("/v1/network")["ipv4"]["public"][0], "203.0.113.10/24");
    assert_eq!(ok_body(&firsts, "/1.0/meta-data/public-ipv4"), "203.0.113.10");
    let uuid = vultr["instance-v2-id"].as_str().unwrap();
    assert_eq!(upcloud["instance_id"], uuid);
    assert_eq!(scaleway["id"], uuid);
    assert_eq!(linode("/v1/instance")["host_uuid"], uuid);
    assert_eq!(ok_body(&firsts, "/1.0/meta-data/instance-id"), uuid);
}
