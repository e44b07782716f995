//! Accept loops: serve an axum [`Router`] over HTTP/1.1 on a bound listener, optionally behind
//! TLS, until a cancellation token fires (which also drops every open connection).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::SimError;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds a listener with `SO_REUSEADDR` (needs a tokio runtime context).
pub(crate) fn bind(addr: SocketAddr) -> Result<TcpListener, SimError> {
    let err = |source| SimError::Bind { addr, source };
    let socket = TcpSocket::new_v4().map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket.listen(1024).map_err(err)
}

/// Serves `router` on `listener` until `cancel` fires.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    router: Router,
    cancel: CancellationToken,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, _) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                tracing::debug!(error = %e, "sim accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, router, cancel) = (acceptor.clone(), router.clone(), cancel.clone());
        tokio::spawn(async move {
            let serve = async move {
                match acceptor {
                    None => serve_io(tcp, router).await,
                    Some(acceptor) => {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(tls)) => serve_io(tls, router).await,
                            Ok(Err(e)) => tracing::debug!(error = %e, "sim TLS handshake failed"),
                            Err(_) => tracing::debug!("sim TLS handshake timed out"),
                        }
                    }
                }
            };
            tokio::select! {
                () = cancel.cancelled() => {}
                () = serve => {}
            }
        });
    }
}

async fn serve_io<I>(io: I, router: Router)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router);
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), service);
    if let Err(e) = conn.await {
        tracing::trace!(error = %e, "sim connection ended");
    }
}

/// Kubelet listeners placed at `127.B.x.y:P` (B the first of the blocks the nodes take, see
/// [`super::node_ip`]): the block B, the shared port P, and one listener per node (`None` where
/// `bind_node[i]` is false).
pub(crate) struct Placement {
    pub block: u8,
    pub port: u16,
    pub listeners: Vec<Option<TcpListener>>,
}

const PLACEMENT_ATTEMPTS: usize = 8;

/// Picks a block and a port free on every node address to bind (random unless given), retrying
/// on `EADDRINUSE` what was not given.
pub(crate) fn place_kubelets(
    bind_node: &[bool],
    block: Option<u8>,
    port: Option<u16>,
) -> Result<Placement, SimError> {
    let blocks = super::formulas::blocks_for(bind_node.len());
    let last_first_block = u8::try_from(251 - blocks.min(249)).unwrap_or(2);
    let attempts = if block.is_some() && port.is_some() {
        1
    } else {
        PLACEMENT_ATTEMPTS
    };
    for _ in 0..attempts {
        let block = block.unwrap_or_else(|| rand::random_range(2..=last_first_block));
        match try_place(block, port, bind_node) {
            Ok(placement) => return Ok(placement),
            Err(SimError::Bind { source, .. })
                if attempts > 1 && source.kind() == std::io::ErrorKind::AddrInUse => {}
            Err(e) => return Err(e),
        }
    }
    Err(SimError::NoFreeBlock { attempts })
}

fn try_place(block: u8, port: Option<u16>, bind_node: &[bool]) -> Result<Placement, SimError> {
    let port = match port {
        Some(port) => port,
        None => probe_port(block)?,
    };
    let listeners = bind_node
        .iter()
        .enumerate()
        .map(|(i, wanted)| {
            wanted
                .then(|| bind(SocketAddr::from((super::node_ip(block, i), port))))
                .transpose()
        })
        .collect::<Result<_, _>>()?;
    Ok(Placement {
        block,
        port,
        listeners,
    })
}

/// A port free on `127.B.255.254`, which is never a node address.
fn probe_port(block: u8) -> Result<u16, SimError> {
    let addr = SocketAddr::from((std::net::Ipv4Addr::new(127, block, 255, 254), 0));
    let probe = bind(addr)?;
    let port = probe
        .local_addr()
        .map_err(|source| SimError::Bind { addr, source })?
        .port();
    Ok(port)
}
