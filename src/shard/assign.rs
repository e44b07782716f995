//! Which replicas scrape a node: rendezvous (highest random weight) hashing of the node name
//! over the live replicas. Each replica computes it alone from the same membership and gets the
//! same answer; a replica joining or leaving moves only the nodes it gains or had.
//!
//! The hash must be the same in every process and every build (a `RandomState` or std's
//! unspecified `DefaultHasher` would give each replica its own assignment): FNV-1a over the
//! bytes, finished by the SplitMix64 mixer so that near-identical names spread evenly.

use std::sync::Arc;

/// The replicas, in a fixed order, and how many scrape each node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    replicas: Vec<Arc<str>>,
    replication: usize,
}

/// What this replica does for one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Scrapes it and writes its points to the network sinks.
    Writer,
    /// Scrapes it for the APIs and keeps its recent ticks, ready to take over.
    Standby,
    /// Another replica's node.
    None,
}

impl Assignment {
    /// `replicas`: the live identities (any order, duplicates ignored).
    pub fn new(mut replicas: Vec<Arc<str>>, replication: usize) -> Assignment {
        replicas.sort();
        replicas.dedup();
        Assignment {
            replicas,
            replication: replication.max(1),
        }
    }

    pub fn replicas(&self) -> &[Arc<str>] {
        &self.replicas
    }

    /// The replicas that scrape `node`, best first: the first is its writer.
    pub fn owners(&self, node: &str) -> Vec<Arc<str>> {
        let node_hash = fnv1a(FNV_OFFSET, node.as_bytes());
        let mut scored: Vec<(u64, &Arc<str>)> = self
            .replicas
            .iter()
            .map(|r| (mix(fnv1a(node_hash ^ 0xff, r.as_bytes())), r))
            .collect();
        // Highest score first; the identity breaks a tie so every replica agrees.
        scored.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        scored
            .into_iter()
            .take(self.replication)
            .map(|(_, r)| Arc::clone(r))
            .collect()
    }

    /// The writer of `node`, if any replica is live.
    pub fn writer(&self, node: &str) -> Option<Arc<str>> {
        self.owners(node).into_iter().next()
    }

    /// What `me` does for `node`.
    pub fn role(&self, node: &str, me: &str) -> Role {
        match self.owners(node).iter().position(|r| &**r == me) {
            Some(0) => Role::Writer,
            Some(_) => Role::Standby,
            None => Role::None,
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(seed, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
}

/// SplitMix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replicas(n: usize) -> Vec<Arc<str>> {
        (0..n).map(|i| Arc::from(format!("heapster-{i}"))).collect()
    }

    fn nodes(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node-{i:05}")).collect()
    }

    const PINNED: [&str; 4] = ["heapster-1", "heapster-2", "heapster-2", "heapster-0"];

    #[test]
    fn the_same_in_every_process() {
        // Fixed values: a change of hash would reassign every node of a running cluster
        // during a rolling upgrade, with replicas of both versions disagreeing.
        let a = Assignment::new(replicas(3), 1);
        let got: Vec<String> = ["node-00000", "node-00001", "node-00002", "node-00003"]
            .iter()
            .map(|n| a.writer(n).expect("writer").to_string())
            .collect();
        let again = Assignment::new(replicas(3).into_iter().rev().collect(), 1);
        for (n, w) in ["node-00000", "node-00001", "node-00002", "node-00003"]
            .iter()
            .zip(&got)
        {
            assert_eq!(&*again.writer(n).expect("writer"), w.as_str());
        }
        assert_eq!(got, PINNED);
    }

    #[test]
    fn balanced_over_replicas() {
        let all = nodes(10_000);
        for n in [2, 3, 5, 10] {
            let a = Assignment::new(replicas(n), 1);
            let mut counts = vec![0usize; n];
            for node in &all {
                let w = a.writer(node).expect("writer");
                let i: usize = w.trim_start_matches("heapster-").parse().expect("index");
                counts[i] += 1;
            }
            let fair = all.len() / n;
            for c in counts {
                assert!(
                    c.abs_diff(fair) * 100 < fair * 8,
                    "{n} replicas: {c} vs {fair}"
                );
            }
        }
    }

    #[test]
    fn a_join_or_leave_moves_only_what_must_move() {
        let all = nodes(5_000);
        let three = Assignment::new(replicas(3), 1);
        let four = Assignment::new(replicas(4), 1);
        let mut moved = 0usize;
        for node in &all {
            let (before, after) = (three.writer(node), four.writer(node));
            if before != after {
                // Only to the newcomer.
                assert_eq!(after.as_deref(), Some("heapster-3"));
                moved += 1;
            }
        }
        // About a quarter move.
        assert!(moved.abs_diff(all.len() / 4) < all.len() / 25, "{moved}");
        // Leaving: only the leaver's nodes move, and the standby takes them.
        let with = Assignment::new(replicas(3), 2);
        let without = Assignment::new(replicas(3)[..2].to_vec(), 2);
        for node in &all {
            let owners = with.owners(node);
            if owners[0].as_ref() != "heapster-2" {
                assert_eq!(without.writer(node), Some(Arc::clone(&owners[0])));
            } else {
                assert_eq!(without.writer(node), Some(Arc::clone(&owners[1])));
            }
        }
    }

    #[test]
    fn replication_picks_distinct_replicas_and_roles() {
        let a = Assignment::new(replicas(3), 2);
        for node in nodes(100) {
            let owners = a.owners(&node);
            assert_eq!(owners.len(), 2);
            assert_ne!(owners[0], owners[1]);
            assert_eq!(a.role(&node, &owners[0]), Role::Writer);
            assert_eq!(a.role(&node, &owners[1]), Role::Standby);
        }
        // More replication than replicas: every replica.
        assert_eq!(Assignment::new(replicas(2), 3).owners("x").len(), 2);
        assert!(Assignment::new(Vec::new(), 1).writer("x").is_none());
    }
}
