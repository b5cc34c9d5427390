//! What only a file-backed store must do: survive reopening, share a file between processes
//! (two stores stand in for two processes), trim its change log, and refuse foreign files.

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use imds_store::{Change, Expect, Feed, FeedEvent, Key, Put, Revision, Scope, Store, StoreError};
use imds_store_sqlite::{SqliteOptions, SqliteStore};

const WAIT: Duration = Duration::from_secs(10);

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, SqliteOptions::default()).expect("open the store")
}

fn put(id: &str, node: Option<&str>, claims: &[&str], value: &[u8]) -> Put {
    Put {
        key: Key::new("instances", id),
        node: node.map(str::to_owned),
        claims: claims.iter().map(|claim| (*claim).to_owned()).collect(),
        value: value.to_vec(),
        expect: Expect::Any,
    }
}

/// The next `Changes` event, skipping progress.
async fn next_changes(feed: &mut Feed) -> (Revision, Vec<Change>) {
    loop {
        match tokio::time::timeout(WAIT, feed.next()).await.expect("a feed item in time") {
            Some(Ok(FeedEvent::Changes { rev, changes })) => return (rev, changes),
            Some(Ok(FeedEvent::Progress { .. })) => {}
            other => panic!("feed gave {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_keeps_records_claims_revision_and_feed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imds.db");
    let mut revs = Vec::new();
    let (kept, head) = {
        let store = open(&path);
        for i in 0..5 {
            let id = format!("i-{i}");
            let claim = format!("ip/{i}");
            revs.push(store.put(put(&id, Some("n1"), &[&claim], id.as_bytes())).await.unwrap().rev);
        }
        revs.push(store.delete(&Key::new("instances", "i-4"), Expect::Any).await.unwrap());
        let kept = store.get(&Key::new("instances", "i-2")).await.unwrap().unwrap();
        (kept, store.revision().await.unwrap())
    };
    assert_eq!(head, revs[5]);

    let store = open(&path);
    assert_eq!(store.revision().await.unwrap(), head);
    assert_eq!(store.get(&Key::new("instances", "i-2")).await.unwrap(), Some(kept));
    assert_eq!(store.get(&Key::new("instances", "i-4")).await.unwrap(), None);
    assert_eq!(store.list("instances", None, 10).await.unwrap().records.len(), 4);
    let err = store.put(put("other", None, &["ip/3"], b"v")).await.unwrap_err();
    assert_eq!(err, StoreError::ClaimConflict { claim: "ip/3".into(), holder: Key::new("instances", "i-3") });
    // i-4's claim was released by its delete.
    store.put(put("other", None, &["ip/4"], b"v")).await.unwrap();

    // Resuming from an old revision replays the rest of the log, then live writes.
    let mut feed = store.subscribe(&Scope::All, revs[1]).await.unwrap();
    for rev in &revs[2..] {
        assert_eq!(next_changes(&mut feed).await.0, *rev);
    }
    let (rev, _) = next_changes(&mut feed).await;
    assert_eq!(rev, Revision(head.0 + 1), "the first write after reopening continues the sequence");
    let next = store.put(put("late", None, &[], b"v")).await.unwrap().rev;
    assert_eq!(next, Revision(head.0 + 2));
    assert_eq!(next_changes(&mut feed).await.0, next);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_store_on_the_file_sees_writes_through_its_feed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imds.db");
    let options = SqliteOptions { poll_interval: Duration::from_millis(20), ..SqliteOptions::default() };
    let first = SqliteStore::open(&path, options.clone()).unwrap();
    let second = SqliteStore::open(&path, options).unwrap();
    let mut second_feed = second.subscribe(&Scope::Node("n1".into()), Revision(0)).await.unwrap();
    let mut first_feed = first.subscribe(&Scope::All, Revision(0)).await.unwrap();

    let mut revs = Vec::new();
    for i in 0..3 {
        revs.push(first.put(put(&format!("i-{i}"), Some("n1"), &[&format!("ip/{i}")], b"v")).await.unwrap().rev);
    }
    for rev in &revs {
        let (got, changes) = next_changes(&mut second_feed).await;
        assert_eq!(got, *rev);
        assert!(matches!(&changes[..], [Change::Put(record)] if record.rev == *rev));
    }

    // Writes go both ways and share one revision sequence and one claim index.
    let theirs = second.put(put("j", Some("n2"), &["ip/9"], b"v")).await.unwrap().rev;
    assert_eq!(theirs, Revision(revs[2].0 + 1));
    for rev in revs.iter().chain([&theirs]) {
        assert_eq!(next_changes(&mut first_feed).await.0, *rev);
    }
    let err = first.put(put("k", None, &["ip/9"], b"v")).await.unwrap_err();
    assert_eq!(err, StoreError::ClaimConflict { claim: "ip/9".into(), holder: Key::new("instances", "j") });
    assert_eq!(first.revision().await.unwrap(), theirs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trimming_compacts_old_resume_points_and_keeps_recent_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imds.db");
    let retain = 10;
    let options = SqliteOptions { retain_changes: retain, ..SqliteOptions::default() };
    let store = SqliteStore::open(&path, options.clone()).unwrap();
    for i in 0..50 {
        store.put(put(&format!("i-{i}"), None, &[], b"v")).await.unwrap();
    }
    let head = store.revision().await.unwrap();
    assert_eq!(head, Revision(50));
    assert_eq!(store.list("instances", None, 100).await.unwrap().records.len(), 50, "trimming touched records");

    let oldest = match store.subscribe(&Scope::All, Revision(0)).await {
        Err(StoreError::Compacted { after: Revision(0), oldest }) => oldest,
        Err(err) => panic!("expected Compacted, got {err}"),
        Ok(_) => panic!("resuming from the start survived trimming"),
    };
    // The log keeps at least `retain` rows and at most a tenth (here: one row) more.
    assert!(oldest.0 <= head.0 - retain && oldest.0 >= head.0 - retain - 2, "oldest {oldest}");

    let recent = Revision(head.0 - 5);
    let mut feed = store.subscribe(&Scope::All, recent).await.unwrap();
    for rev in recent.0 + 1..=head.0 {
        assert_eq!(next_changes(&mut feed).await.0, Revision(rev));
    }
    drop(feed);
    drop(store);

    // The compaction point survives reopening.
    let store = SqliteStore::open(&path, options).unwrap();
    assert!(matches!(store.subscribe(&Scope::All, Revision(1)).await, Err(StoreError::Compacted { .. })));
    assert!(store.subscribe(&Scope::All, oldest).await.is_ok());
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "these are not the tables you are looking for\n".repeat(100)).unwrap();
    match SqliteStore::open(&path, SqliteOptions::default()) {
        Err(StoreError::Unavailable(cause)) => {
            let message = cause.to_string();
            assert!(message.contains("not a database"), "{message}");
            assert!(message.contains("notes.txt"), "{message}");
            let source = std::error::Error::source(&cause).expect("the SQLite error is kept as the source");
            assert!(source.to_string().contains("not a database"), "{source}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_newer_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imds.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    match SqliteStore::open(&path, SqliteOptions::default()) {
        Err(StoreError::Unavailable(cause)) => assert!(cause.to_string().contains("schema version 99"), "{cause}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn feeds_end_when_the_store_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("imds.db"));
    let mut feed = store.subscribe(&Scope::All, Revision(0)).await.unwrap();
    drop(store);
    match tokio::time::timeout(WAIT, feed.next()).await.expect("the feed ends in time") {
        Some(Err(StoreError::Unavailable(_))) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(tokio::time::timeout(WAIT, feed.next()).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_longer_than_a_feed_read_arrives_as_one_event() {
    // A feed reads 500 change rows at a time; a batch of 1,200 must still be one event.
    const N: usize = 1_200;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("imds.db"));
    let before = store.put(put("first", Some("n1"), &[], b"f")).await.unwrap().rev;
    let puts: Vec<Put> = (0..N)
        .map(|i| {
            let node = if i % 3 == 0 { "n2" } else { "n1" };
            put(&format!("i-{i:04}"), Some(node), &[&format!("ip/{i}")], b"v")
        })
        .collect();
    let written = store.put_batch(puts).await.unwrap();
    let rev = written[0].rev;
    assert_eq!(rev, Revision(before.0 + 1));
    let after = store.put(put("last", Some("n1"), &[], b"l")).await.unwrap().rev;

    let mut all = store.subscribe(&Scope::All, before).await.unwrap();
    let (got, changes) = next_changes(&mut all).await;
    assert_eq!((got, changes.len()), (rev, N));
    assert_eq!(next_changes(&mut all).await.0, after, "the next write is its own event");
    let mut n2 = store.subscribe(&Scope::Node("n2".into()), before).await.unwrap();
    let (got, changes) = next_changes(&mut n2).await;
    assert_eq!((got, changes.len()), (rev, N.div_ceil(3)));

    // Reopened, the batch is still one revision of N records.
    drop((all, n2, store));
    let store = open(&dir.path().join("imds.db"));
    let snapshot = store.snapshot(&Scope::All).await.unwrap();
    assert_eq!(snapshot.records.iter().filter(|record| record.rev == rev).count(), N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_file_is_migrated_keeping_records_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imds.db");
    {
        // The version 1 schema as it shipped, with one record and its change row.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE records (collection TEXT NOT NULL, id TEXT NOT NULL, node TEXT, claims TEXT NOT NULL,
                 value BLOB NOT NULL, rev INTEGER NOT NULL, PRIMARY KEY (collection, id));
             CREATE INDEX records_by_node ON records (node);
             CREATE TABLE claims (claim TEXT PRIMARY KEY NOT NULL, collection TEXT NOT NULL, id TEXT NOT NULL,
                 FOREIGN KEY (collection, id) REFERENCES records (collection, id) ON DELETE CASCADE);
             CREATE INDEX claims_by_holder ON claims (collection, id);
             CREATE TABLE changes (rev INTEGER PRIMARY KEY, collection TEXT NOT NULL, id TEXT NOT NULL, node TEXT,
                 op INTEGER NOT NULL, value BLOB, claims TEXT, old_node TEXT);
             CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL);
             INSERT INTO meta (key, value) VALUES ('head', 1), ('compacted_through', 0);
             INSERT INTO records VALUES ('instances', 'old', NULL, 'ip/1', x'6f6c64', 1);
             INSERT INTO claims VALUES ('ip/1', 'instances', 'old');
             INSERT INTO changes VALUES (1, 'instances', 'old', NULL, 0, x'6f6c64', 'ip/1', NULL);
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let store = open(&path);
    let old = store.get(&Key::new("instances", "old")).await.unwrap().unwrap();
    assert_eq!((old.value.as_slice(), old.rev, old.claims), (b"old".as_slice(), Revision(1), vec!["ip/1".to_owned()]));
    let mut feed = store.subscribe(&Scope::All, Revision(0)).await.unwrap();
    assert_eq!(next_changes(&mut feed).await.0, Revision(1), "the old log row is still there");
    let written = store.put_batch(vec![put("a", None, &["ip/2"], b"a"), put("b", None, &[], b"b")]).await.unwrap();
    assert_eq!(written[0].rev, Revision(2));
    let (rev, changes) = next_changes(&mut feed).await;
    assert_eq!((rev, changes.len()), (Revision(2), 2));
    let err = store.put(put("c", None, &["ip/1"], b"c")).await.unwrap_err();
    assert_eq!(err, StoreError::ClaimConflict { claim: "ip/1".into(), holder: Key::new("instances", "old") });
    // Leases came with version 3.
    let lease = Key::new("refreshers", "app");
    let ttl = std::time::Duration::from_secs(60);
    assert_eq!(store.acquire(&lease, "hv-a", ttl).await.unwrap(), imds_store::Acquired::Held);
    assert_eq!(store.acquire(&lease, "hv-b", ttl).await.unwrap(), imds_store::Acquired::HeldBy("hv-a".into()));
    // A second opener of the file (another process, say) sees the same lease.
    let other = open(&path);
    assert_eq!(other.acquire(&lease, "hv-b", ttl).await.unwrap(), imds_store::Acquired::HeldBy("hv-a".into()));
    store.release(&lease, "hv-a").await.unwrap();
    assert_eq!(other.acquire(&lease, "hv-b", ttl).await.unwrap(), imds_store::Acquired::Held);
}
