//! Opening verified, read-only PostgreSQL sessions to a customer's database.
//!
//! The flow for one session (see ARCHITECTURE.md, "connect"):
//! [`Dialer`] yields a byte stream (direct TCP, a private endpoint, or a [`Tunnel`] such as an SSH
//! channel) → [`tls`] wraps it per libpq's sslmode with Sluice's own rustls verifiers →
//! tokio-postgres authenticates over it (`connect_raw`) → [`ReadOnlySession`] applies the
//! read-only settings and only then hands the client out. [`Pool`] caps how many sessions one
//! source may hold; [`CancelHandle`] sends cancel requests down the same dialer and TLS.
//!
//! Must not do: parse connection strings (that is `sluice-core`), run user SQL or decide what
//! SQL is allowed (that is `sluice-query`), or print anything.

mod connector;
mod error;
mod pool;
mod session;
pub mod tls;
mod transport;

pub use connector::Connector;
pub use error::{ConnectError, Stage, TlsFailure};
pub use pool::{Pool, PoolOptions, PooledSession};
pub use session::{CancelHandle, ReadOnlySession, SessionInfo, SessionSettings};
pub use tls::TlsInfo;
pub use transport::{probe_postgres, resolve, tcp_connect, BoxedStream, Dialer, Stream, Tunnel};

/// The driver Sluice is built on, re-exported so the crates above use exactly this version.
pub use tokio_postgres;
