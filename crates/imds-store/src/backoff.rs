//! The jittered exponential back-off every store client retries with (the replica loop, the
//! server's start-up writes, the etcd backend's calls).

use std::time::Duration;

/// How a retry loop backs off: `initial` doubling to `max`, each delay jittered to 50–100 %
/// so that many nodes retrying after one outage spread out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The largest delay.
    pub max: Duration,
}

impl Backoff {
    /// The jittered delay before retry number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self.initial.saturating_mul(1u32 << attempt.min(16)).min(self.max);
        // Jitter from the clock's sub-second digits: uncorrelated enough between nodes, and no
        // random-number generator to carry.
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        exp.mul_f64(0.5 + f64::from(nanos % 1000) / 2000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_within_their_jitter() {
        let backoff = Backoff { initial: Duration::from_millis(10), max: Duration::from_millis(100) };
        for (attempt, full) in [(0, 10), (1, 20), (2, 40), (3, 80), (4, 100), (30, 100)] {
            let delay = backoff.delay(attempt);
            let full = Duration::from_millis(full);
            assert!(
                delay >= full / 2 && delay <= full,
                "attempt {attempt}: {delay:?} outside {:?}..={full:?}",
                full / 2
            );
        }
    }
}
