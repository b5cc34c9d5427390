//! The change feed of a backend that keeps its change log locally (memory, SQLite): one
//! polling loop over a batch reader, woken by a `watch` of the head revision.
//!
//! Owns [`log_feed`] and [`LogBatch`]. The backend moves the head watch after each commit
//! (and, for SQLite, when another process committed); the feed marks the head seen, reads one
//! batch after its resume point, yields its events, and waits on the watch only when a read
//! found nothing new. The stream runs only when polled: dropping it stops all its work.

use std::collections::VecDeque;
use std::future::Future;

use futures::stream;
use tokio::sync::watch;

use crate::{Feed, FeedEvent, Revision, Scope, StoreError};

/// One read of a change log: the events after the resume point, grouped by revision (then
/// `Progress` when the read ended on changes out of scope), and the revision they cover
/// everything up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogBatch {
    /// The events, in revision order.
    pub events: Vec<FeedEvent>,
    /// The reader has seen everything up to here after applying `events`.
    pub through: Revision,
}

/// A feed of `scope` after `after`: `read(scope, last)` is called for each batch, and the
/// feed waits on `head_rx` when a batch is empty. An error from `read` is yielded and ends the
/// feed; so does the watch closing (the store dropped), as [`StoreError::Unavailable`] naming
/// `store`.
pub fn log_feed<F, Fut>(
    head_rx: watch::Receiver<Revision>,
    scope: Scope,
    after: Revision,
    store: &'static str,
    read: F,
) -> Feed
where
    F: FnMut(&Scope, Revision) -> Fut + Send + 'static,
    Fut: Future<Output = Result<LogBatch, StoreError>> + Send + 'static,
{
    let state = LogFeed { head_rx, scope, last: after, pending: VecDeque::new(), done: false, store, read };
    Box::pin(stream::unfold(state, LogFeed::next))
}

/// The state of one feed, threaded through [`stream::unfold`].
struct LogFeed<F> {
    head_rx: watch::Receiver<Revision>,
    scope: Scope,
    /// Everything up to and including this revision has been queued.
    last: Revision,
    /// Events read, not yet yielded.
    pending: VecDeque<FeedEvent>,
    /// Set once an error was yielded; the stream ends after it.
    done: bool,
    store: &'static str,
    read: F,
}

impl<F, Fut> LogFeed<F>
where
    F: FnMut(&Scope, Revision) -> Fut + Send + 'static,
    Fut: Future<Output = Result<LogBatch, StoreError>> + Send + 'static,
{
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
            match (self.read)(&self.scope, self.last).await {
                Ok(LogBatch { events, through }) => {
                    self.pending.extend(events);
                    self.last = self.last.max(through);
                }
                Err(err) => {
                    self.done = true;
                    return Some((Err(err), self));
                }
            }
            if self.pending.is_empty() && self.head_rx.changed().await.is_err() {
                self.done = true;
                let err = StoreError::unavailable(format!("{} store closed", self.store));
                return Some((Err(err), self));
            }
        }
    }
}
