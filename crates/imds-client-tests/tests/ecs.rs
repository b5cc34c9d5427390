//! The AWS SDK for Rust's container credentials provider (`aws_config::ecs`), unmodified, against
//! a listener bound to `container`: the EKS Pod Identity form, a full URI with the token from
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` or `AWS_CONTAINER_AUTHORIZATION_TOKEN`.
//!
//! The provider reads the process environment, which tests never change: the test runs the
//! provider in a child process of this test binary (its ignored test `provider_in_child`),
//! giving it the environment a container would have.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use aws_config::ecs::EcsCredentialsProvider;
use aws_credential_types::provider::ProvideCredentials;
use http::{Method, StatusCode};
use imds_model::Dialect;
use imds_server::guest;
use imds_server::test_util::TestServer;
use serde_json::json;

const JSON: (&str, &str) = ("content-type", "application/json");
/// What the child must find: an access key id, or `refused`.
const EXPECT: &str = "IMDS_TEST_ECS_EXPECT";

/// Runs [`provider_in_child`] with `env` (and none of the caller's container variables).
fn run_child(env: &[(&str, &str)]) {
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command.args(["--exact", "provider_in_child", "--ignored", "--nocapture", "--test-threads=1"]);
    for name in [
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the provider's run failed ({env:?}):\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn the_sdk_container_provider_gets_the_workloads_role_credentials() {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let config = guest::Config { dialect_listen: vec![(Dialect::Container, loopback)], ..guest::Config::default() };
    let server = TestServer::with_guest(config).await;
    let listener = server.running.dialect_addrs[0].1;
    let role = json!({"source": {"type": "static", "access_key_id": "ASIARUSTCONTAINER1", "secret_access_key": "rust-secret",
                                 "session_token": "rust-session", "expiration": "2099-01-01T00:00:00Z"}});
    let put = server.admin().send(Method::PUT, "/v1/roles/pod-role", &[JSON], role.to_string()).await.unwrap();
    assert_eq!(put.status, StatusCode::CREATED);
    // The SDK connects from 127.0.0.1: the node running the pod.
    server.create(json!({"id": "i-eks-node", "ipv4": ["127.0.0.1"]})).await;
    let issued = server
        .admin()
        .send(
            Method::POST,
            "/v1/instances/i-eks-node/container-tokens",
            &[JSON],
            json!({"workload": "default/web", "role": "pod-role"}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(issued.status, StatusCode::CREATED, "{}", issued.text());
    let token = issued.json()["token"].as_str().unwrap().to_owned();
    let full_uri = format!("http://{listener}/v1/credentials");

    // The token from a file, as EKS mounts it; then from the variable; then one never issued.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("eks-pod-identity-token");
    std::fs::write(&file, &token).unwrap();
    let file = file.to_str().unwrap().to_owned();
    tokio::task::spawn_blocking(move || {
        let uri = ("AWS_CONTAINER_CREDENTIALS_FULL_URI", full_uri.as_str());
        let file = file.as_str();
        run_child(&[uri, ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", file), (EXPECT, "ASIARUSTCONTAINER1")]);
        run_child(&[uri, ("AWS_CONTAINER_AUTHORIZATION_TOKEN", &token), (EXPECT, "ASIARUSTCONTAINER1")]);
        run_child(&[uri, ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "not-issued"), (EXPECT, "refused")]);
    })
    .await
    .unwrap();
}

/// The provider as a container runs it, with the environment [`run_child`] gives.
#[tokio::test]
#[ignore = "run by the_sdk_container_provider_gets_the_workloads_role_credentials in a child process"]
async fn provider_in_child() {
    let expect = std::env::var(EXPECT).expect("run by its parent test, which sets the environment");
    let provider = EcsCredentialsProvider::builder().connect_timeout(Duration::from_secs(5)).build();
    let result = provider.provide_credentials().await;
    match expect.as_str() {
        "refused" => {
            let error = result.unwrap_err();
            assert!(!format!("{error:?}").contains("rust-secret"));
        }
        key => {
            let credentials = result.unwrap();
            assert_eq!(credentials.access_key_id(), key);
            assert_eq!(credentials.secret_access_key(), "rust-secret");
            assert_eq!(credentials.session_token(), Some("rust-session"));
            assert!(credentials.expiry().is_some());
        }
    }
}
