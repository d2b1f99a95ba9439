//! The privilege audit: what the logged-in user may read and, above all, whether it can change
//! anything — directly, through PUBLIC, or through any role it reaches in `pg_auth_members`.
//!
//! Checks, in report order: `database_connect`, `read_only`, `role_attributes`, `schema_usage`,
//! `table_select`, `default_privileges`, `audit_logging`. Each `fix` is SQL only — statements
//! one per line, `--` comments on their own lines — that a superuser runs; the statements are
//! idempotent, so [`crate::Report::fix_sql`] can join them into one script.
//!
//! The evidence comes from [`catalog`] in two round trips whatever the catalog size.

mod access;
mod attributes;
pub(crate) mod catalog;
mod read_only;
pub(crate) mod roles;

use std::time::Instant;

use sluice_connect::ReadOnlySession;

use crate::quote::{ident, qualified};
use crate::report::{Check, CheckId, Status};
use catalog::{Facts, Scope};

/// The privilege checks, in report order.
pub(crate) const IDS: [&str; 7] = [
    CheckId::DATABASE_CONNECT,
    CheckId::READ_ONLY,
    CheckId::ROLE_ATTRIBUTES,
    CheckId::SCHEMA_USAGE,
    CheckId::TABLE_SELECT,
    CheckId::DEFAULT_PRIVILEGES,
    CheckId::AUDIT_LOGGING,
];

/// Runs the privilege checks on an open session; without one they are skipped.
pub(crate) async fn checks(session: Option<&mut ReadOnlySession>, schemas: &[String]) -> Vec<Check> {
    let Some(session) = session else {
        return IDS.iter().map(|id| Check::skip(id, "not logged in")).collect();
    };
    let started = Instant::now();
    let scope = Scope::of(schemas);
    let facts = match read_facts(session, &scope).await {
        Ok(f) => f,
        Err(e) => {
            let why = format!("could not read the catalog: {}", e.0);
            return IDS
                .iter()
                .map(|id| {
                    if *id == CheckId::READ_ONLY {
                        Check::new(id, Status::Fail, format!("cannot prove the user is read-only: {why}"))
                            .timed(started)
                    } else {
                        Check::skip(id, why.clone())
                    }
                })
                .collect();
        }
    };
    [
        access::database_connect(&facts),
        read_only::check(&facts),
        attributes::role_attributes(&facts),
        access::schema_usage(&facts, &scope),
        access::table_select(&facts),
        access::default_privileges(&facts, &scope),
        attributes::audit_logging(&facts),
    ]
    .into_iter()
    .map(|c| c.timed(started))
    .collect()
}

/// The evidence, read inside one read-only transaction (the only way to reach the session's
/// client), which is rolled back: the audit never changes anything.
async fn read_facts(session: &mut ReadOnlySession, scope: &Scope) -> Result<Facts, catalog::CatalogError> {
    let version = session.info().server_version_num;
    let tx = session.read_only_transaction().await.map_err(|e| catalog::CatalogError(e.to_string()))?;
    let facts = catalog::read(tx.client(), version, scope).await;
    let ended = tx.rollback().await.map_err(|e| catalog::CatalogError(e.to_string()));
    let facts = facts?;
    ended.map(|()| facts)
}

/// The noun a person uses for a `relkind`.
pub(crate) fn relkind_noun(kind: &str) -> &'static str {
    match kind {
        "r" => "table",
        "p" => "partitioned table",
        "v" => "view",
        "m" => "materialized view",
        "f" => "foreign table",
        "S" => "sequence",
        _ => "relation",
    }
}

/// The object type word of `ALTER … OWNER TO` for a `relkind`.
fn relkind_alter(kind: &str) -> &'static str {
    match kind {
        "v" => "VIEW",
        "m" => "MATERIALIZED VIEW",
        "f" => "FOREIGN TABLE",
        "S" => "SEQUENCE",
        _ => "TABLE",
    }
}

/// The object type word of `GRANT`/`REVOKE … ON` for a `relkind`.
fn relkind_grant(kind: &str) -> &'static str {
    if kind == "S" {
        "SEQUENCE"
    } else {
        "TABLE"
    }
}

/// `s.t` as the report shows it (quoted like SQL, so it is unambiguous).
fn shown(schema: &str, name: &str) -> String {
    qualified(schema, name)
}

/// `REVOKE privilege ON object FROM grantee;`, issued as the grantor when the grantor is not the
/// owner (a superuser's REVOKE acts as the owner and would leave another grantor's grant alone).
fn revoke(privilege: &str, on: &str, grantee: &str, grantor: &str, owner: &str) -> String {
    let stmt = format!("REVOKE {privilege} ON {on} FROM {grantee};");
    if grantor == owner || grantor.is_empty() {
        stmt
    } else {
        format!("SET ROLE {}; {stmt} RESET ROLE;", ident(grantor))
    }
}

/// Adds `items` to `out` unless already present; keeps order.
fn push_unique(out: &mut Vec<String>, items: impl IntoIterator<Item = String>) {
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
}

/// Joins fix lines into a `fix` value (None when empty).
fn fix_text(lines: &[String]) -> Option<String> {
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// Lists at most `max` lines, then how many more there are.
fn capped(lines: &[String], max: usize) -> String {
    let mut out: Vec<String> = lines.iter().take(max).cloned().collect();
    if lines.len() > max {
        out.push(format!("… and {} more", lines.len() - max));
    }
    out.join("\n")
}

/// The statements that make the database owned by someone the user does not reach.
fn database_owner_fix(facts: &Facts) -> String {
    format!("ALTER DATABASE {} OWNER TO CURRENT_USER;", ident(&facts.me.database))
}
