//! What dialects keep of one version of an instance's record between requests.
//!
//! Whoever holds the record (the server's view) keeps one [`Cache`] beside each version of it
//! and passes it in the [`Subject`](crate::Subject); a new version of the record comes with a new,
//! empty cache, so nothing here is ever stale. Only what depends on the record alone is kept:
//! the EC2 tree, and whole answers of dialects that render documents from the record (GCE's tree,
//! Azure's instance document). Answers that read guest state, MMDS, the clock, credentials,
//! signatures or a session token are computed for every request.

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

use crate::{ec2, GuestResponse};

/// The most answers kept per record version. Guests ask for a handful of paths; when a guest
/// walks more than this many distinct ones, the kept answers are dropped and collected anew.
const MAX_ANSWERS: usize = 64;

/// Renderings of one version of an instance record, filled by the requests that need them.
#[derive(Debug, Default)]
pub struct Cache {
    ec2: OnceLock<ec2::Tree>,
    answers: RwLock<HashMap<String, GuestResponse>>,
}

impl Cache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The EC2 tree slot.
    pub(crate) fn ec2(&self) -> &OnceLock<ec2::Tree> {
        &self.ec2
    }

    /// The kept answer for `key`, if any.
    fn answer(&self, key: &str) -> Option<GuestResponse> {
        let answers = self.answers.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        answers.get(key).cloned()
    }

    /// Keeps `response` as the answer for `key`.
    fn keep(&self, key: String, response: &GuestResponse) {
        let mut answers = self.answers.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if answers.len() >= MAX_ANSWERS && !answers.contains_key(&key) {
            answers.clear();
        }
        answers.insert(key, response.clone());
    }

    /// How many answers are kept (for tests).
    pub fn answers(&self) -> usize {
        self.answers.read().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }
}

/// Answers from `cache` when it holds an answer for `key`; otherwise renders. `render` returns
/// the answer and whether it depends on the record alone; such answers with status 200 are
/// kept. Without a cache, renders every time.
pub(crate) fn answer_with(
    cache: Option<&Cache>,
    key: impl FnOnce() -> String,
    render: impl FnOnce() -> (GuestResponse, bool),
) -> GuestResponse {
    let Some(cache) = cache else {
        return render().0;
    };
    let key = key();
    if let Some(kept) = cache.answer(&key) {
        return kept;
    }
    let (response, record_only) = render();
    if record_only && response.status == http::StatusCode::OK && response.write.is_none() {
        cache.keep(key, &response);
    }
    response
}
