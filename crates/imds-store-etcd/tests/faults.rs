//! A serving node (the real server, real sockets) on real etcd while members die, the whole
//! cluster stops, and history is compacted past the node's resume point. Guests must keep being
//! answered, and every change must reach the node exactly once.
//!
//! The cases start their own etcd processes and run one at a time (a mutex), so kills and
//! elections do not compete for this machine's two cores.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use http::{Method, StatusCode};
use imds_model::{Instance, Limits};
use imds_server::client::{Client, Endpoint};
use imds_server::server::{self, Running};
use imds_server::{admin, guest, listener};
use imds_store::unreliable::Unreliable;
use imds_store::{Expect, FeedEvent, Key, Put, Revision, Scope, Store, StoreError, Written};
use imds_store_etcd::testing::EtcdCluster;
use imds_store_etcd::EtcdStore;

/// One case at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const NODE: &str = "hv-1";

struct Node {
    running: Running,
    guest: SocketAddr,
    admin: SocketAddr,
}

impl Node {
    async fn start(store: Arc<dyn Store>) -> Node {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let config = server::Config {
            guest: guest::Config { listen: vec![loopback], ..guest::Config::default() },
            admin: admin::Config {
                listen: Some(loopback),
                socket: None,
                token: None,
                write_visibility_timeout: Duration::from_secs(5),
                import: admin::import::Limits::default(),
                compat: Default::default(),
            },
            limits: Limits::default(),
            connections: listener::Limits::default(),
            scope: Scope::Node(NODE.into()),
            net: None,
            metrics: Default::default(),
            audit: Default::default(),
            fleet: None,
        };
        let running = server::start(config, store).await.unwrap();
        let (guest, admin) = (running.guest_addrs[0], running.admin_addr.unwrap());
        assert!(running.view.wait_for(Revision(0), Duration::from_secs(20)).await, "the view did not load");
        Node { running, guest, admin }
    }

    fn admin(&self) -> Client {
        Client::new(Endpoint::Tcp(self.admin)).with_timeout(Duration::from_secs(20))
    }

    /// What the guest at `ip` reads as its instance id: `Ok(id)` or `Err(status or error)`.
    async fn instance_id(&self, ip: &str) -> Result<String, String> {
        let client = Client::from_source(self.guest, ip.parse().unwrap()).with_timeout(Duration::from_secs(2));
        match client.get("/latest/meta-data/instance-id").await {
            Ok(response) if response.status == StatusCode::OK => Ok(response.text()),
            Ok(response) => Err(format!("status {}", response.status)),
            Err(err) => Err(err.to_string()),
        }
    }

    /// Waits up to `within` for the guest at `ip` to read `id`.
    async fn wait_serves(&self, ip: &str, id: &str, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let got = self.instance_id(ip).await;
            if got.as_deref() == Ok(id) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "guest {ip} reads {got:?}, not {id}, after {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Creates or replaces the static role `name` through this node's admin API.
    async fn put_role(&self, name: &str, access_key_id: &str) {
        let body = static_role(access_key_id).to_string();
        let response = self
            .admin()
            .send(Method::PUT, &format!("/v1/roles/{name}"), &[("content-type", "application/json")], body)
            .await
            .unwrap();
        assert!(response.status.is_success(), "role {name}: {} {}", response.status, response.text());
    }

    /// The access key id the guest at `ip` reads for `role`, or why it could not.
    async fn access_key(&self, ip: &str, role: &str) -> Result<String, String> {
        let client = Client::from_source(self.guest, ip.parse().unwrap()).with_timeout(Duration::from_secs(2));
        let path = format!("/latest/meta-data/iam/security-credentials/{role}");
        match client.get(&path).await {
            Ok(response) if response.status == StatusCode::OK => {
                let json = response.json();
                match json["AccessKeyId"].as_str() {
                    Some(key) if json["Code"] == "Success" => Ok(key.to_owned()),
                    _ => Err(format!("credentials {json}")),
                }
            }
            Ok(response) => Err(format!("status {}", response.status)),
            Err(err) => Err(err.to_string()),
        }
    }

    /// Whether the guest at `ip` reads a signature of its identity document.
    async fn signed(&self, ip: &str) -> Result<(), String> {
        let client = Client::from_source(self.guest, ip.parse().unwrap()).with_timeout(Duration::from_secs(2));
        match client.get("/latest/dynamic/instance-identity/signature").await {
            Ok(response) if response.status == StatusCode::OK && response.text().len() > 100 => Ok(()),
            Ok(response) => Err(format!("signature: status {}: {}", response.status, response.text())),
            Err(err) => Err(err.to_string()),
        }
    }

    /// Waits up to `within` for the guest at `ip` to read `key` as `role`'s access key id.
    async fn wait_access_key(&self, ip: &str, role: &str, key: &str, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let got = self.access_key(ip, role).await;
            if got.as_deref() == Ok(key) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "guest {ip} reads {got:?} for {role}, not {key}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits up to 60 s for `/readyz` to answer 200 (the signing key and roles are in the view).
    async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (status, ready) = self.readyz().await;
            if status == StatusCode::OK {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "not ready within 60 s: {ready}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn readyz(&self) -> (StatusCode, serde_json::Value) {
        let response = self.admin().get("/readyz").await.unwrap();
        (response.status, response.json())
    }
}

/// A static role's admin body (its record is the same JSON).
fn static_role(access_key_id: &str) -> serde_json::Value {
    serde_json::json!({"source": {"type": "static", "access_key_id": access_key_id,
        "secret_access_key": "static-secret", "expiration": "2099-01-01T00:00:00Z"}})
}

/// The collection of unplaced records the observer follows besides its node (a stand-in for
/// the server's shared collections that the server itself does not decode).
const SHARED_LOAD: &str = "shared-load";

/// The scope the observer follows: the node and the unplaced [`SHARED_LOAD`] records.
fn observed_scope() -> Scope {
    Scope::Node(NODE.into()).with_shared(&[SHARED_LOAD])
}

fn instance_put(id: &str, ip: &str, node: &str, seq: u64) -> Put {
    instance_put_with(serde_json::json!({"id": id, "ipv4": [ip], "node": node, "tags": {"seq": seq.to_string()}}))
}

/// An instance put for the guest of the fault cases: it has role `app`.
fn guest_put(id: &str, ip: &str) -> Put {
    instance_put_with(serde_json::json!({"id": id, "ipv4": [ip], "node": NODE, "iam_role": "app"}))
}

fn instance_put_with(doc: serde_json::Value) -> Put {
    let node = doc["node"].as_str().unwrap().to_owned();
    let instance = Instance::parse(&doc, &Limits::default()).unwrap();
    Put {
        key: Key::new("instances", instance.id.as_str()),
        node: Some(node),
        claims: instance.claims(),
        value: instance.to_bytes(),
        expect: Expect::Any,
    }
}

/// The put of role `app` (static, placed on no node), as the admin API stores it.
fn role_put(access_key_id: &str) -> Put {
    Put {
        key: Key::new("roles", "app"),
        node: None,
        claims: Vec::new(),
        value: static_role(access_key_id).to_string().into_bytes(),
        expect: Expect::Any,
    }
}

/// Puts, retrying while the cluster is unavailable (up to 30 s).
async fn put_retrying(store: &dyn Store, put: Put) -> Written {
    put_counting_retries(store, put).await.0
}

/// [`put_retrying`], also saying whether an attempt failed: such an attempt may still have
/// committed (its answer lost), so the retry may be a second write of the same value.
async fn put_counting_retries(store: &dyn Store, put: Put) -> (Written, bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut retried = false;
    loop {
        match store.put(put.clone()).await {
            Ok(written) => return (written, retried),
            Err(StoreError::Unavailable(err)) if tokio::time::Instant::now() < deadline => {
                eprintln!("write retried: {err}");
                retried = true;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("write failed: {err}"),
        }
    }
}

/// The `seq` tag of an instance record.
fn seq_of(value: &[u8]) -> u64 {
    let instance = Instance::from_bytes(value).unwrap();
    instance.tags.get("seq").and_then(|seq| seq.parse().ok()).unwrap_or(0)
}

async fn connect(cluster: &EtcdCluster) -> Arc<EtcdStore> {
    Arc::new(EtcdStore::connect(cluster.options()).await.unwrap())
}

/// What an observer saw: the revision and `seq` tags of every change, and the reloads it made
/// (from the first revision the feed could not deliver in order through the snapshot's).
struct Observed {
    seen: Vec<(Revision, Vec<u64>)>,
    reloads: Vec<(Revision, Revision)>,
}

/// Follows this node's scope like a node does (resume from the last revision after any error;
/// reload from a snapshot when the feed says it cannot deliver every change) and records the
/// revision and `seq` tag of every change it receives, until it has seen the revision `until`
/// is given.
fn observe(
    store: Arc<EtcdStore>,
    after: Revision,
    until: tokio::sync::watch::Receiver<Option<Revision>>,
) -> tokio::task::JoinHandle<Observed> {
    let done = move |last: Revision| until.borrow().is_some_and(|until| last >= until);
    tokio::spawn(async move {
        let mut last = after;
        let mut seen = Vec::new();
        let mut reloads = Vec::new();
        while !done(last) {
            let mut feed = match store.subscribe(&observed_scope(), last).await {
                Ok(feed) => feed,
                Err(StoreError::Unavailable(_)) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(err) => panic!("observer: {err}"),
            };
            loop {
                if done(last) {
                    return Observed { seen, reloads };
                }
                let item = tokio::select! {
                    item = feed.next() => item,
                    () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                };
                match item {
                    Some(Ok(FeedEvent::Changes { rev, changes })) => {
                        assert!(rev > last, "change at {rev} after {last}: repeated or out of order");
                        let seqs = changes
                            .iter()
                            .filter_map(|change| match change {
                                imds_store::Change::Put(record) => Some(seq_of(&record.value)),
                                imds_store::Change::Delete { .. } => None,
                            })
                            .collect();
                        seen.push((rev, seqs));
                        last = rev;
                    }
                    Some(Ok(FeedEvent::Progress { rev })) => last = last.max(rev),
                    Some(Err(StoreError::Unavailable(_))) | None => break,
                    Some(Err(StoreError::Compacted { oldest, .. })) => {
                        let snapshot = loop {
                            match store.snapshot(&observed_scope()).await {
                                Ok(snapshot) => break snapshot,
                                Err(StoreError::Unavailable(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
                                Err(err) => panic!("observer snapshot: {err}"),
                            }
                        };
                        reloads.push((oldest, snapshot.rev));
                        last = snapshot.rev;
                        break;
                    }
                    Some(Err(err)) => panic!("observer feed: {err}"),
                }
            }
        }
        Observed { seen, reloads }
    })
}

/// Kill -9 a follower, then the leader, of a 3-member cluster under a steady write load, and
/// restart each: no guest read fails (instance id, role credentials, identity signature), the
/// node's feed (its node prefix and shared records merged) sees every one of its changes
/// exactly once in revision order, and the node has the last write and a role change within
/// 1 s of the cluster being whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_and_leader_kills_lose_nothing() {
    let _serial = SERIAL.lock().await;
    let mut cluster = EtcdCluster::start(3).await;
    let writer_store = connect(&cluster).await;
    let node = Node::start(connect(&cluster).await).await;

    let guest_ip = "127.0.62.1";
    node.put_role("app", "AKIAFAULTS0000000001").await;
    let first = put_retrying(&*writer_store, guest_put("i-guest", guest_ip)).await;
    node.wait_serves(guest_ip, "i-guest", Duration::from_secs(5)).await;
    node.wait_access_key(guest_ip, "app", "AKIAFAULTS0000000001", Duration::from_secs(5)).await;
    node.wait_ready().await;
    node.signed(guest_ip).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (until_tx, until) = tokio::sync::watch::channel(None);
    let observer = observe(connect(&cluster).await, first.rev, until);

    // The load: every 10 ms a write, in turn on this node, shared, and elsewhere.
    let writer = {
        let (store, stop) = (Arc::clone(&writer_store), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut uncertain = Vec::new();
            let mut seq = 0u64;
            while !stop.load(Ordering::SeqCst) && seq < 3000 {
                seq += 1;
                let put = match seq % 3 {
                    0 => instance_put("i-other", "127.0.62.3", "hv-2", seq),
                    1 => instance_put("i-load", "127.0.62.2", NODE, seq),
                    _ => Put {
                        key: Key::new(SHARED_LOAD, "s"),
                        node: None,
                        claims: Vec::new(),
                        ..instance_put("i-shared", "127.0.62.5", NODE, seq)
                    },
                };
                let observed = put.node.is_none() || put.node.as_deref() == Some(NODE);
                let (written, retried) = put_counting_retries(&*store, put).await;
                if observed {
                    mine.push((written.rev, seq));
                    if retried {
                        uncertain.push(seq);
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (mine, uncertain)
        })
    };
    // Guests read all along; every read must succeed.
    let reads = Arc::new(AtomicU64::new(0));
    let reader = {
        let (stop, reads) = (Arc::clone(&stop), Arc::clone(&reads));
        let client = Client::from_source(node.guest, guest_ip.parse().unwrap()).with_timeout(Duration::from_secs(2));
        tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                match client.get("/latest/meta-data/instance-id").await {
                    Ok(response) if response.status == StatusCode::OK && response.text() == "i-guest" => {}
                    Ok(response) => failures.push(format!("status {}: {}", response.status, response.text())),
                    Err(err) => failures.push(err.to_string()),
                }
                let path = "/latest/meta-data/iam/security-credentials/app";
                match client.get(path).await {
                    Ok(response) if response.status == StatusCode::OK && response.json()["Code"] == "Success" => {}
                    Ok(response) => failures.push(format!("credentials {}: {}", response.status, response.text())),
                    Err(err) => failures.push(err.to_string()),
                }
                match client.get("/latest/dynamic/instance-identity/signature").await {
                    Ok(response) if response.status == StatusCode::OK => {}
                    Ok(response) => failures.push(format!("signature {}: {}", response.status, response.text())),
                    Err(err) => failures.push(err.to_string()),
                }
                reads.fetch_add(3, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            failures
        })
    };

    tokio::time::sleep(Duration::from_millis(500)).await;
    let leader = cluster.leader().await.expect("a leader");
    let follower = (leader + 1) % cluster.size();
    cluster.kill(follower);
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.restart(follower).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let leader = cluster.leader().await.expect("a leader");
    cluster.kill(leader);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.restart(leader).await;
    // The cluster is whole again.
    let whole = tokio::time::Instant::now();
    let marker = put_retrying(&*writer_store, instance_put("i-marker", "127.0.62.4", NODE, 0)).await;
    until_tx.send_replace(Some(marker.rev));
    let converged = node.running.view.wait_for(marker.rev, Duration::from_secs(1)).await;
    let took = whole.elapsed();
    // A role change made through another node's store connection reaches this node.
    put_retrying(&*writer_store, role_put("AKIAFAULTS0000000002")).await;
    node.wait_access_key(guest_ip, "app", "AKIAFAULTS0000000002", Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let (mine, uncertain) = writer.await.unwrap();
    let failures = reader.await.unwrap();
    let Observed { seen, reloads } =
        tokio::time::timeout(Duration::from_secs(20), observer).await.expect("the observer caught up").unwrap();
    // etcd before 3.4.24 / 3.5.8 may confirm a watch's progress before its events
    // (etcd-io/etcd#15220); the feed then says so and the reader reloads from a snapshot.
    let reloaded = |rev: &Revision| reloads.iter().any(|(from, through)| from <= rev && rev <= through);
    assert!(converged, "the node did not have revision {} within 1 s of the cluster being whole", marker.rev);
    eprintln!(
        "converged {took:?} after the cluster was whole; {} guest reads; feed reloads {reloads:?}",
        reads.load(Ordering::SeqCst)
    );

    assert!(
        failures.is_empty(),
        "{} of {} guest reads failed: {failures:?}",
        failures.len(),
        reads.load(Ordering::SeqCst)
    );
    assert!(mine.len() > 30, "the write load was too thin to prove anything: {} writes", mine.len());
    // Every revision of this node's writes outside a reload reached the feed, once (the observer
    // asserts revisions strictly increase), with its own value. Any other revision it saw is accounted for: a write
    // whose answer was lost and that the writer then repeated (an uncertain seq).
    for (rev, seq) in mine.iter().filter(|(rev, _)| *rev < marker.rev && !reloaded(rev)) {
        let got = seen.iter().find(|(seen_rev, _)| seen_rev == rev).map(|(_, seqs)| seqs.clone());
        assert_eq!(got, Some(vec![*seq]), "revision {rev} (seq {seq}) missing from the node's feed");
    }
    assert!(seen.iter().any(|(rev, _)| *rev == marker.rev), "the marker never reached the feed");
    for (rev, seqs) in seen.iter().filter(|(rev, _)| *rev < marker.rev) {
        if !mine.iter().any(|(mine_rev, _)| mine_rev == rev) {
            assert!(
                seqs.iter().all(|seq| uncertain.contains(seq)),
                "the feed saw revision {rev} (seqs {seqs:?}) that no write accounts for"
            );
        }
    }
    // The node's view equals the store's view of its scope.
    let snapshot = writer_store.snapshot(&Scope::Node(NODE.into())).await.unwrap();
    let view = node.running.view.load();
    assert_eq!(view.len(), snapshot.records.len());
    for record in &snapshot.records {
        let id = imds_model::InstanceId::try_from(record.key.id.as_str()).unwrap();
        assert_eq!(view.get(&id).map(|entry| entry.rev), Some(record.rev), "{}", record.key);
    }
    node.running.stop().await;
}

/// The whole (single-member) cluster stops for 30 s: guests keep reading the last data,
/// `/readyz` says the view is stale, admin writes get 503; after the restart the node catches up
/// by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30_second_outage_keeps_guests_served() {
    let _serial = SERIAL.lock().await;
    let mut cluster = EtcdCluster::single().await;
    let node = Node::start(connect(&cluster).await).await;
    node.put_role("app", "AKIAOUTAGE0000000001").await;
    let doc = serde_json::json!({"id": "i-before", "ipv4": ["127.0.63.1"], "node": NODE, "iam_role": "app"});
    let created = node
        .admin()
        .send(Method::PUT, "/v1/instances/i-before", &[("content-type", "application/json")], doc.to_string())
        .await
        .unwrap();
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    node.wait_serves("127.0.63.1", "i-before", Duration::from_secs(1)).await;
    // Ready once the signing key generated at this first start is in the view.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, ready) = node.readyz().await;
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(ready["status"], "starting", "{ready}");
        assert!(tokio::time::Instant::now() < deadline, "not ready within 60 s: {ready}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    cluster.kill(0);
    let down = tokio::time::Instant::now();
    let mut saw_stale = None;
    let mut refused_write = false;
    let mut reads = 0;
    while down.elapsed() < Duration::from_secs(30) {
        assert_eq!(
            node.instance_id("127.0.63.1").await,
            Ok("i-before".into()),
            "a guest read failed during the outage"
        );
        assert_eq!(node.access_key("127.0.63.1", "app").await, Ok("AKIAOUTAGE0000000001".into()));
        assert_eq!(node.signed("127.0.63.1").await, Ok(()));
        reads += 1;
        if saw_stale.is_none() {
            let (status, body) = node.readyz().await;
            if status == StatusCode::SERVICE_UNAVAILABLE {
                assert_eq!(body["status"], "stale", "{body}");
                saw_stale = Some(body);
            }
        } else if !refused_write {
            let doc = serde_json::json!({"id": "i-refused", "ipv4": ["127.0.63.9"], "node": NODE});
            let response = node
                .admin()
                .send(Method::PUT, "/v1/instances/i-refused", &[("content-type", "application/json")], doc.to_string())
                .await
                .unwrap();
            assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE, "{}", response.text());
            refused_write = true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let stale = saw_stale.expect("/readyz never said the view is stale during a 30 s outage");
    assert!(stale["staleness_ms"].as_u64().is_some(), "{stale}");
    assert!(refused_write);
    assert!(reads > 50);

    cluster.restart(0).await;
    let store = connect(&cluster).await;
    put_retrying(&*store, instance_put("i-after", "127.0.63.2", NODE, 1)).await;
    node.wait_serves("127.0.63.2", "i-after", Duration::from_secs(10)).await;
    assert_eq!(node.instance_id("127.0.63.9").await, Err("status 403 Forbidden".into()), "the refused write happened");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = node.readyz().await;
        if status == StatusCode::OK {
            assert!(body["staleness_ms"].as_u64().unwrap() < 5_000, "{body}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "/readyz still says {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    node.running.stop().await;
}

/// History compacted past the node's resume point while its feed is down: it re-lists, and
/// guests are answered from the old view until the new one is swapped in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_past_the_resume_point_relists_without_a_gap() {
    let _serial = SERIAL.lock().await;
    let cluster = EtcdCluster::single().await;
    let etcd = connect(&cluster).await;
    put_retrying(&*etcd, role_put("AKIACOMPACT000000001")).await;
    put_retrying(
        &*etcd,
        instance_put_with(serde_json::json!({"id": "i-old", "ipv4": ["127.0.64.1"], "node": NODE, "iam_role": "app"})),
    )
    .await;
    // Every feed the node opens breaks at once: it keeps its snapshot and retries.
    let flaky = Arc::new(Unreliable::new(Arc::clone(&etcd) as Arc<dyn Store>));
    flaky.break_feeds_after(0);
    let node = Node::start(Arc::clone(&flaky) as Arc<dyn Store>).await;
    let loaded = node.running.view.load().rev();
    node.wait_serves("127.0.64.1", "i-old", Duration::from_secs(1)).await;
    node.wait_access_key("127.0.64.1", "app", "AKIACOMPACT000000001", Duration::from_secs(5)).await;

    // Written while the node's feeds are down, then compacted away: only a re-list brings it.
    put_retrying(&*etcd, role_put("AKIACOMPACT000000002")).await;
    let mut last = Revision(0);
    for seq in 1..=20 {
        last = put_retrying(&*etcd, instance_put("i-new", "127.0.64.2", NODE, seq)).await.rev;
    }
    etcd.compact(last).await.unwrap();
    match etcd.subscribe(&Scope::Node(NODE.into()), loaded).await {
        Err(StoreError::Compacted { after, .. }) => assert_eq!(after, loaded),
        Err(err) => panic!("expected Compacted, got {err}"),
        Ok(_) => panic!("resuming after {loaded} works although history was compacted through {last}"),
    }
    assert_eq!(node.instance_id("127.0.64.1").await, Ok("i-old".into()));

    flaky.heal();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while node.instance_id("127.0.64.2").await.is_err() {
        // The old view serves all along.
        assert_eq!(node.instance_id("127.0.64.1").await, Ok("i-old".into()));
        assert!(tokio::time::Instant::now() < deadline, "the node never re-listed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(node.running.view.load().rev() >= last);
    node.wait_access_key("127.0.64.1", "app", "AKIACOMPACT000000002", Duration::from_secs(1)).await;
    // The signing key this first start created after its snapshot arrives with the re-list.
    node.wait_ready().await;
    node.signed("127.0.64.1").await.unwrap();
    let entry = node.running.view.load().get(&imds_model::InstanceId::try_from("i-new").unwrap()).cloned().unwrap();
    assert_eq!(entry.instance.tags.get("seq").map(String::as_str), Some("20"));
    node.running.stop().await;
}

/// A reader that stops reading does not make the watch buffer without bound: once the queue
/// between the network read and the apply is full the feed ends after what it queued, and the
/// reader resumes from its last revision with nothing lost or repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_falls_behind_resumes_from_its_revision() {
    let _serial = SERIAL.lock().await;
    let cluster = EtcdCluster::single().await;
    let options = imds_store_etcd::EtcdOptions { queue: 4, ..cluster.options() };
    let store = EtcdStore::connect(options).await.unwrap();
    let start = store.revision().await.unwrap();
    let mut feed = store.subscribe(&Scope::All, start).await.unwrap();
    let mut written = Vec::new();
    for seq in 0..40 {
        written.push(put_retrying(&store, instance_put(&format!("i-{seq}"), "127.0.65.1", NODE, seq)).await.rev);
        store.delete(&Key::new("instances", format!("i-{seq}")), Expect::Any).await.unwrap();
    }
    let head = store.revision().await.unwrap();
    // Nobody read while 80 revisions went by: the feed holds at most its queue, then ends.
    let mut seen = Vec::new();
    let mut last = start;
    let mut ended_early = false;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), feed.next()).await.expect("the feed answers") {
            Some(Ok(FeedEvent::Changes { rev, .. })) => {
                seen.push(rev);
                last = rev;
            }
            Some(Ok(FeedEvent::Progress { rev })) => last = last.max(rev),
            Some(Err(err)) => panic!("feed failed: {err}"),
            None => {
                ended_early = last < head;
                break;
            }
        }
        if last >= head {
            break;
        }
    }
    assert!(ended_early, "a full queue did not end the feed (read {} events)", seen.len());
    // 4 responses of (here) one revision each; far fewer than the 80 revisions written.
    assert!(seen.len() < 20, "the feed queued more than its bound: {}", seen.len());
    let mut resumed = store.subscribe(&Scope::All, last).await.unwrap();
    while last < head {
        match tokio::time::timeout(Duration::from_secs(10), resumed.next()).await.expect("the feed answers") {
            Some(Ok(FeedEvent::Changes { rev, .. })) => {
                assert!(rev > last);
                seen.push(rev);
                last = rev;
            }
            Some(Ok(FeedEvent::Progress { rev })) => last = last.max(rev),
            other => panic!("resumed feed: {other:?}"),
        }
    }
    // Every put and every delete, once each, in order.
    assert_eq!(seen.len(), 80);
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    assert!(written.iter().all(|rev| seen.contains(rev)));
}
