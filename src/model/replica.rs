//! The other replicas of this collector, as the membership sees them: what the APIs ask when
//! they answer for the whole cluster.

use std::sync::Arc;

/// Another live replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its identity in the membership (the pod name in a cluster).
    pub identity: Arc<str>,
    /// Where its APIs answer, e.g. `https://10.0.3.7:8443`.
    pub url: Arc<str>,
}

/// The live replicas other than this one. Cheap to call: it reads what the membership last
/// saw, never the network.
pub trait Peers: Send + Sync {
    fn peers(&self) -> Vec<Peer>;
}

/// One replica alone (no sharding): nobody to ask.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPeers;

impl Peers for NoPeers {
    fn peers(&self) -> Vec<Peer> {
        Vec::new()
    }
}

/// A fixed list (tests).
impl Peers for Vec<Peer> {
    fn peers(&self) -> Vec<Peer> {
        self.clone()
    }
}
