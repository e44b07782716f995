//! The series table: `(key, series)` entries in one vector (a slab), found by key through a hash
//! table of 4-byte slab indices.
//!
//! A hash map holding the entries themselves pays for its empty buckets at the size of an entry
//! (a 56-byte key plus the series): hashbrown keeps between 7/16 and 7/8 of its buckets full,
//! so that is up to 130 % on top. Here the buckets hold a `u32`, and the slab is sized exactly.
//! A removal moves the last entry into the hole (one more lookup, by index); the order of the
//! entries is not kept, and no reader relies on it (the listings sort what they collect).

use std::hash::BuildHasher;

use hashbrown::HashTable;

use super::series::Series;
use crate::model::SetKey;

/// See the module documentation.
#[derive(Default)]
pub(crate) struct Table {
    entries: Vec<(SetKey, Series)>,
    index: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
}

impl Table {
    fn hash(&self, key: &SetKey) -> u64 {
        self.hasher.hash_one(key)
    }

    fn find(&self, key: &SetKey) -> Option<usize> {
        let entries = &self.entries;
        self.index
            .find(self.hash(key), |&i| entries[i as usize].0 == *key)
            .map(|&i| i as usize)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn get(&self, key: &SetKey) -> Option<&Series> {
        self.find(key).map(|i| &self.entries[i].1)
    }

    pub fn get_mut(&mut self, key: &SetKey) -> Option<&mut Series> {
        self.find(key).map(|i| &mut self.entries[i].1)
    }

    pub fn contains_key(&self, key: &SetKey) -> bool {
        self.find(key).is_some()
    }

    /// Adds a series (or replaces the one under `key`).
    pub fn insert(&mut self, key: SetKey, series: Series) {
        if let Some(i) = self.find(&key) {
            self.entries[i].1 = series;
            return;
        }
        let i = u32::try_from(self.entries.len()).expect("fewer than 2^32 series");
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.index.insert_unique(self.hash(&key), i, |&j| {
            hasher.hash_one(&entries[j as usize].0)
        });
        if self.entries.len() == self.entries.capacity() {
            // Grown by an eighth, not doubled: [`Table::reserve`] sizes the slab for a whole
            // batch, so growing here is for series beyond it (churn), a few at a time.
            let len = self.entries.len();
            self.entries.reserve_exact((len / 8).max(16));
        }
        self.entries.push((key, series));
    }

    /// Removes the series under `key`.
    pub fn remove(&mut self, key: &SetKey) -> Option<Series> {
        let h = self.hash(key);
        let entries = &self.entries;
        let (i, _) = self
            .index
            .find_entry(h, |&i| entries[i as usize].0 == *key)
            .ok()?
            .remove();
        Some(self.take(i as usize))
    }

    /// Takes entry `i` out of the slab (its index entry already removed): the last entry moves
    /// into its place and its index entry is updated.
    fn take(&mut self, i: usize) -> Series {
        let last = self.entries.len() - 1;
        if i != last {
            let h = self.hash(&self.entries[last].0);
            if let Some(j) = self.index.find_mut(h, |&j| j as usize == last) {
                *j = i as u32;
            }
        }
        self.entries.swap_remove(i).1
    }

    /// Keeps the series for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&SetKey, &Series) -> bool) {
        let mut i = 0;
        while i < self.entries.len() {
            let (k, s) = &self.entries[i];
            if keep(k, s) {
                i += 1;
                continue;
            }
            let h = self.hash(k);
            if let Ok(entry) = self.index.find_entry(h, |&j| j as usize == i) {
                entry.remove();
            }
            // Entry `i` is now the former last one, still to be looked at.
            self.take(i);
        }
        // A cluster that shrank by half gives the slab back (a quarter kept for regrowth).
        let len = self.entries.len();
        if len < self.entries.capacity() / 2 {
            self.entries.shrink_to(len + len / 4);
        }
    }

    /// Room for `additional` more series, in one step.
    pub fn reserve(&mut self, additional: usize) {
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.index
            .reserve(additional, |&j| hasher.hash_one(&entries[j as usize].0));
        self.entries.reserve_exact(additional);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&SetKey, &Series)> {
        self.entries.iter().map(|(k, s)| (k, s))
    }

    pub fn keys(&self) -> impl Iterator<Item = &SetKey> {
        self.entries.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &Series> {
        self.entries.iter().map(|(_, s)| s)
    }

    /// Heap bytes of the slab and the index (buckets and control bytes), without what the
    /// series own.
    pub fn heap_bytes(&self) -> usize {
        let cap = self.index.capacity();
        // hashbrown fills at most 7/8 of its buckets (all but one of fewer than 8).
        let buckets = if cap < 7 { cap + 1 } else { cap / 7 * 8 };
        let index = if cap == 0 {
            0
        } else {
            buckets * (std::mem::size_of::<u32>() + 1)
        };
        self.entries.capacity() * std::mem::size_of::<(SetKey, Series)>() + index
    }
}

#[cfg(test)]
impl std::ops::Index<&SetKey> for Table {
    type Output = Series;

    fn index(&self, key: &SetKey) -> &Series {
        self.get(key).expect("no series for the key")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn key(i: usize) -> SetKey {
        SetKey::Node {
            node: Arc::from(format!("n{i}")),
        }
    }

    fn series(seen: i64) -> Series {
        let mut s = Series::new();
        s.last_seen = seen;
        s
    }

    fn check(t: &Table, want: &[usize]) {
        assert_eq!(t.len(), want.len());
        for &i in want {
            assert_eq!(t.get(&key(i)).map(|s| s.last_seen), Some(i as i64), "{i}");
        }
        let mut seen: Vec<i64> = t.values().map(|s| s.last_seen).collect();
        seen.sort_unstable();
        assert_eq!(seen, want.iter().map(|&i| i as i64).collect::<Vec<_>>());
    }

    #[test]
    fn insert_remove_retain_keep_the_index_right() {
        let mut t = Table::default();
        t.reserve(10);
        for i in 0..100 {
            t.insert(key(i), series(i as i64));
        }
        check(&t, &(0..100).collect::<Vec<_>>());
        assert!(t.remove(&key(0)).is_some(), "the first: the last moves in");
        assert!(t.remove(&key(0)).is_none());
        check(&t, &(1..100).collect::<Vec<_>>());
        assert!(t.remove(&key(99)).is_some(), "the moved one");
        assert!(t.remove(&key(98)).is_some(), "the last one");
        t.insert(key(99), series(99));
        t.insert(key(98), series(98));
        check(&t, &(1..100).collect::<Vec<_>>());
        t.retain(|_, s| s.last_seen % 3 != 0);
        let want: Vec<usize> = (1..100).filter(|i| i % 3 != 0).collect();
        check(&t, &want);
        assert!(!t.contains_key(&key(3)));
        t.insert(key(3), series(3));
        t.insert(key(3), series(3));
        let mut want = want;
        want.push(3);
        want.sort_unstable();
        check(&t, &want);
        t.retain(|_, _| false);
        check(&t, &[]);
        assert!(t.heap_bytes() < 100 * std::mem::size_of::<(SetKey, Series)>());
    }
}
