//! How fresh the view is: whether the replica loop follows the store right now, and when it
//! last heard from it.
//!
//! Owns [`FeedHealth`], shared by the [`View`](crate::view::View) so the replica loop writes it
//! and `/readyz` reads it. While the store is away guests keep being served from the last
//! view; this is what says so. Sections under its lock are short and never await.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

/// The replica loop's connection to the store.
#[derive(Debug, Default)]
pub struct FeedHealth {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// When the last change or progress notice arrived (or the view was loaded).
    heard: Option<Instant>,
    /// Whether a feed is open.
    connected: bool,
    /// Why the last store call of the loop failed, while it is not connected.
    error: Option<String>,
}

/// What [`FeedHealth::status`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthStatus {
    /// Whether the loop follows the store right now.
    pub connected: bool,
    /// Time since the last change or progress notice; `None` before the view was loaded.
    pub staleness: Option<Duration>,
    /// The last error while not connected.
    pub error: Option<String>,
}

impl FeedHealth {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A change or progress notice arrived (or a snapshot was loaded).
    pub fn heard(&self) {
        self.lock().heard = Some(Instant::now());
    }

    /// A feed is open.
    pub fn connected(&self) {
        let mut inner = self.lock();
        inner.connected = true;
        inner.error = None;
    }

    /// The store could not be followed.
    pub fn disconnected(&self, error: &str) {
        let mut inner = self.lock();
        inner.connected = false;
        inner.error = Some(error.to_owned());
    }

    /// The current figures.
    pub fn status(&self) -> HealthStatus {
        let inner = self.lock();
        HealthStatus {
            connected: inner.connected,
            staleness: inner.heard.map(|heard| heard.elapsed()),
            error: inner.error.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn staleness_counts_from_the_last_notice_and_errors_show_until_reconnected() {
        let health = FeedHealth::default();
        assert_eq!(health.status(), HealthStatus { connected: false, staleness: None, error: None });
        health.connected();
        health.heard();
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(health.status().staleness, Some(Duration::from_millis(1500)));
        health.disconnected("etcd: connection refused");
        let status = health.status();
        assert!(!status.connected);
        assert_eq!(status.error.as_deref(), Some("etcd: connection refused"));
        health.connected();
        health.heard();
        assert_eq!(health.status(), HealthStatus { connected: true, staleness: Some(Duration::ZERO), error: None });
    }
}
