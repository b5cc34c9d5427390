//! Per-instance request throttling: one instance can never starve another.
//!
//! Each served instance has a [`Bucket`] (kept across view rebuilds), checked with the generic
//! cell rate algorithm: one atomic "theoretical arrival time", advanced by a compare-and-swap,
//! so the guest path stays lock-free. A request over the instance's rate and burst is answered
//! `429 Too Many Requests`, as EC2 does; AWS tells clients to back off and retry.

use std::sync::atomic::{AtomicU64, Ordering};

/// How many requests an instance may make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    /// Sustained requests per second; 0 turns throttling off.
    pub per_second: u32,
    /// Requests allowed at once above the sustained rate.
    pub burst: u32,
}

impl Throttle {
    /// The least time a request over the budget waits before its refusal is sent. A guest
    /// flooding at full speed then holds each of its connections idle instead of spending the
    /// CPU the other instances' requests need: with `limits.max_connections_per_source` 64, at
    /// most 1,280 refusals a second per source.
    pub const REFUSAL_DELAY: std::time::Duration = std::time::Duration::from_millis(50);

    /// How long the `n`th refusal (counted over the process) is held: from [`Self::REFUSAL_DELAY`]
    /// to three times it, spread evenly over consecutive refusals (a Weyl sequence). Refusals
    /// that arrived together then go out apart, so a flooding guest's connections do not all
    /// come back at once and queue another instance's request behind a burst.
    pub fn refusal_delay(n: u64) -> std::time::Duration {
        // The fractional part of n times the golden ratio, as 16 bits: consecutive values
        // fall far apart and every stretch of them covers the range evenly.
        let spread = u64::from((n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48) as u16);
        let base = Self::REFUSAL_DELAY.as_micros() as u64;
        std::time::Duration::from_micros(base + spread * 2 * base / 65_536)
    }

    /// The hold of the next refusal of this process ([`Self::refusal_delay`]).
    pub fn next_refusal_delay() -> std::time::Duration {
        static REFUSALS: AtomicU64 = AtomicU64::new(0);
        Self::refusal_delay(REFUSALS.fetch_add(1, Ordering::Relaxed))
    }
}

impl Default for Throttle {
    /// 1000 requests per second with bursts of 2000: far above what any guest agent needs,
    /// low enough that a runaway loop in one VM cannot take the service from the others.
    fn default() -> Self {
        Self { per_second: 1000, burst: 2000 }
    }
}

/// One instance's request budget.
#[derive(Debug, Default)]
pub struct Bucket {
    /// The time (ns on the throttle's clock) at which the bucket would be full again.
    theoretical_arrival: AtomicU64,
    /// The instance's requests, counted when `[metrics] per_instance` is on (kept here because
    /// the bucket lives across view rebuilds, like the count).
    pub(crate) requests: AtomicU64,
}

impl Bucket {
    /// Takes one request at `now` (ns on a monotonic clock); `false` when over the budget.
    pub fn try_take(&self, throttle: Throttle, now: u64) -> bool {
        if throttle.per_second == 0 {
            return true;
        }
        let interval = 1_000_000_000 / u64::from(throttle.per_second).max(1);
        let tolerance = interval.saturating_mul(u64::from(throttle.burst.max(1)) - 1);
        let mut current = self.theoretical_arrival.load(Ordering::Relaxed);
        loop {
            let arrival = current.max(now);
            if arrival - now > tolerance {
                return false;
            }
            match self.theoretical_arrival.compare_exchange_weak(
                current,
                arrival + interval,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn refusals_that_arrive_together_are_held_for_spread_out_times() {
        let min = Throttle::REFUSAL_DELAY;
        // 64 refusals in a row (one source's connections at the cap) are each held at least the
        // delay and less than three times it, and leave at times spread over that whole range:
        // sorted, no two are more than 4 ms apart and they span at least 90 ms.
        let mut holds: Vec<_> = (1_000..1_064).map(Throttle::refusal_delay).collect();
        assert!(holds.iter().all(|hold| *hold >= min && *hold < min * 3), "{holds:?}");
        holds.sort();
        let gaps = holds.windows(2).map(|pair| pair[1] - pair[0]).max().unwrap();
        assert!(gaps <= std::time::Duration::from_millis(4), "largest gap {gaps:?}: {holds:?}");
        assert!(holds[63] - holds[0] >= std::time::Duration::from_millis(90), "{holds:?}");
    }

    #[test]
    fn a_burst_passes_then_the_sustained_rate_applies() {
        let bucket = Bucket::default();
        let throttle = Throttle { per_second: 10, burst: 5 };
        let now = 100 * SECOND;
        let passed = (0..20).filter(|_| bucket.try_take(throttle, now)).count();
        assert_eq!(passed, 5, "the burst, then nothing at the same instant");
        // A tenth of a second later one more request is allowed.
        assert!(bucket.try_take(throttle, now + SECOND / 10));
        assert!(!bucket.try_take(throttle, now + SECOND / 10));
        // After a quiet second the whole burst is back.
        let later = now + 2 * SECOND;
        assert_eq!((0..20).filter(|_| bucket.try_take(throttle, later)).count(), 5);
    }

    #[test]
    fn zero_turns_throttling_off() {
        let bucket = Bucket::default();
        let off = Throttle { per_second: 0, burst: 0 };
        assert!((0..10_000).all(|_| bucket.try_take(off, 0)));
    }

    #[test]
    fn concurrent_takers_never_exceed_the_burst() {
        let bucket = std::sync::Arc::new(Bucket::default());
        let throttle = Throttle { per_second: 1, burst: 100 };
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let bucket = std::sync::Arc::clone(&bucket);
                std::thread::spawn(move || (0..100).filter(|_| bucket.try_take(throttle, 5 * SECOND)).count())
            })
            .collect();
        let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(total, 100);
    }
}
