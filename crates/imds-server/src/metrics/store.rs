//! [`Timed`]: a [`Store`] that times every write (`commit`, `put`, `put_batch`, `delete`) into
//! the store-write histogram and forwards everything else unchanged. The daemon wraps its
//! store once at start, so admin writes, guest writes and the signing keys' writes are all
//! measured in one place.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use imds_store::{
    Committed, Expect, Feed, Key, Op, Page, Put, Record, Revision, Scope, Snapshot, Store, StoreError, Written,
};

use super::Metrics;

/// A store whose writes are timed.
#[derive(Debug)]
pub struct Timed {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl Timed {
    /// Wraps `inner`, recording into `metrics`.
    pub fn wrap(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> Arc<dyn Store> {
        Arc::new(Self { inner, metrics })
    }

    async fn timed<T>(&self, write: impl std::future::Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        let started = tokio::time::Instant::now();
        let result = write.await;
        self.metrics.store_writes.observe(started.elapsed());
        if result.is_err() {
            self.metrics.store_write_errors.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}

#[async_trait::async_trait]
impl Store for Timed {
    async fn get(&self, key: &Key) -> Result<Option<Record>, StoreError> {
        self.inner.get(key).await
    }

    async fn list(&self, collection: &str, after: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        self.inner.list(collection, after, limit).await
    }

    async fn commit(&self, ops: Vec<Op>) -> Result<Committed, StoreError> {
        self.timed(self.inner.commit(ops)).await
    }

    fn max_batch(&self) -> usize {
        self.inner.max_batch()
    }

    async fn put(&self, put: Put) -> Result<Written, StoreError> {
        self.timed(self.inner.put(put)).await
    }

    async fn put_batch(&self, puts: Vec<Put>) -> Result<Vec<Written>, StoreError> {
        self.timed(self.inner.put_batch(puts)).await
    }

    async fn delete(&self, key: &Key, expect: Expect) -> Result<Revision, StoreError> {
        self.timed(self.inner.delete(key, expect)).await
    }

    async fn snapshot(&self, scope: &Scope) -> Result<Snapshot, StoreError> {
        self.inner.snapshot(scope).await
    }

    async fn subscribe(&self, scope: &Scope, after: Revision) -> Result<Feed, StoreError> {
        self.inner.subscribe(scope, after).await
    }

    async fn compact(&self, through: Revision) -> Result<(), StoreError> {
        self.inner.compact(through).await
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        self.inner.revision().await
    }

    async fn acquire(
        &self,
        key: &imds_store::Key,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<imds_store::Acquired, imds_store::StoreError> {
        self.inner.acquire(key, holder, ttl).await
    }

    async fn release(&self, key: &imds_store::Key, holder: &str) -> Result<(), imds_store::StoreError> {
        self.inner.release(key, holder).await
    }
}
