//! Per-role credential caches and their refresh tasks: the [`Manager`].
//!
//! Each role has a task that fetches credentials, publishes them as an immutable
//! [`RoleState`] (read lock-free by the guest path), and sleeps until the next refresh:
//! [`ROTATE_BEFORE`] ahead of expiry, or sooner when the credentials are short-lived. A failed
//! fetch keeps the previous credentials (served while they have at least [`MIN_REMAINING`]
//! left), records the error, and retries with back-off. Everything is timed with
//! `tokio::time`, so tests pause the clock instead of sleeping.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::Notify;

use crate::role::Role;
use crate::source::{self, Credentials, FetchError};
use crate::sts::HttpClient;
use crate::time::Clock;

/// Rotate this long before the credentials expire.
pub const ROTATE_BEFORE: u64 = 15 * 60;
/// Credentials with less than this left are not served (EC2: at least five minutes).
pub const MIN_REMAINING: u64 = 5 * 60;
/// The shortest wait between two successful refreshes.
pub const MIN_INTERVAL: u64 = 30;
/// Credentials with no expiry are served with one this far ahead, renewed on each refresh.
pub const ROLLING_EXPIRY: u64 = 60 * 60;
/// Back-off after failures: 5 s doubling up to 60 s.
const RETRY_FIRST: u64 = 5;
const RETRY_MAX: u64 = 60;

/// Credentials as served: the set, its expiry and when it was obtained (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The credentials.
    pub credentials: Credentials,
    /// `Expiration` (the source's, or a rolling one for credentials that do not expire).
    pub expiration: u64,
    /// `LastUpdated`: when they were fetched.
    pub last_updated: u64,
}

/// A role's current state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleState {
    /// The newest credentials obtained, if any.
    pub served: Option<Served>,
    /// The last fetch's failure, if the last fetch failed.
    pub error: Option<FetchError>,
    /// When the last fetch was attempted.
    pub last_attempt: Option<u64>,
    /// Fetches that succeeded since the role started (kept while its source stays the same).
    pub succeeded: u64,
    /// Fetches that failed since the role started (kept while its source stays the same).
    pub failed: u64,
}

impl RoleState {
    /// The credentials to serve at `now`: present and at least [`MIN_REMAINING`] from expiry.
    pub fn usable(&self, now: u64) -> Option<&Served> {
        self.served.as_ref().filter(|served| served.expiration >= now.saturating_add(MIN_REMAINING))
    }
}

/// When to refresh credentials fetched at `now` that expire at `expiration`.
pub fn next_refresh(now: u64, expiration: u64) -> u64 {
    let rotate_at = expiration.saturating_sub(ROTATE_BEFORE);
    if rotate_at >= now.saturating_add(MIN_INTERVAL) {
        rotate_at
    } else {
        // Short-lived: halfway to expiry, so they are replaced well before they stop being served.
        now + (expiration.saturating_sub(now) / 2).max(MIN_INTERVAL)
    }
}

/// The wait after `failures` consecutive failures.
fn retry_delay(failures: u32) -> u64 {
    RETRY_FIRST.saturating_mul(1u64 << failures.saturating_sub(1).min(8)).min(RETRY_MAX)
}

/// What [`Fetch::fetch`] returns: the fetch, to be awaited.
pub type Fetching<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Credentials, FetchError>> + Send + 'a>>;

/// Obtains credentials for a role (the real sources, or a fake in tests).
pub trait Fetch: Send + Sync + std::fmt::Debug + 'static {
    /// One fetch for role `name`.
    fn fetch<'a>(&'a self, name: &'a str, role: &'a Role, now: u64) -> Fetching<'a>;
}

/// The real sources ([`source::fetch`]).
#[derive(Debug, Clone, Default)]
pub struct Sources {
    http: HttpClient,
}

impl Fetch for Sources {
    fn fetch<'a>(&'a self, name: &'a str, role: &'a Role, now: u64) -> Fetching<'a> {
        Box::pin(source::fetch(name, &role.source, role.base_credentials.as_ref(), &self.http, now))
    }
}

/// One role's cache and task.
#[derive(Debug)]
struct Handle {
    /// The stored role's version (store revision), to notice replacements.
    version: u64,
    /// The role it refreshes.
    role: Role,
    state: Arc<ArcSwap<RoleState>>,
    wake: Arc<Notify>,
    task: tokio::task::AbortHandle,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every role's cache, refreshed by one task per role.
#[derive(Debug)]
pub struct Manager {
    roles: ArcSwap<HashMap<String, Arc<Handle>>>,
    fetcher: Arc<dyn Fetch>,
    clock: Clock,
    /// Serialises [`Manager::apply`] (not taken by readers).
    applying: std::sync::Mutex<()>,
}

impl Manager {
    /// A manager with no roles that fetches through `fetcher` and tells time with `clock`.
    pub fn new(fetcher: Arc<dyn Fetch>, clock: Clock) -> Self {
        Self { roles: ArcSwap::default(), fetcher, clock, applying: std::sync::Mutex::new(()) }
    }

    /// The clock it uses.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Makes the running roles equal to `roles` (name → (role, version)): new ones start,
    /// replaced ones (another version) restart at once — keeping their cached credentials
    /// while the source is the same (say, only the base credentials changed) — and missing
    /// ones stop.
    /// Must be called within a tokio runtime.
    pub fn apply(&self, roles: &HashMap<String, (Role, u64)>) {
        let _guard = self.applying.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = self.roles.load_full();
        let mut next = HashMap::with_capacity(roles.len());
        for (name, (role, version)) in roles {
            match current.get(name) {
                Some(handle) if handle.version == *version => {
                    next.insert(name.clone(), Arc::clone(handle));
                }
                previous => {
                    tracing::info!(role = %name, source = role.source.kind(), "starting credential refresh");
                    let cached = previous
                        .filter(|handle| handle.role.source == role.source)
                        .map(|handle| handle.state.load_full());
                    next.insert(name.clone(), Arc::new(self.start(name.clone(), role.clone(), *version, cached)));
                }
            }
        }
        for name in current.keys().filter(|name| !roles.contains_key(*name)) {
            tracing::info!(role = %name, "role removed; its credentials are no longer served");
        }
        self.roles.store(Arc::new(next));
    }

    fn start(&self, name: String, role: Role, version: u64, cached: Option<Arc<RoleState>>) -> Handle {
        let state = Arc::new(ArcSwap::new(cached.unwrap_or_default()));
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(refresh_loop(
            name,
            role.clone(),
            Arc::clone(&state),
            Arc::clone(&wake),
            Arc::clone(&self.fetcher),
            self.clock,
        ));
        Handle { version, role, state, wake, task: task.abort_handle() }
    }

    /// Role `name`'s current state (one atomic load), `None` if no such role.
    pub fn state(&self, name: &str) -> Option<Arc<RoleState>> {
        self.roles.load().get(name).map(|handle| handle.state.load_full())
    }

    /// Every role's state, sorted by name.
    pub fn states(&self) -> Vec<(String, Arc<RoleState>)> {
        let roles = self.roles.load();
        let mut states: Vec<_> = roles.iter().map(|(name, h)| (name.clone(), h.state.load_full())).collect();
        states.sort_by(|a, b| a.0.cmp(&b.0));
        states
    }

    /// Asks role `name` to refresh now; `false` if no such role.
    pub fn refresh(&self, name: &str) -> bool {
        match self.roles.load().get(name) {
            Some(handle) => {
                handle.wake.notify_one();
                true
            }
            None => false,
        }
    }
}

async fn refresh_loop(
    name: String,
    role: Role,
    state: Arc<ArcSwap<RoleState>>,
    wake: Arc<Notify>,
    fetcher: Arc<dyn Fetch>,
    clock: Clock,
) {
    let mut failures = 0u32;
    loop {
        let now = clock.now();
        let result = fetcher.fetch(&name, &role, now).await;
        let previous = state.load_full();
        let wait = match result {
            Ok(credentials) => {
                failures = 0;
                let expiration = credentials.expiration.unwrap_or(now + ROLLING_EXPIRY);
                if expiration < now.saturating_add(MIN_REMAINING) {
                    tracing::warn!(role = %name, expiration, "the source gave credentials that expire within five minutes");
                }
                tracing::info!(role = %name, access_key_id = %credentials.access_key_id, expiration, "credentials refreshed");
                let served = Served { credentials, expiration, last_updated: now };
                state.store(Arc::new(RoleState {
                    served: Some(served),
                    error: None,
                    last_attempt: Some(now),
                    succeeded: previous.succeeded.saturating_add(1),
                    failed: previous.failed,
                }));
                next_refresh(now, expiration) - now
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                let delay = retry_delay(failures);
                let still_valid = previous.usable(now).is_some();
                tracing::warn!(role = %name, %error, still_valid, retry_in = delay, "credential refresh failed");
                state.store(Arc::new(RoleState {
                    served: previous.served.clone(),
                    error: Some(error),
                    last_attempt: Some(now),
                    succeeded: previous.succeeded,
                    failed: previous.failed.saturating_add(1),
                }));
                delay
            }
        };
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(wait)) => {}
            () = wake.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests;
