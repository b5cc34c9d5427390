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
