//! The embedded SQLite backend of the imds [`Store`] trait.
//!
//! Owns [`SqliteStore`] and its [`SqliteOptions`]. One database file holds the records, their
//! claims, a change log whose `rev` column is the store's revision, and a `meta` table with
//! the head revision and the compaction point (so both survive trimming). Every write is one
//! `BEGIN IMMEDIATE` transaction, so commit order is revision order with no gaps. The file runs
//! in WAL mode with `synchronous=FULL`: a write is durable when `put`/`delete` returns.
//!
//! Feeds wake on a `tokio::sync::watch` moved after each local commit and by a
//! `PRAGMA data_version` poll, which notices commits of other processes on the same file.
//! Blocking SQLite calls run on `tokio::task::spawn_blocking`; this crate does no network I/O.
//!
//! Modules: `schema` (connection settings, versioned schema), `db` (every statement, all
//! blocking), `feed` (the change feed and the poll).

#![forbid(unsafe_code)]

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use imds_store::{Acquired, Committed, Feed, Key, Op, Page, Record, Revision, Scope, Snapshot, Store, StoreError};
use tokio::sync::watch;

mod db;
mod feed;
mod modes;
mod schema;

use crate::db::Db;

/// Settings of a [`SqliteStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// How many change-log rows to keep for resuming feeds. Older rows are trimmed after a
    /// write once the log has grown a tenth past this; resuming before them is then
    /// [`StoreError::Compacted`]. Default 100,000.
    pub retain_changes: u64,
    /// How often feeds check (`PRAGMA data_version`) for commits made by other processes on
    /// the same file. Local commits wake feeds at once. Default 1 s.
    pub poll_interval: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self { retain_changes: 100_000, poll_interval: Duration::from_secs(1) }
    }
}

/// A [`Store`] in one SQLite database file.
pub struct SqliteStore {
    shared: Arc<Shared>,
}

/// What the store, its feeds' wakeups and the poll task share.
#[derive(Debug)]
struct Shared {
    db: Arc<Db>,
    /// The highest revision known committed; feeds wait on it and end when it is dropped.
    head_tx: watch::Sender<Revision>,
    poll_interval: Duration,
    /// Whether the `data_version` poll task runs (started by the first subscribe).
    polling: AtomicBool,
}

impl Shared {
    /// Moves the known head forward (never back: local notifications may arrive out of order).
    fn advance(&self, rev: Revision) {
        self.head_tx.send_if_modified(|head| {
            let moved = rev > *head;
            if moved {
                *head = rev;
            }
            moved
        });
    }
}

impl SqliteStore {
    /// Opens the database at `path`, creating the file and its schema when missing.
    ///
    /// Fails with [`StoreError::Unavailable`] naming the path and the cause when the file
    /// cannot be opened, is not a database, or has a schema version this build does not know.
    pub fn open(path: &Path, options: SqliteOptions) -> Result<Self, StoreError> {
        let io = |error: std::io::Error| StoreError::unavailable(format!("{}: {error}", path.display()));
        modes::prepare(path).map_err(io)?;
        let db = Db::open(path, options.retain_changes)?;
        modes::tighten(path).map_err(io)?;
        let head = db.head()?;
        let (head_tx, _) = watch::channel(head);
        let shared =
            Shared { db: Arc::new(db), head_tx, poll_interval: options.poll_interval, polling: AtomicBool::new(false) };
        Ok(Self { shared: Arc::new(shared) })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        self.shared.db.path()
    }

    /// Runs a blocking database call on the blocking pool.
    async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Db) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.shared.db);
        blocking(move || f(&db)).await
    }

    /// Starts the `data_version` poll task once; it ends when the store is dropped.
    fn start_polling(&self) {
        if !self.shared.polling.swap(true, Ordering::SeqCst) {
            tokio::spawn(feed::poll(Arc::downgrade(&self.shared), self.shared.poll_interval));
        }
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path())
            .field("head", &*self.shared.head_tx.borrow())
            .finish_non_exhaustive()
    }
}

/// The most operations one commit takes: SQLite has no limit of its own, but one transaction holds
/// the write lock (and every other writer) until it commits, so a batch stays around a tenth
/// of a second.
const MAX_BATCH: usize = 5_000;

/// Runs `f` on tokio's blocking pool.
async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|err| StoreError::unavailable_from("sqlite call did not complete", err))?
}

/// Maps a rusqlite error to [`StoreError::Unavailable`], saying what was being done.
fn sql_error<C: fmt::Display>(context: C) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |err| StoreError::unavailable_from(format!("sqlite: {context}"), err)
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &Key) -> Result<Option<Record>, StoreError> {
        let key = key.clone();
        self.call(move |db| db.get(&key)).await
    }

    async fn list(&self, collection: &str, after: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        let (collection, after) = (collection.to_owned(), after.map(str::to_owned));
        self.call(move |db| db.list(&collection, after.as_deref(), limit)).await
    }

    async fn commit(&self, ops: Vec<Op>) -> Result<Committed, StoreError> {
        let committed = self.call(move |db| db.commit(ops)).await?;
        self.shared.advance(committed.rev);
        Ok(committed)
    }

    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    async fn snapshot(&self, scope: &Scope) -> Result<Snapshot, StoreError> {
        let scope = scope.clone();
        self.call(move |db| db.snapshot(&scope)).await
    }

    async fn subscribe(&self, scope: &Scope, after: Revision) -> Result<Feed, StoreError> {
        let oldest = self.call(Db::compacted_through).await?;
        if after < oldest {
            return Err(StoreError::Compacted { after, oldest });
        }
        self.start_polling();
        // The feed re-checks compaction on every read, so a trim racing this call is caught.
        Ok(feed::open(Arc::clone(&self.shared.db), self.shared.head_tx.subscribe(), scope.clone(), after))
    }

    async fn compact(&self, through: Revision) -> Result<(), StoreError> {
        self.call(move |db| db.compact(through)).await
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        self.call(Db::head).await
    }

    async fn acquire(&self, key: &Key, holder: &str, ttl: std::time::Duration) -> Result<Acquired, StoreError> {
        let (key, holder) = (key.clone(), holder.to_owned());
        self.call(move |db| db.acquire(&key, &holder, ttl)).await
    }

    async fn release(&self, key: &Key, holder: &str) -> Result<(), StoreError> {
        let (key, holder) = (key.clone(), holder.to_owned());
        self.call(move |db| db.release(&key, &holder)).await
    }
}
