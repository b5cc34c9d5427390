//! Firecracker MMDS over real sockets: every numbered conformance case of
//! `docs/dialects/mmds.md` (cited as "row N"), the atomicity of a PATCH seen by a reading guest, and the admin API's
//! Firecracker-shaped errors.
//!
//! Requests are written byte for byte on a TCP socket bound to the guest's address, so paths
//! reach the server exactly as a guest's HTTP client would send them (`//`, `%20`, `?`).

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Method, StatusCode};
use imds_server::guest::token_key;
use imds_server::test_util::TestServer;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NO_TOKEN: &str =
    "No MMDS token provided. Use `X-metadata-token` or `X-aws-ec2-metadata-token` header to specify the session token.";
const BAD_TOKEN: &str = "MMDS token not valid.";
const NO_TTL: &str = "Token time to live value not found. Use `X-metadata-token-ttl-seconds` or `X-aws-ec2-metadata-token-ttl-seconds` header to specify the token's lifetime.";
const TYPE: &str = "Cannot retrieve value. The value has an unsupported type.";
const JSON: (&str, &str) = ("Accept", "application/json");
const TTL: &str = "X-metadata-token-ttl-seconds";
const AWS_TTL: &str = "X-aws-ec2-metadata-token-ttl-seconds";

/// mod.rs `populate_mmds`.
fn p() -> Value {
    json!({"name": {"first": "John", "second": "Doe"}, "age": 43,
           "phones": {"home": {"RO": "+401234567", "UK": "+441234567"}, "mobile": "+442345678"}})
}

/// data_store.rs `test_get_value`.
fn t() -> Value {
    json!({"name": {"first": "John", "second": "Doe"}, "age": 43, "phones": ["+401234567", "+441234567"],
           "member": false, "shares_percentage": 12.12, "balance": -24,
           "json_string": "{\n  \"hello\": \"world\"\n}"})
}

/// test_mmds.py `test_mmds_response`.
fn r() -> Value {
    json!({"latest": {
        "meta-data": {"ami-id": "ami-12345678", "reservation-id": "r-fea54097",
            "local-hostname": "ip-10-251-50-12.ec2.internal",
            "public-hostname": "ec2-203-0-113-25.compute-1.amazonaws.com",
            "dummy_obj": {"res_key": "res_value"}, "dummy_array": ["arr_val1", "arr_val2"], "dummy_empty": ""},
        "Limits": {"CPU": 512, "Memory": 512},
        "Usage": {"CPU": 12.12}}})
}

/// test_mmds.py `test_custom_ipv4`.
fn n() -> Value {
    json!({"latest": {"meta-data": {
        "ami-id": "ami-12345678", "reservation-id": "r-fea54097",
        "local-hostname": "ip-10-251-50-12.ec2.internal",
        "public-hostname": "ec2-203-0-113-25.compute-1.amazonaws.com",
        "network": {"interfaces": {"macs": {"02:29:96:8f:6a:2d": {
            "device-number": "13345342", "local-hostname": "localhost", "subnet-id": "subnet-be9b61d"}}}}}}})
}

/// A whole HTTP response as read off the socket.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    /// Status, content type and body, for one-line comparisons.
    fn triple(&self) -> (u16, &str, &str) {
        (self.status, self.header("content-type").unwrap_or(""), self.text())
    }
}

/// Writes `request` from `source` and reads until the server closes (bounded to 10 s).
async fn raw(server: &TestServer, source: &str, request: &[u8]) -> Option<Reply> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::new(source.parse().unwrap(), 0)).unwrap();
    let mut stream = socket.connect(server.guest_addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes)).await.unwrap().ok()?;
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    Some(Reply { status, headers, body: bytes[end + 4..].to_vec() })
}

/// Sends `method target` with `headers` over HTTP/1.1 and `Connection: close`.
async fn send(server: &TestServer, source: &str, method: &str, target: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = format!("{method} {target} HTTP/1.1\r\nHost: 169.254.169.254\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    raw(server, source, request.as_bytes()).await.expect("a complete HTTP response")
}

async fn get(server: &TestServer, source: &str, target: &str, headers: &[(&str, &str)]) -> Reply {
    send(server, source, "GET", target, headers).await
}

/// One admin call; returns status and body text.
async fn admin(server: &TestServer, method: Method, path: &str, body: &str) -> (StatusCode, String) {
    let response = server.admin().send(method, path, &[("content-type", "application/json")], body.to_owned()).await;
    let response = response.unwrap();
    (response.status, response.text())
}

/// Creates instance `id` for guest address `ip` with MMDS configured and, if given, a document.
async fn mmds_instance(server: &TestServer, id: &str, ip: &str, config: Value, data: Option<Value>) {
    server.create(json!({"id": id, "ipv4": [ip]})).await;
    let path = format!("/v1/instances/{id}/mmds");
    let configured = admin(server, Method::PUT, &format!("{path}/config"), &config.to_string()).await;
    assert_eq!(configured.0, StatusCode::NO_CONTENT, "{}", configured.1);
    if let Some(data) = data {
        let put = admin(server, Method::PUT, &path, &data.to_string()).await;
        assert_eq!(put.0, StatusCode::NO_CONTENT, "{}", put.1);
    }
}

async fn v1(server: &TestServer, id: &str, ip: &str, data: Value) {
    mmds_instance(server, id, ip, json!({"version": "V1"}), Some(data)).await;
}

async fn mint(server: &TestServer, source: &str, ttl_header: &str, ttl: &str) -> String {
    let reply = send(server, source, "PUT", "/latest/api/token", &[(ttl_header, ttl)]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.text().to_owned()
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test]
async fn listings_leaves_and_formats_follow_firecracker() {
    let server = TestServer::start().await;
    v1(&server, "i-p", "127.0.1.1", p()).await;
    v1(&server, "i-r", "127.0.1.2", r()).await;
    v1(&server, "i-t", "127.0.1.3", t()).await;
    v1(&server, "i-n", "127.0.1.4", n()).await;
    let (pp, rr, tt, nn) = ("127.0.1.1", "127.0.1.2", "127.0.1.3", "127.0.1.4");

    // Row 1: IMDS format for no, an empty, `*/*` or `text/plain` Accept.
    for accept in [None, Some(""), Some("*/*"), Some("text/plain"), Some("application/json; charset=utf-8")] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
        let reply = get(&server, pp, "/", &headers).await;
        assert_eq!(reply.triple(), (200, "text/plain", "age\nname/\nphones/"), "Accept {accept:?}");
    }
    // Row 2: compact JSON, sorted keys.
    assert_eq!(
        get(&server, pp, "/", &[JSON]).await.triple(),
        (
            200,
            "application/json",
            r#"{"age":43,"name":{"first":"John","second":"Doe"},"phones":{"home":{"RO":"+401234567","UK":"+441234567"},"mobile":"+442345678"}}"#
        )
    );
    // Row 3, row 4: sorted listings, `/` after objects only.
    assert_eq!(
        get(&server, rr, "/latest/meta-data/", &[]).await.text(),
        "ami-id\ndummy_array\ndummy_empty\ndummy_obj/\nlocal-hostname\npublic-hostname\nreservation-id"
    );
    assert_eq!(get(&server, rr, "/latest", &[]).await.text(), "Limits/\nUsage/\nmeta-data/");
    // Row 5, row 6, row 7: leaves.
    assert_eq!(get(&server, rr, "/latest/meta-data/ami-id/", &[]).await.triple(), (200, "text/plain", "ami-12345678"));
    assert_eq!(get(&server, rr, "/latest/meta-data/ami-id", &[JSON]).await.text(), "\"ami-12345678\"");
    assert_eq!(get(&server, rr, "/latest/meta-data/dummy_array/0", &[]).await.text(), "arr_val1");
    assert_eq!(get(&server, rr, "/latest/meta-data/dummy_array/0", &[JSON]).await.text(), "\"arr_val1\"");
    let empty = get(&server, rr, "/latest/meta-data/dummy_empty", &[]).await;
    assert_eq!((empty.status, empty.header("content-length"), empty.text()), (200, Some("0"), ""));
    assert_eq!(get(&server, rr, "/latest/meta-data/dummy_empty", &[JSON]).await.text(), "\"\"");
    // Row 8, row 9: numbers are 501 in IMDS format and plain in JSON.
    for (path, number) in [("/latest/Limits/CPU", "512"), ("/latest/Usage/CPU", "12.12")] {
        assert_eq!(get(&server, rr, path, &[]).await.triple(), (501, "text/plain", TYPE), "{path}");
        assert_eq!(get(&server, rr, path, &[JSON]).await.triple(), (200, "application/json", number), "{path}");
    }
    // Row 10, row 11: non-string leaves.
    for (path, json) in [
        ("/age", "43"),
        ("/member", "false"),
        ("/shares_percentage", "12.12"),
        ("/balance", "-24"),
        ("/phones", r#"["+401234567","+441234567"]"#),
        ("/phones/", r#"["+401234567","+441234567"]"#),
    ] {
        assert_eq!(get(&server, tt, path, &[]).await.triple(), (501, "text/plain", TYPE), "{path}");
        assert_eq!(get(&server, tt, path, &[JSON]).await.text(), json, "{path}");
    }
    // Row 12, row 13, row 14.
    assert_eq!(get(&server, tt, "/phones/0/", &[]).await.text(), "+401234567");
    assert_eq!(get(&server, tt, "/phones/0/", &[JSON]).await.text(), "\"+401234567\"");
    assert_eq!(get(&server, tt, "/json_string", &[]).await.text(), "{\n  \"hello\": \"world\"\n}");
    assert_eq!(get(&server, tt, "/json_string", &[JSON]).await.text(), r#""{\n  \"hello\": \"world\"\n}""#);
    assert_eq!(get(&server, tt, "/name", &[]).await.text(), "first\nsecond");
    assert_eq!(get(&server, tt, "/name", &[JSON]).await.text(), r#"{"first":"John","second":"Doe"}"#);
    // Row 15: array indexes are decimal without sign or leading zero.
    for path in ["/phones/2", "/phones/01", "/phones/+1", "/phones/-"] {
        let reply = get(&server, tt, path, &[]).await;
        assert_eq!(reply.triple(), (404, "text/plain", format!("Resource not found: {path}.").as_str()));
    }
    // Row 16.
    assert_eq!(get(&server, pp, "/invalid", &[]).await.triple(), (404, "text/plain", "Resource not found: /invalid."));
    // Row 17, row 18: the N data set.
    let meta = n()["latest"]["meta-data"].clone();
    for path in ["/latest/meta-data", "/latest/meta-data/"] {
        let reply = get(&server, nn, path, &[JSON]).await;
        assert_eq!(serde_json::from_slice::<Value>(&reply.body).unwrap(), meta, "{path}");
    }
    let subnet = "/latest/meta-data/network/interfaces/macs/02:29:96:8f:6a:2d/subnet-id";
    assert_eq!(get(&server, nn, subnet, &[]).await.text(), "subnet-be9b61d");
}

#[tokio::test]
async fn paths_are_raw_json_pointers() {
    let server = TestServer::start().await;
    v1(&server, "i-p", "127.0.1.1", p()).await;
    v1(&server, "i-n", "127.0.1.4", n()).await;
    let odd = json!({"a/b": "slash", "m~n": "tilde", "~1": "tilde-one", "x?y=1": "query", "a%20b": "percent"});
    v1(&server, "i-odd", "127.0.1.5", odd).await;

    // Row 19: `//` collapses.
    assert_eq!(get(&server, "127.0.1.4", "//latest//meta-data///ami-id", &[]).await.text(), "ami-12345678");
    // Row 20: the 404 quotes the path as sent.
    assert_eq!(
        get(&server, "127.0.1.1", "//name//middle", &[]).await.triple(),
        (404, "text/plain", "Resource not found: //name//middle.")
    );
    // Row 21: RFC 6901 escapes.
    for (path, value) in [("/a~1b", "slash"), ("/m~0n", "tilde"), ("/~01", "tilde-one")] {
        assert_eq!(get(&server, "127.0.1.5", path, &[]).await.triple(), (200, "text/plain", value), "{path}");
    }
    // Row 22: the query string is part of the pointer (and of the 404 body).
    assert_eq!(get(&server, "127.0.1.5", "/x?y=1", &[]).await.text(), "query");
    assert_eq!(get(&server, "127.0.1.1", "/name?x=1", &[]).await.text(), "Resource not found: /name?x=1.");
    // Row 23: no percent-decoding.
    assert_eq!(get(&server, "127.0.1.5", "/a%20b", &[]).await.text(), "percent");
    assert_eq!(get(&server, "127.0.1.1", "/na%6De", &[]).await.status, 404);
    // The absolute form of the request target is served like its path.
    assert_eq!(get(&server, "127.0.1.1", "http://169.254.169.254/name/first", &[]).await.text(), "John");
}

#[tokio::test]
async fn a_store_before_its_first_put_is_null() {
    let server = TestServer::start().await;
    mmds_instance(&server, "i-empty", "127.0.1.6", json!({}), None).await;
    // Row 24.
    let reply = get(&server, "127.0.1.6", "/latest/meta-data", &[]).await;
    assert_eq!(reply.triple(), (404, "text/plain", "Resource not found: /latest/meta-data."));
    // Row 25.
    assert_eq!(get(&server, "127.0.1.6", "/", &[JSON]).await.triple(), (200, "application/json", "null"));
    assert_eq!(get(&server, "127.0.1.6", "/", &[]).await.triple(), (501, "text/plain", TYPE));
}

#[tokio::test]
async fn v2_requires_a_valid_token_of_its_own_instance() {
    let server = TestServer::start().await;
    mmds_instance(&server, "i-v2", "127.0.1.7", json!({"version": "V2"}), Some(p())).await;
    mmds_instance(&server, "i-v2b", "127.0.1.8", json!({"version": "V2"}), Some(p())).await;
    let v2 = "127.0.1.7";
    // Row 26, row 28: no token, before the lookup.
    assert_eq!(get(&server, v2, "/", &[]).await.triple(), (401, "text/plain", NO_TOKEN));
    assert_eq!(get(&server, v2, "/nonexistent", &[]).await.triple(), (401, "text/plain", NO_TOKEN));
    // Row 27: forged, malformed, too long and expired tokens.
    let key = token_key::load_or_create(&server.store).await.unwrap();
    let expired = key.mint("i-v2", unix_now() - 10, 1, 1).unwrap();
    let long = "a".repeat(71);
    for token in ["foo", "INVALID_TOKEN", long.as_str(), expired.as_str()] {
        for header in ["X-metadata-token", "X-aws-ec2-metadata-token"] {
            let reply = get(&server, v2, "/", &[(header, token)]).await;
            assert_eq!(reply.triple(), (401, "text/plain", BAD_TOKEN), "{header}: {token}");
        }
    }
    // Row 30: a token, with the TTL echoed.
    let token = mint(&server, v2, TTL, "60").await;
    let minted = send(&server, v2, "PUT", "/latest/api/token", &[(TTL, "60")]).await;
    assert_eq!((minted.header("content-type"), minted.header(TTL)), (Some("text/plain"), Some("60")));
    assert!((48..=70).contains(&token.len()), "{token}");
    // Row 31: the AWS TTL header is echoed; tokens work under either GET header.
    let aws = send(&server, v2, "PUT", "/latest/api/token", &[(AWS_TTL, "60")]).await;
    assert_eq!((aws.status, aws.header(AWS_TTL), aws.header(TTL)), (200, Some("60"), None));
    for header in ["X-metadata-token", "X-aws-ec2-metadata-token", "x-METADATA-token"] {
        for token in [token.as_str(), aws.text()] {
            assert_eq!(get(&server, v2, "/name/first", &[(header, token)]).await.text(), "John", "{header}");
        }
    }
    // Row 44: the TTL header is ignored on GET.
    let reply = get(&server, v2, "/name/first", &[("X-metadata-token", &token), (TTL, "application/json")]).await;
    assert_eq!(reply.triple(), (200, "text/plain", "John"));
    // Row 45: a 1-second token issued at the same time as a 60-second one, used 2 s later
    // (minted with the deployment's key for a clock 2 s back, so the test does not sleep).
    let then = unix_now() - 2;
    let (short, long_lived) = (key.mint("i-v2", then, 1, 1).unwrap(), key.mint("i-v2", then, 60, 2).unwrap());
    assert_eq!(get(&server, v2, "/", &[("X-metadata-token", &short)]).await.triple(), (401, "text/plain", BAD_TOKEN));
    assert_eq!(get(&server, v2, "/", &[("X-metadata-token", &long_lived)]).await.status, 200);
    // Row 46: a token of instance A is not valid on instance B.
    let reply = get(&server, "127.0.1.8", "/", &[("X-metadata-token", &token)]).await;
    assert_eq!(reply.triple(), (401, "text/plain", BAD_TOKEN));
}

#[tokio::test]
async fn v1_serves_without_a_token_and_ignores_a_bad_one() {
    let server = TestServer::start().await;
    v1(&server, "i-v1", "127.0.1.9", json!({"foo": "bar"})).await;
    // Row 29.
    for headers in [vec![], vec![("X-metadata-token", "INVALID_TOKEN")], vec![("X-aws-ec2-metadata-token", "x")]] {
        assert_eq!(get(&server, "127.0.1.9", "/foo", &headers).await.triple(), (200, "text/plain", "bar"));
    }
    // Row 30 in V1: tokens are issued too, and accepted.
    let token = mint(&server, "127.0.1.9", TTL, "21600").await;
    assert_eq!(get(&server, "127.0.1.9", "/foo", &[("X-metadata-token", &token)]).await.text(), "bar");
}

#[tokio::test]
async fn the_token_put_checks_its_headers_and_path_in_order() {
    let server = TestServer::start().await;
    for (id, ip, version) in [("i-pv1", "127.0.1.10", "V1"), ("i-pv2", "127.0.1.11", "V2")] {
        mmds_instance(&server, id, ip, json!({"version": version}), Some(p())).await;
        // Row 32.
        for ttl in ["0", "21601"] {
            let reply = send(&server, ip, "PUT", "/latest/api/token", &[(TTL, ttl)]).await;
            let body = format!(
                "Invalid time to live value provided for token: {ttl}. Please provide a value between 1 and 21600."
            );
            assert_eq!(reply.triple(), (400, "text/plain", body.as_str()));
        }
        // Row 33: not a u32 (the key is named as Firecracker's documentation spells it).
        for (header, value) in
            [(TTL, "application/json"), (TTL, "-1"), (TTL, "abc"), (TTL, "1.5"), (AWS_TTL, "4294967296")]
        {
            let reply = send(&server, ip, "PUT", "/latest/api/token", &[(header, value)]).await;
            let body = format!("Invalid header. Reason: Invalid value. Key:{header}; Value:{value}");
            assert_eq!(reply.triple(), (400, "text/plain", body.as_str()));
        }
        // Row 34.
        assert_eq!(send(&server, ip, "PUT", "/latest/api/token", &[]).await.triple(), (400, "text/plain", NO_TTL));
        // Row 35, row 36: X-Forwarded-For in any case, before the path and TTL checks.
        for (path, spelling) in [
            ("/latest/api/token", "X-Forwarded-For"),
            ("/latest/api/token", "x-forwarded-for"),
            ("/", "X-fOrWaRdEd-FoR"),
        ] {
            let reply = send(&server, ip, "PUT", path, &[(TTL, "60"), (spelling, "foo")]).await;
            let body = "Invalid header. Reason: Unsupported header name. Key: X-Forwarded-For";
            assert_eq!(reply.triple(), (400, "text/plain", body), "{path} {spelling}");
        }
        // X-Forwarded-For is refused on PUT only.
        let expected = if version == "V1" { 200 } else { 401 };
        assert_eq!(get(&server, ip, "/name/first", &[("X-Forwarded-For", "foo")]).await.status, expected);
        // Row 37, row 39: only the exact token path mints.
        for path in ["/token", "/latest/api/toke", "/", "/latest/api/token/", "/latest/api/token?x=1"] {
            let reply = send(&server, ip, "PUT", path, &[(TTL, "60")]).await;
            let body = format!("Resource not found: {path}.");
            assert_eq!(reply.triple(), (404, "text/plain", body.as_str()));
        }
        // Row 38.
        let collapsed = send(&server, ip, "PUT", "//latest//api///token", &[(TTL, "60")]).await;
        assert_eq!(collapsed.status, 200);
    }
}

#[tokio::test]
async fn methods_and_bodies_are_refused_like_firecracker() {
    let server = TestServer::start().await;
    v1(&server, "i-m1", "127.0.1.12", p()).await;
    mmds_instance(&server, "i-m2", "127.0.1.13", json!({"version": "V2"}), Some(p())).await;
    for ip in ["127.0.1.12", "127.0.1.13"] {
        // Row 40: 405 with Allow, before any token check.
        for method in ["PATCH", "DELETE"] {
            let reply = send(&server, ip, method, "/", &[]).await;
            assert_eq!(reply.triple(), (405, "text/plain", "Not allowed HTTP method."), "{method}");
            assert_eq!(reply.header("allow"), Some("GET, PUT"));
        }
        // Row 41: methods Firecracker's parser does not know.
        for method in ["POST", "OPTIONS", "TRACE"] {
            let reply = send(&server, ip, method, "/", &[]).await;
            assert_eq!(reply.triple(), (501, "text/plain", "Unsupported HTTP method."), "{method}");
        }
        let head = send(&server, ip, "HEAD", "/", &[]).await;
        assert_eq!((head.status, head.body.len()), (501, 0));
        // Row 43: a request that declares a body.
        for method in ["GET", "PUT"] {
            let request = format!(
                "{method} /latest/api/token HTTP/1.1\r\nHost: x\r\n{TTL}: 60\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
            );
            let reply = raw(&server, ip, request.as_bytes()).await.unwrap();
            assert_eq!(reply.triple(), (400, "text/plain", "Invalid request."), "{method}");
        }
        let empty_body = send(&server, ip, "PUT", "/latest/api/token", &[(TTL, "60"), ("Content-Length", "0")]).await;
        assert_eq!(empty_body.status, 200, "Content-Length: 0 is no body");
    }
    // Row 42: HTTP/2.0 in an HTTP/1 request line is refused by the HTTP layer before MMDS sees
    // it: 400 with an empty body (Firecracker answers 501 `Unsupported HTTP version.`).
    let reply = raw(&server, "127.0.1.12", b"GET / HTTP/2.0\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    assert_eq!((reply.status, reply.text()), (400, ""));
}

#[tokio::test]
async fn imds_compat_answers_text_whatever_the_accept_header() {
    let server = TestServer::start().await;
    mmds_instance(&server, "i-compat", "127.0.1.14", json!({"imds_compat": true}), Some(t())).await;
    // Row 47: IMDS text, with the content type the Accept header asked for.
    let reply = get(&server, "127.0.1.14", "/name", &[JSON]).await;
    assert_eq!(reply.triple(), (200, "application/json", "first\nsecond"));
    assert_eq!(get(&server, "127.0.1.14", "/age", &[JSON]).await.triple(), (501, "text/plain", TYPE));
    assert_eq!(get(&server, "127.0.1.14", "/name", &[]).await.triple(), (200, "text/plain", "first\nsecond"));
}

fn fault(message: &str) -> String {
    json!({"fault_message": message}).to_string()
}

const NOT_INIT: &str = "MMDS error: The MMDS data store is not initialized.";
const LIMIT: &str = "MMDS limit exceeded error: The MMDS patch request doesn't fit.";

#[tokio::test]
async fn the_admin_api_has_firecracker_semantics() {
    let server = TestServer::start().await;
    server.create(json!({"id": "i-adm", "ipv4": ["127.0.1.15"]})).await;
    let path = "/v1/instances/i-adm/mmds";
    // Row 48, row 49.
    assert_eq!(admin(&server, Method::GET, path, "").await, (StatusCode::OK, "{}".into()));
    assert_eq!(admin(&server, Method::PATCH, path, r#"{"a":1}"#).await, (StatusCode::BAD_REQUEST, fault(NOT_INIT)));
    assert_eq!(admin(&server, Method::GET, path, "").await.1, "{}", "the refused PATCH changed nothing");
    // Until MMDS is configured or written, the instance speaks EC2.
    let ec2 = get(&server, "127.0.1.15", "/latest/meta-data/instance-id", &[]).await;
    assert_eq!(ec2.triple(), (200, "text/plain", "i-adm"));
    // Row 50.
    let put = admin(&server, Method::PUT, path, r#"{"key1":"value1","key2":"val2"}"#).await;
    assert_eq!(put.0, StatusCode::NO_CONTENT);
    assert_eq!(admin(&server, Method::PATCH, path, r#"{"key1":null,"key2":"value2"}"#).await.0, StatusCode::NO_CONTENT);
    assert_eq!(admin(&server, Method::GET, path, "").await.1, r#"{"key2":"value2"}"#);
    // A written document is served at once (V1 by default).
    assert_eq!(get(&server, "127.0.1.15", "/key2", &[]).await.text(), "value2");
    // Row 51: mod.rs test_json_patch — replace, delete, add, object↔string swaps.
    let before = json!({"name": {"first": "John", "second": "Doe"}, "age": "43",
        "phones": {"home": {"RO": "+40 1234567", "UK": "+44 1234567"}, "mobile": "+44 2345678"}});
    let patch = json!({"name": {"first": null, "second": "Smith", "third": "Jr"}, "age": {"years": 43},
        "phones": {"home": "+44 1234567", "mobile": null}, "address": "Street"});
    let after = json!({"name": {"second": "Smith", "third": "Jr"}, "age": {"years": 43},
        "phones": {"home": "+44 1234567"}, "address": "Street"});
    assert_eq!(admin(&server, Method::PUT, path, &before.to_string()).await.0, StatusCode::NO_CONTENT);
    assert_eq!(admin(&server, Method::PATCH, path, &patch.to_string()).await.0, StatusCode::NO_CONTENT);
    let got: Value = serde_json::from_str(&admin(&server, Method::GET, path, "").await.1).unwrap();
    assert_eq!(got, after);
    // Row 55: any JSON value, even a bare string.
    assert_eq!(admin(&server, Method::PUT, path, r#""string""#).await.0, StatusCode::NO_CONTENT);
    assert_eq!(admin(&server, Method::GET, path, "").await.1, r#""string""#);
    assert_eq!(get(&server, "127.0.1.15", "/", &[]).await.text(), "string");
    // A stored null is initialised (PATCH accepted) and reads as {}.
    assert_eq!(admin(&server, Method::PUT, path, "null").await.0, StatusCode::NO_CONTENT);
    assert_eq!(admin(&server, Method::GET, path, "").await.1, "{}");
    assert_eq!(admin(&server, Method::PATCH, path, r#"{"b":"c"}"#).await.0, StatusCode::NO_CONTENT);
    assert_eq!(admin(&server, Method::GET, path, "").await.1, r#"{"b":"c"}"#);

    // Bad bodies, unknown instances and bad configurations change nothing.
    let not_json = admin(&server, Method::PUT, path, "{nope").await;
    assert_eq!(not_json.0, StatusCode::BAD_REQUEST);
    assert!(not_json.1.contains("An error occurred when deserializing the json body of a request: "), "{}", not_json.1);
    let missing = admin(&server, Method::PUT, "/v1/instances/i-nobody/mmds", "{}").await;
    assert_eq!(missing, (StatusCode::NOT_FOUND, fault("instance i-nobody does not exist")));
    assert_eq!(admin(&server, Method::GET, "/v1/instances/i-nobody/mmds", "").await.0, StatusCode::NOT_FOUND);
    let bad_version = admin(&server, Method::PUT, &format!("{path}/config"), r#"{"version":"foo"}"#).await;
    assert_eq!(bad_version.0, StatusCode::BAD_REQUEST);
    assert!(bad_version.1.contains("unknown variant `foo`, expected `V1` or `V2`"), "{}", bad_version.1);
    let unknown = admin(&server, Method::PUT, &format!("{path}/config"), r#"{"imds_compat":true,"x":1}"#).await;
    assert_eq!(unknown.0, StatusCode::BAD_REQUEST);
    assert!(unknown.1.contains("unknown field `x`"), "{}", unknown.1);
    assert_eq!(get(&server, "127.0.1.15", "/b", &[JSON]).await.text(), "\"c\"", "still V1, not imds_compat");
    // Firecracker's full configuration is accepted; V1 is marked deprecated.
    let response = server
        .admin()
        .send(
            Method::PUT,
            &format!("{path}/config"),
            &[],
            r#"{"version":"V1","network_interfaces":["eth0"],"ipv4_address":"169.254.170.2"}"#,
        )
        .await
        .unwrap();
    assert_eq!((response.status, response.header("deprecation")), (StatusCode::NO_CONTENT, Some("true")));
    // Deleting the instance deletes its MMDS.
    assert_eq!(admin(&server, Method::DELETE, "/v1/instances/i-adm", "").await.0, StatusCode::NO_CONTENT);
    server.create(json!({"id": "i-adm", "ipv4": ["127.0.1.15"]})).await;
    assert_eq!(admin(&server, Method::GET, path, "").await.1, "{}");
    assert_eq!(get(&server, "127.0.1.15", "/latest/meta-data/instance-id", &[]).await.text(), "i-adm");
}

#[tokio::test]
async fn documents_larger_than_the_limit_are_refused_and_change_nothing() {
    let server = TestServer::start().await;
    server.create(json!({"id": "i-big", "ipv4": ["127.0.1.16"]})).await;
    let path = "/v1/instances/i-big/mmds";
    // Row 52: a PUT over 51200 bytes.
    let too_big = json!({"k": "x".repeat(51_200)}).to_string();
    assert_eq!(admin(&server, Method::PUT, path, &too_big).await, (StatusCode::PAYLOAD_TOO_LARGE, fault(LIMIT)));
    assert_eq!(admin(&server, Method::GET, path, "").await.1, "{}");
    // Row 54: a small document, then a larger one (compact sizes 59 and 158).
    let small = json!({"secret_key": "a", "other": "b".repeat(30)});
    assert_eq!(admin(&server, Method::PUT, path, &small.to_string()).await.0, StatusCode::NO_CONTENT);
    assert_eq!(admin(&server, Method::GET, path, "").await.1.len(), 59);
    let patch = json!({"secret_key": "a".repeat(100)}).to_string();
    assert_eq!(admin(&server, Method::PATCH, path, &patch).await.0, StatusCode::NO_CONTENT);
    assert_eq!(admin(&server, Method::GET, path, "").await.1.len(), 158);
    // Row 53: fill to 51195 bytes, then a patch that would overflow.
    assert_eq!(admin(&server, Method::PUT, path, "{}").await.0, StatusCode::NO_CONTENT);
    let fill = json!({"secret_key": "a".repeat(51_195 - r#"{"secret_key":""}"#.len())}).to_string();
    assert_eq!(admin(&server, Method::PATCH, path, &fill).await.0, StatusCode::NO_CONTENT);
    assert_eq!(admin(&server, Method::GET, path, "").await.1.len(), 51_195);
    let overflow = json!({"secret_key2": "b".repeat(10)}).to_string();
    assert_eq!(admin(&server, Method::PATCH, path, &overflow).await, (StatusCode::PAYLOAD_TOO_LARGE, fault(LIMIT)));
    assert_eq!(admin(&server, Method::GET, path, "").await.1, fill, "unchanged");
    // Row 56: exactly the limit is accepted, one byte more is not (non-ASCII counts its bytes).
    let exact = json!({"secret_key": "a".repeat(51_200 - r#"{"secret_key":""}"#.len())}).to_string();
    assert_eq!(exact.len(), 51_200);
    assert_eq!(admin(&server, Method::PATCH, path, &exact).await.0, StatusCode::NO_CONTENT);
    let over = json!({"secret_key": format!("{}é", "a".repeat(51_200 - r#"{"secret_key":""}"#.len() - 1))});
    assert_eq!(over.to_string().len(), 51_201);
    assert_eq!(admin(&server, Method::PATCH, path, &over.to_string()).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(admin(&server, Method::GET, path, "").await.1, exact);
}

#[tokio::test]
async fn the_size_limit_is_configurable() {
    let store: std::sync::Arc<dyn imds_store::Store> = std::sync::Arc::new(imds_store::memory::MemoryStore::new());
    let limits = imds_model::Limits { max_mmds: 100, ..Default::default() };
    let server = TestServer::with_config(store, None, limits, None).await;
    server.create(json!({"id": "i-lim", "ipv4": ["127.0.1.17"]})).await;
    let path = "/v1/instances/i-lim/mmds";
    let fits = json!({"k": "x".repeat(100 - 8)}).to_string();
    assert_eq!(admin(&server, Method::PUT, path, &fits).await.0, StatusCode::NO_CONTENT);
    let too_big = json!({"k": "x".repeat(100 - 7)}).to_string();
    assert_eq!(admin(&server, Method::PUT, path, &too_big).await.0, StatusCode::PAYLOAD_TOO_LARGE);
}

/// A guest reading while the operator patches sees the old or the new document, never a mix:
/// every patch sets all members to one value, and every read must find them all equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_reading_during_patches_sees_whole_documents() {
    const KEYS: usize = 20;
    const PATCHES: usize = 40;
    let server = std::sync::Arc::new(TestServer::start().await);
    let document = |n: usize| Value::Object((0..KEYS).map(|k| (format!("k{k:02}"), json!(n.to_string()))).collect());
    v1(&server, "i-atom", "127.0.1.18", document(0)).await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (server, stop) = (std::sync::Arc::clone(&server), std::sync::Arc::clone(&stop));
        tokio::spawn(async move {
            let mut seen = std::collections::BTreeSet::new();
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && reads < 5_000 {
                let reply = get(&server, "127.0.1.18", "/", &[JSON]).await;
                let doc: Value = serde_json::from_slice(&reply.body).unwrap();
                let values: std::collections::BTreeSet<&str> =
                    doc.as_object().unwrap().values().map(|v| v.as_str().unwrap()).collect();
                assert_eq!(values.len(), 1, "a read saw a mix of two documents: {doc}");
                assert_eq!(doc.as_object().unwrap().len(), KEYS);
                seen.insert(values.into_iter().next().unwrap().parse::<usize>().unwrap());
                reads += 1;
            }
            (reads, seen)
        })
    };
    let writes = async {
        for n in 1..=PATCHES {
            let patch = document(n).to_string();
            assert_eq!(
                admin(&server, Method::PATCH, "/v1/instances/i-atom/mmds", &patch).await.0,
                StatusCode::NO_CONTENT
            );
        }
    };
    tokio::time::timeout(Duration::from_secs(60), writes).await.expect("patches finish within 60 s");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (reads, seen) = tokio::time::timeout(Duration::from_secs(60), reader).await.unwrap().unwrap();
    assert!(reads > 0);
    assert!(seen.iter().all(|n| *n <= PATCHES), "{seen:?}");
    // After the last acknowledged patch, guests read the last document.
    assert_eq!(get(&server, "127.0.1.18", "/k00", &[]).await.text(), PATCHES.to_string());
}

#[tokio::test]
async fn mmds_is_served_only_while_enabled_and_needs_the_admin_token() {
    let store: std::sync::Arc<dyn imds_store::Store> = std::sync::Arc::new(imds_store::memory::MemoryStore::new());
    let server = TestServer::with_store(store, Some("s3cret")).await;
    let anonymous = imds_server::client::Client::new(imds_server::client::Endpoint::Tcp(server.admin_addr));
    for method in [Method::GET, Method::PUT, Method::PATCH] {
        let response = anonymous.send(method.clone(), "/v1/instances/i-off/mmds", &[], "{}").await.unwrap();
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{method}");
    }
    v1(&server, "i-off", "127.0.1.19", json!({"foo": "bar"})).await;
    assert_eq!(get(&server, "127.0.1.19", "/foo", &[]).await.text(), "bar");
    let disable = json!({"dialects": {"enabled": ["ec2"]}}).to_string();
    let headers = [("content-type", "application/merge-patch+json")];
    let patched = server.admin().send(Method::PATCH, "/v1/instances/i-off", &headers, disable).await.unwrap();
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text());
    assert_eq!(get(&server, "127.0.1.19", "/latest/meta-data/instance-id", &[]).await.text(), "i-off");
    assert_eq!(get(&server, "127.0.1.19", "/foo", &[]).await.status, 404, "EC2's not-found, no MMDS");
}

/// Concurrent PATCHes of different members all land: each is merged into the document the
/// store holds when it commits, never into a stale copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_patches_lose_no_update() {
    const WRITERS: usize = 5;
    let server = TestServer::start().await;
    v1(&server, "i-race", "127.0.1.20", json!({})).await;
    let patches = (0..WRITERS).map(|n| {
        let server = &server;
        async move {
            let patch = json!({ format!("k{n}"): n.to_string() }).to_string();
            admin(server, Method::PATCH, "/v1/instances/i-race/mmds", &patch).await
        }
    });
    let results = tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(patches)).await.unwrap();
    assert!(results.iter().all(|(status, _)| *status == StatusCode::NO_CONTENT), "{results:?}");
    let listing = get(&server, "127.0.1.20", "/", &[]).await;
    let expected: Vec<String> = (0..WRITERS).map(|n| format!("k{n}")).collect();
    assert_eq!(listing.text(), expected.join("\n"));
}
