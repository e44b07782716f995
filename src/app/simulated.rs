//! `--source=simulated:`: starts the in-process simulated cluster and points a Kubernetes
//! source at it, so the demo exercises the same code path as a real cluster: with `https=true`
//! the in-cluster mode (service-account token and CA, kubelets over https on their advertised
//! port with the same token); otherwise the insecure apiserver port and plain-http kubelets.

use std::path::PathBuf;

use rand::Rng;

use crate::config::{ApiAuth, KubernetesSource, SimulatedSource};
use crate::sim::{SimAuth, SimCluster, SimOptions};

/// The simulated cluster and the service-account directory written for it.
pub struct Simulation {
    pub cluster: SimCluster,
    sa_dir: Option<PathBuf>,
}

impl Simulation {
    pub async fn shutdown(self) {
        self.cluster.shutdown().await;
        if let Some(dir) = self.sa_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub async fn start(s: &SimulatedSource) -> anyhow::Result<(KubernetesSource, Simulation)> {
    let token: String = {
        let mut rng = rand::rng();
        (0..32)
            .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
            .collect()
    };
    let opts = SimOptions {
        nodes: s.nodes,
        pods_per_node: s.pods_per_node,
        containers_per_pod: s.containers_per_pod,
        https: s.https,
        auth: if s.https {
            SimAuth::Token(token)
        } else {
            SimAuth::None
        },
        ..SimOptions::default()
    };
    let cluster = SimCluster::start(opts).await?;
    tracing::info!(
        nodes = s.nodes,
        pods_per_node = s.pods_per_node,
        apiserver = %cluster.api_url(),
        "simulated cluster started"
    );
    let mut source = KubernetesSource::new(Some(cluster.api_url()));
    source.auth = ApiAuth::None;
    let mut sa_dir = None;
    if s.https {
        let dir = std::env::temp_dir().join(format!(
            "heapster-sim-{}-{}",
            std::process::id(),
            rand::rng().random::<u32>()
        ));
        std::fs::create_dir_all(&dir)?;
        cluster.write_service_account_dir(&dir)?;
        source.auth = ApiAuth::InCluster;
        source.service_account_dir = dir.clone();
        sa_dir = Some(dir);
    } else {
        source.kubelet_port = Some(cluster.kubelet_port());
        source.kubelet_https = false;
    }
    Ok((source, Simulation { cluster, sa_dir }))
}
