//! Wall-clock time as Unix seconds (timestamps are read and written by `imds_model::time`).
//!
//! [`Clock`] anchors the wall clock once and then advances with `tokio::time`, so tests that
//! pause tokio's clock (`tokio::time::pause`/`advance`) move credential expiry and rotation
//! deterministically, without sleeping. The daemon has one: the guest plane, the renderings'
//! idle times and the credential refresher all read it.

/// A wall clock that advances with tokio's clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Wall time at `origin`, since the Unix epoch (with its fraction of a second, so that
    /// [`Clock::now`] turns to the next second when the wall clock does).
    origin_unix: std::time::Duration,
    origin: tokio::time::Instant,
}

impl Clock {
    /// Anchored at the system's current time.
    pub fn system() -> Self {
        let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Self { origin_unix: unix, origin: tokio::time::Instant::now() }
    }

    /// Anchored at `unix` seconds now (tests).
    pub fn starting_at(unix: u64) -> Self {
        Self { origin_unix: std::time::Duration::from_secs(unix), origin: tokio::time::Instant::now() }
    }

    /// The current time, Unix seconds.
    pub fn now(&self) -> u64 {
        self.origin_unix.saturating_add(self.origin.elapsed()).as_secs()
    }

    /// The tokio instant at which [`Clock::now`] reaches `unix` (now, for a time past).
    pub fn instant_at(&self, unix: u64) -> tokio::time::Instant {
        let ahead = std::time::Duration::from_secs(unix).saturating_sub(self.origin_unix);
        // Far-future times would overflow an Instant: a year is as good as forever to a sleeper
        // that is woken by every change anyway.
        let ahead = ahead.min(std::time::Duration::from_secs(366 * 24 * 3600) + self.origin.elapsed());
        (self.origin + ahead).max(tokio::time::Instant::now())
    }
}
