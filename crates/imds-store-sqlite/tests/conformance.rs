//! The conformance suite of `imds-store` on a fresh SQLite file per case.

use std::sync::Arc;

use imds_store::Store;
use imds_store_sqlite::{SqliteOptions, SqliteStore};

imds_store::conformance_tests!(async {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(&dir.path().join("imds.db"), SqliteOptions::default()).expect("open a fresh store");
    (Arc::new(store) as Arc<dyn Store>, dir)
});
