//! The times guests read are real: the identity document's `pendingTime` for records written
//! without `created_at`, and `iam/info`'s `LastUpdated` for a static role.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Method, StatusCode};
use imds_server::test_util::TestServer;
use serde_json::{json, Value};

const JSON: (&str, &str) = ("content-type", "application/json");

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Asserts `text` is a `…Z` time within a minute of now, and returns it in Unix seconds.
fn assert_recent(what: &str, text: &str) -> u64 {
    let at = imds_model::time::parse_rfc3339(text).unwrap_or_else(|| panic!("{what}: {text:?} is not a time"));
    let now = unix_now();
    assert!(at + 60 >= now && at <= now + 5, "{what} is {text}, not about now");
    at
}

#[tokio::test]
async fn records_written_without_created_at_keep_their_launch_time() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let put = |body: Value| {
        let admin = admin.clone();
        async move { admin.send(Method::PUT, "/v1/instances/i-time", &[JSON], body.to_string()).await.unwrap() }
    };
    let created = put(json!({"ipv4": ["127.0.44.1"], "hostname": "a"})).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let launched = created.json()["created_at"].as_str().unwrap().to_owned();
    assert_recent("created_at", &launched);
    let guest = server.guest_from("127.0.44.1");
    let document = guest.get("/latest/dynamic/instance-identity/document").await.unwrap().json();
    assert_eq!(document["pendingTime"], launched.as_str());

    // A replace and a patch that do not name a time keep the launch time; naming one sets it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let replaced = put(json!({"ipv4": ["127.0.44.1"], "hostname": "b"})).await;
    assert_eq!(replaced.status, StatusCode::OK);
    assert_eq!(replaced.json()["created_at"], launched.as_str());
    let patch = json!({"hostname": "c", "created_at": null}).to_string();
    let patched = admin
        .send(Method::PATCH, "/v1/instances/i-time", &[("content-type", "application/merge-patch+json")], patch)
        .await
        .unwrap();
    assert_eq!(patched.json()["created_at"], launched.as_str(), "{}", patched.text());
    let dated = put(json!({"ipv4": ["127.0.44.1"], "created_at": "2026-08-01T00:00:00Z"})).await;
    assert_eq!(dated.json()["created_at"], "2026-08-01T00:00:00Z");
    let document = guest.get("/latest/dynamic/instance-identity/document").await.unwrap().json();
    assert_eq!(document["pendingTime"], "2026-08-01T00:00:00Z");

    // A bulk import stamps the instances it creates.
    let lines = "{\"id\": \"i-imported\", \"ipv4\": [\"127.0.44.2\"]}\n";
    let imported = admin
        .send(Method::POST, "/v1/instances", &[("content-type", "application/x-ndjson")], lines.to_owned())
        .await
        .unwrap();
    assert_eq!(imported.status, StatusCode::OK, "{}", imported.text());
    let document =
        server.guest_from("127.0.44.2").get("/latest/dynamic/instance-identity/document").await.unwrap().json();
    assert_recent("pendingTime of an imported instance", document["pendingTime"].as_str().unwrap());
}

#[tokio::test]
async fn iam_info_of_a_static_role_says_when_its_credentials_were_loaded() {
    let server = TestServer::start().await;
    let role = json!({"source": {"type": "static", "access_key_id": "AKIASTATIC", "secret_access_key": "s"}});
    let admin = server.admin();
    let put = admin.send(Method::PUT, "/v1/roles/app", &[JSON], role.to_string()).await.unwrap();
    assert_eq!(put.status, StatusCode::CREATED);
    // An instance record that says nothing of its launch: no `created_at` can stand in.
    server.create(json!({"id": "i-static", "ipv4": ["127.0.44.3"], "iam_role": "app"})).await;
    let guest = server.guest_from("127.0.44.3");
    let credentials = loop {
        let credentials = guest.get("/latest/meta-data/iam/security-credentials/app").await.unwrap().json();
        if credentials["Code"] == "Success" {
            break credentials;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let info = guest.get("/latest/meta-data/iam/info").await.unwrap().json();
    assert_recent("iam/info LastUpdated", info["LastUpdated"].as_str().unwrap());
    assert_eq!(info["LastUpdated"], credentials["LastUpdated"]);
}
