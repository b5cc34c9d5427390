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
