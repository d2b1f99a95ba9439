//! AWS RDS IAM database authentication: short-lived login tokens instead of a stored password.
//!
//! [`Credentials`] come from the standard AWS chain, in its usual order ([`chain`]): the
//! environment, the shared config and credentials files (`AWS_PROFILE`), web identity (STS
//! `AssumeRoleWithWebIdentity`), ECS container credentials, and EC2 instance metadata (IMDSv2
//! only). The chain reads an [`Env`] (a snapshot of variables handed in), never the process
//! environment behind the caller's back, and reports which source answered
//! ([`CredentialSource`]). [`token::generate`] presigns `Action=connect&DBUser=…` for `rds-db`
//! (SigV4 in the query string, 15 minutes), byte for byte as botocore's
//! `generate_db_auth_token`; [`IamAuth`] is what a connector holds: a fresh token per connection
//! attempt, credentials cached only until shortly before they expire, and an injectable clock.
//! A source may name a role: [`assume_role`] (STS `AssumeRole`, SigV4-signed with the chain's
//! credentials) then supplies the credentials that sign the token.
//! Every secret (secret key, session token, the token itself) is a [`sluice_core::Secret`].
//!
//! Must not do: open database connections, decide sslmodes, print, or read the process
//! environment anywhere but [`Env::from_process`].

mod assume;
mod auth;
pub mod chain;
mod credentials;
mod env;
mod error;
mod http;
mod profile;
mod time;
pub mod token;

pub use assume::{assume_role, RoleRequest};
pub use auth::{login_failure_causes, Clock, IamAuth, DEFAULT_SESSION_NAME};
pub use credentials::{CredentialSource, Credentials};
pub use env::Env;
pub use error::IamError;
pub use time::parse_rfc3339;
