//! The registration race: a VM often asks before its orchestrator's write has landed. A request
//! from an address no instance holds is held on the view's change feed for a short time
//! ([`Config::unknown_hold`](super::Config::unknown_hold)) and answered as soon as a snapshot
//! that knows the address is swapped in.
//!
//! No polling: the waiter subscribes to the view's reached-revision watch *before* it looks at
//! the snapshot again, so a swap between its first look and its subscription still wakes it
//! (the replica swaps the snapshot in before it advances the revision). Every revision the view
//! reaches wakes every held request once, which looks the address up in the new snapshot and
//! sleeps again. At most [`Config::max_held`](super::Config::max_held) requests are held at a
//! time, over all sources; the others are refused at once, as without a hold, so hostile callers
//! cannot make the hold cost more than that many parked futures.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::view::Snapshot;

use super::Plane;

/// The default hold: long enough for an orchestrator's write that is already under way.
pub const DEFAULT_HOLD: Duration = Duration::from_millis(300);
/// The default number of requests held at once.
pub const DEFAULT_MAX_HELD: usize = 1024;

/// How many requests are held now.
#[derive(Debug, Default)]
pub(super) struct Held(AtomicUsize);

/// One held request's place, given back when dropped.
struct Slot<'a>(&'a Held);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Held {
    fn take(&self, max: usize) -> Option<Slot<'_>> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| (held < max).then_some(held + 1))
            .ok()
            .map(|_| Slot(self))
    }
}

/// Waits until a snapshot knows `caller`, for at most the configured hold; returns the newest
/// snapshot (which may still not know it).
pub(super) async fn until_known(plane: &Plane, caller: IpAddr, snapshot: Arc<Snapshot>) -> Arc<Snapshot> {
    if plane.hold.is_zero() {
        return snapshot;
    }
    let Some(_slot) = plane.held.take(plane.max_held) else {
        return snapshot;
    };
    let mut reached = plane.view.subscribe();
    let deadline = tokio::time::Instant::now() + plane.hold;
    loop {
        let current = plane.view.load();
        if current.by_ip(caller).is_some() {
            return current;
        }
        tokio::select! {
            changed = reached.changed() => {
                if changed.is_err() {
                    return current;
                }
            }
            () = tokio::time::sleep_until(deadline) => return plane.view.load(),
        }
    }
}
