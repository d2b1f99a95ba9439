//! `sluice doctor`: an ordered report of checks on one source, each with its evidence and the fix.
//!
//! Connection stages run first, in order — `config, dns, tcp, ssh, tls, auth, server_version` —
//! and every stage that can still run does (a failed `dns` does not hide a bad certificate file
//! found by `config`). Then the privilege audit — `database_connect, read_only, role_attributes,
//! schema_usage, table_select, default_privileges, audit_logging` — proves from the catalog that
//! the user cannot change anything and finds what it cannot read, each finding with the exact SQL
//! that fixes it. The report is plain data ([`Report`]); the CLI and the server render it, and
//! [`Report::fix_sql`] joins its fixes into one script. [`setup_sql`] writes the DBA's script
//! that creates a correct read-only role in the first place; [`grants`] spells the GRANTs that
//! restore read access; [`quote`] spells every identifier.
//!
//! Must not do: print, exit, or read the environment — inputs arrive as a `SourceSpec` (or the
//! reason there is none); output leaves as a `Report`.

mod fix_sql;
pub mod grants;
mod privileges;
pub mod quote;
mod report;
mod setup_sql;
mod stages;

pub use report::{Check, CheckId, Report, SourceSummary, Status};
pub use setup_sql::{generate_password, setup_sql, SetupError, SetupOptions, DEFAULT_STATEMENT_TIMEOUT, PASSWORD_LEN};
pub use stages::{run, run_under, run_under_iam, run_with, DoctorInput};
