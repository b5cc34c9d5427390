//! A simulation of many serving nodes on one etcd member: N node watchers (default 1,000), each
//! owning M instances (default 100). It loads the records, bootstraps every node (paginated
//! snapshot of its prefix), opens one feed per node, then updates random instances and measures
//! how long each change takes to reach its node, and etcd's memory.
//!
//! Ignored by `cargo test` (it is a measurement, not a check): `scripts/scale` runs it and the
//! figures go to docs/scale.md. Sizes come from `IMDS_SIM_NODES`, `IMDS_SIM_INSTANCES`,
//! `IMDS_SIM_VALUE_BYTES`, `IMDS_SIM_WRITES`, `IMDS_SIM_PROGRESS_MS` (how often an idle node asks
//! for a progress notice, default 1,000); every phase is bounded in count and time.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
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
    let nodes = env_or("IMDS_SIM_NODES", 1000);
    let per_node = env_or("IMDS_SIM_INSTANCES", 100);
    let size = env_or("IMDS_SIM_VALUE_BYTES", 2048);
    let writes = env_or("IMDS_SIM_WRITES", 2000);
    let progress = Duration::from_millis(env_or("IMDS_SIM_PROGRESS_MS", 1000) as u64);
    // A real node has its own connection; here 100 watch streams share one (etcd's HTTP/2 server
    // caps concurrent streams per connection, at 250 with Go's defaults).
    let connections = nodes.div_ceil(100).max(4);

    let cluster = EtcdCluster::single().await;
    let pid = cluster.pid(0).unwrap();
    let rss_start = rss_mib(pid);
    let mut stores = Vec::new();
    for _ in 0..connections {
        let options = imds_store_etcd::EtcdOptions { progress_interval: progress, ..cluster.options() };
        stores.push(Arc::new(EtcdStore::connect(options).await.unwrap()));
    }

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
    let rss_loaded = rss_mib(pid);

    // Bootstrap: every node snapshots its prefix (64 at a time).
    let started = Instant::now();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(64));
    let mut boots = Vec::new();
    for n in 0..nodes {
        let (store, semaphore) = (Arc::clone(&stores[n % connections]), Arc::clone(&semaphore));
        boots.push(tokio::spawn(async move {
            let _permit = semaphore.acquire().await.unwrap();
            let t = Instant::now();
            let snapshot = store.snapshot(&Scope::Node(node_name(n))).await.unwrap();
            assert_eq!(snapshot.records.len(), per_node);
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

    // One feed per node, each on its own watch stream.
    let sent: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; writes]));
    let (delivered_tx, mut delivered_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, usize, Instant)>();
    let started = Instant::now();
    let mut feeds = Vec::new();
    for n in 0..nodes {
        let feed = stores[n % connections].subscribe(&Scope::Node(node_name(n)), from).await.unwrap();
        let tx = delivered_tx.clone();
        feeds.push(tokio::spawn(async move {
            let mut feed = feed;
            while let Some(item) = feed.next().await {
                let Ok(FeedEvent::Changes { changes, .. }) = item else { continue };
                let now = Instant::now();
                for change in changes {
                    if let Change::Put(record) = change {
                        let seq: usize = std::str::from_utf8(&record.value[..10]).unwrap().parse().unwrap();
                        if seq > 0 {
                            let _ = tx.send((seq - 1, n, now));
                        }
                    }
                }
            }
        }));
    }
    drop(delivered_tx);
    let watch_setup = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_watching = rss_mib(pid);

    // Updates: one writer, one in flight, random node and instance.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
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
        let Ok(Some((seq, n, at))) = tokio::time::timeout_at(deadline, delivered_rx.recv()).await else { break };
        if owner[seq] != n {
            wrong_node += 1;
        }
        let sent_at = sent.lock().unwrap()[seq].unwrap();
        latencies.push(at.saturating_duration_since(sent_at));
    }
    let rss_end = rss_mib(pid);
    for feed in feeds {
        feed.abort();
    }
    latencies.sort();

    println!(
        "## Simulation: {nodes} node watchers x {per_node} instances ({size}-byte values), one etcd member, progress every {progress:?} when idle"
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
        "| bootstrap: {nodes} paginated node snapshots, 64 at once | {:.1} s; per node p50 {} ms, p99 {} ms |",
        bootstrap_time.as_secs_f64(),
        ms(percentile(&boot_times, 0.5)),
        ms(percentile(&boot_times, 0.99))
    );
    println!("| {nodes} watch streams created over {connections} connections | {:.2} s |", watch_setup.as_secs_f64());
    println!(
        "| {writes} updates to random instances, one in flight | {:.1} s = {:.0}/s |",
        write_time.as_secs_f64(),
        writes as f64 / write_time.as_secs_f64()
    );
    println!(
        "| delivery to the owning node p50 / p90 / p99 / max | {} / {} / {} / {} ms |",
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
        "| etcd RSS: empty / loaded / {nodes} watchers idle / after the updates | {rss_start:.0} / {rss_loaded:.0} / {rss_watching:.0} / {rss_end:.0} MiB |"
    );
    assert_eq!(latencies.len(), writes, "changes were not delivered");
    assert_eq!(wrong_node, 0, "a change reached a node that does not own it");
}
