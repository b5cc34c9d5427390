//! The change feed of the SQLite store, and the `data_version` poll that wakes it.
//!
//! Owns the feed's batch reader, run by `imds_store::log_feed` (the loop the memory store
//! shares): it waits on the store's `watch<Revision>` (moved by local commits and by [`poll`],
//! which notices commits of other processes) and reads `changes` after its resume point in
//! batches on a blocking thread. The stream runs only when polled, so dropping it stops all
//! its work; only the poll task outlives a feed, and it ends with the store.

use std::sync::{Arc, Weak};
use std::time::Duration;

use imds_store::log_feed::{log_feed, LogBatch};
use imds_store::{Feed, Revision, Scope, StoreError};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::db::{Batch, Db};
use crate::{blocking, Shared};

/// How many change rows one feed read takes.
const BATCH: u32 = 500;

/// A feed of `scope` resuming after `after`.
pub(crate) fn open(db: Arc<Db>, head_rx: watch::Receiver<Revision>, scope: Scope, after: Revision) -> Feed {
    let read = move |scope: &Scope, last: Revision| {
        let (db, scope) = (Arc::clone(&db), scope.clone());
        async move {
            match blocking(move || db.read_changes(&scope, last, BATCH)).await? {
                Batch::Events { events, through } => Ok(LogBatch { events, through }),
                Batch::Compacted(oldest) => Err(StoreError::Compacted { after: last, oldest }),
            }
        }
    };
    log_feed(head_rx, scope, after, "sqlite", read)
}

/// Polls `PRAGMA data_version` every `interval` and moves the head watch when another
/// connection (another process on the same file) committed. Ends when the store is dropped.
pub(crate) async fn poll(shared: Weak<Shared>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut seen = None;
    loop {
        ticker.tick().await;
        let Some(shared) = shared.upgrade() else { return };
        if shared.head_tx.receiver_count() == 0 {
            // No feed to wake; look again once one subscribes.
            seen = None;
            continue;
        }
        let db = Arc::clone(&shared.db);
        match blocking(move || db.poll(seen)).await {
            Ok((version, head)) => {
                seen = Some(version);
                if let Some(head) = head {
                    shared.advance(head);
                }
            }
            Err(err) => tracing::warn!(path = %shared.db.path().display(), "polling for changes: {err}"),
        }
    }
}
