//! `read_only`: fail when the user can change anything, warn for what merely reaches further
//! than reading. Every finding names the privilege, the object and the path it arrives by, and
//! carries the exact statement that removes that path.

use super::catalog::{Facts, Grant, Owned};
use super::roles::{Reach, DATABASE_OWNER_ROLE};
use super::{
    capped, database_owner_fix, fix_text, push_unique, relkind_alter, relkind_grant, relkind_noun, revoke, shown,
};
use crate::quote::{ident, lines, qualified};
use crate::report::{Check, CheckId, Status};

/// Memberships that write: files, programs, or every table.
const WRITING_ROLES: [&str; 4] =
    ["pg_write_all_data", "pg_write_server_files", "pg_execute_server_program", "pg_read_server_files"];
/// Memberships that reach past reading without writing data.
const REACHING_ROLES: [(&str, &str); 2] = [
    ("pg_signal_backend", "can cancel and terminate other sessions"),
    ("pg_maintain", "can lock, vacuum, reindex and refresh every relation"),
];
/// How many findings the detail lists; the fix always covers all of them.
const LISTED: usize = 100;

/// One thing the user can do that it should not.
struct Finding {
    fail: bool,
    what: String,
    reach: Reach,
    fix: Vec<String>,
    /// Overrides the path text where "granted" would be wrong (ownership, attributes).
    how: Option<String>,
}

impl Finding {
    fn new(fail: bool, what: String, reach: Reach, fix: Vec<String>) -> Finding {
        Finding { fail, what, reach, fix, how: None }
    }

    /// The path, worded for something the user *is* (owner, superuser) rather than was granted.
    fn being(mut self, direct: &str) -> Finding {
        if self.reach == Reach::Direct {
            self.how = Some(direct.to_string());
        }
        self
    }
}

pub(super) fn check(facts: &Facts) -> Check {
    let mut found = Vec::new();
    attributes_and_memberships(facts, &mut found);
    database(facts, &mut found);
    for g in &facts.schema_creates {
        grant_finding(
            facts,
            &mut found,
            g,
            true,
            format!("CREATE on schema {}", ident(&g.schema)),
            format!("SCHEMA {}", ident(&g.schema)),
        );
    }
    for g in &facts.rel_grants {
        let noun = relkind_noun(&g.kind);
        let on = format!("{} {}", relkind_grant(&g.kind), shown(&g.schema, &g.name));
        let what = format!("{} on {noun} {}", g.privilege, shown(&g.schema, &g.name));
        grant_finding(facts, &mut found, g, g.privilege != "MAINTAIN", what, on);
    }
    for g in &facts.col_grants {
        let on = format!("TABLE {}", shown(&g.schema, &g.name));
        let what =
            format!("{} ({}) on {} {}", g.privilege, ident(&g.sub), relkind_noun(&g.kind), shown(&g.schema, &g.name));
        let privilege = format!("{} ({})", g.privilege, ident(&g.sub));
        let grant = Grant { privilege, ..g.clone() };
        grant_finding(facts, &mut found, &grant, true, what, on);
    }
    for o in &facts.owned {
        owned(facts, &mut found, o);
    }
    dblink(facts, &mut found);
    verdict(facts, found)
}

fn attributes_and_memberships(facts: &Facts, found: &mut Vec<Finding>) {
    let me = ident(&facts.me.name);
    if facts.me.attrs.superuser {
        found.push(
            Finding::new(
                true,
                "superuser: it bypasses every privilege check".into(),
                Reach::Direct,
                vec![format!("ALTER ROLE {me} NOSUPERUSER;")],
            )
            .being("the role's own attribute"),
        );
    }
    for role in facts.roles.others() {
        let Some(reach) = facts.roles.reach(role.oid) else {
            continue;
        };
        if role.attrs.superuser {
            let fix = path_fix(facts, &reach, |_| Vec::new());
            let what = format!("superuser {} reachable with SET ROLE", ident(&role.name));
            found.push(Finding::new(true, what, reach, fix));
            continue;
        }
        if WRITING_ROLES.contains(&role.name.as_str()) {
            let fix = path_fix(facts, &reach, |_| Vec::new());
            found.push(Finding::new(true, format!("member of {}", role.name), reach, fix));
        } else if let Some((_, why)) = REACHING_ROLES.iter().find(|(n, _)| *n == role.name) {
            let fix = path_fix(facts, &reach, |_| Vec::new());
            let what = format!("member of {} ({why})", role.name);
            found.push(Finding::new(false, what, reach, fix));
        }
    }
}

fn database(facts: &Facts, found: &mut Vec<Finding>) {
    let db = ident(&facts.me.database);
    if let Some(reach) = facts.roles.reach(facts.me.db_owner_oid) {
        if facts.me.db_owner_oid != 0 {
            let fix = match &reach {
                Reach::Direct => vec![database_owner_fix(facts)],
                _ => path_fix(facts, &reach, |_| Vec::new()),
            };
            let what = format!("owner of database {db}");
            found.push(Finding::new(true, what, reach, fix).being("owned directly"));
        }
    }
    for g in &facts.db_grants {
        match g.privilege.as_str() {
            "CREATE" => {
                grant_finding(facts, found, g, true, format!("CREATE on database {db}"), format!("DATABASE {db}"))
            }
            // PUBLIC holds TEMPORARY in every database by default, and revoking it breaks every
            // application that uses temporary tables; temporary tables die with the session.
            // Only a grant that singles the user (or its roles) out is reported.
            "TEMPORARY" if g.grantee != 0 => grant_finding(
                facts,
                found,
                g,
                false,
                format!("TEMPORARY on database {db}: it can create temporary tables"),
                format!("DATABASE {db}"),
            ),
            _ => {}
        }
    }
}

/// A finding for one ACL entry; `on` is the `REVOKE … ON` object clause.
fn grant_finding(facts: &Facts, found: &mut Vec<Finding>, g: &Grant, fail: bool, what: String, on: String) {
    let Some(reach) = facts.roles.reach(g.grantee) else {
        return;
    };
    let fix = path_fix(facts, &reach, |grantee| vec![revoke(&g.privilege, &on, grantee, &g.grantor, &g.owner)]);
    found.push(Finding::new(fail, what, reach, fix));
}

/// The statements that remove one path: the object's own REVOKE for a direct or PUBLIC grant
/// (`direct` gets the grantee as SQL), else the user's first membership on the way.
fn path_fix(facts: &Facts, reach: &Reach, direct: impl Fn(&str) -> Vec<String>) -> Vec<String> {
    match reach {
        Reach::Direct => direct(&ident(&facts.me.name)),
        Reach::Public => direct("PUBLIC"),
        Reach::Inherited(_) | Reach::SetRole(_) => match reach.first_role() {
            // The database owner is in pg_database_owner by ownership, not by a grant.
            Some(DATABASE_OWNER_ROLE) => vec![database_owner_fix(facts)],
            Some(role) => facts.roles.revoke_membership(role),
            None => Vec::new(),
        },
    }
}

fn owned(facts: &Facts, found: &mut Vec<Finding>, o: &Owned) {
    let Some(reach) = facts.roles.reach(o.owner) else {
        return;
    };
    let user = ident(&facts.me.name);
    // Handing an object over takes the owner's implicit rights with it, reading included; the
    // GRANT keeps what a read-only role should keep.
    let (what, alter) = match o.kind.as_str() {
        "n" => (
            format!("owner of schema {}", ident(&o.schema)),
            format!(
                "ALTER SCHEMA {s} OWNER TO {};\nGRANT USAGE ON SCHEMA {s} TO {user};",
                new_owner(facts, None),
                s = ident(&o.schema),
            ),
        ),
        k if k.starts_with("fn:") => {
            let (noun, word) = match &k[3..] {
                "p" => ("procedure", "PROCEDURE"),
                "a" => ("aggregate", "AGGREGATE"),
                _ => ("function", "FUNCTION"),
            };
            let sig = format!("{}({})", qualified(&o.schema, &o.name), o.args);
            (
                format!("owner of {noun} {sig}"),
                format!("ALTER {word} {sig} OWNER TO {};", new_owner(facts, Some(&o.schema))),
            )
        }
        k => (
            format!("owner of {} {}", relkind_noun(k), shown(&o.schema, &o.name)),
            format!(
                "ALTER {} {name} OWNER TO {};\nGRANT SELECT ON {} {name} TO {user};",
                relkind_alter(k),
                new_owner(facts, Some(&o.schema)),
                relkind_grant(k),
                name = shown(&o.schema, &o.name),
            ),
        ),
    };
    let fix = path_fix(facts, &reach, |_| lines(&alter));
    found.push(Finding::new(true, what, reach, fix).being("owned directly"));
}

/// Who should own what the user owns: the schema's owner, else the database owner, else the role
/// running the fix — whichever the user does not reach.
fn new_owner(facts: &Facts, schema: Option<&str>) -> String {
    let reached = |oid: u32| facts.roles.reach(oid).is_some_and(|r| !r.is_public());
    if let Some(s) = schema.and_then(|name| facts.schemas.iter().find(|s| s.name == name)) {
        if !reached(s.owner_oid) && s.owner != DATABASE_OWNER_ROLE {
            return ident(&s.owner);
        }
    }
    if !reached(facts.me.db_owner_oid) {
        return ident(&facts.me.db_owner);
    }
    "CURRENT_USER".into()
}

/// EXECUTE on dblink / postgres_fdw functions: one finding per extension and path.
fn dblink(facts: &Facts, found: &mut Vec<Finding>) {
    let mut groups: Vec<(String, u32, Vec<&Grant>)> = Vec::new();
    for g in &facts.fdw_grants {
        match groups.iter_mut().find(|(e, who, _)| *e == g.extension && *who == g.grantee) {
            Some((_, _, list)) => list.push(g),
            None => groups.push((g.extension.clone(), g.grantee, vec![g])),
        }
    }
    for (ext, grantee, grants) in groups {
        let Some(reach) = facts.roles.reach(grantee) else {
            continue;
        };
        let names: Vec<String> = grants.iter().take(3).map(|g| format!("{}({})", ident(&g.name), g.sub)).collect();
        let what = format!(
            "EXECUTE on {} function{} of extension {ext} ({}{}): a second, read-write connection",
            grants.len(),
            if grants.len() == 1 { "" } else { "s" },
            names.join(", "),
            if grants.len() > 3 { ", …" } else { "" }
        );
        let fix = path_fix(facts, &reach, |who| {
            grants
                .iter()
                .map(|g| {
                    let on = format!("FUNCTION {}({})", qualified(&g.schema, &g.name), g.sub);
                    revoke("EXECUTE", &on, who, &g.grantor, &g.owner)
                })
                .collect()
        });
        found.push(Finding::new(false, what, reach, fix));
    }
}

fn verdict(facts: &Facts, found: Vec<Finding>) -> Check {
    let user = ident(&facts.me.name);
    let fails = found.iter().filter(|f| f.fail).count();
    let warns = found.len() - fails;
    let mut lines = Vec::new();
    let mut fix = Vec::new();
    // Failures first, then warnings; each in discovery order.
    for f in found.iter().filter(|f| f.fail).chain(found.iter().filter(|f| !f.fail)) {
        lines.push(format!(
            "{}{} ({})",
            if f.fail { "" } else { "warning: " },
            f.what,
            f.how.clone().unwrap_or_else(|| f.reach.describe())
        ));
        push_unique(&mut fix, f.fix.iter().cloned());
    }
    let scope_note = format!(
        "checked {} relations and {} schemas in scope, the database, and the {} other roles {user} is a member of",
        facts.relations_in_scope,
        facts.schemas.iter().filter(|s| s.in_scope).count(),
        facts.roles.others().count(),
    );
    let public_temp = facts.db_grants.iter().any(|g| g.grantee == 0 && g.privilege == "TEMPORARY");
    let mut notes = vec![scope_note];
    if public_temp {
        notes.push(
            "TEMPORARY on the database is granted to PUBLIC (PostgreSQL's default): temporary tables are private to a session and vanish with it".into(),
        );
    }
    if fails > 0 {
        Check::new(
            CheckId::READ_ONLY,
            Status::Fail,
            format!(
                "{user} can change data: {fails} write privilege{} or ownership{}",
                if fails == 1 { "" } else { "s" },
                if warns > 0 {
                    format!(", and {warns} warning{}", if warns == 1 { "" } else { "s" })
                } else {
                    String::new()
                }
            ),
        )
        .detail(capped(&lines, LISTED))
        .fix(fix_text(&fix))
    } else if warns > 0 {
        Check::new(
            CheckId::READ_ONLY,
            Status::Warn,
            format!(
                "{user} cannot change data, but reaches further than reading ({warns} finding{})",
                if warns == 1 { "" } else { "s" }
            ),
        )
        .detail(format!("{}\n{}", capped(&lines, LISTED), notes.join("\n")))
        .fix(fix_text(&fix))
    } else {
        Check::new(CheckId::READ_ONLY, Status::Pass, format!("{user} cannot change anything in scope"))
            .detail(notes.join("\n"))
    }
}
