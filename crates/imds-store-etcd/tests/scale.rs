//! A simulation of many serving nodes on one etcd cluster (`IMDS_SIM_MEMBERS`, default 3): N
//! node watchers (default 200), each owning M instances (default 50), each following its node
//! prefix and the shared records (roles) as a real node does, plus a few real servers
//! (`IMDS_SIM_SERVERS`, default 3: the whole daemon, guests reading over HTTP). It loads the
//! records, bootstraps every node (paginated snapshots of its prefix and the shared prefix),
//! opens one merged feed per node, updates random instances and measures how long each change
//! takes to reach its owner, rotates a role and measures how long each rotation takes to reach
//! every node, then kills an etcd member (the leader) under the update load while guests of the
//! real servers read their instance id, role credentials and identity signature, counting
//! failed reads; and etcd's memory.
//!
//! Ignored by `cargo test` (it is a measurement, not a check): `scripts/scale` runs it and the
//! figures go to docs/scale.md. Sizes come from `IMDS_SIM_NODES`, `IMDS_SIM_INSTANCES`,
//! `IMDS_SIM_VALUE_BYTES`, `IMDS_SIM_WRITES`, `IMDS_SIM_ROTATIONS`, `IMDS_SIM_PROGRESS_MS` (how
//! often an idle node asks for a progress notice, default 5,000), `IMDS_SIM_MEMBERS`,
//! `IMDS_SIM_SERVERS`; every phase is bounded in count and time.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use http::StatusCode;
use imds_server::client::Client;
use imds_server::server::{self, Running};
use imds_server::{admin, guest, listener};
use imds_store::{Change, Expect, FeedEvent, Key, Put, Scope, Store};
use imds_store_etcd::testing::EtcdCluster;
use imds_store_etcd::EtcdStore;
use tokio::time::Instant;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn node_name(n: usize) -> String {
    format!("hv-{n:05}")
}

fn value(seq: usize, size: usize) -> Vec<u8> {
    let mut value = format!("{seq:010}").into_bytes();
    value.resize(size.max(10), b'x');
    value
}

fn put(node: usize, instance: usize, seq: usize, size: usize) -> Put {
    Put {
        key: Key::new("instances", format!("i-{node:05}-{instance:03}")),
        node: Some(node_name(node)),
        claims: vec![format!("ipv4/10.{}.{}.{}", node / 256, node % 256, instance + 1)],
        value: value(seq, size),
        expect: Expect::Any,
    }
}

/// The shared collection the simulated nodes follow, as a real node follows `roles`.
const ROLES: &str = "roles";

/// The role record of rotation `seq` (a static role; its access key id carries `seq`).
fn role_put(seq: usize) -> Put {
    let role = serde_json::json!({"source": {"type": "static", "access_key_id": format!("AKIASCALE{seq:011}"),
        "secret_access_key": "scale-secret", "expiration": "2099-01-01T00:00:00Z"}});
    Put {
        key: Key::new(ROLES, "app"),
        node: None,
        claims: Vec::new(),
        value: role.to_string().into_bytes(),
        expect: Expect::Any,
    }
}

/// The rotation a role record carries.
fn role_seq(value: &[u8]) -> Option<usize> {
    let json: serde_json::Value = serde_json::from_slice(value).ok()?;
    json["source"]["access_key_id"].as_str()?.strip_prefix("AKIASCALE")?.parse().ok()
}

/// A real server serving node `real-<n>`'s one instance (at 127.0.70.<n+1>, role `app`).
struct Real {
    running: Running,
    guest: SocketAddr,
    ip: String,
}

async fn start_real(store: Arc<dyn Store>, n: usize) -> Real {
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
        limits: imds_model::Limits::default(),
        connections: listener::Limits::default(),
        scope: Scope::Node(format!("real-{n}")),
        net: None,
        metrics: Default::default(),
        audit: Default::default(),
        fleet: None,
    };
    let ip = format!("127.0.70.{}", n + 1);
    let doc =
        serde_json::json!({"id": format!("i-real-{n}"), "ipv4": [ip], "node": format!("real-{n}"), "iam_role": "app"});
    let instance = imds_model::Instance::parse(&doc, &imds_model::Limits::default()).unwrap();
    let put = Put {
        key: Key::new("instances", instance.id.as_str()),
        node: instance.node.clone(),
        claims: instance.claims(),
        value: instance.to_bytes(),
        expect: Expect::Any,
    };
    store.put(put).await.unwrap();
    let running = server::start(config, store).await.unwrap();
    let guest = running.guest_addrs[0];
    Real { running, guest, ip }
}

/// One round of the guest reads a workload makes: instance id, role credentials, signature.
/// Returns the failures.
async fn guest_round(client: &Client, id: &str) -> Vec<String> {
    let mut failures = Vec::new();
    match client.get("/latest/meta-data/instance-id").await {
        Ok(r) if r.status == StatusCode::OK && r.text() == id => {}
        Ok(r) => failures.push(format!("instance-id {}: {}", r.status, r.text())),
        Err(err) => failures.push(format!("instance-id: {err}")),
    }
    match client.get("/latest/meta-data/iam/security-credentials/app").await {
        Ok(r) if r.status == StatusCode::OK && r.json()["Code"] == "Success" => {}
        Ok(r) => failures.push(format!("credentials {}: {}", r.status, r.text())),
        Err(err) => failures.push(format!("credentials: {err}")),
    }
    match client.get("/latest/dynamic/instance-identity/signature").await {
        Ok(r) if r.status == StatusCode::OK && r.text().len() > 100 => {}
        Ok(r) => failures.push(format!("signature {}: {}", r.status, r.text())),
        Err(err) => failures.push(format!("signature: {err}")),
    }
    failures
}

/// Resident memory of a process, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// A small deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement of minutes; run by scripts/scale"]
async fn simulate_many_node_watchers() {
    let nodes = env_or("IMDS_SIM_NODES", 200);
    let per_node = env_or("IMDS_SIM_INSTANCES", 50);
    let size = env_or("IMDS_SIM_VALUE_BYTES", 2048);
    let writes = env_or("IMDS_SIM_WRITES", 1000);
    let rotations = env_or("IMDS_SIM_ROTATIONS", 20);
    let members = env_or("IMDS_SIM_MEMBERS", 3);
    let servers = env_or("IMDS_SIM_SERVERS", 3);
    let progress = Duration::from_millis(env_or("IMDS_SIM_PROGRESS_MS", 5000) as u64);
    // A real node has its own connection; here 100 nodes' watch streams share one (etcd's HTTP/2
    // server caps concurrent streams per connection, at 250 with Go's defaults; a node opens two).
    let connections = nodes.div_ceil(100).max(4);

    let mut cluster = EtcdCluster::start(members).await;
    let pids = |cluster: &EtcdCluster| (0..members).filter_map(|i| cluster.pid(i)).collect::<Vec<_>>();
    let rss = |pids: &[u32]| pids.iter().map(|pid| rss_mib(*pid)).fold(0.0, f64::max);
    let rss_start = rss(&pids(&cluster));
    let mut stores = Vec::new();
    for _ in 0..connections {
        let options = imds_store_etcd::EtcdOptions { progress_interval: progress, ..cluster.options() };
        stores.push(Arc::new(EtcdStore::connect(options).await.unwrap()));
    }
    stores[0].put(role_put(0)).await.unwrap();

    // Load: 32 writers over every (node, instance).
    let started = Instant::now();
    let total = nodes * per_node;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut loaders = Vec::new();
    for w in 0..32 {
        let (store, next) = (Arc::clone(&stores[w % connections]), Arc::clone(&next));
        loaders.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= total {
                    return;
                }
                store.put(put(i / per_node, i % per_node, 0, size)).await.unwrap();
            }
        }));
    }
    for loader in loaders {
        tokio::time::timeout(Duration::from_secs(1800), loader).await.expect("load within 30 min").unwrap();
    }
    let load_time = started.elapsed();
    eprintln!("loaded {total} records in {load_time:?}");
    let rss_loaded = rss(&pids(&cluster));

    // Real servers, each with its own connection, serving one instance with role `app`.
    let mut reals = Vec::new();
    for n in 0..servers {
        let options = imds_store_etcd::EtcdOptions { progress_interval: progress, ..cluster.options() };
        let store: Arc<dyn Store> = Arc::new(EtcdStore::connect(options).await.unwrap());
        reals.push(start_real(store, n).await);
    }

    let scope = |n: usize| Scope::Node(node_name(n)).with_shared(&[ROLES]);
    // Bootstrap: every node snapshots its prefix and the shared one (64 at a time).
    let started = Instant::now();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(64));
    let mut boots = Vec::new();
    for n in 0..nodes {
        let (store, semaphore, scope) = (Arc::clone(&stores[n % connections]), Arc::clone(&semaphore), scope(n));
        boots.push(tokio::spawn(async move {
            let _permit = semaphore.acquire().await.unwrap();
            let t = Instant::now();
            let snapshot = store.snapshot(&scope).await.unwrap();
            assert_eq!(snapshot.records.len(), per_node + 1, "the node's instances and the role");
            (t.elapsed(), snapshot.rev)
        }));
    }
    let mut boot_times = Vec::new();
    let mut from = imds_store::Revision(0);
    for boot in boots {
        let (took, rev) = boot.await.unwrap();
        boot_times.push(took);
        from = from.max(rev);
    }
    let bootstrap_time = started.elapsed();
    eprintln!("bootstrapped {nodes} nodes in {bootstrap_time:?}");
    boot_times.sort();

    // One merged feed per node (its node prefix and the shared prefix: two watch streams).
    // Deliveries: (instance update seq or rotation, node, when); kind 0 = instance, 1 = role.
    type Delivery = (u8, usize, usize, Instant);
    let (delivered_tx, mut delivered_rx) = tokio::sync::mpsc::unbounded_channel::<Delivery>();
    let started = Instant::now();
    let mut feeds = Vec::new();
    for n in 0..nodes {
        let store = Arc::clone(&stores[n % connections]);
        let scope = scope(n);
        let mut feed = store.subscribe(&scope, from).await.unwrap();
        let tx = delivered_tx.clone();
        feeds.push(tokio::spawn(async move {
            let mut last = from;
            loop {
                while let Some(item) = feed.next().await {
                    let event = match item {
                        Ok(event) => event,
                        Err(_) => break,
                    };
                    last = last.max(event.rev());
                    let FeedEvent::Changes { changes, .. } = event else { continue };
                    let now = Instant::now();
                    for change in changes {
                        let Change::Put(record) = change else { continue };
                        if record.key.collection == ROLES {
                            if let Some(seq) = role_seq(&record.value) {
                                let _ = tx.send((1, seq, n, now));
                            }
                        } else {
                            let seq: usize = std::str::from_utf8(&record.value[..10]).unwrap().parse().unwrap();
                            if seq > 0 {
                                let _ = tx.send((0, seq - 1, n, now));
                            }
                        }
                    }
                }
                // The feed ended (a member died): resume from the last revision, as a node does.
                loop {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if let Ok(resumed) = store.subscribe(&scope, last).await {
                        feed = resumed;
                        break;
                    }
                }
            }
        }));
    }
    drop(delivered_tx);
    let watch_setup = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_watching = rss(&pids(&cluster));
    // The real servers are ready: signing key and the role's first fetch in their views.
    for real in &reals {
        let client = Client::from_source(real.guest, real.ip.parse().unwrap()).with_timeout(Duration::from_secs(2));
        let deadline = Instant::now() + Duration::from_secs(60);
        let id = format!("i-real-{}", real.ip.rsplit('.').next().unwrap().parse::<usize>().unwrap() - 1);
        while !guest_round(&client, &id).await.is_empty() {
            assert!(Instant::now() < deadline, "real server for {} never served its guest", real.ip);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Updates: one writer, one in flight, random node and instance.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let sent: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; writes]));
    let mut owner = vec![0; writes];
    let started = Instant::now();
    for (seq, slot) in owner.iter_mut().enumerate() {
        let (n, i) = (rng.below(nodes), rng.below(per_node));
        *slot = n;
        sent.lock().unwrap()[seq] = Some(Instant::now());
        stores[seq % connections].put(put(n, i, seq + 1, size)).await.unwrap();
    }
    let write_time = started.elapsed();
    let mut latencies = Vec::with_capacity(writes);
    let mut wrong_node = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while latencies.len() < writes {
        let Ok(Some((kind, seq, n, at))) = tokio::time::timeout_at(deadline, delivered_rx.recv()).await else { break };
        if kind != 0 {
            continue;
        }
        if owner[seq] != n {
            wrong_node += 1;
        }
        let sent_at = sent.lock().unwrap()[seq].unwrap();
        latencies.push(at.saturating_duration_since(sent_at));
    }
    latencies.sort();

    // Role rotations: each reaches every node; one at a time, the next once all have it.
    let mut reach_all = Vec::new();
    let mut reach_each = Vec::new();
    for rotation in 1..=rotations {
        let sent_at = Instant::now();
        stores[rotation % connections].put(role_put(rotation)).await.unwrap();
        let mut reached = vec![false; nodes];
        let mut count = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while count < nodes {
            let Ok(Some((kind, seq, n, at))) = tokio::time::timeout_at(deadline, delivered_rx.recv()).await else {
                break;
            };
            if kind == 1 && seq == rotation && !reached[n] {
                reached[n] = true;
                count += 1;
                reach_each.push(at.saturating_duration_since(sent_at));
                if count == nodes {
                    reach_all.push(at.saturating_duration_since(sent_at));
                }
            }
        }
        assert_eq!(count, nodes, "rotation {rotation} reached {count} of {nodes} nodes");
    }
    reach_all.sort();
    reach_each.sort();
    // The real servers serve the last rotation.
    for real in &reals {
        let client = Client::from_source(real.guest, real.ip.parse().unwrap()).with_timeout(Duration::from_secs(2));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = client.get("/latest/meta-data/iam/security-credentials/app").await.unwrap();
            if r.json()["AccessKeyId"] == format!("AKIASCALE{rotations:011}") {
                break;
            }
            assert!(Instant::now() < deadline, "{} serves {}", real.ip, r.text());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // A member killed under load: the leader, while updates continue and guests read.
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for (n, real) in reals.iter().enumerate() {
        let client = Client::from_source(real.guest, real.ip.parse().unwrap()).with_timeout(Duration::from_secs(2));
        let (stop, reads) = (Arc::clone(&stop), Arc::clone(&reads));
        readers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                failures.extend(guest_round(&client, &format!("i-real-{n}")).await);
                reads.fetch_add(3, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            failures
        }));
    }
    let writer = {
        let (stores, stop) = (stores.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let (mut ok, mut failed, mut seq) = (0u64, 0u64, writes);
            while !stop.load(Ordering::SeqCst) && seq < writes + 20_000 {
                seq += 1;
                match stores[seq % stores.len()].put(put(seq % nodes, seq % per_node, seq + 1, size)).await {
                    Ok(_) => ok += 1,
                    Err(_) => failed += 1,
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (ok, failed)
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let killed = if members > 1 { cluster.leader().await } else { None };
    if let Some(leader) = killed {
        cluster.kill(leader);
        tokio::time::sleep(Duration::from_secs(3)).await;
        cluster.restart(leader).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    let (writes_ok, writes_failed) = writer.await.unwrap();
    let mut guest_failures = Vec::new();
    for reader in readers {
        guest_failures.extend(reader.await.unwrap());
    }
    let rss_end = rss(&pids(&cluster));
    for feed in feeds {
        feed.abort();
    }
    for real in reals {
        real.running.stop().await;
    }

    println!(
        "## Simulation: {nodes} node watchers x {per_node} instances ({size}-byte values), {members} etcd member(s), {servers} real servers, progress every {progress:?} when idle"
    );
    println!();
    println!("| measure | result |");
    println!("|---|---|");
    println!(
        "| records loaded ({total}, 32 writers) | {:.1} s = {:.0} puts/s |",
        load_time.as_secs_f64(),
        total as f64 / load_time.as_secs_f64()
    );
    println!(
        "| bootstrap: {nodes} paginated snapshots (node + shared prefix), 64 at once | {:.1} s; per node p50 {} ms, p99 {} ms |",
        bootstrap_time.as_secs_f64(),
        ms(percentile(&boot_times, 0.5)),
        ms(percentile(&boot_times, 0.99))
    );
    println!(
        "| {nodes} merged feeds ({} watch streams) over {connections} connections | {:.2} s |",
        2 * nodes,
        watch_setup.as_secs_f64()
    );
    println!(
        "| {writes} updates to random instances, one in flight | {:.1} s = {:.0}/s |",
        write_time.as_secs_f64(),
        writes as f64 / write_time.as_secs_f64()
    );
    println!(
        "| change visible on the owning node p50 / p90 / p99 / max | {} / {} / {} / {} ms |",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.9)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default())
    );
    println!(
        "| changes delivered / missing / to a wrong node | {} / {} / {wrong_node} |",
        latencies.len(),
        writes - latencies.len()
    );
    println!(
        "| role rotation reaching each node p50 / p99 (of {}) | {} / {} ms |",
        reach_each.len(),
        ms(percentile(&reach_each, 0.5)),
        ms(percentile(&reach_each, 0.99))
    );
    println!(
        "| role rotation reaching every one of {nodes} nodes p50 / p99 / max (of {rotations}) | {} / {} / {} ms |",
        ms(percentile(&reach_all, 0.5)),
        ms(percentile(&reach_all, 0.99)),
        ms(reach_all.last().copied().unwrap_or_default())
    );
    println!(
        "| {} under load (3 s down): guest reads (id, credentials, signature) failed / made | {} / {} |",
        if killed.is_some() { "etcd leader killed" } else { "no member killed (one member)" },
        guest_failures.len(),
        reads.load(Ordering::SeqCst)
    );
    println!("| admin-path writes during the kill ok / failed after retrying 5 s | {writes_ok} / {writes_failed} |");
    println!(
        "| etcd RSS (largest member): empty / loaded / {nodes} nodes watching / end | {rss_start:.0} / {rss_loaded:.0} / {rss_watching:.0} / {rss_end:.0} MiB |"
    );
    assert_eq!(latencies.len(), writes, "changes were not delivered");
    assert_eq!(wrong_node, 0, "a change reached a node that does not own it");
    assert!(guest_failures.is_empty(), "guest reads failed: {:?}", &guest_failures[..guest_failures.len().min(5)]);
}
