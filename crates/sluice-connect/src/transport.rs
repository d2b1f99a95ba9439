//! The transport seam: every way of reaching a database yields a [`BoxedStream`] for
//! tokio-postgres's `connect_raw`, and cancel requests travel the same way.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sluice_core::HostPort;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::policy::NetworkPolicy;
use crate::{ConnectError, Stage};

/// Any byte stream to a PostgreSQL server.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// The stream type every transport produces.
pub type BoxedStream = Box<dyn Stream>;

/// A long-lived path that opens streams to database hosts, such as an SSH bastion's
/// `direct-tcpip` channels. The host is the database as the tunnel's far end sees it.
pub trait Tunnel: Send + Sync + 'static {
    fn open(&self, target: HostPort) -> Pin<Box<dyn Future<Output = Result<BoxedStream, ConnectError>> + Send + '_>>;

    /// This tunnel with `policy` checked on every address it dials itself (an SSH bastion's).
    /// The hosts it opens streams to are resolved by the far end, out of Sluice's sight.
    fn with_policy(self: Arc<Self>, policy: Arc<NetworkPolicy>) -> Arc<dyn Tunnel>;
}

/// How one source's streams are opened. Cheap to clone; shared by sessions and cancel requests.
#[derive(Clone)]
pub enum Dialer {
    /// Resolve the host, check every address against the policy, and dial (direct connections
    /// and private endpoints).
    Direct { timeout: Duration, policy: Arc<NetworkPolicy> },
    /// Open a channel through a tunnel.
    Tunnel(Arc<dyn Tunnel>),
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dialer::Direct { timeout, policy } => {
                f.debug_struct("Direct").field("timeout", timeout).field("policy", policy).finish()
            }
            Dialer::Tunnel(_) => f.write_str("Tunnel"),
        }
    }
}

impl Dialer {
    /// Direct dialling under [`NetworkPolicy::default`].
    pub fn direct(timeout: Duration) -> Dialer {
        Dialer::Direct { timeout, policy: Arc::new(NetworkPolicy::default()) }
    }

    /// This dialer with `policy` checked on every address it dials: the database's for direct
    /// dialling, the bastion's for a tunnel.
    pub fn with_policy(self, policy: NetworkPolicy) -> Dialer {
        let policy = Arc::new(policy);
        match self {
            Dialer::Direct { timeout, .. } => Dialer::Direct { timeout, policy },
            Dialer::Tunnel(t) => Dialer::Tunnel(t.with_policy(policy)),
        }
    }

    pub fn dial(
        &self,
        target: &HostPort,
    ) -> Pin<Box<dyn Future<Output = Result<BoxedStream, ConnectError>> + Send + 'static>> {
        // Owned inputs make the future `'static + Send`, whatever the caller borrows.
        let target = target.clone();
        let this = self.clone();
        Box::pin(async move {
            match this {
                Dialer::Direct { timeout, policy } => {
                    let addrs = resolve_allowed(&target, timeout, &policy).await?;
                    let tcp = tcp_connect(&addrs, timeout).await?;
                    Ok(Box::new(tcp) as BoxedStream)
                }
                Dialer::Tunnel(t) => t.open(target).await,
            }
        })
    }
}

/// DNS: every address of the host, or why there is none.
pub async fn resolve(target: &HostPort, timeout: Duration) -> Result<Vec<SocketAddr>, ConnectError> {
    // An owned `host:port` string keeps this future `Send` for any caller's lifetime.
    let lookup = tokio::net::lookup_host(target.to_string());
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(timeout, lookup).await {
        Err(_) => return Err(ConnectError::Timeout { stage: Stage::Dns, secs: timeout.as_secs() }),
        Ok(Err(e)) => return Err(ConnectError::Dns { host: target.host.clone(), reason: dns_reason(&e) }),
        Ok(Ok(a)) => a.collect(),
    };
    if addrs.is_empty() {
        return Err(ConnectError::Dns { host: target.host.clone(), reason: "the name has no addresses".into() });
    }
    Ok(addrs)
}

/// [`resolve`], then every address checked against `policy`: a host any of whose addresses the
/// policy refuses is refused whole, before anything is sent to it. Dial only the addresses this
/// returns (never the name again), so the addresses checked are the ones dialled.
pub async fn resolve_allowed(
    target: &HostPort,
    timeout: Duration,
    policy: &NetworkPolicy,
) -> Result<Vec<SocketAddr>, ConnectError> {
    let addrs = resolve(target, timeout).await?;
    for addr in &addrs {
        if let Err(refusal) = policy.check(*addr) {
            return Err(ConnectError::Refused { host: target.host.clone(), refusal });
        }
    }
    Ok(addrs)
}

fn dns_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    if s.contains("not known") || s.contains("No address") || s.contains("not found") {
        "no such host".into()
    } else {
        s
    }
}

/// TCP: the first address that accepts, each tried within `timeout`.
pub async fn tcp_connect(addrs: &[SocketAddr], timeout: Duration) -> Result<TcpStream, ConnectError> {
    let mut last = None;
    for addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Ok(Err(e)) => last = Some(ConnectError::Tcp { addr: addr.to_string(), reason: tcp_reason(&e) }),
            Err(_) => last = Some(ConnectError::Timeout { stage: Stage::Tcp, secs: timeout.as_secs() }),
        }
    }
    Err(last.unwrap_or(ConnectError::Tcp { addr: "(none)".into(), reason: "no address to try".into() }))
}

fn tcp_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::TimedOut => "timed out".into(),
        _ => e.to_string(),
    }
}

/// Sends PostgreSQL's SSLRequest and reads the one-byte answer, to tell a PostgreSQL server from
/// any other service before credentials are sent. Returns whether the server offers TLS.
pub async fn probe_postgres<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    addr: &str,
    timeout: Duration,
) -> Result<bool, ConnectError> {
    const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    let not_pg = |detail: String| ConnectError::NotPostgres { addr: addr.to_string(), detail };
    let exchange = async {
        stream.write_all(&SSL_REQUEST).await?;
        let mut first = [0u8; 1];
        let n = stream.read(&mut first).await?;
        if n == 0 {
            return Ok::<_, std::io::Error>(None);
        }
        // A PostgreSQL server sends exactly one byte and then waits for us. Anything more (an SSH
        // banner, an HTTP response) gives the other service away.
        let mut more = [0u8; 64];
        let extra = match tokio::time::timeout(Duration::from_millis(150), stream.read(&mut more)).await {
            Ok(Ok(n)) => n,
            _ => 0,
        };
        Ok(Some((first[0], more[..extra].to_vec())))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => Err(not_pg(format!("it did not answer PostgreSQL's SSL request within {} s", timeout.as_secs()))),
        Ok(Err(e)) => Err(ConnectError::Lost { addr: addr.to_string(), reason: e.to_string() }),
        Ok(Ok(None)) => Err(not_pg("it closed the connection without answering".into())),
        Ok(Ok(Some((b'S', extra)))) if extra.is_empty() => Ok(true),
        Ok(Ok(Some((b'N', extra)))) if extra.is_empty() => Ok(false),
        Ok(Ok(Some((first, extra)))) => {
            let mut seen = vec![first];
            seen.extend(extra);
            let text: String = String::from_utf8_lossy(&seen).chars().take(40).filter(|c| !c.is_control()).collect();
            Err(not_pg(format!("it answered `{text}`")))
        }
    }
}
