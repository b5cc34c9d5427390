//! The change feed of the etcd store: one prefix watch per followed prefix, merged in
//! revision order, read by one task.
//!
//! Owns the watch task. A scope follows one prefix (`all`: the deployment; a bare node: its
//! node prefix) or several (a node with the shared records: its node prefix and one per shared
//! collection, which are not one key range). Each prefix is watched from `after + 1` with progress
//! notifications. A watch is complete through the last revision it delivered or a progress
//! notification named; the task delivers a revision only once every watch is complete through
//! it, so the changes of one revision arrive as one [`FeedEvent::Changes`] (parts from both
//! prefixes together) and revisions arrive in order: the reader's resume point never passes a
//! revision one watch has not delivered yet. When one watch has delivered a revision the other
//! has not confirmed, the task asks the other for a progress notification at once (again every
//! [`CATCH_UP`] until answered: etcd answers only a watch that is caught up), and it asks any
//! watch that was quiet for a progress interval (so a node whose instances do not change still
//! advances its resume point and its staleness figure). Events are queued in a bounded channel
//! (bounded in responses: etcd sends at most 1,000 revisions per response). The network read
//! never waits for the apply: when the queue is full the task drops the watches (releasing
//! etcd's buffers) and the feed ends after the queued events, so the reader resumes from the
//! last revision it applied. A cancellation naming a compaction revision becomes
//! [`StoreError::Compacted`]; any other failure [`StoreError::Unavailable`]. Dropping the feed
//! ends the task and the watches.
//!
//! On an etcd that may confirm a watch's progress before sending its events (etcd-io/etcd#15220,
//! before 3.4.24 and 3.5.8; the member's version is asked when the feed opens), a revision that
//! only a progress notification confirmed may still have events on the way. A late event on the
//! same watch is caught ([`WatchTask::receive`]); but if the feed ends first (the member went
//! away, or the queue filled), resuming after its last revision could skip them. Such a feed
//! ends with [`StoreError::Compacted`] instead, from the first revision in doubt, so the reader
//! reloads from a snapshot.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use etcd_client::{Client, EventType, WatchOptions, WatchResponse, WatchStream};
use futures::stream;
use imds_store::{Change, Feed, FeedEvent, Revision, Scope, StoreError};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What the watch task queues: the feed events of one watch response, or the error that ended it.
type Item = Result<Vec<FeedEvent>, StoreError>;
type Receiver = mpsc::Receiver<Item>;

use crate::layout::{self, Layout};
use crate::EtcdOptions;

/// How long a lagging watch's progress request may go unanswered before it is asked again.
const CATCH_UP: Duration = Duration::from_millis(100);

/// Opens the watches for `scope` after `after` and starts their task.
pub(crate) async fn open(
    client: Client,
    layout: Layout,
    scope: Scope,
    after: Revision,
    options: &EtcdOptions,
) -> Result<Feed, StoreError> {
    let mut watches = Vec::new();
    for prefix in layout.watched(&scope) {
        let stream = match tokio::time::timeout(options.call_timeout, create(&client, prefix, after)).await {
            Ok(stream) => stream?,
            Err(_) => {
                return Err(StoreError::unavailable(format!(
                    "etcd: watch not created within {:?}",
                    options.call_timeout
                )))
            }
        };
        watches.push(Watch { stream, through: after, evented: after, heard: false, asked: None });
    }
    let early_progress = confirms_early(&client, options).await;
    let (tx, rx) = mpsc::channel(options.queue.max(1));
    let task = WatchTask {
        watches,
        layout,
        scope,
        last: after,
        pending: BTreeMap::new(),
        tx,
        progress_interval: options.progress_interval,
        early_progress,
    };
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

/// Creates one prefix watch from `after + 1`; the first answer confirms it (or cancels it at once).
async fn create(client: &Client, prefix: String, after: Revision) -> Result<WatchStream, StoreError> {
    let watch_options =
        WatchOptions::new().with_prefix().with_start_revision(layout::etcd_revision(after) + 1).with_progress_notify();
    let unavailable = |err: etcd_client::Error| StoreError::unavailable_from("etcd: watch", err);
    let mut stream = client.clone().watch(prefix, Some(watch_options)).await.map_err(unavailable)?;
    match stream.message().await.map_err(unavailable)? {
        Some(response) if response.canceled() => Err(cancelled(&response, after)),
        Some(_) => Ok(stream),
        None => Err(StoreError::unavailable("etcd: watch stream closed before it was created")),
    }
}

/// Whether the member may confirm a watch's progress before its events (etcd-io/etcd#15220:
/// fixed in 3.4.24 and 3.5.8). A member whose version cannot be read is taken to.
async fn confirms_early(client: &Client, options: &EtcdOptions) -> bool {
    match tokio::time::timeout(options.call_timeout, client.clone().status()).await {
        Ok(Ok(status)) => early_progress_release(status.version()),
        _ => true,
    }
}

/// Whether etcd `version` ("3.4.23") has etcd-io/etcd#15220.
fn early_progress_release(version: &str) -> bool {
    let mut numbers = version.split(['.', '-', '+']).map(|part| part.parse::<u64>().ok());
    match (numbers.next().flatten(), numbers.next().flatten(), numbers.next().flatten()) {
        (Some(major), Some(minor), Some(patch)) => match (major, minor) {
            (3, 4) => patch < 24,
            (3, 5) => patch < 8,
            _ => major < 3 || (major == 3 && minor < 4),
        },
        _ => true,
    }
}

/// The error a cancelled watch means.
fn cancelled(response: &WatchResponse, last: Revision) -> StoreError {
    if response.compact_revision() > 0 {
        StoreError::Compacted { after: last, oldest: layout::revision(response.compact_revision()) }
    } else {
        StoreError::unavailable(format!("etcd: watch cancelled: {:?}", response.cancel_reason()))
    }
}

/// One prefix watch of a feed.
struct Watch {
    stream: WatchStream,
    /// Every event of this prefix up to this revision was received.
    through: Revision,
    /// The newest revision an event of this watch carried (or the feed's start): what it is
    /// complete through without trusting a progress notification.
    evented: Revision,
    /// Whether a message arrived since the last quiet tick.
    heard: bool,
    /// When a catch-up progress request was last sent and not yet answered.
    asked: Option<Instant>,
}

/// The task reading a feed's watches.
struct WatchTask {
    watches: Vec<Watch>,
    layout: Layout,
    scope: Scope,
    /// Every event up to this revision was queued.
    last: Revision,
    /// Received changes not yet complete in every watch, by revision.
    pending: BTreeMap<Revision, Vec<Change>>,
    tx: mpsc::Sender<Item>,
    progress_interval: Duration,
    /// Whether the member may confirm progress before events ([`confirms_early`]).
    early_progress: bool,
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

/// What woke the task.
enum Wake {
    Dropped,
    Quiet,
    CatchUp,
    Message(usize, Result<Option<WatchResponse>, etcd_client::Error>),
}

/// The next message of any of `watches`, with the index of its watch.
async fn next_message(watches: &mut [Watch]) -> (usize, Result<Option<WatchResponse>, etcd_client::Error>) {
    let reads = watches.iter_mut().enumerate().map(|(at, watch)| {
        Box::pin(async move {
            let message = watch.stream.message().await;
            (at, message)
        })
    });
    futures::future::select_all(reads).await.0
}

impl WatchTask {
    async fn run(mut self) {
        let stop = match (self.follow().await, self.in_doubt()) {
            (Stop::Failed(StoreError::Unavailable(_)) | Stop::Overflow, Some(oldest)) => {
                tracing::warn!(
                    from = %oldest,
                    through = %self.last,
                    "the change feed ended while etcd had only confirmed progress, not sent events, for \
                     these revisions (etcd-io/etcd#15220: upgrade etcd to 3.4.24 or 3.5.8 or later); \
                     reloading from a snapshot"
                );
                Stop::Failed(StoreError::Compacted { after: self.last, oldest })
            }
            (stop, _) => stop,
        };
        match stop {
            Stop::Dropped => {}
            Stop::Overflow => tracing::warn!(rev = %self.last, "change feed queue full; the reader resumes"),
            Stop::Failed(err) => {
                // Delivered after the queued events; the task waits for room, not for the network.
                let _ = self.tx.send(Err(err)).await;
            }
        }
        // Dropping the streams cancels the watches on the server.
    }

    /// The first delivered revision that a watch's events may still have had changes for: on
    /// an etcd that confirms progress early, a revision past a watch's last event was vouched
    /// for only by a progress notification.
    fn in_doubt(&self) -> Option<Revision> {
        if !self.early_progress {
            return None;
        }
        let evented = self.watches.iter().map(|watch| watch.evented).min()?;
        (evented < self.last).then(|| Revision(evented.0 + 1))
    }

    async fn follow(&mut self) -> Stop {
        let mut quiet = tokio::time::interval(self.progress_interval);
        quiet.tick().await;
        loop {
            let catch_up = self.catch_up_at();
            let wake = {
                let Self { watches, tx, .. } = &mut *self;
                tokio::select! {
                    () = tx.closed() => Wake::Dropped,
                    _ = quiet.tick() => Wake::Quiet,
                    () = sleep_until(catch_up) => Wake::CatchUp,
                    (at, message) = next_message(watches) => Wake::Message(at, message),
                }
            };
            match wake {
                Wake::Dropped => return Stop::Dropped,
                Wake::Quiet => {
                    for watch in &mut self.watches {
                        if !watch.heard {
                            if let Err(err) = watch.stream.request_progress().await {
                                return Stop::Failed(StoreError::unavailable_from("etcd: progress request", err));
                            }
                        }
                        watch.heard = false;
                    }
                }
                Wake::CatchUp => {}
                Wake::Message(at, message) => {
                    let response = match message {
                        Ok(Some(response)) => response,
                        Ok(None) => return Stop::Failed(StoreError::unavailable("etcd: watch stream ended")),
                        Err(err) => return Stop::Failed(StoreError::unavailable_from("etcd: watch", err)),
                    };
                    if response.canceled() {
                        return Stop::Failed(cancelled(&response, self.last));
                    }
                    if let Err(err) = self.receive(at, &response) {
                        return Stop::Failed(err);
                    }
                    let events = self.ready();
                    if !events.is_empty() {
                        match self.tx.try_send(Ok(events)) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(_)) => return Stop::Overflow,
                            Err(mpsc::error::TrySendError::Closed(_)) => return Stop::Dropped,
                        }
                    }
                }
            }
            if let Err(err) = self.ask_laggards().await {
                return Stop::Failed(err);
            }
        }
    }

    /// Takes in one response of watch `at`: its in-scope changes by revision, and how far the
    /// watch is complete.
    ///
    /// etcd before 3.4.24 and 3.5.8 (etcd-io/etcd#15220) may answer a progress request for a
    /// watch that is still catching up with the current revision, before the watch's older
    /// events. Such an event is still delivered in order when no later revision has gone out;
    /// when one has, the feed ends with [`StoreError::Compacted`], so the reader reloads from
    /// a snapshot instead of silently missing the change.
    fn receive(&mut self, at: usize, response: &WatchResponse) -> Result<(), StoreError> {
        let watch = &mut self.watches[at];
        watch.heard = true;
        if response.events().is_empty() {
            if !response.created() {
                // A progress notification: every event up to the header revision was sent.
                let rev = layout::revision(response.header().map_or(0, etcd_client::ResponseHeader::revision));
                watch.through = watch.through.max(rev);
                watch.asked = None;
            }
            return Ok(());
        }
        let mut through = watch.through;
        let mut evented = watch.evented;
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            let rev = layout::revision(kv.mod_revision());
            evented = evented.max(rev);
            if rev <= self.last {
                tracing::warn!(
                    %rev,
                    delivered = %self.last,
                    "etcd confirmed a watch's progress before sending its events (etcd-io/etcd#15220: \
                     upgrade etcd to 3.4.24 or 3.5.8 or later); reloading from a snapshot"
                );
                return Err(StoreError::Compacted { after: self.last, oldest: rev });
            }
            through = through.max(rev);
            let changes = self.pending.entry(rev).or_default();
            let Some((key, node)) = self.layout.parse_record(kv.key()) else { continue };
            if !self.scope.holds(&key, node.as_deref()) {
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
        // etcd never splits a revision across responses: the watch has all of `through`.
        watch.through = through;
        watch.evented = evented;
        Ok(())
    }

    /// The revision every watch is complete through.
    fn complete(&self) -> Revision {
        self.watches.iter().map(|watch| watch.through).min().unwrap_or(self.last)
    }

    /// The feed events every watch is complete for, advancing `last`.
    fn ready(&mut self) -> Vec<FeedEvent> {
        let complete = self.complete();
        let mut out = Vec::new();
        let mut delivered = self.last;
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() > complete {
                break;
            }
            let (rev, changes) = entry.remove_entry();
            if let Some(event) = finish(rev, changes) {
                out.push(event);
                delivered = rev;
            }
        }
        if complete > self.last {
            self.last = complete;
            if complete > delivered {
                // Revisions with nothing in scope (index or claim keys, other nodes' records).
                out.push(FeedEvent::Progress { rev: complete });
            }
        }
        out
    }

    /// When to ask lagging watches again, if changes wait for them.
    fn catch_up_at(&self) -> Option<Instant> {
        self.waiting_for()
            .and_then(|needed| {
                self.watches.iter().filter(|watch| watch.through < needed).filter_map(|watch| watch.asked).min()
            })
            .map(|asked| asked + CATCH_UP)
    }

    /// The newest revision received that some watch has not confirmed yet.
    fn waiting_for(&self) -> Option<Revision> {
        let newest = *self.pending.last_key_value()?.0;
        (newest > self.complete()).then_some(newest)
    }

    /// Asks every watch behind a received revision for a progress notification, unless it was
    /// asked less than [`CATCH_UP`] ago.
    async fn ask_laggards(&mut self) -> Result<(), StoreError> {
        let Some(needed) = self.waiting_for() else { return Ok(()) };
        let now = Instant::now();
        for watch in &mut self.watches {
            if watch.through >= needed || watch.asked.is_some_and(|asked| now < asked + CATCH_UP) {
                continue;
            }
            watch.asked = Some(now);
            watch
                .stream
                .request_progress()
                .await
                .map_err(|err| StoreError::unavailable_from("etcd: progress request", err))?;
        }
        Ok(())
    }
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One revision's event: its changes, a move (delete + put of one key) kept as the put; `None`
/// for a revision with nothing in scope.
fn finish(rev: Revision, changes: Vec<Change>) -> Option<FeedEvent> {
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
    (!changes.is_empty()).then_some(FeedEvent::Changes { rev, changes })
}

#[cfg(test)]
mod tests {
    use super::early_progress_release;

    #[test]
    fn releases_before_the_progress_fix_are_known() {
        for version in ["3.4.23", "3.4.0", "3.5.7", "3.3.27", "2.3.8", "unknown", ""] {
            assert!(early_progress_release(version), "{version}");
        }
        for version in ["3.4.24", "3.4.37", "3.5.8", "3.5.21", "3.6.0", "4.0.0-alpha"] {
            assert!(!early_progress_release(version), "{version}");
        }
    }
}
