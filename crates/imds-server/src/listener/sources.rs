//! Per-source connection bookkeeping of a guest listener: at most `cap` connections from one
//! address at once, so one guest (or one address a tenant forges) cannot hold the listener's
//! shared `max_connections` and leave other instances' guests waiting in the backlog.
//!
//! A connection beyond the cap closes that source's oldest idle connection (no request in
//! flight: a keep-alive connection, or one still sending its headers, as slowloris does); when
//! every connection of the source is busy (long polls), the new one is refused. Nothing here
//! touches another source's connections.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// The connections of every source of one listener.
#[derive(Debug)]
pub(super) struct Sources {
    cap: usize,
    next_id: AtomicU64,
    by_source: Mutex<HashMap<IpAddr, VecDeque<Slot>>>,
}

#[derive(Debug)]
struct Slot {
    id: u64,
    activity: Arc<Activity>,
}

/// What the bookkeeping knows of one connection, and how it asks the connection to close.
#[derive(Debug)]
pub(super) struct Activity {
    in_flight: AtomicUsize,
    /// Cancelled when the connection must close (it was its source's oldest idle one); the
    /// connection's own stop token, which the listener's shutdown cancels too.
    pub(super) evicted: CancellationToken,
}

impl Activity {
    /// Whether no request is in flight.
    pub(super) fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// Marks a request in flight until the returned guard drops.
    pub(super) fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }
}

/// A request in flight on a connection.
#[derive(Debug)]
pub(super) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An admitted connection: its slot is given back when it drops.
#[derive(Debug)]
pub(super) struct Admission {
    sources: Arc<Sources>,
    source: IpAddr,
    id: u64,
    /// The connection's activity, for its requests and its eviction.
    pub(super) activity: Arc<Activity>,
}

impl Sources {
    /// Bookkeeping with at most `cap` connections per source address (at least one).
    pub(super) fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self { cap: cap.max(1), next_id: AtomicU64::new(0), by_source: Mutex::new(HashMap::new()) })
    }

    /// Admits a new connection from `source`, first closing its oldest idle connection when
    /// the source is at its cap (by cancelling its `stop`); `None` (refuse it) when all of
    /// them have requests in flight.
    pub(super) fn admit(self: &Arc<Self>, source: IpAddr, stop: CancellationToken) -> Option<Admission> {
        let source = source.to_canonical();
        let activity = Arc::new(Activity { in_flight: AtomicUsize::new(0), evicted: stop });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut by_source = self.by_source.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let slots = by_source.entry(source).or_default();
        if slots.len() >= self.cap {
            let idle = slots.iter().position(|slot| slot.activity.is_idle())?;
            if let Some(evicted) = slots.remove(idle) {
                evicted.activity.evicted.cancel();
            }
        }
        slots.push_back(Slot { id, activity: Arc::clone(&activity) });
        drop(by_source);
        Some(Admission { sources: Arc::clone(self), source, id, activity })
    }

    /// How many connections `source` holds (for tests).
    #[cfg(test)]
    fn held(&self, source: IpAddr) -> usize {
        let by_source = self.by_source.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        by_source.get(&source.to_canonical()).map_or(0, VecDeque::len)
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut by_source = self.sources.by_source.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(slots) = by_source.get_mut(&self.source) {
            slots.retain(|slot| slot.id != self.id);
            if slots.is_empty() {
                by_source.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_idle_connection_of_the_source_makes_room() {
        let sources = Sources::new(2);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let first = sources.admit(a, CancellationToken::new()).unwrap();
        let second = sources.admit(a, CancellationToken::new()).unwrap();
        let busy = first.activity.request();
        let other = sources.admit(b, CancellationToken::new()).unwrap();
        // `first` is busy, so the idle `second` is closed for the third.
        let third = sources.admit(a, CancellationToken::new()).unwrap();
        assert!(second.activity.evicted.is_cancelled());
        assert!(!first.activity.evicted.is_cancelled() && !other.activity.evicted.is_cancelled());
        assert_eq!((sources.held(a), sources.held(b)), (2, 1));
        // All busy: refused.
        let _busy_third = third.activity.request();
        assert!(sources.admit(a, CancellationToken::new()).is_none());
        drop(busy);
        assert!(sources.admit(a, CancellationToken::new()).is_some());
        assert!(first.activity.evicted.is_cancelled());
        drop((first, second, third, other));
        assert_eq!((sources.held(a), sources.held(b)), (0, 0));
        assert!(sources.by_source.lock().unwrap().is_empty(), "no entry is kept for a source without connections");
    }

    #[test]
    fn ipv4_mapped_addresses_are_the_same_source() {
        let sources = Sources::new(1);
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let first = sources.admit(v4, CancellationToken::new()).unwrap();
        let _second = sources.admit(mapped, CancellationToken::new()).unwrap();
        assert!(first.activity.evicted.is_cancelled());
    }
}
