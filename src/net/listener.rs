//! Accept loops: one per bound socket, each connection served by hyper with caps on
//! concurrent connections and header sizes, and a graceful drain at shutdown.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

use super::client::ConnInfo;

/// The request-head cap SECURITY.md promises.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;

/// The size of a request head as it came over the wire (request line, headers, CRLFs).
fn head_bytes<B>(req: &hyper::Request<B>) -> usize {
    let uri = req.uri();
    // Measured without formatting the URI: this runs for every request.
    let target = uri.scheme_str().map_or(0, |s| s.len() + "://".len())
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(1, |p| p.as_str().len());
    let line = req.method().as_str().len() + target + " HTTP/1.1\r\n".len() + 1;
    req.headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + line
        + 2
}

/// 431, and the connection closes: nothing of an oversized head is served.
fn head_too_large(max: usize) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    (
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CONNECTION, "close"),
        ],
        format!(
            "The request head is larger than {} KiB; send fewer or shorter headers.\n",
            max / 1024
        ),
    )
        .into_response()
}

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
    /// Largest request head (request line + headers) accepted. hyper's buffer limit alone
    /// does not hold it (one read may fill the buffer past it and the head then parses), so
    /// every parsed head is measured too and a bigger one is answered 431.
    pub max_header_bytes: usize,
    /// A TLS handshake must complete within this time.
    pub handshake_timeout: Duration,
    /// Open connections one client address may hold (HTTP/1 serves one request at a time
    /// per connection, so this is also its request concurrency). Past it, new connections
    /// from that address are closed at once, so one client cannot take every slot of
    /// `max_connections` from the rest of the household.
    pub max_connections_per_client: usize,
}

/// Open connections per client, shared by every listener (HTTP and HTTPS count together).
/// IPv6 clients are counted per /64, since one host can use any address of its prefix.
#[derive(Clone, Default)]
pub struct ClientSlots {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection's place in [`ClientSlots`]; gives it back when dropped.
pub struct ClientSlot {
    slots: ClientSlots,
    key: IpAddr,
}

impl ClientSlots {
    /// Takes a slot for `peer`, or `None` if it already holds `cap` connections.
    pub fn take(&self, peer: IpAddr, cap: usize) -> Option<ClientSlot> {
        let key = client_key(peer);
        // A poisoned lock only means another connection task panicked mid-update; the
        // counts are still plain integers, so keep using them.
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            slots: self.clone(),
            key,
        })
    }

    /// Connections currently open from `peer` (its /64 for IPv6).
    pub fn open(&self, peer: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&client_key(peer)).copied().unwrap_or(0)
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

fn client_key(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(_) => peer,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

/// Serves `router` on `listener` until `shutdown` flips to true, then stops accepting and
/// waits up to `drain` for open requests to finish.
pub async fn run<A: Acceptor>(
    listener: TcpListener,
    acceptor: A,
    router: Router,
    limits: ConnLimits,
    slots: ClientSlots,
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
        let Some(client_slot) = slots.take(peer.ip(), limits.max_connections_per_client) else {
            tracing::debug!(%peer, "too many connections from this client; closing the new one");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let local = match tcp.local_addr() {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "the connection has no local address; closing it");
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let _client_slot = client_slot;
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
                local,
                secure: acceptor.secure(),
            };
            let max_head = limits.max_header_bytes;
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(info);
                let router = router.clone();
                async move {
                    if head_bytes(&req) > max_head {
                        return Ok::<_, Infallible>(head_too_large(max_head));
                    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_measured_as_sent() {
        let req = hyper::Request::get("/api/v1/health")
            .header("host", "den")
            .header("x-pad", "a".repeat(MAX_HEAD_BYTES))
            .body(())
            .unwrap();
        let n = head_bytes(&req);
        // "GET /api/v1/health HTTP/1.1\r\n" + "host: den\r\n" + the pad + the final CRLF.
        assert_eq!(n, 29 + 11 + (5 + 2 + MAX_HEAD_BYTES + 2) + 2);
        assert!(n > MAX_HEAD_BYTES);
    }

    #[test]
    fn client_slots_cap_each_address_and_come_back() {
        let slots = ClientSlots::default();
        let a: IpAddr = "192.168.1.20".parse().unwrap();
        let b: IpAddr = "192.168.1.21".parse().unwrap();
        let held: Vec<_> = (0..3).map(|_| slots.take(a, 3).unwrap()).collect();
        assert!(
            slots.take(a, 3).is_none(),
            "a fourth connection from a is refused"
        );
        assert!(slots.take(b, 3).is_some(), "another client is not affected");
        drop(held);
        assert_eq!(slots.open(a), 0);
        assert!(
            slots.take(a, 3).is_some(),
            "slots come back when connections close"
        );
    }

    #[test]
    fn ipv6_clients_count_per_prefix_and_mapped_v4_as_v4() {
        let slots = ClientSlots::default();
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let other_in_same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _s = slots.take(one, 1).unwrap();
        assert!(slots.take(other_in_same_64, 1).is_none());
        assert!(slots.take(other_64, 1).is_some());
        let v4: IpAddr = "10.0.0.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap();
        let _t = slots.take(v4, 1).unwrap();
        assert!(slots.take(mapped, 1).is_none());
    }
}
