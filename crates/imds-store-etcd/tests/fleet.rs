//! Fleet-wide refresh on a real etcd: three real servers, each on its own node, share one
//! deployment key; a `process` role is fetched once for the fleet and served by every node; a
//! refresher that dies while refreshing holds an etcd lease, which etcd expires, and another
//! node takes over.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use imds_server::client::{Client, Endpoint};
use imds_server::fleet::{self, FleetKey};
use imds_server::server::{self, Running};
use imds_server::{admin, guest, listener};
use imds_store::{Key, Scope, Store};
use imds_store_etcd::testing::EtcdCluster;
use imds_store_etcd::EtcdStore;

struct Node {
    running: Running,
    guest: SocketAddr,
    admin: SocketAddr,
    ip: String,
}

async fn start(cluster: &EtcdCluster, n: usize, key: [u8; 32]) -> Node {
    let store: Arc<dyn Store> = Arc::new(EtcdStore::connect(cluster.options()).await.unwrap());
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
        scope: Scope::Node(format!("hv-{n}")),
        net: None,
        metrics: Default::default(),
        audit: Default::default(),
        fleet: Some(fleet::Config {
            key: FleetKey::from_bytes(key),
            holder: format!("hv-{n}"),
            lease_ttl: Duration::from_secs(3),
        }),
    };
    let running = server::start(config, store).await.unwrap();
    let (guest, admin) = (running.guest_addrs[0], running.admin_addr.unwrap());
    Node { running, guest, admin, ip: format!("127.0.71.{}", n + 1) }
}

impl Node {
    fn admin(&self) -> Client {
        Client::new(Endpoint::Tcp(self.admin)).with_timeout(Duration::from_secs(30))
    }

    async fn send(&self, method: Method, path: &str, body: serde_json::Value) -> (StatusCode, String) {
        let response =
            self.admin().send(method, path, &[("content-type", "application/json")], body.to_string()).await.unwrap();
        (response.status, response.text())
    }

    /// The credentials this node's guest reads for `app`, once they satisfy `want`.
    async fn credentials(&self, want: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let client = Client::from_source(self.guest, self.ip.parse().unwrap()).with_timeout(Duration::from_secs(2));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let response = client.get("/latest/meta-data/iam/security-credentials/app").await.unwrap();
            let json = response.json();
            if response.status == StatusCode::OK && json["Code"] == "Success" && want(&json) {
                return json;
            }
            assert!(tokio::time::Instant::now() < deadline, "{} serves {json}", self.ip);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A credential process that counts its runs in `counter` and prints keys named by the count,
/// expiring 16 min 10 s from now (so they are fresh for only 10 s: past then, a refresh asks for
/// new ones, while they still have more than five minutes left to serve). While a file `hang`
/// exists next to it, its second run hangs (a refresher that dies mid-refresh).
fn script(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let counter = dir.join("runs");
    let script = dir.join("creds.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho run >> {c}\nn=$(wc -l < {c})\n\
             if [ \"$n\" -eq 2 ] && [ -e {h} ]; then sleep 30; exit 1; fi\n\
             exp=$(date -u -d '+970 seconds' +%Y-%m-%dT%H:%M:%SZ)\n\
             printf '{{\"Version\": 1, \"AccessKeyId\": \"ASIAFLEET%04d\", \"SecretAccessKey\": \"fleet-secret-%d\", \
             \"SessionToken\": \"fleet-token-%d\", \"Expiration\": \"%s\"}}' $n $n $n $exp\n",
            c = counter.display(),
            h = dir.join("hang").display()
        ),
    )
    .unwrap();
    (script, counter)
}

fn runs(counter: &Path) -> usize {
    std::fs::read_to_string(counter).map(|text| text.lines().count()).unwrap_or(0)
}

/// The refresher lease's key in etcd, as an operator reads it (`etcdctl get`): its value (the
/// holder) and its etcd lease id, or `None` when no node holds it.
async fn lease_in_etcd(cluster: &EtcdCluster) -> Option<(String, i64)> {
    let mut client = etcd_client::Client::connect(&cluster.options().endpoints, None).await.unwrap();
    let response = client.get("/imds/v1/lease/refreshers/app", None).await.unwrap();
    response.kvs().first().map(|kv| (String::from_utf8_lossy(kv.value()).into_owned(), kv.lease()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_refreshes_each_role_for_the_fleet_and_a_dead_refresher_is_replaced() {
    let cluster = EtcdCluster::single().await;
    let dir = tempfile::tempdir().unwrap();
    let (script, counter) = script(dir.path());
    let key = [0x5a; 32];
    let mut nodes = Vec::new();
    for n in 0..3 {
        nodes.push(start(&cluster, n, key).await);
    }
    let role = serde_json::json!({"source": {"type": "process", "command": ["/bin/sh", script.to_str().unwrap()], "timeout_seconds": 10}});
    let (status, text) = nodes[0].send(Method::PUT, "/v1/roles/app", role).await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    for (n, node) in nodes.iter().enumerate() {
        let doc = serde_json::json!({"id": format!("i-fleet-{n}"), "ipv4": [node.ip], "node": format!("hv-{n}"), "iam_role": "app"});
        let (status, text) = node.send(Method::PUT, &format!("/v1/instances/i-fleet-{n}"), doc).await;
        assert_eq!(status, StatusCode::CREATED, "{text}");
    }

    // Every node serves the one set the fleet fetched once.
    let mut served = Vec::new();
    for node in &nodes {
        served.push(node.credentials(|_| true).await);
    }
    assert_eq!(runs(&counter), 1, "the role's source was called by more than one node");
    for json in &served {
        assert_eq!(json["AccessKeyId"], "ASIAFLEET0001", "{json}");
        assert_eq!(json["SecretAccessKey"], "fleet-secret-1");
    }
    // In the store they are sealed: no secret in the clear.
    let store = EtcdStore::connect(cluster.options()).await.unwrap();
    let sealed = store.get(&Key::new("fleet-credentials", "app")).await.unwrap().expect("published credentials");
    let clear = String::from_utf8_lossy(&sealed.value);
    assert!(!clear.contains("fleet-secret") && !clear.contains("fleet-token") && !clear.contains("ASIAFLEET"));
    // Nor in the admin API.
    let shown = nodes[1].admin().get("/v1/roles/app").await.unwrap().text();
    assert!(!shown.contains("fleet-secret") && !shown.contains("fleet-token"), "{shown}");

    // The refresher dies mid-refresh, holding an etcd lease; etcd expires it and a refresh
    // elsewhere takes over: one new fetch, which the third node then serves without fetching.
    assert_eq!(lease_in_etcd(&cluster).await, None, "the refresher kept its lease after publishing");
    tokio::time::sleep(Duration::from_secs(11)).await; // past freshness (10 s)
    std::fs::write(dir.path().join("hang"), b"").unwrap();
    let (status, text) = nodes[0].send(Method::POST, "/v1/roles/app/refresh", serde_json::json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (holder, lease) = loop {
        if let Some(held) = lease_in_etcd(&cluster).await {
            break held;
        }
        assert!(tokio::time::Instant::now() < deadline, "no node took the refresher lease");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(holder, "hv-0", "the refresh was asked of hv-0");
    assert_ne!(lease, 0, "the lease key is not bound to an etcd lease");
    let dead_node = nodes.remove(0);
    dead_node.running.stop().await;
    let (status, text) = nodes[0].send(Method::POST, "/v1/roles/app/refresh", serde_json::json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    let json = nodes[0].credentials(|json| json["AccessKeyId"] == "ASIAFLEET0003").await;
    assert_eq!(json["SecretAccessKey"], "fleet-secret-3");
    assert_eq!(runs(&counter), 3, "one hung run, one takeover");
    assert_eq!(lease_in_etcd(&cluster).await, None, "the new refresher kept its lease after publishing");
    let (status, text) = nodes[1].send(Method::POST, "/v1/roles/app/refresh", serde_json::json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    nodes[1].credentials(|json| json["AccessKeyId"] == "ASIAFLEET0003").await;
    assert_eq!(runs(&counter), 3, "the takeover fetched more than once");
    // Served credentials keep more than five minutes (these have about 16).
    let expiration = imds_model::time::parse_rfc3339(json["Expiration"].as_str().unwrap()).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(expiration > now + 300, "served with {}s left", expiration.saturating_sub(now));
    for node in nodes {
        node.running.stop().await;
    }
}
