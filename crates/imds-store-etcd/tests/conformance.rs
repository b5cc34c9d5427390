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
