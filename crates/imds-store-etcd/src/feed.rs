//! The change feed of the etcd store: one prefix watch, read by its own task.
//!
//! Owns the watch task. It watches the scope's prefix from `after + 1` with progress
//! notifications, asks for one whenever the watch was quiet for a progress interval (so a node
//! whose instances do not change still advances its resume point and its staleness figure),
//! turns each revision's events into one [`FeedEvent::Changes`] and queues each response's
//! events in a bounded channel (bounded in responses: etcd sends at most 1,000 revisions per
//! response). The network read never waits for the apply: when the queue is full the task drops
//! the watch (releasing etcd's buffers) and the feed ends after the queued events, so the reader
//! resumes from the last revision it applied. A cancellation naming a compaction revision
//! becomes [`StoreError::Compacted`]; any other failure [`StoreError::Unavailable`]. Dropping
//! the feed ends the task and the watch.

use std::collections::VecDeque;
use std::time::Duration;

use etcd_client::{Client, EventType, WatchOptions, WatchResponse, WatchStream};
use futures::stream;
use imds_store::{Change, Feed, FeedEvent, Revision, Scope, StoreError};
use tokio::sync::mpsc;

/// What the watch task queues: the feed events of one watch response, or the error that ended it.
type Item = Result<Vec<FeedEvent>, StoreError>;
type Receiver = mpsc::Receiver<Item>;

use crate::layout::{self, Layout};
use crate::EtcdOptions;

/// Opens a watch for `scope` after `after` and starts its task.
pub(crate) async fn open(
    client: Client,
    layout: Layout,
    scope: Scope,
    after: Revision,
    options: &EtcdOptions,
) -> Result<Feed, StoreError> {
    let watch_options =
        WatchOptions::new().with_prefix().with_start_revision(layout::etcd_revision(after) + 1).with_progress_notify();
    let unavailable = |err: etcd_client::Error| StoreError::unavailable_from("etcd: watch", err);
    let create = async {
        let mut stream =
            client.clone().watch(layout.watched(&scope), Some(watch_options)).await.map_err(unavailable)?;
        // The first answer confirms the watch (or cancels it at once).
        match stream.message().await.map_err(unavailable)? {
            Some(response) if response.canceled() => Err(cancelled(&response, after)),
            Some(_) => Ok(stream),
            None => Err(StoreError::unavailable("etcd: watch stream closed before it was created")),
        }
    };
    let stream = match tokio::time::timeout(options.call_timeout, create).await {
        Ok(stream) => stream?,
        Err(_) => {
            return Err(StoreError::unavailable(format!("etcd: watch not created within {:?}", options.call_timeout)))
        }
    };
    let (tx, rx) = mpsc::channel(options.queue.max(1));
    let task = WatchTask { stream, layout, scope, last: after, tx, progress_interval: options.progress_interval };
    tokio::spawn(task.run());
    let state = (rx, VecDeque::new());
    Ok(Box::pin(stream::unfold(state, |(mut rx, mut pending): (Receiver, VecDeque<FeedEvent>)| async move {
        loop {
            if let Some(event) = pending.pop_front() {
                return Some((Ok(event), (rx, pending)));
            }
            match rx.recv().await? {
                Ok(events) => pending.extend(events),
                Err(err) => return Some((Err(err), (rx, pending))),
            }
        }
    })))
}

/// The error a cancelled watch means.
fn cancelled(response: &WatchResponse, last: Revision) -> StoreError {
    if response.compact_revision() > 0 {
        StoreError::Compacted { after: last, oldest: layout::revision(response.compact_revision()) }
    } else {
        StoreError::unavailable(format!("etcd: watch cancelled: {:?}", response.cancel_reason()))
    }
}

/// The task reading one watch.
struct WatchTask {
    stream: WatchStream,
    layout: Layout,
    scope: Scope,
    /// Every event up to this revision was queued.
    last: Revision,
    tx: mpsc::Sender<Item>,
    progress_interval: Duration,
}

/// Why the task stopped.
enum Stop {
    /// The reader dropped the feed.
    Dropped,
    /// The queue was full: end the feed after what is queued.
    Overflow,
    /// The watch failed.
    Failed(StoreError),
}

impl WatchTask {
    async fn run(mut self) {
        let stop = self.follow().await;
        match stop {
            Stop::Dropped => {}
            Stop::Overflow => tracing::warn!(rev = %self.last, "change feed queue full; the reader resumes"),
            Stop::Failed(err) => {
                // Delivered after the queued events; the task waits for room, not for the network.
                let _ = self.tx.send(Err(err)).await;
            }
        }
        // Dropping the stream cancels the watch on the server.
    }

    async fn follow(&mut self) -> Stop {
        let mut quiet = tokio::time::interval(self.progress_interval);
        quiet.tick().await;
        let mut heard = false;
        loop {
            tokio::select! {
                () = self.tx.closed() => return Stop::Dropped,
                _ = quiet.tick() => {
                    if !heard {
                        if let Err(err) = self.stream.request_progress().await {
                            return Stop::Failed(StoreError::unavailable_from("etcd: progress request", err));
                        }
                    }
                    heard = false;
                }
                message = self.stream.message() => {
                    heard = true;
                    let response = match message {
                        Ok(Some(response)) => response,
                        Ok(None) => return Stop::Failed(StoreError::unavailable("etcd: watch stream ended")),
                        Err(err) => return Stop::Failed(StoreError::unavailable_from("etcd: watch", err)),
                    };
                    if response.canceled() {
                        return Stop::Failed(cancelled(&response, self.last));
                    }
                    let events = self.events(&response);
                    if events.is_empty() {
                        continue;
                    }
                    match self.tx.try_send(Ok(events)) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => return Stop::Overflow,
                        Err(mpsc::error::TrySendError::Closed(_)) => return Stop::Dropped,
                    }
                }
            }
        }
    }

    /// The feed events of one watch response, advancing `last`.
    fn events(&mut self, response: &WatchResponse) -> Vec<FeedEvent> {
        let mut out = Vec::new();
        if response.events().is_empty() {
            if response.created() {
                return out;
            }
            // A progress notification: every event up to the header revision was sent.
            let rev = layout::revision(response.header().map_or(0, etcd_client::ResponseHeader::revision));
            if rev > self.last {
                self.last = rev;
                out.push(FeedEvent::Progress { rev });
            }
            return out;
        }
        let mut current: Option<(Revision, Vec<Change>)> = None;
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            let rev = layout::revision(kv.mod_revision());
            if rev <= self.last {
                continue; // already delivered
            }
            if current.as_ref().is_some_and(|(at, _)| *at != rev) {
                if let Some(done) = current.take() {
                    out.push(self.finish(done));
                }
            }
            let (_, changes) = current.get_or_insert_with(|| (rev, Vec::new()));
            let Some((key, node)) = self.layout.parse_record(kv.key()) else { continue };
            if !self.scope.contains(node.as_deref()) {
                continue;
            }
            match event.event_type() {
                EventType::Put => match layout::decode_record(key, node, kv.value(), kv.mod_revision()) {
                    Ok(record) => changes.push(Change::Put(record)),
                    Err(err) => tracing::error!(%err, "skipping an unreadable record in the change feed"),
                },
                EventType::Delete => changes.push(Change::Delete { key, node }),
            }
        }
        if let Some(done) = current.take() {
            out.push(self.finish(done));
        }
        out
    }

    /// One revision's event: its changes, a move (delete + put of one key) kept as the put; a
    /// revision with nothing in scope (index or claim keys only) is progress.
    fn finish(&mut self, (rev, changes): (Revision, Vec<Change>)) -> FeedEvent {
        self.last = rev;
        let put_keys: Vec<_> = changes
            .iter()
            .filter_map(|change| match change {
                Change::Put(record) => Some(record.key.clone()),
                Change::Delete { .. } => None,
            })
            .collect();
        let changes: Vec<Change> = changes
            .into_iter()
            .filter(|change| match change {
                Change::Delete { key, .. } => !put_keys.contains(key),
                Change::Put(_) => true,
            })
            .collect();
        if changes.is_empty() {
            FeedEvent::Progress { rev }
        } else {
            FeedEvent::Changes { rev, changes }
        }
    }
}
