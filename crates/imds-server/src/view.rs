//! The in-memory view guests are answered from.
//!
//! A [`Snapshot`] is an immutable index of the instances this node serves, by id, by IP address
//! and by MAC, at one store revision. The [`replica`](crate::replica) loop builds a new snapshot
//! from every batch of changes and swaps it into the [`View`] atomically; guest requests load
//! the current `Arc<Snapshot>` and never lock, await or touch the store.
//!
//! The view also tells writers when it has caught up with a revision ([`View::wait_for`]), which
//! is how an admin write returns only once guests can read it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use imds_model::{Instance, InstanceId, MacAddr};
use imds_store::{Change, Record, Revision};
use tokio::sync::watch;

use crate::guest::throttle::Bucket;
use crate::health::FeedHealth;

/// The store collection that holds instance records.
pub const INSTANCES: &str = "instances";

/// One served instance and the revision that last wrote it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The instance record.
    pub instance: Instance,
    /// The store revision of this version.
    pub rev: Revision,
    /// The instance's request budget, carried over from version to version.
    pub throttle: Arc<Bucket>,
}

/// An immutable index of served instances at one revision.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    rev: Revision,
    by_id: HashMap<InstanceId, Arc<Entry>>,
    by_ip: HashMap<IpAddr, InstanceId>,
    by_mac: HashMap<MacAddr, InstanceId>,
}

impl Snapshot {
    /// Builds a snapshot from a store snapshot's records (other collections are skipped).
    pub fn from_records(rev: Revision, records: &[Record]) -> Self {
        let mut snapshot = Snapshot { rev, ..Snapshot::default() };
        for record in records {
            snapshot.put(record);
        }
        snapshot
    }

    /// The revision the snapshot reflects.
    pub fn rev(&self) -> Revision {
        self.rev
    }

    /// How many instances it holds.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether it holds no instance.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The instance with this id.
    pub fn get(&self, id: &InstanceId) -> Option<&Arc<Entry>> {
        self.by_id.get(id)
    }

    /// The instance a guest calling from `addr` is; IPv4-mapped IPv6 counts as its IPv4.
    pub fn by_ip(&self, addr: IpAddr) -> Option<&Arc<Entry>> {
        self.by_ip.get(&addr.to_canonical()).and_then(|id| self.by_id.get(id))
    }

    /// The instance that owns this MAC.
    pub fn by_mac(&self, mac: MacAddr) -> Option<&Arc<Entry>> {
        self.by_mac.get(&mac).and_then(|id| self.by_id.get(id))
    }

    /// A copy of this snapshot with `changes` applied, at `rev`.
    pub fn apply(&self, rev: Revision, changes: &[Change]) -> Self {
        let mut next = self.clone();
        next.rev = rev;
        for change in changes {
            match change {
                Change::Put(record) => next.put(record),
                Change::Delete { key, .. } if key.collection == INSTANCES => {
                    if let Ok(id) = InstanceId::try_from(key.id.as_str()) {
                        next.remove(&id);
                    }
                }
                Change::Delete { .. } => {}
            }
        }
        next
    }

    fn put(&mut self, record: &Record) {
        if record.key.collection != INSTANCES {
            return;
        }
        let instance = match Instance::from_bytes(&record.value) {
            Ok(instance) => instance,
            Err(error) => {
                // A record the store accepted but this build cannot read (written by a newer
                // version, or damaged): keep serving everything else and say so.
                tracing::error!(key = %record.key, rev = %record.rev, %error, "skipping unreadable instance record");
                return;
            }
        };
        let throttle = self.by_id.get(&instance.id).map(|old| Arc::clone(&old.throttle)).unwrap_or_default();
        self.remove(&instance.id);
        let id = instance.id.clone();
        for ip in instance.ipv4.iter().map(|ip| IpAddr::V4(*ip)).chain(instance.ipv6.iter().map(|ip| IpAddr::V6(*ip))) {
            self.by_ip.insert(ip, id.clone());
        }
        for mac in &instance.mac {
            self.by_mac.insert(*mac, id.clone());
        }
        self.by_id.insert(id, Arc::new(Entry { instance, rev: record.rev, throttle }));
    }

    fn remove(&mut self, id: &InstanceId) {
        let Some(old) = self.by_id.remove(id) else {
            return;
        };
        for ip in
            old.instance.ipv4.iter().map(|ip| IpAddr::V4(*ip)).chain(old.instance.ipv6.iter().map(|ip| IpAddr::V6(*ip)))
        {
            if self.by_ip.get(&ip) == Some(id) {
                self.by_ip.remove(&ip);
            }
        }
        for mac in &old.instance.mac {
            if self.by_mac.get(mac) == Some(id) {
                self.by_mac.remove(mac);
            }
        }
    }
}

/// The shared, atomically swapped view, plus the revision it has reached.
#[derive(Debug, Clone)]
pub struct View {
    current: Arc<ArcSwap<Snapshot>>,
    reached: watch::Sender<Option<Revision>>,
    health: Arc<FeedHealth>,
}

impl Default for View {
    fn default() -> Self {
        Self::new()
    }
}

impl View {
    /// An empty view that is not ready (no snapshot swapped in yet).
    pub fn new() -> Self {
        let (reached, _) = watch::channel(None);
        Self { current: Arc::new(ArcSwap::from_pointee(Snapshot::default())), reached, health: Arc::default() }
    }

    /// Whether the view follows the store right now, and how stale it is.
    pub fn health(&self) -> &FeedHealth {
        &self.health
    }

    /// The current snapshot: one atomic load, no lock.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Installs `snapshot` as the current one (after the guest-visible swap, writers waiting
    /// for its revision are released).
    pub fn swap(&self, snapshot: Snapshot) {
        let rev = snapshot.rev();
        self.current.store(Arc::new(snapshot));
        self.advance(rev);
    }

    /// Records that the view has seen everything up to `rev` although no record changed.
    pub fn advance(&self, rev: Revision) {
        self.reached.send_if_modified(|reached| {
            if reached.is_none_or(|r| r < rev) {
                *reached = Some(rev);
                true
            } else {
                false
            }
        });
    }

    /// Whether a first snapshot has been swapped in.
    pub fn is_ready(&self) -> bool {
        self.reached.borrow().is_some()
    }

    /// Waits until a first snapshot has been swapped in.
    pub async fn ready(&self) {
        let mut reached = self.reached.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = reached.wait_for(Option::is_some).await;
    }

    /// Waits until the view guests read contains revision `rev`, for at most `timeout`.
    /// Returns whether it got there.
    pub async fn wait_for(&self, rev: Revision, timeout: Duration) -> bool {
        let mut reached = self.reached.subscribe();
        let wait = async move { reached.wait_for(|reached| reached.is_some_and(|r| r >= rev)).await.is_ok() };
        matches!(tokio::time::timeout(timeout, wait).await, Ok(true))
    }
}

#[cfg(test)]
mod tests;
