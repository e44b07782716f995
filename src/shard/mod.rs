//! Sharded collection: several replicas split the kubelets between them and each answers the
//! APIs for the whole cluster by asking the others ([`peer`]).

pub mod peer;
