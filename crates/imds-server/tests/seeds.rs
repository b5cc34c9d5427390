//! The DigitalOcean, Hetzner and NoCloud dialects over real sockets, and the admin API's SMBIOS
//! platform hints.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use http::{Method, StatusCode};
use imds_server::test_util::TestServer;
use serde_json::{json, Value};

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb2bJ0yYzUeC7t0xv1kq0vO3cVtZ0b8Vz3XcWqTqH6m ops@example";
const USER_DATA: &str = "#cloud-config\nwrite_files: [{path: /x, content: y}]\n";

/// A record bound to `source` with one static interface.
fn record(id: &str, source: &str) -> Value {
    let last: u8 = source.rsplit('.').next().unwrap().parse().unwrap();
    let mac = format!("02:00:00:00:03:{last:02x}");
    json!({
        "id": id,
        "hostname": format!("host-{id}"),
        "ipv4": [source],
        "mac": [mac],
        "network": {"interfaces": [{"mac": mac, "ipv4": [{"address": "10.3.0.5", "prefix": 24, "gateway": "10.3.0.1"}]}],
                    "nameservers": ["10.3.0.2"]},
        "ssh_keys": [KEY],
        "user_data": USER_DATA,
        "region": "nbg1"
    })
}

#[tokio::test]
async fn digitalocean_serves_its_json_and_tree_to_the_caller() {
    let server = TestServer::start().await;
    server.create(record("3164494", "127.0.3.1")).await;
    let guest = server.guest_from("127.0.3.1");
    let v1 = guest.get("/metadata/v1.json").await.unwrap();
    assert_eq!(v1.status, StatusCode::OK);
    assert_eq!(v1.header("content-type"), Some("application/json"));
    let doc = v1.json();
    assert_eq!(doc["droplet_id"], json!(3_164_494));
    assert_eq!(doc["hostname"], "host-3164494");
    assert_eq!(doc["public_keys"], json!([KEY]));
    assert_eq!(doc["user_data"], USER_DATA);
    assert_eq!(doc["interfaces"]["public"][0]["ipv4"]["ip_address"], "10.3.0.5");
    assert_eq!(doc["dns"]["nameservers"], json!(["10.3.0.2"]));
    assert_eq!(guest.get("/metadata/v1/id").await.unwrap().text(), "3164494");
    assert_eq!(guest.get("/metadata/v1/user-data").await.unwrap().text(), USER_DATA);
    assert_eq!(guest.get("/metadata/v1/interfaces/public/0/ipv4/gateway").await.unwrap().text(), "10.3.0.1");
    let missing = guest.get("/metadata/v1/nothing").await.unwrap();
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let post = guest.send(Method::POST, "/metadata/v1.json", &[], "").await.unwrap();
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn hetzner_serves_yaml_metadata_and_raw_userdata() {
    let server = TestServer::start().await;
    server.create(record("hz-1", "127.0.3.2")).await;
    let guest = server.guest_from("127.0.3.2");
    let metadata = guest.get("/hetzner/v1/metadata").await.unwrap();
    assert_eq!(metadata.status, StatusCode::OK);
    let text = metadata.text();
    assert!(text.contains("\"hostname\": \"host-hz-1\"\n"), "{text}");
    let id = guest.get("/hetzner/v1/metadata/instance-id").await.unwrap().text();
    assert!(id.parse::<u64>().is_ok(), "{id}");
    assert!(text.contains(&format!("\"instance-id\": {id}\n")), "{text}");
    assert_eq!(guest.get("/hetzner/v1/userdata").await.unwrap().text(), USER_DATA);
    assert_eq!(guest.get("/hetzner/v1/metadata/nothing").await.unwrap().status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn nocloud_serves_the_seed_and_user_data_even_when_empty() {
    let server = TestServer::start().await;
    server.create(record("nc-1", "127.0.3.3")).await;
    server.create(json!({"id": "nc-empty", "ipv4": ["127.0.3.6"]})).await;
    let guest = server.guest_from("127.0.3.3");
    let meta = guest.get("/nocloud/meta-data").await.unwrap();
    assert_eq!(meta.status, StatusCode::OK);
    assert!(
        meta.text().starts_with("\"instance-id\": \"nc-1\"\n\"local-hostname\": \"host-nc-1\"\n"),
        "{}",
        meta.text()
    );
    assert_eq!(guest.get("/nocloud/user-data").await.unwrap().text(), USER_DATA);
    let network = guest.get("/nocloud/network-config").await.unwrap().text();
    assert!(network.contains("\"10.3.0.5/24\""), "{network}");
    let empty = server.guest_from("127.0.3.6");
    let user_data = empty.get("/nocloud/user-data").await.unwrap();
    assert_eq!((user_data.status, user_data.body.len()), (StatusCode::OK, 0));
    assert_eq!(empty.get("/nocloud/vendor-data").await.unwrap().status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn disabled_dialects_answer_as_absent_and_forwarding_headers_are_ignored() {
    let server = TestServer::start().await;
    let mut only_nocloud = record("dis-1", "127.0.3.4");
    only_nocloud["dialects"] = json!({"enabled": ["nocloud"]});
    server.create(only_nocloud).await;
    server.create(record("other-2", "127.0.3.5")).await;
    let guest = server.guest_from("127.0.3.4");
    for path in ["/metadata/v1.json", "/hetzner/v1/metadata", "/latest/meta-data/"] {
        assert_eq!(guest.get(path).await.unwrap().status, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(guest.get("/nocloud/meta-data").await.unwrap().status, StatusCode::OK);

    // A guest naming another guest's address in forwarding headers still reads its own data.
    let other = server.guest_from("127.0.3.5");
    let headers = [("x-forwarded-for", "127.0.3.4"), ("forwarded", "for=127.0.3.4"), ("x-real-ip", "127.0.3.4")];
    let own = other.send(Method::GET, "/metadata/v1/hostname", &headers, "").await.unwrap();
    assert_eq!((own.status, own.text().as_str()), (StatusCode::OK, "host-other-2"));
    let stranger = server.guest_from("127.0.3.7");
    let refused = stranger.send(Method::GET, "/nocloud/meta-data", &headers, "").await.unwrap();
    assert_eq!((refused.status, refused.text().as_str()), (StatusCode::NOT_FOUND, "404 Not Found\n"));
    assert!(!refused.text().contains("dis-1"));
}

#[tokio::test]
async fn admin_api_gives_the_smbios_hint_per_dialect() {
    let server = TestServer::start().await;
    let mut doc = record("hint-1", "127.0.3.8");
    doc["platform"] = json!({"dialect": "hetzner"});
    server.create(doc).await;
    let admin = server.admin();

    let droplet = admin.get("/v1/instances/hint-1/smbios?dialect=digitalocean").await.unwrap();
    assert_eq!(droplet.status, StatusCode::OK);
    let hint = droplet.json();
    let v1 = server.guest_from("127.0.3.8").get("/metadata/v1.json").await.unwrap().json();
    assert_eq!(hint["dialect"], "digitalocean");
    assert_eq!(hint["smbios"]["manufacturer"], "DigitalOcean");
    assert_eq!(hint["smbios"]["serial"], v1["droplet_id"].to_string());
    assert_eq!(hint["qemu"][0], "-smbios");

    // Without ?dialect the record's platform.dialect is used.
    let hetzner = admin.get("/v1/instances/hint-1/smbios").await.unwrap().json();
    assert_eq!(hetzner["dialect"], "hetzner");
    let id = server.guest_from("127.0.3.8").get("/hetzner/v1/metadata/instance-id").await.unwrap().text();
    assert_eq!(hetzner["smbios"]["serial"], id);

    let nocloud = admin.get("/v1/instances/hint-1/smbios?dialect=nocloud").await.unwrap().json();
    assert_eq!(nocloud["smbios"]["serial"], "ds=nocloud-net;s=http://169.254.169.254/nocloud/");
    assert_eq!(nocloud["kernel_cmdline"], "ds=nocloud-net;s=http://169.254.169.254/nocloud/");

    for bad in ["dialect=vax", "dialect=mmds"] {
        let response = admin.get(&format!("/v1/instances/hint-1/smbios?{bad}")).await.unwrap();
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(response.json()["error"]["field"], "dialect", "{bad}");
    }
    server.create(json!({"id": "hint-2", "ipv4": ["127.0.3.9"]})).await;
    let none = admin.get("/v1/instances/hint-2/smbios").await.unwrap();
    assert_eq!((none.status, none.json()["error"]["field"].clone()), (StatusCode::BAD_REQUEST, json!("dialect")));
    let missing = admin.get("/v1/instances/nope/smbios?dialect=hetzner").await.unwrap();
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}
