//! `--source=simulated:`: starts the in-process simulated cluster and points a Kubernetes
//! source at it, so the demo exercises the same code path as a real cluster.

use crate::config::{KubernetesSource, SimulatedSource};
use crate::sim::SimCluster;

pub async fn start(_s: &SimulatedSource) -> anyhow::Result<(KubernetesSource, SimCluster)> {
    anyhow::bail!("the simulated source is not available yet")
}
