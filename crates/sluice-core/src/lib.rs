//! Sluice's vocabulary: what a source is and how its parts are spelled.
//!
//! Owns the [`SourceSpec`] (plain data, serde) and its split into settings and
//! [`SourceSecrets`], the [`SourceId`], [`SslMode`], [`Network`], the [`Secret`] type, the
//! parsers for libpq URIs, key=value strings, `PG*` environment variables and `~/.pgpass`, and the
//! [`UserFacing`] error contract every other crate implements.
//!
//! Must not do: any I/O (no sockets, no files, no clocks). Callers read files and the environment
//! and hand their contents in, so everything here is a pure function that a table test can cover.

mod error;
mod parse;
pub mod pgpass;
pub mod quote;
mod secret;
mod spec;
mod split;

pub use error::{ErrorKind, UserFacing};
pub use parse::{parse_dsn, ParamSource, SpecError};
pub use secret::Secret;
pub use spec::{
    is_role_arn, is_session_name, Auth, CertSource, ChannelBinding, HostKeyCheck, HostPort, KeySource, Network, RdsIam,
    SessionAttrs, SourceSpec, SshSpec, SslMode, DEFAULT_APPLICATION_NAME, DEFAULT_CONNECT_TIMEOUT_SECS, DEFAULT_PORT,
};
pub use split::{BadSourceId, SecretField, SourceId, SourceSecrets};
