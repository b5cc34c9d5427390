//! Opening a database file: connection settings and the versioned schema.
//!
//! Owns the pragmas every connection runs with (WAL, `synchronous=FULL`, foreign keys, a busy
//! timeout) and the schema, created on first open and versioned with `PRAGMA user_version`.
//! Nothing here reads or writes records.

use std::path::Path;
use std::time::Duration;

use imds_store::StoreError;
use rusqlite::{Connection, TransactionBehavior};

use crate::sql_error;

/// The schema version this build creates and understands.
pub(crate) const SCHEMA_VERSION: i64 = 3;

/// How long a connection waits for another writer (e.g. a second process) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Version 1: records, their claims, the change log and the head/compaction counters.
///
/// `changes.rev` is the revision. It is assigned explicitly from `meta.head` (not by SQLite's
/// rowid allocation) so a trimmed-empty log never reuses a revision. A put that moved a record
/// off a node keeps that node in `old_node`, so the old node's feed can show a delete.
const SCHEMA_V1: &str = "
CREATE TABLE records (
    collection TEXT NOT NULL,
    id         TEXT NOT NULL,
    node       TEXT,
    claims     TEXT NOT NULL,
    value      BLOB NOT NULL,
    rev        INTEGER NOT NULL,
    PRIMARY KEY (collection, id)
);
CREATE INDEX records_by_node ON records (node);
CREATE TABLE claims (
    claim      TEXT PRIMARY KEY NOT NULL,
    collection TEXT NOT NULL,
    id         TEXT NOT NULL,
    FOREIGN KEY (collection, id) REFERENCES records (collection, id) ON DELETE CASCADE
);
CREATE INDEX claims_by_holder ON claims (collection, id);
CREATE TABLE changes (
    rev        INTEGER PRIMARY KEY,
    collection TEXT NOT NULL,
    id         TEXT NOT NULL,
    node       TEXT,
    op         INTEGER NOT NULL,
    value      BLOB,
    claims     TEXT,
    old_node   TEXT
);
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
);
INSERT INTO meta (key, value) VALUES ('head', 0), ('compacted_through', 0);
";

/// Version 2: a revision may hold many changes (a batch write), so `changes` is keyed by its
/// own `seq` (commit order within a revision) with an index on `rev`. Migrating from version 1
/// copies the log row for row.
const SCHEMA_V2: &str = "
CREATE TABLE changes_v2 (
    seq        INTEGER PRIMARY KEY,
    rev        INTEGER NOT NULL,
    collection TEXT NOT NULL,
    id         TEXT NOT NULL,
    node       TEXT,
    op         INTEGER NOT NULL,
    value      BLOB,
    claims     TEXT,
    old_node   TEXT
);
INSERT INTO changes_v2 (rev, collection, id, node, op, value, claims, old_node)
    SELECT rev, collection, id, node, op, value, claims, old_node FROM changes ORDER BY rev;
DROP TABLE changes;
ALTER TABLE changes_v2 RENAME TO changes;
CREATE INDEX changes_by_rev ON changes (rev);
";

/// Version 3: leases, apart from the records (they take no revision and no feed shows them).
/// `expires_ms` is Unix milliseconds by the host's clock: the processes sharing a file share
/// one host, so one clock.
const SCHEMA_V3: &str = "
CREATE TABLE leases (
    collection TEXT NOT NULL,
    id         TEXT NOT NULL,
    holder     TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (collection, id)
);
";

/// Opens one connection to `path` (creating the file) with the store's settings.
pub(crate) fn connect(path: &Path) -> Result<Connection, StoreError> {
    let context = |what: &str| format!("opening {}: {what}", path.display());
    let conn = Connection::open(path).map_err(sql_error(&context("open")))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_error(&context("busy_timeout")))?;
    // The first statement that reads the file: a file that is not a database fails here.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(sql_error(&context("journal_mode")))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::unavailable(context(&format!("journal mode is {mode}, not wal"))));
    }
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
        .map_err(sql_error(&context("pragmas")))?;
    Ok(conn)
}

/// Creates the schema in a new file, or checks the version of an existing one.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let context = |what: &str| format!("preparing the schema of {}: {what}", path.display());
    // Immediate: two processes opening a new file at once must not both create the schema.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_error(&context("begin")))?;
    let version: i64 =
        tx.query_row("PRAGMA user_version", [], |row| row.get(0)).map_err(sql_error(&context("user_version")))?;
    match version {
        0..=2 => {
            if version == 0 {
                tx.execute_batch(SCHEMA_V1).map_err(sql_error(&context("create tables")))?;
            }
            if version <= 1 {
                tx.execute_batch(SCHEMA_V2).map_err(sql_error(&context("migrate to version 2")))?;
            }
            tx.execute_batch(SCHEMA_V3).map_err(sql_error(&context("migrate to version 3")))?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(sql_error(&context("set user_version")))?;
        }
        SCHEMA_VERSION => {}
        other => {
            return Err(StoreError::unavailable(context(&format!(
                "schema version {other} is not supported (this build knows version {SCHEMA_VERSION})"
            ))));
        }
    }
    tx.commit().map_err(sql_error(&context("commit")))
}
