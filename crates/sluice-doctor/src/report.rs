use std::borrow::Cow;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sluice_core::SourceSpec;

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
    Skip,
}

/// Stable check ids; later checks add to this list, none is ever renamed.
pub struct CheckId;

impl CheckId {
    pub const CONFIG: &'static str = "config";
    pub const DNS: &'static str = "dns";
    pub const TCP: &'static str = "tcp";
    pub const SSH: &'static str = "ssh";
    pub const IAM: &'static str = "iam";
    pub const TLS: &'static str = "tls";
    pub const AUTH: &'static str = "auth";
    pub const SERVER_VERSION: &'static str = "server_version";
    pub const DATABASE_CONNECT: &'static str = "database_connect";
    pub const READ_ONLY: &'static str = "read_only";
    pub const ROLE_ATTRIBUTES: &'static str = "role_attributes";
    pub const SCHEMA_USAGE: &'static str = "schema_usage";
    pub const TABLE_SELECT: &'static str = "table_select";
    pub const DEFAULT_PRIVILEGES: &'static str = "default_privileges";
    pub const AUDIT_LOGGING: &'static str = "audit_logging";
}

/// One line of the report. The id is one of [`CheckId`]'s (borrowed), or, in a report parsed
/// back from JSON, its text (owned) — which may be an id a newer Sluice added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub id: Cow<'static, str>,
    pub status: Status,
    /// One sentence.
    pub summary: String,
    /// Evidence: what was seen.
    pub detail: Option<String>,
    /// What to do (prose or SQL).
    pub fix: Option<String>,
    pub elapsed_ms: u64,
    /// On a failed `ssh` check: the host key the bastion presented and Sluice did not trust
    /// (its fingerprint, to compare with the bastion's before pinning it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<sluice_connect::PresentedHostKey>,
}

impl Check {
    pub fn new(id: &'static str, status: Status, summary: impl Into<String>) -> Check {
        Check {
            id: Cow::Borrowed(id),
            status,
            summary: summary.into(),
            detail: None,
            fix: None,
            elapsed_ms: 0,
            host_key: None,
        }
    }

    pub fn skip(id: &'static str, why: impl Into<String>) -> Check {
        Check::new(id, Status::Skip, why)
    }

    pub fn detail(mut self, d: impl Into<String>) -> Check {
        self.detail = Some(d.into());
        self
    }

    pub fn fix(mut self, f: Option<String>) -> Check {
        self.fix = f;
        self
    }

    pub fn timed(mut self, since: Instant) -> Check {
        self.elapsed_ms = since.elapsed().as_millis().try_into().unwrap_or(u64::MAX);
        self
    }
}

/// The source as the report shows it: never a password or key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSummary {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub database: Option<String>,
    pub user: Option<String>,
    pub sslmode: Option<String>,
    pub network: Option<String>,
}

impl SourceSummary {
    pub fn of(spec: Option<&SourceSpec>) -> SourceSummary {
        match spec {
            None => SourceSummary { host: None, port: None, database: None, user: None, sslmode: None, network: None },
            Some(s) => SourceSummary {
                host: Some(s.hosts.iter().map(|h| h.host.clone()).collect::<Vec<_>>().join(",")),
                port: s.primary_host().map(|h| h.port),
                database: Some(s.database.clone()),
                user: Some(s.user.clone()),
                sslmode: Some(s.sslmode.to_string()),
                network: Some(s.network.label().to_string()),
            },
        }
    }
}

/// The whole verdict. `ok` is false when any check failed. Serializes to the stable JSON the CLI
/// prints, and parses back from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub ok: bool,
    pub source: SourceSummary,
    pub server_version: Option<String>,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn new(source: SourceSummary, server_version: Option<String>, checks: Vec<Check>) -> Report {
        let ok = !checks.iter().any(|c| c.status == Status::Fail);
        Report { ok, source, server_version, checks }
    }

    pub fn check(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"ok\": false, \"error\": \"{e}\"}}"))
    }
}
