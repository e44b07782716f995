//! [`SimCluster`]: starts the apiserver and kubelets, and changes the cluster at runtime (nodes
//! added, removed, made (not) ready; containers restarted), emitting watch events.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::state::{self, AuthKind, Config, KubeletCounters, NodeState, Shared};
use super::tls::{KubeletCert, Pki};
use super::{KubeletFault, KubeletStats, SimAuth, SimError, SimNodeInfo, SimOptions, SimServe};
use super::{apiserver, formulas as f, kubeconfig, kubelet, serve};
use crate::model::time::{NANOS_PER_SEC, align_down, now};

/// A running simulated cluster. Dropping it stops every server (as [`SimCluster::shutdown`] does,
/// without waiting).
pub struct SimCluster {
    pub(super) shared: Arc<Shared>,
    pub(super) pki: Option<Pki>,
    pub(super) auth: SimAuth,
    pub(super) ip_san: bool,
    pub(super) api_url: Url,
    pub(super) handle: tokio::runtime::Handle,
    pub(super) tasks: Mutex<Vec<JoinHandle<()>>>,
    /// The apiserver's accept loop: stopped and started again by
    /// [`SimCluster::stop_apiserver`] and [`SimCluster::start_apiserver`].
    pub(super) api: Mutex<ApiServer>,
}

/// The running apiserver: the token that stops it and its accept loop.
pub(super) struct ApiServer {
    pub cancel: CancellationToken,
    pub task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SimCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCluster")
            .field("api_url", &self.api_url.as_str())
            .finish_non_exhaustive()
    }
}

pub(super) fn new_node(
    index: usize,
    block: u8,
    start: i64,
    fault: Option<KubeletFault>,
) -> NodeState {
    NodeState {
        index,
        name: f::node_name(index),
        ip: f::node_ip(block, index),
        ready: true,
        removed: false,
        fault,
        start,
        rv: 1,
        created_rv: 1,
        pod_rv: HashMap::new(),
        restarts: HashMap::new(),
        counters: Arc::new(KubeletCounters::default()),
        cancel: CancellationToken::new(),
    }
}

/// Refuses sizes, blocks and ranges the address scheme cannot hold.
fn check_layout(opts: &SimOptions) -> Result<(), SimError> {
    if opts.nodes > f::MAX_NODES {
        return Err(SimError::TooManyNodes {
            nodes: opts.nodes,
            max: f::MAX_NODES,
        });
    }
    let blocks = f::blocks_for(opts.nodes);
    let max = 256 - blocks;
    if opts.layout.block.is_some_and(|b| usize::from(b) > max) {
        return Err(SimError::BlockTooHigh {
            nodes: opts.nodes,
            blocks,
            max,
        });
    }
    match &opts.serve {
        SimServe::Kubelets(range) if range.start > range.end || range.end > opts.nodes => {
            Err(SimError::BadRange {
                start: range.start,
                end: range.end,
                nodes: opts.nodes,
            })
        }
        SimServe::ApiServer
            if opts.layout.block.is_none() || opts.layout.kubelet_port.is_none() =>
        {
            Err(SimError::LayoutMissing)
        }
        _ => Ok(()),
    }
}

impl SimCluster {
    /// Binds and starts everything [`SimOptions::serve`] asks for; returns once every listener
    /// is bound. Without an apiserver ([`SimServe::Kubelets`]) [`Self::api_url`] has port 0.
    pub async fn start(opts: SimOptions) -> Result<SimCluster, SimError> {
        let auth_kind = match (&opts.auth, opts.https) {
            (_, false) | (SimAuth::None, _) => AuthKind::None,
            (SimAuth::Token(_), true) => AuthKind::Token,
            (SimAuth::ClientCert, true) => AuthKind::ClientCert,
        };
        let pki = opts
            .https
            .then(|| Pki::new(auth_kind == AuthKind::ClientCert))
            .transpose()?;
        let layout = opts.layout;
        check_layout(&opts)?;
        let faults: HashMap<usize, KubeletFault> = opts.faults.iter().copied().collect();
        let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let (api_listener, api_addr) = match opts.serve {
            SimServe::Kubelets(_) => (None, any),
            SimServe::All | SimServe::ApiServer => {
                let listener = serve::bind(any)?;
                let addr = listener
                    .local_addr()
                    .map_err(|source| SimError::Bind { addr: any, source })?;
                (Some(listener), addr)
            }
        };
        let bind_node: Vec<bool> = (0..opts.nodes)
            .map(|i| {
                let here = match &opts.serve {
                    SimServe::All => true,
                    SimServe::ApiServer => false,
                    SimServe::Kubelets(range) => range.contains(&i),
                };
                here && faults.get(&i) != Some(&KubeletFault::RefuseConnections)
            })
            .collect();
        let placement = serve::place_kubelets(&bind_node, layout.block, layout.kubelet_port)?;
        let start = match layout.start_unix_secs {
            Some(secs) => secs.saturating_mul(NANOS_PER_SEC),
            None => {
                let uptime = i64::try_from(opts.uptime_secs)
                    .ok()
                    .and_then(|s| s.checked_mul(NANOS_PER_SEC))
                    .unwrap_or(i64::MAX / 2);
                align_down(now(), NANOS_PER_SEC).saturating_sub(uptime)
            }
        };
        let cfg = Config {
            pods_per_node: opts.pods_per_node,
            containers_per_pod: opts.containers_per_pod,
            https: opts.https,
            auth: auth_kind,
            kubelet_port: placement.port,
            block: placement.block,
            api_addr,
            minor: opts.kubernetes_minor,
            start,
        };
        let cancel = CancellationToken::new();
        let mut nodes: Vec<NodeState> = (0..opts.nodes)
            .map(|i| new_node(i, placement.block, start, faults.get(&i).copied()))
            .collect();
        for node in &mut nodes {
            node.cancel = cancel.child_token();
        }
        for &i in &opts.not_ready {
            if let Some(node) = nodes.get_mut(i) {
                node.ready = false;
            }
        }
        let token = match &opts.auth {
            SimAuth::Token(t) => Some(t.clone()),
            _ => None,
        };
        let shared = Arc::new(Shared::new(cfg, token, nodes.clone(), cancel));

        let scheme = if opts.https { "https" } else { "http" };
        let api_url = Url::parse(&format!("{scheme}://{api_addr}"))
            .map_err(|e| SimError::Verifier(format!("bad apiserver URL: {e}")))?;
        let cluster = SimCluster {
            shared: Arc::clone(&shared),
            pki,
            auth: opts.auth.clone(),
            ip_san: opts.kubelet_cert_ip_san,
            api_url,
            handle: tokio::runtime::Handle::current(),
            tasks: Mutex::new(Vec::with_capacity(opts.nodes)),
            api: Mutex::new(ApiServer {
                cancel: shared.cancel.child_token(),
                task: None,
            }),
        };
        if let Some(listener) = api_listener {
            cluster.serve_apiserver(listener)?;
        }
        for (node, listener) in nodes.iter().zip(placement.listeners) {
            if let Some(listener) = listener {
                cluster.spawn_kubelet(node, listener)?;
            }
        }
        tracing::info!(api = %cluster.api_url, nodes = opts.nodes, block = placement.block,
            kubelet_port = placement.port, serve = ?opts.serve, "simulated cluster started");
        Ok(cluster)
    }

    /// When the nodes and pods started, Unix seconds.
    pub fn start_unix_secs(&self) -> i64 {
        self.shared.cfg.start / NANOS_PER_SEC
    }

    /// The first `127.B.0.0/16` block of the kubelets' addresses.
    pub fn block(&self) -> u8 {
        self.shared.cfg.block
    }

    /// Serves the apiserver on `listener` until [`ApiServer::cancel`] fires.
    pub(super) fn serve_apiserver(
        &self,
        listener: tokio::net::TcpListener,
    ) -> Result<(), SimError> {
        let tls = self.pki.as_ref().map(Pki::apiserver_config).transpose()?;
        let router = apiserver::router(Arc::clone(&self.shared));
        let mut api = state::lock(&self.api);
        let serve = serve::accept_loop(listener, tls, router, api.cancel.clone());
        api.task = Some(self.handle.spawn(serve));
        Ok(())
    }

    fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        let task = self.handle.spawn(fut);
        state::lock(&self.tasks).push(task);
    }

    pub(super) fn spawn_kubelet(
        &self,
        node: &NodeState,
        listener: tokio::net::TcpListener,
    ) -> Result<(), SimError> {
        let ip = self.ip_san.then_some(node.ip);
        let cert = match node.fault {
            Some(KubeletFault::SelfSignedCert) => KubeletCert::SelfSigned,
            Some(KubeletFault::UnknownCaCert) => KubeletCert::OtherCa,
            Some(KubeletFault::ExpiredCert) => KubeletCert::Expired,
            Some(KubeletFault::NotYetValidCert) => KubeletCert::NotYetValid,
            _ => KubeletCert::ClusterCa,
        };
        let tls = match &self.pki {
            Some(pki) if node.fault == Some(KubeletFault::WrongHostCert) => {
                Some(pki.kubelet_config("wrong-host.invalid", None)?)
            }
            Some(pki) => Some(pki.kubelet_config_with(&node.name, ip, cert)?),
            None => None,
        };
        let router = kubelet::router(
            Arc::clone(&self.shared),
            node.index,
            Arc::clone(&node.counters),
        );
        self.spawn(serve::accept_loop(
            listener,
            tls,
            router,
            node.cancel.clone(),
        ));
        Ok(())
    }

    /// The apiserver, e.g. `https://127.0.0.1:PORT`.
    pub fn api_url(&self) -> Url {
        self.api_url.clone()
    }

    /// The CA certificate (PEM) when https.
    pub fn ca_pem(&self) -> Option<&str> {
        self.pki.as_ref().map(|p| p.ca_pem.as_str())
    }

    /// The current token when the auth is [`SimAuth::Token`] (servers only check it over https).
    pub fn token(&self) -> Option<String> {
        state::read(&self.shared.token).clone()
    }

    /// Rotates the token: the old one is refused from now on.
    pub fn set_token(&self, new: &str) {
        *state::write(&self.shared.token) = Some(new.to_owned());
    }

    /// Registers a user that TokenReview authenticates by `token`.
    pub fn add_user(&self, token: &str, name: &str, groups: &[&str]) {
        state::write(&self.shared.access)
            .users
            .push(super::review::SimUser {
                token: token.to_owned(),
                name: name.to_owned(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
            });
    }

    /// Grants a permission that SubjectAccessReview honours.
    pub fn allow(&self, rule: super::SimRule) {
        state::write(&self.shared.access).rules.push(rule);
    }

    fn client_pki(&self) -> Option<&Pki> {
        self.pki
            .as_ref()
            .filter(|_| self.auth == SimAuth::ClientCert)
    }

    /// The client certificate (PEM) for [`SimAuth::ClientCert`].
    pub fn client_cert_pem(&self) -> Option<&str> {
        self.client_pki().map(|p| p.client_cert_pem.as_str())
    }

    /// The client key (PKCS#8 PEM) for [`SimAuth::ClientCert`].
    pub fn client_key_pem(&self) -> Option<&str> {
        self.client_pki().map(|p| p.client_key_pem.as_str())
    }

    /// A kubeconfig (current context set) with the cluster's auth: the token, or the client
    /// certificate and key; the CA when https; just the server over http.
    pub fn kubeconfig_yaml(&self) -> String {
        let (ca, user) = match &self.pki {
            None => (None, kubeconfig::User::None),
            Some(pki) => {
                let user = match (&self.auth, self.token()) {
                    (SimAuth::Token(_), Some(token)) => kubeconfig::User::Token(token),
                    (SimAuth::ClientCert, _) => kubeconfig::User::Cert {
                        cert_pem: &pki.client_cert_pem,
                        key_pem: &pki.client_key_pem,
                    },
                    _ => kubeconfig::User::None,
                };
                (Some(pki.ca_pem.as_str()), user)
            }
        };
        kubeconfig::render(&self.api_url, ca, &user)
    }

    /// Writes `token` (when there is one), `ca.crt` (when https) and `namespace` (`kube-system`)
    /// into `dir`, as a pod's service-account mount has them.
    pub fn write_service_account_dir(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        if let Some(token) = self.token() {
            std::fs::write(dir.join("token"), token)?;
        }
        if let Some(ca) = self.ca_pem() {
            std::fs::write(dir.join("ca.crt"), ca)?;
        }
        std::fs::write(dir.join("namespace"), "kube-system")
    }

    /// The port every kubelet listens on.
    pub fn kubelet_port(&self) -> u16 {
        self.shared.cfg.kubelet_port
    }

    /// The nodes that exist (removed ones excluded).
    pub fn nodes(&self) -> Vec<SimNodeInfo> {
        state::read(&self.shared.nodes)
            .iter()
            .filter(|n| !n.removed)
            .map(|n| SimNodeInfo {
                index: n.index,
                name: n.name.clone(),
                ip: n.ip,
            })
            .collect()
    }

    /// What node `node`'s kubelet has seen (zeroes for an unknown node).
    pub fn kubelet_stats(&self, node: usize) -> KubeletStats {
        let nodes = state::read(&self.shared.nodes);
        let Some(n) = nodes.get(node) else {
            return KubeletStats::default();
        };
        KubeletStats {
            requests: n
                .counters
                .requests
                .load(std::sync::atomic::Ordering::Relaxed),
            last_authorization: state::lock(&n.counters.last_authorization).clone(),
        }
    }

    /// Stops every server and waits (up to 5 s) for the accept loops to end.
    pub async fn shutdown(self) {
        self.shared.cancel.cancel();
        let mut tasks = std::mem::take(&mut *state::lock(&self.tasks));
        tasks.extend(state::lock(&self.api).task.take());
        let wait = futures::future::join_all(tasks);
        if tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .is_err()
        {
            tracing::warn!("simulated cluster did not stop within 5 s");
        }
    }
}

impl Drop for SimCluster {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}
