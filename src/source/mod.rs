//! Sources: the apiserver (node and pod discovery) and the kubelets (samples).

pub mod apiserver;
pub mod credentials;
pub mod decode;
pub mod http1;
pub mod kubelet;
pub mod quantity;
pub mod resource_metrics;
pub mod scrape;
pub mod summary;
pub mod watch;
