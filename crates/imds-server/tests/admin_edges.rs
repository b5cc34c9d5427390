//! The admin API's edges, spoken as raw bytes over TCP: each malformed or hostile request gets a
//! 4xx with the JSON error body and changes nothing.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use imds_server::test_util::TestServer;
use imds_store::memory::MemoryStore;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response read off the wire.
#[derive(Debug)]
struct Raw {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not a JSON body: {:?} {:?}", self.head, String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
        })
    }

    /// The JSON error body's code and field, after checking the response is a JSON error.
    fn error(&self) -> (String, String) {
        assert_eq!(self.header("content-type").as_deref(), Some("application/json"), "{}", self.head);
        let body = self.json();
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "error without a message: {body}");
        let text = |v: &Value| v.as_str().unwrap_or("<none>").to_owned();
        (text(&body["error"]["code"]), text(&body["error"]["field"]))
    }
}

/// Sends `request` as is and reads one response (bounded: a server that does not answer within
/// 5 s fails the test).
async fn exchange(server: &TestServer, request: &[u8]) -> Raw {
    let mut stream = TcpStream::connect(server.admin_addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_response(&mut stream).await
}

async fn read_response(stream: &mut TcpStream) -> Raw {
    let mut buffer = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut chunk = [0u8; 4096];
    let (head_end, length) = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                .unwrap_or(0usize);
            if buffer.len() >= end + 4 + length {
                break (end, length);
            }
        }
        let read = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("no complete answer within 5 s; got {:?}", String::from_utf8_lossy(&buffer)))
            .unwrap_or(0);
        assert!(read > 0, "connection closed before a complete answer: {:?}", String::from_utf8_lossy(&buffer));
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = buffer[head_end + 4..head_end + 4 + length].to_vec();
    Raw { status, head, body }
}

/// Whether the server closed the connection: the next read sees end of stream (or a reset)
/// rather than waiting (bounded at 5 s).
async fn closed(stream: &mut TcpStream) -> bool {
    let mut chunk = [0u8; 64];
    matches!(tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk)).await, Ok(Ok(0) | Err(_)))
}

/// Every instance record and `i-ok`'s MMDS document, to prove refused requests changed nothing.
async fn store_state(server: &TestServer) -> (Value, String) {
    let admin = server.admin();
    let instances = admin.get("/v1/instances?limit=1000").await.unwrap().json();
    (instances, admin.get("/v1/instances/i-ok/mmds").await.unwrap().text())
}

fn put(path: &str, body: &str) -> Vec<u8> {
    format!(
        "PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn server() -> TestServer {
    let server = TestServer::with_config(Arc::new(MemoryStore::new()), None, imds_model::Limits::default(), None).await;
    server.create(json!({"id": "i-ok", "hostname": "ok", "ipv4": ["127.0.0.61"], "tags": {"a b": "1"}})).await;
    server
}

#[tokio::test]
async fn an_announced_body_over_the_limit_is_refused_at_once_without_waiting_for_it() {
    let server = server().await;
    let before = store_state(&server).await;
    let response = exchange(
        &server,
        b"PUT /v1/instances/i-big HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n",
    )
    .await;
    assert_eq!(response.status, 413, "{}", response.head);
    assert_eq!(response.error().0, "too_large");
    for path in ["/v1/instances/i-big/mmds", "/v1/roles/big"] {
        let request = format!(
            "PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n"
        );
        assert_eq!(exchange(&server, request.as_bytes()).await.status, 413, "{path}");
    }
    let import = exchange(
        &server,
        b"POST /v1/instances HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: 100000000000\r\n\r\n",
    )
    .await;
    assert_eq!(import.status, 413);
    assert_eq!(store_state(&server).await, before);
}

#[tokio::test]
async fn a_path_that_is_not_utf8_gets_a_json_400() {
    let server = server().await;
    let before = store_state(&server).await;
    for path in ["/v1/instances/i-%FF", "/v1/instances/i-%C3%28/mmds", "/v1/roles/r%FF"] {
        let response = exchange(&server, &put(path, "{}")).await;
        assert_eq!(response.status, 400, "{path}: {}", response.head);
        let (code, field) = response.error();
        assert_eq!(code, "bad_request", "{path}");
        assert_eq!(field, if path.contains("roles") { "name" } else { "id" }, "{path}");
    }
    let get = exchange(&server, b"GET /v1/instances/i-%FF HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!((get.status, get.error().1), (400, "id".to_owned()));
    // Raw bytes that are not UTF-8 in the request line, on a fresh connection and after a
    // request answered on the same one.
    let mut raw = b"PUT /v1/instances/i-\xff HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}".to_vec();
    let response = exchange(&server, &raw).await;
    assert_eq!(response.status, 400, "{}", response.head);
    assert_eq!(response.error(), ("bad_request".to_owned(), "path".to_owned()));
    let mut stream = TcpStream::connect(server.admin_addr).await.unwrap();
    let mut pipelined = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    pipelined.append(&mut raw);
    stream.write_all(&pipelined).await.unwrap();
    // Both answers, in order, then the end of the connection (bounded at 5 s).
    let mut both = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut both)).await.unwrap().unwrap();
    let both = String::from_utf8(both).unwrap();
    let (first, second) = both.split_at(both.rfind("HTTP/1.1 ").unwrap());
    assert!(first.starts_with("HTTP/1.1 200 "), "{both}");
    assert!(second.starts_with("HTTP/1.1 400 ") && second.contains("\"field\":\"path\""), "{both}");
    assert_eq!(store_state(&server).await, before);
}

#[tokio::test]
async fn a_malformed_chunk_size_is_a_400_not_a_413() {
    let server = server().await;
    let before = store_state(&server).await;
    for chunked in ["zz\r\n{}\r\n0\r\n\r\n", "2\r\n{}\r\nffffffffffffffffffff\r\n", "-2\r\n{}\r\n0\r\n\r\n"] {
        let request = format!(
            "PUT /v1/instances/i-new HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{chunked}"
        );
        let response = exchange(&server, request.as_bytes()).await;
        assert_eq!(response.status, 400, "{chunked:?}: {}", response.head);
        assert_eq!(response.error(), ("bad_request".to_owned(), String::new()), "{chunked:?}");
    }
    // A well-formed chunked body is accepted.
    let good = exchange(
        &server,
        b"PUT /v1/instances/i-chunked HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(good.status, 201, "{}", good.head);
    let after = store_state(&server).await;
    assert_eq!(after.0["instances"].as_array().unwrap().len(), before.0["instances"].as_array().unwrap().len() + 1);
}

#[tokio::test]
async fn a_repeated_json_key_is_refused_naming_the_key() {
    let server = server().await;
    let before = store_state(&server).await;
    let cases = [
        ("/v1/instances/i-dup", r#"{"ipv4": ["127.0.0.62"], "ipv4": ["127.0.0.63"]}"#, "ipv4"),
        ("/v1/instances/i-ok", r#"{"hostname": "a", "tags": {"k": "1", "k": "2"}}"#, "tags.k"),
        (
            "/v1/instances/i-dup",
            r#"{"network": {"interfaces": [{"mac": "02:00:00:00:00:01", "mac": "02:00:00:00:00:02"}]}}"#,
            "network.interfaces[0].mac",
        ),
        ("/v1/roles/dup", r#"{"source": "static", "source": "process"}"#, "source"),
    ];
    for (path, body, key) in cases {
        let response = exchange(&server, &put(path, body)).await;
        assert_eq!(response.status, 400, "{body}: {}", response.head);
        assert_eq!(response.error(), ("invalid_json".to_owned(), key.to_owned()), "{body}");
        assert!(response.json()["error"]["message"].as_str().unwrap().contains(key));
    }
    let patch = exchange(
        &server,
        b"PATCH /v1/instances/i-ok HTTP/1.1\r\nHost: x\r\nContent-Type: application/merge-patch+json\r\nContent-Length: 34\r\n\r\n{\"hostname\": \"a\", \"hostname\": \"b\"}",
    )
    .await;
    assert_eq!(patch.status, 400, "{}", patch.head);
    assert_eq!(patch.error().1, "hostname");
    let import = r#"{"id": "i-x", "id": "i-y"}"#;
    let import = format!(
        "POST /v1/instances HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n{import}",
        import.len()
    );
    let import = exchange(&server, import.as_bytes()).await;
    assert_eq!((import.status, import.error().1), (400, "line 1: id".to_owned()));
    // MMDS errors keep Firecracker's shape.
    let mmds = exchange(&server, &put("/v1/instances/i-ok/mmds", r#"{"a": 1, "a": 2}"#)).await;
    assert_eq!(mmds.status, 400);
    assert!(mmds.json()["fault_message"].as_str().unwrap().contains("duplicate key a"), "{:?}", mmds.json());
    assert_eq!(store_state(&server).await, before);
    assert_eq!(before.1, "{}");
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let server = TestServer::with_store(Arc::new(MemoryStore::new()), Some("t0ken")).await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let request = format!("GET /v1/instances HTTP/1.1\r\nHost: x\r\nAuthorization: {scheme} t0ken\r\n\r\n");
        let response = exchange(&server, request.as_bytes()).await;
        assert_eq!(response.status, 200, "{scheme}: {}", response.head);
    }
    for authorization in ["bearer T0KEN", "Basic t0ken", "bearert0ken"] {
        let request = format!("GET /v1/instances HTTP/1.1\r\nHost: x\r\nAuthorization: {authorization}\r\n\r\n");
        let response = exchange(&server, request.as_bytes()).await;
        assert_eq!((response.status, response.error().1), (401, "Authorization".to_owned()), "{authorization}");
    }
}

#[tokio::test]
async fn content_length_with_transfer_encoding_is_refused_and_the_connection_closed() {
    let server = server().await;
    let before = store_state(&server).await;
    // Either order of the two headers; the smuggled second request must never run.
    let smuggled = "PUT /v1/instances/i-smuggled HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    for headers in
        ["Content-Length: 5\r\nTransfer-Encoding: chunked", "Transfer-Encoding: chunked\r\nContent-Length: 5"]
    {
        let request = format!(
            "PUT /v1/instances/i-both HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{headers}\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n{smuggled}"
        );
        let mut stream = TcpStream::connect(server.admin_addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let response = read_response(&mut stream).await;
        assert_eq!(response.status, 400, "{headers:?}: {}", response.head);
        assert_eq!(response.error().0, "bad_request");
        assert!(closed(&mut stream).await, "the connection stays open after {headers:?}");
    }
    assert_eq!(store_state(&server).await, before);
}

#[tokio::test]
async fn tag_keys_ec2_cannot_expose_are_refused_while_tags_are_on() {
    let server = server().await;
    let before = store_state(&server).await;
    for key in [".", "..", "_index", "a b", "a\\b", "é"] {
        let body = json!({"ipv4": ["127.0.0.64"], "imds": {"tags": "on"}, "tags": {"Name": "x", key: "v"}}).to_string();
        let response = exchange(&server, &put("/v1/instances/i-tags", &body)).await;
        assert_eq!(response.status, 400, "{key:?}: {}", response.head);
        assert_eq!(response.error(), ("invalid_instance".to_owned(), format!("tags.{key}")), "{key:?}");
    }
    // Turning tags on for an instance that has such a key is refused the same way.
    let patch = br#"{"imds": {"tags": "on"}}"#;
    let mut request = format!(
        "PATCH /v1/instances/i-ok HTTP/1.1\r\nHost: x\r\nContent-Type: application/merge-patch+json\r\nContent-Length: {}\r\n\r\n",
        patch.len()
    )
    .into_bytes();
    request.extend_from_slice(patch);
    let response = exchange(&server, &request).await;
    assert_eq!((response.status, response.error().1), (400, "tags.a b".to_owned()));
    assert_eq!(store_state(&server).await, before);
    // With tags off, such keys are fine (other dialects show them), and EC2's own keys are fine on.
    let ok = json!({"ipv4": ["127.0.0.64"], "imds": {"tags": "on"}, "tags": {"Name": "x", "a+b=c,d_e:f@g-h.i": "v"}});
    assert_eq!(exchange(&server, &put("/v1/instances/i-tags", &ok.to_string())).await.status, 201);
}
