//! heapster-rs: a Kubernetes cluster metrics collector compatible with Heapster.
//!
//! Data flows one way: [`source`] (apiserver discovery, kubelet scraping) → [`process`] (rates,
//! enrichment, aggregation; pure) → [`store`] / [`sink`] → [`api`]. [`model`] is the vocabulary
//! they share; [`config`] turns flags into a validated [`config::Config`]; [`app`] wires it up.

pub mod api;
pub mod app;
pub mod certificate;
pub mod config;
pub mod events;
pub mod model;
pub mod process;
pub mod rbac;
pub mod shard;
pub mod sim;
pub mod sink;
pub mod source;
pub mod store;
#[doc(hidden)]
pub mod testing;
