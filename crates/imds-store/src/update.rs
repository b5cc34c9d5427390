//! Optimistic read-modify-write over a [`Store`]: the one retry loop every writer uses.
//!
//! Owns [`update`], [`Step`] and [`Plan`]. An update is a closure run once per attempt: it
//! reads what it needs, decides, and returns the operations to commit. Each operation is
//! either *fixed* (its precondition is the caller's own, an `If-Match`: its failure is the
//! answer) or *guarded* (its precondition records what the attempt read: its failure means a
//! concurrent write won, and the update starts over with a fresh read). The policy is the same
//! for every writer: at most [`ATTEMPTS`] attempts, then [`StoreError::Contended`].

use std::future::Future;

use crate::{Committed, Key, Op, Store, StoreError};

/// How many attempts an update makes before giving up with [`StoreError::Contended`].
pub const ATTEMPTS: usize = 8;

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
    for _ in 0..ATTEMPTS {
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
}
