//! What dialects keep of one version of an instance's record between requests.
//!
//! Whoever holds the record (the server's view) keeps one [`Cache`] beside each version of it
//! and passes it in the [`Subject`](crate::Subject); a new version of the record comes with a new,
//! empty cache, so nothing here is ever stale. Only what depends on the record alone is kept:
//! the EC2 tree, and whole answers of dialects that render documents from the record (GCE's tree,
//! Azure's instance document). Answers that read guest state, MMDS, the clock, credentials,
//! signatures or a session token are computed for every request.
//!
//! Every cache of a process draws on one [`Budget`] of bytes: a rendering that would exceed it is
//! served but not kept. The holder frees room by clearing caches whose guests have gone quiet
//! ([`Held::idle_secs`], on the requests' clock, [`Context::now`](crate::Context::now)), so that
//! memory stays bounded however many instances are registered and the instances asking now are
//! the ones whose renderings are kept. The budget lists the caches that hold bytes
//! ([`Budget::held`]), so making room walks those, not every registered instance; a cache that
//! holds nothing is two words.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, Weak};

use crate::{ec2, GuestResponse};

/// The most answers kept per record version. Guests ask for a handful of paths; when a guest
/// walks more than this many distinct ones, the kept answers are dropped and collected anew.
const MAX_ANSWERS: usize = 64;

/// What one kept answer costs besides its key and body: the response, its headers and the
/// map slot.
const ANSWER_OVERHEAD: usize = 320;

/// The bytes every [`Cache`] of a process may keep together, and the caches that keep some.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    used: AtomicUsize,
    /// Caches that were charged since they were last found empty (a cache is listed once).
    listed: Mutex<Vec<Weak<Kept>>>,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self { limit, used: AtomicUsize::new(0), listed: Mutex::new(Vec::new()) })
    }

    /// A budget nothing exhausts (tests, tools).
    pub fn unlimited() -> Arc<Self> {
        Self::new(usize::MAX)
    }

    /// The limit in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The bytes kept now, over all caches.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The caches that hold bytes now. Caches found empty or dropped leave the list; the lock
    /// is held only to take the list and to put the survivors back, never while walking it.
    pub fn held(&self) -> Vec<Held> {
        let listed = std::mem::take(&mut *self.listed.lock().unwrap_or_else(PoisonError::into_inner));
        let mut held = Vec::with_capacity(listed.len());
        for weak in listed {
            let Some(kept) = weak.upgrade() else { continue };
            if kept.bytes.load(Ordering::Relaxed) == 0 {
                kept.listed.store(false, Ordering::Relaxed);
                // A charge between the two reads saw the cache still listed and did not list
                // it again: keep it, unless that charge has listed it itself meanwhile.
                if kept.bytes.load(Ordering::Relaxed) == 0 || kept.listed.swap(true, Ordering::Relaxed) {
                    continue;
                }
            }
            held.push(Held(kept));
        }
        let mut listed = self.listed.lock().unwrap_or_else(PoisonError::into_inner);
        listed.extend(held.iter().map(|held| Arc::downgrade(&held.0)));
        held
    }

    /// Takes `bytes` if they fit.
    fn take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// Renderings of one version of an instance record, filled by the requests that need them.
/// Until something is kept it holds only its budget.
#[derive(Debug)]
pub struct Cache {
    budget: Arc<Budget>,
    kept: OnceLock<Arc<Kept>>,
}

/// What a [`Cache`] keeps, made on its first rendering.
#[derive(Debug)]
struct Kept {
    budget: Arc<Budget>,
    ec2: RwLock<Option<Arc<ec2::Tree>>>,
    answers: RwLock<HashMap<String, GuestResponse>>,
    /// The bytes this cache holds of the budget.
    bytes: AtomicUsize,
    /// When a request last used this cache ([`Context::now`](crate::Context::now), Unix seconds).
    used_at: AtomicU64,
    /// Whether the budget lists it.
    listed: AtomicBool,
}

/// A cache that holds bytes, as [`Budget::held`] lists it.
#[derive(Debug)]
pub struct Held(Arc<Kept>);

impl Held {
    /// The bytes it keeps.
    pub fn bytes(&self) -> usize {
        self.0.bytes.load(Ordering::Relaxed)
    }

    /// Seconds from the last request that used it to `now` (Unix seconds).
    pub fn idle_secs(&self, now: u64) -> u64 {
        self.0.idle_secs(now)
    }

    /// Drops everything it keeps and gives the bytes back; its requests render again.
    pub fn clear(&self) {
        self.0.clear();
    }
}

impl Kept {
    fn idle_secs(&self, now: u64) -> u64 {
        now.saturating_sub(self.used_at.load(Ordering::Relaxed))
    }

    fn clear(&self) {
        let tree = self.ec2.write().unwrap_or_else(PoisonError::into_inner).take();
        let answers = std::mem::take(&mut *self.answers.write().unwrap_or_else(PoisonError::into_inner));
        drop((tree, answers));
        self.budget.give_back(self.bytes.swap(0, Ordering::Relaxed));
    }

    /// Notes a request at `now` (written only when the second changed, so that requests do
    /// not all write the same cache line).
    fn touch(&self, now: u64) {
        if self.used_at.load(Ordering::Relaxed) != now {
            self.used_at.store(now, Ordering::Relaxed);
        }
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        self.budget.give_back(*self.bytes.get_mut());
    }
}

impl Cache {
    /// An empty cache drawing on `budget`.
    pub fn new(budget: Arc<Budget>) -> Self {
        Self { budget, kept: OnceLock::new() }
    }

    /// The bytes this cache keeps.
    pub fn bytes(&self) -> usize {
        self.kept.get().map_or(0, |kept| kept.bytes.load(Ordering::Relaxed))
    }

    /// How many answers are kept.
    pub fn answers(&self) -> usize {
        self.kept.get().map_or(0, |kept| kept.answers.read().unwrap_or_else(PoisonError::into_inner).len())
    }

    /// Whether the EC2 tree is kept.
    pub fn has_ec2_tree(&self) -> bool {
        self.kept.get().is_some_and(|kept| kept.ec2.read().unwrap_or_else(PoisonError::into_inner).is_some())
    }

    /// Seconds from the last request that used this cache to `now` (Unix seconds).
    pub fn idle_secs(&self, now: u64) -> u64 {
        self.kept.get().map_or(now, |kept| kept.idle_secs(now))
    }

    /// Drops everything kept and gives its bytes back to the budget; requests render again.
    pub fn clear(&self) {
        if let Some(kept) = self.kept.get() {
            kept.clear();
        }
    }

    /// What this cache keeps, noting a request at `now`; made (empty) when there is none yet and
    /// the budget has room for `cost` more bytes, so a cache that never keeps anything stays small.
    fn kept_for(&self, now: u64, cost: usize) -> Option<&Arc<Kept>> {
        if let Some(kept) = self.kept.get() {
            kept.touch(now);
            return Some(kept);
        }
        if self.budget.used().saturating_add(cost) > self.budget.limit() {
            return None;
        }
        Some(self.kept.get_or_init(|| {
            Arc::new(Kept {
                budget: Arc::clone(&self.budget),
                ec2: RwLock::new(None),
                answers: RwLock::new(HashMap::new()),
                bytes: AtomicUsize::new(0),
                used_at: AtomicU64::new(now),
                listed: AtomicBool::new(false),
            })
        }))
    }

    /// Charges `bytes` to `kept` if the budget has room, listing it with the budget if it was not.
    fn charge(&self, kept: &Arc<Kept>, bytes: usize) -> bool {
        let fits = self.budget.take(bytes);
        if fits {
            kept.bytes.fetch_add(bytes, Ordering::Relaxed);
            if !kept.listed.swap(true, Ordering::Relaxed) {
                self.budget.listed.lock().unwrap_or_else(PoisonError::into_inner).push(Arc::downgrade(kept));
            }
        }
        fits
    }

    /// The instance's EC2 tree: the kept one, or `build`'s (kept when the budget has room).
    pub(crate) fn ec2_tree(&self, now: u64, build: impl FnOnce() -> ec2::Tree) -> Arc<ec2::Tree> {
        if let Some(kept) = self.kept.get() {
            kept.touch(now);
            if let Some(tree) = &*kept.ec2.read().unwrap_or_else(PoisonError::into_inner) {
                return Arc::clone(tree);
            }
        }
        let tree = Arc::new(build());
        let Some(kept) = self.kept_for(now, tree.heap_size()) else {
            return tree;
        };
        let mut slot = kept.ec2.write().unwrap_or_else(PoisonError::into_inner);
        match &*slot {
            // Another request built it meanwhile.
            Some(kept) => Arc::clone(kept),
            None => {
                if self.charge(kept, tree.heap_size()) {
                    *slot = Some(Arc::clone(&tree));
                }
                tree
            }
        }
    }

    /// The kept answer for `key`, if any.
    fn answer(&self, now: u64, key: &str) -> Option<GuestResponse> {
        let kept = self.kept.get()?;
        kept.touch(now);
        kept.answers.read().unwrap_or_else(PoisonError::into_inner).get(key).cloned()
    }

    /// Keeps `response` as the answer for `key` when the budget has room.
    fn keep(&self, now: u64, key: String, response: &GuestResponse) {
        let cost = |key: &str, response: &GuestResponse| key.len() + response.body.len() + ANSWER_OVERHEAD;
        let Some(kept) = self.kept_for(now, cost(&key, response)) else {
            return;
        };
        let mut answers = kept.answers.write().unwrap_or_else(PoisonError::into_inner);
        if answers.contains_key(&key) {
            return;
        }
        if answers.len() >= MAX_ANSWERS {
            let freed: usize = answers.drain().map(|(key, response)| cost(&key, &response)).sum();
            kept.bytes.fetch_sub(freed, Ordering::Relaxed);
            self.budget.give_back(freed);
        }
        if self.charge(kept, cost(&key, response)) {
            answers.insert(key, response.clone());
        }
    }
}

/// Answers from `cache` when it holds an answer for `key`; otherwise renders. `render` returns
/// the answer and whether it depends on the record alone; such answers with status 200 are
/// kept. Without a cache, renders every time.
pub(crate) fn answer_with(
    cache: Option<&Cache>,
    now: u64,
    key: impl FnOnce() -> String,
    render: impl FnOnce() -> (GuestResponse, bool),
) -> GuestResponse {
    let Some(cache) = cache else {
        return render().0;
    };
    let key = key();
    if let Some(kept) = cache.answer(now, &key) {
        return kept;
    }
    let (response, record_only) = render();
    if record_only
        && response.status == http::StatusCode::OK
        && response.write.is_none()
        && response.start_events.is_empty()
    {
        cache.keep(now, key, &response);
    }
    response
}
