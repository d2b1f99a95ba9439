//! `role_attributes` (what the role may do outside any ACL) and `audit_logging` (whether the
//! server logs what it runs, as the setup guide advises).

use super::catalog::Facts;
use super::roles::{Attrs, Reach};
use super::{fix_text, push_unique};
use crate::quote::{comment, ident};
use crate::report::{Check, CheckId, Status};

/// The attributes judged here (SUPERUSER belongs to `read_only`), with what each allows.
fn risky(a: &Attrs) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    if a.createdb {
        out.push(("CREATEDB", "can create databases"));
    }
    if a.createrole {
        out.push(("CREATEROLE", "can create roles and grant memberships"));
    }
    if a.replication {
        out.push(("REPLICATION", "can stream every table through a replication connection"));
    }
    if a.bypassrls {
        out.push(("BYPASSRLS", "ignores row-level security policies"));
    }
    out
}

pub(super) fn role_attributes(facts: &Facts) -> Check {
    let user = ident(&facts.me.name);
    let mut lines = Vec::new();
    let mut fix = Vec::new();
    let own = risky(&facts.me.attrs);
    if !own.is_empty() {
        for (attr, what) in &own {
            lines.push(format!("{attr}: {user} {what}"));
        }
        let nos: Vec<String> = own.iter().map(|(a, _)| format!("NO{a}")).collect();
        fix.push(format!("ALTER ROLE {user} {};", nos.join(" ")));
    }
    // Attributes are not inherited, but SET ROLE takes them on.
    for role in facts.roles.others().filter(|r| !r.attrs.superuser) {
        let attrs = risky(&role.attrs);
        if attrs.is_empty() {
            continue;
        }
        let Some(reach) = facts.roles.reach(role.oid) else {
            continue;
        };
        let names: Vec<&str> = attrs.iter().map(|(a, _)| *a).collect();
        let how = match &reach {
            Reach::Inherited(p) | Reach::SetRole(p) => {
                let chain: Vec<String> = p.iter().map(|r| ident(r)).collect();
                format!("after SET ROLE {}", chain.join(" → "))
            }
            other => other.describe(),
        };
        lines.push(format!("{} of role {} ({how})", names.join(", "), ident(&role.name)));
        if let Some(first) = reach.first_role() {
            push_unique(&mut fix, facts.roles.revoke_membership(first));
        }
    }
    match facts.me.validity.as_str() {
        "expired" => lines.push(format!("the password of {user} expired at {}", facts.me.valid_until)),
        "soon" => lines.push(format!("the password of {user} expires at {}, within 14 days", facts.me.valid_until)),
        _ => {}
    }
    if !facts.me.validity.is_empty() {
        fix.push(format!("ALTER ROLE {user} VALID UNTIL 'infinity';"));
        fix.push(comment(&format!(
            "or rotate the password and set a later date: ALTER ROLE {user} PASSWORD '…' VALID UNTIL '…';"
        )));
    }
    if lines.is_empty() {
        let until = if facts.me.valid_until.is_empty() {
            "the password has no expiry date".to_string()
        } else {
            format!("the password is valid until {}", facts.me.valid_until)
        };
        return Check::new(
            CheckId::ROLE_ATTRIBUTES,
            Status::Pass,
            format!("{user} has no CREATEDB, CREATEROLE, REPLICATION or BYPASSRLS"),
        )
        .detail(until);
    }
    Check::new(
        CheckId::ROLE_ATTRIBUTES,
        Status::Warn,
        format!("{user} carries {} attribute finding{}", lines.len(), if lines.len() == 1 { "" } else { "s" }),
    )
    .detail(lines.join("\n"))
    .fix(fix_text(&fix))
}

pub(super) fn audit_logging(facts: &Facts) -> Check {
    let user = ident(&facts.me.name);
    let statement = facts.me.log_statement.as_str();
    let duration = facts.me.log_duration.as_str();
    let detail = format!("log_statement = {statement}, log_duration = {duration} (as a session of {user} sees them)");
    let mut fix = Vec::new();
    if statement != "all" {
        fix.push(format!("ALTER ROLE {user} SET log_statement = 'all';"));
    }
    if duration != "on" {
        fix.push(format!("ALTER ROLE {user} SET log_duration = on;"));
    }
    if fix.is_empty() {
        return Check::new(
            CheckId::AUDIT_LOGGING,
            Status::Pass,
            format!("the server logs every statement of {user} and its duration"),
        )
        .detail(detail);
    }
    Check::new(
        CheckId::AUDIT_LOGGING,
        Status::Warn,
        format!("the server does not log every statement of {user} with its duration"),
    )
    .detail(detail)
    .fix(fix_text(&fix))
}
