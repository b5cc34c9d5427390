//! The conformance suite of `imds-store` on a fresh single-member etcd per case.

use std::sync::Arc;

use imds_store::Store;
use imds_store_etcd::testing::EtcdCluster;
use imds_store_etcd::EtcdStore;

imds_store::conformance_tests!(async {
    let cluster = EtcdCluster::single().await;
    let store = EtcdStore::connect(cluster.options()).await.expect("connect to etcd");
    (Arc::new(store) as Arc<dyn Store>, cluster)
});

/// `max_batch` is derived from etcd's default `--max-txn-ops` (128): that many records of four
/// claims commit in one `Txn` even in the worst case (every claim replaced and every record
/// moved between nodes); one more in that worst case is refused whole with `BatchTooLarge`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_batch_fits_one_txn_at_the_default_op_limit() {
    use imds_store::{Expect, Key, Put, Scope, StoreError};

    let cluster = EtcdCluster::single().await;
    let store = EtcdStore::connect(cluster.options()).await.expect("connect to etcd");
    let max = store.max_batch();
    assert!(max >= 10, "max_batch {max} is needlessly small");
    let batch = |count: usize, node: &str, generation: usize| -> Vec<Put> {
        (0..count)
            .map(|i| Put {
                key: Key::new("instances", format!("i-{i}")),
                node: Some(node.to_owned()),
                claims: (0..4).map(|c| format!("ipv4/10.{generation}.{i}.{c}")).collect(),
                value: b"v".to_vec(),
                expect: Expect::Any,
            })
            .collect()
    };
    let created = store.put_batch(batch(max + 1, "n1", 0)).await.expect("creating fits");
    assert_eq!(created.len(), max + 1);
    let head = store.revision().await.unwrap();
    let err = store.put_batch(batch(max + 1, "n2", 1)).await.expect_err("the worst case of max + 1 is too large");
    assert!(matches!(err, StoreError::BatchTooLarge { limit: 128, .. }), "{err}");
    assert_eq!(store.revision().await.unwrap(), head, "a refused batch wrote nothing");
    let moved = store.put_batch(batch(max, "n2", 1)).await.expect("the worst case of max_batch fits");
    assert!(moved.iter().all(|w| !w.created && w.rev == moved[0].rev));
    let n2 = store.snapshot(&Scope::Node("n2".into())).await.unwrap();
    assert_eq!(n2.records.len(), max);
}
