//! `/metrics` over real sockets: behind the admin token (or open on its own address), in the
//! OpenMetrics text format, and every counter moving by exactly what the test's guests did.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use http::{Method, StatusCode};
use imds_server::client::{Client, Endpoint};
use imds_server::test_util::TestServer;
use imds_server::{audit, guest, metrics};
use serde_json::json;

const TTL: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const TOKEN: &str = "x-aws-ec2-metadata-token";
const ADMIN_TOKEN: &str = "metrics-test-token";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// What Prometheus sends.
const ACCEPT: (&str, &str) =
    ("accept", "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.2,*/*;q=0.1");

/// One scrape: every sample line, `name{labels}` → value, checked line by line against the
/// OpenMetrics text grammar this exporter uses (`# HELP`/`# TYPE`/`# UNIT`, samples, `# EOF`).
async fn scrape(server: &TestServer) -> BTreeMap<String, f64> {
    let response = server.admin().send(Method::GET, "/metrics", &[ACCEPT], "").await.unwrap();
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(response.header("content-type"), Some(OPENMETRICS));
    parse(&response.text())
}

fn parse(text: &str) -> BTreeMap<String, f64> {
    assert!(text.ends_with("# EOF\n"), "an OpenMetrics exposition ends with # EOF");
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") || line.starts_with("# UNIT ") || line == "# EOF"
        {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample line: {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            value => value.parse().unwrap_or_else(|_| panic!("not a number in {line:?}")),
        };
        assert!(samples.insert(series.to_owned(), value).is_none(), "{series} appears twice");
    }
    samples
}

fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples.get(series).unwrap_or_else(|| {
        let family = series.split('{').next().unwrap();
        let near: Vec<_> = samples.keys().filter(|k| k.starts_with(family)).collect();
        panic!("no series {series}; the family has {near:?}")
    })
}

fn delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>, series: &str) -> f64 {
    value(after, series) - before.get(series).copied().unwrap_or(0.0)
}

/// A server whose view is loaded; `/readyz` may not have answered 200 yet.
async fn start_loading() -> TestServer {
    TestServer::with_operations(Some(ADMIN_TOKEN), guest::Config::default(), Default::default(), Default::default())
        .await
}

/// A server that is ready: it has also written its signing keys (a background write that would
/// otherwise land among the writes a test counts).
async fn start() -> TestServer {
    let server = start_loading().await;
    server.node_ready().await;
    server
}

async fn patch(server: &TestServer, id: &str, body: serde_json::Value) {
    let headers = [("content-type", "application/merge-patch+json")];
    let path = format!("/v1/instances/{id}");
    let response = server.admin().send(Method::PATCH, &path, &headers, body.to_string()).await.unwrap();
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
}

#[tokio::test]
async fn counters_move_by_exactly_what_the_guests_did() {
    let server = start().await;
    server.create(json!({"id": "i-mx1", "ipv4": ["127.0.60.1"]})).await;
    server.create(json!({"id": "i-mx2", "ipv4": ["127.0.60.2"], "imds": {"tokens": "required"}})).await;
    let (a, b) = (server.guest_from("127.0.60.1"), server.guest_from("127.0.60.2"));
    let before = scrape(&server).await;

    for _ in 0..2 {
        let v1 = a.get("/latest/meta-data/instance-id").await.unwrap();
        assert_eq!((v1.status, v1.text().as_str()), (StatusCode::OK, "i-mx1"));
    }
    let minted = a.send(Method::PUT, "/latest/api/token", &[(TTL, "60")], "").await.unwrap();
    assert_eq!(minted.status, StatusCode::OK);
    let token = minted.text();
    let v2 = a.send(Method::GET, "/latest/meta-data/instance-id", &[(TOKEN, &token)], "").await.unwrap();
    assert_eq!(v2.status, StatusCode::OK);
    let forged = a.send(Method::GET, "/latest/meta-data/", &[(TOKEN, "AAAA")], "").await.unwrap();
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    let missing = b.get("/latest/meta-data/").await.unwrap();
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    let unknown = server.guest_from("127.0.60.99").get("/latest/meta-data/").await.unwrap();
    let unknown_class = format!("{}xx", unknown.status.as_u16() / 100);
    let gce = a.send(Method::GET, "/computeMetadata/v1/instance/id", &[("metadata-flavor", "Google")], "").await;
    assert_eq!(gce.unwrap().status, StatusCode::OK);

    let after = scrape(&server).await;
    let d = |series: &str| delta(&before, &after, series);
    assert_eq!(d(r#"imds_guest_requests_total{dialect="ec2",class="2xx"}"#), 4.0);
    let ec2_4xx = if unknown_class == "4xx" { 3.0 } else { 2.0 };
    assert_eq!(d(r#"imds_guest_requests_total{dialect="ec2",class="4xx"}"#), ec2_4xx);
    assert_eq!(d(r#"imds_guest_requests_total{dialect="gce",class="2xx"}"#), 1.0);
    assert_eq!(d(r#"imds_guest_requests_total{dialect="azure",class="2xx"}"#), 0.0);
    assert_eq!(d(r#"imds_guest_no_token_requests_total{dialect="ec2"}"#), 2.0, "AWS's MetadataNoToken");
    assert_eq!(d(r#"imds_guest_tokens_minted_total{dialect="ec2"}"#), 1.0);
    assert_eq!(d(r#"imds_guest_token_rejected_total{dialect="ec2",reason="invalid"}"#), 1.0);
    assert_eq!(d(r#"imds_guest_token_rejected_total{dialect="ec2",reason="missing"}"#), 1.0);
    assert_eq!(d(r#"imds_guest_unknown_callers_total{dialect="ec2"}"#), 1.0);
    assert_eq!(d(r#"imds_guest_throttled_total{dialect="ec2"}"#), 0.0);
    assert_eq!(d(r#"imds_guest_sensitive_reads_total{kind="token"}"#), 1.0);
    assert_eq!(d(r#"imds_guest_request_duration_seconds_count{dialect="ec2"}"#), 7.0);
    assert_eq!(d(r#"imds_guest_request_duration_seconds_bucket{le="+Inf",dialect="ec2"}"#), 7.0);
    assert_eq!(d(r#"imds_guest_request_duration_seconds_count{dialect="gce"}"#), 1.0);
    let guest_listener = format!(r#"listener="guest",address="{}""#, server.guest_addr);
    assert_eq!(d(&format!("imds_connections_accepted_total{{{guest_listener}}}")), 8.0, "one connection per request");
    assert_eq!(d(&format!("imds_connections_refused_total{{{guest_listener}}}")), 0.0);
    assert!(!after.keys().any(|k| k.starts_with("imds_guest_instance_requests")), "no per-instance series by default");

    // Derived gauges read off the daemon at scrape time.
    let ready = server.admin().get("/readyz").await.unwrap().json();
    let after = scrape(&server).await;
    assert_eq!(value(&after, "imds_view_revision"), ready["revision"].as_f64().unwrap());
    assert_eq!(value(&after, "imds_view_instances"), 2.0);
    assert_eq!(value(&after, "imds_store_connected"), 1.0);
    assert!(value(&after, "imds_view_staleness_seconds") >= 0.0);
    assert!(value(&after, "imds_render_cache_bytes") > 0.0, "the EC2 tree of i-mx1 is kept");
    assert_eq!(value(&after, "imds_render_cache_limit_bytes"), imds_server::view::DEFAULT_RENDER_BYTES as f64);
    assert_eq!(value(&after, "imds_guest_long_polls"), 0.0);

    // One admin write: one timed store commit.
    let before = scrape(&server).await;
    patch(&server, "i-mx1", json!({"hostname": "renamed"})).await;
    let after = scrape(&server).await;
    assert_eq!(delta(&before, &after, "imds_store_write_duration_seconds_count"), 1.0);
    assert_eq!(delta(&before, &after, "imds_store_write_errors_total"), 0.0);
    assert_eq!(delta(&before, &after, "imds_view_revision"), 1.0);
}

#[tokio::test]
async fn metrics_need_the_admin_token_unless_served_on_their_own_address() {
    let open = SocketAddr::from(([127, 0, 0, 1], 0));
    let config = metrics::Config { listen: Some(open), per_instance: false };
    let server =
        TestServer::with_operations(Some(ADMIN_TOKEN), guest::Config::default(), config, audit::Config::default())
            .await;
    let anonymous = Client::new(Endpoint::Tcp(server.admin_addr));
    let refused = anonymous.get("/metrics").await.unwrap();
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.json()["error"]["code"], "unauthorized");
    let wrong = Client::new(Endpoint::Tcp(server.admin_addr))
        .with_token(Some("not-the-token".into()))
        .get("/metrics")
        .await
        .unwrap();
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);

    let metrics_addr = server.running.metrics_addr.expect("the metrics listener is bound");
    let scraper = Client::new(Endpoint::Tcp(metrics_addr));
    let scraped = scraper.send(Method::GET, "/metrics", &[ACCEPT], "").await.unwrap();
    assert_eq!(scraped.status, StatusCode::OK);
    assert_eq!(scraped.header("content-type"), Some(OPENMETRICS));
    let samples = parse(&scraped.text());
    let own = format!(r#"imds_connections_accepted_total{{listener="metrics",address="{metrics_addr}"}}"#);
    assert_eq!(value(&samples, &own), 1.0, "this scrape's own connection");
    // Only /metrics is served there: the admin API stays behind its token on its own listener.
    assert_eq!(scraper.get("/v1/instances").await.unwrap().status, StatusCode::NOT_FOUND);
    // And guests never reach either: on the guest plane /metrics is just an unknown EC2 path.
    server.create(json!({"id": "i-mx7", "ipv4": ["127.0.60.7"]})).await;
    let from_guest = server.guest_from("127.0.60.7").get("/metrics").await.unwrap();
    assert_eq!(from_guest.status, StatusCode::NOT_FOUND);
    assert!(!from_guest.text().contains("imds_"), "{}", from_guest.text());
}

#[tokio::test]
async fn clients_that_do_not_ask_for_openmetrics_get_the_classic_text_format() {
    let server = start().await;
    let classic = server.admin().get("/metrics").await.unwrap();
    assert_eq!(classic.status, StatusCode::OK);
    assert_eq!(classic.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let text = classic.text();
    assert!(text.contains("\n# TYPE imds_guest_requests_total counter\n"), "{text}");
    assert!(text.contains("\n# TYPE imds_view_staleness_seconds gauge\n"), "{text}");
    assert!(!text.contains("# EOF") && !text.contains("# UNIT"), "{text}");
    let openmetrics = server.admin().send(Method::GET, "/metrics", &[ACCEPT], "").await.unwrap().text();
    let samples = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .map(|line| line.rsplit_once(' ').unwrap().0.to_owned())
            .collect()
    };
    assert_eq!(samples(&text), samples(&openmetrics), "the same series in both formats");
}

#[tokio::test]
async fn throttled_requests_are_counted_by_dialect() {
    let guest = guest::Config { throttle: guest::throttle::Throttle { per_second: 1, burst: 2 }, ..Default::default() };
    let server = TestServer::with_operations(Some(ADMIN_TOKEN), guest, Default::default(), Default::default()).await;
    server.create(json!({"id": "i-mx3", "ipv4": ["127.0.60.3"]})).await;
    let before = scrape(&server).await;
    let a = server.guest_from("127.0.60.3");
    let mut refused = 0.0;
    for _ in 0..5 {
        if a.get("/latest/meta-data/instance-id").await.unwrap().status == StatusCode::TOO_MANY_REQUESTS {
            refused += 1.0;
        }
    }
    assert!(refused >= 2.0, "a burst of 2 at 1/s refuses most of 5 quick requests");
    let after = scrape(&server).await;
    assert_eq!(delta(&before, &after, r#"imds_guest_throttled_total{dialect="ec2"}"#), refused);
    assert_eq!(delta(&before, &after, r#"imds_guest_requests_total{dialect="ec2",class="4xx"}"#), refused);
}

#[tokio::test]
async fn per_instance_counters_are_exported_only_when_asked_for() {
    let config = metrics::Config { listen: None, per_instance: true };
    let server =
        TestServer::with_operations(Some(ADMIN_TOKEN), guest::Config::default(), config, Default::default()).await;
    server.create(json!({"id": "i-mx4", "ipv4": ["127.0.60.4"]})).await;
    server.create(json!({"id": "i-mx5", "ipv4": ["127.0.60.5"]})).await;
    let a = server.guest_from("127.0.60.4");
    for _ in 0..3 {
        assert_eq!(a.get("/latest/meta-data/").await.unwrap().status, StatusCode::OK);
    }
    let samples = scrape(&server).await;
    assert_eq!(value(&samples, r#"imds_guest_instance_requests_total{instance="i-mx4"}"#), 3.0);
    assert_eq!(value(&samples, r#"imds_guest_instance_requests_total{instance="i-mx5"}"#), 0.0);
}

#[tokio::test]
async fn credential_refreshes_and_expiry_are_reported_per_role() {
    // Not ready yet: `/readyz` turns 200 only after both roles' first fetch.
    let server = start_loading().await;
    let role = json!({"source": {"type": "static", "access_key_id": "AKIAMETRICS", "secret_access_key": "metrics-secret",
                                 "expiration": "2099-01-01T00:00:00Z"}});
    let admin = server.admin();
    let put = admin.send(Method::PUT, "/v1/roles/app", &[("content-type", "application/json")], role.to_string());
    assert_eq!(put.await.unwrap().status, StatusCode::CREATED);
    // A source that always fails: `false` exits 1.
    let broken = json!({"source": {"type": "process", "command": ["/bin/false"], "timeout_seconds": 5}});
    let put = admin.send(Method::PUT, "/v1/roles/broken", &[("content-type", "application/json")], broken.to_string());
    assert_eq!(put.await.unwrap().status, StatusCode::CREATED);
    server.node_ready().await;
    let samples = scrape(&server).await;
    assert_eq!(value(&samples, r#"imds_credential_refreshes_total{role="app",outcome="success"}"#), 1.0);
    assert_eq!(value(&samples, r#"imds_credential_refreshes_total{role="app",outcome="failure"}"#), 0.0);
    assert_eq!(value(&samples, r#"imds_credential_valid{role="app"}"#), 1.0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let expiry = value(&samples, r#"imds_credential_expiry_seconds{role="app"}"#);
    assert!((expiry - (4_070_908_800.0 - now)).abs() < 120.0, "2099-01-01 is {expiry} s away");
    // The first fetch of the broken role failed (retries come 5 s later and after).
    let failed = value(&samples, r#"imds_credential_refreshes_total{role="broken",outcome="failure"}"#);
    assert!(failed >= 1.0, "{failed}");
    assert_eq!(value(&samples, r#"imds_credential_refreshes_total{role="broken",outcome="success"}"#), 0.0);
    assert_eq!(value(&samples, r#"imds_credential_valid{role="broken"}"#), 0.0);
    assert!(!samples.contains_key(r#"imds_credential_expiry_seconds{role="broken"}"#), "no credentials, no expiry");
}

#[tokio::test]
async fn a_waiting_long_poll_is_counted_until_it_is_answered() {
    let server = start().await;
    server.create(json!({"id": "i-mx6", "ipv4": ["127.0.60.6"], "hostname": "before"})).await;
    let a = server.guest_from("127.0.60.6");
    let path = "/computeMetadata/v1/instance/hostname?wait_for_change=true&timeout_sec=60";
    let poll = tokio::spawn(async move { a.send(Method::GET, path, &[("metadata-flavor", "Google")], "").await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while value(&scrape(&server).await, "imds_guest_long_polls") != 1.0 {
        assert!(tokio::time::Instant::now() < deadline, "the long poll never showed as waiting");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = scrape(&server).await;
    patch(&server, "i-mx6", json!({"hostname": "after"})).await;
    let answered = poll.await.unwrap().unwrap();
    assert_eq!(answered.status, StatusCode::OK);
    assert!(answered.text().starts_with("after."), "{}", answered.text());
    let after = scrape(&server).await;
    assert_eq!(value(&after, "imds_guest_long_polls"), 0.0);
    assert_eq!(delta(&before, &after, r#"imds_guest_requests_total{dialect="gce",class="2xx"}"#), 1.0);
    assert_eq!(
        delta(&before, &after, r#"imds_guest_request_duration_seconds_count{dialect="gce"}"#),
        0.0,
        "long polls wait on purpose and stay out of the latency histogram"
    );
}
