//! The in-memory view guests are answered from.
//!
//! A [`Snapshot`] is an immutable index of the instances this node serves, by id, by IP address
//! and by MAC, at one store revision, with each instance's MMDS record, guest-owned state and
//! runtime events (collections [`MMDS`], [`STATE`] and [`EVENTS`], keyed by instance id, event
//! ids indexed; the schema is [`records`]). The [`replica`](crate::replica) loop builds a new snapshot
//! from every batch of changes and swaps it into the [`View`] atomically; guest requests load
//! the current `Arc<Snapshot>` and never lock, await or touch the store.
//!
//! The view also tells writers when it has caught up with a revision ([`View::wait_for`]), which
//! is how an admin write returns only once guests can read it, and long-polling guests when
//! their instance changed ([`View::changes`], module [`changes`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use imds_dialects::{Budget, Cache};
use imds_model::{ContainerTokens, EventId, GuestState, Instance, InstanceEvents, InstanceId, MacAddr, Mmds};
use imds_store::{Change, Record, Revision};
use tokio::sync::watch;

use crate::records::{self, Value};
use crate::throttle::Bucket;
use changes::Changes;
use sharded::ShardedMap;

use crate::health::FeedHealth;

pub mod changes;
pub mod renderings;
mod sharded;

// The collection names, where callers of the view have always found them.
pub use crate::records::{CONTAINER_TOKENS, EVENTS, INSTANCES, MMDS, ROLES, SECRETS, SIGNING_KEYS, STATE};

/// One served instance and the revision that last wrote it.
#[derive(Debug)]
pub struct Entry {
    /// The instance record.
    pub instance: Instance,
    /// The store revision of this version.
    pub rev: Revision,
    /// The instance's request budget, carried over from version to version.
    pub throttle: Arc<Bucket>,
    /// What dialects render from this version of the record (the EC2 tree, GCE and Azure
    /// documents), filled by the first requests that need it and dropped with the version.
    pub cache: Cache,
}

/// One instance's runtime events, as the view holds them.
#[derive(Debug)]
pub struct Events {
    /// The instance.
    pub id: InstanceId,
    /// Its events.
    pub list: InstanceEvents,
    /// The revision that last wrote them.
    pub rev: Revision,
}

/// An immutable index of served instances at one revision.
#[derive(Debug, Clone)]
pub struct Snapshot {
    rev: Revision,
    /// What the renderings kept with every instance may hold together.
    budget: Arc<Budget>,
    by_id: ShardedMap<InstanceId, Arc<Entry>>,
    by_ip: ShardedMap<IpAddr, InstanceId>,
    by_mac: ShardedMap<MacAddr, InstanceId>,
    mmds: ShardedMap<InstanceId, Arc<Mmds>>,
    state: ShardedMap<InstanceId, Arc<GuestState>>,
    /// Each instance's runtime events, and which instance every event id belongs to.
    events: ShardedMap<InstanceId, Arc<Events>>,
    event_ids: ShardedMap<EventId, InstanceId>,
    container_tokens: ShardedMap<InstanceId, Arc<ContainerTokens>>,
    /// Roles are few: a plain map, copied whole with each snapshot.
    roles: HashMap<String, (Arc<imds_creds::Role>, Revision)>,
    signer: Option<Arc<crate::sign::KeyringSigner>>,
}

impl Default for Snapshot {
    /// An empty snapshot whose renderings are not bounded.
    fn default() -> Self {
        Self::empty(Budget::unlimited())
    }
}

impl Snapshot {
    /// An empty snapshot at revision 0 whose instances keep renderings within `budget`.
    pub fn empty(budget: Arc<Budget>) -> Self {
        Self {
            rev: Revision::default(),
            budget,
            by_id: ShardedMap::default(),
            by_ip: ShardedMap::default(),
            by_mac: ShardedMap::default(),
            mmds: ShardedMap::default(),
            state: ShardedMap::default(),
            events: ShardedMap::default(),
            event_ids: ShardedMap::default(),
            container_tokens: ShardedMap::default(),
            roles: HashMap::new(),
            signer: None,
        }
    }

    /// Builds a snapshot from a store snapshot's records (other collections are skipped), its
    /// instances keeping renderings within `budget`.
    pub fn from_records(rev: Revision, records: &[Record], budget: Arc<Budget>) -> Self {
        let mut snapshot = Snapshot { rev, ..Snapshot::empty(budget) };
        snapshot.by_id.reserve(records.iter().filter(|record| record.key.collection == INSTANCES).count());
        for record in records {
            snapshot.put(record, true);
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

    /// Every instance, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = &Arc<Entry>> {
        self.by_id.values()
    }

    /// The budget every instance's renderings draw on.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// The instance with this id.
    pub fn get(&self, id: &InstanceId) -> Option<&Arc<Entry>> {
        self.by_id.get(id)
    }

    /// The instance a guest calling from `addr` is; IPv4-mapped IPv6 counts as its IPv4.
    pub fn by_ip(&self, addr: IpAddr) -> Option<&Arc<Entry>> {
        self.by_ip.get(&addr.to_canonical()).and_then(|id| self.by_id.get(id))
    }

    /// The MMDS record of instance `id`, once its MMDS is configured.
    pub fn mmds(&self, id: &InstanceId) -> Option<&Arc<Mmds>> {
        self.mmds.get(id)
    }

    /// What the guests of instance `id` wrote, if anything.
    pub fn state(&self, id: &InstanceId) -> Option<&Arc<GuestState>> {
        self.state.get(id)
    }

    /// The runtime events of instance `id`, if it has any.
    pub fn events(&self, id: &InstanceId) -> Option<&Arc<Events>> {
        self.events.get(id)
    }

    /// The instance the event `id` belongs to.
    pub fn event_owner(&self, id: &EventId) -> Option<&InstanceId> {
        self.event_ids.get(id)
    }

    /// Every instance's event list, in no particular order.
    pub fn all_events(&self) -> impl Iterator<Item = &Arc<Events>> {
        self.events.values()
    }

    /// The container credential tokens issued for instance `id`, if any.
    pub fn container_tokens(&self, id: &InstanceId) -> Option<&Arc<ContainerTokens>> {
        self.container_tokens.get(id)
    }

    /// The configured roles: name → (role, revision that last wrote it).
    pub fn roles(&self) -> &HashMap<String, (Arc<imds_creds::Role>, Revision)> {
        &self.roles
    }

    /// The identity signing keys, once stored.
    pub fn signer(&self) -> Option<&Arc<crate::sign::KeyringSigner>> {
        self.signer.as_ref()
    }

    /// The instance that owns this MAC.
    pub fn by_mac(&self, mac: MacAddr) -> Option<&Arc<Entry>> {
        self.by_mac.get(&mac).and_then(|id| self.by_id.get(id))
    }

    /// The instances `changes` touch: their record, MMDS document, guest state or events.
    pub fn touched(changes: &[Change]) -> impl Iterator<Item = InstanceId> + '_ {
        changes.iter().filter_map(|change| {
            let key = match change {
                Change::Put(record) => &record.key,
                Change::Delete { key, .. } => key,
            };
            records::PER_INSTANCE
                .contains(&key.collection.as_str())
                .then(|| InstanceId::try_from(key.id.as_str()).ok())
                .flatten()
        })
    }

    /// A copy of this snapshot with `changes` applied, at `rev`.
    pub fn apply(&self, rev: Revision, changes: &[Change]) -> Self {
        let mut next = self.clone();
        next.rev = rev;
        for change in changes {
            match change {
                Change::Put(record) => next.put(record, false),
                Change::Delete { key, .. } if key.collection == ROLES => {
                    next.roles.remove(&key.id);
                }
                Change::Delete { key, .. } if key.collection == SECRETS && key.id == SIGNING_KEYS => {
                    next.signer = None;
                }
                Change::Delete { key, .. } => {
                    let Ok(id) = InstanceId::try_from(key.id.as_str()) else { continue };
                    match key.collection.as_str() {
                        INSTANCES => {
                            next.remove(&id);
                        }
                        MMDS => {
                            next.mmds.remove(&id);
                        }
                        STATE => {
                            next.state.remove(&id);
                        }
                        EVENTS => next.remove_events(&id),
                        CONTAINER_TOKENS => {
                            next.container_tokens.remove(&id);
                        }
                        _ => {}
                    }
                }
            }
        }
        next
    }

    /// Applies one stored record; `fresh` when building from a whole store snapshot.
    fn put(&mut self, record: &Record, fresh: bool) {
        let value = match records::decode(record) {
            Ok(Some(value)) => value,
            Ok(None) => return,
            Err(error) => {
                // A record the store accepted but this build cannot read (written by a newer
                // version, or damaged): keep serving everything else and say so.
                tracing::error!(key = %record.key, rev = %record.rev, %error, "skipping unreadable record");
                return;
            }
        };
        match value {
            Value::Instance(instance) => self.put_instance(*instance, record.rev, fresh),
            Value::Mmds(id, mmds) => {
                self.mmds.insert(id, Arc::new(mmds));
            }
            Value::State(id, state) => {
                self.state.insert(id, Arc::new(state));
            }
            Value::Events(id, events) => {
                self.remove_events(&id);
                for event in &events.events {
                    self.event_ids.insert(event.id.clone(), id.clone());
                }
                self.events.insert(id.clone(), Arc::new(Events { id, list: events, rev: record.rev }));
            }
            Value::ContainerTokens(id, tokens) => {
                self.container_tokens.insert(id, Arc::new(tokens));
            }
            Value::Role(role) => {
                self.roles.insert(record.key.id.clone(), (Arc::new(role), record.rev));
            }
            Value::SigningKeys(keyring) => self.signer = Some(Arc::new(crate::sign::KeyringSigner::new(keyring))),
        }
    }

    fn remove_events(&mut self, id: &InstanceId) {
        if let Some(old) = self.events.remove(id) {
            for event in &old.list.events {
                if self.event_ids.get(&event.id) == Some(id) {
                    self.event_ids.remove(&event.id);
                }
            }
        }
    }

    /// `fresh`: building from a store snapshot, whose keys are unique, so there is no older
    /// entry to replace (a million lookups saved at a cold start).
    fn put_instance(&mut self, instance: Instance, rev: Revision, fresh: bool) {
        let old = if fresh { None } else { self.remove(&instance.id) };
        let throttle = old.map(|old| Arc::clone(&old.throttle)).unwrap_or_default();
        let id = instance.id.clone();
        for ip in instance.ipv4.iter().map(|ip| IpAddr::V4(*ip)).chain(instance.ipv6.iter().map(|ip| IpAddr::V6(*ip))) {
            self.by_ip.insert(ip, id.clone());
        }
        for mac in &instance.mac {
            self.by_mac.insert(*mac, id.clone());
        }
        self.by_id.insert(id, Arc::new(Entry { instance, rev, throttle, cache: Cache::new(Arc::clone(&self.budget)) }));
    }

    /// Removes instance `id` and its addresses from the indexes, returning its entry.
    fn remove(&mut self, id: &InstanceId) -> Option<Arc<Entry>> {
        let old = self.by_id.remove(id)?;
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
        Some(old)
    }
}

/// The bytes of renderings (EC2 trees, GCE and Azure answers) kept by default over all
/// instances: about 20,000 instances' EC2 trees.
pub const DEFAULT_RENDER_BYTES: usize = 256 << 20;

/// The shared, atomically swapped view, plus the revision it has reached.
#[derive(Debug, Clone)]
pub struct View {
    current: Arc<ArcSwap<Snapshot>>,
    reached: watch::Sender<Option<Revision>>,
    changes: Arc<Changes>,
    health: Arc<FeedHealth>,
    /// With `[net] manage`: the revision whose identity rules the host has applied; writers
    /// wait for it too.
    datapath: Arc<std::sync::OnceLock<watch::Sender<Option<Revision>>>>,
    /// The turns this process's writers take per instance id (see [`View::writers`]).
    writers: Arc<imds_store::update::Lanes>,
}

impl Default for View {
    fn default() -> Self {
        Self::new()
    }
}

impl View {
    /// An empty view that is not ready (no snapshot swapped in yet), keeping renderings within
    /// [`DEFAULT_RENDER_BYTES`].
    pub fn new() -> Self {
        Self::with_budget(Budget::new(DEFAULT_RENDER_BYTES))
    }

    /// An empty view whose instances keep renderings within `budget`.
    pub fn with_budget(budget: Arc<Budget>) -> Self {
        let (reached, _) = watch::channel(None);
        Self {
            current: Arc::new(ArcSwap::from_pointee(Snapshot::empty(budget))),
            reached,
            changes: Arc::new(Changes::default()),
            health: Arc::default(),
            datapath: Arc::default(),
            writers: Arc::default(),
        }
    }

    /// The turns of this process's writers, by instance id: every read-modify-write of an
    /// instance or of a record attached to it (MMDS, guest state, events, container tokens)
    /// takes the instance's turn, so a guest writing its state as fast as it can never makes an
    /// operator's update or move of that instance through this node lose its race.
    pub fn writers(&self) -> &imds_store::update::Lanes {
        &self.writers
    }

    /// Makes [`wait_for`](Self::wait_for) also wait until [`datapath_applied`](Self::datapath_applied)
    /// reports the revision: writes return once the host's identity rules have it.
    pub fn gate_on_datapath(&self) {
        let _ = self.datapath.set(watch::channel(None).0);
    }

    /// Records that the host's identity rules reflect everything up to `rev`.
    pub fn datapath_applied(&self, rev: Revision) {
        if let Some(applied) = self.datapath.get() {
            applied.send_if_modified(|applied| {
                if applied.is_none_or(|r| r < rev) {
                    *applied = Some(rev);
                    true
                } else {
                    false
                }
            });
        }
    }

    /// The per-instance change signals: the replica notifies the instances each swap changed.
    pub fn changes(&self) -> &Arc<Changes> {
        &self.changes
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

    /// A receiver that sees every revision the view reaches (to follow roles and keys).
    pub fn subscribe(&self) -> watch::Receiver<Option<Revision>> {
        self.reached.subscribe()
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
        let mut applied = self.datapath.get().map(watch::Sender::subscribe);
        let wait = async move {
            if reached.wait_for(|reached| reached.is_some_and(|r| r >= rev)).await.is_err() {
                return false;
            }
            match &mut applied {
                Some(applied) => applied.wait_for(|applied| applied.is_some_and(|r| r >= rev)).await.is_ok(),
                None => true,
            }
        };
        matches!(tokio::time::timeout(timeout, wait).await, Ok(true))
    }

    /// Read-your-writes for a writer of either plane: waits (at most `timeout`, the
    /// configured `write_visibility_timeout`) until guests can read revision `rev`, and says
    /// so in the log when they cannot yet (the write is durable all the same).
    pub async fn wait_visible(&self, rev: Revision, timeout: Duration) {
        if !self.wait_for(rev, timeout).await {
            tracing::warn!(%rev, ?timeout, "write is durable but not yet visible to guests");
        }
    }
}

#[cfg(test)]
mod tests;
