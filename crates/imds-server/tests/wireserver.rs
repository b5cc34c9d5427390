//! Azure's WireServer listener over real sockets: off by default; when configured, the goal
//! state and health report for the caller's own instance, nothing for unknown callers, and no
//! metadata paths on it.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use http::{Method, StatusCode};
use imds_server::client::Client;
use imds_server::guest;
use imds_server::test_util::TestServer;
use serde_json::json;

const GUEST: &str = "127.0.6.1";
const OTHER: &str = "127.0.6.2";
const VM_ID: &str = "3c8a0e53-95f7-4c0b-9a8e-6d3b2c1f7a42";

async fn server() -> (TestServer, SocketAddr) {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let server =
        TestServer::with_guest(guest::Config { azure_wireserver_listen: vec![loopback], ..Default::default() }).await;
    server
        .create(json!({"id": VM_ID, "name": "web-1", "ipv4": [GUEST], "mac": ["00:0d:3a:06:00:01"], "region": "westeurope"}))
        .await;
    let wire = server.running.wireserver_addrs[0];
    (server, wire)
}

fn element<'a>(xml: &'a str, name: &str) -> &'a str {
    let start = xml.find(&format!("<{name}>")).unwrap() + name.len() + 2;
    let end = xml[start..].find(&format!("</{name}>")).unwrap() + start;
    &xml[start..end]
}

/// cloud-init 22.4's health report template, as its Azure datasource posts it.
fn health(incarnation: &str, container: &str, instance: &str, state: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Health xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\">\n  <GoalStateIncarnation>{incarnation}</GoalStateIncarnation>\n  <Container>\n    <ContainerId>{container}</ContainerId>\n    <RoleInstanceList>\n      <Role>\n        <InstanceId>{instance}</InstanceId>\n        <Health>\n          <State>{state}</State>\n        </Health>\n      </Role>\n    </RoleInstanceList>\n  </Container>\n</Health>\n"
    )
}

const AGENT: [(&str, &str); 2] = [("x-ms-agent-name", "WALinuxAgent"), ("x-ms-version", "2012-11-30")];

#[tokio::test]
async fn off_by_default() {
    let server = TestServer::start().await;
    assert!(server.running.wireserver_addrs.is_empty());
}

#[tokio::test]
async fn goal_state_then_ready_as_cloud_init_does() {
    let (_server, wire) = server().await;
    let client = Client::from_source(wire, GUEST.parse().unwrap());
    let goal = client.send(Method::GET, "/machine/?comp=goalstate", &AGENT, "").await.unwrap();
    assert_eq!(goal.status, StatusCode::OK);
    assert_eq!(goal.header("content-type"), Some("text/xml; charset=utf-8"));
    let xml = goal.text();
    assert_eq!(element(&xml, "Incarnation"), "1");
    assert_eq!(element(&xml, "InstanceId"), format!("{VM_ID}.web-1"));
    let container = element(&xml, "ContainerId").to_owned();
    assert!(uuid_like(&container), "{container}");

    let mut headers = AGENT.to_vec();
    headers.push(("content-type", "text/xml; charset=utf-8"));
    let ready = health("1", &container, &format!("{VM_ID}.web-1"), "Ready");
    let posted = client.send(Method::POST, "/machine?comp=health", &headers, ready).await.unwrap();
    assert_eq!(posted.status, StatusCode::OK, "{}", posted.text());
    // A report naming another container is refused.
    let wrong = health("1", "00000000-0000-4000-8000-000000000000", &format!("{VM_ID}.web-1"), "Ready");
    let refused = client.send(Method::POST, "/machine?comp=health", &headers, wrong).await.unwrap();
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);

    let versions = client.send(Method::GET, "/?comp=versions", &AGENT, "").await.unwrap();
    assert_eq!(versions.status, StatusCode::OK);
    assert!(versions.text().contains("<Version>2012-11-30</Version>"));
}

#[tokio::test]
async fn unknown_callers_get_nothing_and_metadata_is_not_served_there() {
    let (server, wire) = server().await;
    let stranger = Client::from_source(wire, OTHER.parse().unwrap());
    let answer = stranger.send(Method::GET, "/machine/?comp=goalstate", &AGENT, "").await.unwrap();
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(!answer.text().contains(VM_ID));

    let guest = Client::from_source(wire, GUEST.parse().unwrap());
    let metadata = guest
        .send(Method::GET, "/metadata/instance?api-version=2021-08-01", &[("metadata", "true")], "")
        .await
        .unwrap();
    assert_eq!(metadata.status, StatusCode::NOT_FOUND);
    // And the guest plane does not answer WireServer paths with a goal state.
    let plane = server.guest_from(GUEST).send(Method::GET, "/machine/?comp=goalstate", &AGENT, "").await.unwrap();
    assert!(!plane.text().contains("<GoalState"), "{}", plane.text());
}

fn uuid_like(text: &str) -> bool {
    text.len() == 36 && text.chars().filter(|c| *c == '-').count() == 4
}

/// The WireServer admits callers exactly as the metadata listener does: a goal-state request
/// that arrives before its instance's record is held until the record lands.
#[tokio::test]
async fn a_caller_whose_record_lands_while_it_waits_is_answered() {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let server = TestServer::with_guest(guest::Config {
        azure_wireserver_listen: vec![loopback],
        unknown_hold: std::time::Duration::from_secs(5),
        ..Default::default()
    })
    .await;
    let wire = server.running.wireserver_addrs[0];
    let early = tokio::spawn(async move {
        Client::from_source(wire, GUEST.parse().unwrap())
            .send(Method::GET, "/machine/?comp=goalstate", &AGENT, "")
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!early.is_finished(), "an unknown caller is held, not refused at once");
    server.create(json!({"id": VM_ID, "ipv4": [GUEST], "mac": ["00:0d:3a:06:00:01"]})).await;
    let goal = early.await.unwrap().unwrap();
    assert_eq!(goal.status, StatusCode::OK, "{}", goal.text());
    assert!(goal.text().contains("<GoalState"), "{}", goal.text());
}
