//! IMDSv2 over real sockets: tokens bound to the instance, settings that take effect at once,
//! tokens every node accepts, and the hop limit of token replies.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use imds_server::client::Client;
use imds_server::test_util::TestServer;
use imds_store::memory::MemoryStore;
use imds_store::Store;
use serde_json::json;

const TTL: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const TOKEN: &str = "x-aws-ec2-metadata-token";

async fn mint(guest: &Client, ttl: &str) -> String {
    let response = guest.send(Method::PUT, "/latest/api/token", &[(TTL, ttl)], "").await.unwrap();
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(response.header(TTL), Some(ttl));
    response.text()
}

async fn patch(server: &TestServer, id: &str, imds: serde_json::Value) {
    let body = json!({ "imds": imds }).to_string();
    let headers = [("content-type", "application/merge-patch+json")];
    let response = server.admin().send(Method::PATCH, &format!("/v1/instances/{id}"), &headers, body).await.unwrap();
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
}

#[tokio::test]
async fn tokens_are_bound_to_the_instance_and_report_their_remaining_life() {
    let server = TestServer::start().await;
    server.create(json!({"id": "i-31", "ipv4": ["127.0.0.31"]})).await;
    server.create(json!({"id": "i-32", "ipv4": ["127.0.0.32"]})).await;
    let (a, b) = (server.guest_from("127.0.0.31"), server.guest_from("127.0.0.32"));

    let token = mint(&a, "21600").await;
    let with_token = a.send(Method::GET, "/latest/meta-data/instance-id", &[(TOKEN, &token)], "").await.unwrap();
    assert_eq!((with_token.status, with_token.text().as_str()), (StatusCode::OK, "i-31"));
    let left: u64 = with_token.header(TTL).unwrap().parse().unwrap();
    assert!((21_598..=21_600).contains(&left), "{left}");

    let stolen = b.send(Method::GET, "/latest/meta-data/instance-id", &[(TOKEN, &token)], "").await.unwrap();
    assert_eq!(stolen.status, StatusCode::UNAUTHORIZED, "a token minted for 127.0.0.31 is refused from 127.0.0.32");
    assert!(stolen.text().contains("401 - Unauthorized"));
    let forged = a.send(Method::GET, "/latest/meta-data/", &[(TOKEN, "AAAA")], "").await.unwrap();
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED, "invalid tokens are refused even when tokens are optional");

    let proxied =
        a.send(Method::PUT, "/latest/api/token", &[(TTL, "60"), ("x-forwarded-for", "10.1.1.1")], "").await.unwrap();
    assert_eq!(proxied.status, StatusCode::FORBIDDEN);
    let dated = a.send(Method::PUT, "/2021-03-23/api/token", &[(TTL, "60")], "").await.unwrap();
    assert_eq!(dated.status, StatusCode::FORBIDDEN);
    let no_ttl = a.send(Method::PUT, "/latest/api/token", &[], "").await.unwrap();
    assert_eq!(no_ttl.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn required_tokens_and_a_disabled_endpoint_take_effect_at_once() {
    let server = TestServer::start().await;
    server.create(json!({"id": "i-33", "ipv4": ["127.0.0.33"]})).await;
    let guest = server.guest_from("127.0.0.33");
    assert_eq!(guest.get("/latest/meta-data/instance-id").await.unwrap().status, StatusCode::OK);

    patch(&server, "i-33", json!({"tokens": "required"})).await;
    for path in ["/", "/latest/meta-data/", "/latest/meta-data/instance-id", "/2009-04-04/meta-data/"] {
        assert_eq!(guest.get(path).await.unwrap().status, StatusCode::UNAUTHORIZED, "{path} without a token");
    }
    let token = mint(&guest, "60").await;
    let allowed = guest.send(Method::GET, "/latest/meta-data/instance-id", &[(TOKEN, &token)], "").await.unwrap();
    assert_eq!(allowed.status, StatusCode::OK);

    patch(&server, "i-33", json!({"endpoint": "disabled"})).await;
    assert_eq!(
        guest.send(Method::GET, "/latest/meta-data/", &[(TOKEN, &token)], "").await.unwrap().status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        guest.send(Method::PUT, "/latest/api/token", &[(TTL, "60")], "").await.unwrap().status,
        StatusCode::FORBIDDEN
    );

    patch(&server, "i-33", json!({"endpoint": "enabled", "tokens": "optional"})).await;
    assert_eq!(guest.get("/latest/meta-data/instance-id").await.unwrap().status, StatusCode::OK);
}

#[tokio::test]
async fn every_node_sharing_the_store_accepts_the_same_tokens() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let first = TestServer::with_store(Arc::clone(&store), None).await;
    first.create(json!({"id": "i-34", "ipv4": ["127.0.0.34"]})).await;
    let token = mint(&first.guest_from("127.0.0.34"), "600").await;
    first.running.stop().await;

    // A restart, or another node: same store, same key, same verdict.
    let second = TestServer::with_store(store, None).await;
    let guest = second.guest_from("127.0.0.34");
    let response = guest.send(Method::GET, "/latest/meta-data/instance-id", &[(TOKEN, &token)], "").await.unwrap();
    assert_eq!((response.status, response.text().as_str()), (StatusCode::OK, "i-34"));
}

/// Sends raw HTTP/1.1 requests from `source` over a socket that drops every packet whose TTL
/// (IPv6: hop limit) is below `min_ttl` (Linux `IP_MINTTL` / `IPV6_MINHOPCOUNT`); `None` for a
/// request whose response did not arrive in time.
fn exchange_with_min_ttl(server: SocketAddr, source: &str, min_ttl: u8, requests: &[&str]) -> Vec<Option<String>> {
    use std::os::fd::AsRawFd;
    let (domain, level, option) = match server {
        SocketAddr::V4(_) => (socket2::Domain::IPV4, libc::IPPROTO_IP, libc::IP_MINTTL),
        SocketAddr::V6(_) => (socket2::Domain::IPV6, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT),
    };
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::new(source.parse().unwrap(), 0).into()).unwrap();
    let value = libc::c_int::from(min_ttl);
    // SAFETY: a valid socket fd, and a pointer to a c_int that outlives the call with its size.
    #[allow(unsafe_code)]
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            option,
            std::ptr::from_ref(&value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0, "minimum TTL: {}", std::io::Error::last_os_error());
    socket.connect(&server.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
    let mut answers = Vec::new();
    for request in requests {
        stream.write_all(request.as_bytes()).unwrap();
        let mut buffer = [0u8; 4096];
        answers.push(match stream.read(&mut buffer) {
            Ok(n) if n > 0 => Some(String::from_utf8_lossy(&buffer[..n]).into_owned()),
            _ => None,
        });
    }
    answers
}

#[tokio::test]
async fn token_replies_leave_with_the_instance_hop_limit_and_other_replies_do_not() {
    let server = TestServer::start().await;
    server.create(json!({"id": "i-35", "ipv4": ["127.0.0.35"], "imds": {"hop_limit": 3}})).await;
    let addr = server.guest_addr;
    let get = "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: imds\r\n\r\n";
    let put = "PUT /latest/api/token HTTP/1.1\r\nHost: imds\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\nContent-Length: 0\r\n\r\n";

    // Loopback does not decrement the TTL: a reply sent with TTL 3 arrives with 3.
    let answers = tokio::task::spawn_blocking(move || {
        let within = exchange_with_min_ttl(addr, "127.0.0.35", 3, &[put, get]);
        let beyond = exchange_with_min_ttl(addr, "127.0.0.35", 4, &[get, put]);
        (within, beyond)
    })
    .await
    .unwrap();
    let (within, beyond) = answers;
    assert!(
        within[0].as_deref().is_some_and(|r| r.starts_with("HTTP/1.1 200")),
        "token reply within the hop limit: {within:?}"
    );
    assert!(within[1].as_deref().is_some_and(|r| r.ends_with("i-35")), "{within:?}");
    assert!(beyond[0].as_deref().is_some_and(|r| r.ends_with("i-35")), "GET replies are not hop-limited: {beyond:?}");
    assert_eq!(beyond[1], None, "a token reply never reaches a client one hop beyond the limit");
}

#[tokio::test]
async fn token_replies_over_ipv6_leave_with_the_hop_limit() {
    let server = TestServer::start().await;
    server.create(json!({"id": "i-v6hop", "ipv6": ["::1"], "imds": {"hop_limit": 2}})).await;
    let listener = tokio::net::TcpListener::bind("[::1]:0").await.expect("IPv6 loopback");
    let addr = listener.local_addr().unwrap();
    let key = imds_server::guest::token_key::load_or_create(&server.store).await.unwrap();
    let router =
        imds_server::guest::router(server.running.view.clone(), server.store.clone(), key, &Default::default());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(imds_server::listener::serve_tcp(listener, router, Default::default(), shutdown.clone()));
    let put = "PUT /latest/api/token HTTP/1.1\r\nHost: imds\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\nContent-Length: 0\r\n\r\n";
    let (within, beyond) = tokio::task::spawn_blocking(move || {
        (exchange_with_min_ttl(addr, "::1", 2, &[put]), exchange_with_min_ttl(addr, "::1", 3, &[put]))
    })
    .await
    .unwrap();
    assert!(within[0].as_deref().is_some_and(|r| r.starts_with("HTTP/1.1 200")), "{within:?}");
    assert_eq!(beyond[0], None, "one hop beyond the limit, the token reply is lost");
    shutdown.cancel();
    task.await.unwrap();
}
