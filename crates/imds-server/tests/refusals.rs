//! Refusals over real sockets: an unknown caller, a throttled instance and an instance whose
//! endpoint is switched off get each dialect's own refusal, never any instance's data; an
//! unknown caller is held briefly for its record to appear.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tokio::time::Instant;

use http::{Method, StatusCode};
use imds_server::client::Response;
use imds_server::guest;
use imds_server::test_util::TestServer;
use serde_json::{json, Value};

const JSON: (&str, &str) = ("content-type", "application/json");
const GOOGLE: (&str, &str) = ("metadata-flavor", "Google");
const AZURE: (&str, &str) = ("metadata", "true");
const ORACLE: (&str, &str) = ("authorization", "Bearer Oracle");

/// One request per dialect: `(path, headers)`.
const PATHS: &[(&str, &[(&str, &str)])] = &[
    ("/latest/user-data", &[]),
    ("/computeMetadata/v1/instance/service-accounts/default/token", &[GOOGLE]),
    ("/computeMetadata/v1/instance/attributes/user-data", &[GOOGLE]),
    ("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net", &[AZURE]),
    ("/metadata/instance?api-version=2021-02-01", &[AZURE]),
    ("/openstack/latest/user_data", &[]),
    ("/metadata/v1/user-data", &[]),
    ("/metadata/v1.json", &[]),
    ("/nocloud/user-data", &[]),
    ("/hetzner/v1/userdata", &[]),
    ("/opc/v2/instance/metadata/user_data", &[ORACLE]),
];

async fn get(server: &TestServer, source: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    server.guest_from(source).send(Method::GET, path, headers, String::new()).await.unwrap()
}

async fn put_role(server: &TestServer, name: &str) {
    let body = json!({"source": {"type": "static", "access_key_id": "AKIAREFUSAL", "secret_access_key": "s3cret",
                      "session_token": "SECRET-SESSION", "expiration": "2099-01-01T00:00:00Z"}});
    let response =
        server.admin().send(Method::PUT, &format!("/v1/roles/{name}"), &[JSON], body.to_string()).await.unwrap();
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
}

fn instance(id: &str, ip: &str, endpoint: &str) -> Value {
    json!({"id": id, "ipv4": [ip], "user_data": "SECRET-USER-DATA", "iam_role": "app",
           "imds": {"endpoint": endpoint},
           "dialects": {"gce": {"attributes": {"enable-guest-attributes": "TRUE"}}}})
}

/// The refusal's status, content type and a marker of its dialect's body.
fn shape(path: &str, refusal: &str) -> (StatusCode, &'static str, &'static str) {
    let dialect = if path.starts_with("/computeMetadata") {
        "gce"
    } else if path.starts_with("/metadata/v1") {
        "digitalocean"
    } else if path.starts_with("/metadata/identity") {
        "azure-identity"
    } else if path.starts_with("/metadata/") {
        "azure"
    } else if path.starts_with("/openstack") {
        "openstack"
    } else if path.starts_with("/nocloud") {
        "nocloud"
    } else if path.starts_with("/hetzner") {
        "hetzner"
    } else if path.starts_with("/opc") {
        "oracle"
    } else {
        "ec2"
    };
    match (dialect, refusal) {
        ("ec2", "unknown") => (StatusCode::FORBIDDEN, "text/plain; charset=utf-8", "no instance is registered"),
        ("ec2", "disabled") => (StatusCode::FORBIDDEN, "text/html", "<h1>403 - Forbidden</h1>"),
        ("ec2", _) => (StatusCode::TOO_MANY_REQUESTS, "text/html", "<h1>429 - Too Many Requests</h1>"),
        ("gce", "unknown") => (StatusCode::NOT_FOUND, "text/html; charset=UTF-8", "<b>404.</b>"),
        ("gce", "disabled") => (StatusCode::FORBIDDEN, "text/html; charset=UTF-8", "<b>403.</b>"),
        ("gce", _) => (StatusCode::TOO_MANY_REQUESTS, "text/html; charset=UTF-8", "<b>429.</b>"),
        ("azure-identity", "unknown" | "disabled") => {
            (StatusCode::BAD_REQUEST, "application/json; charset=utf-8", "\"Identity not found\"")
        }
        ("azure", "unknown" | "disabled") => (StatusCode::NOT_FOUND, "application/json; charset=utf-8", "Not found"),
        ("azure" | "azure-identity", _) => {
            (StatusCode::TOO_MANY_REQUESTS, "application/json; charset=utf-8", "Too many requests")
        }
        ("openstack", "unknown") => (StatusCode::NOT_FOUND, "text/html; charset=UTF-8", "<h1>404 Not Found</h1>"),
        ("openstack", "disabled") => (StatusCode::FORBIDDEN, "text/html; charset=UTF-8", "<h1>403 Forbidden</h1>"),
        ("openstack", _) => (StatusCode::TOO_MANY_REQUESTS, "text/html; charset=UTF-8", "429 Too Many Requests"),
        ("digitalocean" | "hetzner", "unknown") => {
            (StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "404 page not found")
        }
        ("digitalocean" | "hetzner", "disabled") => (StatusCode::FORBIDDEN, "text/plain; charset=utf-8", "Forbidden"),
        ("digitalocean" | "hetzner", _) => {
            (StatusCode::TOO_MANY_REQUESTS, "text/plain; charset=utf-8", "Too Many Requests")
        }
        ("oracle", "unknown") => (StatusCode::NOT_FOUND, "application/json", "\"NotFound\""),
        ("oracle", "disabled") => (StatusCode::FORBIDDEN, "application/json", "\"Forbidden\""),
        ("oracle", _) => (StatusCode::TOO_MANY_REQUESTS, "application/json", "\"TooManyRequests\""),
        ("nocloud", "unknown") => (StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "404 Not Found"),
        ("nocloud", "disabled") => (StatusCode::FORBIDDEN, "text/plain; charset=utf-8", "403 Forbidden"),
        (_, _) => (StatusCode::TOO_MANY_REQUESTS, "text/plain; charset=utf-8", "429 Too Many Requests"),
    }
}

fn assert_refused(response: &Response, path: &str, refusal: &str) {
    let (status, content_type, marker) = shape(path, refusal);
    let body = response.text();
    assert_eq!(response.status, status, "{refusal} {path}: {body}");
    assert_eq!(response.header("content-type"), Some(content_type), "{refusal} {path}");
    assert!(body.contains(marker), "{refusal} {path}: {body}");
    for secret in ["SECRET", "AKIAREFUSAL", "i-open", "i-shut"] {
        assert!(!body.contains(secret), "{refusal} {path} leaks {secret}: {body}");
    }
}

#[tokio::test]
async fn a_disabled_endpoint_closes_every_dialect_in_its_own_shape() {
    let server = TestServer::start().await;
    put_role(&server, "app").await;
    server.create(instance("i-open", "127.0.9.1", "enabled")).await;
    server.create(instance("i-shut", "127.0.9.2", "disabled")).await;
    for (path, headers) in PATHS {
        // The same request from the enabled twin is served (so the refusal is the switch's);
        // the role's first credentials may take a moment to load.
        let mut open = get(&server, "127.0.9.1", path, headers).await;
        for _ in 0..50 {
            if open.status != StatusCode::SERVICE_UNAVAILABLE && open.status != StatusCode::INTERNAL_SERVER_ERROR {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            open = get(&server, "127.0.9.1", path, headers).await;
        }
        assert_eq!(open.status, StatusCode::OK, "{path}: {}", open.text());
        let shut = get(&server, "127.0.9.2", path, headers).await;
        assert_refused(&shut, path, "disabled");
    }
    // Writes too: a GCE guest attribute.
    let attribute = "/computeMetadata/v1/instance/guest-attributes/hostkeys/ssh-ed25519";
    let write = server.guest_from("127.0.9.2").send(Method::PUT, attribute, &[GOOGLE], "key".to_owned()).await;
    assert_refused(&write.unwrap(), attribute, "disabled");
    // google-auth's ping gets no flavor header, so it concludes it is not on GCE.
    let ping = get(&server, "127.0.9.2", "/", &[GOOGLE]).await;
    assert_eq!(ping.status, StatusCode::FORBIDDEN);
    assert_eq!(ping.header("metadata-flavor"), None);
}

#[tokio::test]
async fn a_disabled_endpoint_closes_mmds() {
    let server = TestServer::start().await;
    server.create(json!({"id": "i-mmds", "ipv4": ["127.0.9.3"], "imds": {"endpoint": "disabled"}})).await;
    let path = "/v1/instances/i-mmds/mmds";
    let config_path = format!("{path}/config");
    let config = server.admin().send(Method::PUT, &config_path, &[JSON], r#"{"version":"V1"}"#).await.unwrap();
    assert_eq!(config.status, StatusCode::NO_CONTENT);
    let data = server.admin().send(Method::PUT, path, &[JSON], r#"{"secret":"SECRET-MMDS"}"#).await.unwrap();
    assert_eq!(data.status, StatusCode::NO_CONTENT);
    for target in ["/", "/secret", "//secret"] {
        let response = get(&server, "127.0.9.3", target, &[]).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{target}");
        assert_eq!(response.header("content-type"), Some("text/plain"));
        assert_eq!(response.text(), format!("Resource not found: {target}."));
    }
}

#[tokio::test]
async fn an_unknown_caller_gets_each_dialects_refusal() {
    let server =
        TestServer::with_guest(guest::Config { unknown_hold: Duration::ZERO, ..guest::Config::default() }).await;
    put_role(&server, "app").await;
    server.create(instance("i-open", "127.0.9.4", "enabled")).await;
    for (path, headers) in PATHS {
        assert_refused(&get(&server, "127.0.9.5", path, headers).await, path, "unknown");
    }
    let ping = get(&server, "127.0.9.5", "/", &[GOOGLE]).await;
    assert_eq!(ping.header("metadata-flavor"), None, "google-auth must not detect GCE");
}

#[tokio::test]
async fn a_throttled_instance_gets_each_dialects_429() {
    use imds_server::guest::throttle::Throttle;
    let config = guest::Config { throttle: Throttle { per_second: 1, burst: 1 }, ..guest::Config::default() };
    let server = TestServer::with_guest(config).await;
    put_role(&server, "app").await;
    server.create(instance("i-open", "127.0.9.6", "enabled")).await;
    // The burst of one goes first; at one request a second most of the next ones are throttled.
    let first = get(&server, "127.0.9.6", "/latest/meta-data/instance-id", &[]).await;
    assert_eq!(first.status, StatusCode::OK);
    let mut refused = 0;
    for (path, headers) in PATHS {
        let response = get(&server, "127.0.9.6", path, headers).await;
        if response.status == StatusCode::OK {
            continue; // a second passed: the budget gave one request back
        }
        assert_refused(&response, path, "throttled");
        refused += 1;
    }
    assert!(refused >= PATHS.len() / 2, "{refused} of {} refused", PATHS.len());
}

#[tokio::test]
async fn an_unknown_caller_is_answered_once_its_record_lands_within_the_hold() {
    let config = guest::Config { unknown_hold: Duration::from_secs(5), ..guest::Config::default() };
    let server = std::sync::Arc::new(TestServer::with_guest(config).await);
    let early = {
        let server = std::sync::Arc::clone(&server);
        tokio::spawn(async move { get(&server, "127.0.9.7", "/latest/meta-data/instance-id", &[]).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!early.is_finished(), "the unknown caller is held, not refused");
    server.create(json!({"id": "i-late", "ipv4": ["127.0.9.7"]})).await;
    let response = tokio::time::timeout(Duration::from_secs(4), early).await.unwrap().unwrap();
    assert_eq!((response.status, response.text().as_str()), (StatusCode::OK, "i-late"));
}

#[tokio::test]
async fn an_unknown_caller_is_refused_after_the_hold_and_holds_are_bounded() {
    let config = guest::Config { unknown_hold: Duration::from_secs(2), max_held: 1, ..guest::Config::default() };
    let server = std::sync::Arc::new(TestServer::with_guest(config).await);
    let started = Instant::now();
    let held = {
        let server = std::sync::Arc::clone(&server);
        tokio::spawn(async move { get(&server, "127.0.9.8", "/latest/meta-data/", &[]).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The one hold is taken: a second unknown caller is refused at once, before the first.
    let second = get(&server, "127.0.9.9", "/latest/meta-data/", &[]).await;
    assert_eq!(second.status, StatusCode::FORBIDDEN);
    assert!(!held.is_finished(), "the first caller is still held");
    let first = held.await.unwrap();
    assert_eq!(first.status, StatusCode::FORBIDDEN);
    assert!(started.elapsed() >= Duration::from_secs(2), "refused only after the hold");
}

#[tokio::test]
async fn ec2_paths_with_repeated_slashes_are_served_as_aws_does() {
    let server = TestServer::start().await;
    server.create(json!({"id": "i-slashes", "ipv4": ["127.0.9.10"], "imds": {"tokens": "required"}})).await;
    let guest = server.guest_from("127.0.9.10");
    let ttl = [("x-aws-ec2-metadata-token-ttl-seconds", "60")];
    let token = guest.send(Method::PUT, "//latest//api/token", &ttl, String::new()).await.unwrap();
    assert_eq!(token.status, StatusCode::OK, "{}", token.text());
    let token = token.text();
    let header = [("x-aws-ec2-metadata-token", token.as_str())];
    for path in
        ["//latest/meta-data/instance-id", "/latest//meta-data///instance-id", "///latest/meta-data/instance-id/"]
    {
        let response = guest.send(Method::GET, path, &header, String::new()).await.unwrap();
        assert_eq!((response.status, response.text().as_str()), (StatusCode::OK, "i-slashes"), "{path}");
    }
    let listing = guest.send(Method::GET, "//", &header, String::new()).await.unwrap();
    assert!(listing.text().lines().any(|line| line == "latest"), "{}", listing.text());
}
