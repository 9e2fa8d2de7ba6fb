//! Accept loops: one per bound socket, each connection served by hyper with caps on
//! concurrent connections and header sizes, and a graceful drain at shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

use super::client::ConnInfo;

/// How a listener turns a TCP stream into a byte stream: plain, or TLS.
pub trait Acceptor: Clone + Send + Sync + 'static {
    type Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static;
    fn accept(
        &self,
        tcp: tokio::net::TcpStream,
    ) -> impl Future<Output = std::io::Result<Self::Stream>> + Send;
    fn secure(&self) -> bool;
}

#[derive(Clone)]
pub struct Plain;

impl Acceptor for Plain {
    type Stream = tokio::net::TcpStream;
    async fn accept(&self, tcp: tokio::net::TcpStream) -> std::io::Result<Self::Stream> {
        Ok(tcp)
    }
    fn secure(&self) -> bool {
        false
    }
}

/// TLS over TCP, with certificates from the device's resolver. While the owner has turned
/// secure connections off, every handshake is refused.
#[derive(Clone)]
pub struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
    rules: Option<super::rules::NetRules>,
}

impl Tls {
    pub fn new(config: Arc<rustls::ServerConfig>, rules: Option<super::rules::NetRules>) -> Tls {
        Tls {
            acceptor: tokio_rustls::TlsAcceptor::from(config),
            rules,
        }
    }
}

impl Acceptor for Tls {
    type Stream = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    async fn accept(&self, tcp: tokio::net::TcpStream) -> std::io::Result<Self::Stream> {
        if let Some(rules) = &self.rules
            && rules.snapshot().secure_connections == super::rules::SecureConnections::Disabled
        {
            return Err(std::io::Error::other(
                "HTTPS is turned off in the network settings",
            ));
        }
        self.acceptor.accept(tcp).await
    }
    fn secure(&self) -> bool {
        true
    }
}

/// Limits applied to every connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub max_connections: usize,
    /// A client must finish sending its request head within this time (slowloris).
    pub header_timeout: Duration,
    /// Largest request head (request line + headers) hyper buffers.
    pub max_header_bytes: usize,
    /// A TLS handshake must complete within this time.
    pub handshake_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown` flips to true, then stops accepting and
/// waits up to `drain` for open requests to finish.
pub async fn run<A: Acceptor>(
    listener: TcpListener,
    acceptor: A,
    router: Router,
    limits: ConnLimits,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(v) => v,
            Err(e) => {
                // EMFILE and friends: back off briefly rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let stream =
                match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "handshake timed out");
                        return;
                    }
                };
            let info = ConnInfo {
                peer,
                secure: acceptor.secure(),
            };
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(info);
                let router = router.clone();
                async move {
                    let resp = router
                        .oneshot(req.map(axum::body::Body::new))
                        .await
                        .unwrap_or_else(|e: Infallible| match e {});
                    Ok::<_, Infallible>(resp)
                }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(limits.max_header_bytes.max(8192));
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let conn = watcher.watch(conn);
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open after {drain:?}; closing them");
    }
}
