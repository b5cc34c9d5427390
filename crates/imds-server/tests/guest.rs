//! The guest plane over real sockets: every caller sees only its own instance.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use http::{Method, StatusCode};
use imds_server::test_util::TestServer;
use serde_json::json;

const NOT_FOUND_PAGE_LEN: usize = 339;

#[tokio::test]
async fn each_caller_sees_only_its_own_instance() {
    let server = TestServer::start().await;
    server.create(json!({"id": "i-aaa", "hostname": "alpha", "ipv4": ["127.0.0.21"], "user_data": "alpha-data"})).await;
    server.create(json!({"id": "i-bbb", "hostname": "bravo", "ipv4": ["127.0.0.22"], "user_data": "bravo-data"})).await;

    for (source, id, host, data) in
        [("127.0.0.21", "i-aaa", "alpha", "alpha-data"), ("127.0.0.22", "i-bbb", "bravo", "bravo-data")]
    {
        let guest = server.guest_from(source);
        let id_response = guest.get("/latest/meta-data/instance-id").await.unwrap();
        assert_eq!((id_response.status, id_response.text().as_str()), (StatusCode::OK, id), "{source}");
        assert_eq!(guest.get("/latest/meta-data/hostname").await.unwrap().text(), host);
        assert_eq!(guest.get("/latest/meta-data/local-ipv4").await.unwrap().text(), source);
        let user_data = guest.get("/latest/user-data").await.unwrap();
        assert_eq!(user_data.header("content-type"), Some("application/octet-stream"));
        assert_eq!(user_data.text(), data);
    }

    let stranger = server.guest_from("127.0.0.23");
    for path in ["/latest/meta-data/instance-id", "/latest/user-data", "/latest/meta-data/", "/"] {
        let response = stranger.get(path).await.unwrap();
        assert_eq!(response.status, StatusCode::FORBIDDEN, "{path}");
        let body = response.text();
        assert!(body.contains("127.0.0.23"), "{body}");
        assert!(!body.contains("i-aaa") && !body.contains("i-bbb") && !body.contains("data"), "{body}");
    }
}

#[tokio::test]
async fn listings_and_errors_follow_ec2_wire_rules() {
    let server = TestServer::start().await;
    server.create(json!({"id": "i-ccc", "ipv4": ["127.0.0.24"]})).await;
    let guest = server.guest_from("127.0.0.24");

    let listing = guest.get("/latest/meta-data/").await.unwrap();
    assert_eq!(listing.status, StatusCode::OK);
    assert_eq!(listing.header("content-type"), Some("text/plain"));
    assert_eq!(listing.header("server"), Some("EC2ws"));
    assert!(!listing.text().ends_with('\n'));
    for leaf in listing.text().lines() {
        let response = guest.get(&format!("/latest/meta-data/{leaf}")).await.unwrap();
        assert_eq!(response.status, StatusCode::OK, "listed leaf {leaf} must answer");
        assert_eq!(response.header("content-length"), Some(response.body.len().to_string().as_str()));
    }

    // No user-data: 404 with EC2's page, and not listed.
    let missing = guest.get("/latest/user-data").await.unwrap();
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.header("content-type"), Some("text/html"));
    assert_eq!(missing.body.len(), NOT_FOUND_PAGE_LEN);
    assert!(missing.text().contains("404 - Not Found"));
    assert_eq!(guest.get("/latest/").await.unwrap().text(), "dynamic\nmeta-data");

    let head = guest.send(Method::HEAD, "/latest/meta-data/instance-id", &[], "").await.unwrap();
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("content-length"), Some("5"));
    assert!(head.body.is_empty());

    let post = guest.send(Method::POST, "/latest/meta-data/", &[], "x").await.unwrap();
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
}

#[tokio::test]
async fn user_data_with_every_byte_value_reaches_the_guest_unchanged() {
    use base64::Engine as _;
    let server = TestServer::start().await;
    let bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
    server.create(json!({"id": "i-bin", "ipv4": ["127.0.0.25"], "user_data": {"base64": encoded}})).await;
    let response = server.guest_from("127.0.0.25").get("/latest/user-data").await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.body.as_ref(), bytes.as_slice());
}

#[tokio::test]
async fn ipv6_callers_are_identified() {
    let server = TestServer::start().await;
    server.create(json!({"id": "i-v6", "ipv6": ["::1"]})).await;
    // The guest listener is IPv4 here; a v6 listener on [::1] serves the same view.
    let loopback6: std::net::SocketAddr = "[::1]:0".parse().unwrap();
    let listener = tokio::net::TcpListener::bind(loopback6).await.expect("IPv6 loopback is available");
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let key = imds_server::guest::token_key::load_or_create(&server.store).await.unwrap();
    let router =
        imds_server::guest::router(server.running.view.clone(), server.store.clone(), key, &Default::default());
    let task = tokio::spawn(imds_server::listener::serve_tcp(listener, router, Default::default(), shutdown.clone()));
    let guest = imds_server::client::Client::from_source(addr, "::1".parse().unwrap());
    let response = guest.get("/latest/meta-data/instance-id").await.unwrap();
    assert_eq!((response.status, response.text().as_str()), (StatusCode::OK, "i-v6"));
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn guest_asking_before_the_view_is_loaded_waits_instead_of_being_refused() {
    use std::sync::Arc;

    use imds_model::{Instance, Limits};
    use imds_store::memory::MemoryStore;
    use imds_store::unreliable::Unreliable;
    use imds_store::{Expect, Key, Put, Store};

    let inner: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let instance = Instance::parse(&json!({"id": "i-early", "ipv4": ["127.0.0.26"]}), &Limits::default()).unwrap();
    let put = Put {
        key: Key::new(imds_server::view::INSTANCES, "i-early"),
        node: None,
        claims: instance.claims(),
        value: instance.to_bytes(),
        expect: Expect::Absent,
    };
    inner.put(put).await.unwrap();
    // The first snapshots fail, as with a store that is still coming up.
    let flaky = Arc::new(Unreliable::new(Arc::clone(&inner)));
    flaky.fail_next(4);
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let config = imds_server::server::Config {
        guest: imds_server::guest::Config { listen: vec![loopback], ..Default::default() },
        admin: imds_server::admin::Config { listen: None, socket: None, ..Default::default() },
        limits: Limits::default(),
        connections: Default::default(),
        scope: imds_store::Scope::All,
        net: None,
        metrics: Default::default(),
        audit: Default::default(),
        fleet: None,
    };
    let store: Arc<dyn Store> = flaky.clone();
    let running = imds_server::server::start(config, store).await.unwrap();
    assert!(!running.view.is_ready(), "the first snapshot attempt fails");
    let guest = imds_server::client::Client::from_source(running.guest_addrs[0], "127.0.0.26".parse().unwrap());
    let response = guest.get("/latest/meta-data/instance-id").await.unwrap();
    assert_eq!((response.status, response.text().as_str()), (StatusCode::OK, "i-early"));
    running.stop().await;
}

#[tokio::test]
async fn ipv4_callers_of_an_ipv6_socket_are_identified_by_their_ipv4() {
    let server = TestServer::start().await;
    server.create(json!({"id": "i-mapped", "ipv4": ["127.0.0.27"]})).await;
    // An IPv6 socket on the IPv4-mapped loopback sees IPv4 peers as ::ffff:a.b.c.d.
    let listener = tokio::net::TcpListener::bind("[::ffff:127.0.0.1]:0").await.expect("IPv4-mapped bind");
    let port = listener.local_addr().unwrap().port();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let key = imds_server::guest::token_key::load_or_create(&server.store).await.unwrap();
    let router =
        imds_server::guest::router(server.running.view.clone(), server.store.clone(), key, &Default::default());
    let task = tokio::spawn(imds_server::listener::serve_tcp(listener, router, Default::default(), shutdown.clone()));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let guest = imds_server::client::Client::from_source(addr, "127.0.0.27".parse().unwrap());
    let response = guest.get("/latest/meta-data/instance-id").await.unwrap();
    assert_eq!((response.status, response.text().as_str()), (StatusCode::OK, "i-mapped"));
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_flooding_instance_gets_429_and_never_starves_another() {
    use imds_server::guest::throttle::Throttle;
    let server = TestServer::with_throttle(Throttle { per_second: 1, burst: 5 }).await;
    server.create(json!({"id": "i-flood", "ipv4": ["127.0.0.28"]})).await;
    server.create(json!({"id": "i-calm", "ipv4": ["127.0.0.29"]})).await;
    let flood = server.guest_from("127.0.0.28");
    let mut statuses = Vec::new();
    for _ in 0..30 {
        statuses.push(flood.get("/latest/meta-data/instance-id").await.unwrap().status);
    }
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let throttled = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!(ok + throttled, 30, "{statuses:?}");
    // The burst passes; at one request a second, however slow this machine, most of the rest not.
    assert!(ok >= 5 && throttled >= 15, "{statuses:?}");
    assert!(statuses[..5].iter().all(|s| *s == StatusCode::OK), "the burst comes first: {statuses:?}");
    let asked = tokio::time::Instant::now();
    let refused = flood.get("/latest/meta-data/instance-id").await.unwrap();
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.text().contains("429 - Too Many Requests"));
    // A refusal is held back, so a guest looping at full speed keeps its connection idle.
    assert!(asked.elapsed() >= Throttle::REFUSAL_DELAY, "refused after {:?}", asked.elapsed());
    // The other instance has its own budget.
    let calm = server.guest_from("127.0.0.29").get("/latest/meta-data/instance-id").await.unwrap();
    assert_eq!((calm.status, calm.text().as_str()), (StatusCode::OK, "i-calm"));
}
