//! Firecracker MMDS with the real binary: `imds mmds ...` drives it, and the document, its
//! configuration and the session tokens already handed out survive a `kill -9` restart.

use http::{Method, StatusCode};
use serde_json::json;

use super::cli::{imds, text};
use super::support::{temp_dir, Daemon};

const TTL: &str = "x-metadata-token-ttl-seconds";
const TOKEN: &str = "x-metadata-token";

#[tokio::test]
async fn mmds_commands_drive_the_admin_api() {
    let (_guard, dir) = temp_dir();
    let daemon = Daemon::with_db(&dir, &dir.join("imds.db"));
    let created = imds(&daemon, &["instance", "put", "-f", "-"], Some(r#"{"id": "i-fc", "ipv4": ["127.0.1.21"]}"#));
    assert!(created.status.success(), "{}", text(&created.stderr));

    let empty = imds(&daemon, &["mmds", "get", "i-fc"], None);
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&empty.stdout).unwrap(), json!({}));
    let early = imds(&daemon, &["mmds", "patch", "i-fc", "-"], Some(r#"{"a": "b"}"#));
    assert_eq!(early.status.code(), Some(1));
    assert!(text(&early.stderr).contains("The MMDS data store is not initialized."), "{}", text(&early.stderr));

    let file = dir.join("mmds.json");
    std::fs::write(&file, r#"{"latest": {"meta-data": {"ami-id": "ami-1", "hostname": "fc"}}}"#).unwrap();
    let put = imds(&daemon, &["mmds", "put", "i-fc", "-f", file.to_str().unwrap()], None);
    assert!(put.status.success(), "{}", text(&put.stderr));
    let patch =
        imds(&daemon, &["mmds", "patch", "i-fc", "-"], Some(r#"{"latest": {"meta-data": {"hostname": null}}}"#));
    assert!(patch.status.success(), "{}", text(&patch.stderr));
    let doc = imds(&daemon, &["mmds", "get", "i-fc"], None);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&doc.stdout).unwrap(),
        json!({"latest": {"meta-data": {"ami-id": "ami-1"}}})
    );

    let guest = daemon.guest_from("127.0.1.21");
    assert_eq!(guest.get("/latest/meta-data/").await.unwrap().text(), "ami-id");
    let config = imds(&daemon, &["mmds", "config", "i-fc", "--version", "V2", "--imds-compat"], None);
    assert!(config.status.success(), "{}", text(&config.stderr));
    assert_eq!(guest.get("/latest/meta-data/").await.unwrap().status, StatusCode::UNAUTHORIZED);

    let missing = imds(&daemon, &["mmds", "get", "i-nobody"], None);
    assert_eq!(missing.status.code(), Some(3));
    assert!(text(&missing.stderr).contains("404"), "{}", text(&missing.stderr));
    let bad_file = imds(&daemon, &["mmds", "put", "i-fc", "-"], Some("{not json"));
    assert_eq!(bad_file.status.code(), Some(2), "local mistakes exit 2");
}

#[tokio::test]
async fn the_document_its_config_and_live_tokens_survive_a_restart() {
    let (_guard, dir) = temp_dir();
    let db = dir.join("imds.db");
    let daemon = Daemon::with_db_and_flags(&dir, &db, &["--mmds-size-limit", "1000"]);
    let admin = daemon.admin_client();
    let json_body = [("content-type", "application/json")];
    let instance = json!({"id": "i-keep", "ipv4": ["127.0.1.22"]}).to_string();
    assert_eq!(admin.send(Method::PUT, "/v1/instances/i-keep", &json_body, instance).await.unwrap().status, 201);
    let config = json!({"version": "V2"}).to_string();
    let configured = admin.send(Method::PUT, "/v1/instances/i-keep/mmds/config", &json_body, config).await.unwrap();
    assert_eq!(configured.status, StatusCode::NO_CONTENT);
    let document = json!({"name": {"first": "John"}, "age": 43});
    let put = admin.send(Method::PUT, "/v1/instances/i-keep/mmds", &json_body, document.to_string()).await.unwrap();
    assert_eq!(put.status, StatusCode::NO_CONTENT);
    // The flag's limit is in force.
    let big = json!({"k": "x".repeat(1000)}).to_string();
    let refused = admin.send(Method::PUT, "/v1/instances/i-keep/mmds", &json_body, big).await.unwrap();
    assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);
    let guest = daemon.guest_from("127.0.1.22");
    let minted = guest.send(Method::PUT, "/latest/api/token", &[(TTL, "3600")], "").await.unwrap();
    assert_eq!(minted.status, StatusCode::OK, "{}", minted.text());
    let token = minted.text();
    daemon.kill9();

    let restarted = Daemon::with_db(&dir, &db);
    let guest = restarted.guest_from("127.0.1.22");
    let read = guest.send(Method::GET, "/name/first", &[(TOKEN, &token)], "").await.unwrap();
    assert_eq!((read.status, read.text().as_str()), (StatusCode::OK, "John"), "the token minted before the restart");
    let untokened = guest.get("/name/first").await.unwrap();
    assert_eq!(untokened.status, StatusCode::UNAUTHORIZED, "still V2 after the restart");
    let stored = restarted.admin_client().get("/v1/instances/i-keep/mmds").await.unwrap();
    assert_eq!(stored.text(), r#"{"age":43,"name":{"first":"John"}}"#);
}
