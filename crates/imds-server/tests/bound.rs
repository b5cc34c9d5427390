//! Listeners bound to one dialect (`guest.dialect_listen`): every path on such a listener is
//! that dialect's, its refusals are in that dialect's shape, and callers are identified by
//! source exactly as on the main listener.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use http::{Method, StatusCode};
use imds_dialects::Dialect;
use imds_server::client::{Client, Response};
use imds_server::guest;
use imds_server::test_util::TestServer;
use serde_json::json;

async fn start() -> (TestServer, SocketAddr, SocketAddr) {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let config = guest::Config {
        dialect_listen: vec![(Dialect::OpenStack, loopback), (Dialect::Gce, loopback)],
        unknown_hold: Duration::ZERO,
        ..guest::Config::default()
    };
    let server = TestServer::with_guest(config).await;
    let bound = &server.running.dialect_addrs;
    assert_eq!(bound.iter().map(|(d, _)| *d).collect::<Vec<_>>(), [Dialect::OpenStack, Dialect::Gce]);
    let (openstack, gce) = (bound[0].1, bound[1].1);
    assert!(openstack != server.guest_addr && gce != server.guest_addr && openstack != gce);
    server
        .create(json!({"id": "i-all", "ipv4": ["127.0.10.1"], "hostname": "all", "user_data": "USER-DATA-ALL"}))
        .await;
    server
        .create(json!({"id": "i-ec2", "ipv4": ["127.0.10.2"], "user_data": "USER-DATA-EC2",
                       "dialects": {"enabled": ["ec2"]}}))
        .await;
    server
        .create(json!({"id": "i-shut", "ipv4": ["127.0.10.3"], "user_data": "USER-DATA-SHUT",
                       "imds": {"endpoint": "disabled"}}))
        .await;
    (server, openstack, gce)
}

async fn get(listener: SocketAddr, source: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let client = Client::from_source(listener, source.parse().unwrap());
    client.send(Method::GET, path, headers, String::new()).await.unwrap()
}

#[tokio::test]
async fn a_bound_listener_answers_only_its_dialect() {
    let (server, openstack, gce) = start().await;
    // The main listener routes by path; the bound one speaks OpenStack whatever the path.
    let main = get(server.guest_addr, "127.0.10.1", "/latest/user-data", &[]).await;
    assert_eq!((main.status, main.text().as_str()), (StatusCode::OK, "USER-DATA-ALL"));
    let served = get(openstack, "127.0.10.1", "/openstack/latest/user_data", &[]).await;
    assert_eq!((served.status, served.text().as_str()), (StatusCode::OK, "USER-DATA-ALL"));
    let ec2_path = get(openstack, "127.0.10.1", "/latest/user-data", &[]).await;
    assert_eq!(ec2_path.status, StatusCode::NOT_FOUND);
    assert!(ec2_path.text().contains("<h1>404 Not Found</h1>"), "Nova's page: {}", ec2_path.text());
    assert!(!ec2_path.text().contains("USER-DATA"));
    assert_eq!(ec2_path.header("server"), None, "no EC2 header on an OpenStack listener");
    // Another dialect's path on the GCE listener is GCE's not-found.
    let flavor = [("metadata-flavor", "Google")];
    let hostname = get(gce, "127.0.10.1", "/computeMetadata/v1/instance/hostname", &flavor).await;
    assert_eq!(hostname.status, StatusCode::OK, "{}", hostname.text());
    assert!(hostname.text().starts_with("all"), "{}", hostname.text());
    let foreign = get(gce, "127.0.10.1", "/openstack/latest/user_data", &flavor).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    assert_eq!(foreign.header("content-type"), Some("text/html; charset=UTF-8"));
    assert!(!foreign.text().contains("USER-DATA"));
}

#[tokio::test]
async fn refusals_on_a_bound_listener_take_its_dialects_shape() {
    let (_server, openstack, gce) = start().await;
    // Not enabled for the instance: the dialect's not-found answer, no data.
    let not_enabled = get(openstack, "127.0.10.2", "/openstack/latest/user_data", &[]).await;
    assert_eq!(not_enabled.status, StatusCode::NOT_FOUND);
    assert!(not_enabled.text().contains("<h1>404 Not Found</h1>"), "{}", not_enabled.text());
    assert!(!not_enabled.text().contains("USER-DATA"));
    // An unknown caller on an EC2 path gets GCE's 404, not EC2's 403.
    let unknown = get(gce, "127.0.10.9", "/latest/user-data", &[]).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.header("content-type"), Some("text/html; charset=UTF-8"));
    assert!(unknown.text().contains("<b>404.</b>"), "{}", unknown.text());
    // A disabled endpoint closes the bound dialect too, in its shape.
    let shut = get(openstack, "127.0.10.3", "/latest/user-data", &[]).await;
    assert_eq!(shut.status, StatusCode::FORBIDDEN);
    assert!(shut.text().contains("<h1>403 Forbidden</h1>"), "{}", shut.text());
    assert!(!shut.text().contains("USER-DATA"));
}

#[tokio::test]
async fn callers_on_a_bound_listener_are_identified_by_source_alone() {
    let (_server, openstack, _gce) = start().await;
    // A forged forwarding header does not make i-all's caller someone else, nor the reverse.
    let forged = [("x-forwarded-for", "127.0.10.1"), ("forwarded", "for=127.0.10.1")];
    let response = get(openstack, "127.0.10.2", "/openstack/latest/user_data", &forged).await;
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert!(!response.text().contains("USER-DATA-ALL"));
    let nobody = get(openstack, "127.0.10.8", "/openstack/latest/user_data", &forged).await;
    assert_eq!(nobody.status, StatusCode::NOT_FOUND);
    assert!(!nobody.text().contains("USER-DATA"));
}
