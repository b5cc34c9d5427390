//! Documents as the real services serve them, over real sockets: fields every real document
//! has whatever the record leaves out.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use http::{Method, StatusCode};
use imds_server::test_util::TestServer;
use serde_json::json;

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHRlc3RrZXl0ZXN0a2V5dGVzdGtleXRlc3RrZXk= alice@laptop";

#[tokio::test]
async fn openstack_meta_data_has_project_devices_and_novas_host_name() {
    let server = TestServer::start().await;
    server.create(json!({"id": "i-os-bare", "ipv4": ["127.0.11.1"]})).await;
    server
        .create(json!({"id": "i-os-host", "hostname": "web-1", "ipv4": ["127.0.11.2"],
                         "account": {"id": "0f5a1c2b3d4e5f60718293a4b5c6d7e8"}}))
        .await;
    server
        .create(json!({"id": "i-os-fqdn", "hostname": "db-1", "domain": "example.internal",
                         "ipv4": ["127.0.11.3"]}))
        .await;
    for (source, hostname) in [
        ("127.0.11.1", "i-os-bare.novalocal"),
        ("127.0.11.2", "web-1.novalocal"),
        ("127.0.11.3", "db-1.example.internal"),
    ] {
        let response = server.guest_from(source).get("/openstack/latest/meta_data.json").await.unwrap();
        assert_eq!(response.status, StatusCode::OK);
        let doc = response.json();
        assert_eq!(doc["hostname"], hostname, "{source}");
        assert_eq!(doc["devices"], json!([]), "{source}");
        let project = doc["project_id"].as_str().unwrap();
        if source == "127.0.11.2" {
            assert_eq!(project, "0f5a1c2b3d4e5f60718293a4b5c6d7e8");
        } else {
            assert!(project.len() == 32 && project.bytes().all(|b| b.is_ascii_hexdigit()), "{project}");
        }
    }
    // Versions before Liberty have no project_id.
    let old = server.guest_from("127.0.11.1").get("/openstack/2013-10-17/meta_data.json").await.unwrap();
    assert!(old.json().get("project_id").is_none());
}

#[tokio::test]
async fn digitalocean_lists_vendor_data_always() {
    let server = TestServer::start().await;
    server.create(json!({"id": "i-do-bare", "ipv4": ["127.0.11.4"]})).await;
    let guest = server.guest_from("127.0.11.4");
    let index = guest.get("/metadata/v1/").await.unwrap();
    assert!(index.text().lines().any(|line| line == "vendor-data"), "{}", index.text());
    let vendor = guest.get("/metadata/v1/vendor-data").await.unwrap();
    assert_eq!((vendor.status, vendor.text().as_str()), (StatusCode::OK, ""));
    assert_eq!(guest.get("/metadata/v1.json").await.unwrap().json()["vendor_data"], "");
}

#[tokio::test]
async fn azure_always_has_an_admin_user_and_key_paths() {
    let server = TestServer::start().await;
    server.create(json!({"id": "i-az-bare", "ipv4": ["127.0.11.5"], "ssh_keys": [KEY]})).await;
    server
        .create(json!({"id": "i-az-user", "ipv4": ["127.0.11.6"], "default_user": "ops",
                         "ssh_keys": [KEY, {"key": KEY, "user": "bob"}]}))
        .await;
    let headers = [("metadata", "true")];
    let target = "/metadata/instance/compute?api-version=2021-02-01";
    let bare = server.guest_from("127.0.11.5").send(Method::GET, target, &headers, "").await.unwrap().json();
    assert_eq!(bare["osProfile"]["adminUsername"], "azureuser");
    assert_eq!(bare["publicKeys"], json!([{"keyData": KEY, "path": "/home/azureuser/.ssh/authorized_keys"}]));
    let user = server.guest_from("127.0.11.6").send(Method::GET, target, &headers, "").await.unwrap().json();
    assert_eq!(user["osProfile"]["adminUsername"], "ops");
    assert_eq!(
        user["publicKeys"],
        json!([{"keyData": KEY, "path": "/home/ops/.ssh/authorized_keys"},
               {"keyData": KEY, "path": "/home/bob/.ssh/authorized_keys"}])
    );
}

#[tokio::test]
async fn every_token_put_mints_a_distinct_token_bound_to_its_instance() {
    let server = TestServer::start().await;
    server.create(json!({"id": "i-mmds-tokens", "ipv4": ["127.0.11.7"]})).await;
    let config = server
        .admin()
        .send(
            Method::PUT,
            "/v1/instances/i-mmds-tokens/mmds/config",
            &[("content-type", "application/json")],
            r#"{"version":"V2"}"#,
        )
        .await
        .unwrap();
    assert_eq!(config.status, StatusCode::NO_CONTENT);
    let data = server
        .admin()
        .send(Method::PUT, "/v1/instances/i-mmds-tokens/mmds", &[("content-type", "application/json")], r#"{"a":"b"}"#)
        .await
        .unwrap();
    assert_eq!(data.status, StatusCode::NO_CONTENT);
    server.create(json!({"id": "i-ec2-tokens", "ipv4": ["127.0.11.8"]})).await;
    server.create(json!({"id": "i-other", "ipv4": ["127.0.11.9"]})).await;

    for (source, ttl_header, token_header, path) in [
        ("127.0.11.7", "x-metadata-token-ttl-seconds", "x-metadata-token", "/a"),
        (
            "127.0.11.8",
            "x-aws-ec2-metadata-token-ttl-seconds",
            "x-aws-ec2-metadata-token",
            "/latest/meta-data/instance-id",
        ),
    ] {
        let guest = server.guest_from(source);
        let mut tokens = Vec::new();
        // Ten PUTs in well under a second: the clock alone cannot tell them apart.
        for _ in 0..10 {
            let put = guest.send(Method::PUT, "/latest/api/token", &[(ttl_header, "60")], "").await.unwrap();
            assert_eq!(put.status, StatusCode::OK, "{source}: {}", put.text());
            tokens.push(put.text());
        }
        let mut distinct = tokens.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), tokens.len(), "{source}: {tokens:?}");
        for token in &tokens {
            let get = guest.send(Method::GET, path, &[(token_header, token.as_str())], "").await.unwrap();
            assert_eq!(get.status, StatusCode::OK, "{source}");
            // Bound to its instance: another instance's guest cannot use it.
            let stolen = server.guest_from("127.0.11.9");
            let header = [("x-aws-ec2-metadata-token", token.as_str())];
            let refused = stolen.send(Method::GET, "/latest/meta-data/instance-id", &header, "").await.unwrap();
            assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{source}");
        }
    }
}

#[tokio::test]
async fn ec2_overrides_that_are_not_text_are_refused_naming_their_path() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let json_type = [("content-type", "application/json")];
    let doc = json!({"id": "i-spot", "ipv4": ["127.0.11.10"], "dialects": {"ec2": {
        "spot/instance-action": {"action": "terminate", "time": "2026-08-01T00:02:00Z"},
        "instance-life-cycle": "spot",
        "ami-launch-index": 3,
        "bad//key": "x"
    }}});
    let refused = admin.send(Method::PUT, "/v1/instances/i-spot", &json_type, doc.to_string()).await.unwrap();
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text());
    let body = refused.text();
    for field in ["dialects.ec2.spot/instance-action", "dialects.ec2.ami-launch-index", "dialects.ec2.bad//key"] {
        assert!(body.contains(field), "{field} not named: {body}");
    }
    assert!(!body.contains("dialects.ec2.instance-life-cycle"), "{body}");
    let missing = admin.get("/v1/instances/i-spot").await.unwrap();
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "nothing was written");

    // The same notice as its JSON text is served as EC2 serves it.
    let text = r#"{"action": "terminate", "time": "2026-08-01T00:02:00Z"}"#;
    let doc = json!({"id": "i-spot", "ipv4": ["127.0.11.10"],
                     "dialects": {"ec2": {"spot/instance-action": text, "public-keys": null}}});
    let created = admin.send(Method::PUT, "/v1/instances/i-spot", &json_type, doc.to_string()).await.unwrap();
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let notice = server.guest_from("127.0.11.10").get("/latest/meta-data/spot/instance-action").await.unwrap();
    assert_eq!((notice.status, notice.text().as_str()), (StatusCode::OK, text));
}
