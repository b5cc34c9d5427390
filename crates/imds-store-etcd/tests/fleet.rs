//! Fleet-wide refresh on a real etcd: three real servers, each on its own node, share one
//! deployment key; a `process` role is fetched once for the fleet and served by every node; a
//! refresher that dies while refreshing holds an etcd lease, which etcd expires, and another
//! node takes over. An `sts` role's base credentials never reach a node that is no refresher,
//! and a role delete removes them with the role.

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
    start_as(cluster, n, key, true).await
}

/// Node `n`, a refresher of the fleet or not.
async fn start_as(cluster: &EtcdCluster, n: usize, key: [u8; 32], refresher: bool) -> Node {
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
            refresher,
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
        self.credentials_from(&self.ip, want).await
    }

    /// The credentials the guest at `ip` reads from this node for `app`, once they satisfy `want`.
    async fn credentials_from(&self, ip: &str, want: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let client = Client::from_source(self.guest, ip.parse().unwrap()).with_timeout(Duration::from_secs(2));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let response = client.get("/latest/meta-data/iam/security-credentials/app").await.unwrap();
            let json = response.json();
            if response.status == StatusCode::OK && json["Code"] == "Success" && want(&json) {
                return json;
            }
            assert!(tokio::time::Instant::now() < deadline, "{ip} serves {json}");
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

/// A stand-in for STS on a loopback port: answers every `AssumeRole` with a new key triple
/// valid for an hour, and keeps each request's `Authorization` header and form body.
struct FakeSts {
    url: String,
    requests: Arc<std::sync::Mutex<Vec<(String, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeSts {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let seen = Arc::clone(&seen);
                tokio::spawn(async move { Self::answer(stream, &seen).await });
            }
        });
        Self { url, requests, task }
    }

    /// Reads one request (headers, then `content-length` bytes) and answers it.
    async fn answer(mut stream: tokio::net::TcpStream, seen: &std::sync::Mutex<Vec<(String, String)>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 4096];
        let (head, body) = loop {
            let Ok(read) = stream.read(&mut chunk).await else { return };
            if read == 0 {
                return;
            }
            bytes.extend_from_slice(&chunk[..read]);
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let Some((head, body)) = text.split_once("\r\n\r\n") else { continue };
            let length = head
                .lines()
                .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                break (head.to_owned(), body.to_owned());
            }
        };
        let authorization = head
            .lines()
            .find(|line| line.to_ascii_lowercase().starts_with("authorization:"))
            .unwrap_or_default()
            .to_owned();
        let n = {
            let mut seen = seen.lock().unwrap();
            seen.push((authorization, body));
            seen.len()
        };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let xml = format!(
            "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIASTS{n:04}</AccessKeyId>\
             <SecretAccessKey>sts-secret-{n}</SecretAccessKey><SessionToken>sts-token-{n}</SessionToken>\
             <Expiration>{}</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>",
            imds_model::time::format_rfc3339(now + 3600)
        );
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{xml}",
            xml.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
    }

    fn requests(&self) -> Vec<(String, String)> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeSts {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every key and value under `prefix`, read with the etcd client itself.
async fn raw(cluster: &EtcdCluster, prefix: &str) -> Vec<(String, String)> {
    let mut client = etcd_client::Client::connect(cluster.options().endpoints, None).await.unwrap();
    let found = client.get(prefix, Some(etcd_client::GetOptions::new().with_prefix())).await.unwrap();
    found
        .kvs()
        .iter()
        .map(|kv| (String::from_utf8_lossy(kv.key()).into_owned(), String::from_utf8_lossy(kv.value()).into_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_credentials_reach_only_refreshers_and_a_role_delete_removes_them_in_one_revision() {
    const SECRET: &str = "base-secret-wJalrXUtnFEMI";
    let cluster = EtcdCluster::single().await;
    let sts = FakeSts::start().await;
    let key = [0x6b; 32];
    let refresher = start_as(&cluster, 0, key, true).await;
    let server = start_as(&cluster, 1, key, false).await;
    // Written through the node that is no refresher.
    let role = serde_json::json!({
        "source": {"type": "sts", "role_arn": "arn:aws:iam::123456789012:role/app", "endpoint": sts.url},
        "base_credentials": {"access_key_id": "AKIAFLEETBASE", "secret_access_key": SECRET}});
    let (status, text) = server.send(Method::PUT, "/v1/roles/app", role).await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    assert!(!text.contains(SECRET), "{text}");
    for (n, node) in [&refresher, &server].into_iter().enumerate() {
        let doc = serde_json::json!({"id": format!("i-sts-{n}"), "ipv4": [node.ip], "node": format!("hv-{n}"), "iam_role": "app"});
        let (status, text) = node.send(Method::PUT, &format!("/v1/instances/i-sts-{n}"), doc).await;
        assert_eq!(status, StatusCode::CREATED, "{text}");
    }

    // The refresher assumed the role once, signing with the base credentials; both serve it.
    let first = refresher.credentials(|_| true).await;
    let second = server.credentials(|_| true).await;
    assert_eq!(first["AccessKeyId"], "ASIASTS0001", "{first}");
    assert_eq!(second["AccessKeyId"], "ASIASTS0001", "{second}");
    let requests = sts.requests();
    assert_eq!(requests.len(), 1, "AssumeRole was called more than once: {requests:?}");
    assert!(requests[0].0.contains("Credential=AKIAFLEETBASE/"), "{requests:?}");

    // Nothing the other node reads or watches holds the secret; its admin API still shows
    // that base credentials are set.
    let store = EtcdStore::connect(cluster.options()).await.unwrap();
    let scope = Scope::Node("hv-1".into()).with_shared(&imds_server::records::SHARED);
    let watched = store.watched_prefixes(&scope);
    assert_eq!(watched.len(), 1 + imds_server::records::SHARED.len(), "{watched:?}");
    let mut seen = Vec::new();
    for prefix in &watched {
        seen.extend(raw(&cluster, prefix).await);
    }
    assert!(seen.iter().any(|(key, value)| key.ends_with("/roles/app") && value.contains("AKIAFLEETBASE")), "{seen:?}");
    assert!(seen.iter().all(|(_, value)| !value.contains(SECRET)), "a watched key holds the secret: {seen:?}");
    let snapshot = store.snapshot(&scope).await.unwrap();
    assert!(snapshot.records.iter().all(|record| !String::from_utf8_lossy(&record.value).contains(SECRET)));
    let everything = raw(&cluster, "/imds/v1/").await;
    let holders: Vec<&String> =
        everything.iter().filter(|(_, value)| value.contains(SECRET)).map(|(key, _)| key).collect();
    assert_eq!(holders, ["/imds/v1/shared/role-secrets/app"], "the secret is stored once, apart");
    let shown = server.admin().get("/v1/roles/app").await.unwrap().json();
    assert_eq!(shown["base_credentials"], serde_json::json!({"set": true, "access_key_id": "AKIAFLEETBASE"}));

    // A delete removes the role and its base credentials in one revision.
    let head = store.snapshot(&Scope::All).await.unwrap().rev;
    let mut feed = store.subscribe(&Scope::All, head).await.unwrap();
    let response = server.admin().send(Method::DELETE, "/v1/roles/app", &[], "").await.unwrap();
    assert_eq!(response.status, StatusCode::NO_CONTENT, "{}", response.text());
    let mut deleted = None;
    for _ in 0..1000 {
        let event = tokio::time::timeout(Duration::from_secs(10), futures::StreamExt::next(&mut feed))
            .await
            .expect("the delete reaches the feed")
            .unwrap()
            .unwrap();
        if let imds_store::FeedEvent::Changes { changes, .. } = event {
            if changes
                .iter()
                .any(|change| matches!(change, imds_store::Change::Delete { key, .. } if key.collection == "roles"))
            {
                deleted = Some(changes);
                break;
            }
        }
    }
    let deleted = deleted.expect("the role's delete in the feed");
    let mut keys: Vec<String> = deleted
        .iter()
        .filter_map(|change| match change {
            imds_store::Change::Delete { key, .. } => Some(key.to_string()),
            imds_store::Change::Put(_) => None,
        })
        .collect();
    keys.sort();
    assert_eq!(keys, ["role-secrets/app", "roles/app"]);
    assert!(raw(&cluster, "/imds/v1/shared/role-secrets/").await.is_empty());
    refresher.running.stop().await;
    server.running.stop().await;
}

/// A role with a session per instance: the instance's own node assumes it, named after the
/// instance, when that node is a refresher; a node that is no refresher (holding no base
/// credentials) says why it has none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_per_instance_are_assumed_by_each_instance_s_refresher_node() {
    let cluster = EtcdCluster::single().await;
    let sts = FakeSts::start().await;
    let key = [0x6c; 32];
    let refresher = start_as(&cluster, 0, key, true).await;
    let server = start_as(&cluster, 1, key, false).await;
    let role = serde_json::json!({
        "source": {"type": "sts", "role_arn": "arn:aws:iam::123456789012:role/app", "endpoint": sts.url,
                   "session_per_instance": true},
        "base_credentials": {"access_key_id": "AKIASESSIONBASE", "secret_access_key": "session-base-secret"}});
    let (status, text) = server.send(Method::PUT, "/v1/roles/app", role).await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    for (n, node) in [&refresher, &server].into_iter().enumerate() {
        let doc = serde_json::json!({"id": format!("i-sess-{n}"), "ipv4": [node.ip], "node": format!("hv-{n}"), "iam_role": "app"});
        let (status, text) = node.send(Method::PUT, &format!("/v1/instances/i-sess-{n}"), doc).await;
        assert_eq!(status, StatusCode::CREATED, "{text}");
    }

    let served = refresher.credentials(|_| true).await;
    assert_eq!(served["AccessKeyId"], "ASIASTS0001", "{served}");
    let requests = sts.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].1.contains("RoleSessionName=i-sess-0&"), "{requests:?}");
    assert!(requests[0].0.contains("Credential=AKIASESSIONBASE/"), "{requests:?}");

    let mut last = serde_json::Value::Null;
    for _ in 0..200 {
        last = server.admin().get("/readyz").await.unwrap().json();
        if last["roles_without_credentials"]["app#i-sess-1"].as_str().is_some_and(|e| e.contains("no refresher")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let error = last["roles_without_credentials"]["app#i-sess-1"].as_str().unwrap_or_default();
    assert!(error.contains("no refresher"), "{last}");
    assert_eq!(sts.requests().len(), 1, "the node that is no refresher called STS");
    refresher.running.stop().await;
    server.running.stop().await;
}
