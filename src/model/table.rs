//! A table of entities' state keyed by [`SetKey`]: `(key, value)` entries in one vector (a slab),
//! found by key through a hash table of 4-byte slab indices. The store keeps its series in one,
//! the rate state its previous samples.
//!
//! A hash map holding the entries themselves pays for its empty buckets at the size of an entry
//! (a 56-byte key plus the value): hashbrown keeps between 7/16 and 7/8 of its buckets full, so
//! that is up to 130 % on top, and it doubles in one step. Here the buckets hold a `u32`, and the
//! slab grows by an eighth or is sized for a whole tick ([`SetTable::reserve`]). A removal moves
//! the last entry into the hole (one more lookup, by index); the order of the entries is not
//! kept, and no reader relies on it (the listings sort what they collect).

use std::hash::BuildHasher;

use hashbrown::HashTable;

use super::SetKey;

/// See the module documentation.
pub(crate) struct SetTable<V> {
    entries: Slab<(SetKey, V)>,
    index: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
}

impl<V> Default for SetTable<V> {
    fn default() -> Self {
        SetTable {
            entries: Slab::default(),
            index: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

impl<V> SetTable<V> {
    fn hash(&self, key: &SetKey) -> u64 {
        self.hasher.hash_one(key)
    }

    fn find(&self, key: &SetKey) -> Option<usize> {
        let entries = &self.entries;
        self.index
            .find(self.hash(key), |&i| entries.get(i as usize).0 == *key)
            .map(|&i| i as usize)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg_attr(not(test), allow(dead_code))] // the pair of `len` (clippy), used by tests
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &SetKey) -> Option<&V> {
        self.find(key).map(|i| &self.entries.get(i).1)
    }

    /// A mutable [`SetTable::get`] for callers that look keys up in about the order they were
    /// inserted (the store takes each node's sets in the kubelet's order, tick after tick): the
    /// entry at `*hint` is tried first, and `*hint` is left just after the entry found. A hit
    /// costs one key comparison on an entry next to the last one, where a hash lookup costs the
    /// key's hash and two cache misses (control bytes, slab index) in a table of 100,000 entries.
    pub fn get_mut_near(&mut self, key: &SetKey, hint: &mut usize) -> Option<&mut V> {
        let i = match *hint {
            h if h < self.entries.len() && self.entries.get(h).0 == *key => h,
            _ => self.find(key)?,
        };
        *hint = i + 1;
        Some(&mut self.entries.get_mut(i).1)
    }

    pub fn contains_key(&self, key: &SetKey) -> bool {
        self.find(key).is_some()
    }

    /// Adds an entry (or replaces the value under `key`).
    #[cfg(test)]
    pub fn insert(&mut self, key: SetKey, value: V) {
        if let Some(i) = self.find(&key) {
            self.entries.get_mut(i).1 = value;
            return;
        }
        self.insert_new(key, value);
    }

    /// Adds an entry under a key known to be absent (one lookup fewer than [`SetTable::insert`]).
    pub fn insert_new(&mut self, key: SetKey, value: V) {
        debug_assert!(self.find(&key).is_none(), "insert_new of a present key");
        let i = u32::try_from(self.entries.len()).expect("fewer than 2^32 entries");
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.index.insert_unique(self.hash(&key), i, |&j| {
            hasher.hash_one(&entries.get(j as usize).0)
        });
        self.entries.push((key, value));
    }

    /// Removes the entry under `key`.
    pub fn remove(&mut self, key: &SetKey) -> Option<V> {
        let h = self.hash(key);
        let entries = &self.entries;
        let (i, _) = self
            .index
            .find_entry(h, |&i| entries.get(i as usize).0 == *key)
            .ok()?
            .remove();
        Some(self.take(i as usize))
    }

    /// Takes entry `i` out of the slab (its index entry already removed): the last entry moves
    /// into its place and its index entry is updated.
    fn take(&mut self, i: usize) -> V {
        let last = self.entries.len() - 1;
        if i != last {
            let h = self.hash(&self.entries.get(last).0);
            if let Some(j) = self.index.find_mut(h, |&j| j as usize == last) {
                *j = i as u32;
            }
        }
        self.entries.swap_remove(i).1
    }

    /// Keeps the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&SetKey, &V) -> bool) {
        let mut i = 0;
        while i < self.entries.len() {
            let (k, s) = self.entries.get(i);
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
    }

    /// Room in the index for `additional` more entries, in one step (the slab grows by chunks
    /// and never moves).
    pub fn reserve(&mut self, additional: usize) {
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.index
            .reserve(additional, |&j| hasher.hash_one(&entries.get(j as usize).0));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&SetKey, &V)> {
        self.entries.iter().map(|(k, s)| (k, s))
    }

    pub fn keys(&self) -> impl Iterator<Item = &SetKey> {
        self.entries.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, s)| s)
    }

    /// Heap bytes of the slab and the index (buckets and control bytes), without what the
    /// values own.
    pub fn heap_bytes(&self) -> usize {
        let cap = self.index.capacity();
        // hashbrown fills at most 7/8 of its buckets (all but one of fewer than 8).
        let buckets = if cap < 7 { cap + 1 } else { cap / 7 * 8 };
        let index = if cap == 0 {
            0
        } else {
            buckets * (std::mem::size_of::<u32>() + 1)
        };
        self.entries.capacity() * std::mem::size_of::<(SetKey, V)>() + index
    }
}

/// Entries per chunk of a [`Slab`].
const CHUNK: usize = 1024;

/// A vector in fixed chunks of [`CHUNK`] entries: growing allocates one more chunk and never
/// moves the entries, so it never holds an old and a new copy at once (a `Vec` of 500,000
/// 240-byte entries would, for a moment, at every doubling) and wastes at most one chunk.
/// Emptied chunks are freed.
struct Slab<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    fn len(&self) -> usize {
        self.len
    }

    #[cfg_attr(not(test), allow(dead_code))]
    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn get(&self, i: usize) -> &T {
        &self.chunks[i / CHUNK][i % CHUNK]
    }

    fn get_mut(&mut self, i: usize) -> &mut T {
        &mut self.chunks[i / CHUNK][i % CHUNK]
    }

    fn push(&mut self, v: T) {
        if self.len == self.chunks.len() * CHUNK {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        self.chunks[self.len / CHUNK].push(v);
        self.len += 1;
    }

    /// Removes entry `i`; the last entry takes its place.
    fn swap_remove(&mut self, i: usize) -> T {
        assert!(i < self.len, "slab index {i} out of {}", self.len);
        let chunk = self
            .chunks
            .last_mut()
            .expect("a non-empty slab has a chunk");
        let last = chunk.pop().expect("the last chunk is never empty");
        if chunk.is_empty() {
            self.chunks.pop();
        }
        self.len -= 1;
        if i == self.len {
            last
        } else {
            std::mem::replace(self.get_mut(i), last)
        }
    }

    fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }

    fn capacity(&self) -> usize {
        self.chunks.len() * CHUNK
    }
}

#[cfg(test)]
impl<V> std::ops::Index<&SetKey> for SetTable<V> {
    type Output = V;

    fn index(&self, key: &SetKey) -> &V {
        self.get(key).expect("no entry for the key")
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

    fn series(seen: i64) -> i64 {
        seen
    }

    fn check(t: &SetTable<i64>, want: &[usize]) {
        assert_eq!(t.len(), want.len());
        for &i in want {
            assert_eq!(t.get(&key(i)).copied(), Some(i as i64), "{i}");
        }
        let mut seen: Vec<i64> = t.values().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, want.iter().map(|&i| i as i64).collect::<Vec<_>>());
    }

    #[test]
    fn insert_remove_retain_keep_the_index_right() {
        let mut t = SetTable::default();
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
        t.retain(|_, s| s % 3 != 0);
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
        assert!(t.heap_bytes() < 100 * std::mem::size_of::<(SetKey, i64)>());
    }

    #[test]
    fn lookups_near_a_hint_find_what_lookups_by_hash_find() {
        let mut t = SetTable::default();
        for i in 0..10 {
            t.insert_new(key(i), series(i as i64));
        }
        let mut hint = 0;
        // In order: each hit leaves the hint on the next entry.
        for i in 0..10 {
            assert_eq!(t.get_mut_near(&key(i), &mut hint).copied(), Some(i as i64));
            assert_eq!(hint, i + 1);
        }
        // Past the end, out of order, absent: found by hash, or not at all (hint kept).
        assert_eq!(t.get_mut_near(&key(3), &mut hint).copied(), Some(3));
        assert_eq!(hint, 4);
        assert_eq!(t.get_mut_near(&key(42), &mut hint), None);
        assert_eq!(hint, 4);
        assert_eq!(t.get_mut_near(&key(4), &mut hint).copied(), Some(4));
        // After a removal moved the last entry into a hole.
        assert!(t.remove(&key(0)).is_some());
        let mut hint = 0;
        for i in [9, 1, 2, 3] {
            assert_eq!(t.get_mut_near(&key(i), &mut hint).copied(), Some(i as i64));
        }
        assert_eq!(hint, 4);
        *t.get_mut_near(&key(5), &mut hint).expect("present") = 50;
        assert_eq!(t.get(&key(5)).copied(), Some(50));
    }

    #[test]
    fn the_slab_grows_and_shrinks_by_chunks() {
        let mut t = SetTable::default();
        let n = 2 * CHUNK + CHUNK / 2;
        for i in 0..n {
            t.insert_new(key(i), series(i as i64));
        }
        assert_eq!(t.entries.chunks.len(), 3);
        check(&t, &(0..n).collect::<Vec<_>>());
        // Removals from the first chunk are filled from the last one.
        for i in 0..CHUNK / 2 {
            assert_eq!(t.remove(&key(i)), Some(i as i64));
        }
        assert_eq!(t.entries.chunks.len(), 2, "the emptied last chunk is freed");
        check(&t, &(CHUNK / 2..n).collect::<Vec<_>>());
        t.retain(|_, s| s % 2 == 0);
        let want: Vec<usize> = (CHUNK / 2..n).filter(|i| i % 2 == 0).collect();
        check(&t, &want);
        assert_eq!(t.entries.chunks.len(), 1);
        assert!(t.heap_bytes() >= CHUNK * std::mem::size_of::<(SetKey, i64)>());
        t.retain(|_, _| false);
        assert!(t.is_empty());
        assert_eq!(t.heap_bytes(), t.index.capacity() / 7 * 8 * 5);
    }
}
