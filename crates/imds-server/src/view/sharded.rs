//! [`ShardedMap`]: a hash map whose copies share storage, shard by shard.
//!
//! The view builds each new snapshot by copying the previous one and applying a batch of
//! changes. With a plain `HashMap` that copy costs the whole index (a million instances: tens of
//! milliseconds per admin write). Here a map is a fixed number of shards, each behind an `Arc`:
//! a copy clones only the `Arc`s, and a write copies only the shard it touches
//! (`Arc::make_mut`). A lookup costs one hash and one extra pointer hop. Keys are hashed with
//! foldhash (randomly seeded per map): they are operators' ids and addresses, and loading a
//! million instances spends much of its time hashing.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use foldhash::fast::RandomState;

/// Shards per map (a power of two): a write to a map of `n` entries copies about `n / SHARDS`
/// of them (a million instances: about a thousand keys and `Arc`s, no allocation per key).
const SHARDS: usize = 1024;

/// A hash map split into [`SHARDS`] copy-on-write shards.
#[derive(Debug, Clone)]
pub(crate) struct ShardedMap<K, V> {
    shards: Vec<Arc<HashMap<K, V, RandomState>>>,
    /// Picks the shard; copies share it, so a key stays in its shard across copies.
    hasher: RandomState,
    len: usize,
}

impl<K, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        let shard = || Arc::new(HashMap::with_hasher(RandomState::default()));
        Self { shards: (0..SHARDS).map(|_| shard()).collect(), hasher: RandomState::default(), len: 0 }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> ShardedMap<K, V> {
    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        // The high bits: HashMap uses the low ones inside each shard.
        usize::try_from(self.hasher.hash_one(key) >> (u64::BITS - SHARDS.trailing_zeros())).unwrap_or(0) % SHARDS
    }

    /// Every value, in no particular order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.shards.iter().flat_map(|shard| shard.values())
    }

    /// The value of `key`. An empty map answers without hashing: many deployments have no
    /// MMDS, guest state, events or container tokens at all, and every guest request asks.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.len == 0 {
            return None;
        }
        self.shards[self.shard(key)].get(key)
    }

    /// Inserts `value` under `key`, copying the key's shard if another map shares it.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let shard = self.shard(&key);
        let old = Arc::make_mut(&mut self.shards[shard]).insert(key, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes `key`, copying its shard only if the key is there and another map shares it.
    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard(key);
        if !self.shards[shard].contains_key(key) {
            return None;
        }
        let old = Arc::make_mut(&mut self.shards[shard]).remove(key);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// Makes room for `additional` more keys spread evenly, so loading them rehashes no shard.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let per_shard = additional.div_ceil(SHARDS);
        for shard in &mut self.shards {
            Arc::make_mut(shard).reserve(per_shard);
        }
    }

    /// How many entries it holds.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no entry.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_independent_and_share_untouched_shards() {
        let mut a = ShardedMap::default();
        for n in 0..10_000u32 {
            a.insert(n, n * 2);
        }
        let mut b = a.clone();
        b.insert(5, 0);
        b.remove(&6);
        b.insert(20_000, 1);
        assert_eq!((a.get(&5), a.get(&6), a.get(&20_000), a.len()), (Some(&10), Some(&12), None, 10_000));
        assert_eq!((b.get(&5), b.get(&6), b.get(&20_000), b.len()), (Some(&0), None, Some(&1), 10_000));
        let shared = a.shards.iter().zip(&b.shards).filter(|(x, y)| Arc::ptr_eq(x, y)).count();
        assert!(shared >= SHARDS - 3, "only the touched shards were copied ({shared} shared)");
        assert_eq!(b.remove(&123_456), None);
        assert!(!b.is_empty() && ShardedMap::<u32, u32>::default().is_empty());
    }

    #[test]
    fn reserving_makes_room_in_every_shard_and_changes_nothing_else() {
        let mut map = ShardedMap::default();
        map.insert(1u32, 1u32);
        let copy = map.clone();
        map.reserve(SHARDS * 100);
        assert!(map.shards.iter().all(|shard| shard.capacity() >= 100));
        assert_eq!((map.len(), map.get(&1), copy.get(&1)), (1, Some(&1), Some(&1)));
    }

    #[test]
    fn keys_spread_over_every_shard() {
        let mut map = ShardedMap::default();
        for n in 0..(SHARDS as u32 * 64) {
            map.insert(format!("i-{n}"), n);
        }
        let biggest = map.shards.iter().map(|shard| shard.len()).max().unwrap_or(0);
        assert!(map.shards.iter().all(|shard| !shard.is_empty()), "a shard is empty");
        assert!(biggest < 64 * 2, "the biggest shard holds {biggest} keys of an average 64");
        assert_eq!(map.values().count(), SHARDS * 64);
    }
}
