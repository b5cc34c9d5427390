//! The AWS SDK for Rust's own IMDS client (`aws_config::imds`), which speaks IMDSv2 only.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use aws_config::imds::region::ImdsRegionProvider;
use aws_config::imds::Client;
use http::Method;
use imds_server::test_util::TestServer;
use serde_json::json;

fn sdk_client(server: &TestServer) -> Client {
    Client::builder().endpoint(format!("http://{}", server.guest_addr).as_str()).unwrap().build()
}

#[tokio::test]
async fn the_sdk_reads_instance_id_region_and_user_data() {
    let server = TestServer::start().await;
    // The SDK connects from 127.0.0.1, so that is the instance's address.
    let user_data = "#!/bin/sh\necho from-imds\n";
    server
        .create(json!({"id": "i-0aws0sdk0rust0001", "ipv4": ["127.0.0.1"], "region": "ap-southeast-2",
            "zone": "ap-southeast-2c", "user_data": user_data, "imds": {"tokens": "required"}}))
        .await;
    let client = sdk_client(&server);

    let id = client.get("/latest/meta-data/instance-id").await.unwrap();
    assert_eq!(id.as_ref(), "i-0aws0sdk0rust0001");
    let data = client.get("/latest/user-data").await.unwrap();
    assert_eq!(data.as_ref(), user_data);
    let region = ImdsRegionProvider::builder().imds_client(client.clone()).build().region().await;
    assert_eq!(region.map(|r| r.to_string()).as_deref(), Some("ap-southeast-2"));
}

#[tokio::test]
async fn the_sdk_sees_a_disabled_endpoint_as_an_error() {
    let server = TestServer::start().await;
    server.create(json!({"id": "i-off", "ipv4": ["127.0.0.1"]})).await;
    let client = sdk_client(&server);
    assert_eq!(client.get("/latest/meta-data/instance-id").await.unwrap().as_ref(), "i-off");

    let body = json!({"imds": {"endpoint": "disabled"}}).to_string();
    let headers = [("content-type", "application/merge-patch+json")];
    let patched = server.admin().send(Method::PATCH, "/v1/instances/i-off", &headers, body).await.unwrap();
    assert_eq!(patched.status, http::StatusCode::OK);
    // A new client: the old one holds a token, and a disabled endpoint refuses even the token PUT.
    assert!(sdk_client(&server).get("/latest/meta-data/instance-id").await.is_err());
}

/// A `process` role whose command issues `ASIAROTATING000<n>` on its n-th run.
fn counting_role(dir: &std::path::Path) -> serde_json::Value {
    let counter = dir.join("n");
    let script = dir.join("creds.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nn=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}\n\
             printf '{{\"Version\": 1, \"AccessKeyId\": \"ASIAROTATING000%d\", \"SecretAccessKey\": \"secret-%d\", \
             \"SessionToken\": \"token-%d\", \"Expiration\": \"2099-01-01T00:00:00Z\"}}' $n $n $n\n",
            c = counter.display()
        ),
    )
    .unwrap();
    json!({"source": {"type": "process", "command": ["/bin/sh", script.to_str().unwrap()]}})
}

#[tokio::test]
async fn the_sdk_imds_credentials_provider_gets_the_role_keys_across_a_rotation() {
    use aws_config::imds::credentials::ImdsCredentialsProvider;
    use aws_credential_types::provider::ProvideCredentials;

    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let headers = [("content-type", "application/json")];
    let body = counting_role(dir.path()).to_string();
    let role = server.admin().send(Method::PUT, "/v1/roles/sdk-role", &headers, body).await.unwrap();
    assert_eq!(role.status, http::StatusCode::CREATED);
    server
        .create(
            json!({"id": "i-sdk-creds", "ipv4": ["127.0.0.1"], "iam_role": "sdk-role", "imds": {"tokens": "required"}}),
        )
        .await;
    let provider = ImdsCredentialsProvider::builder().imds_client(sdk_client(&server)).build();

    let wait_for = |key: &'static str| {
        let provider = &provider;
        async move {
            for _ in 0..200 {
                if let Ok(credentials) = provider.provide_credentials().await {
                    if credentials.access_key_id() == key {
                        return credentials;
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!("the SDK never received {key}");
        }
    };
    let first = wait_for("ASIAROTATING0001").await;
    assert_eq!(first.secret_access_key(), "secret-1");
    assert_eq!(first.session_token(), Some("token-1"));
    assert!(first.expiry().is_some(), "the SDK parsed Expiration");

    let refreshed = server.admin().send(Method::POST, "/v1/roles/sdk-role/refresh", &[], "").await.unwrap();
    assert_eq!(refreshed.status, http::StatusCode::ACCEPTED);
    let second = wait_for("ASIAROTATING0002").await;
    assert_eq!(second.secret_access_key(), "secret-2");
}
