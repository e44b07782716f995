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

/// Kubelet listeners placed at `127.B.x.y:P`: the block B, the shared port P, and one listener
/// per node (`None` where `bind_node[i]` is false).
pub(crate) struct Placement {
    pub block: u8,
    pub port: u16,
    pub listeners: Vec<Option<TcpListener>>,
}

const PLACEMENT_ATTEMPTS: usize = 8;

/// Picks a random block and a port free on every node address, retrying on `EADDRINUSE`.
pub(crate) fn place_kubelets(bind_node: &[bool]) -> Result<Placement, SimError> {
    for _ in 0..PLACEMENT_ATTEMPTS {
        let block: u8 = rand::random_range(2..=250);
        match try_place(block, bind_node) {
            Ok(placement) => return Ok(placement),
            Err(SimError::Bind { source, .. })
                if source.kind() == std::io::ErrorKind::AddrInUse => {}
            Err(e) => return Err(e),
        }
    }
    Err(SimError::NoFreeBlock {
        attempts: PLACEMENT_ATTEMPTS,
    })
}

fn try_place(block: u8, bind_node: &[bool]) -> Result<Placement, SimError> {
    // 127.B.255.254 is never a node address: it only picks the port.
    let probe = bind(SocketAddr::from((
        std::net::Ipv4Addr::new(127, block, 255, 254),
        0,
    )))?;
    let port = probe
        .local_addr()
        .map_err(|source| SimError::Bind {
            addr: SocketAddr::from(([127, block, 255, 254], 0)),
            source,
        })?
        .port();
    drop(probe);
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
