//! The replica loop: keeps the [`View`] equal to the store, for every backend.
//!
//! 1. `snapshot(scope)` with retries; build a [`Snapshot`] and swap it in (the node is ready).
//! 2. `subscribe(scope, last)`; apply each batch of changes and swap; `last` follows every
//!    event, progress included.
//! 3. A feed error ([`StoreError::Unavailable`]) → jittered back-off, subscribe from `last`
//!    again: nothing is missed or applied twice.
//! 4. [`StoreError::Compacted`] → back to 1, serving the old view meanwhile.
//!
//! While the store is away, guests keep being served from the last view; the view's
//! [`FeedHealth`](crate::health::FeedHealth) says so (connected or not, time since the last
//! change or progress notice).

use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use imds_store::{FeedEvent, Revision, Scope, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::view::{Snapshot, View};

pub use imds_store::backoff::Backoff;

/// How the loop backs off after store errors by default: 50 ms doubling to 1 s, so a node is
/// back within about a second of its store, and the jitter spreads many nodes reconnecting at
/// once (resuming a feed is cheap).
pub const BACKOFF: Backoff = Backoff { initial: Duration::from_millis(50), max: Duration::from_secs(1) };

/// Follows `store` for `scope` into `view` until `shutdown` is cancelled.
pub async fn run(store: Arc<dyn Store>, scope: Scope, view: View, backoff: Backoff, shutdown: CancellationToken) {
    let mut attempt = 0;
    'snapshot: loop {
        let snapshot = tokio::select! {
            () = shutdown.cancelled() => return,
            snapshot = store.snapshot(&scope) => snapshot,
        };
        let snapshot = match snapshot {
            Ok(snapshot) => snapshot,
            Err(error) => {
                tracing::warn!(%error, "store snapshot failed; retrying");
                view.health().disconnected(&error.to_string());
                if sleep_or_stop(&backoff, &mut attempt, &shutdown).await {
                    return;
                }
                continue 'snapshot;
            }
        };
        let mut last = snapshot.rev;
        view.swap(Snapshot::from_records(snapshot.rev, &snapshot.records, Arc::clone(view.load().budget())));
        // The view holds what it needs; the store's records (every instance's bytes) go now,
        // not when this loop next takes a snapshot.
        drop(snapshot);
        view.health().connected();
        view.health().heard();
        // Anything may have changed: every long-polling guest renders again.
        view.changes().notify_all();
        tracing::info!(rev = %last, instances = view.load().len(), "view loaded from store snapshot");
        attempt = 0;

        loop {
            match follow(&*store, &scope, &view, &mut last, &mut attempt, &shutdown).await {
                Ok(()) => return,
                Err(StoreError::Compacted { after, oldest }) => {
                    tracing::warn!(%after, %oldest, "change feed compacted past our revision; reloading the view");
                    continue 'snapshot;
                }
                Err(error) => {
                    tracing::warn!(%error, rev = %last, "change feed interrupted; resuming");
                    view.health().disconnected(&error.to_string());
                    if sleep_or_stop(&backoff, &mut attempt, &shutdown).await {
                        return;
                    }
                }
            }
        }
    }
}

/// Applies the feed from `last` until it fails (`Err`) or shutdown (`Ok`).
async fn follow(
    store: &dyn Store,
    scope: &Scope,
    view: &View,
    last: &mut Revision,
    attempt: &mut u32,
    shutdown: &CancellationToken,
) -> Result<(), StoreError> {
    let mut feed = tokio::select! {
        () = shutdown.cancelled() => return Ok(()),
        feed = store.subscribe(scope, *last) => feed?,
    };
    view.health().connected();
    loop {
        let first = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            item = feed.next() => item,
        };
        let Some(first) = first else {
            return Err(StoreError::unavailable("change feed ended"));
        };
        // Apply everything already waiting as one swap: a burst of writes costs one rebuild.
        let mut batch = vec![first];
        while let Some(Some(item)) = feed.next().now_or_never() {
            let failed = item.is_err();
            batch.push(item);
            if failed || batch.len() >= 1024 {
                break;
            }
        }
        let mut snapshot: Option<Snapshot> = None;
        let mut touched = Vec::new();
        let mut outcome = Ok(());
        if batch.first().is_some_and(Result::is_ok) {
            view.health().heard();
        }
        for item in batch {
            match item {
                Ok(event) if event.rev() <= *last => {} // already applied: never apply twice
                Ok(FeedEvent::Changes { rev, changes }) => {
                    let base = snapshot.take().unwrap_or_else(|| (*view.load()).clone());
                    snapshot = Some(base.apply(rev, &changes));
                    touched.extend(Snapshot::touched(&changes));
                    *last = rev;
                }
                Ok(FeedEvent::Progress { rev }) => *last = rev,
                Err(error) => {
                    outcome = Err(error);
                    break;
                }
            }
        }
        if let Some(snapshot) = snapshot {
            view.swap(snapshot);
            // After the swap: a woken waiter renders from the new snapshot.
            view.changes().notify(&touched);
        }
        view.advance(*last);
        outcome?;
        *attempt = 0;
    }
}

/// Sleeps the next back-off delay; returns `true` when shutdown came first.
pub(crate) async fn sleep_or_stop(backoff: &Backoff, attempt: &mut u32, shutdown: &CancellationToken) -> bool {
    let delay = backoff.delay(*attempt);
    *attempt = attempt.saturating_add(1);
    tokio::select! {
        () = shutdown.cancelled() => true,
        () = tokio::time::sleep(delay) => false,
    }
}

#[cfg(test)]
mod tests;
