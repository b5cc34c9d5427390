//! Wall-clock time as Unix seconds (timestamps are read and written by `imds_model::time`).
//!
//! [`Clock`] anchors the wall clock once and then advances with `tokio::time`, so tests that
//! pause tokio's clock (`tokio::time::pause`/`advance`) move credential expiry and rotation
//! deterministically, without sleeping.

/// A wall clock that advances with tokio's clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin_unix: u64,
    origin: tokio::time::Instant,
}

impl Clock {
    /// Anchored at the system's current time.
    pub fn system() -> Self {
        let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Self::starting_at(unix)
    }

    /// Anchored at `unix` seconds now (tests).
    pub fn starting_at(unix: u64) -> Self {
        Self { origin_unix: unix, origin: tokio::time::Instant::now() }
    }

    /// The current time, Unix seconds.
    pub fn now(&self) -> u64 {
        self.origin_unix.saturating_add(self.origin.elapsed().as_secs())
    }
}
