//! A fault-injecting [`Store`] wrapper for tests (feature `test-util`).
//!
//! Owns [`Unreliable`], modelled on neon's `UnreliableWrapper`: it fails a chosen number of
//! calls and cuts feeds short, so tests prove that readers retry and resume from their last
//! revision without losing or repeating a change. Controls are atomics, usable through `&self`
//! while other tasks use the store.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::{stream, StreamExt};

use crate::{Acquired, Committed, Feed, Key, Op, Page, Record, Revision, Scope, Snapshot, Store, StoreError};

/// The error injected faults return.
const INJECTED: &str = "injected fault";

/// `feed_limit` value meaning "feeds are not broken".
const UNLIMITED: u64 = u64::MAX;

/// A [`Store`] that forwards to an inner store, except for the faults it is told to inject.
pub struct Unreliable<S: ?Sized = dyn Store> {
    inner: Arc<S>,
    /// How many of the next calls fail without reaching the inner store.
    fail_next: AtomicU64,
    /// Feeds opened from now on yield at most this many events, then an error.
    feed_limit: AtomicU64,
    /// How many trait calls were made, failed ones included.
    calls: AtomicU64,
}

impl<S: Store + ?Sized> Unreliable<S> {
    /// Wraps `inner`, injecting no faults until told to.
    pub fn new(inner: Arc<S>) -> Self {
        Self { inner, fail_next: AtomicU64::new(0), feed_limit: AtomicU64::new(UNLIMITED), calls: AtomicU64::new(0) }
    }

    /// The wrapped store, to act on it without faults.
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    /// Makes the next `n` trait calls (of any method) fail with
    /// [`StoreError::Unavailable`]`("injected fault")` without reaching the inner store.
    pub fn fail_next(&self, n: u64) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    /// Makes every feed opened from now on yield at most `k` events, then an
    /// [`StoreError::Unavailable`] item, and end.
    pub fn break_feeds_after(&self, k: u64) {
        self.feed_limit.store(k, Ordering::SeqCst);
    }

    /// Stops injecting faults: pending failures are dropped and new feeds are whole again.
    pub fn heal(&self) {
        self.fail_next.store(0, Ordering::SeqCst);
        self.feed_limit.store(UNLIMITED, Ordering::SeqCst);
    }

    /// How many trait calls were made so far, failed ones included.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Counts a call and decides whether it fails.
    fn enter(&self) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match self.fail_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)) {
            Ok(_) => Err(StoreError::unavailable(INJECTED)),
            Err(_) => Ok(()),
        }
    }
}

impl<S: ?Sized> fmt::Debug for Unreliable<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unreliable")
            .field("fail_next", &self.fail_next.load(Ordering::Relaxed))
            .field("feed_limit", &self.feed_limit.load(Ordering::Relaxed))
            .field("calls", &self.calls.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Cuts a feed after `limit` events with an injected error.
///
/// If the inner feed ends (or fails) first, it ends as it would have, with no injected error.
fn break_after(feed: Feed, limit: u64) -> Feed {
    Box::pin(stream::unfold(Some((feed, limit)), |state| async move {
        let (mut feed, remaining) = state?;
        if remaining == 0 {
            return Some((Err(StoreError::unavailable(INJECTED)), None));
        }
        match feed.next().await? {
            Ok(event) => Some((Ok(event), Some((feed, remaining - 1)))),
            Err(err) => Some((Err(err), None)),
        }
    }))
}

#[async_trait::async_trait]
impl<S: Store + ?Sized> Store for Unreliable<S> {
    async fn get(&self, key: &Key) -> Result<Option<Record>, StoreError> {
        self.enter()?;
        self.inner.get(key).await
    }

    async fn list(&self, collection: &str, after: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        self.enter()?;
        self.inner.list(collection, after, limit).await
    }

    async fn commit(&self, ops: Vec<Op>) -> Result<Committed, StoreError> {
        self.enter()?;
        self.inner.commit(ops).await
    }

    fn max_batch(&self) -> usize {
        // Not a call that can fail: it is not counted and never faulted.
        self.inner.max_batch()
    }

    async fn snapshot(&self, scope: &Scope) -> Result<Snapshot, StoreError> {
        self.enter()?;
        self.inner.snapshot(scope).await
    }

    async fn subscribe(&self, scope: &Scope, after: Revision) -> Result<Feed, StoreError> {
        self.enter()?;
        let feed = self.inner.subscribe(scope, after).await?;
        match self.feed_limit.load(Ordering::SeqCst) {
            UNLIMITED => Ok(feed),
            limit => Ok(break_after(feed, limit)),
        }
    }

    async fn compact(&self, through: Revision) -> Result<(), StoreError> {
        self.enter()?;
        self.inner.compact(through).await
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        self.enter()?;
        self.inner.revision().await
    }

    async fn acquire(&self, key: &Key, holder: &str, ttl: std::time::Duration) -> Result<Acquired, StoreError> {
        self.enter()?;
        self.inner.acquire(key, holder, ttl).await
    }

    async fn release(&self, key: &Key, holder: &str) -> Result<(), StoreError> {
        self.enter()?;
        self.inner.release(key, holder).await
    }
}
