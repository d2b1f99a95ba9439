//! The records the store hands out. Times are milliseconds since the Unix epoch, read from the
//! database's clock, so several instances sharing one PostgreSQL store agree on them.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use sluice_core::{SecretField, SourceId, SourceSpec};

use crate::StoreError;

/// Milliseconds since the Unix epoch, from the database's clock.
pub type Millis = i64;

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_newtype!(
    /// A user's id.
    UserId
);
id_newtype!(
    /// A catalog snapshot's id.
    SnapshotId
);
id_newtype!(
    /// A discovery run's id.
    RunId
);
id_newtype!(
    /// An audit entry's id; ids grow with time, so they are the listing's cursor.
    AuditId
);
id_newtype!(
    /// A catalog change's id; ids grow with time, so they are the listing's cursor.
    ChangeId
);
id_newtype!(
    /// An alert's id.
    AlertId
);

macro_rules! str_enum {
    ($(#[$doc:meta])* $name:ident, $field:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = StoreError;

            fn from_str(s: &str) -> Result<$name, StoreError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(StoreError::Invalid {
                        field: $field,
                        message: format!("`{}` is not one of: {}", s.chars().take(32).collect::<String>(), [$($text),+].join(", ")),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

str_enum!(
    /// What a signed-in person may do.
    Role, "role" { Admin => "admin", Analyst => "analyst" }
);
str_enum!(
    /// What an API token may do; `refresh` may only trigger catalog refreshes.
    TokenRole, "role" { Admin => "admin", Analyst => "analyst", Refresh => "refresh" }
);
str_enum!(
    /// How a discovery run ended.
    RunOutcome, "outcome" { Ok => "ok", Failed => "failed", Cancelled => "cancelled" }
);
str_enum!(
    /// Where a discovery run is: asked for and waiting for an instance, running, or finished
    /// (its outcome says how).
    RunState, "state" { Queued => "queued", Running => "running", Finished => "finished" }
);
str_enum!(
    /// Why a discovery run happened: the source was due (its interval came, or it was just
    /// saved), or someone asked for it.
    RunReason, "reason" { Schedule => "schedule", Refresh => "refresh" }
);
str_enum!(
    /// What an alert is about: a relation the user could read and no longer can, a schema it
    /// lost `USAGE` on, or discovery failing run after run.
    AlertKind, "kind" { LostAccess => "lost_access", LostUsage => "lost_usage", DiscoveryFailing => "discovery_failing" }
);
str_enum!(
    /// How a query recorded in the audit log ended.
    QueryOutcome, "outcome" { Ok => "ok", Failed => "failed", Cancelled => "cancelled", Truncated => "truncated" }
);

/// A registered source as listings show it: settings and which secrets are set, never their
/// values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceRecord {
    pub id: SourceId,
    pub name: String,
    /// The spec without its secrets.
    pub settings: SourceSpec,
    #[serde(serialize_with = "field_names")]
    pub secret_fields: Vec<SecretField>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub password_updated_at: Option<Millis>,
    /// The public half of the generated key the source's SSH private key is, when it is one
    /// (`ssh-ed25519 AAAA… sluice-…`; not secret).
    pub ssh_public_key: Option<String>,
    /// The bastion host key an admin approved last (through the service), and who did.
    pub host_key_approval: Option<HostKeyApproval>,
    /// The outcome of its last Test Connection, unless its settings or secrets changed since.
    pub last_test: Option<SourceTest>,
}

/// The outcome of a saved source's last Test Connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceTest {
    pub tested_at: Millis,
    /// The login of the admin (or the token's name) who ran it.
    pub tested_by: String,
    /// No check failed (warnings allowed).
    pub ok: bool,
    /// The first failing check (`dns`, `tcp`, `tls`, `auth`, …) and its one-line summary.
    pub failed: Option<String>,
    pub message: Option<String>,
}

/// A Test Connection's outcome to record ([`crate::Store::record_source_test`]).
#[derive(Debug, Clone, Copy)]
pub struct NewSourceTest<'a> {
    pub tested_by: &'a str,
    pub ok: bool,
    pub failed: Option<&'a str>,
    pub message: Option<&'a str>,
}

/// A host key a bastion presented, as the store records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostKeySeen {
    /// `SHA256:…`.
    pub fingerprint: String,
    /// `ssh-ed25519`, …
    pub algorithm: String,
    /// `ssh-ed25519 AAAA…`.
    pub public_key: String,
}

/// A bastion host key an admin approved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostKeyApproval {
    pub fingerprint: String,
    pub algorithm: String,
    pub public_key: String,
    /// `user:<login>` or `token:<public id>`.
    pub approved_by: String,
    pub approved_at: Millis,
}

/// A key pair generated for a bastion: only its public half and when it was made. Its private
/// half is sealed in the store until a source claims it, and is never handed out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GeneratedSshKey {
    pub id: String,
    /// The `authorized_keys` line.
    pub public_key: String,
    /// `SHA256:…`.
    pub fingerprint: String,
    pub created_by: String,
    pub created_at: Millis,
    /// Unclaimed after this time, the key is gone.
    pub expires_at: Millis,
}

fn field_names<S: serde::Serializer>(fields: &[SecretField], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(fields.iter().map(|f| f.as_str()))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: UserId,
    pub login: String,
    pub role: Role,
    pub created_at: Millis,
    pub disabled: bool,
}

/// A live browser session (not revoked, not expired, its user not disabled).
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    pub user: User,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub(crate) csrf_hash: Vec<u8>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Whether `token` is this session's CSRF proof (compared in constant time).
    pub fn csrf_matches(&self, token: &str) -> bool {
        crate::auth::hash_matches(&self.csrf_hash, token.as_bytes())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    /// The public part of the token, shown in listings and audit entries.
    pub public_id: String,
    pub name: String,
    pub role: TokenRole,
    /// The one source the token may use, when it is scoped.
    pub source: Option<SourceId>,
    pub created_by: Option<UserId>,
    pub created_at: Millis,
    pub last_used_at: Option<Millis>,
    pub revoked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotMeta {
    pub id: SnapshotId,
    pub source: SourceId,
    /// SHA-256 of the uncompressed JSON, hex.
    pub content_hash: String,
    pub discovered_at: Millis,
}

/// What changed in a source's catalog between two stored snapshots.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CatalogChange {
    pub id: ChangeId,
    pub source: SourceId,
    /// The snapshot compared against (it may since have been removed by retention).
    pub from_snapshot: SnapshotId,
    /// The snapshot that brought the change.
    pub to_snapshot: SnapshotId,
    pub changed_at: Millis,
    /// How many entries of each kind the diff holds, e.g. `{"lost_access": 1}`.
    pub counts: serde_json::Value,
    /// The catalog diff (`sluice catalog diff`'s JSON).
    pub diff: serde_json::Value,
}

/// A page of catalog changes, newest first; `next` is the cursor of the following page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangePage {
    pub changes: Vec<CatalogChange>,
    pub next: Option<ChangeId>,
}

/// An alert on a source: open until `cleared_at`, then part of the source's alert history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub id: AlertId,
    pub source: SourceId,
    pub kind: AlertKind,
    /// What it is about, unique among the source's open alerts of its kind (a relation's or a
    /// schema's quoted name, or the source's id).
    pub subject: String,
    /// What the run found, and the fix (JSON object).
    pub details: serde_json::Value,
    pub raised_at: Millis,
    pub cleared_at: Option<Millis>,
}

/// The configured webhook as listings show it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookInfo {
    pub url: String,
    pub updated_at: Millis,
    /// Notifications not delivered yet.
    pub pending: u64,
    /// The last delivery error of a notification still pending, if any.
    pub last_error: Option<String>,
}

/// A notification leased for delivery: POST `body` to the webhook, then report how it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub id: i64,
    /// The notification's idempotency id (also in the body).
    pub event_id: String,
    pub body: String,
    /// Attempts before this one.
    pub attempts: u32,
}

/// What [`crate::Store::prune_history`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    pub changes: u64,
    pub snapshots: u64,
    pub runs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiscoveryRun {
    pub id: RunId,
    pub source: SourceId,
    pub state: RunState,
    /// When the run started (for a queued run: when it was asked for).
    pub started_at: Millis,
    pub finished_at: Option<Millis>,
    pub outcome: Option<RunOutcome>,
    /// The stage a failed run stopped at (a doctor check id, `discover`, or `scheduler` for a
    /// run whose instance stopped holding it).
    pub stage: Option<String>,
    pub message: Option<String>,
    pub reason: Option<RunReason>,
    /// The instance that ran it.
    pub instance: Option<String>,
    /// Whether the run stored a new snapshot (the catalog differed from the latest).
    pub changed: Option<bool>,
    /// How many relations the discovered catalog holds.
    pub relations: Option<i64>,
    /// How many runs this record stands for: consecutive scheduled runs that found the catalog
    /// unchanged (with as many relations) are kept as the first one's record, which counts them;
    /// any other run has a record of its own (1).
    pub runs: i64,
    /// When the last of the runs a record stands for started and finished, and its instance
    /// (`None` while it stands for one run).
    pub last_started_at: Option<Millis>,
    pub last_finished_at: Option<Millis>,
    pub last_instance: Option<String>,
}

/// A source's place in the discovery schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiscoverySchedule {
    pub source: SourceId,
    /// The source's own interval; `None` means the service's default.
    pub interval_ms: Option<i64>,
    pub next_due_at: Millis,
    /// Failed runs in a row.
    pub failures: u32,
    /// The instance holding the source now, and until when.
    pub leased_by: Option<String>,
    pub lease_expires_at: Option<Millis>,
    /// A run asked for and not yet claimed.
    pub requested_run: Option<RunId>,
    pub last_run: Option<DiscoveryRun>,
}

/// A source an instance claimed: it runs `run` and holds the source's lease meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedDiscovery {
    pub source: SourceId,
    pub run: RunId,
    /// When the run started (the store's clock).
    pub started_at: Millis,
    pub reason: RunReason,
    pub interval_ms: Option<i64>,
    /// Failed runs in a row before this one.
    pub failures: u32,
}

/// How a claimed run ended, for [`crate::Store::complete_discovery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunResult {
    pub outcome: RunOutcome,
    pub stage: Option<String>,
    pub message: Option<String>,
    pub changed: Option<bool>,
    pub relations: Option<i64>,
}

/// How [`crate::Store::complete_discovery`] recorded a claimed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// Whether the instance still held the source's lease (and released it).
    pub held: bool,
    /// When the run was recorded as finished (the store's clock); `None` when it was recorded
    /// already (the instance that took the source over recorded it as failed).
    pub finished_at: Option<Millis>,
    /// The record the run is kept in: its own, or the earlier one it was folded into (a
    /// scheduled run that found the catalog unchanged, after one that did too).
    pub record: RunId,
}

/// When a completed source is due again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextDue {
    /// On its interval's grid: the first `due + k × interval` after now (a late run does not
    /// shift the grid; a missed slot is not run twice). The interval is the one stored for the
    /// source when the run completes (so one set while the run lasted counts), or
    /// `default_interval_ms` for a source without one of its own.
    Interval { default_interval_ms: i64 },
    /// This long after now (a failure's backoff), at most the source's own interval as stored
    /// when the run completes.
    After { delay_ms: i64 },
}

/// An audit entry to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    /// Who acted: `user:<login>`, `token:<public id>`, `system`.
    pub actor: String,
    /// What happened, e.g. `source.create`, `query`, `login.failed`.
    pub kind: String,
    pub source: Option<SourceId>,
    pub detail: serde_json::Value,
}

/// How a query recorded with [`crate::Store::begin_query_audit`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryCompletion {
    pub duration_ms: i64,
    pub rows: i64,
    pub bytes: i64,
    pub outcome: QueryOutcome,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub id: AuditId,
    pub at: Millis,
    pub actor: String,
    pub kind: String,
    pub source: Option<SourceId>,
    pub detail: serde_json::Value,
    /// For queries: the statement, and once finished how it went.
    pub sql: Option<String>,
    pub finished_at: Option<Millis>,
    pub duration_ms: Option<i64>,
    pub rows: Option<i64>,
    pub bytes: Option<i64>,
    pub outcome: Option<QueryOutcome>,
    pub error: Option<String>,
}

/// Which audit entries to list, newest first. Every filter is optional; `before` is the cursor
/// (the `next` of the previous page).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub source: Option<SourceId>,
    pub kind: Option<String>,
    /// Entries at or after this time.
    pub from: Option<Millis>,
    /// Entries before this time.
    pub until: Option<Millis>,
    pub before: Option<AuditId>,
    /// Page size ([`crate::page_size`]): 1 to 1000, default 100.
    pub limit: Option<u32>,
}

/// One page of audit entries; `next` is the cursor for the following page, when there is one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub next: Option<AuditId>,
}

pub(crate) fn source_id(text: String) -> Result<SourceId, StoreError> {
    text.parse().map_err(|e: sluice_core::BadSourceId| StoreError::Backend { message: format!("stored {e}") })
}

pub(crate) fn secret_field(name: &str) -> Result<SecretField, StoreError> {
    SecretField::ALL
        .into_iter()
        .find(|f| f.as_str() == name)
        .ok_or_else(|| StoreError::Backend { message: format!("unknown stored secret field `{name}`") })
}
