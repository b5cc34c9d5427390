//! The blocking half of the SQLite store: two connections and every statement.
//!
//! Owns [`Db`]: one writer connection (every write is one `BEGIN IMMEDIATE` transaction) and
//! one reader connection (point reads, listings, snapshots, feed batches, the `data_version`
//! poll), each behind a `std::sync::Mutex`. Every method blocks; callers run them on
//! `tokio::task::spawn_blocking`. Nothing here knows about tasks or wakeups.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use imds_store::{
    Acquired, Change, Committed, FeedEvent, Key, Op, Page, Put, Record, Revision, Scope, Snapshot, StoreError,
};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OptionalExtension, Row, ToSql, Transaction, TransactionBehavior};

use crate::{schema, sql_error};

/// `changes.op` of a put.
const OP_PUT: i64 = 0;
/// `changes.op` of a delete.
const OP_DELETE: i64 = 1;

/// The columns of `records` that make a [`Record`], in [`record_from_row`]'s order.
const RECORD_COLUMNS: &str = "collection, id, node, claims, value, rev";

/// The database: its path, its two connections and the change-log retention.
#[derive(Debug)]
pub(crate) struct Db {
    path: PathBuf,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    retain_changes: u64,
}

/// What one feed read found.
#[derive(Debug)]
pub(crate) enum Batch {
    /// The reader's resume point was trimmed away; the oldest one may resume after.
    Compacted(Revision),
    /// The events after the resume point, and the revision they cover everything up to.
    Events {
        /// In-scope changes grouped by revision, then `Progress` if the batch ended on
        /// out-of-scope changes.
        events: Vec<FeedEvent>,
        /// The reader has seen everything up to here after applying `events`.
        through: Revision,
    },
}

impl Db {
    /// Opens (creating if needed) the database at `path`.
    pub(crate) fn open(path: &Path, retain_changes: u64) -> Result<Self, StoreError> {
        let mut writer = schema::connect(path)?;
        schema::migrate(&mut writer, path)?;
        let reader = schema::connect(path)?;
        Ok(Self { path: path.to_owned(), writer: Mutex::new(writer), reader: Mutex::new(reader), retain_changes })
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        // A panic mid-statement leaves no open transaction behind (rusqlite rolls back on
        // drop), so the connection is still good.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current version of one record.
    pub(crate) fn get(&self, key: &Key) -> Result<Option<Record>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn
            .prepare_cached(&format!("SELECT {RECORD_COLUMNS} FROM records WHERE collection = ?1 AND id = ?2"))
            .map_err(sql_error("preparing get"))?;
        stmt.query_row(params![key.collection, key.id], record_from_row)
            .optional()
            .map_err(sql_error(format_args!("reading {key}")))
    }

    /// One page of a collection.
    pub(crate) fn list(&self, collection: &str, after: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        // A zero limit would make no progress and could not say whether more follow.
        let limit = limit.max(1);
        let conn = self.reader();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM records WHERE collection = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
            ))
            .map_err(sql_error("preparing list"))?;
        let fetch = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
        let records = stmt
            .query_map(params![collection, after.unwrap_or(""), fetch], record_from_row)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sql_error(format_args!("listing {collection}")))?;
        Ok(Page::from_overfetch(records, limit))
    }

    /// Commits operations in one transaction (see `Store::commit`): every check runs before
    /// the first statement that writes.
    pub(crate) fn commit(&self, ops: Vec<Op>) -> Result<Committed, StoreError> {
        imds_store::check_ops(&ops)?;
        let ops = imds_store::normalize_ops(ops);
        let touched: HashSet<&Key> = ops.iter().filter(|op| !matches!(op, Op::Check { .. })).map(Op::key).collect();
        let mut conn = self.writer();
        let tx = begin_write(&mut conn)?;
        let mut currents = Vec::with_capacity(ops.len());
        {
            let mut holder = tx
                .prepare_cached("SELECT collection, id FROM claims WHERE claim = ?1")
                .map_err(sql_error("preparing the claim check"))?;
            for op in &ops {
                let current = current_version(&tx, op.key())?;
                op.expect().check(op.key(), current.as_ref().map(|(rev, _)| *rev))?;
                if let Op::Put(put) = op {
                    for claim in &put.claims {
                        let found: Option<Key> = holder
                            .query_row([claim], |row| Ok(Key::new(row.get::<_, String>(0)?, row.get::<_, String>(1)?)))
                            .optional()
                            .map_err(sql_error(format_args!("checking claim {claim}")))?;
                        // A holder the commit deletes or rewrites releases the claim
                        // (`check_ops` refused a claim listed twice).
                        if let Some(holder) = found.filter(|holder| *holder != put.key && !touched.contains(holder)) {
                            return Err(StoreError::ClaimConflict { claim: claim.clone(), holder });
                        }
                    }
                }
                currents.push(current);
            }
        }
        drop(touched);
        let before: Vec<Option<Revision>> = currents.iter().map(|c| c.as_ref().map(|(rev, _)| *rev)).collect();
        if !ops.iter().zip(&before).any(|(op, current)| op.writes(*current)) {
            let head = meta(&tx, "head")?;
            tx.finish().map_err(sql_error("ending a commit that changes nothing"))?;
            return Ok(Committed { rev: head, before });
        }
        let rev = next_revision(&tx)?;
        {
            // Release every old claim of the commit first, so a claim may move between its
            // records.
            let mut release = tx
                .prepare_cached("DELETE FROM claims WHERE collection = ?1 AND id = ?2")
                .map_err(sql_error("preparing the claim release"))?;
            for op in ops.iter().filter(|op| !matches!(op, Op::Check { .. })) {
                let key = op.key();
                release
                    .execute(params![key.collection, key.id])
                    .map_err(sql_error(format_args!("releasing the claims of {key}")))?;
            }
        }
        {
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO records (collection, id, node, claims, value, rev) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (collection, id) DO UPDATE
                     SET node = excluded.node, claims = excluded.claims, value = excluded.value, rev = excluded.rev",
                )
                .map_err(sql_error("preparing a record write"))?;
            let mut remove = tx
                .prepare_cached("DELETE FROM records WHERE collection = ?1 AND id = ?2")
                .map_err(sql_error("preparing a record delete"))?;
            let mut insert = tx
                .prepare_cached("INSERT INTO claims (claim, collection, id) VALUES (?1, ?2, ?3)")
                .map_err(sql_error("preparing a claim write"))?;
            let mut log = tx
                .prepare_cached(
                    "INSERT INTO changes (rev, collection, id, node, op, value, claims, old_node)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(sql_error("preparing a change-log write"))?;
            for (op, current) in ops.iter().zip(currents) {
                match op {
                    Op::Check { .. } => {}
                    Op::Delete { key, .. } => {
                        let Some((_, node)) = current else { continue };
                        let context = format!("deleting {key}");
                        remove.execute(params![key.collection, key.id]).map_err(sql_error(&context))?;
                        log.execute(params![
                            Rev(rev),
                            key.collection,
                            key.id,
                            node,
                            OP_DELETE,
                            None::<Vec<u8>>,
                            None::<String>,
                            None::<String>
                        ])
                        .map_err(sql_error(&context))?;
                    }
                    Op::Put(Put { key, node, claims, value, expect: _ }) => {
                        let joined = join_claims(claims);
                        let context = format!("writing {key}");
                        upsert
                            .execute(params![key.collection, key.id, node, joined, value, Rev(rev)])
                            .map_err(sql_error(&context))?;
                        for claim in claims {
                            insert.execute(params![claim, key.collection, key.id]).map_err(sql_error(&context))?;
                        }
                        let old_node = current.and_then(|(_, old)| old).filter(|old| node.as_ref() != Some(old));
                        log.execute(params![Rev(rev), key.collection, key.id, node, OP_PUT, value, joined, old_node])
                            .map_err(sql_error(&context))?;
                    }
                }
            }
        }
        self.finish_write(tx, rev)?;
        Ok(Committed { rev, before })
    }

    /// Takes or renews the lease `key` for `holder` until `ttl` from now by the host's clock, or
    /// names its live holder; one `BEGIN IMMEDIATE` transaction, so two processes never both
    /// take it.
    pub(crate) fn acquire(&self, key: &Key, holder: &str, ttl: std::time::Duration) -> Result<Acquired, StoreError> {
        let now = unix_ms();
        let mut conn = self.writer();
        let tx = begin_write(&mut conn)?;
        let current: Option<(String, i64)> = tx
            .query_row(
                "SELECT holder, expires_ms FROM leases WHERE collection = ?1 AND id = ?2",
                params![key.collection, key.id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(sql_error(format_args!("reading lease {key}")))?;
        if let Some((current, expires)) = current {
            if current != holder && expires > now {
                return Ok(Acquired::HeldBy(current));
            }
        }
        let expires = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        tx.execute(
            "INSERT OR REPLACE INTO leases (collection, id, holder, expires_ms) VALUES (?1, ?2, ?3, ?4)",
            params![key.collection, key.id, holder, expires],
        )
        .map_err(sql_error(format_args!("taking lease {key}")))?;
        tx.commit().map_err(sql_error(format_args!("committing lease {key}")))?;
        Ok(Acquired::Held)
    }

    /// Drops `holder`'s lease `key`, if it holds it.
    pub(crate) fn release(&self, key: &Key, holder: &str) -> Result<(), StoreError> {
        let mut conn = self.writer();
        let tx = begin_write(&mut conn)?;
        tx.execute(
            "DELETE FROM leases WHERE collection = ?1 AND id = ?2 AND holder = ?3",
            params![key.collection, key.id, holder],
        )
        .map_err(sql_error(format_args!("releasing lease {key}")))?;
        tx.commit().map_err(sql_error(format_args!("committing the release of lease {key}")))
    }

    /// Moves the head to `rev`, trims the change log when it has grown past its retention by
    /// a tenth (so trimming is occasional, not per write), and commits.
    fn finish_write(&self, tx: Transaction<'_>, rev: Revision) -> Result<(), StoreError> {
        set_meta(&tx, "head", rev)?;
        let compacted = meta(&tx, "compacted_through")?;
        let slack = (self.retain_changes / 10).max(1);
        if rev.0 - compacted.0.min(rev.0) > self.retain_changes.saturating_add(slack) {
            trim(&tx, Revision(rev.0 - self.retain_changes))?;
        }
        tx.commit().map_err(sql_error(format_args!("committing revision {rev}")))
    }

    /// Every record in scope, with the head revision, in one read transaction.
    pub(crate) fn snapshot(&self, scope: &Scope) -> Result<Snapshot, StoreError> {
        let mut conn = self.reader();
        let tx = conn.transaction().map_err(sql_error("beginning a snapshot"))?;
        let rev = meta(&tx, "head")?;
        let records = match scope {
            Scope::All => {
                let mut stmt = tx
                    .prepare(&format!("SELECT {RECORD_COLUMNS} FROM records"))
                    .map_err(sql_error("preparing snapshot"))?;
                let rows = stmt.query_map([], record_from_row).and_then(|rows| rows.collect());
                rows.map_err(sql_error("reading the snapshot"))?
            }
            Scope::Node(node) | Scope::NodeAndShared { node, .. } => {
                let shared = matches!(scope, Scope::NodeAndShared { .. });
                let mut stmt = tx
                    .prepare(&format!("SELECT {RECORD_COLUMNS} FROM records WHERE node = ?1 OR (?2 AND node IS NULL)"))
                    .map_err(sql_error("preparing snapshot"))?;
                let rows = stmt.query_map(params![node, shared], record_from_row).and_then(|rows| rows.collect());
                let rows: Vec<Record> = rows.map_err(sql_error(format_args!("reading the snapshot of node {node}")))?;
                rows.into_iter().filter(|record| scope.holds(&record.key, record.node.as_deref())).collect()
            }
        };
        tx.finish().map_err(sql_error("ending a snapshot"))?;
        Ok(Snapshot { rev, records })
    }

    /// The head revision.
    pub(crate) fn head(&self) -> Result<Revision, StoreError> {
        meta(&self.reader(), "head")
    }

    /// The revision change-log entries are forgotten up to.
    pub(crate) fn compacted_through(&self) -> Result<Revision, StoreError> {
        meta(&self.reader(), "compacted_through")
    }

    /// Forgets change-log entries up to `through` (at most the head).
    pub(crate) fn compact(&self, through: Revision) -> Result<(), StoreError> {
        let mut conn = self.writer();
        let tx = begin_write(&mut conn)?;
        let through = through.min(meta(&tx, "head")?);
        if through > meta(&tx, "compacted_through")? {
            trim(&tx, through)?;
        }
        tx.commit().map_err(sql_error("committing a compaction"))
    }

    /// `PRAGMA data_version` of the reader connection and, when it differs from `seen`, the head.
    ///
    /// The version changes whenever another connection (our writer, or another process)
    /// commits, so an unchanged version means nothing new to read.
    pub(crate) fn poll(&self, seen: Option<i64>) -> Result<(i64, Option<Revision>), StoreError> {
        let conn = self.reader();
        let version: i64 =
            conn.query_row("PRAGMA data_version", [], |row| row.get(0)).map_err(sql_error("reading data_version"))?;
        if seen == Some(version) {
            return Ok((version, None));
        }
        Ok((version, Some(meta(&conn, "head")?)))
    }

    /// Up to `limit` in-scope change rows after `after`, grouped into feed events.
    pub(crate) fn read_changes(&self, scope: &Scope, after: Revision, limit: u32) -> Result<Batch, StoreError> {
        let mut conn = self.reader();
        let tx = conn.transaction().map_err(sql_error("beginning a feed read"))?;
        let compacted = meta(&tx, "compacted_through")?;
        if after < compacted {
            return Ok(Batch::Compacted(compacted));
        }
        let head = meta(&tx, "head")?;
        let columns = "rev, collection, id, node, op, value, claims, old_node, seq";
        // `?3` is the node, or NULL for every node.
        let node = scope.node();
        // `?5`: whether unplaced records are followed too (filtered by collection below).
        let shared = matches!(scope, Scope::NodeAndShared { .. });
        let filter = "(?3 IS NULL OR node = ?3 OR old_node = ?3 OR (?5 AND node IS NULL))";
        let mut rows: Vec<ChangeRow> = {
            let mut stmt = tx
                .prepare_cached(&format!(
                    "SELECT {columns} FROM changes WHERE rev > ?1 AND {filter} ORDER BY rev, seq LIMIT ?2"
                ))
                .map_err(sql_error("preparing a feed read"))?;
            let rows = stmt
                .query_map(params![Rev(after), limit, node, 0, shared], ChangeRow::from_row)
                .and_then(|rows| rows.collect());
            rows.map_err(sql_error(format_args!("reading changes after {after}")))?
        };
        let full = rows.len() >= usize::try_from(limit).unwrap_or(usize::MAX);
        if let (true, Some(last)) = (full, rows.last()) {
            // A batch's revision is delivered whole: read the rest of the last one.
            let (rev, seq) = (last.rev, last.seq);
            let mut stmt = tx
                .prepare_cached(&format!(
                    "SELECT {columns} FROM changes WHERE rev = ?1 AND {filter} AND seq > ?4 ORDER BY seq LIMIT ?2"
                ))
                .map_err(sql_error("preparing a feed read"))?;
            let rest: Vec<ChangeRow> = stmt
                .query_map(params![Rev(rev), u32::MAX, node, seq, shared], ChangeRow::from_row)
                .and_then(|rows| rows.collect())
                .map_err(sql_error(format_args!("reading the changes of revision {rev}")))?;
            rows.extend(rest);
        }
        tx.finish().map_err(sql_error("ending a feed read"))?;

        // A short batch read everything up to the head; a full one only up to its last row.
        let mut through = if full { rows.last().map_or(after, |row| row.rev) } else { head };
        through = through.max(after);
        let mut events: Vec<FeedEvent> = Vec::new();
        let mut last_event = after;
        for row in rows {
            let rev = row.rev;
            let Some(change) = row.into_change(scope) else { continue };
            match events.last_mut() {
                Some(FeedEvent::Changes { rev: last, changes }) if *last == rev => changes.push(change),
                _ => events.push(FeedEvent::Changes { rev, changes: vec![change] }),
            }
            last_event = rev;
        }
        if through > last_event {
            events.push(FeedEvent::Progress { rev: through });
        }
        Ok(Batch::Events { events, through })
    }
}

/// One row of `changes`.
#[derive(Debug)]
struct ChangeRow {
    rev: Revision,
    key: Key,
    node: Option<String>,
    op: i64,
    value: Option<Vec<u8>>,
    claims: Option<String>,
    old_node: Option<String>,
    /// Commit order within the log.
    seq: i64,
}

impl ChangeRow {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            rev: row.get::<_, Rev>(0)?.0,
            key: Key::new(row.get::<_, String>(1)?, row.get::<_, String>(2)?),
            node: row.get(3)?,
            op: row.get(4)?,
            value: row.get(5)?,
            claims: row.get(6)?,
            old_node: row.get(7)?,
            seq: row.get(8)?,
        })
    }

    /// The change as a reader of `scope` sees it: a put moved off the scope's node is a delete
    /// there.
    fn into_change(self, scope: &Scope) -> Option<Change> {
        let Self { rev, key, node, op, value, claims, old_node, seq: _ } = self;
        if op == OP_DELETE {
            return scope.holds(&key, node.as_deref()).then_some(Change::Delete { key, node });
        }
        if scope.holds(&key, node.as_deref()) {
            let claims = split_claims(claims.as_deref().unwrap_or(""));
            return Some(Change::Put(Record { key, node, claims, value: value.unwrap_or_default(), rev }));
        }
        (old_node.is_some() && scope.holds(&key, old_node.as_deref())).then_some(Change::Delete { key, node: old_node })
    }
}

/// The host's clock in Unix milliseconds.
fn unix_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// Begins a write transaction, taking the database's write lock at once.
fn begin_write<'c>(conn: &'c mut MutexGuard<'_, Connection>) -> Result<Transaction<'c>, StoreError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_error("beginning a write"))
}

/// The revision the write in `tx` commits at: one past the head, with no gaps.
fn next_revision(tx: &Transaction<'_>) -> Result<Revision, StoreError> {
    let head = meta(tx, "head")?;
    head.0.checked_add(1).map(Revision).ok_or_else(|| StoreError::unavailable("revisions exhausted"))
}

/// Deletes change rows up to `through` and records the compaction point.
fn trim(tx: &Transaction<'_>, through: Revision) -> Result<(), StoreError> {
    tx.execute("DELETE FROM changes WHERE rev <= ?1", [Rev(through)])
        .map_err(sql_error(format_args!("trimming the change log through {through}")))?;
    set_meta(tx, "compacted_through", through)
}

/// A revision counter of the `meta` table.
fn meta(conn: &Connection, key: &str) -> Result<Revision, StoreError> {
    conn.prepare_cached("SELECT value FROM meta WHERE key = ?1")
        .and_then(|mut stmt| stmt.query_row([key], |row| row.get::<_, Rev>(0)))
        .map(|rev| rev.0)
        .map_err(sql_error(format_args!("reading meta {key}")))
}

fn set_meta(conn: &Connection, key: &str, value: Revision) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE meta SET value = ?2 WHERE key = ?1")
        .and_then(|mut stmt| stmt.execute(params![key, Rev(value)]))
        .map(drop)
        .map_err(sql_error(format_args!("writing meta {key}")))
}

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<Record> {
    Ok(Record {
        key: Key::new(row.get::<_, String>(0)?, row.get::<_, String>(1)?),
        node: row.get(2)?,
        claims: split_claims(&row.get::<_, String>(3)?),
        value: row.get(4)?,
        rev: row.get::<_, Rev>(5)?.0,
    })
}

/// Claims are stored `\n`-joined: a claim never contains a newline.
fn join_claims(claims: &[String]) -> String {
    claims.join("\n")
}

fn split_claims(joined: &str) -> Vec<String> {
    if joined.is_empty() {
        Vec::new()
    } else {
        joined.split('\n').map(str::to_owned).collect()
    }
}

/// The revision and node of `key`'s current version, inside a write transaction.
fn current_version(
    tx: &rusqlite::Transaction<'_>,
    key: &Key,
) -> Result<Option<(Revision, Option<String>)>, StoreError> {
    tx.query_row(
        "SELECT rev, node FROM records WHERE collection = ?1 AND id = ?2",
        params![key.collection, key.id],
        |row| Ok((row.get::<_, Rev>(0)?.0, row.get(1)?)),
    )
    .optional()
    .map_err(sql_error(format_args!("reading {key}")))
}

/// A [`Revision`] as an SQLite integer (revisions stay far below `i64::MAX`).
#[derive(Debug, Clone, Copy)]
struct Rev(Revision);

impl ToSql for Rev {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        i64::try_from(self.0 .0)
            .map(ToSqlOutput::from)
            .map_err(|err| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))
    }
}

impl FromSql for Rev {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let raw = i64::column_result(value)?;
        u64::try_from(raw).map(|rev| Rev(Revision(rev))).map_err(|_| FromSqlError::OutOfRange(raw))
    }
}
