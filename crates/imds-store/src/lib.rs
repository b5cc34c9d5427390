//! The durable source of truth of imds, behind one narrow trait.
//!
//! A [`Store`] holds revisioned records (opaque bytes under a [`Key`]) and a change feed.
//! Every write commits at a new [`Revision`], strictly increasing in commit order, and the
//! feed yields every committed change of a [`Scope`] after a given revision, so a reader that
//! remembers the last revision it applied resumes without missing or repeating a change.
//!
//! The store knows nothing of instances: the server encodes records (canonical JSON) and
//! declares the *claims* a record holds (an IP address, a MAC). A claim is unique across the
//! store; a write that would take a claim held by another record fails with
//! [`StoreError::ClaimConflict`] and changes nothing. This is how "two instances never share
//! an address" holds atomically on every backend (etcd: one `Txn` over claim keys).
//!
//! A store also keeps *leases* ([`Store::acquire`], [`Store::release`]): one holder at a time
//! per key, lapsing by the store's own clock when the holder stops renewing (etcd: an etcd
//! lease), so a fleet elects one node for a task without trusting the nodes' clocks.
//!
//! Backends: [`memory::MemoryStore`] here (tests, `--dev` without a data directory), SQLite in
//! `imds-store-sqlite`, etcd in `imds-store-etcd`. Every backend passes the `conformance` suite (feature `test-util`).
//!
//! This crate does no network I/O and knows no HTTP.

#![forbid(unsafe_code)]

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;

pub mod backoff;
pub mod log_feed;
/// The in-memory backend.
pub mod memory;
pub mod update;

#[cfg(feature = "test-util")]
pub mod conformance;
#[cfg(feature = "test-util")]
pub mod unreliable;

/// A store-wide revision: strictly increasing in commit order; `0` means "before any write".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision(pub u64);

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Which records a record belongs to: its kind of data and its id within that kind.
///
/// Collections are fixed names chosen by the server (`"instances"`, later `"mmds"`,
/// `"secrets"`...). Both parts are non-empty and contain no `/` (backends build paths from them).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// The kind of record, e.g. `"instances"`.
    pub collection: String,
    /// The record's id within its collection.
    pub id: String,
}

impl Key {
    /// A key from its two parts.
    pub fn new(collection: impl Into<String>, id: impl Into<String>) -> Self {
        Self { collection: collection.into(), id: id.into() }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.collection, self.id)
    }
}

/// Which part of the store a reader follows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Every record (a single-box deployment).
    All,
    /// Only records placed on one serving node (scale-out: each hypervisor follows its own).
    Node(String),
    /// What a scale-out node follows: the records placed on `node` and, of the `shared`
    /// collections, the records placed on no node (the deployment's roles and keys), in one
    /// revision order. Records of a shared collection are expected to stay unplaced (a feed
    /// shows one placed on a node only to that node).
    NodeAndShared {
        /// The serving node.
        node: String,
        /// The collections whose unplaced records every node follows.
        shared: Vec<String>,
    },
}

impl Scope {
    /// Whether a record placed on `node` is placed in this scope (for a node, on that node:
    /// shared records are followed by every node but placed on none).
    pub fn contains(&self, node: Option<&str>) -> bool {
        match self {
            Scope::All => true,
            Scope::Node(want) | Scope::NodeAndShared { node: want, .. } => node == Some(want.as_str()),
        }
    }

    /// Whether a reader of this scope follows the record `key` placed on `node`.
    pub fn holds(&self, key: &Key, node: Option<&str>) -> bool {
        match self {
            Scope::NodeAndShared { shared, .. } if node.is_none() => shared.contains(&key.collection),
            _ => self.contains(node),
        }
    }

    /// The serving node of a node scope.
    pub fn node(&self) -> Option<&str> {
        match self {
            Scope::All => None,
            Scope::Node(node) | Scope::NodeAndShared { node, .. } => Some(node),
        }
    }

    /// The scope a server follows: a node scope also follows the unplaced records of the
    /// `shared` collections; `All` already holds everything.
    pub fn with_shared(self, shared: &[&str]) -> Scope {
        match self {
            Scope::All => Scope::All,
            Scope::Node(node) | Scope::NodeAndShared { node, .. } => {
                Scope::NodeAndShared { node, shared: shared.iter().map(|s| (*s).to_owned()).collect() }
            }
        }
    }
}

/// A record as stored: its value, placement, claims and the revision that last wrote it.
#[derive(Clone, PartialEq, Eq)]
pub struct Record {
    /// Where the record lives.
    pub key: Key,
    /// The serving node the record is placed on; `None` means every node's (single box).
    pub node: Option<String>,
    /// The unique claims the record holds (e.g. `"ipv4/10.0.0.1"`), sorted, without repeats.
    pub claims: Vec<String>,
    /// The encoded record; the store never looks inside.
    pub value: Vec<u8>,
    /// The revision of the write that produced this version (the admin API's ETag).
    pub rev: Revision,
}

impl fmt::Debug for Record {
    // The value may hold user-data or secrets and is long: show only its size.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("key", &self.key)
            .field("node", &self.node)
            .field("claims", &self.claims)
            .field("value_len", &self.value.len())
            .field("rev", &self.rev)
            .finish()
    }
}

/// What must be true of a key's current version for a write to go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Write whatever is there.
    Any,
    /// The key must not exist (create only).
    Absent,
    /// The key must exist, at any revision.
    Present,
    /// The key must exist and have been last written at exactly this revision (`If-Match`).
    Revision(Revision),
}

impl Expect {
    /// Checks this precondition against the key's current revision (`None`: absent), with the
    /// error every backend reports when it does not hold.
    pub fn check(self, key: &Key, current: Option<Revision>) -> Result<(), StoreError> {
        match (self, current) {
            (Expect::Any, _) | (Expect::Absent, None) | (Expect::Present, Some(_)) => Ok(()),
            (Expect::Absent, Some(actual)) => Err(StoreError::AlreadyExists { key: key.clone(), actual }),
            (Expect::Present | Expect::Revision(_), None) => Err(StoreError::NotFound { key: key.clone() }),
            (Expect::Revision(expected), Some(actual)) if expected == actual => Ok(()),
            (Expect::Revision(expected), Some(actual)) => {
                Err(StoreError::RevisionMismatch { key: key.clone(), expected, actual })
            }
        }
    }
}

/// One write: a whole record under a key.
#[derive(Debug, Clone)]
pub struct Put {
    /// Where to write.
    pub key: Key,
    /// The serving node the record is placed on.
    pub node: Option<String>,
    /// The unique claims the new version holds; claims of the old version not listed are released.
    pub claims: Vec<String>,
    /// The encoded record.
    pub value: Vec<u8>,
    /// The precondition.
    pub expect: Expect,
}

/// The outcome of a successful put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// The revision the write committed at.
    pub rev: Revision,
    /// Whether the key did not exist before.
    pub created: bool,
}

/// One operation of a [`Store::commit`].
#[derive(Debug, Clone)]
pub enum Op {
    /// Creates or replaces a record, subject to its precondition and claims.
    Put(Put),
    /// Removes a record, subject to `expect`, releasing its claims. With [`Expect::Any`] (or
    /// [`Expect::Absent`]) a missing key is no error: there is nothing to remove.
    Delete {
        /// The record to remove.
        key: Key,
        /// The precondition.
        expect: Expect,
    },
    /// Writes nothing: the commit goes ahead only if `expect` holds for `key`.
    Check {
        /// The record to check.
        key: Key,
        /// The precondition.
        expect: Expect,
    },
}

impl Op {
    /// The key the operation names.
    pub fn key(&self) -> &Key {
        match self {
            Op::Put(put) => &put.key,
            Op::Delete { key, .. } | Op::Check { key, .. } => key,
        }
    }

    /// The operation's precondition.
    pub fn expect(&self) -> Expect {
        match self {
            Op::Put(put) => put.expect,
            Op::Delete { expect, .. } | Op::Check { expect, .. } => *expect,
        }
    }

    /// Whether the operation changes its key, given the key's current revision (`None`:
    /// absent): a put always does, a delete only of a present key, a check never.
    pub fn writes(&self, current: Option<Revision>) -> bool {
        match self {
            Op::Put(_) => true,
            Op::Delete { .. } => current.is_some(),
            Op::Check { .. } => false,
        }
    }
}

/// The outcome of a successful [`Store::commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The revision every change of the commit committed at; the store's current revision
    /// when the commit changed nothing.
    pub rev: Revision,
    /// Per operation, in order: the revision of its key just before the commit (`None`:
    /// absent). A put with `None` created its record; a delete with `None` removed nothing.
    pub before: Vec<Option<Revision>>,
}

/// Checks what [`Store::commit`] requires of its operations before they reach the store:
/// every key named once, and no claim listed by two puts. Backends call it first.
pub fn check_ops(ops: &[Op]) -> Result<(), StoreError> {
    let mut keys = std::collections::HashSet::with_capacity(ops.len());
    let mut claims: std::collections::HashMap<&str, &Key> = std::collections::HashMap::new();
    for op in ops {
        if !keys.insert(op.key()) {
            return Err(StoreError::DuplicateKey { key: op.key().clone() });
        }
        let Op::Put(put) = op else { continue };
        for claim in &put.claims {
            match claims.insert(claim.as_str(), &put.key) {
                Some(holder) if *holder != put.key => {
                    return Err(StoreError::ClaimConflict { claim: claim.clone(), holder: holder.clone() });
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Sorts and de-duplicates the claims of every put, the form [`Record::claims`] promises.
pub fn normalize_ops(ops: Vec<Op>) -> Vec<Op> {
    ops.into_iter()
        .map(|op| match op {
            Op::Put(mut put) => {
                put.claims.sort();
                put.claims.dedup();
                Op::Put(put)
            }
            other => other,
        })
        .collect()
}

/// What [`Store::acquire`] found of a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// The caller holds the lease now, for the TTL it asked for as the store measures time.
    Held,
    /// Another holder has it; its name.
    HeldBy(String),
}

/// One page of a collection, in ascending id order.
#[derive(Debug, Clone)]
pub struct Page {
    /// The records of the page.
    pub records: Vec<Record>,
    /// The id to pass as `after` for the next page; `None` when this is the last page.
    pub next_after: Option<String>,
}

impl Page {
    /// A page from up to `limit + 1` records in id order: fetching one more than the page holds
    /// is how a backend learns whether another page follows.
    pub fn from_overfetch(mut records: Vec<Record>, limit: usize) -> Self {
        let next_after = if records.len() > limit {
            records.truncate(limit);
            records.last().map(|record| record.key.id.clone())
        } else {
            None
        };
        Page { records, next_after }
    }
}

/// A consistent view of a scope at exactly one revision.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The store's revision the snapshot was taken at (`Revision(0)` for an empty store).
    pub rev: Revision,
    /// Every record in scope, in any order.
    pub records: Vec<Record>,
}

/// One change in the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A record was created or replaced; the new version.
    Put(Record),
    /// A record was deleted.
    Delete {
        /// The deleted record's key.
        key: Key,
        /// The node it was placed on.
        node: Option<String>,
    },
}

/// An item of the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedEvent {
    /// Every change of the scope committed at `rev` (one transaction).
    Changes {
        /// The revision the changes committed at.
        rev: Revision,
        /// The changes, in scope.
        changes: Vec<Change>,
    },
    /// Nothing in scope changed up to and including `rev`; readers may advance their resume point.
    Progress {
        /// The revision the reader has now seen everything up to.
        rev: Revision,
    },
}

impl FeedEvent {
    /// The revision a reader has seen everything up to after applying this event.
    pub fn rev(&self) -> Revision {
        match self {
            FeedEvent::Changes { rev, .. } | FeedEvent::Progress { rev } => *rev,
        }
    }
}

/// The change feed: events in revision order. An `Err` item ends the stream; the reader then
/// re-subscribes from its last revision ([`StoreError::Unavailable`]) or re-snapshots
/// ([`StoreError::Compacted`]).
pub type Feed = BoxStream<'static, Result<FeedEvent, StoreError>>;

/// What went wrong in a store call.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// The key does not exist (a delete, or a put expecting a present key).
    #[error("{key} does not exist")]
    NotFound {
        /// The key asked for.
        key: Key,
    },
    /// The key exists but a create-only write expected it absent.
    #[error("{key} already exists at revision {actual}")]
    AlreadyExists {
        /// The key asked for.
        key: Key,
        /// Its current revision.
        actual: Revision,
    },
    /// The key's revision is not the expected one.
    #[error("{key} is at revision {actual}, not {expected}")]
    RevisionMismatch {
        /// The key asked for.
        key: Key,
        /// The revision the write expected.
        expected: Revision,
        /// The key's current revision.
        actual: Revision,
    },
    /// A claim of the write is held by another record.
    #[error("claim {claim} is held by {holder}")]
    ClaimConflict {
        /// The contested claim.
        claim: String,
        /// The record that holds it.
        holder: Key,
    },
    /// The resume point is older than the oldest change the store still keeps.
    #[error("revision {after} is compacted; the oldest resumable revision is {oldest}")]
    Compacted {
        /// The revision the reader asked to resume after.
        after: Revision,
        /// The oldest revision one may resume after.
        oldest: Revision,
    },
    /// The record is larger than the backend accepts.
    #[error("record of {size} bytes exceeds the store's limit of {limit} bytes")]
    TooLarge {
        /// The encoded size.
        size: usize,
        /// The backend's limit.
        limit: usize,
    },
    /// A commit names the same key twice ([`Store::commit`]); nothing was written.
    #[error("{key} appears more than once in one batch")]
    DuplicateKey {
        /// The repeated key.
        key: Key,
    },
    /// A batch needs more operations in one transaction than the backend allows (etcd's
    /// `--max-txn-ops`); nothing was written. Send fewer puts per batch.
    #[error("batch needs {ops} operations in one transaction; the store allows {limit}")]
    BatchTooLarge {
        /// The operations the batch needs.
        ops: usize,
        /// The backend's limit.
        limit: usize,
    },
    /// A read-modify-write ([`update::update`]) lost every attempt to concurrent writes;
    /// nothing of it was written. Try again.
    #[error("{key} kept changing: {attempts} attempts lost to concurrent writes")]
    Contended {
        /// The record being updated.
        key: Key,
        /// How many attempts were made.
        attempts: usize,
    },
    /// The backend cannot be reached or failed; the call may be retried.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] Unavailable),
}

impl StoreError {
    /// [`StoreError::Unavailable`] saying what failed.
    pub fn unavailable(message: impl Into<String>) -> Self {
        StoreError::Unavailable(Unavailable { message: message.into(), source: None })
    }

    /// [`StoreError::Unavailable`] saying what was being done, caused by `source` (kept as
    /// the error's [`source`](std::error::Error::source)).
    pub fn unavailable_from(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Unavailable(Unavailable { message: message.into(), source: Some(Arc::new(source)) })
    }
}

/// Why a backend is unavailable: what failed or was being done, and the error that stopped it.
/// Displays as `message: source`; two compare equal when they display the same.
#[derive(Debug, Clone)]
pub struct Unavailable {
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Unavailable {
    /// What failed or was being done, without the cause.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {source}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Unavailable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|source| source as &(dyn std::error::Error + 'static))
    }
}

impl PartialEq for Unavailable {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for Unavailable {}

/// The durable source of truth: revisioned records and their change feed.
///
/// Every method is atomic: a write commits its record, its claims and its change-log entry
/// together or not at all. Writes are durable when the call returns `Ok`.
#[async_trait::async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// The current version of one record.
    async fn get(&self, key: &Key) -> Result<Option<Record>, StoreError>;

    /// Up to `limit` records of a collection with ids greater than `after`, ascending by id.
    async fn list(&self, collection: &str, after: Option<&str>, limit: usize) -> Result<Page, StoreError>;

    /// Commits several operations in one transaction: every change commits at ONE revision,
    /// delivered by feeds as one [`FeedEvent::Changes`] holding every change in the reader's
    /// scope, or nothing commits and the store (revision included) is unchanged.
    ///
    /// Before touching the store, the operations themselves are checked: a key named twice
    /// fails with [`StoreError::DuplicateKey`], a claim listed by two puts with
    /// [`StoreError::ClaimConflict`] naming the earlier put's key as holder. Then, in order,
    /// each precondition and each claim of a put is checked against the store; the first
    /// failure is returned. Claims are checked against the store *after* the commit: a claim
    /// held by a record the commit deletes, or rewrites without it, may move to another put of
    /// the commit. A commit that changes nothing (no operations, only checks, deletes of
    /// missing keys) takes no revision and sends no event. Backends may refuse more than
    /// [`Store::max_batch`] operations.
    async fn commit(&self, ops: Vec<Op>) -> Result<Committed, StoreError>;

    /// The most operations [`Store::commit`] takes in one transaction (at least 1). On etcd it
    /// assumes records of a few claims; a commit of records with many claims may still fail
    /// with [`StoreError::BatchTooLarge`].
    fn max_batch(&self) -> usize;

    /// Creates or replaces a record, subject to its precondition and claims: a commit of one
    /// [`Op::Put`].
    async fn put(&self, put: Put) -> Result<Written, StoreError> {
        let committed = self.commit(vec![Op::Put(put)]).await?;
        Ok(Written { rev: committed.rev, created: committed.before.first().is_some_and(Option::is_none) })
    }

    /// Creates or replaces several records at one revision: a commit of puts only. Returns
    /// one [`Written`] per put, in order, all with the same revision; an empty batch writes
    /// nothing and returns an empty list.
    async fn put_batch(&self, puts: Vec<Put>) -> Result<Vec<Written>, StoreError> {
        if puts.is_empty() {
            return Ok(Vec::new());
        }
        let committed = self.commit(puts.into_iter().map(Op::Put).collect()).await?;
        let rev = committed.rev;
        Ok(committed.before.iter().map(|before| Written { rev, created: before.is_none() }).collect())
    }

    /// Deletes a record, subject to its precondition; returns the revision of the delete.
    /// Unlike an [`Op::Delete`], a missing key fails with [`StoreError::NotFound`] whatever
    /// the precondition.
    async fn delete(&self, key: &Key, expect: Expect) -> Result<Revision, StoreError> {
        let expect = match expect {
            Expect::Any => Expect::Present,
            other => other,
        };
        let committed = self.commit(vec![Op::Delete { key: key.clone(), expect }]).await?;
        if committed.before.first().is_some_and(Option::is_none) {
            return Err(StoreError::NotFound { key: key.clone() });
        }
        Ok(committed.rev)
    }

    /// Every record in scope at one consistent revision.
    async fn snapshot(&self, scope: &Scope) -> Result<Snapshot, StoreError>;

    /// The changes in scope committed after `after`, then live changes as they commit.
    ///
    /// Fails (at once or as the stream's first item) with [`StoreError::Compacted`] when
    /// `after` is older than the oldest kept change. A backend may send
    /// [`FeedEvent::Progress`] at any time; it must send one when the store's revision moves
    /// past changes that are all out of scope, at least when the feed is otherwise idle.
    async fn subscribe(&self, scope: &Scope, after: Revision) -> Result<Feed, StoreError>;

    /// Forgets change-log entries up to and including `through`; resuming after an older
    /// revision then fails with [`StoreError::Compacted`]. Records are untouched.
    async fn compact(&self, through: Revision) -> Result<(), StoreError>;

    /// The store's current revision (that of its latest commit).
    async fn revision(&self) -> Result<Revision, StoreError>;

    /// Takes the lease `key` for `holder` for `ttl`, or renews it for another `ttl` when
    /// `holder` already holds it through this store value; [`Acquired::HeldBy`] names the
    /// holder when another one has it.
    ///
    /// At most one holder has a lease at a time. A holder that stops renewing loses it `ttl`
    /// after its last successful call, as measured by the store (etcd: its lease TTL, which
    /// etcd may round up to its minimum; memory: this process's monotonic clock; SQLite: the
    /// host's clock), and learns so from its next call. A lease is not a record: reads,
    /// snapshots and feeds never show it, whatever its collection.
    async fn acquire(&self, key: &Key, holder: &str, ttl: Duration) -> Result<Acquired, StoreError>;

    /// Gives up `holder`'s lease `key` at once, so the next caller takes it; nothing happens
    /// when `holder` does not hold it.
    async fn release(&self, key: &Key, holder: &str) -> Result<(), StoreError>;
}
