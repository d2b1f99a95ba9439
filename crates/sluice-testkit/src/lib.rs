//! Real servers for Sluice's tests: throwaway PostgreSQL clusters (`initdb`/`pg_ctl` into a temp
//! dir, a free loopback port, scram auth, optional TLS) and streaming standbys of them, an OpenSSH
//! bastion ([`Sshd`]) with generated host and client keys, [`PgBouncer`] in front of a cluster,
//! certificates minted with rcgen, the helpers that run server binaries as the unprivileged
//! `postgres` user when the tests run as root, and [`SluiceServe`]: a `sluice serve` process the
//! caller built the command of, started once it says where it listens.
//!
//! Everything is torn down on drop — which also runs while a failing test unwinds — and a watchdog
//! stops the server if the test process dies without unwinding. Parallel tests never share a port,
//! a directory or a role.
//!
//! Must not do: depend on any Sluice crate (it tests them; it is not built from them), or talk the
//! PostgreSQL protocol itself — administration goes through Debian's `psql`, like a DBA's would.

mod certs;
mod cluster;
mod pgbouncer;
mod serve;
mod sshd;
mod sys;

pub use certs::{CaKey, CertPair, TestCa};
pub use cluster::{Cluster, ClusterOptions, HbaRule, TlsFiles, SUPERUSER, SUPERUSER_PASSWORD};
pub use pgbouncer::{PgBouncer, PgBouncerOptions};
pub use serve::SluiceServe;
pub use sshd::{ClientKey, KeyFormat, KeyType, Sshd, SshdOptions};
pub use sys::{free_port, pg_bin_dir, TestkitError};

/// Shorthand for testkit results.
pub type Result<T, E = TestkitError> = std::result::Result<T, E>;
