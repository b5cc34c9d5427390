//! The etcd store over TLS to a real etcd that serves clients only over TLS and requires a
//! client certificate (`--client-cert-auth`), on certificates the test makes with `openssl`.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures::StreamExt;
use imds_store::{Change, Expect, FeedEvent, Key, Put, Scope, Store, StoreError};
use imds_store_etcd::testing::{make_certificates, EtcdCluster};
use imds_store_etcd::{EtcdOptions, EtcdStore, EtcdTls};

fn put(key: &Key, node: Option<&str>, value: &[u8]) -> Put {
    Put {
        key: key.clone(),
        node: node.map(str::to_owned),
        claims: Vec::new(),
        value: value.to_vec(),
        expect: Expect::Any,
    }
}

/// Options that give up quickly: these cases expect failures.
fn impatient(options: EtcdOptions) -> EtcdOptions {
    EtcdOptions { write_deadline: Duration::from_secs(1), call_timeout: Duration::from_secs(1), ..options }
}

/// Whether a store opened with `options` can read the revision (connecting may itself fail).
async fn reads(options: EtcdOptions) -> Result<(), StoreError> {
    let store = EtcdStore::connect(impatient(options)).await?;
    store.revision().await.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_serves_writes_snapshots_and_feeds_with_a_client_certificate() {
    let cluster = EtcdCluster::start_tls(1).await;
    let url = cluster.url("/imds/tls");
    assert!(url.starts_with("etcds://127.0.0.1:"), "{url}");
    // What an operator configures: the etcds:// URL plus the three files.
    let files = cluster.tls_files().unwrap();
    let options = EtcdOptions {
        tls: Some(EtcdTls {
            ca: Some(files.ca.clone()),
            cert: Some(files.client_cert.clone()),
            key: Some(files.client_key.clone()),
        }),
        progress_interval: Duration::from_millis(200),
        ..EtcdOptions::from_url(&url).unwrap()
    };
    assert!(options.endpoints.iter().all(|endpoint| endpoint.starts_with("https://")));
    let store = EtcdStore::connect(options).await.unwrap();

    let scope = Scope::Node("hv-1".into()).with_shared(&["roles"]);
    let start = store.put(put(&Key::new("instances", "i-1"), Some("hv-1"), b"one")).await.unwrap().rev;
    let snapshot = store.snapshot(&scope).await.unwrap();
    assert_eq!(snapshot.rev, start);
    assert_eq!(snapshot.records.len(), 1);
    let mut feed = store.subscribe(&scope, start).await.unwrap();
    let role = Key::new("roles", "app");
    let written = store.put(put(&role, None, b"role")).await.unwrap();
    let event = loop {
        match tokio::time::timeout(Duration::from_secs(10), feed.next()).await.expect("a feed event") {
            Some(Ok(FeedEvent::Progress { .. })) => {}
            Some(Ok(event)) => break event,
            other => panic!("feed: {other:?}"),
        }
    };
    match event {
        FeedEvent::Changes { rev, changes } => {
            assert_eq!(rev, written.rev);
            assert!(matches!(&changes[..], [Change::Put(record)] if record.key == role && record.value == b"role"));
        }
        FeedEvent::Progress { .. } => unreachable!(),
    }
    assert_eq!(store.get(&role).await.unwrap().unwrap().value, b"role");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_refuses_clients_without_the_right_certificates() {
    let cluster = EtcdCluster::start_tls(1).await;
    let files = cluster.tls_files().unwrap().clone();
    assert!(reads(cluster.options()).await.is_ok(), "the accepted client certificate was refused");

    // No client certificate: the member requires one.
    let no_cert =
        EtcdOptions { tls: Some(EtcdTls { ca: Some(files.ca.clone()), cert: None, key: None }), ..cluster.options() };
    assert!(
        matches!(reads(no_cert).await, Err(StoreError::Unavailable(_))),
        "a client without a certificate was served"
    );

    // A client certificate from another CA, and a client trusting another CA.
    let other_dir = tempfile::tempdir().unwrap();
    let other = make_certificates(other_dir.path(), "other");
    let foreign_cert = EtcdOptions {
        tls: Some(EtcdTls {
            ca: Some(files.ca.clone()),
            cert: Some(other.client_cert.clone()),
            key: Some(other.client_key.clone()),
        }),
        ..cluster.options()
    };
    assert!(
        matches!(reads(foreign_cert).await, Err(StoreError::Unavailable(_))),
        "a foreign client certificate was accepted"
    );
    let foreign_ca = EtcdOptions {
        tls: Some(EtcdTls {
            ca: Some(other.ca.clone()),
            cert: Some(files.client_cert.clone()),
            key: Some(files.client_key.clone()),
        }),
        ..cluster.options()
    };
    assert!(
        matches!(reads(foreign_ca).await, Err(StoreError::Unavailable(_))),
        "a member with an untrusted certificate was trusted"
    );

    // Plain HTTP to a TLS member gets nowhere; https without TLS files is refused at connect.
    let plain = EtcdOptions {
        endpoints: vec![cluster.endpoint(0).replace("https://", "http://")],
        tls: None,
        ..cluster.options()
    };
    assert!(reads(plain).await.is_err(), "plain HTTP was served by a TLS member");
    let untold = EtcdOptions { tls: None, ..cluster.options() };
    let err = EtcdStore::connect(untold).await.unwrap_err();
    assert!(err.to_string().contains("store.ca"), "{err}");
    // A certificate without its key names the missing file.
    let half = EtcdOptions { tls: Some(EtcdTls { key: None, ..cluster.options().tls.unwrap() }), ..cluster.options() };
    let err = EtcdStore::connect(half).await.unwrap_err();
    assert!(err.to_string().contains("store.key"), "{err}");
    // A missing file is named.
    let missing = EtcdOptions {
        tls: Some(EtcdTls { ca: Some("/nonexistent/ca.pem".into()), ..cluster.options().tls.unwrap() }),
        ..cluster.options()
    };
    let err = EtcdStore::connect(missing).await.unwrap_err();
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}
