//! Sharded, highly available collection: the replicas that hold a Lease in the sharding
//! namespace ([`membership`]) split the kubelets among themselves by rendezvous hashing
//! ([`assign`]); each node's writer alone hands its points to the network sinks; the namespace
//! and cluster aggregates are added up from every replica's sums over the nodes it writes
//! ([`partials`]) and written by the holder of the aggregator Lease; and each replica answers
//! the APIs for the whole cluster by asking the others ([`peer`]).
//!
//! `shard` uses `model`, `config`, `process` and the kube client; `app` wires it.

pub mod assign;
pub mod membership;
pub mod partials;
pub mod peer;
