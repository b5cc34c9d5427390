//! Keeps the renderings instances hold (EC2 trees, GCE and Azure answers) within their budget.
//!
//! Each version of an instance record keeps what its guests asked for in its
//! [`Cache`](imds_dialects::Cache); all caches draw on one [`Budget`],
//! and a rendering that does not fit is served without being kept. [`tend`] makes room: it drops
//! the renderings of instances whose guests have been quiet for [`IDLE`], and when the budget runs
//! high, those of the least recently asked instances first. A million registered instances thus
//! cost their records plus at most the budget, and the instances asking now stay fast. A pass
//! walks the caches that hold bytes ([`Budget::held`]), however many instances are registered.

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use tokio_util::sync::CancellationToken;

use imds_dialects::Budget;

use super::View;

/// Renderings nobody asked for in this long are dropped.
pub const IDLE: Duration = Duration::from_secs(600);

/// How often the budget is checked.
const PERIOD: Duration = Duration::from_secs(2);

/// Above this share of the budget (in tenths), the least recently used renderings are dropped…
const HIGH_TENTHS: usize = 9;
/// …until the budget is back under this share.
const LOW_TENTHS: usize = 7;

/// Tends the view's renderings until `shutdown`: every two seconds when the budget runs high,
/// and every tenth of [`IDLE`] to drop idle ones. `clock` is the one guest requests read.
pub async fn tend(view: View, clock: imds_creds::Clock, shutdown: CancellationToken) {
    let mut idle_checked = Instant::now();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(PERIOD) => {}
        }
        let budget = Arc::clone(view.load().budget());
        let high = budget.used() > budget.limit() / 10 * HIGH_TENTHS;
        if !high && idle_checked.elapsed() < IDLE / 10 {
            continue;
        }
        idle_checked = Instant::now();
        // A pass may clear many caches: off the request threads.
        let freed = tokio::task::spawn_blocking(move || sweep(&budget, clock.now(), IDLE.as_secs())).await.unwrap_or(0);
        if freed > 0 {
            tracing::debug!(freed, used = view.load().budget().used(), "dropped kept renderings");
        }
    }
}

/// One pass over the caches holding bytes of `budget` at `now` (Unix seconds, the clock
/// requests use): drops the renderings of instances idle for `idle_secs` or more,
/// then, while the budget is above its high mark, those of the least recently asked instances
/// until it is under its low mark. Returns the bytes given back.
pub fn sweep(budget: &Budget, now: u64, idle_secs: u64) -> usize {
    let before = budget.used();
    let mut kept = Vec::new();
    for held in budget.held() {
        let idle = held.idle_secs(now);
        if idle >= idle_secs {
            held.clear();
        } else {
            kept.push((idle, held));
        }
    }
    if budget.used() > budget.limit() / 10 * HIGH_TENTHS {
        kept.sort_unstable_by_key(|(idle, _)| Reverse(*idle));
        for (_, held) in kept {
            if budget.used() <= budget.limit() / 10 * LOW_TENTHS {
                break;
            }
            held.clear();
        }
    }
    before.saturating_sub(budget.used())
}
