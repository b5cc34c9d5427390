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
//! served but not kept. The holder frees room by [`Cache::clear`]ing caches whose guests have
//! gone quiet ([`Cache::idle_secs`], on the requests' clock, [`Context::now`](crate::Context::now)), so that memory stays bounded however many instances are
//! registered and the instances asking now are the ones whose renderings are kept.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use crate::{ec2, GuestResponse};

/// The most answers kept per record version. Guests ask for a handful of paths; when a guest
/// walks more than this many distinct ones, the kept answers are dropped and collected anew.
const MAX_ANSWERS: usize = 64;

/// What one kept answer costs besides its key and body: the response, its headers and the
/// map slot.
const ANSWER_OVERHEAD: usize = 320;

/// The bytes every [`Cache`] of a process may keep together.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    used: AtomicUsize,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self { limit, used: AtomicUsize::new(0) })
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
#[derive(Debug)]
pub struct Cache {
    budget: Arc<Budget>,
    ec2: RwLock<Option<Arc<ec2::Tree>>>,
    answers: RwLock<HashMap<String, GuestResponse>>,
    /// The bytes this cache holds of the budget.
    bytes: AtomicUsize,
    /// When a request last used this cache ([`Context::now`](crate::Context::now), Unix seconds).
    used_at: AtomicU64,
}

impl Cache {
    /// An empty cache drawing on `budget`.
    pub fn new(budget: Arc<Budget>) -> Self {
        Self {
            budget,
            ec2: RwLock::new(None),
            answers: RwLock::new(HashMap::new()),
            bytes: AtomicUsize::new(0),
            used_at: AtomicU64::new(0),
        }
    }

    /// The bytes this cache keeps.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// How many answers are kept.
    pub fn answers(&self) -> usize {
        self.answers.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether the EC2 tree is kept.
    pub fn has_ec2_tree(&self) -> bool {
        self.ec2.read().unwrap_or_else(PoisonError::into_inner).is_some()
    }

    /// Seconds from the last request that used this cache to `now` (Unix seconds).
    pub fn idle_secs(&self, now: u64) -> u64 {
        now.saturating_sub(self.used_at.load(Ordering::Relaxed))
    }

    /// Drops everything kept and gives its bytes back to the budget; requests render again.
    pub fn clear(&self) {
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

    /// Charges `bytes` to this cache if the budget has room.
    fn charge(&self, bytes: usize) -> bool {
        let fits = self.budget.take(bytes);
        if fits {
            self.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
        fits
    }

    /// The instance's EC2 tree: the kept one, or `build`'s (kept when the budget has room).
    pub(crate) fn ec2_tree(&self, now: u64, build: impl FnOnce() -> ec2::Tree) -> Arc<ec2::Tree> {
        self.touch(now);
        if let Some(tree) = &*self.ec2.read().unwrap_or_else(PoisonError::into_inner) {
            return Arc::clone(tree);
        }
        let tree = Arc::new(build());
        let mut slot = self.ec2.write().unwrap_or_else(PoisonError::into_inner);
        match &*slot {
            // Another request built it meanwhile.
            Some(kept) => Arc::clone(kept),
            None => {
                if self.charge(tree.heap_size()) {
                    *slot = Some(Arc::clone(&tree));
                }
                tree
            }
        }
    }

    /// The kept answer for `key`, if any.
    fn answer(&self, now: u64, key: &str) -> Option<GuestResponse> {
        self.touch(now);
        self.answers.read().unwrap_or_else(PoisonError::into_inner).get(key).cloned()
    }

    /// Keeps `response` as the answer for `key` when the budget has room.
    fn keep(&self, key: String, response: &GuestResponse) {
        let cost = |key: &str, response: &GuestResponse| key.len() + response.body.len() + ANSWER_OVERHEAD;
        let mut answers = self.answers.write().unwrap_or_else(PoisonError::into_inner);
        if answers.contains_key(&key) {
            return;
        }
        if answers.len() >= MAX_ANSWERS {
            let freed: usize = answers.drain().map(|(key, response)| cost(&key, &response)).sum();
            self.bytes.fetch_sub(freed, Ordering::Relaxed);
            self.budget.give_back(freed);
        }
        if self.charge(cost(&key, response)) {
            answers.insert(key, response.clone());
        }
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        self.budget.give_back(*self.bytes.get_mut());
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
        cache.keep(key, &response);
    }
    response
}
