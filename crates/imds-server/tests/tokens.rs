//! GCE and Azure credentials on a real daemon over loopback: roles created through the admin
//! API, GCE service-account tokens and identity JWTs (checked with `imds_sign` against the
//! published JWKS and certificates), Azure managed-identity tokens and attested documents
//! (checked with `openssl`).

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use http::{Method, StatusCode};
use imds_server::client::{Client, Response};
use imds_server::test_util::TestServer;
use serde_json::{json, Value};

const JSON: (&str, &str) = ("content-type", "application/json");
const GOOGLE: (&str, &str) = ("metadata-flavor", "Google");
const AZURE: (&str, &str) = ("metadata", "true");
const SA: &str = "/computeMetadata/v1/instance/service-accounts";
const TOKEN: &str = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net";

async fn put_role(server: &TestServer, name: &str, body: Value) {
    let response =
        server.admin().send(Method::PUT, &format!("/v1/roles/{name}"), &[JSON], body.to_string()).await.unwrap();
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
}

fn static_role(token: &str) -> Value {
    json!({"source": {"type": "static", "access_key_id": "AKIATOKENS", "secret_access_key": "s3cret",
                      "session_token": token, "expiration": "2099-01-01T00:00:00Z"}})
}

/// A role whose source never answers (STS on a port nobody listens on).
fn unreachable_role() -> Value {
    json!({"source": {"type": "sts", "role_arn": "arn:aws:iam::123456789012:role/app",
                      "endpoint": "http://127.0.0.1:9/"}})
}

async fn get(client: &Client, path: &str, header: (&str, &str)) -> Response {
    client.send(Method::GET, path, &[header], "").await.unwrap()
}

/// Polls until `path` answers `status` (bounded: 10 s); returns that answer.
async fn wait_for(client: &Client, path: &str, header: (&str, &str), status: StatusCode) -> Response {
    for _ in 0..200 {
        let response = get(client, path, header).await;
        if response.status == status {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let last = get(client, path, header).await;
    panic!("{path} never answered {status}; last: {} {}", last.status, last.text());
}

#[tokio::test]
async fn gce_tokens_follow_the_role() {
    let server = TestServer::start().await;
    server.create(json!({"id": "i-gtok", "ipv4": ["127.0.6.1"], "iam_role": "gce-app"})).await;
    server.create(json!({"id": "i-gnone", "ipv4": ["127.0.6.2"]})).await;
    server.create(json!({"id": "i-gbroken", "ipv4": ["127.0.6.3"], "iam_role": "gce-broken"})).await;
    let guest = server.guest_from("127.0.6.1");
    let path = format!("{SA}/default/token");
    // The role is not configured yet: no token.
    assert_eq!(get(&guest, &path, GOOGLE).await.status, StatusCode::NOT_FOUND);
    put_role(&server, "gce-app", static_role("ya29.static-token")).await;
    let token = wait_for(&guest, &path, GOOGLE, StatusCode::OK).await;
    assert_eq!(token.header("content-type"), Some("application/json"));
    assert_eq!(token.header("metadata-flavor"), Some("Google"));
    let text = token.text();
    let expires_in = token.json()["expires_in"].as_u64().unwrap();
    assert_eq!(
        text,
        format!(r#"{{"access_token":"ya29.static-token","expires_in":{expires_in},"token_type":"Bearer"}}"#)
    );
    assert!(expires_in > 365 * 86_400, "{expires_in}: until 2099");

    // No role: no service account at all.
    let none = server.guest_from("127.0.6.2");
    assert_eq!(get(&none, &format!("{SA}/"), GOOGLE).await.text(), "");
    assert_eq!(get(&none, &path, GOOGLE).await.status, StatusCode::NOT_FOUND);
    // A role without valid credentials: 503.
    put_role(&server, "gce-broken", unreachable_role()).await;
    let broken = server.guest_from("127.0.6.3");
    let refused = wait_for(&broken, &path, GOOGLE, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(refused.text().contains("gce-broken"), "{}", refused.text());
}

fn jwt_part(token: &str, index: usize) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(index).unwrap()).unwrap()).unwrap()
}

#[tokio::test]
async fn gce_identity_tokens_verify_against_the_published_keys() {
    let server = TestServer::start().await;
    server
        .create(json!({"id": "4815162342", "name": "web-1", "ipv4": ["127.0.6.4"], "iam_role": "gce-id",
                       "zone": "europe-west1-b", "account": {"id": "123456789012", "name": "acme-prod"}}))
        .await;
    let guest = server.guest_from("127.0.6.4");
    let path = format!("{SA}/default/identity?audience=https%3A%2F%2Fapi.example.com&format=full");
    // The signing key is generated at start; the token is served once it is loaded.
    let response = wait_for(&guest, &path, GOOGLE, StatusCode::OK).await;
    assert_eq!(response.header("content-type"), Some("application/text"));
    let token = response.text();
    let certificates = {
        let pem = get(&server.admin(), "/v1/signing/certificates", ("accept", "*/*")).await.text();
        imds_sign::parse_certificates(&pem).unwrap()
    };
    let claims = imds_sign::verify::jwt(&certificates, &token).unwrap();
    assert_eq!(claims["iss"], "https://accounts.google.com");
    assert_eq!(claims["aud"], "https://api.example.com");
    assert_eq!(claims["email"], "gce-id@acme-prod.iam.gserviceaccount.com");
    assert_eq!(claims["google"]["compute_engine"]["instance_id"], "4815162342");
    assert_eq!(claims["google"]["compute_engine"]["project_number"], 123_456_789_012_u64);
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 3600);
    // The header's kid is one of the published JWKS keys.
    let jwks = get(&server.admin(), "/v1/signing/jwks", ("accept", "application/json")).await.json();
    let kid = jwt_part(&token, 0)["kid"].as_str().unwrap().to_owned();
    assert!(jwks["keys"].as_array().unwrap().iter().any(|key| key["kid"] == kid.as_str()), "{kid} not in {jwks}");
    // A changed token does not verify; no audience is a 400.
    let forged = token.replacen('.', ".e30", 1);
    assert!(imds_sign::verify::jwt(&certificates, &forged).is_err());
    let no_audience = get(&guest, &format!("{SA}/default/identity"), GOOGLE).await;
    assert_eq!(no_audience.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn azure_tokens_follow_the_role() {
    let server = TestServer::start().await;
    server.create(json!({"id": "i-atok", "ipv4": ["127.0.6.5"], "iam_role": "az-app"})).await;
    server.create(json!({"id": "i-anone", "ipv4": ["127.0.6.6"]})).await;
    server.create(json!({"id": "i-abroken", "ipv4": ["127.0.6.7"], "iam_role": "az-broken"})).await;
    let not_found = r#"{"error":"invalid_request","error_description":"Identity not found"}"#;
    let guest = server.guest_from("127.0.6.5");
    let before = get(&guest, TOKEN, AZURE).await;
    assert_eq!((before.status, before.text()), (StatusCode::BAD_REQUEST, not_found.to_owned()));
    put_role(&server, "az-app", static_role("eyJ0eXAi.azure.token")).await;
    let token = wait_for(&guest, TOKEN, AZURE, StatusCode::OK).await;
    assert_eq!(token.header("content-type"), Some("application/json; charset=utf-8"));
    let json = token.json();
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "access_token",
            "client_id",
            "expires_in",
            "expires_on",
            "ext_expires_in",
            "not_before",
            "resource",
            "token_type"
        ]
    );
    assert_eq!(json["access_token"], "eyJ0eXAi.azure.token");
    assert_eq!(json["resource"], "https://vault.azure.net");
    assert_eq!(json["expires_on"], "4070908800", "2099-01-01T00:00:00Z");
    assert_eq!(json["client_id"], imds_dialects::azure::client_id("az-app"));
    assert!(json["expires_in"].as_str().unwrap().parse::<u64>().is_ok());

    let none = server.guest_from("127.0.6.6");
    let refused = get(&none, TOKEN, AZURE).await;
    assert_eq!((refused.status, refused.text()), (StatusCode::BAD_REQUEST, not_found.to_owned()));
    put_role(&server, "az-broken", unreachable_role()).await;
    let broken = server.guest_from("127.0.6.7");
    let failed = wait_for(&broken, TOKEN, AZURE, StatusCode::INTERNAL_SERVER_ERROR).await;
    assert_eq!(failed.json()["error"], "unknown_error");
}

/// Runs openssl; fails loudly when it is missing (scripts/test installs it).
fn openssl(args: &[&str]) -> std::process::Output {
    Command::new("openssl").args(args).output().unwrap_or_else(|e| {
        panic!("cannot run openssl ({e}): install it (Debian: apt-get install openssl); scripts/test does")
    })
}

#[tokio::test]
async fn azure_attested_documents_verify_with_openssl() {
    let server = TestServer::start().await;
    server.create(json!({"id": "i-attest", "ipv4": ["127.0.6.8"], "account": {"id": "sub-42"}})).await;
    let guest = server.guest_from("127.0.6.8");
    let path = "/metadata/attested/document?api-version=2021-02-01&nonce=1234567890";
    let response = wait_for(&guest, path, AZURE, StatusCode::OK).await;
    let json = response.json();
    assert_eq!(json["encoding"], "pkcs7");
    let signature = json["signature"].as_str().unwrap();
    assert!(!signature.contains('\n'));
    let dir = tempfile::tempdir().unwrap();
    let pem = get(&server.admin(), "/v1/signing/certificates", ("accept", "*/*")).await.text();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, &pem).unwrap();
    let p7 = dir.path().join("attested.der");
    std::fs::write(&p7, STANDARD.decode(signature).unwrap()).unwrap();
    let out = openssl(&[
        "smime",
        "-verify",
        "-in",
        p7.to_str().unwrap(),
        "-inform",
        "DER",
        "-certfile",
        cert.to_str().unwrap(),
        "-noverify",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let document: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(document["nonce"], "1234567890");
    assert_eq!(document["subscriptionId"], "sub-42");
    assert_eq!(
        document["vmId"],
        imds_dialects::azure::vm_id(&imds_model::Instance::new("i-attest".try_into().unwrap()))
    );
    assert!(document["timeStamp"]["createdOn"].as_str().unwrap().ends_with(" -0000"));
    // Also with imds's own checker.
    let certificates = imds_sign::parse_certificates(&pem).unwrap();
    assert_eq!(imds_sign::verify::pkcs7(&certificates, signature).unwrap(), out.stdout);
}
