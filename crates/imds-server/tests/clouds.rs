//! Scaleway and Exoscale on the listeners bound to them: Scaleway's user data only for a
//! privileged source port of the guest's own connection, Exoscale's password server with its
//! acknowledgement committed to the instance's guest state, each instance's password its own.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use http::{Method, StatusCode};
use imds_dialects::Dialect;
use imds_server::client::{Client, Response};
use imds_server::guest;
use imds_server::test_util::TestServer;
use imds_store::Key;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn start() -> (TestServer, SocketAddr, SocketAddr) {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let config = guest::Config {
        dialect_listen: vec![(Dialect::Scaleway, loopback), (Dialect::Exoscale, loopback)],
        unknown_hold: Duration::ZERO,
        ..guest::Config::default()
    };
    let server = TestServer::with_guest(config).await;
    let bound = &server.running.dialect_addrs;
    let (scaleway, exoscale) = (bound[0].1, bound[1].1);
    server
        .create(json!({"id": "i-a", "ipv4": ["127.0.11.1"], "hostname": "a", "user_data": "USER-DATA-A",
                       "dialects": {"exoscale": {"password": "pass-of-a"}}}))
        .await;
    server
        .create(json!({"id": "i-b", "ipv4": ["127.0.11.2"], "hostname": "b",
                       "dialects": {"exoscale": {"password": "pass-of-b"}}}))
        .await;
    (server, scaleway, exoscale)
}

/// `GET path` to `listener` from `source`, bound to `port` (0: any) — raw HTTP/1.1, since the
/// test needs the source port.
async fn from_port(listener: SocketAddr, source: [u8; 4], port: u16, path: &str) -> Option<(u16, String)> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    if socket.bind(SocketAddr::from((source, port))).is_err() {
        return None; // that privileged port is in use on this machine: the caller tries another
    }
    let mut stream = socket.connect(listener).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: 169.254.42.42\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await.unwrap().unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let status = raw.split(' ').nth(1).unwrap().parse().unwrap();
    let body = raw.split_once("\r\n\r\n").unwrap().1.to_owned();
    Some((status, body))
}

#[tokio::test]
async fn scaleway_user_data_needs_the_guest_s_privileged_port() {
    let (_server, scaleway, _) = start().await;
    let mut privileged = None;
    for port in (600..1000).step_by(7) {
        if let Some(answer) = from_port(scaleway, [127, 0, 11, 1], port, "/user_data/cloud-init").await {
            privileged = Some(answer);
            break;
        }
    }
    let (status, body) = privileged.expect("a free privileged port (the test runs as root)");
    assert_eq!((status, body.as_str()), (200, "USER-DATA-A"));
    let (status, body) = from_port(scaleway, [127, 0, 11, 1], 0, "/user_data/cloud-init").await.unwrap();
    assert_eq!(status, 403);
    assert!(!body.contains("USER-DATA"));
    // The document needs no privilege; it is the caller's own.
    let (status, body) = from_port(scaleway, [127, 0, 11, 2], 0, "/conf?format=json").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["hostname"], "b");
}

async fn replace(server: &TestServer, doc: serde_json::Value) {
    let path = format!("/v1/instances/{}", doc["id"].as_str().unwrap());
    let headers = [("content-type", "application/json")];
    let response = server.admin().send(Method::PUT, &path, &headers, doc.to_string()).await.unwrap();
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
}

async fn password(listener: SocketAddr, source: &str, ask: &str) -> Response {
    let client = Client::from_source(listener, source.parse().unwrap());
    client.send(Method::GET, "/1.0/", &[("DomU_Request", ask)], String::new()).await.unwrap()
}

#[tokio::test]
async fn exoscale_s_password_is_served_until_acknowledged() {
    let (server, _, exoscale) = start().await;
    assert_eq!(password(exoscale, "127.0.11.1", "send_my_password").await.text(), "pass-of-a");
    assert_eq!(password(exoscale, "127.0.11.2", "send_my_password").await.text(), "pass-of-b");
    let ack = password(exoscale, "127.0.11.1", "saved_password").await;
    assert_eq!((ack.status, ack.text().as_str()), (StatusCode::OK, "saved_password"));
    // Acknowledged: gone for a, still there for b.
    assert_eq!(password(exoscale, "127.0.11.1", "send_my_password").await.text(), "saved_password");
    assert_eq!(password(exoscale, "127.0.11.2", "send_my_password").await.text(), "pass-of-b");
    // The acknowledgement is in the store's guest state, without the password.
    let state = server.store.get(&Key::new(imds_server::view::STATE, "i-a")).await.unwrap().unwrap();
    let state = String::from_utf8(state.value.to_vec()).unwrap();
    assert!(state.contains("exoscale") && !state.contains("pass-of-a"), "{state}");
    // An admin replace with the same password keeps it acknowledged; a new one is served.
    replace(
        &server,
        json!({"id": "i-a", "ipv4": ["127.0.11.1"], "hostname": "a2",
                             "dialects": {"exoscale": {"password": "pass-of-a"}}}),
    )
    .await;
    assert_eq!(password(exoscale, "127.0.11.1", "send_my_password").await.text(), "saved_password");
    replace(&server, json!({"id": "i-a", "ipv4": ["127.0.11.1"], "dialects": {"exoscale": {"password": "new-pass"}}}))
        .await;
    assert_eq!(password(exoscale, "127.0.11.1", "send_my_password").await.text(), "new-pass");
    // The main listener never serves it.
    let main = password(server.guest_addr, "127.0.11.2", "send_my_password").await;
    assert!(!main.text().contains("pass-of-b"), "{}", main.text());
    // An unknown caller learns nothing.
    let unknown = password(exoscale, "127.0.11.9", "send_my_password").await;
    assert_eq!(unknown.text(), "saved_password");
}

/// A request on the listener it is served on: `(bound, method, path, headers)`, `bound`
/// naming the dialect listener (else the main one).
type Probe = (Option<Dialect>, Method, &'static str, &'static [(&'static str, &'static str)]);

/// One request per new dialect.
const REQUESTS: &[Probe] = &[
    (None, Method::PUT, "/v1/token", &[("metadata-token-expiry-seconds", "60")]),
    (None, Method::GET, "/v1.json", &[]),
    (None, Method::GET, "/metadata/v1.json", &[]),
    (None, Method::GET, "/1.0/user-data", &[]),
    (Some(Dialect::Scaleway), Method::GET, "/conf?format=json", &[]),
    (Some(Dialect::Exoscale), Method::GET, "/", &[("domu_request", "send_my_password")]),
];

/// The refusal's status and a marker of its dialect's body.
fn refused_shape(path: &str, bound: Option<Dialect>, refusal: &str) -> (StatusCode, &'static str) {
    match (bound, path, refusal) {
        (Some(Dialect::Exoscale), _, "throttled") => (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests"),
        (Some(Dialect::Exoscale), _, _) => (StatusCode::OK, "saved_password"),
        (_, "/v1/token", "throttled") => {
            (StatusCode::TOO_MANY_REQUESTS, r#"{"errors":[{"reason":"Too Many Requests"}]}"#)
        }
        (_, "/v1/token", _) => (StatusCode::FORBIDDEN, r#"{"errors":[{"reason":"Forbidden"}]}"#),
        (_, "/1.0/user-data", "throttled") => (StatusCode::TOO_MANY_REQUESTS, "<title>429 Too Many Requests</title>"),
        (_, "/1.0/user-data", _) => (StatusCode::FORBIDDEN, "<title>403 Forbidden</title>"),
        (_, _, "throttled") => (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n"),
        (_, _, _) => (StatusCode::FORBIDDEN, "Forbidden\n"),
    }
}

fn new_clouds(id: &str, ip: &str, endpoint: &str) -> serde_json::Value {
    json!({"id": id, "ipv4": [ip], "user_data": "SECRET-USER-DATA", "imds": {"endpoint": endpoint},
           "dialects": {"enabled": ["linode", "vultr", "upcloud", "exoscale", "scaleway"],
                        "exoscale": {"password": "SECRET-PASSWORD"}}})
}

async fn send(server: &TestServer, bound: Option<Dialect>, source: &str, request: &Probe) -> Response {
    let listener = match bound {
        Some(dialect) => server.running.dialect_addrs.iter().find(|(d, _)| *d == dialect).unwrap().1,
        None => server.guest_addr,
    };
    let (_, method, path, headers) = request;
    Client::from_source(listener, source.parse().unwrap())
        .send(method.clone(), path, headers, String::new())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_disabled_endpoint_or_a_spent_budget_closes_the_new_dialects_in_their_shapes() {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let listen = vec![(Dialect::Scaleway, loopback), (Dialect::Exoscale, loopback)];
    let config =
        guest::Config { dialect_listen: listen.clone(), unknown_hold: Duration::ZERO, ..guest::Config::default() };
    let server = TestServer::with_guest(config).await;
    server.create(new_clouds("i-open", "127.0.12.1", "enabled")).await;
    server.create(new_clouds("i-shut", "127.0.12.2", "disabled")).await;
    let throttle = guest::throttle::Throttle { per_second: 1, burst: 1 };
    let config =
        guest::Config { dialect_listen: listen, throttle, unknown_hold: Duration::ZERO, ..guest::Config::default() };
    let tight = TestServer::with_guest(config).await;
    tight.create(new_clouds("i-busy", "127.0.12.3", "enabled")).await;
    for request in REQUESTS {
        let bound = request.0;
        let open = send(&server, bound, "127.0.12.1", request).await;
        assert_eq!(open.status, StatusCode::OK, "{}: {}", request.2, open.text());
        for (response, refusal) in [
            (send(&server, bound, "127.0.12.2", request).await, "disabled"),
            (
                {
                    // Whichever request finds the budget spent is refused; one that found a
                    // request returned to it (a second passed) spends it, so the next is refused.
                    let first = send(&tight, bound, "127.0.12.3", request).await;
                    if first.status == StatusCode::OK {
                        send(&tight, bound, "127.0.12.3", request).await
                    } else {
                        first
                    }
                },
                "throttled",
            ),
        ] {
            let (status, marker) = refused_shape(request.2, bound, refusal);
            let body = response.text();
            assert_eq!(response.status, status, "{refusal} {}: {body}", request.2);
            assert!(body.contains(marker), "{refusal} {}: {body}", request.2);
            assert!(!body.contains("SECRET"), "{refusal} {} leaks: {body}", request.2);
        }
    }
}
