//! Set keys for unit tests, from plain names (each name its own allocation).

use std::sync::Arc;

use super::SetKey;

pub fn node(name: &str) -> SetKey {
    SetKey::Node {
        node: Arc::from(name),
    }
}

pub fn pod(ns: &str, p: &str) -> SetKey {
    SetKey::Pod {
        namespace: Arc::from(ns),
        pod: Arc::from(p),
    }
}

pub fn container(ns: &str, p: &str, c: &str) -> SetKey {
    SetKey::PodContainer {
        namespace: Arc::from(ns),
        pod: Arc::from(p),
        container: Arc::from(c),
    }
}
