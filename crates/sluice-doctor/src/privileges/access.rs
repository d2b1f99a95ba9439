//! What the user can reach for reading: `database_connect`, `schema_usage`, `table_select`, and
//! `default_privileges` — whether tables created *later* (by an ELT tool recreating them, say)
//! will be readable too.

use super::catalog::{Facts, Scope, UNREADABLE_LISTED};
use super::{fix_text, relkind_noun, shown};
use crate::quote::ident;
use crate::report::{Check, CheckId, Status};

pub(super) fn database_connect(facts: &Facts) -> Check {
    let db = ident(&facts.me.database);
    let user = ident(&facts.me.name);
    let mut paths: Vec<String> = facts
        .db_grants
        .iter()
        .filter(|g| g.privilege == "CONNECT" && facts.roles.is_inherited(g.grantee))
        .filter_map(|g| facts.roles.reach(g.grantee))
        .map(|r| match r.is_public() {
            true => "granted to PUBLIC (PostgreSQL's default)".to_string(),
            false => r.describe(),
        })
        .collect();
    if facts.roles.is_inherited(facts.me.db_owner_oid) || facts.me.db_owner_oid == facts.roles.me_oid {
        paths.push("as the database owner".into());
    }
    if paths.is_empty() {
        // Only a superuser gets here without CONNECT.
        return Check::new(
            CheckId::DATABASE_CONNECT,
            Status::Fail,
            format!("{user} has no CONNECT privilege on database {db}"),
        )
        .detail("it logged in only because it is a superuser")
        .fix(Some(format!("GRANT CONNECT ON DATABASE {db} TO {user};")));
    }
    Check::new(CheckId::DATABASE_CONNECT, Status::Pass, format!("{user} may connect to database {db}"))
        .detail(format!("CONNECT: {}", paths.join("; ")))
}

pub(super) fn schema_usage(facts: &Facts, scope: &Scope) -> Check {
    let user = ident(&facts.me.name);
    let in_scope: Vec<_> = facts.schemas.iter().filter(|s| s.in_scope).collect();
    let missing: Vec<&String> = match scope {
        Scope::All => Vec::new(),
        Scope::Named(names) => names.iter().filter(|n| !facts.schemas.iter().any(|s| &s.name == *n)).collect(),
    };
    let usable: Vec<String> = in_scope.iter().filter(|s| s.usage).map(|s| ident(&s.name)).collect();
    let lacking: Vec<String> = in_scope.iter().filter(|s| !s.usage).map(|s| ident(&s.name)).collect();
    let mut detail = Vec::new();
    if !usable.is_empty() {
        detail.push(format!("USAGE: {}", usable.join(", ")));
    }
    if !lacking.is_empty() {
        detail.push(format!("no USAGE: {}", lacking.join(", ")));
    }
    if !missing.is_empty() {
        let names: Vec<String> = missing.iter().map(|n| ident(n)).collect();
        detail.push(format!("no such schema: {}", names.join(", ")));
    }
    let fix: Vec<String> =
        in_scope.iter().filter(|s| !s.usage).map(|s| crate::grants::grant_usage(&s.name, &facts.me.name)).collect();
    let named = matches!(scope, Scope::Named(_));
    let (status, summary) = if !missing.is_empty() || (named && !lacking.is_empty()) {
        (
            Status::Fail,
            format!(
                "{} of the schemas named with --schema {} not usable by {user}",
                missing.len() + lacking.len(),
                if missing.len() + lacking.len() == 1 { "is" } else { "are" }
            ),
        )
    } else if in_scope.is_empty() {
        (Status::Warn, "the database has no schema outside pg_catalog and information_schema".into())
    } else if !lacking.is_empty() {
        (Status::Warn, format!("{user} has USAGE on {} of {} schemas", usable.len(), in_scope.len()))
    } else {
        (Status::Pass, format!("{user} has USAGE on every schema in scope ({})", usable.len()))
    };
    Check::new(CheckId::SCHEMA_USAGE, status, summary).detail(detail.join("\n")).fix(fix_text(&fix))
}

pub(super) fn table_select(facts: &Facts) -> Check {
    let user = ident(&facts.me.name);
    let total: u64 = facts.unreadable_counts.values().sum();
    let usable = facts.schemas.iter().filter(|s| s.in_scope && s.usage).count();
    if total == 0 {
        return Check::new(
            CheckId::TABLE_SELECT,
            Status::Pass,
            format!("{user} can SELECT every table and view in the {usable} usable schemas in scope"),
        );
    }
    let mut lines: Vec<String> =
        facts.unreadable.iter().map(|(s, n, k)| format!("{} {}", relkind_noun(k), shown(s, n))).collect();
    if total > lines.len() as u64 {
        lines.push(format!(
            "… {total} in all: {}",
            facts.unreadable_counts.iter().map(|(s, n)| format!("{} {n}", ident(s))).collect::<Vec<_>>().join(", ")
        ));
    }
    let fix: Vec<String> = if total as usize <= UNREADABLE_LISTED {
        facts.unreadable.iter().map(|(s, n, _)| crate::grants::grant_select(s, n, &facts.me.name)).collect()
    } else {
        facts.unreadable_counts.keys().map(|s| crate::grants::grant_select_all(s, &facts.me.name)).collect()
    };
    Check::new(
        CheckId::TABLE_SELECT,
        Status::Warn,
        format!("{user} cannot SELECT {total} relation{} in usable schemas", if total == 1 { "" } else { "s" }),
    )
    .detail(lines.join("\n"))
    .fix(fix_text(&fix))
}

pub(super) fn default_privileges(facts: &Facts, scope: &Scope) -> Check {
    let user = ident(&facts.me.name);
    if facts.me.attrs.superuser {
        return Check::new(
            CheckId::DEFAULT_PRIVILEGES,
            Status::Pass,
            format!("{user} is a superuser and reads every table created later"),
        );
    }
    if let Some(role) = facts.roles.by_name("pg_read_all_data").filter(|r| r.inherited) {
        let how = facts.roles.reach(role.oid).map(|r| r.describe()).unwrap_or_default();
        return Check::new(
            CheckId::DEFAULT_PRIVILEGES,
            Status::Pass,
            format!("{user} has pg_read_all_data, which covers every table created later"),
        )
        .detail(format!("pg_read_all_data {how}"));
    }
    let usable = |schema: &str| facts.schemas.iter().any(|s| s.name == schema && s.usage);
    let creators: Vec<_> = facts
        .creators
        .iter()
        .filter(|c| matches!(scope, Scope::Named(_)) || usable(&c.schema))
        .filter(|c| !facts.roles.is_inherited(c.role_oid) && c.role_oid != facts.roles.me_oid)
        .collect();
    let covered: Vec<String> =
        creators.iter().filter(|c| c.covered).map(|c| format!("{} in {}", ident(&c.role), ident(&c.schema))).collect();
    let missing: Vec<_> = creators.iter().filter(|c| !c.covered).collect();
    if missing.is_empty() {
        let summary = if creators.is_empty() {
            "no other role creates tables in the schemas in scope".to_string()
        } else {
            format!("every role that creates tables in scope grants SELECT to {user} by default")
        };
        return Check::new(CheckId::DEFAULT_PRIVILEGES, Status::Pass, summary)
            .detail(format!("covered: {}", covered.join(", ")));
    }
    let sentences: Vec<String> = missing
        .iter()
        .map(|c| {
            format!(
                "tables that {} creates or recreates in {} will not be readable by {user}{}",
                ident(&c.role),
                ident(&c.schema),
                if c.schema_owner { " (it owns the schema)" } else { "" }
            )
        })
        .collect();
    let fix: Vec<String> =
        missing.iter().map(|c| crate::grants::default_select(&c.role, &c.schema, &facts.me.name)).collect();
    let summary = match sentences.as_slice() {
        [one] => one.clone(),
        _ => {
            let mut roles: Vec<String> = missing.iter().map(|c| ident(&c.role)).collect();
            let mut schemas: Vec<String> = missing.iter().map(|c| ident(&c.schema)).collect();
            roles.sort();
            roles.dedup();
            schemas.sort();
            schemas.dedup();
            format!(
                "tables that {} create or recreate in {} will not be readable by {user}",
                roles.join(", "),
                schemas.join(", ")
            )
        }
    };
    let mut detail = sentences;
    if !covered.is_empty() {
        detail.push(format!("covered: {}", covered.join(", ")));
    }
    Check::new(CheckId::DEFAULT_PRIVILEGES, Status::Warn, summary).detail(detail.join("\n")).fix(fix_text(&fix))
}
