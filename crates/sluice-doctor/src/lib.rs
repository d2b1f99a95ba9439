//! `sluice doctor`: an ordered report of checks on one source, each with its evidence and the fix.
//!
//! Connection stages run first, in order — `config, dns, tcp, ssh, tls, auth, server_version` —
//! and every stage that can still run does (a failed `dns` does not hide a bad certificate file
//! found by `config`). Later checks inspect what the user may do once connected. The report is
//! plain data ([`Report`]); the CLI and the server render it.
//!
//! Must not do: print, exit, or read the environment — inputs arrive as a `SourceSpec` (or the
//! reason there is none); output leaves as a `Report`.

mod report;
mod stages;

pub use report::{Check, CheckId, Report, SourceSummary, Status};
pub use stages::{run, DoctorInput};
