//! The backend-independent conformance suite of [`Store`] (feature `test-util`).
//!
//! Owns one `pub async fn` per case, each taking a fresh, empty store and panicking on the
//! first violation of the contract, and [`conformance_tests!`](crate::conformance_tests), which
//! expands into one `#[tokio::test]` per case so a failure is reported by name. Every backend's
//! test suite calls the macro with its own constructor:
//!
//! ```text
//! imds_store::conformance_tests!(async { std::sync::Arc::new(MemoryStore::new()) });
//! ```
//!
//! The constructor is an `async` block evaluating to anything [`IntoTestStore`] accepts: an
//! `Arc<dyn Store>`, an `Arc<S>` of a concrete store, or `(Arc<dyn Store>, guard)` where the
//! guard (a temporary directory, say) is kept alive until the case ends. The calling crate needs
//! `tokio` with the `macros` and `rt-multi-thread` features.
//!
//! Every await on a feed is bounded by [`WAIT`], so a broken backend fails instead of hanging;
//! no case sleeps to synchronise.

use std::any::Any;
use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use crate::unreliable::Unreliable;
use crate::{
    Acquired, Change, Committed, Expect, Feed, FeedEvent, Key, Op, Put, Record, Revision, Scope, Store, StoreError,
    Written,
};

/// How long a case waits for any single store call or feed item before failing.
pub const WAIT: Duration = Duration::from_secs(10);

/// A store under test, and whatever must live as long as it.
pub struct TestStore {
    /// The store the cases run against.
    pub store: Arc<dyn Store>,
    /// Dropped after the case (e.g. the temporary directory holding the store's files).
    pub guard: Box<dyn Any + Send>,
}

impl fmt::Debug for TestStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestStore").field("store", &self.store).finish_non_exhaustive()
    }
}

/// What a constructor given to [`conformance_tests!`](crate::conformance_tests) may return.
pub trait IntoTestStore {
    /// The store, with its guard.
    fn into_test_store(self) -> TestStore;
}

impl IntoTestStore for Arc<dyn Store> {
    fn into_test_store(self) -> TestStore {
        TestStore { store: self, guard: Box::new(()) }
    }
}

impl<S: Store> IntoTestStore for Arc<S> {
    fn into_test_store(self) -> TestStore {
        TestStore { store: self, guard: Box::new(()) }
    }
}

impl<G: Send + 'static> IntoTestStore for (Arc<dyn Store>, G) {
    fn into_test_store(self) -> TestStore {
        TestStore { store: self.0, guard: Box::new(self.1) }
    }
}

/// Expands into one `#[tokio::test]` per conformance case, each on a fresh store.
///
/// Usage: `imds_store::conformance_tests!(async { /* build a fresh, empty store */ });` where
/// the block evaluates to an [`IntoTestStore`](crate::conformance::IntoTestStore) value. The
/// block is evaluated once per case.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr $(,)?) => {
        $crate::conformance_tests!(@cases $make;
            get_missing_is_none,
            put_creates_then_replaces,
            expect_absent,
            expect_present,
            expect_revision,
            delete_semantics,
            revisions_increase_across_collections,
            list_paging,
            list_isolates_collections,
            claims_unique_across_store,
            failed_write_changes_nothing,
            replace_releases_unlisted_claims,
            delete_releases_claims,
            reput_same_claims,
            snapshot_empty_is_revision_zero,
            snapshot_is_consistent,
            snapshot_filters_by_node,
            node_feed_follows_moves,
            subscribe_replays_then_live,
            node_feed_sees_progress,
            compact_then_subscribe,
            revision_tracks_head,
            resume_through_unreliable,
            concurrent_writers,
            batch_commits_at_one_revision,
            batch_failing_precondition_writes_nothing,
            batch_claim_conflict_writes_nothing,
            batch_refuses_repeats,
            batch_moves_claims_between_its_puts,
            batch_filters_by_node,
            batch_empty,
            commit_mixes_puts_deletes_and_checks,
            commit_failing_check_writes_nothing,
            commit_changing_nothing_takes_no_revision,
            commit_refuses_repeated_keys,
            commit_moves_and_deletes_across_nodes,
            node_follows_shared_collections,
            lease_acquire_and_contention,
            lease_renewal_keeps_it,
            lease_expiry_hands_it_over,
            lease_release_hands_it_over_at_once,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let test = $crate::conformance::IntoTestStore::into_test_store($make.await);
                $crate::conformance::$case(::std::sync::Arc::clone(&test.store)).await;
                drop(test);
            }
        )*
    };
}

// ---- helpers ----------------------------------------------------------------------------------

/// Awaits a store call, failing the case after [`WAIT`].
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(value) => value,
        Err(_) => panic!("{what}: no answer within {WAIT:?}"),
    }
}

/// Awaits a store call that must succeed.
async fn ok<T>(what: &str, fut: impl Future<Output = Result<T, StoreError>>) -> T {
    match within(what, fut).await {
        Ok(value) => value,
        Err(err) => panic!("{what}: unexpected error: {err}"),
    }
}

/// Awaits a store call that must fail, returning its error.
async fn fails<T: fmt::Debug>(what: &str, fut: impl Future<Output = Result<T, StoreError>>) -> StoreError {
    match within(what, fut).await {
        Ok(value) => panic!("{what}: expected an error, got {value:?}"),
        Err(err) => err,
    }
}

/// The next item of a feed, or `None` when it ended.
async fn next_item(feed: &mut Feed) -> Option<Result<FeedEvent, StoreError>> {
    within("waiting for a feed item", feed.next()).await
}

/// The next `Changes` event of a feed, skipping progress (which must not go backwards).
async fn next_changes(feed: &mut Feed, last: Revision) -> (Revision, Vec<Change>) {
    loop {
        match next_item(feed).await {
            Some(Ok(FeedEvent::Changes { rev, changes })) => {
                assert!(rev > last, "feed went from {last} back to {rev}");
                assert!(!changes.is_empty(), "a Changes event at {rev} holds no change");
                return (rev, changes);
            }
            Some(Ok(FeedEvent::Progress { rev })) => {
                assert!(rev >= last, "progress went from {last} back to {rev}");
            }
            Some(Err(err)) => panic!("feed failed: {err}"),
            None => panic!("feed ended"),
        }
    }
}

/// Subscribes, failing the case on error.
async fn subscribe(store: &dyn Store, scope: &Scope, after: Revision) -> Feed {
    ok("subscribe", store.subscribe(scope, after)).await
}

fn key(collection: &str, id: &str) -> Key {
    Key::new(collection, id)
}

/// A put request.
fn put(key: &Key, node: Option<&str>, claims: &[&str], value: &[u8], expect: Expect) -> Put {
    Put {
        key: key.clone(),
        node: node.map(str::to_owned),
        claims: claims.iter().map(|claim| (*claim).to_owned()).collect(),
        value: value.to_vec(),
        expect,
    }
}

/// Writes a record with no claims, expecting nothing.
async fn write(store: &dyn Store, key: &Key, node: Option<&str>, value: &[u8]) -> Written {
    ok("put", store.put(put(key, node, &[], value, Expect::Any))).await
}

/// The record a successful put must have produced.
fn record(key: &Key, node: Option<&str>, claims: &[&str], value: &[u8], rev: Revision) -> Record {
    let mut claims: Vec<String> = claims.iter().map(|claim| (*claim).to_owned()).collect();
    claims.sort();
    claims.dedup();
    Record { key: key.clone(), node: node.map(str::to_owned), claims, value: value.to_vec(), rev }
}

async fn get(store: &dyn Store, key: &Key) -> Option<Record> {
    ok("get", store.get(key)).await
}

async fn revision(store: &dyn Store) -> Revision {
    ok("revision", store.revision()).await
}

// ---- records and preconditions ----------------------------------------------------------------

/// A key never written reads as `None`, and reading writes nothing.
pub async fn get_missing_is_none(store: Arc<dyn Store>) {
    assert_eq!(get(&*store, &key("instances", "i-1")).await, None);
    assert_eq!(revision(&*store).await, Revision(0));
}

/// A put creates (`created`), a second put replaces; get returns exactly what was written,
/// claims sorted and de-duplicated, at the put's revision.
pub async fn put_creates_then_replaces(store: Arc<dyn Store>) {
    let k = key("instances", "i-1");
    let first = ok("create", store.put(put(&k, Some("n1"), &["mac/b", "ip/a", "mac/b"], b"v1", Expect::Any))).await;
    assert!(first.created, "the first put must report created");
    assert!(first.rev > Revision(0));
    assert_eq!(get(&*store, &k).await, Some(record(&k, Some("n1"), &["ip/a", "mac/b"], b"v1", first.rev)));

    let second = ok("replace", store.put(put(&k, None, &["ip/a"], b"v2", Expect::Any))).await;
    assert!(!second.created, "replacing must not report created");
    assert!(second.rev > first.rev);
    assert_eq!(get(&*store, &k).await, Some(record(&k, None, &["ip/a"], b"v2", second.rev)));
}

/// `Expect::Absent` creates only; on an existing key it fails with `AlreadyExists` naming the
/// current revision and changes nothing.
pub async fn expect_absent(store: Arc<dyn Store>) {
    let k = key("instances", "i-1");
    let w = ok("create", store.put(put(&k, None, &[], b"v1", Expect::Absent))).await;
    assert!(w.created);
    let err = fails("create again", store.put(put(&k, None, &[], b"v2", Expect::Absent))).await;
    assert_eq!(err, StoreError::AlreadyExists { key: k.clone(), actual: w.rev });
    assert_eq!(get(&*store, &k).await, Some(record(&k, None, &[], b"v1", w.rev)));
    assert_eq!(revision(&*store).await, w.rev);
}

/// `Expect::Present` fails with `NotFound` on a missing key (creating nothing) and replaces an
/// existing one.
pub async fn expect_present(store: Arc<dyn Store>) {
    let k = key("instances", "i-1");
    let err = fails("put present on missing", store.put(put(&k, None, &[], b"v", Expect::Present))).await;
    assert_eq!(err, StoreError::NotFound { key: k.clone() });
    assert_eq!(get(&*store, &k).await, None);
    assert_eq!(revision(&*store).await, Revision(0));

    let w1 = write(&*store, &k, None, b"v1").await;
    let w2 = ok("put present", store.put(put(&k, None, &[], b"v2", Expect::Present))).await;
    assert!(!w2.created);
    assert!(w2.rev > w1.rev);
    assert_eq!(get(&*store, &k).await, Some(record(&k, None, &[], b"v2", w2.rev)));
}

/// `Expect::Revision` fails with `NotFound` on a missing key and `RevisionMismatch` (expected and
/// actual) on a stale one; it succeeds on exactly the current revision.
pub async fn expect_revision(store: Arc<dyn Store>) {
    let k = key("instances", "i-1");
    let err = fails("if-match on missing", store.put(put(&k, None, &[], b"v", Expect::Revision(Revision(1))))).await;
    assert_eq!(err, StoreError::NotFound { key: k.clone() });

    let w1 = write(&*store, &k, None, b"v1").await;
    let stale = Revision(w1.rev.0 + 100);
    let err = fails("if-match wrong", store.put(put(&k, None, &[], b"v2", Expect::Revision(stale)))).await;
    assert_eq!(err, StoreError::RevisionMismatch { key: k.clone(), expected: stale, actual: w1.rev });

    let w2 = ok("if-match right", store.put(put(&k, None, &[], b"v2", Expect::Revision(w1.rev)))).await;
    assert!(!w2.created);
    assert!(w2.rev > w1.rev);

    let err = fails("if-match stale", store.put(put(&k, None, &[], b"v3", Expect::Revision(w1.rev)))).await;
    assert_eq!(err, StoreError::RevisionMismatch { key: k.clone(), expected: w1.rev, actual: w2.rev });
    assert_eq!(get(&*store, &k).await, Some(record(&k, None, &[], b"v2", w2.rev)));
}

/// Delete: `NotFound` when missing, preconditions as for put, returns a new revision, and the
/// key may be created again afterwards.
pub async fn delete_semantics(store: Arc<dyn Store>) {
    let k = key("instances", "i-1");
    let err = fails("delete missing", store.delete(&k, Expect::Any)).await;
    assert_eq!(err, StoreError::NotFound { key: k.clone() });
    let err = fails("delete missing, present", store.delete(&k, Expect::Present)).await;
    assert_eq!(err, StoreError::NotFound { key: k.clone() });
    let err = fails("delete missing, if-match", store.delete(&k, Expect::Revision(Revision(1)))).await;
    assert_eq!(err, StoreError::NotFound { key: k.clone() });
    assert_eq!(revision(&*store).await, Revision(0));

    let w = write(&*store, &k, None, b"v1").await;
    let wrong = Revision(w.rev.0 + 7);
    let err = fails("delete if-match wrong", store.delete(&k, Expect::Revision(wrong))).await;
    assert_eq!(err, StoreError::RevisionMismatch { key: k.clone(), expected: wrong, actual: w.rev });
    let err = fails("delete expecting absent", store.delete(&k, Expect::Absent)).await;
    assert_eq!(err, StoreError::AlreadyExists { key: k.clone(), actual: w.rev });
    assert_eq!(get(&*store, &k).await, Some(record(&k, None, &[], b"v1", w.rev)));
    assert_eq!(revision(&*store).await, w.rev);

    let deleted = ok("delete if-match", store.delete(&k, Expect::Revision(w.rev))).await;
    assert!(deleted > w.rev);
    assert_eq!(get(&*store, &k).await, None);
    assert_eq!(revision(&*store).await, deleted);
    let err = fails("delete twice", store.delete(&k, Expect::Any)).await;
    assert_eq!(err, StoreError::NotFound { key: k.clone() });

    let again = ok("re-create", store.put(put(&k, None, &[], b"v2", Expect::Absent))).await;
    assert!(again.created, "a deleted key is created again");
    assert!(again.rev > deleted);

    let other = key("instances", "i-2");
    write(&*store, &other, None, b"x").await;
    let last = ok("delete present", store.delete(&other, Expect::Present)).await;
    assert!(last > again.rev);
    assert_eq!(revision(&*store).await, last);
}

/// Every write, in any collection, put or delete, commits at a revision above all earlier ones.
pub async fn revisions_increase_across_collections(store: Arc<dyn Store>) {
    let mut last = revision(&*store).await;
    assert_eq!(last, Revision(0));
    for i in 0..10 {
        let collection = if i % 2 == 0 { "instances" } else { "secrets" };
        let k = key(collection, &format!("r-{i}"));
        let w = write(&*store, &k, None, b"v").await;
        assert!(w.rev > last, "revision {} after {last}", w.rev);
        last = w.rev;
        if i % 3 == 0 {
            let rev = ok("delete", store.delete(&k, Expect::Any)).await;
            assert!(rev > last, "delete revision {rev} after {last}");
            last = rev;
        }
        assert_eq!(revision(&*store).await, last);
    }
}

// ---- listing ----------------------------------------------------------------------------------

/// Paging walks a collection in ascending id order; `next_after` is `None` exactly on the last
/// page, and `after` need not be an existing id.
pub async fn list_paging(store: Arc<dyn Store>) {
    let ids = ["e", "b", "g", "a", "d", "c", "f"];
    let mut written = Vec::new();
    for id in ids {
        let k = key("instances", id);
        let w = ok("put", store.put(put(&k, Some("n1"), &[], id.as_bytes(), Expect::Any))).await;
        written.push(record(&k, Some("n1"), &[], id.as_bytes(), w.rev));
    }
    written.sort_by(|a, b| a.key.cmp(&b.key));

    let page = ok("list 1", store.list("instances", None, 3)).await;
    assert_eq!(page.records, written[0..3]);
    assert_eq!(page.next_after.as_deref(), Some("c"));
    let page = ok("list 2", store.list("instances", Some("c"), 3)).await;
    assert_eq!(page.records, written[3..6]);
    assert_eq!(page.next_after.as_deref(), Some("f"));
    let page = ok("list 3", store.list("instances", Some("f"), 3)).await;
    assert_eq!(page.records, written[6..7]);
    assert_eq!(page.next_after, None, "the last page has no next_after");

    let page = ok("list exact", store.list("instances", None, 7)).await;
    assert_eq!(page.records, written);
    assert_eq!(page.next_after, None, "a page that ends the collection exactly has no next_after");
    let page = ok("list all", store.list("instances", None, 100)).await;
    assert_eq!(page.records, written);
    assert_eq!(page.next_after, None);

    let page = ok("list after a gap", store.list("instances", Some("cc"), 2)).await;
    assert_eq!(page.records, written[3..5]);
    assert_eq!(page.next_after.as_deref(), Some("e"));
    let page = ok("list past the end", store.list("instances", Some("g"), 10)).await;
    assert!(page.records.is_empty());
    assert_eq!(page.next_after, None);
    let page = ok("list before the start", store.list("instances", Some(""), 1)).await;
    assert_eq!(page.records, written[0..1]);
}

/// A collection lists only its own records, even beside collections whose names share a prefix.
pub async fn list_isolates_collections(store: Arc<dyn Store>) {
    for (collection, id) in [("inst", "z"), ("instances", "b"), ("instancesx", "a"), ("instances", "a"), ("j", "0")] {
        write(&*store, &key(collection, id), None, b"v").await;
    }
    let page = ok("list", store.list("instances", None, 10)).await;
    let listed: Vec<&Key> = page.records.iter().map(|record| &record.key).collect();
    assert_eq!(listed, [&key("instances", "a"), &key("instances", "b")]);
    assert_eq!(page.next_after, None);
    let page = ok("list after", store.list("instances", Some("a"), 1)).await;
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.records[0].key, key("instances", "b"));
    assert_eq!(page.next_after, None);
    let page = ok("list empty collection", store.list("nothing", None, 10)).await;
    assert!(page.records.is_empty());
    assert_eq!(page.next_after, None);
}

// ---- claims -----------------------------------------------------------------------------------

/// A claim is unique across the whole store: another record, in the same collection or another,
/// cannot take it, and the error names the claim and its holder.
pub async fn claims_unique_across_store(store: Arc<dyn Store>) {
    let holder = key("instances", "i-1");
    ok("holder", store.put(put(&holder, None, &["ip/10.0.0.1", "mac/aa"], b"v", Expect::Any))).await;

    let same = key("instances", "i-2");
    let err =
        fails("same collection", store.put(put(&same, None, &["ip/10.0.0.2", "ip/10.0.0.1"], b"v", Expect::Any))).await;
    assert_eq!(err, StoreError::ClaimConflict { claim: "ip/10.0.0.1".into(), holder: holder.clone() });

    let other = key("secrets", "i-1");
    let err = fails("other collection", store.put(put(&other, None, &["mac/aa"], b"v", Expect::Any))).await;
    assert_eq!(err, StoreError::ClaimConflict { claim: "mac/aa".into(), holder: holder.clone() });

    assert_eq!(get(&*store, &same).await, None);
    assert_eq!(get(&*store, &other).await, None);
    // The unclaimed part of the failed write was not taken either.
    ok("free claim", store.put(put(&other, None, &["ip/10.0.0.2"], b"v", Expect::Any))).await;
}

/// A write that fails (claim conflict or precondition) changes nothing: record, claims,
/// revision and feed are as before.
pub async fn failed_write_changes_nothing(store: Arc<dyn Store>) {
    let k1 = key("instances", "i-1");
    let k2 = key("instances", "i-2");
    ok("k1", store.put(put(&k1, Some("n1"), &["ip/1"], b"one", Expect::Any))).await;
    let w2 = ok("k2", store.put(put(&k2, Some("n1"), &["ip/2"], b"two", Expect::Any))).await;
    let mut feed = subscribe(&*store, &Scope::All, w2.rev).await;

    let err =
        fails("replace taking a held claim", store.put(put(&k2, Some("n2"), &["ip/9", "ip/1"], b"new", Expect::Any)))
            .await;
    assert_eq!(err, StoreError::ClaimConflict { claim: "ip/1".into(), holder: k1.clone() });
    let k3 = key("instances", "i-3");
    let err =
        fails("create taking a held claim", store.put(put(&k3, None, &["ip/1", "ip/8"], b"new", Expect::Absent))).await;
    assert_eq!(err, StoreError::ClaimConflict { claim: "ip/1".into(), holder: k1.clone() });
    let wrong = Revision(w2.rev.0 + 1);
    let err = fails("stale replace", store.put(put(&k2, None, &["ip/7"], b"new", Expect::Revision(wrong)))).await;
    assert_eq!(err, StoreError::RevisionMismatch { key: k2.clone(), expected: wrong, actual: w2.rev });
    let err = fails("stale delete", store.delete(&k2, Expect::Revision(wrong))).await;
    assert_eq!(err, StoreError::RevisionMismatch { key: k2.clone(), expected: wrong, actual: w2.rev });

    assert_eq!(get(&*store, &k2).await, Some(record(&k2, Some("n1"), &["ip/2"], b"two", w2.rev)));
    assert_eq!(get(&*store, &k3).await, None);
    assert_eq!(revision(&*store).await, w2.rev);
    // The claims the failed writes named are still free; the ones k2 held are still its.
    let k4 = key("instances", "i-4");
    let w4 = ok("free claims", store.put(put(&k4, None, &["ip/7", "ip/8", "ip/9"], b"four", Expect::Absent))).await;
    let err = fails("k2's claim", store.put(put(&k3, None, &["ip/2"], b"new", Expect::Any))).await;
    assert_eq!(err, StoreError::ClaimConflict { claim: "ip/2".into(), holder: k2.clone() });

    // The feed's next change is the successful write: nothing was logged for the failures.
    let (rev, changes) = next_changes(&mut feed, w2.rev).await;
    assert_eq!(rev, w4.rev);
    assert_eq!(changes, [Change::Put(record(&k4, None, &["ip/7", "ip/8", "ip/9"], b"four", w4.rev))]);
}

/// Replacing a record releases the claims the new version no longer lists and keeps the rest.
pub async fn replace_releases_unlisted_claims(store: Arc<dyn Store>) {
    let k1 = key("instances", "i-1");
    let k2 = key("instances", "i-2");
    ok("k1", store.put(put(&k1, None, &["ip/a", "ip/b"], b"v1", Expect::Any))).await;
    let w = ok("k1 replaced", store.put(put(&k1, None, &["ip/b", "ip/c"], b"v2", Expect::Any))).await;
    assert_eq!(get(&*store, &k1).await, Some(record(&k1, None, &["ip/b", "ip/c"], b"v2", w.rev)));

    ok("released claim", store.put(put(&k2, None, &["ip/a"], b"v", Expect::Any))).await;
    for kept in ["ip/b", "ip/c"] {
        let err = fails("kept claim", store.put(put(&k2, None, &["ip/a", kept], b"v", Expect::Any))).await;
        assert_eq!(err, StoreError::ClaimConflict { claim: kept.into(), holder: k1.clone() });
    }
    ok("k1 drops all", store.put(put(&k1, None, &[], b"v3", Expect::Any))).await;
    ok("now free", store.put(put(&k2, None, &["ip/a", "ip/b", "ip/c"], b"v", Expect::Any))).await;
}

/// Deleting a record releases all its claims.
pub async fn delete_releases_claims(store: Arc<dyn Store>) {
    let k1 = key("instances", "i-1");
    let k2 = key("secrets", "i-2");
    ok("k1", store.put(put(&k1, None, &["ip/a", "mac/b"], b"v", Expect::Any))).await;
    let err = fails("held", store.put(put(&k2, None, &["mac/b"], b"v", Expect::Any))).await;
    assert_eq!(err, StoreError::ClaimConflict { claim: "mac/b".into(), holder: k1.clone() });
    ok("delete k1", store.delete(&k1, Expect::Any)).await;
    ok("released", store.put(put(&k2, None, &["ip/a", "mac/b"], b"v", Expect::Any))).await;
}

/// A record may put the claims it already holds again, and add to them; the holder is the full
/// key, so the same id in another collection is another holder.
pub async fn reput_same_claims(store: Arc<dyn Store>) {
    let k = key("instances", "i-1");
    ok("first", store.put(put(&k, None, &["ip/a"], b"v1", Expect::Any))).await;
    let w = ok("same claims", store.put(put(&k, None, &["ip/a"], b"v2", Expect::Present))).await;
    assert!(!w.created);
    let w = ok("more claims", store.put(put(&k, Some("n2"), &["ip/b", "ip/a"], b"v3", Expect::Revision(w.rev)))).await;
    assert_eq!(get(&*store, &k).await, Some(record(&k, Some("n2"), &["ip/a", "ip/b"], b"v3", w.rev)));
    let same_id = key("secrets", "i-1");
    let err = fails("same id, other collection", store.put(put(&same_id, None, &["ip/b"], b"v", Expect::Any))).await;
    assert_eq!(err, StoreError::ClaimConflict { claim: "ip/b".into(), holder: k.clone() });
}

// ---- snapshots --------------------------------------------------------------------------------

/// An empty store snapshots at `Revision(0)` with no records.
pub async fn snapshot_empty_is_revision_zero(store: Arc<dyn Store>) {
    for scope in [Scope::All, Scope::Node("n1".into())] {
        let snapshot = ok("snapshot", store.snapshot(&scope)).await;
        assert_eq!(snapshot.rev, Revision(0));
        assert!(snapshot.records.is_empty());
    }
}

/// A snapshot holds every current record exactly as `get` returns it, at the current revision.
pub async fn snapshot_is_consistent(store: Arc<dyn Store>) {
    let mut keys = Vec::new();
    for i in 0..6 {
        let k = key(if i % 2 == 0 { "instances" } else { "mmds" }, &format!("i-{i}"));
        let node = if i % 3 == 0 { None } else { Some("n1") };
        ok("put", store.put(put(&k, node, &[&format!("ip/{i}")], format!("v{i}").as_bytes(), Expect::Any))).await;
        keys.push(k);
    }
    write(&*store, &keys[1], Some("n2"), b"replaced").await;
    ok("delete", store.delete(&keys[2], Expect::Any)).await;

    let mut snapshot = ok("snapshot", store.snapshot(&Scope::All)).await;
    assert_eq!(snapshot.rev, revision(&*store).await);
    snapshot.records.sort_by(|a, b| a.key.cmp(&b.key));
    let mut expected = Vec::new();
    for k in &keys {
        if let Some(record) = get(&*store, k).await {
            expected.push(record);
        }
    }
    expected.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(snapshot.records, expected);
    assert_eq!(snapshot.records.len(), 5);
    assert!(snapshot.records.iter().all(|record| record.rev <= snapshot.rev));
}

/// A node's snapshot holds exactly the records placed on that node, at the store's revision.
pub async fn snapshot_filters_by_node(store: Arc<dyn Store>) {
    write(&*store, &key("instances", "a"), Some("n1"), b"a").await;
    write(&*store, &key("instances", "b"), Some("n2"), b"b").await;
    write(&*store, &key("instances", "c"), None, b"c").await;
    write(&*store, &key("mmds", "d"), Some("n1"), b"d").await;
    write(&*store, &key("instances", "b"), Some("n1"), b"b2").await;
    let head = write(&*store, &key("instances", "a"), Some("n3"), b"a2").await.rev;

    let mut snapshot = ok("snapshot n1", store.snapshot(&Scope::Node("n1".into()))).await;
    assert_eq!(snapshot.rev, head);
    snapshot.records.sort_by(|a, b| a.key.cmp(&b.key));
    let keys: Vec<&Key> = snapshot.records.iter().map(|record| &record.key).collect();
    assert_eq!(keys, [&key("instances", "b"), &key("mmds", "d")]);
    assert_eq!(snapshot.records[0].value, b"b2");

    let snapshot = ok("snapshot n2", store.snapshot(&Scope::Node("n2".into()))).await;
    assert_eq!(snapshot.rev, head);
    assert!(snapshot.records.is_empty());
    let snapshot = ok("snapshot all", store.snapshot(&Scope::All)).await;
    assert_eq!(snapshot.records.len(), 4);
}

// ---- feeds ------------------------------------------------------------------------------------

/// A node's feed sees puts placed on it; a record moved away shows as a delete in the old
/// node's feed (naming the old node) and as a put in the new node's.
pub async fn node_feed_follows_moves(store: Arc<dyn Store>) {
    let k = key("instances", "i-1");
    let r1 = ok("put n1", store.put(put(&k, Some("n1"), &["ip/1"], b"v1", Expect::Any))).await.rev;
    let mut n1 = subscribe(&*store, &Scope::Node("n1".into()), r1).await;
    let mut n2 = subscribe(&*store, &Scope::Node("n2".into()), r1).await;
    let mut all = subscribe(&*store, &Scope::All, r1).await;

    let r2 = ok("move to n2", store.put(put(&k, Some("n2"), &["ip/1"], b"v2", Expect::Any))).await.rev;
    let moved = record(&k, Some("n2"), &["ip/1"], b"v2", r2);
    assert_eq!(next_changes(&mut n1, r1).await, (r2, vec![Change::Delete { key: k.clone(), node: Some("n1".into()) }]));
    assert_eq!(next_changes(&mut n2, r1).await, (r2, vec![Change::Put(moved.clone())]));
    assert_eq!(next_changes(&mut all, r1).await, (r2, vec![Change::Put(moved)]));

    // A replace on n2 is a put there and nothing at all on n1.
    let r3 = write(&*store, &k, Some("n2"), b"v3").await.rev;
    assert_eq!(next_changes(&mut n2, r2).await, (r3, vec![Change::Put(record(&k, Some("n2"), &[], b"v3", r3))]));
    let other = key("instances", "i-2");
    let r4 = write(&*store, &other, Some("n1"), b"o").await.rev;
    assert_eq!(next_changes(&mut n1, r2).await, (r4, vec![Change::Put(record(&other, Some("n1"), &[], b"o", r4))]));

    // Deleting shows in the record's node's feed, naming the node.
    let r5 = ok("delete", store.delete(&k, Expect::Any)).await;
    assert_eq!(next_changes(&mut n2, r3).await, (r5, vec![Change::Delete { key: k.clone(), node: Some("n2".into()) }]));

    // Moving from no node onto n1 is a put for n1; moving off it to no node is a delete.
    let r6 = write(&*store, &k, None, b"v6").await.rev;
    let r7 = write(&*store, &k, Some("n1"), b"v7").await.rev;
    assert_eq!(next_changes(&mut n1, r4).await, (r7, vec![Change::Put(record(&k, Some("n1"), &[], b"v7", r7))]));
    let r8 = write(&*store, &k, None, b"v8").await.rev;
    assert_eq!(next_changes(&mut n1, r7).await, (r8, vec![Change::Delete { key: k.clone(), node: Some("n1".into()) }]));

    for (rev, expected) in [
        (r3, Change::Put(record(&k, Some("n2"), &[], b"v3", r3))),
        (r4, Change::Put(record(&other, Some("n1"), &[], b"o", r4))),
        (r5, Change::Delete { key: k.clone(), node: Some("n2".into()) }),
        (r6, Change::Put(record(&k, None, &[], b"v6", r6))),
        (r7, Change::Put(record(&k, Some("n1"), &[], b"v7", r7))),
        (r8, Change::Put(record(&k, None, &[], b"v8", r8))),
    ] {
        let previous = Revision(rev.0 - 1);
        assert_eq!(next_changes(&mut all, previous).await, (rev, vec![expected]));
    }
}

/// `subscribe(after = R)` replays every change after `R` in order, one `Changes` per write and
/// nothing at or before `R`, then delivers live changes, each exactly once.
pub async fn subscribe_replays_then_live(store: Arc<dyn Store>) {
    let mut log: Vec<(Revision, Change)> = Vec::new();
    for i in 0..5 {
        let k = key("instances", &format!("i-{i}"));
        let value = format!("v{i}");
        let w = ok("put", store.put(put(&k, Some("n1"), &[&format!("ip/{i}")], value.as_bytes(), Expect::Any))).await;
        log.push((w.rev, Change::Put(record(&k, Some("n1"), &[&format!("ip/{i}")], value.as_bytes(), w.rev))));
    }
    let k = key("instances", "i-1");
    let rev = ok("delete", store.delete(&k, Expect::Any)).await;
    log.push((rev, Change::Delete { key: k, node: Some("n1".into()) }));

    let from = log[1].0;
    let mut feed = subscribe(&*store, &Scope::All, from).await;
    let mut from_zero = subscribe(&*store, &Scope::All, Revision(0)).await;
    let head = revision(&*store).await;
    let mut at_head = subscribe(&*store, &Scope::All, head).await;

    for i in 5..8 {
        let k = key("mmds", &format!("m-{i}"));
        let w = write(&*store, &k, None, b"live").await;
        log.push((w.rev, Change::Put(record(&k, None, &[], b"live", w.rev))));
    }

    let mut last = from;
    for (rev, change) in &log[2..] {
        let got = next_changes(&mut feed, last).await;
        assert_eq!(got, (*rev, vec![change.clone()]), "after {last}");
        last = *rev;
    }
    let mut last = Revision(0);
    for (rev, change) in &log {
        assert_eq!(next_changes(&mut from_zero, last).await, (*rev, vec![change.clone()]));
        last = *rev;
    }
    let mut last = head;
    for (rev, change) in log.iter().filter(|(rev, _)| *rev > head) {
        assert_eq!(next_changes(&mut at_head, last).await, (*rev, vec![change.clone()]));
        last = *rev;
    }

    // Nothing repeats: the next change each feed delivers is the next write.
    let k = key("instances", "sentinel");
    let w = write(&*store, &k, None, b"s").await;
    let expected = (w.rev, vec![Change::Put(record(&k, None, &[], b"s", w.rev))]);
    let last = log.last().map(|(rev, _)| *rev).unwrap_or_default();
    for feed in [&mut feed, &mut from_zero, &mut at_head] {
        assert_eq!(next_changes(feed, last).await, expected);
    }
}

/// A node's feed that only sees out-of-scope writes gets `Progress` past them, not silence.
pub async fn node_feed_sees_progress(store: Arc<dyn Store>) {
    let start = write(&*store, &key("instances", "mine"), Some("n1"), b"v").await.rev;
    let mut feed = subscribe(&*store, &Scope::Node("n1".into()), start).await;
    let mut last_out = start;
    for i in 0..3 {
        last_out = write(&*store, &key("instances", &format!("other-{i}")), Some("n2"), b"v").await.rev;
    }
    let mut seen = start;
    while seen < last_out {
        match next_item(&mut feed).await {
            Some(Ok(FeedEvent::Progress { rev })) => {
                assert!(rev >= seen, "progress went from {seen} back to {rev}");
                seen = rev;
            }
            Some(Ok(event)) => panic!("an out-of-scope write reached the node's feed: {event:?}"),
            Some(Err(err)) => panic!("feed failed: {err}"),
            None => panic!("feed ended"),
        }
    }
    assert_eq!(seen, last_out, "progress beyond the store's revision");
    let k = key("instances", "mine-2");
    let w = write(&*store, &k, Some("n1"), b"v2").await;
    assert_eq!(
        next_changes(&mut feed, seen).await,
        (w.rev, vec![Change::Put(record(&k, Some("n1"), &[], b"v2", w.rev))])
    );
}

/// After `compact(through)`, resuming before it fails with `Compacted` (at subscribe or as the
/// first item) while resuming at or after it still works; records are untouched.
pub async fn compact_then_subscribe(store: Arc<dyn Store>) {
    let mut revs = Vec::new();
    for i in 0..5 {
        revs.push(write(&*store, &key("instances", &format!("i-{i}")), None, b"v").await.rev);
    }
    let through = revs[2];
    ok("compact", store.compact(through)).await;
    assert_eq!(revision(&*store).await, revs[4], "compaction changed the revision");
    assert_eq!(ok("list", store.list("instances", None, 10)).await.records.len(), 5);

    for after in [Revision(0), revs[0], revs[1]] {
        let err = match within("subscribe compacted", store.subscribe(&Scope::All, after)).await {
            Err(err) => err,
            Ok(mut feed) => match next_item(&mut feed).await {
                Some(Err(err)) => err,
                other => panic!("resuming after {after} (compacted through {through}) gave {other:?}"),
            },
        };
        match err {
            StoreError::Compacted { after: got, oldest } => {
                assert_eq!(got, after);
                assert!(
                    oldest > after && oldest <= through,
                    "oldest {oldest} for after {after}, compacted through {through}"
                );
            }
            other => panic!("resuming after {after}: expected Compacted, got {other}"),
        }
    }

    let mut feed = subscribe(&*store, &Scope::All, through).await;
    assert_eq!(next_changes(&mut feed, through).await.0, revs[3]);
    assert_eq!(next_changes(&mut feed, revs[3]).await.0, revs[4]);
    let mut live = subscribe(&*store, &Scope::All, revs[4]).await;
    let w = write(&*store, &key("instances", "late"), None, b"v").await;
    assert_eq!(next_changes(&mut live, revs[4]).await.0, w.rev);
    assert_eq!(next_changes(&mut feed, revs[4]).await.0, w.rev);
    // Compacting again, less far, forgets nothing more and breaks nothing.
    ok("compact less", store.compact(revs[1])).await;
    let mut again = subscribe(&*store, &Scope::All, through).await;
    assert_eq!(next_changes(&mut again, through).await.0, revs[3]);
}

/// `revision()` is `0` on an empty store and then that of the latest commit; failed writes and
/// reads leave it alone.
pub async fn revision_tracks_head(store: Arc<dyn Store>) {
    assert_eq!(revision(&*store).await, Revision(0));
    let k = key("instances", "i-1");
    let w = write(&*store, &k, None, b"v").await;
    assert_eq!(revision(&*store).await, w.rev);
    fails("create existing", store.put(put(&k, None, &[], b"v", Expect::Absent))).await;
    get(&*store, &k).await;
    ok("snapshot", store.snapshot(&Scope::All)).await;
    assert_eq!(revision(&*store).await, w.rev);
    let deleted = ok("delete", store.delete(&k, Expect::Any)).await;
    assert_eq!(revision(&*store).await, deleted);
}

/// A reader whose feeds break and whose calls fail retries by re-subscribing from its last
/// revision and sees every write exactly once, in order.
pub async fn resume_through_unreliable(store: Arc<dyn Store>) {
    const N: usize = 30;
    const FAILURES: u64 = 3;
    let flaky = Arc::new(Unreliable::new(Arc::clone(&store)));
    let mut written = Vec::new();
    for i in 0..N / 2 {
        written.push(write(&*store, &key("instances", &format!("i-{i}")), None, b"v").await.rev);
    }
    flaky.break_feeds_after(4);
    flaky.fail_next(FAILURES);
    let writer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in N / 2..N {
                revs.push(write(&*store, &key("instances", &format!("i-{i}")), None, b"v").await.rev);
            }
            revs
        })
    };

    let mut last = Revision(0);
    let mut seen = Vec::new();
    let (mut failed, mut feeds) = (0u64, 0u64);
    while seen.len() < N {
        assert!(failed + feeds < 10 * N as u64, "no progress after {feeds} feeds and {failed} failures");
        let mut feed = match within("subscribe", flaky.subscribe(&Scope::All, last)).await {
            Ok(feed) => feed,
            Err(StoreError::Unavailable(_)) => {
                failed += 1;
                continue;
            }
            Err(err) => panic!("subscribe failed: {err}"),
        };
        feeds += 1;
        while seen.len() < N {
            match next_item(&mut feed).await {
                Some(Ok(FeedEvent::Changes { rev, .. })) => {
                    assert!(rev > last, "change at {rev} after {last}: repeated or out of order");
                    seen.push(rev);
                    last = rev;
                }
                Some(Ok(FeedEvent::Progress { rev })) => {
                    assert!(rev >= last, "progress went from {last} back to {rev}");
                    last = rev;
                }
                Some(Err(StoreError::Unavailable(_))) | None => break,
                Some(Err(err)) => panic!("feed failed: {err}"),
            }
        }
    }
    written.extend(within("writer", writer).await.expect("the writer task panicked"));
    written.sort();
    assert_eq!(seen, written);
    assert_eq!(failed, FAILURES, "every injected failure reached the reader");
    assert!(feeds >= N as u64 / 4, "feeds were not broken: {feeds} feeds for {N} changes");
    assert!(flaky.calls() >= FAILURES + feeds);
}

/// 8 tasks writing 50 records each at once get 400 distinct revisions, and a feed sees all 400
/// in increasing order.
pub async fn concurrent_writers(store: Arc<dyn Store>) {
    const TASKS: usize = 8;
    const EACH: usize = 50;
    let mut feed = subscribe(&*store, &Scope::All, Revision(0)).await;
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut revs = Vec::with_capacity(EACH);
                for i in 0..EACH {
                    let k = key("instances", &format!("t{t}-{i}"));
                    let claim = format!("ip/{t}/{i}");
                    revs.push(ok("put", store.put(put(&k, Some("n1"), &[&claim], b"v", Expect::Absent))).await.rev);
                }
                revs
            })
        })
        .collect();
    let mut written = BTreeSet::new();
    for task in tasks {
        for rev in within("writer", task).await.expect("a writer task panicked") {
            assert!(written.insert(rev), "revision {rev} given to two writes");
        }
    }
    assert_eq!(written.len(), TASKS * EACH);

    let mut last = Revision(0);
    let mut seen = Vec::with_capacity(TASKS * EACH);
    while seen.len() < TASKS * EACH {
        let (rev, changes) = next_changes(&mut feed, last).await;
        assert_eq!(changes.len(), 1, "one write per revision");
        seen.push(rev);
        last = rev;
    }
    assert_eq!(seen, written.into_iter().collect::<Vec<_>>());
    assert_eq!(revision(&*store).await, last);
}

// ---- batches ----------------------------------------------------------------------------------

/// Sorts a revision's changes by key, so backends may report a batch's changes in any order.
fn sorted(mut changes: Vec<Change>) -> Vec<Change> {
    fn change_key(change: &Change) -> &Key {
        match change {
            Change::Put(record) => &record.key,
            Change::Delete { key, .. } => key,
        }
    }
    changes.sort_by(|a, b| change_key(a).cmp(change_key(b)));
    changes
}

/// Asserts that a failed batch left the store as `before` (every record of the collections
/// written) at revision `head`, and that a feed from `head` sees the sentinel write first.
async fn assert_unchanged(store: &dyn Store, before: &[Record], head: Revision) {
    assert_eq!(revision(store).await, head, "a failed batch moved the revision");
    let mut now = ok("snapshot", store.snapshot(&Scope::All)).await.records;
    now.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(now, before, "a failed batch changed records");
    let mut feed = subscribe(store, &Scope::All, head).await;
    let k = key("instances", "sentinel");
    let w = write(store, &k, None, b"s").await;
    assert_eq!(
        next_changes(&mut feed, head).await,
        (w.rev, vec![Change::Put(record(&k, None, &[], b"s", w.rev))]),
        "a failed batch reached the feed"
    );
}

/// Every record, sorted by key.
async fn all_records(store: &dyn Store) -> Vec<Record> {
    let mut records = ok("snapshot", store.snapshot(&Scope::All)).await.records;
    records.sort_by(|a, b| a.key.cmp(&b.key));
    records
}

/// A batch of creates and replaces commits at one revision above the head; every `Written`
/// names it, `created` is per put, and a feed delivers one `Changes` event holding every change.
pub async fn batch_commits_at_one_revision(store: Arc<dyn Store>) {
    assert!(store.max_batch() >= 1, "max_batch must allow one put");
    let old = key("instances", "i-0");
    let w0 = ok("existing", store.put(put(&old, None, &["ip/0"], b"v0", Expect::Any))).await;
    let mut feed = subscribe(&*store, &Scope::All, w0.rev).await;

    let mut puts = vec![put(&old, None, &["ip/0", "mac/0"], b"v0b", Expect::Revision(w0.rev))];
    for i in 1..20 {
        let k = key("instances", &format!("i-{i}"));
        puts.push(put(&k, None, &[&format!("ip/{i}")], format!("v{i}").as_bytes(), Expect::Absent));
    }
    let other = key("mmds", "i-1");
    puts.push(put(&other, None, &[], b"m", Expect::Any));
    let written = ok("batch", store.put_batch(puts.clone())).await;
    assert_eq!(written.len(), puts.len(), "one Written per put");
    let rev = written[0].rev;
    assert!(rev > w0.rev, "batch revision {rev} not above {}", w0.rev);
    assert!(written.iter().all(|w| w.rev == rev), "a batch committed at several revisions: {written:?}");
    assert!(!written[0].created, "replacing must not report created");
    assert!(written[1..].iter().all(|w| w.created), "new keys must report created");
    assert_eq!(revision(&*store).await, rev);

    let expected: Vec<Change> = puts
        .iter()
        .map(|p| {
            let claims: Vec<&str> = p.claims.iter().map(String::as_str).collect();
            Change::Put(record(&p.key, None, &claims, &p.value, rev))
        })
        .collect();
    for change in &expected {
        let Change::Put(want) = change else { unreachable!("only puts were built") };
        assert_eq!(get(&*store, &want.key).await.as_ref(), Some(want));
    }
    let (got_rev, changes) = next_changes(&mut feed, w0.rev).await;
    assert_eq!(got_rev, rev);
    assert_eq!(sorted(changes), sorted(expected), "the batch's event must hold every change");

    // The next write is a revision of its own.
    let k = key("instances", "after");
    let w = write(&*store, &k, None, b"a").await;
    assert_eq!(next_changes(&mut feed, rev).await, (w.rev, vec![Change::Put(record(&k, None, &[], b"a", w.rev))]));
}

/// A precondition failing in the middle of a batch fails it with that error; nothing of the
/// batch is written, the revision stays and the feed sees nothing.
pub async fn batch_failing_precondition_writes_nothing(store: Arc<dyn Store>) {
    let existing = key("instances", "i-2");
    let w = ok("existing", store.put(put(&existing, None, &["ip/2"], b"old", Expect::Any))).await;
    let before = all_records(&*store).await;
    let puts = vec![
        put(&key("instances", "i-1"), None, &["ip/1"], b"v1", Expect::Absent),
        put(&existing, None, &["ip/2"], b"new", Expect::Absent),
        put(&key("instances", "i-3"), None, &["ip/3"], b"v3", Expect::Any),
    ];
    let err = fails("batch over an existing key", store.put_batch(puts)).await;
    assert_eq!(err, StoreError::AlreadyExists { key: existing.clone(), actual: w.rev });
    let stale = Revision(w.rev.0 + 5);
    let puts = vec![
        put(&key("instances", "i-1"), None, &[], b"v1", Expect::Any),
        put(&existing, None, &[], b"new", Expect::Revision(stale)),
    ];
    let err = fails("batch with a stale revision", store.put_batch(puts)).await;
    assert_eq!(err, StoreError::RevisionMismatch { key: existing.clone(), expected: stale, actual: w.rev });
    let puts = vec![
        put(&key("instances", "i-1"), None, &[], b"v1", Expect::Any),
        put(&key("instances", "i-9"), None, &[], b"v9", Expect::Present),
    ];
    let err = fails("batch replacing a missing key", store.put_batch(puts)).await;
    assert_eq!(err, StoreError::NotFound { key: key("instances", "i-9") });
    assert_unchanged(&*store, &before, w.rev).await;
}

/// A batch taking a claim held by a record outside it fails with `ClaimConflict` naming the
/// holder; nothing is written and the batch's other claims stay free.
pub async fn batch_claim_conflict_writes_nothing(store: Arc<dyn Store>) {
    let holder = key("instances", "holder");
    let w = ok("holder", store.put(put(&holder, None, &["ip/9"], b"h", Expect::Any))).await;
    let before = all_records(&*store).await;
    let puts = vec![
        put(&key("instances", "i-1"), None, &["ip/1"], b"v1", Expect::Any),
        put(&key("instances", "i-2"), None, &["ip/2", "ip/9"], b"v2", Expect::Any),
        put(&key("instances", "i-3"), None, &["ip/3"], b"v3", Expect::Any),
    ];
    let err = fails("batch taking a held claim", store.put_batch(puts)).await;
    assert_eq!(err, StoreError::ClaimConflict { claim: "ip/9".into(), holder: holder.clone() });
    assert_unchanged(&*store, &before, w.rev).await;
    for (i, claim) in ["ip/1", "ip/2", "ip/3"].into_iter().enumerate() {
        let k = key("secrets", &format!("s-{i}"));
        ok("a claim of the failed batch is free", store.put(put(&k, None, &[claim], b"v", Expect::Any))).await;
    }
}

/// A key named twice fails with `DuplicateKey`; a claim listed by two puts fails with
/// `ClaimConflict` naming the earlier put; neither writes anything.
pub async fn batch_refuses_repeats(store: Arc<dyn Store>) {
    let w = write(&*store, &key("instances", "existing"), None, b"e").await;
    let before = all_records(&*store).await;
    let k1 = key("instances", "i-1");
    let k2 = key("instances", "i-2");
    let puts = vec![
        put(&k1, None, &["ip/1"], b"v1", Expect::Any),
        put(&k2, None, &["ip/2"], b"v2", Expect::Any),
        put(&k1, None, &["ip/3"], b"v1b", Expect::Any),
    ];
    let err = fails("a repeated key", store.put_batch(puts)).await;
    assert_eq!(err, StoreError::DuplicateKey { key: k1.clone() });
    let puts = vec![
        put(&k1, None, &["ip/1", "mac/a"], b"v1", Expect::Any),
        put(&key("mmds", "m"), None, &[], b"m", Expect::Any),
        put(&k2, None, &["mac/a", "ip/2"], b"v2", Expect::Any),
    ];
    let err = fails("a claim held twice", store.put_batch(puts)).await;
    assert_eq!(err, StoreError::ClaimConflict { claim: "mac/a".into(), holder: k1.clone() });
    assert_unchanged(&*store, &before, w.rev).await;
}

/// Claims are checked after the batch: two records of one batch may swap their claims, and a
/// claim released by one put may be taken by another.
pub async fn batch_moves_claims_between_its_puts(store: Arc<dyn Store>) {
    let a = key("instances", "a");
    let b = key("instances", "b");
    let c = key("instances", "c");
    ok("a", store.put(put(&a, None, &["ip/1", "mac/a"], b"a", Expect::Any))).await;
    ok("b", store.put(put(&b, None, &["ip/2"], b"b", Expect::Any))).await;
    let puts = vec![
        put(&a, None, &["ip/2"], b"a2", Expect::Present),
        put(&b, None, &["ip/1"], b"b2", Expect::Present),
        put(&c, None, &["mac/a"], b"c", Expect::Absent),
    ];
    let written = ok("swap", store.put_batch(puts)).await;
    let rev = written[0].rev;
    assert_eq!(get(&*store, &a).await, Some(record(&a, None, &["ip/2"], b"a2", rev)));
    assert_eq!(get(&*store, &b).await, Some(record(&b, None, &["ip/1"], b"b2", rev)));
    assert_eq!(get(&*store, &c).await, Some(record(&c, None, &["mac/a"], b"c", rev)));
    // The claims really moved: each is held by its new record only.
    let err = fails("ip/1 is b's", store.put(put(&key("x", "x"), None, &["ip/1"], b"x", Expect::Any))).await;
    assert_eq!(err, StoreError::ClaimConflict { claim: "ip/1".into(), holder: b.clone() });
    let err = fails("mac/a is c's", store.put(put(&key("x", "x"), None, &["mac/a"], b"x", Expect::Any))).await;
    assert_eq!(err, StoreError::ClaimConflict { claim: "mac/a".into(), holder: c.clone() });
    // Deleting a releases only what a holds now.
    ok("delete a", store.delete(&a, Expect::Any)).await;
    let err = fails("ip/1 is still b's", store.put(put(&key("x", "x"), None, &["ip/1"], b"x", Expect::Any))).await;
    assert_eq!(err, StoreError::ClaimConflict { claim: "ip/1".into(), holder: b.clone() });
    ok("ip/2 is free", store.put(put(&key("x", "x"), None, &["ip/2"], b"x", Expect::Any))).await;
}

/// A batch placing records on several nodes shows each node only its own records, in the
/// snapshot and in one feed event; a record moved away is a delete in the old node's event.
pub async fn batch_filters_by_node(store: Arc<dyn Store>) {
    let moved = key("instances", "moved");
    let start = ok("on n1", store.put(put(&moved, Some("n1"), &["ip/m"], b"m1", Expect::Any))).await.rev;
    let n1 = Scope::Node("n1".into());
    let n2 = Scope::Node("n2".into());
    let mut feed1 = subscribe(&*store, &n1, start).await;
    let mut feed2 = subscribe(&*store, &n2, start).await;
    let mut feed_all = subscribe(&*store, &Scope::All, start).await;

    let a = key("instances", "a");
    let b = key("instances", "b");
    let c = key("instances", "c");
    let puts = vec![
        put(&a, Some("n1"), &["ip/a"], b"a", Expect::Absent),
        put(&b, Some("n2"), &["ip/b"], b"b", Expect::Absent),
        put(&c, None, &[], b"c", Expect::Absent),
        put(&moved, Some("n2"), &["ip/m"], b"m2", Expect::Present),
    ];
    let rev = ok("batch", store.put_batch(puts)).await[0].rev;
    let ra = record(&a, Some("n1"), &["ip/a"], b"a", rev);
    let rb = record(&b, Some("n2"), &["ip/b"], b"b", rev);
    let rc = record(&c, None, &[], b"c", rev);
    let rm = record(&moved, Some("n2"), &["ip/m"], b"m2", rev);

    let snap = ok("snapshot n1", store.snapshot(&n1)).await;
    assert_eq!(snap.rev, rev);
    assert_eq!(snap.records, vec![ra.clone()]);
    let mut snap = ok("snapshot n2", store.snapshot(&n2)).await;
    assert_eq!(snap.rev, rev);
    snap.records.sort_by(|x, y| x.key.cmp(&y.key));
    assert_eq!(snap.records, vec![rb.clone(), rm.clone()]);

    let (got, changes) = next_changes(&mut feed1, start).await;
    assert_eq!(got, rev);
    assert_eq!(
        sorted(changes),
        vec![Change::Put(ra.clone()), Change::Delete { key: moved.clone(), node: Some("n1".into()) }]
    );
    let (got, changes) = next_changes(&mut feed2, start).await;
    assert_eq!(got, rev);
    assert_eq!(sorted(changes), vec![Change::Put(rb.clone()), Change::Put(rm.clone())]);
    let (got, changes) = next_changes(&mut feed_all, start).await;
    assert_eq!(got, rev);
    assert_eq!(sorted(changes), vec![Change::Put(ra), Change::Put(rb), Change::Put(rc), Change::Put(rm)]);
}

/// An empty batch writes nothing: no revision, no event.
pub async fn batch_empty(store: Arc<dyn Store>) {
    let w = write(&*store, &key("instances", "i-1"), None, b"v").await;
    let before = all_records(&*store).await;
    assert_eq!(ok("empty batch", store.put_batch(Vec::new())).await, Vec::new());
    assert_unchanged(&*store, &before, w.rev).await;
}

// ---- multi-operation commits ------------------------------------------------------------------

fn delete_op(key: &Key, expect: Expect) -> Op {
    Op::Delete { key: key.clone(), expect }
}

fn check_op(key: &Key, expect: Expect) -> Op {
    Op::Check { key: key.clone(), expect }
}

/// Puts, deletes and checks commit at one revision as one feed event; `before` reports each
/// key's prior revision; a claim released by a delete moves to a put of the same commit; a
/// delete of a missing key with `Expect::Any` removes nothing and is no error.
pub async fn commit_mixes_puts_deletes_and_checks(store: Arc<dyn Store>) {
    let gone = key("instances", "gone");
    let kept = key("instances", "kept");
    let doc = key("mmds", "gone");
    let wg = ok("gone", store.put(put(&gone, None, &["ip/1"], b"g", Expect::Any))).await;
    let wd = write(&*store, &doc, None, b"d").await;
    let wk = write(&*store, &kept, None, b"k").await;
    let mut feed = subscribe(&*store, &Scope::All, wk.rev).await;

    let heir = key("instances", "heir");
    let never = key("state", "gone");
    let ops = vec![
        delete_op(&doc, Expect::Any),
        delete_op(&never, Expect::Any),
        check_op(&kept, Expect::Revision(wk.rev)),
        Op::Put(put(&heir, None, &["ip/1"], b"h", Expect::Absent)),
        delete_op(&gone, Expect::Revision(wg.rev)),
    ];
    let committed = ok("commit", store.commit(ops)).await;
    assert!(committed.rev > wk.rev, "the commit's revision {} is not above {}", committed.rev, wk.rev);
    assert_eq!(committed.before, vec![Some(wd.rev), None, Some(wk.rev), None, Some(wg.rev)]);
    let rev = committed.rev;
    assert_eq!(revision(&*store).await, rev, "one commit is one revision");
    assert_eq!(get(&*store, &gone).await, None);
    assert_eq!(get(&*store, &doc).await, None);
    assert_eq!(get(&*store, &never).await, None);
    assert_eq!(get(&*store, &kept).await, Some(record(&kept, None, &[], b"k", wk.rev)), "a check writes nothing");
    assert_eq!(get(&*store, &heir).await, Some(record(&heir, None, &["ip/1"], b"h", rev)));

    let (got, changes) = next_changes(&mut feed, wk.rev).await;
    assert_eq!(got, rev);
    assert_eq!(
        sorted(changes),
        vec![
            Change::Delete { key: gone.clone(), node: None },
            Change::Put(record(&heir, None, &["ip/1"], b"h", rev)),
            Change::Delete { key: doc.clone(), node: None },
        ],
        "one event holds every change of the commit, and nothing for the check or the missing key"
    );
    // The claim moved to the heir, and only there.
    let err = fails("ip/1 is the heir's", store.put(put(&key("x", "x"), None, &["ip/1"], b"x", Expect::Any))).await;
    assert_eq!(err, StoreError::ClaimConflict { claim: "ip/1".into(), holder: heir.clone() });
}

/// A failing check or delete precondition anywhere in a commit fails it with that error, and
/// nothing of the commit is written: the records deleted before it in the list are still there.
pub async fn commit_failing_check_writes_nothing(store: Arc<dyn Store>) {
    let doc = key("mmds", "i-1");
    let inst = key("instances", "i-1");
    let wd = write(&*store, &doc, None, b"d").await;
    let wi = ok("instance", store.put(put(&inst, None, &["ip/1"], b"i", Expect::Any))).await;
    let before = all_records(&*store).await;
    let stale = Revision(wi.rev.0 + 3);

    let ops = vec![delete_op(&doc, Expect::Any), delete_op(&inst, Expect::Revision(stale))];
    let err = fails("delete with a stale revision", store.commit(ops)).await;
    assert_eq!(err, StoreError::RevisionMismatch { key: inst.clone(), expected: stale, actual: wi.rev });

    let ops = vec![
        Op::Put(put(&key("instances", "i-2"), None, &["ip/2"], b"v", Expect::Absent)),
        delete_op(&doc, Expect::Revision(wd.rev)),
        check_op(&inst, Expect::Revision(stale)),
    ];
    let err = fails("check with a stale revision", store.commit(ops)).await;
    assert_eq!(err, StoreError::RevisionMismatch { key: inst.clone(), expected: stale, actual: wi.rev });

    let ops = vec![delete_op(&doc, Expect::Any), check_op(&inst, Expect::Absent)];
    let err = fails("check expecting absent", store.commit(ops)).await;
    assert_eq!(err, StoreError::AlreadyExists { key: inst.clone(), actual: wi.rev });

    let missing = key("instances", "i-9");
    let ops = vec![delete_op(&doc, Expect::Any), check_op(&missing, Expect::Present)];
    let err = fails("check expecting present", store.commit(ops)).await;
    assert_eq!(err, StoreError::NotFound { key: missing.clone() });
    let ops = vec![delete_op(&doc, Expect::Any), delete_op(&missing, Expect::Present)];
    let err = fails("delete expecting present", store.commit(ops)).await;
    assert_eq!(err, StoreError::NotFound { key: missing });

    let ops =
        vec![delete_op(&doc, Expect::Any), Op::Put(put(&key("instances", "i-3"), None, &["ip/1"], b"v", Expect::Any))];
    let err = fails("a put taking a held claim", store.commit(ops)).await;
    assert_eq!(err, StoreError::ClaimConflict { claim: "ip/1".into(), holder: inst.clone() });

    assert_unchanged(&*store, &before, wi.rev).await;
}

/// A commit that changes nothing (no operations, checks that hold, deletes of missing keys)
/// answers the current revision, takes no new one and sends no event.
pub async fn commit_changing_nothing_takes_no_revision(store: Arc<dyn Store>) {
    let k = key("instances", "i-1");
    let w = write(&*store, &k, None, b"v").await;
    let before = all_records(&*store).await;
    assert_eq!(ok("empty commit", store.commit(Vec::new())).await, Committed { rev: w.rev, before: Vec::new() });
    let ops = vec![
        check_op(&k, Expect::Revision(w.rev)),
        check_op(&key("instances", "i-2"), Expect::Absent),
        delete_op(&key("mmds", "i-1"), Expect::Any),
    ];
    let committed = ok("checks only", store.commit(ops)).await;
    assert_eq!(committed, Committed { rev: w.rev, before: vec![Some(w.rev), None, None] });
    assert_unchanged(&*store, &before, w.rev).await;
}

/// A key named twice in one commit, whatever the operations, fails with `DuplicateKey` and
/// writes nothing.
pub async fn commit_refuses_repeated_keys(store: Arc<dyn Store>) {
    let k = key("instances", "i-1");
    let w = write(&*store, &k, None, b"v").await;
    let before = all_records(&*store).await;
    for ops in [
        vec![Op::Put(put(&k, None, &[], b"v2", Expect::Any)), delete_op(&k, Expect::Any)],
        vec![check_op(&k, Expect::Present), Op::Put(put(&k, None, &[], b"v2", Expect::Any))],
        vec![delete_op(&k, Expect::Any), check_op(&k, Expect::Present)],
    ] {
        let err = fails("a repeated key", store.commit(ops)).await;
        assert_eq!(err, StoreError::DuplicateKey { key: k.clone() });
    }
    assert_unchanged(&*store, &before, w.rev).await;
}

/// One commit that moves an instance's records from one node to another and deletes another
/// instance's records shows each node its own part at the one revision: the old node sees the
/// moved records leave and the deleted ones go, the new node sees them arrive.
pub async fn commit_moves_and_deletes_across_nodes(store: Arc<dyn Store>) {
    let (inst, doc) = (key("instances", "m"), key("mmds", "m"));
    let (dead, dead_doc) = (key("instances", "d"), key("mmds", "d"));
    ok("m", store.put(put(&inst, Some("n1"), &["ip/m"], b"m", Expect::Any))).await;
    let wd = write(&*store, &doc, Some("n1"), b"md").await;
    write(&*store, &dead, Some("n2"), b"d").await;
    let start = write(&*store, &dead_doc, Some("n2"), b"dd").await.rev;
    let n1 = Scope::Node("n1".into());
    let n2 = Scope::Node("n2".into());
    let mut feed1 = subscribe(&*store, &n1, start).await;
    let mut feed2 = subscribe(&*store, &n2, start).await;

    let ops = vec![
        Op::Put(put(&inst, Some("n2"), &["ip/m"], b"m2", Expect::Present)),
        Op::Put(put(&doc, Some("n2"), &[], b"md", Expect::Revision(wd.rev))),
        delete_op(&dead_doc, Expect::Any),
        delete_op(&dead, Expect::Present),
    ];
    let rev = ok("commit", store.commit(ops)).await.rev;
    let (got, changes) = next_changes(&mut feed1, start).await;
    assert_eq!(got, rev);
    assert_eq!(
        sorted(changes),
        vec![
            Change::Delete { key: inst.clone(), node: Some("n1".into()) },
            Change::Delete { key: doc.clone(), node: Some("n1".into()) },
        ]
    );
    let (got, changes) = next_changes(&mut feed2, start).await;
    assert_eq!(got, rev);
    assert_eq!(
        sorted(changes),
        vec![
            Change::Delete { key: dead.clone(), node: Some("n2".into()) },
            Change::Put(record(&inst, Some("n2"), &["ip/m"], b"m2", rev)),
            Change::Delete { key: dead_doc.clone(), node: Some("n2".into()) },
            Change::Put(record(&doc, Some("n2"), &[], b"md", rev)),
        ]
    );
    let mut snap = ok("snapshot n2", store.snapshot(&n2)).await;
    snap.records.sort_by(|x, y| x.key.cmp(&y.key));
    assert_eq!(snap.rev, rev);
    assert_eq!(
        snap.records,
        vec![record(&inst, Some("n2"), &["ip/m"], b"m2", rev), record(&doc, Some("n2"), &[], b"md", rev)]
    );
    assert!(ok("snapshot n1", store.snapshot(&n1)).await.records.is_empty());
}

/// A node following shared collections sees its own records and the unplaced records of those
/// collections (never an unplaced record of another collection, never another node's), in the
/// snapshot and in the feed, in revision order, a commit spanning both as one event.
pub async fn node_follows_shared_collections(store: Arc<dyn Store>) {
    let scope = Scope::Node("n1".into()).with_shared(&["roles"]);
    let role = key("roles", "app");
    let mine = key("instances", "mine");
    write(&*store, &role, None, b"r1").await;
    write(&*store, &key("instances", "unplaced"), None, b"u").await;
    write(&*store, &key("instances", "theirs"), Some("n2"), b"t").await;
    let start = write(&*store, &mine, Some("n1"), b"m1").await.rev;

    let mut snapshot = ok("snapshot", store.snapshot(&scope)).await;
    assert_eq!(snapshot.rev, start);
    snapshot.records.sort_by(|a, b| a.key.cmp(&b.key));
    let keys: Vec<&Key> = snapshot.records.iter().map(|record| &record.key).collect();
    assert_eq!(keys, [&mine, &role]);
    assert!(ok("snapshot n1", store.snapshot(&Scope::Node("n1".into()))).await.records.iter().all(|r| r.key != role));

    let mut feed = subscribe(&*store, &scope, start).await;
    // Interleaved writes to both arrive in revision order, each exactly once.
    let mut expected = Vec::new();
    for i in 0..3 {
        let value = format!("r{}", i + 2);
        let w = write(&*store, &role, None, value.as_bytes()).await;
        expected.push((w.rev, vec![Change::Put(record(&role, None, &[], value.as_bytes(), w.rev))]));
        write(&*store, &key("instances", "unplaced"), None, value.as_bytes()).await;
        write(&*store, &key("instances", "theirs"), Some("n2"), value.as_bytes()).await;
        let w = write(&*store, &mine, Some("n1"), value.as_bytes()).await;
        expected.push((w.rev, vec![Change::Put(record(&mine, Some("n1"), &[], value.as_bytes(), w.rev))]));
    }
    // One commit over a shared record and the node's own: one event.
    let ops = vec![
        Op::Put(put(&role, None, &[], b"both", Expect::Present)),
        Op::Put(put(&mine, Some("n1"), &[], b"both", Expect::Present)),
        Op::Put(put(&key("instances", "theirs"), Some("n2"), &[], b"both", Expect::Present)),
    ];
    let rev = ok("commit", store.commit(ops)).await.rev;
    expected.push((
        rev,
        sorted(vec![
            Change::Put(record(&role, None, &[], b"both", rev)),
            Change::Put(record(&mine, Some("n1"), &[], b"both", rev)),
        ]),
    ));
    let rev = ok("delete role", store.delete(&role, Expect::Any)).await;
    expected.push((rev, vec![Change::Delete { key: role.clone(), node: None }]));
    let mut last = start;
    for (rev, changes) in expected {
        let (got, got_changes) = next_changes(&mut feed, last).await;
        assert_eq!((got, sorted(got_changes)), (rev, changes), "after {last}");
        last = rev;
    }
    // Out-of-scope writes alone still move the feed on.
    let head = write(&*store, &key("instances", "unplaced"), None, b"late").await.rev;
    let mut seen = last;
    while seen < head {
        match next_item(&mut feed).await {
            Some(Ok(FeedEvent::Progress { rev })) => seen = rev,
            other => panic!("expected progress past out-of-scope writes to {head} from {seen}, got {other:?}"),
        }
    }
}

// ---- leases -----------------------------------------------------------------------------------

/// The TTL of the lease cases: short, and no shorter than the test etcd's minimum (1 s).
const LEASE_TTL: Duration = Duration::from_secs(2);

async fn acquire(store: &dyn Store, key: &Key, holder: &str, ttl: Duration) -> Acquired {
    ok("acquire", store.acquire(key, holder, ttl)).await
}

/// Polls `holder`'s acquire until it holds the lease, for at most `WAIT` plus the TTL.
async fn acquire_eventually(store: &dyn Store, key: &Key, holder: &str) -> Acquired {
    let deadline = tokio::time::Instant::now() + WAIT + LEASE_TTL;
    loop {
        let found = acquire(store, key, holder, LEASE_TTL).await;
        if found == Acquired::Held || tokio::time::Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A free lease is taken; a second holder is refused and told who holds it; the holder renews
/// it; a lease is no record (reads, listings and snapshots never show it).
pub async fn lease_acquire_and_contention(store: Arc<dyn Store>) {
    let lease = key("refreshers", "app");
    let other = key("refreshers", "web");
    let head = revision(&*store).await;
    assert_eq!(acquire(&*store, &lease, "hv-a", Duration::from_secs(60)).await, Acquired::Held);
    assert_eq!(acquire(&*store, &lease, "hv-b", Duration::from_secs(60)).await, Acquired::HeldBy("hv-a".into()));
    assert_eq!(acquire(&*store, &lease, "hv-a", Duration::from_secs(60)).await, Acquired::Held, "renewal");
    assert_eq!(acquire(&*store, &lease, "hv-b", Duration::from_secs(60)).await, Acquired::HeldBy("hv-a".into()));
    // Leases are independent of each other.
    assert_eq!(acquire(&*store, &other, "hv-b", Duration::from_secs(60)).await, Acquired::Held);
    assert_eq!(acquire(&*store, &other, "hv-a", Duration::from_secs(60)).await, Acquired::HeldBy("hv-b".into()));
    assert_eq!(get(&*store, &lease).await, None, "a lease is not a record");
    let page = ok("list", store.list("refreshers", None, 10)).await;
    assert!(page.records.is_empty(), "a listing shows a lease: {:?}", page.records);
    let snapshot = ok("snapshot", store.snapshot(&Scope::All)).await;
    assert!(snapshot.records.is_empty(), "a snapshot shows a lease: {:?}", snapshot.records);
    assert!(snapshot.rev >= head);
}

/// A holder that keeps renewing keeps the lease past its TTL: another holder is refused all along.
pub async fn lease_renewal_keeps_it(store: Arc<dyn Store>) {
    let lease = key("refreshers", "app");
    assert_eq!(acquire(&*store, &lease, "hv-a", LEASE_TTL).await, Acquired::Held);
    let until = tokio::time::Instant::now() + 2 * LEASE_TTL;
    for _ in 0..40 {
        if tokio::time::Instant::now() >= until {
            break;
        }
        tokio::time::sleep(LEASE_TTL / 4).await;
        assert_eq!(acquire(&*store, &lease, "hv-a", LEASE_TTL).await, Acquired::Held, "renewing");
        assert_eq!(acquire(&*store, &lease, "hv-b", LEASE_TTL).await, Acquired::HeldBy("hv-a".into()));
    }
    assert!(tokio::time::Instant::now() >= until, "the renewals ended early");
}

/// A holder that stops renewing loses the lease after its TTL: another holder then takes it,
/// and the old holder learns it lost it.
pub async fn lease_expiry_hands_it_over(store: Arc<dyn Store>) {
    let lease = key("refreshers", "app");
    assert_eq!(acquire(&*store, &lease, "hv-a", LEASE_TTL).await, Acquired::Held);
    assert_eq!(acquire(&*store, &lease, "hv-b", LEASE_TTL).await, Acquired::HeldBy("hv-a".into()));
    assert_eq!(acquire_eventually(&*store, &lease, "hv-b").await, Acquired::Held, "the lease never lapsed");
    assert_eq!(acquire(&*store, &lease, "hv-a", LEASE_TTL).await, Acquired::HeldBy("hv-b".into()));
}

/// A released lease is free at once (long before its TTL); only its holder releases it.
pub async fn lease_release_hands_it_over_at_once(store: Arc<dyn Store>) {
    let lease = key("refreshers", "app");
    let long = Duration::from_secs(300);
    assert_eq!(acquire(&*store, &lease, "hv-a", long).await, Acquired::Held);
    ok("release by another holder", store.release(&lease, "hv-b")).await;
    assert_eq!(acquire(&*store, &lease, "hv-b", long).await, Acquired::HeldBy("hv-a".into()), "not its to release");
    ok("release", store.release(&lease, "hv-a")).await;
    assert_eq!(acquire(&*store, &lease, "hv-b", long).await, Acquired::Held);
    assert_eq!(acquire(&*store, &lease, "hv-a", long).await, Acquired::HeldBy("hv-b".into()));
    ok("release of a lease not held", store.release(&key("refreshers", "none"), "hv-a")).await;
}
