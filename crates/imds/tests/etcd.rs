//! Two real `imds serve --store etcd://… --node NAME` processes on one real etcd: each serves
//! only the instances placed on it, whichever node the admin write went through, and a move
//! flips ownership at one revision. Needs Debian's `etcd-server` (scripts/test installs it).

#![allow(clippy::unwrap_used)]

#[allow(dead_code, unreachable_pub)]
#[path = "e2e/support.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use http::{Method, StatusCode};
use imds_server::client::Response;
use imds_store_etcd::testing::EtcdCluster;
use support::{binary, Daemon, TOKEN};

const GUEST: &str = "127.0.61.1";
const INSTANCE_ID: &str = "/latest/meta-data/instance-id";
/// What a node answers a guest it does not serve (EC2 refuses unknown callers).
const UNKNOWN_CALLER: StatusCode = StatusCode::FORBIDDEN;

fn node(dir: &Path, url: &str, name: &str) -> Daemon {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "[guest]\nlisten = [\"127.0.0.1:0\"]\n[admin]\nlisten = \"127.0.0.1:0\"\nsocket = \"\"\ntoken = \"{TOKEN}\"\n"
        ),
    )
    .unwrap();
    Daemon::start(dir, &["--config", config.to_str().unwrap(), "--store", url, "--node", name], &[])
}

async fn guest_get(daemon: &Daemon) -> Response {
    daemon.guest_from(GUEST).send(Method::GET, INSTANCE_ID, &[], String::new()).await.unwrap()
}

/// Polls until `daemon` serves the instance (or, with `None`, until it does not), for at most 5 s.
async fn wait_served(daemon: &Daemon, want: Option<&str>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let response = guest_get(daemon).await;
        let served = (response.status == StatusCode::OK).then(|| response.text());
        if served.as_deref() == want {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "after 5 s the node serves {served:?}, not {want:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn readyz_revision(daemon: &Daemon) -> u64 {
    let response = daemon.admin_client().get("/readyz").await.unwrap();
    // Also while starting (the signing key of a first start not generated yet): the revision
    // the view has reached is in the body.
    let starting = response.status == StatusCode::SERVICE_UNAVAILABLE && response.json()["status"] == "starting";
    assert!(response.status == StatusCode::OK || starting, "{}", response.text());
    response.json()["revision"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_node_serves_only_its_own_instances() {
    let cluster = EtcdCluster::single().await;
    let url = cluster.url("/imds/e2e");
    let (_dir, dir) = support::temp_dir();
    let a = node(&dir, &url, "hv-a");
    let b = node(&dir, &url, "hv-b");

    // Written through A, placed on B: B serves it, A does not.
    let doc = serde_json::json!({"id": "i-etcd1", "ipv4": [GUEST], "node": "hv-b"});
    let created = a
        .admin_client()
        .send(Method::PUT, "/v1/instances/i-etcd1", &[("content-type", "application/json")], doc.to_string())
        .await
        .unwrap();
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert_eq!(created.json()["node"], "hv-b");
    wait_served(&b, Some("i-etcd1")).await;
    assert_eq!(guest_get(&a).await.status, UNKNOWN_CALLER);
    // Both nodes' admin APIs read the same record from the store.
    let read = b.admin_client().get("/v1/instances/i-etcd1").await.unwrap();
    assert_eq!(read.header("etag"), created.header("etag"));

    // Moved with the CLI through B (the owner, so the write returns once B dropped it).
    let moved = Command::new(binary())
        .args(["instance", "move", "i-etcd1", "hv-a", "--admin", &format!("http://{}", b.admin)])
        .env("IMDS_ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(moved.status.success(), "{}", String::from_utf8_lossy(&moved.stderr));
    assert_eq!(guest_get(&b).await.status, UNKNOWN_CALLER, "B still serves the moved instance");
    wait_served(&a, Some("i-etcd1")).await;
    let record = a.admin_client().get("/v1/instances/i-etcd1").await.unwrap();
    assert_eq!(record.json()["node"], "hv-a");
    let etag: u64 = record.header("etag").unwrap().trim_matches('"').parse().unwrap();
    // Both views have passed the move's revision: one revision took it from B and gave it to A.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while readyz_revision(&a).await < etag || readyz_revision(&b).await < etag {
        assert!(tokio::time::Instant::now() < deadline, "a view did not reach revision {etag}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A bad node name is refused with the field named, and changes nothing.
    let bad = a
        .admin_client()
        .send(
            Method::PATCH,
            "/v1/instances/i-etcd1",
            &[("content-type", "application/merge-patch+json")],
            r#"{"node": "hv/b"}"#,
        )
        .await
        .unwrap();
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["error"]["field"], "node");
    wait_served(&a, Some("i-etcd1")).await;

    // Deleting through the non-owner B: A stops serving it.
    let deleted = b.admin_client().send(Method::DELETE, "/v1/instances/i-etcd1", &[], String::new()).await.unwrap();
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    wait_served(&a, None).await;
}

/// Waits up to 60 s for `/readyz` to answer 200: the view holds the signing key and every role
/// has had its first fetch.
async fn wait_ready(daemon: &Daemon) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let response = daemon.admin_client().get("/readyz").await.unwrap();
        if response.status == StatusCode::OK {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "not ready: {}", response.text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Roles, signing keys and the session-token key are shared records: a role created through
/// one node is served by the node that owns the instance, both nodes become ready (signing key
/// in their views), and a session token minted by one node is accepted by the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_serves_roles_signatures_and_tokens() {
    let cluster = EtcdCluster::single().await;
    let url = cluster.url("/imds/shared");
    let (_dir, dir) = support::temp_dir();
    let a = node(&dir, &url, "hv-a");
    let b = node(&dir, &url, "hv-b");
    let role = serde_json::json!({"source": {"type": "static", "access_key_id": "AKIASHAREDROLE000001",
        "secret_access_key": "shared-secret", "expiration": "2099-01-01T00:00:00Z"}});
    let created = a
        .admin_client()
        .send(Method::PUT, "/v1/roles/app", &[("content-type", "application/json")], role.to_string())
        .await
        .unwrap();
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let doc = serde_json::json!({"id": "i-shared", "ipv4": [GUEST], "node": "hv-b", "iam_role": "app"});
    let created = a
        .admin_client()
        .send(Method::PUT, "/v1/instances/i-shared", &[("content-type", "application/json")], doc.to_string())
        .await
        .unwrap();
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    wait_served(&b, Some("i-shared")).await;
    wait_ready(&a).await;
    wait_ready(&b).await;

    let guest = b.guest_from(GUEST);
    let path = "/latest/meta-data/iam/security-credentials/app";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let response = guest.send(Method::GET, path, &[], String::new()).await.unwrap();
        if response.status == StatusCode::OK && response.json()["AccessKeyId"] == "AKIASHAREDROLE000001" {
            assert_eq!(response.json()["SecretAccessKey"], "shared-secret");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no credentials on hv-b: {}", response.text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let signature =
        guest.send(Method::GET, "/latest/dynamic/instance-identity/pkcs7", &[], String::new()).await.unwrap();
    assert_eq!(signature.status, StatusCode::OK, "{}", signature.text());
    assert!(signature.text().len() > 500, "{}", signature.text());
    // The certificate the admin API publishes (from the store) is the one hv-b signs with.
    let certs = a.admin_client().get("/v1/signing/certificates").await.unwrap();
    assert_eq!(certs.status, StatusCode::OK, "{}", certs.text());

    // A token minted by hv-b stays good once the instance moved to hv-a: one session-token key
    // for the deployment.
    let token = guest
        .send(Method::PUT, "/latest/api/token", &[("x-aws-ec2-metadata-token-ttl-seconds", "60")], String::new())
        .await
        .unwrap();
    assert_eq!(token.status, StatusCode::OK, "{}", token.text());
    let moved = b
        .admin_client()
        .send(
            Method::PATCH,
            "/v1/instances/i-shared",
            &[("content-type", "application/merge-patch+json")],
            r#"{"node": "hv-a"}"#,
        )
        .await
        .unwrap();
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text());
    wait_served(&a, Some("i-shared")).await;
    let with_token = a
        .guest_from(GUEST)
        .send(Method::GET, INSTANCE_ID, &[("x-aws-ec2-metadata-token", token.text().as_str())], String::new())
        .await
        .unwrap();
    assert_eq!(with_token.status, StatusCode::OK, "{}", with_token.text());
    assert_eq!(with_token.text(), "i-shared");
}

/// A node on an etcd that serves clients only over TLS and requires a client certificate:
/// `--store etcds://… --store-ca --store-cert --store-key` (the key from the environment, as a
/// unit file would give it) serves its instance and becomes ready; a certificate without its
/// key is a configuration error naming `store.key`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reaches_etcd_over_tls_with_a_client_certificate() {
    let cluster = EtcdCluster::start_tls(1).await;
    let files = cluster.tls_files().unwrap();
    let url = cluster.url("/imds/tls");
    let (_dir, dir) = support::temp_dir();
    let config = dir.join("tls.toml");
    std::fs::write(
        &config,
        format!(
            "[guest]\nlisten = [\"127.0.0.1:0\"]\n[admin]\nlisten = \"127.0.0.1:0\"\nsocket = \"\"\ntoken = \"{TOKEN}\"\n"
        ),
    )
    .unwrap();
    let (ca, cert, key) =
        (files.ca.to_str().unwrap(), files.client_cert.to_str().unwrap(), files.client_key.to_str().unwrap());
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--store",
        &url,
        "--node",
        "hv-a",
        "--store-ca",
        ca,
        "--store-cert",
        cert,
    ];
    let daemon = Daemon::start(&dir, &args, &[("IMDS_STORE_KEY", key)]);
    let doc = serde_json::json!({"id": "i-tls", "ipv4": [GUEST], "node": "hv-a"});
    let created = daemon
        .admin_client()
        .send(Method::PUT, "/v1/instances/i-tls", &[("content-type", "application/json")], doc.to_string())
        .await
        .unwrap();
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    wait_served(&daemon, Some("i-tls")).await;
    wait_ready(&daemon).await;

    let output = Command::new(binary())
        .args(["serve", "--store", &url, "--node", "hv-b", "--store-ca", ca, "--store-cert", cert])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "a certificate without its key was accepted");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("store.key"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A move takes the instance and everything attached to it (its MMDS document, what its guest
/// wrote) to the new node in one etcd revision: afterwards each of the three records carries
/// the move's revision, the old node's scope holds none of them and the new node's guest reads
/// both. Guest writes racing a move never leave the state behind on the old node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_takes_mmds_and_guest_state_along_in_one_revision() {
    use imds_store::{Key, Scope, Store};

    let cluster = EtcdCluster::single().await;
    let url = cluster.url("/imds/move");
    let (_dir, dir) = support::temp_dir();
    let a = node(&dir, &url, "hv-a");
    let b = node(&dir, &url, "hv-b");
    let doc = serde_json::json!({"id": "i-move", "ipv4": [GUEST], "node": "hv-b"});
    let created = b
        .admin_client()
        .send(Method::PUT, "/v1/instances/i-move", &[("content-type", "application/json")], doc.to_string())
        .await
        .unwrap();
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    wait_served(&b, Some("i-move")).await;
    // The guest writes its password (guest state), then the operator configures MMDS.
    let posted =
        b.guest_from(GUEST).send(Method::POST, "/openstack/latest/password", &[], "p4ss".to_owned()).await.unwrap();
    assert_eq!(posted.status, StatusCode::OK, "{}", posted.text());
    let mmds = b
        .admin_client()
        .send(Method::PUT, "/v1/instances/i-move/mmds", &[("content-type", "application/json")], r#"{"k":"v"}"#)
        .await
        .unwrap();
    assert_eq!(mmds.status, StatusCode::NO_CONTENT, "{}", mmds.text());

    let move_to = |id: &str, to: &str, via: &Daemon| {
        Command::new(binary())
            .args(["instance", "move", id, to, "--admin", &format!("http://{}", via.admin)])
            .env("IMDS_ADMIN_TOKEN", TOKEN)
            .output()
            .unwrap()
    };
    let moved = move_to("i-move", "hv-a", &b);
    assert!(moved.status.success(), "{}", String::from_utf8_lossy(&moved.stderr));

    let store =
        imds_store_etcd::EtcdStore::connect(imds_store_etcd::EtcdOptions::from_url(&url).unwrap()).await.unwrap();
    let instance = store.get(&Key::new("instances", "i-move")).await.unwrap().unwrap();
    let document = store.get(&Key::new("mmds", "i-move")).await.unwrap().unwrap();
    let state = store.get(&Key::new("state", "i-move")).await.unwrap().unwrap();
    for record in [&instance, &document, &state] {
        assert_eq!(record.node.as_deref(), Some("hv-a"), "{} stayed on {:?}", record.key, record.node);
    }
    assert_eq!(document.rev, instance.rev, "the MMDS document moved at another revision");
    assert_eq!(state.rev, instance.rev, "the guest state moved at another revision");
    let old = store.snapshot(&Scope::Node("hv-b".into())).await.unwrap();
    assert!(
        old.records.is_empty(),
        "left behind on hv-b: {:?}",
        old.records.iter().map(|r| &r.key).collect::<Vec<_>>()
    );
    let new = store.snapshot(&Scope::Node("hv-a".into())).await.unwrap();
    assert_eq!(new.records.len(), 3);

    // hv-a's guest reads the MMDS document (with MMDS configured, MMDS answers every path).
    let guest = a.guest_from(GUEST);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let read = guest.send(Method::GET, "/k", &[("accept", "application/json")], String::new()).await.unwrap();
        if read.status == StatusCode::OK && read.text().contains('v') {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "hv-a serves no MMDS: {} {}", read.status, read.text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Guest writes on hv-b racing the move of another instance (no MMDS: GCE guest attributes)
    // never leave its state on hv-b.
    let racer = "127.0.61.2";
    let doc = serde_json::json!({"id": "i-race", "ipv4": [racer], "node": "hv-b",
        "dialects": {"gce": {"attributes": {"enable-guest-attributes": "TRUE"}}}});
    let created = b
        .admin_client()
        .send(Method::PUT, "/v1/instances/i-race", &[("content-type", "application/json")], doc.to_string())
        .await
        .unwrap();
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    // Eight writers at once, as fast as they can: the move through the same node still gets its
    // turn (it waits behind the writes already queued, not behind every write to come).
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (guest, done) = (b.guest_from(racer), std::sync::Arc::clone(&done));
            tokio::spawn(async move {
                let mut written = 0;
                // Until the move is done (then hv-b holds and refuses this unknown caller).
                for i in 0..200 {
                    if done.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let path = format!("/computeMetadata/v1/instance/guest-attributes/race/w{w}k{i}");
                    let sent = guest.send(Method::PUT, &path, &[("metadata-flavor", "Google")], format!("v{i}")).await;
                    if sent.is_ok_and(|response| response.status == StatusCode::OK) {
                        written += 1;
                    }
                }
                written
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let moved = move_to("i-race", "hv-a", &b);
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(moved.status.success(), "{}", String::from_utf8_lossy(&moved.stderr));
    let mut written = 0;
    for writer in writers {
        written += writer.await.unwrap();
    }
    assert!(written > 0, "no guest write succeeded before the move");
    let state = store.get(&Key::new("state", "i-race")).await.unwrap().expect("the guest's writes");
    assert_eq!(state.node.as_deref(), Some("hv-a"), "guest state left behind on the old node");
    let old = store.snapshot(&Scope::Node("hv-b".into())).await.unwrap();
    assert!(
        old.records.is_empty(),
        "left behind on hv-b: {:?}",
        old.records.iter().map(|r| &r.key).collect::<Vec<_>>()
    );
}

#[test]
fn a_bad_etcd_url_or_node_is_a_configuration_error() {
    for (flags, expected) in [
        (&["--store", "etcd://nohost"][..], "has no port"),
        (&["--store", "etcd://127.0.0.1:1", "--node", "hv a"][..], "store.node"),
    ] {
        let output = Command::new(binary()).arg("serve").args(flags).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{flags:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
    }
}
