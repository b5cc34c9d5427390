//! Container credential tokens through the admin API and the container credential endpoints on
//! a listener bound to `container`, on a real daemon over loopback: issue, use (full URI with
//! `Authorization`, relative URI), refusal for another instance's token, revocation, deletion
//! with the instance, and the admin API's errors.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use http::{Method, StatusCode};
use imds_dialects::Dialect;
use imds_server::client::{Client, Response};
use imds_server::guest;
use imds_server::test_util::TestServer;
use serde_json::{json, Value};

const JSON: (&str, &str) = ("content-type", "application/json");

async fn start() -> (TestServer, SocketAddr) {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let config = guest::Config {
        dialect_listen: vec![(Dialect::Container, loopback)],
        unknown_hold: Duration::ZERO,
        ..guest::Config::default()
    };
    let server = TestServer::with_guest(config).await;
    let listener = server.running.dialect_addrs[0].1;
    let role = json!({"source": {"type": "static", "access_key_id": "ASIACONTAINER0001", "secret_access_key": "ct-secret",
                                 "session_token": "ct-session", "expiration": "2099-01-01T00:00:00Z"}});
    let put = server.admin().send(Method::PUT, "/v1/roles/task", &[JSON], role.to_string()).await.unwrap();
    assert_eq!(put.status, StatusCode::CREATED);
    server.create(json!({"id": "i-host-a", "ipv4": ["127.0.50.1"], "iam_role": "task"})).await;
    server.create(json!({"id": "i-host-b", "ipv4": ["127.0.50.2"], "iam_role": "task"})).await;
    (server, listener)
}

async fn issue(server: &TestServer, id: &str, body: Value) -> Response {
    let path = format!("/v1/instances/{id}/container-tokens");
    server.admin().send(Method::POST, &path, &[JSON], body.to_string()).await.unwrap()
}

async fn get(listener: SocketAddr, source: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    Client::from_source(listener, source.parse().unwrap()).send(Method::GET, path, headers, "").await.unwrap()
}

/// The credentials at `path`, waiting (bounded) for the role's first fetch.
async fn credentials(listener: SocketAddr, source: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    for _ in 0..100 {
        let response = get(listener, source, path, headers).await;
        if response.status != StatusCode::INTERNAL_SERVER_ERROR {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the role's credentials never became available");
}

#[tokio::test]
async fn an_issued_token_gets_the_role_credentials_by_either_uri_and_only_for_its_instance() {
    let (server, listener) = start().await;
    let issued = issue(&server, "i-host-a", json!({"workload": "web"})).await;
    assert_eq!(issued.status, StatusCode::CREATED, "{}", issued.text());
    let issued = issued.json();
    let token = issued["token"].as_str().unwrap().to_owned();
    assert_eq!(issued["workload"], "web");
    assert_eq!(issued["relative_uri"], format!("/v2/credentials/{token}"));

    let full = credentials(listener, "127.0.50.1", "/v1/credentials", &[("authorization", &token)]).await;
    assert_eq!(full.status, StatusCode::OK, "{}", full.text());
    assert_eq!(full.header("content-type"), Some("application/json"));
    let body = full.json();
    assert_eq!(body["AccessKeyId"], "ASIACONTAINER0001");
    assert_eq!(body["SecretAccessKey"], "ct-secret");
    assert_eq!(body["Token"], "ct-session");
    assert_eq!(body["Expiration"], "2099-01-01T00:00:00Z");
    let relative = get(listener, "127.0.50.1", issued["relative_uri"].as_str().unwrap(), &[]).await;
    assert_eq!(relative.json(), body);

    // The same token from another instance, a forged one, none at all: nothing.
    for (source, headers) in [
        ("127.0.50.2", vec![("authorization", token.as_str())]),
        ("127.0.50.1", vec![("authorization", "forged")]),
        ("127.0.50.1", vec![]),
        ("127.0.50.9", vec![("authorization", token.as_str())]),
    ] {
        let refused = get(listener, source, "/v1/credentials", &headers).await;
        assert!(refused.status.is_client_error(), "{source} {headers:?}: {}", refused.text());
        assert!(!refused.text().contains("ct-secret"), "{source}: {}", refused.text());
    }
    let other = get(listener, "127.0.50.2", &format!("/v2/credentials/{token}"), &[]).await;
    assert_eq!(other.status, StatusCode::BAD_REQUEST);
    assert_eq!(other.json()["code"], "InvalidIdInRequest");
    // The main listener does not serve container paths.
    let main = get(server.guest_addr, "127.0.50.1", "/v1/credentials", &[("authorization", &token)]).await;
    assert!(!main.text().contains("ct-secret"));
}

#[tokio::test]
async fn tokens_are_listed_without_secrets_revoked_and_deleted_with_the_instance() {
    let (server, listener) = start().await;
    let first = issue(&server, "i-host-a", json!({"workload": "web"})).await.json();
    let second = issue(&server, "i-host-a", json!({"workload": "worker", "role": "task"})).await.json();
    let listed = server.admin().get("/v1/instances/i-host-a/container-tokens").await.unwrap();
    assert_eq!(listed.status, StatusCode::OK);
    let text = listed.text();
    let tokens = &listed.json()["tokens"];
    assert_eq!(tokens.as_array().unwrap().len(), 2);
    assert_eq!(tokens[1]["workload"], "worker");
    assert_eq!(tokens[1]["role"], "task");
    for secret in [&first["token"], &second["token"]] {
        assert!(!text.contains(secret.as_str().unwrap()), "a secret is listed: {text}");
    }
    let auth = |issued: &Value| issued["token"].as_str().unwrap().to_owned();
    let ok = credentials(listener, "127.0.50.1", "/v1/credentials", &[("authorization", &auth(&second))]).await;
    assert_eq!(ok.status, StatusCode::OK);

    let path = format!("/v1/instances/i-host-a/container-tokens/{}", first["id"].as_str().unwrap());
    let revoked = server.admin().send(Method::DELETE, &path, &[], "").await.unwrap();
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let gone = get(listener, "127.0.50.1", "/v1/credentials", &[("authorization", &auth(&first))]).await;
    assert_eq!(gone.status, StatusCode::FORBIDDEN, "a revoked token gets nothing: {}", gone.text());
    let again = server.admin().send(Method::DELETE, &path, &[], "").await.unwrap();
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(again.json()["error"]["field"], "token");

    // Deleting the instance deletes its tokens: a new instance at the address inherits none.
    let deleted = server.admin().send(Method::DELETE, "/v1/instances/i-host-a", &[], "").await.unwrap();
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    server.create(json!({"id": "i-host-a", "ipv4": ["127.0.50.1"], "iam_role": "task"})).await;
    let listed = server.admin().get("/v1/instances/i-host-a/container-tokens").await.unwrap();
    assert_eq!(listed.json()["tokens"], json!([]));
    let stale = get(listener, "127.0.50.1", "/v1/credentials", &[("authorization", &auth(&second))]).await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bad_requests_name_the_field_and_change_nothing() {
    let (server, _listener) = start().await;
    for (body, field) in [
        (json!({}), ""),
        (json!({"workload": ""}), "workload"),
        (json!({"workload": "a\nb"}), "workload"),
        (json!({"workload": "web", "role": "no spaces allowed"}), "role"),
        (json!({"workload": "web", "extra": 1}), ""),
    ] {
        let refused = issue(&server, "i-host-a", body.clone()).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{body}: {}", refused.text());
        assert_eq!(refused.json()["error"]["field"], field, "{body}");
    }
    let missing = issue(&server, "i-nobody", json!({"workload": "web"})).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let listed = server.admin().get("/v1/instances/i-host-a/container-tokens").await.unwrap();
    assert_eq!(listed.json()["tokens"], json!([]));
}
