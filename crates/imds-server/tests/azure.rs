//! The Azure dialect over real sockets: the refusals clients rely on (missing `Metadata`
//! header, bad `api-version`, `X-Forwarded-For`) with Azure's bodies, text leaves, and prompt
//! answers to callers no instance claims.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use http::{Method, StatusCode};
use imds_server::test_util::TestServer;
use serde_json::json;

/// A bound on "promptly". azure-identity probes with a one-second timeout (cloud-init with two)
/// and imds answers in microseconds; three seconds keeps a loaded machine from failing the test
/// while still catching a server that waits for anything (a body, the store, a retry).
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

const GUEST: &str = "127.0.5.1";
const INSTANCE: &str = "/metadata/instance?api-version=2021-08-01&extended=true";

async fn server_with_guest() -> TestServer {
    let server = TestServer::start().await;
    server
        .create(json!({
            "id": "a1b2c3d4-0000-4000-8000-00000000a001",
            "hostname": "vm-azure",
            "default_user": "azureuser",
            "ipv4": [GUEST],
            "mac": ["00:0d:3a:05:00:01"],
            "region": "westeurope",
            "user_data": "#cloud-config\n",
            "tags": {"env": "test"},
            "dialects": {"azure": {"resourceGroupName": "rg-1"}}
        }))
        .await;
    server
}

#[tokio::test]
async fn the_instance_document_is_served_with_the_header_and_refused_without_it() {
    let server = server_with_guest().await;
    let guest = server.guest_from(GUEST).with_timeout(PROBE_TIMEOUT);

    let response = guest.send(Method::GET, INSTANCE, &[("Metadata", "true")], "").await.unwrap();
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json; charset=utf-8"));
    assert_eq!(response.header("content-length"), Some(response.body.len().to_string().as_str()));
    let document = response.json();
    assert_eq!(document["compute"]["vmId"], "a1b2c3d4-0000-4000-8000-00000000a001");
    assert_eq!(document["compute"]["osProfile"]["computerName"], "vm-azure");
    assert_eq!(document["compute"]["resourceGroupName"], "rg-1");
    assert_eq!(document["compute"]["tags"], "env:test");
    assert_eq!(document["compute"]["userData"], "I2Nsb3VkLWNvbmZpZwo=");
    assert_eq!(document["network"]["interface"][0]["macAddress"], "000D3A050001");
    assert_eq!(document["network"]["interface"][0]["ipv4"]["ipAddress"][0]["privateIpAddress"], GUEST);
    assert_eq!(document["extended"]["compute"]["ppsType"], "None");

    for headers in [&[][..], &[("Metadata", "false")][..]] {
        let refused = guest.send(Method::GET, INSTANCE, headers, "").await.unwrap();
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert_eq!(refused.header("content-type"), Some("application/json; charset=utf-8"));
        assert_eq!(refused.json(), json!({"error": "Bad request. Required metadata header not specified"}));
    }
}

#[tokio::test]
async fn a_missing_or_unknown_api_version_gets_azures_400() {
    let server = server_with_guest().await;
    let guest = server.guest_from(GUEST);
    let expected = json!({
        "error": "Bad request. api-version is invalid or was not specified in the request. For more information refer to aka.ms/azureimds",
        "newest-versions": ["2025-04-07", "2024-07-17", "2024-03-15"]
    });
    for target in ["/metadata/instance", "/metadata/instance?api-version=2016-01-01", "/metadata/instance?format=json"]
    {
        let response = guest.send(Method::GET, target, &[("Metadata", "true")], "").await.unwrap();
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{target}");
        assert_eq!(response.json(), expected, "{target}");
    }
    let versions = guest.send(Method::GET, "/metadata/versions", &[("Metadata", "true")], "").await.unwrap();
    assert_eq!(versions.status, StatusCode::OK);
    assert!(versions.json()["apiVersions"].as_array().unwrap().contains(&json!("2021-08-01")));
}

#[tokio::test]
async fn forwarded_for_is_refused_and_never_identifies_anyone() {
    let server = server_with_guest().await;
    let guest = server.guest_from(GUEST);
    let headers = [("Metadata", "true"), ("X-Forwarded-For", "10.9.9.9")];
    let refused = guest.send(Method::GET, INSTANCE, &headers, "").await.unwrap();
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.json(), json!({"error": "Bad request. Request contains an X-Forwarded-For header"}));

    // A stranger naming the guest's address in the header is still a stranger.
    let stranger = server.guest_from("127.0.5.2");
    let spoofed = stranger.send(Method::GET, INSTANCE, &[("Metadata", "true"), ("X-Forwarded-For", GUEST)], "").await;
    let spoofed = spoofed.unwrap();
    assert_eq!(spoofed.status, StatusCode::NOT_FOUND);
    assert!(!spoofed.text().contains("vm-azure"), "{}", spoofed.text());
}

#[tokio::test]
async fn leaves_are_served_as_text() {
    let server = server_with_guest().await;
    let guest = server.guest_from(GUEST);
    let target = "/metadata/instance/compute/vmId?api-version=2021-08-01&format=text";
    let leaf = guest.send(Method::GET, target, &[("Metadata", "true")], "").await.unwrap();
    assert_eq!(leaf.status, StatusCode::OK);
    assert_eq!(leaf.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(leaf.text(), "a1b2c3d4-0000-4000-8000-00000000a001");
    let target =
        "/metadata/instance/network/interface/0/ipv4/ipAddress/0/privateIpAddress?api-version=2017-08-01&format=text";
    let address = guest.send(Method::GET, target, &[("Metadata", "true")], "").await.unwrap();
    assert_eq!((address.status, address.text().as_str()), (StatusCode::OK, GUEST));
}

#[tokio::test]
async fn callers_no_instance_claims_get_a_prompt_refusal() {
    let server = server_with_guest().await;
    // Probes come with a one-second timeout; the answer must beat it with or without the header.
    let stranger = server.guest_from("127.0.5.3").with_timeout(PROBE_TIMEOUT);
    for headers in [&[("Metadata", "true")][..], &[][..]] {
        for target in [INSTANCE, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://x/"] {
            // Azure's own answers: nothing here, and no identity (so credential chains move on).
            let response = stranger.send(Method::GET, target, headers, "").await.unwrap();
            let expected = if target == INSTANCE {
                (StatusCode::NOT_FOUND, json!({"error": "Not found"}))
            } else {
                (
                    StatusCode::BAD_REQUEST,
                    json!({"error": "invalid_request", "error_description": "Identity not found"}),
                )
            };
            assert_eq!((response.status, response.json()), expected, "{target}");
        }
    }
}

#[tokio::test]
async fn the_identity_probe_without_the_header_gets_a_prompt_400() {
    let server = server_with_guest().await;
    let guest = server.guest_from(GUEST).with_timeout(PROBE_TIMEOUT);
    let token = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F";
    let probe = guest.get(token).await.unwrap();
    assert_eq!(probe.status, StatusCode::BAD_REQUEST);
    assert_eq!(probe.json()["error_description"], "Required metadata header not specified");
    let request = guest.send(Method::GET, token, &[("Metadata", "true")], "").await.unwrap();
    assert_eq!(request.status, StatusCode::BAD_REQUEST);
    assert_eq!(request.json(), json!({"error": "invalid_request", "error_description": "Identity not found"}));
}

#[tokio::test]
async fn the_admin_api_refuses_a_bad_azure_override_block_and_keeps_the_record() {
    let server = server_with_guest().await;
    let admin = server.admin();
    let id = "a1b2c3d4-0000-4000-8000-00000000a001";
    let bad = json!({
        "id": id,
        "ipv4": [GUEST],
        "dialects": {"azure": {"vmSize": 2, "vmId": "not-a-uuid", "subscription": "s", "plan": {"name": []}}}
    });
    for method in [Method::PUT, Method::PATCH] {
        let response = admin
            .send(
                method.clone(),
                &format!("/v1/instances/{id}"),
                &[("content-type", "application/json")],
                bad.to_string(),
            )
            .await
            .unwrap();
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{method}: {}", response.text());
        let error = &response.json()["error"];
        assert_eq!(error["code"], "invalid_instance");
        let fields: Vec<&str> =
            error["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
        assert_eq!(
            fields,
            ["dialects.azure.vmSize", "dialects.azure.vmId", "dialects.azure.subscription", "dialects.azure.plan.name"],
            "{method}"
        );
    }
    // Nothing changed: the guest still sees the original overrides.
    let guest = server.guest_from(GUEST);
    let target = "/metadata/instance/compute/resourceGroupName?api-version=2021-08-01&format=text";
    let response = guest.send(Method::GET, target, &[("Metadata", "true")], "").await.unwrap();
    assert_eq!(response.text(), "rg-1");
}
