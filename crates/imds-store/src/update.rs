//! Optimistic read-modify-write over a [`Store`]: the one retry loop every writer uses.
//!
//! Owns [`update`], [`Step`] and [`Plan`]. An update is a closure run once per attempt: it
//! reads what it needs, decides, and returns the operations to commit. Each operation is
//! either *fixed* (its precondition is the caller's own, an `If-Match`: its failure is the
//! answer) or *guarded* (its precondition records what the attempt read: its failure means a
//! concurrent write won, and the update starts over with a fresh read). The policy is the same
//! for every writer: at most [`ATTEMPTS`] attempts (the second at once, each later one after a
//! short randomised pause), then [`StoreError::Contended`].
//!
//! Also owns [`Lanes`]: the writers of one process that update records of the same name (an
//! instance and what is attached to it) take turns, first come first served, so that within
//! one process a stream of writes to one record cannot starve an update of another that reads
//! it; only writers in other processes race.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::{Committed, Key, Op, Store, StoreError};

/// How many attempts an update makes before giving up with [`StoreError::Contended`].
pub const ATTEMPTS: usize = 8;

/// The longest pause after a lost race, before the next attempt: the pause after the n-th
/// lost race is random in `0..min(2^n ms, PAUSE_CAP)`, so writers that collided spread out.
const PAUSE_CAP: Duration = Duration::from_millis(64);

/// What one attempt of an [`update`] decided.
#[derive(Debug)]
pub enum Step<T> {
    /// Commit the plan's operations; the update then returns its value with the commit.
    Commit(Plan<T>),
    /// Nothing to write: the update returns this value at once.
    Done(T),
}

/// The operations one attempt commits, and the value the update returns when they commit.
#[derive(Debug)]
pub struct Plan<T> {
    ops: Vec<Op>,
    guarded: Vec<Key>,
    value: T,
}

impl<T> Plan<T> {
    /// A plan committing nothing yet, returning `value`.
    pub fn new(value: T) -> Self {
        Self { ops: Vec::new(), guarded: Vec::new(), value }
    }

    /// Adds an operation whose precondition the caller chose: if it fails, that error is the
    /// update's answer.
    pub fn fixed(mut self, op: Op) -> Self {
        self.ops.push(op);
        self
    }

    /// Adds an operation whose precondition records what this attempt read: if it fails, a
    /// concurrent write won and the update starts over.
    pub fn guarded(mut self, op: Op) -> Self {
        self.guarded.push(op.key().clone());
        self.ops.push(op);
        self
    }

    /// Adds several guarded operations.
    pub fn guarded_all(self, ops: impl IntoIterator<Item = Op>) -> Self {
        ops.into_iter().fold(self, Plan::guarded)
    }

    /// Whether `error` is a guarded precondition failing: a lost race.
    fn lost_race(&self, error: &StoreError) -> bool {
        match error {
            StoreError::NotFound { key }
            | StoreError::AlreadyExists { key, .. }
            | StoreError::RevisionMismatch { key, .. } => self.guarded.contains(key),
            _ => false,
        }
    }
}

/// The outcome of a successful [`update`].
#[derive(Debug)]
pub struct Updated<T> {
    /// The value of the attempt that finished.
    pub value: T,
    /// Its commit; `None` when it had nothing to write ([`Step::Done`]).
    pub committed: Option<Committed>,
}

/// Runs `attempt` until its plan commits, it is done, or it fails; a commit lost to a
/// concurrent write starts a new attempt, at most [`ATTEMPTS`] in all. `what` names the record
/// for [`StoreError::Contended`].
///
/// `attempt`'s own errors (and store errors of its reads, through `E: From<StoreError>`) end
/// the update at once, as does a fixed precondition or any other failing commit.
pub async fn update<T, E, F, Fut>(store: &(impl Store + ?Sized), what: &Key, mut attempt: F) -> Result<Updated<T>, E>
where
    E: From<StoreError>,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Step<T>, E>>,
{
    for lost in 0..ATTEMPTS {
        // One lost race is the usual collision: retry at once. Repeated ones spread out.
        if lost > 1 {
            tokio::time::sleep(pause(lost)).await;
        }
        let plan = match attempt().await? {
            Step::Done(value) => return Ok(Updated { value, committed: None }),
            Step::Commit(plan) => plan,
        };
        match store.commit(plan.ops.clone()).await {
            Ok(committed) => return Ok(Updated { value: plan.value, committed: Some(committed) }),
            Err(error) if plan.lost_race(&error) => {
                tracing::debug!(%what, %error, "a concurrent write won; updating again");
            }
            Err(error) => return Err(error.into()),
        }
    }
    Err(StoreError::Contended { key: what.clone(), attempts: ATTEMPTS }.into())
}

/// The pause after the `lost`-th lost race: random below `2^lost` ms, at most [`PAUSE_CAP`].
fn pause(lost: usize) -> Duration {
    let ceiling = Duration::from_millis(1 << lost.min(16)).min(PAUSE_CAP);
    // Each `RandomState` is freshly keyed: hashing nothing with it is a cheap random number.
    let random = RandomState::new().hash_one(());
    ceiling.mul_f64((random >> 11) as f64 / (1u64 << 53) as f64)
}

/// Turns by name: [`Lanes::enter`] waits until no other holder of the same name's turn is left
/// in this process (first come, first served), and the [`Turn`] it returns ends when dropped.
/// Names nobody holds or waits for take no memory.
#[derive(Debug, Default)]
pub struct Lanes {
    lanes: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Lanes {
    /// Waits for `name`'s turn.
    pub async fn enter(&self, name: &str) -> Turn<'_> {
        let lane = {
            let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(lanes.entry(name.to_owned()).or_default())
        };
        let held = lane.lock_owned().await;
        Turn { lanes: self, name: name.to_owned(), held: Some(held) }
    }

    /// [`update`], in `name`'s turn: the turn begins before the first attempt's read and ends
    /// with the update.
    pub async fn update<T, E, F, Fut>(
        &self,
        name: &str,
        store: &(impl Store + ?Sized),
        what: &Key,
        attempt: F,
    ) -> Result<Updated<T>, E>
    where
        E: From<StoreError>,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Step<T>, E>>,
    {
        let _turn = self.enter(name).await;
        update(store, what, attempt).await
    }

    /// How many names are held or waited for now.
    pub fn len(&self) -> usize {
        self.lanes.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether no name is held or waited for.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One writer's turn at a name of [`Lanes`]; the next waiter's turn begins when it is dropped.
#[derive(Debug)]
pub struct Turn<'a> {
    lanes: &'a Lanes,
    name: String,
    held: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut lanes = self.lanes.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        drop(self.held.take());
        // Waiters hold the lane too: when only the table does, nobody is left.
        if lanes.get(&self.name).is_some_and(|lane| Arc::strong_count(lane) == 1) {
            lanes.remove(&self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::memory::MemoryStore;
    use crate::{Expect, Put, Revision};

    fn counter() -> Key {
        Key::new("counters", "c")
    }

    /// One increment: read the counter, write it plus one, guarded by the revision read.
    async fn increment(store: &MemoryStore) -> Result<Updated<u64>, StoreError> {
        update(store, &counter(), || async {
            let current = store.get(&counter()).await?;
            let expect = current.as_ref().map_or(Expect::Absent, |record| Expect::Revision(record.rev));
            let n = current.map_or(0, |record| std::str::from_utf8(&record.value).unwrap().parse::<u64>().unwrap());
            let value = (n + 1).to_string().into_bytes();
            let put = Put { key: counter(), node: None, claims: Vec::new(), value, expect };
            Ok(Step::Commit(Plan::new(n + 1).guarded(Op::Put(put))))
        })
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_updates_lose_nothing() {
        let store = Arc::new(MemoryStore::new());
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let mut done = 0;
                    while done < 25 {
                        match increment(&store).await {
                            Ok(_) => done += 1,
                            Err(StoreError::Contended { .. }) => {}
                            Err(other) => panic!("{other}"),
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(store.get(&counter()).await.unwrap().unwrap().value, b"100");
    }

    #[tokio::test]
    async fn a_fixed_precondition_is_the_answer_and_a_lost_race_retries() {
        let store = MemoryStore::new();
        let first = increment(&store).await.unwrap();
        assert_eq!(first.value, 1);
        let stale = Revision(first.committed.unwrap().rev.0 + 9);
        let attempts = AtomicUsize::new(0);
        let result: Result<Updated<()>, StoreError> = update(&store, &counter(), || async {
            attempts.fetch_add(1, Ordering::SeqCst);
            let put = Put {
                key: counter(),
                node: None,
                claims: Vec::new(),
                value: b"x".to_vec(),
                expect: Expect::Revision(stale),
            };
            Ok(Step::Commit(Plan::new(()).fixed(Op::Put(put))))
        })
        .await;
        assert!(matches!(result, Err(StoreError::RevisionMismatch { .. })), "{result:?}");
        assert_eq!(attempts.load(Ordering::SeqCst), 1, "a fixed precondition is not retried");

        // A guard that can never hold: every attempt loses, then the update gives up.
        let attempts = AtomicUsize::new(0);
        let result: Result<Updated<()>, StoreError> = update(&store, &counter(), || async {
            attempts.fetch_add(1, Ordering::SeqCst);
            Ok(Step::Commit(Plan::new(()).guarded(Op::Check { key: counter(), expect: Expect::Absent })))
        })
        .await;
        assert!(matches!(result, Err(StoreError::Contended { attempts: ATTEMPTS, .. })), "{result:?}");
        assert_eq!(attempts.load(Ordering::SeqCst), ATTEMPTS);
        assert_eq!(store.get(&counter()).await.unwrap().unwrap().value, b"1", "nothing was written");

        let done: Updated<u8> =
            update(&store, &counter(), || async { Ok::<_, StoreError>(Step::Done(7)) }).await.unwrap();
        assert_eq!((done.value, done.committed), (7, None));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn turns_of_one_name_come_in_order_and_leave_nothing_behind() {
        let lanes = Arc::new(Lanes::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = lanes.enter("i-1").await;
        let other = lanes.enter("i-2").await;
        assert_eq!(lanes.len(), 2, "another name's turn does not wait");
        let mut waiters = Vec::new();
        for n in 0..3 {
            let (lanes, order) = (Arc::clone(&lanes), Arc::clone(&order));
            waiters.push(tokio::spawn(async move {
                let _turn = lanes.enter("i-1").await;
                order.lock().unwrap().push(n);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }));
            // Let each waiter queue before the next one.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(order.lock().unwrap().is_empty(), "a waiter ran during another's turn");
        drop(first);
        drop(other);
        for waiter in waiters {
            waiter.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2], "turns were not first come, first served");
        assert!(lanes.is_empty(), "names nobody holds are still kept");

        // A waiter that gives up leaves nothing behind either.
        let held = lanes.enter("i-1").await;
        let gave_up = tokio::time::timeout(Duration::from_millis(20), lanes.enter("i-1")).await;
        assert!(gave_up.is_err(), "a second turn began while the first was held");
        drop(held);
        assert!(lanes.is_empty());
    }

    #[test]
    fn pauses_grow_and_stay_under_the_cap() {
        for lost in 1..=ATTEMPTS {
            let ceiling = Duration::from_millis(1 << lost).min(PAUSE_CAP);
            let pauses: Vec<_> = (0..200).map(|_| pause(lost)).collect();
            assert!(pauses.iter().all(|pause| *pause < ceiling), "a pause over {ceiling:?}");
            let distinct: std::collections::HashSet<_> = pauses.iter().collect();
            assert!(distinct.len() > 100, "pauses after {lost} lost races are not random: {distinct:?}");
        }
    }
}
