//! The change feed of the SQLite store, and the `data_version` poll that wakes it.
//!
//! Owns the feed stream: it waits on the store's `watch<Revision>` (moved by local commits and
//! by [`poll`], which notices commits of other processes), reads `changes` after its resume
//! point in batches on a blocking thread, and yields them grouped by revision. The stream runs
//! only when polled, so dropping it stops all its work; no task outlives it.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::stream;
use imds_store::{Feed, FeedEvent, Revision, Scope, StoreError};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::db::{Batch, Db};
use crate::{blocking, Shared};

/// How many change rows one feed read takes.
const BATCH: u32 = 500;

/// A feed of `scope` resuming after `after`.
pub(crate) fn open(db: Arc<Db>, head_rx: watch::Receiver<Revision>, scope: Scope, after: Revision) -> Feed {
    let state = FeedState { db, head_rx, scope, last: after, pending: VecDeque::new(), done: false };
    Box::pin(stream::unfold(state, FeedState::next))
}

/// The state of one feed, threaded through [`stream::unfold`].
struct FeedState {
    db: Arc<Db>,
    head_rx: watch::Receiver<Revision>,
    scope: Scope,
    /// Everything up to and including this revision has been queued.
    last: Revision,
    /// Events read, not yet yielded.
    pending: VecDeque<FeedEvent>,
    /// Set once an error was yielded; the stream ends after it.
    done: bool,
}

impl FeedState {
    async fn next(mut self) -> Option<(Result<FeedEvent, StoreError>, Self)> {
        loop {
            if self.done {
                return None;
            }
            if let Some(event) = self.pending.pop_front() {
                return Some((Ok(event), self));
            }
            // Mark the current head seen before reading, so a commit after the read wakes us.
            self.head_rx.borrow_and_update();
            let (db, scope, last) = (Arc::clone(&self.db), self.scope.clone(), self.last);
            match blocking(move || db.read_changes(&scope, last, BATCH)).await {
                Ok(Batch::Events { events, through }) => {
                    self.pending.extend(events);
                    self.last = through;
                }
                Ok(Batch::Compacted(oldest)) => {
                    self.done = true;
                    return Some((Err(StoreError::Compacted { after: self.last, oldest }), self));
                }
                Err(err) => {
                    self.done = true;
                    return Some((Err(err), self));
                }
            }
            if self.pending.is_empty() && self.head_rx.changed().await.is_err() {
                self.done = true;
                return Some((Err(StoreError::Unavailable("sqlite store closed".into())), self));
            }
        }
    }
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
