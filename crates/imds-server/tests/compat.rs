//! The seeds' own interfaces over real sockets: the Go mock's `/status` and `/bootstrap/creds`,
//! VMAN's `/vms/{id}/metadata`, and the Nanos unikernel's two reader sequences sent byte for
//! byte as its klib sends them.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use base64::Engine as _;
use http::{Method, StatusCode};
use imds_server::test_util::TestServer;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const JSON: (&str, &str) = ("content-type", "application/json");
const KEY_A: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHRlc3RrZXl0ZXN0a2V5dGVzdGtleXRlc3RrZXk= a@vman";
const KEY_B: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGFub3RoZXJrZXlhbm90aGVya2V5YW5vdGhlcmtleQ== b@vman";

#[tokio::test]
async fn go_mock_status_and_bootstrap_act_on_the_default_role() {
    let server = TestServer::with_default_role("mock-role").await;
    let admin = server.admin();
    // No such role yet: not running with valid credentials.
    let status = admin.get("/status").await.unwrap();
    assert_eq!((status.status, status.json()), (StatusCode::OK, json!(false)));

    // An sts role waits for its bootstrap credentials.
    let sts = json!({"source": {"type": "sts", "role_arn": "arn:aws:iam::123456789012:role/mock",
                                "endpoint": "http://127.0.0.1:9/"}});
    let put = admin.send(Method::PUT, "/v1/roles/mock-role", &[JSON], sts.to_string()).await.unwrap();
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.text());
    let bootstrap = json!({"AccessKeyId": "AKIABOOTSTRAP0000001", "SecretAccessKey": "boot-secret", "Token": ""});
    let posted = admin.send(Method::POST, "/bootstrap/creds", &[JSON], bootstrap.to_string()).await.unwrap();
    assert_eq!(posted.status, StatusCode::NO_CONTENT, "{}", posted.text());
    let role = admin.get("/v1/roles/mock-role").await.unwrap();
    assert!(role.text().contains("AKIABOOTSTRAP0000001"), "the base credentials are the role's: {}", role.text());
    assert!(!role.text().contains("boot-secret"), "secrets stay write-only: {}", role.text());
    // Its STS is unreachable here: still not valid.
    assert_eq!(admin.get("/status").await.unwrap().json(), json!(false));
    // A bad body is refused naming the field.
    let bad = admin.send(Method::POST, "/bootstrap/creds", &[JSON], r#"{"AccessKeyId": "AKIA"}"#).await.unwrap();
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text());

    // A role with credentials now: true.
    let fixed = json!({"source": {"type": "static", "access_key_id": "AKIASTATIC0000000001", "secret_access_key": "s",
                                  "session_token": "t", "expiration": "2099-01-01T00:00:00Z"}});
    let put = admin.send(Method::PUT, "/v1/roles/mock-role", &[JSON], fixed.to_string()).await.unwrap();
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    let mut valid = false;
    for _ in 0..50 {
        if admin.get("/status").await.unwrap().json() == json!(true) {
            valid = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(valid, "/status turns true once the default role has credentials");
}

#[tokio::test]
async fn bootstrap_without_a_default_role_names_the_setting() {
    let server = TestServer::start().await;
    let body = r#"{"AccessKeyId": "AKIABOOTSTRAP0000001", "SecretAccessKey": "x"}"#;
    let refused = server.admin().send(Method::POST, "/bootstrap/creds", &[JSON], body).await.unwrap();
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.text().contains("admin.default_role"), "{}", refused.text());
    assert_eq!(server.admin().get("/status").await.unwrap().json(), json!(false));
}

#[tokio::test]
async fn vman_metadata_maps_onto_the_instance_record() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let body = json!({"hostname": "my-server", "user_data": "#!/bin/bash\necho hello\n",
                      "ssh_keys": format!("{KEY_A}\n{KEY_B}\n"), "ip": "127.0.12.1", "mac": "02:00:00:0c:00:01"});
    let put = admin.send(Method::PUT, "/vms/my-vm/metadata", &[JSON], body.to_string()).await.unwrap();
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    let shown = json!({"hostname": "my-server", "user_data": "#!/bin/bash\necho hello\n",
                       "ssh_keys": format!("{KEY_A}\n{KEY_B}")});
    assert_eq!(put.json(), shown);
    assert_eq!(admin.get("/vms/my-vm/metadata").await.unwrap().json(), shown);
    let record = admin.get("/v1/instances/my-vm").await.unwrap().json();
    assert_eq!((record["ipv4"].clone(), record["mac"].clone()), (json!(["127.0.12.1"]), json!(["02:00:00:0c:00:01"])));

    // The VM reads it through the metadata service, as VMAN's guests do.
    let guest = server.guest_from("127.0.12.1");
    assert_eq!(guest.get("/latest/meta-data/hostname").await.unwrap().text(), "my-server");
    assert_eq!(guest.get("/latest/user-data").await.unwrap().text(), "#!/bin/bash\necho hello\n");
    assert_eq!(guest.get("/latest/meta-data/public-keys/1/openssh-key").await.unwrap().text(), format!("{KEY_B}\n"));

    // A second PUT without ip keeps the address and replaces the three fields.
    let put = admin.send(Method::PUT, "/vms/my-vm/metadata", &[JSON], r#"{"hostname": "renamed"}"#).await.unwrap();
    assert_eq!(put.json(), json!({"hostname": "renamed", "user_data": null, "ssh_keys": null}));
    assert_eq!(guest.get("/latest/meta-data/hostname").await.unwrap().text(), "renamed");

    // Unknown fields are refused naming the field; nothing changes.
    let bad = admin.send(Method::PUT, "/vms/my-vm/metadata", &[JSON], r#"{"hostnme": "x"}"#).await.unwrap();
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text().contains("hostnme"), "{}", bad.text());

    // DELETE clears the metadata; the VM stays registered.
    let deleted = admin.send(Method::DELETE, "/vms/my-vm/metadata", &[], "").await.unwrap();
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        admin.get("/vms/my-vm/metadata").await.unwrap().json(),
        json!({"hostname": null, "user_data": null, "ssh_keys": null})
    );
    assert_eq!(guest.get("/latest/meta-data/instance-id").await.unwrap().text(), "my-vm");
    assert_eq!(admin.get("/vms/nobody/metadata").await.unwrap().status, StatusCode::NOT_FOUND);
}

/// Sends `request` as raw bytes from `source` and returns the status and body.
async fn raw(server: SocketAddr, source: &str, request: String) -> (u16, String) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source.parse::<IpAddr>().unwrap(), 0)).unwrap();
    let mut stream = socket.connect(server).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap();
            if body.len() >= length {
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                return (status, body[..length].to_owned());
            }
        }
        let read = tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await.unwrap().unwrap();
        assert!(read > 0, "connection closed early: {text:?}");
        received.extend_from_slice(&chunk[..read]);
    }
}

#[tokio::test]
async fn the_nanos_readers_get_their_user_data() {
    let server = TestServer::start().await;
    let user_data = "BOB=something\nTOM=something-else";
    server
        .create(json!({"id": "i-nanos-aws", "ipv4": ["127.0.12.2"], "user_data": user_data,
                         "imds": {"tokens": "required"}}))
        .await;
    server.create(json!({"id": "i-nanos-azure", "ipv4": ["127.0.12.3"], "user_data": user_data})).await;
    let addr = server.guest_addr;

    // AWS: a token PUT with TTL 21600, then the user-data with the token.
    let (status, token) = raw(
        addr,
        "127.0.12.2",
        "PUT /latest/api/token HTTP/1.1\r\nHost: 169.254.169.254\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\n\r\n"
            .into(),
    )
    .await;
    assert_eq!(status, 200, "{token}");
    let (status, body) = raw(
        addr,
        "127.0.12.2",
        format!("GET /latest/user-data HTTP/1.1\r\nHost: 169.254.169.254\r\nX-aws-ec2-metadata-token: {token}\r\n\r\n"),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, user_data));

    // Azure: detection, then the user data as base64 text.
    let (status, document) = raw(
        addr,
        "127.0.12.3",
        "GET /metadata/instance?api-version=2021-01-01 HTTP/1.1\r\nHost: 169.254.169.254\r\nMetadata: true\r\n\r\n"
            .into(),
    )
    .await;
    assert_eq!(status, 200, "{document}");
    assert!(serde_json::from_str::<serde_json::Value>(&document).unwrap()["compute"].is_object());
    let (status, encoded) = raw(
        addr,
        "127.0.12.3",
        "GET /metadata/instance/compute/userData?api-version=2021-01-01&format=text HTTP/1.1\r\nHost: 169.254.169.254\r\nMetadata: true\r\n\r\n"
            .into(),
    )
    .await;
    assert_eq!(status, 200, "{encoded}");
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).unwrap();
    assert_eq!(decoded, user_data.as_bytes());
}
