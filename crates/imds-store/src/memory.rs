//! The in-process [`Store`]: records, claims and the change log in one mutex-guarded state.
//!
//! Owns [`MemoryStore`](crate::memory::MemoryStore), used by tests and by `--dev` runs without
//! a data directory. Nothing survives the process. The state sits behind a `std::sync::Mutex`
//! held only for short, synchronous sections (never across an `.await`); a `tokio::sync::watch`
//! carrying the head revision wakes feeds after each commit.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::log_feed::LogBatch;
use crate::{
    Acquired, Change, Committed, Feed, FeedEvent, Key, Op, Page, Put, Record, Revision, Scope, Snapshot, Store,
    StoreError,
};

/// How many change-log entries a feed takes from the log per lock.
const FEED_BATCH: usize = 500;

/// An in-memory [`Store`]; cheap to create, nothing is persisted.
#[derive(Debug)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    /// Carries the head revision to feeds; feeds end when the store (and so this) is dropped.
    head_tx: watch::Sender<Revision>,
}

/// Everything the store holds, guarded by one mutex.
#[derive(Debug, Default)]
struct State {
    /// Records by key; a `BTreeMap` so a collection lists in ascending id order.
    records: BTreeMap<Key, Record>,
    /// Who holds each claim.
    claims: HashMap<String, Key>,
    /// The change log in revision order.
    log: VecDeque<Entry>,
    /// The revision of the latest commit.
    head: Revision,
    /// Log entries up to and including this revision are forgotten.
    compacted_through: Revision,
    /// Leases: their holder and when they lapse, by this process's monotonic clock (tokio's, so
    /// a test that pauses time pauses leases too).
    leases: HashMap<Key, (String, Instant)>,
}

/// One change-log entry: every change committed at one revision (one per write, many for a
/// batch).
#[derive(Debug, Clone)]
struct Entry {
    rev: Revision,
    changes: Vec<Logged>,
}

/// A committed change and, for a put that moved the record to another node, the node it left
/// (so that node's feed sees a delete).
#[derive(Debug, Clone)]
struct Logged {
    change: Change,
    old_node: Option<String>,
}

impl Logged {
    /// The change as a reader of `scope` sees it, if at all.
    fn in_scope(&self, scope: &Scope) -> Option<Change> {
        match &self.change {
            Change::Put(record) if scope.holds(&record.key, record.node.as_deref()) => Some(self.change.clone()),
            Change::Put(record) if self.old_node.is_some() && scope.holds(&record.key, self.old_node.as_deref()) => {
                Some(Change::Delete { key: record.key.clone(), node: self.old_node.clone() })
            }
            Change::Put(_) => None,
            Change::Delete { key, node } => scope.holds(key, node.as_deref()).then(|| self.change.clone()),
        }
    }
}

impl MemoryStore {
    /// An empty store at `Revision(0)`.
    pub fn new() -> Self {
        let (head_tx, _) = watch::channel(Revision(0));
        Self { state: Arc::new(Mutex::new(State::default())), head_tx }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Records the changes committed at the next revision and wakes the feeds; called with the
    /// state locked.
    fn log(&self, state: &mut State, changes: Vec<Logged>) -> Revision {
        let rev = Revision(state.head.0 + 1);
        state.head = rev;
        state.log.push_back(Entry { rev, changes });
        self.head_tx.send_replace(rev);
        rev
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

/// Locks the state; a panic while it was held cannot leave it half-written (every mutation
/// happens after all checks), so a poisoned lock is still usable.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &Key) -> Result<Option<Record>, StoreError> {
        Ok(self.lock().records.get(key).cloned())
    }

    async fn list(&self, collection: &str, after: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        // A zero limit would make no progress and could not say whether more follow.
        let limit = limit.max(1);
        let state = self.lock();
        let start = Key::new(collection, after.unwrap_or(""));
        let records: Vec<Record> = state
            .records
            .range(start..)
            .take_while(|(key, _)| key.collection == collection)
            .filter(|(key, _)| after.is_none_or(|after| key.id.as_str() > after))
            .take(limit + 1)
            .map(|(_, record)| record.clone())
            .collect();
        Ok(Page::from_overfetch(records, limit))
    }

    async fn commit(&self, ops: Vec<Op>) -> Result<Committed, StoreError> {
        crate::check_ops(&ops)?;
        let ops = crate::normalize_ops(ops);
        let mut state = self.lock();
        let touched: HashSet<&Key> = ops.iter().filter(|op| !matches!(op, Op::Check { .. })).map(Op::key).collect();
        let mut before = Vec::with_capacity(ops.len());
        for op in &ops {
            let current = state.records.get(op.key()).map(|record| record.rev);
            op.expect().check(op.key(), current)?;
            before.push(current);
            let Op::Put(put) = op else { continue };
            for claim in &put.claims {
                if let Some(holder) = state.claims.get(claim) {
                    // A holder the commit deletes or rewrites releases the claim unless it
                    // lists it again, which `check_ops` already refused.
                    if *holder != put.key && !touched.contains(holder) {
                        return Err(StoreError::ClaimConflict { claim: claim.clone(), holder: holder.clone() });
                    }
                }
            }
        }
        drop(touched);
        if !ops.iter().zip(&before).any(|(op, current)| op.writes(*current)) {
            return Ok(Committed { rev: state.head, before });
        }
        // All checks passed: from here on nothing fails. Every old version goes first, so a
        // claim may move between the commit's records.
        let rev = Revision(state.head.0 + 1);
        let mut olds = Vec::with_capacity(ops.len());
        for op in &ops {
            let old = match op {
                Op::Check { .. } => None,
                Op::Put(_) | Op::Delete { .. } => state.records.remove(op.key()),
            };
            if let Some(old) = &old {
                for claim in &old.claims {
                    if state.claims.get(claim) == Some(&old.key) {
                        state.claims.remove(claim);
                    }
                }
            }
            olds.push(old);
        }
        let mut changes = Vec::with_capacity(ops.len());
        for (op, old) in ops.into_iter().zip(olds) {
            match op {
                Op::Check { .. } => {}
                Op::Delete { key, .. } => {
                    if let Some(old) = old {
                        changes.push(Logged { change: Change::Delete { key, node: old.node }, old_node: None });
                    }
                }
                Op::Put(Put { key, node, claims, value, expect: _ }) => {
                    let old_node = old.and_then(|old| old.node).filter(|old| node.as_ref() != Some(old));
                    for claim in &claims {
                        state.claims.insert(claim.clone(), key.clone());
                    }
                    let record = Record { key: key.clone(), node, claims, value, rev };
                    state.records.insert(key, record.clone());
                    changes.push(Logged { change: Change::Put(record), old_node });
                }
            }
        }
        let committed = self.log(&mut state, changes);
        debug_assert_eq!(committed, rev);
        Ok(Committed { rev, before })
    }

    fn max_batch(&self) -> usize {
        // No transaction limit in memory; callers cap their own chunks.
        usize::MAX
    }

    async fn snapshot(&self, scope: &Scope) -> Result<Snapshot, StoreError> {
        let state = self.lock();
        let records =
            state.records.values().filter(|record| scope.holds(&record.key, record.node.as_deref())).cloned().collect();
        Ok(Snapshot { rev: state.head, records })
    }

    async fn subscribe(&self, scope: &Scope, after: Revision) -> Result<Feed, StoreError> {
        let compacted_through = self.lock().compacted_through;
        if after < compacted_through {
            return Err(StoreError::Compacted { after, oldest: compacted_through });
        }
        let state = Arc::clone(&self.state);
        let read = move |scope: &Scope, after: Revision| std::future::ready(read_log(&state, scope, after));
        Ok(crate::log_feed::log_feed(self.head_tx.subscribe(), scope.clone(), after, "memory", read))
    }

    async fn compact(&self, through: Revision) -> Result<(), StoreError> {
        let mut state = self.lock();
        let through = through.min(state.head);
        if through > state.compacted_through {
            while state.log.front().is_some_and(|entry| entry.rev <= through) {
                state.log.pop_front();
            }
            state.compacted_through = through;
        }
        Ok(())
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        Ok(self.lock().head)
    }

    async fn acquire(&self, key: &Key, holder: &str, ttl: Duration) -> Result<Acquired, StoreError> {
        let now = Instant::now();
        let mut state = self.lock();
        if let Some((current, until)) = state.leases.get(key) {
            if current != holder && *until > now {
                return Ok(Acquired::HeldBy(current.clone()));
            }
        }
        state.leases.insert(key.clone(), (holder.to_owned(), now + ttl));
        Ok(Acquired::Held)
    }

    async fn release(&self, key: &Key, holder: &str) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.leases.get(key).is_some_and(|(current, _)| current == holder) {
            state.leases.remove(key);
        }
        Ok(())
    }
}

/// The events after `after`, at most one batch of log entries.
fn read_log(state: &Mutex<State>, scope: &Scope, after: Revision) -> Result<LogBatch, StoreError> {
    let state = lock(state);
    if after < state.compacted_through {
        return Err(StoreError::Compacted { after, oldest: state.compacted_through });
    }
    // The log holds exactly the revisions after `compacted_through`, one entry each.
    let skip = usize::try_from(after.0 - state.compacted_through.0).unwrap_or(usize::MAX);
    let mut events = Vec::new();
    let mut through = after;
    let mut last_queued = after;
    let mut taken = 0;
    for entry in state.log.iter().skip(skip).take(FEED_BATCH) {
        taken += 1;
        through = entry.rev;
        let changes: Vec<Change> = entry.changes.iter().filter_map(|logged| logged.in_scope(scope)).collect();
        if !changes.is_empty() {
            events.push(FeedEvent::Changes { rev: entry.rev, changes });
            last_queued = entry.rev;
        }
    }
    if taken < FEED_BATCH {
        through = through.max(state.head);
    }
    if through > last_queued {
        events.push(FeedEvent::Progress { rev: through });
    }
    Ok(LogBatch { events, through })
}
