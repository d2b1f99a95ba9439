//! Opening verified, read-only PostgreSQL sessions to a customer's database.
//!
//! The flow for one session (see ARCHITECTURE.md, "connect"):
//! [`Dialer`] yields a byte stream (direct TCP, a private endpoint, or a [`Tunnel`] such as an
//! [`SshTunnel`]'s `direct-tcpip` channel) → [`tls`] wraps it per libpq's sslmode with Sluice's
//! own rustls verifiers, checking the database's own name even through a bastion →
//! tokio-postgres authenticates over it (`connect_raw`) → [`ReadOnlySession`] applies the
//! read-only settings and confirms them; work runs in a [`ReadOnlyTransaction`], begun and
//! confirmed read-only by the server, the only thing that hands the driver's client out (so it
//! holds behind PgBouncer in transaction mode too, where nothing is set on the session).
//! [`Pool`] caps how many sessions one source may hold; [`CancelHandle`] sends cancel requests
//! down the same dialer and TLS. [`Connector::new`] picks the dialer from the spec's
//! `network`; [`SshTunnel::check_stages`] reports the bastion steps one by one for the doctor.
//! Every address Sluice dials itself is checked first against the [`NetworkPolicy`]
//! ([`policy`]; [`Connector::with_policy`]).
//!
//! Must not do: parse connection strings (that is `sluice-core`), run user SQL or decide what
//! SQL is allowed (that is `sluice-query`), or print anything.

mod cancel;
pub mod channel_binding;
mod connector;
mod error;
pub mod policy;
mod pool;
mod session;
mod ssh;
pub mod tls;
mod transaction;
mod transport;

pub use cancel::CancelHandle;
pub use connector::Connector;
pub use error::{ChannelBindingRefusal, ConnectError, HostKeyStatus, PresentedHostKey, SshFailure, Stage, TlsFailure};
pub use policy::NetworkPolicy;
pub use pool::{Pool, PoolOptions, PooledSession};
pub use session::{rows_as_text, ReadOnlySession, SessionInfo, SessionSettings, TypeNames};
pub use ssh::{generate_ed25519, GeneratedKey, Keepalive, SshStage, SshStageReport, SshTunnel};
pub use tls::TlsInfo;
pub use transaction::{Isolation, ReadOnlyTransaction, TransactionOptions};
pub use transport::{probe_postgres, resolve, resolve_allowed, tcp_connect, BoxedStream, Dialer, Stream, Tunnel};

/// The driver Sluice is built on, re-exported so the crates above use exactly this version.
pub use tokio_postgres;
