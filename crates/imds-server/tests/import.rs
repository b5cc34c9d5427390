//! Bulk import (`POST /v1/instances`) over real sockets, on a real SQLite store: many
//! instances per request, guests finding theirs, replacement counts, and every bad input
//! refused before anything is written.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use http::{Method, StatusCode};
use imds_server::admin::import::Limits;
use imds_server::client::Response;
use imds_server::test_util::TestServer;
use imds_store::{Change, FeedEvent, Key, Revision, Scope};
use imds_store_sqlite::{SqliteOptions, SqliteStore};
use serde_json::{json, Value};

const NDJSON: (&str, &str) = ("content-type", "application/x-ndjson");

/// A daemon over a fresh SQLite file (the directory lives as long as the server), once it
/// has written its signing keys: the only write of its own, which would otherwise move the
/// revision under a test proving that a request changed nothing.
async fn sqlite_server(import: Limits) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("imds.db"), SqliteOptions::default()).unwrap();
    let server = TestServer::with_import_limits(Arc::new(store), import).await;
    let mut feed = server.store.subscribe(&Scope::All, Revision(0)).await.unwrap();
    let keys = Key::new("secrets", "signing-keys");
    let written = async {
        while let Some(event) = feed.next().await {
            if let FeedEvent::Changes { changes, .. } = event.unwrap() {
                if changes.iter().any(|change| matches!(change, Change::Put(record) if record.key == keys)) {
                    return;
                }
            }
        }
        panic!("the feed ended");
    };
    tokio::time::timeout(Duration::from_secs(60), written).await.expect("signing keys written within 60 s");
    (server, dir)
}

/// Instance `n`: id `i-<n>`, IPv4 127.x.y.z from `n`, a MAC from `n`.
fn instance(n: u32, hostname: &str) -> Value {
    let [_, x, y, z] = (n + 1).to_be_bytes();
    json!({
        "id": format!("i-{n:06}"),
        "hostname": hostname,
        "ipv4": [format!("127.{}.{y}.{z}", x + 1)],
        "mac": [format!("02:00:00:{x:02x}:{y:02x}:{z:02x}")],
    })
}

fn ndjson(docs: &[Value]) -> String {
    docs.iter().map(|doc| format!("{doc}\n")).collect()
}

async fn import(server: &TestServer, body: String, extra: &[(&str, &str)]) -> Response {
    let mut headers = vec![NDJSON];
    headers.extend_from_slice(extra);
    server.admin().send(Method::POST, "/v1/instances", &headers, body).await.unwrap()
}

fn field(response: &Response) -> String {
    response.json()["error"]["field"].as_str().unwrap_or("<none>").to_owned()
}

/// The store's revision and every instance record, to prove a request changed nothing.
async fn store_state(server: &TestServer) -> (Revision, Vec<(String, Vec<u8>, Revision)>) {
    let rev = server.store.revision().await.unwrap();
    let mut records = Vec::new();
    let mut after = None;
    loop {
        let page = server.store.list("instances", after.as_deref(), 1000).await.unwrap();
        records.extend(page.records.into_iter().map(|r| (r.key.id, r.value, r.rev)));
        match page.next_after {
            Some(next) => after = Some(next),
            None => return (rev, records),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_in_one_request_then_guests_find_theirs() {
    const N: u32 = 10_000;
    let (server, _dir) = sqlite_server(Limits::default()).await;
    let docs: Vec<Value> = (0..N).map(|n| instance(n, &format!("host-{n}"))).collect();

    let response = import(&server, ndjson(&docs), &[]).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let body = response.json();
    assert_eq!(body["created"], N);
    assert_eq!(body["replaced"], 0);
    let rev: u64 = body["rev"].as_str().unwrap().parse().unwrap();
    assert_eq!(Revision(rev), server.store.revision().await.unwrap(), "rev is the last chunk's revision");
    let chunks = (N as usize).div_ceil(server.store.max_batch().min(5_000));
    let records = store_state(&server).await.1;
    assert_eq!(records.len(), N as usize);
    let revs: std::collections::BTreeSet<Revision> = records.iter().map(|(_, _, rev)| *rev).collect();
    assert_eq!(revs.len(), chunks, "one revision per chunk, not per instance");
    assert_eq!(revs.last(), Some(&Revision(rev)));

    // The answer came after the view caught up: guests see their own instance at once.
    for n in (0..N).step_by(997).chain([N - 1]) {
        let ip = docs[n as usize]["ipv4"][0].as_str().unwrap().to_owned();
        let got = server.guest_from(&ip).get("/latest/meta-data/instance-id").await.unwrap();
        assert_eq!(got.status, StatusCode::OK, "guest {ip}");
        assert_eq!(got.text(), format!("i-{n:06}"), "guest {ip}");
    }

    // Re-importing replaces: counts split between replaced and created.
    let mut again: Vec<Value> = (0..100).map(|n| instance(n, "renamed")).collect();
    again.push(instance(N, "new"));
    let response = import(&server, ndjson(&again), &[("content-type", "application/jsonl")]).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(response.json()["created"], 1);
    assert_eq!(response.json()["replaced"], 100);
    let ip = docs[42]["ipv4"][0].as_str().unwrap().to_owned();
    assert_eq!(server.guest_from(&ip).get("/latest/meta-data/hostname").await.unwrap().text(), "renamed");
}

#[tokio::test]
async fn bad_input_changes_nothing() {
    let (server, _dir) = sqlite_server(Limits { max_body: 64 * 1024, max_lines: 5 }).await;
    let existing = instance(1, "existing");
    let response = import(&server, ndjson(&[existing.clone(), instance(2, "two")]), &[]).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let before = store_state(&server).await;

    let good = |n| instance(n, "fine");
    let mut bad_ip = instance(12, "bad");
    bad_ip["network"] = json!({"interfaces": [{"mac": "02:00:00:00:00:99", "ipv4": [{"address": "not-an-ip"}]}]});
    let mut outsider = instance(13, "thief");
    outsider["ipv4"] = existing["ipv4"].clone();
    let mut twin = instance(14, "twin");
    twin["mac"] = good(10)["mac"].clone();
    let mut moved = instance(2, "moved");
    moved["ipv4"] = existing["ipv4"].clone();

    // (what, body, extra headers, status, field)
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        (
            "an invalid field",
            format!("{}\n\n{}\n{bad_ip}\n", good(10), good(11)),
            vec![],
            StatusCode::BAD_REQUEST,
            "line 4: network.interfaces[0].ipv4[0].address",
        ),
        ("not JSON", format!("{}\n{{\"id\": \n", good(10)), vec![], StatusCode::BAD_REQUEST, "line 2:"),
        (
            "no id",
            format!("{}\n{}\n", good(10), json!({"hostname": "x"})),
            vec![],
            StatusCode::BAD_REQUEST,
            "line 2: id",
        ),
        ("a repeated id", ndjson(&[good(10), good(11), good(10)]), vec![], StatusCode::BAD_REQUEST, "line 3: id"),
        ("two lines, one MAC", ndjson(&[good(10), twin]), vec![], StatusCode::CONFLICT, "line 2: mac"),
        ("an address held outside", ndjson(&[good(10), outsider]), vec![], StatusCode::CONFLICT, "line 2: ipv4"),
        (
            "create-only over an existing id",
            ndjson(&[good(10), existing.clone()]),
            vec![("if-none-match", "*")],
            StatusCode::PRECONDITION_FAILED,
            "line 2: If-Match",
        ),
        ("too many lines", ndjson(&(10..16).map(good).collect::<Vec<_>>()), vec![], StatusCode::PAYLOAD_TOO_LARGE, ""),
        ("too big a body", format!("{}\n", " ".repeat(70 * 1024)), vec![], StatusCode::PAYLOAD_TOO_LARGE, ""),
        ("If-Match", ndjson(&[good(10)]), vec![("if-match", "\"1\"")], StatusCode::BAD_REQUEST, "If-Match"),
    ];
    for (what, body, headers, status, want_field) in cases {
        let response = import(&server, body, &headers).await;
        assert_eq!(response.status, status, "{what}: {}", response.text());
        assert_eq!(field(&response), want_field, "{what}: {}", response.text());
        assert_eq!(store_state(&server).await, before, "{what} changed the store");
    }
    let response = server
        .admin()
        .send(Method::POST, "/v1/instances", &[("content-type", "application/json")], "{}")
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Two lines claiming one address are both named.
    let mut twin = instance(14, "twin");
    twin["mac"] = good(10)["mac"].clone();
    let response = import(&server, ndjson(&[good(10), twin]), &[]).await;
    let message = response.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("i-000010") && message.contains("i-000014"), "{message}");
    assert_eq!(response.json()["error"]["conflicting_instance"], "i-000010");

    // An address moving between two instances of one import is no conflict.
    let response = import(&server, ndjson(&[json!({"id": "i-000001", "hostname": "bare"}), moved]), &[]).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(response.json()["replaced"], 2);
    let ip = existing["ipv4"][0].as_str().unwrap().to_owned();
    assert_eq!(server.guest_from(&ip).get("/latest/meta-data/instance-id").await.unwrap().text(), "i-000002");
}

#[tokio::test]
async fn create_only_writes_new_ids_only() {
    let (server, _dir) = sqlite_server(Limits::default()).await;
    let response = import(&server, ndjson(&[instance(1, "a"), instance(2, "b")]), &[("if-none-match", "*")]).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(response.json()["created"], 2);
    let before = store_state(&server).await;
    let response = import(&server, ndjson(&[instance(3, "c"), instance(2, "b2")]), &[("if-none-match", "*")]).await;
    assert_eq!(response.status, StatusCode::PRECONDITION_FAILED, "{}", response.text());
    assert_eq!(store_state(&server).await, before, "instance 3 was written");
    // An empty body imports nothing and says so.
    let response = import(&server, "\n\n".into(), &[]).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.json(), json!({"created": 0, "replaced": 0}));
    assert_eq!(store_state(&server).await, before);
}

/// A memory store committing two puts per batch whose second batch loses a race: another
/// writer took an address between the import's checks and its write.
#[derive(Debug)]
struct RacedStore {
    inner: imds_store::memory::MemoryStore,
    batches: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl imds_store::Store for RacedStore {
    async fn get(&self, key: &Key) -> Result<Option<imds_store::Record>, imds_store::StoreError> {
        self.inner.get(key).await
    }
    async fn list(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<imds_store::Page, imds_store::StoreError> {
        self.inner.list(collection, after, limit).await
    }
    async fn commit(&self, ops: Vec<imds_store::Op>) -> Result<imds_store::Committed, imds_store::StoreError> {
        // Only the import's chunks count: every operation an instance write.
        let chunk = ops.iter().all(|op| op.key().collection == "instances");
        if chunk && self.batches.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            let holder = Key::new("instances", "i-racer");
            return Err(imds_store::StoreError::ClaimConflict { claim: "ipv4/127.9.9.9".into(), holder });
        }
        self.inner.commit(ops).await
    }
    fn max_batch(&self) -> usize {
        2
    }
    async fn snapshot(&self, scope: &Scope) -> Result<imds_store::Snapshot, imds_store::StoreError> {
        self.inner.snapshot(scope).await
    }
    async fn subscribe(&self, scope: &Scope, after: Revision) -> Result<imds_store::Feed, imds_store::StoreError> {
        self.inner.subscribe(scope, after).await
    }
    async fn compact(&self, through: Revision) -> Result<(), imds_store::StoreError> {
        self.inner.compact(through).await
    }
    async fn revision(&self) -> Result<Revision, imds_store::StoreError> {
        self.inner.revision().await
    }

    async fn acquire(
        &self,
        key: &imds_store::Key,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<imds_store::Acquired, imds_store::StoreError> {
        self.inner.acquire(key, holder, ttl).await
    }

    async fn release(&self, key: &imds_store::Key, holder: &str) -> Result<(), imds_store::StoreError> {
        self.inner.release(key, holder).await
    }
}

#[tokio::test]
async fn a_chunk_lost_to_a_race_reports_what_was_committed() {
    let store = RacedStore { inner: imds_store::memory::MemoryStore::new(), batches: Default::default() };
    let server = TestServer::with_import_limits(Arc::new(store), Limits::default()).await;
    let docs: Vec<Value> = (0..5).map(|n| instance(n, "raced")).collect();
    let response = import(&server, ndjson(&docs), &[]).await;
    assert_eq!(response.status, StatusCode::CONFLICT, "{}", response.text());
    let error = &response.json()["error"];
    assert_eq!(error["committed"], 2, "{error}");
    assert_eq!(error["conflicting_instance"], "i-racer", "{error}");
    assert!(error["message"].as_str().unwrap().contains("2 instances were imported"), "{error}");
    let ids: Vec<String> = store_state(&server).await.1.into_iter().map(|(id, _, _)| id).collect();
    assert_eq!(ids, ["i-000000", "i-000001"], "the first chunk stays, nothing after it");
}
