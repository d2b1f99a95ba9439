//! The catalog evidence behind the privilege checks, read in two simple-protocol round trips.
//!
//! Round trip 1 reads the user, the database, the roles the user reaches through
//! `pg_auth_members`, and the schemas with their USAGE. Round trip 2 takes those role and schema
//! oids as literal arrays and reads, set-based, everything the checks judge: ACL entries
//! (`aclexplode`) that hold a write privilege, objects those roles own, relations the user cannot
//! SELECT and the creators whose default ACL leaves the user out. Relations are filtered by
//! namespace oid, never joined per schema, and `has_table_privilege` runs only on candidate
//! relations. Neither round trip loops over tables: about 0.3 s at 10,000 tables (see
//! `benches/doctor_catalog.rs`).
//!
//! Only the simple query protocol is used (PgBouncer-safe: no named statements) and every value
//! comes back as text, so no type lookup ever runs on the session.

use std::collections::BTreeMap;

use sluice_connect::tokio_postgres::{Client, SimpleQueryMessage};

use super::roles::{Attrs, RoleNode, Roles};
use crate::quote;

/// PostgreSQL 14 added `pg_read_all_data`, `pg_write_all_data` and `pg_database_owner`.
pub(crate) const V14: u32 = 140_000;
/// PostgreSQL 16 made inheritance a property of each grant (`pg_auth_members.inherit_option`).
pub(crate) const V16: u32 = 160_000;
/// Role chains longer than this are not followed (PostgreSQL forbids cycles; this is a guard).
const MAX_DEPTH: u32 = 16;

/// Which schemas the checks look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Every schema except `pg_*` and `information_schema`.
    All,
    /// The schemas named with `--schema`; each must exist and be usable.
    Named(Vec<String>),
}

impl Scope {
    pub(crate) fn of(schemas: &[String]) -> Scope {
        if schemas.is_empty() {
            Scope::All
        } else {
            Scope::Named(schemas.to_vec())
        }
    }

    /// A SQL predicate on the namespace alias `n`.
    fn predicate(&self) -> String {
        match self {
            Scope::All => NOT_SYSTEM.to_string(),
            Scope::Named(names) => format!("n.nspname::text = ANY({})", text_array(names)),
        }
    }
}

const NOT_SYSTEM: &str = "(n.nspname !~ '^pg_' AND n.nspname <> 'information_schema')";

/// Why the evidence could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CatalogError(pub String);

/// Who the user is, as the server sees it.
#[derive(Debug, Clone)]
pub(crate) struct Me {
    pub name: String,
    pub database: String,
    pub db_owner: String,
    pub db_owner_oid: u32,
    pub attrs: Attrs,
    /// `expired`, `soon` or empty.
    pub validity: String,
    pub valid_until: String,
    pub log_statement: String,
    pub log_duration: String,
}

/// One ACL entry (`aclexplode`) that reaches the user.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub schema: String,
    /// Relation, function or column owner's object name; empty for a schema or the database.
    pub name: String,
    /// `pg_class.relkind`, `d` (database), `n` (schema), or `f` (function).
    pub kind: String,
    /// A column name for column privileges; the identity arguments for a function.
    pub sub: String,
    pub privilege: String,
    pub grantee: u32,
    pub grantor: String,
    pub owner: String,
    pub extension: String,
}

/// An object in scope owned by a role the user reaches.
#[derive(Debug, Clone)]
pub(crate) struct Owned {
    /// `n` schema, a relkind, or `fn:f`/`fn:p`/`fn:a`/`fn:w` for routines.
    pub kind: String,
    pub schema: String,
    pub name: String,
    pub args: String,
    pub owner: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct Schema {
    pub oid: u32,
    pub name: String,
    pub owner_oid: u32,
    pub owner: String,
    pub in_scope: bool,
    pub usage: bool,
}

/// A role that creates relations in a schema, and whether its default ACL covers the user.
#[derive(Debug, Clone)]
pub(crate) struct Creator {
    pub schema: String,
    pub role: String,
    pub role_oid: u32,
    pub covered: bool,
    pub schema_owner: bool,
}

/// Everything the privilege checks judge.
#[derive(Debug, Clone)]
pub(crate) struct Facts {
    pub me: Me,
    pub roles: Roles,
    pub schemas: Vec<Schema>,
    pub db_grants: Vec<Grant>,
    pub schema_creates: Vec<Grant>,
    pub rel_grants: Vec<Grant>,
    pub col_grants: Vec<Grant>,
    pub fdw_grants: Vec<Grant>,
    pub owned: Vec<Owned>,
    /// The first unreadable relations: (schema, name, relkind).
    pub unreadable: Vec<(String, String, String)>,
    /// Unreadable relations per usable schema in scope.
    pub unreadable_counts: BTreeMap<String, u64>,
    pub creators: Vec<Creator>,
    /// Relations and routines in scope, for the evidence line.
    pub relations_in_scope: u64,
}

/// How many unreadable relations `table_select` lists.
pub(crate) const UNREADABLE_LISTED: usize = 20;

type Rows = Vec<Vec<String>>;

/// Runs a batch of statements in one round trip; returns each statement's rows (NULL → "").
async fn batch(client: &Client, sql: &str) -> Result<Vec<Rows>, CatalogError> {
    let messages = client.simple_query(sql).await.map_err(|e| {
        CatalogError(match e.as_db_error() {
            Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
            None => e.to_string(),
        })
    })?;
    let mut out = Vec::new();
    let mut current = Vec::new();
    for m in messages {
        match m {
            SimpleQueryMessage::Row(r) => {
                current.push((0..r.len()).map(|i| r.get(i).unwrap_or("").to_string()).collect())
            }
            SimpleQueryMessage::CommandComplete(_) => out.push(std::mem::take(&mut current)),
            _ => {}
        }
    }
    Ok(out)
}

fn col(row: &[String], i: usize) -> &str {
    row.get(i).map(String::as_str).unwrap_or("")
}

fn flag(row: &[String], i: usize) -> bool {
    col(row, i) == "t"
}

fn oid(row: &[String], i: usize) -> u32 {
    col(row, i).parse().unwrap_or(0)
}

fn text_array(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote::literal(s)).collect();
    format!("ARRAY[{}]::text[]", quoted.join(", "))
}

fn oid_array(oids: &[u32]) -> String {
    let list: Vec<String> = oids.iter().map(u32::to_string).collect();
    format!("'{{{}}}'::oid[]", list.join(","))
}

fn statement(rows: &mut std::vec::IntoIter<Rows>, what: &str) -> Result<Rows, CatalogError> {
    rows.next().ok_or_else(|| CatalogError(format!("the server returned no rows for {what}")))
}

/// Reads the evidence: two round trips.
pub(crate) async fn read(client: &Client, version_num: u32, scope: &Scope) -> Result<Facts, CatalogError> {
    let mut first = batch(client, &first_batch(version_num, scope)).await?.into_iter();
    let me_rows = statement(&mut first, "the user")?;
    let me_row = me_rows.first().ok_or_else(|| CatalogError("the current user is not in pg_roles".into()))?;
    let me = Me {
        name: col(me_row, 0).into(),
        database: col(me_row, 1).into(),
        db_owner_oid: oid(me_row, 2),
        db_owner: col(me_row, 3).into(),
        attrs: Attrs {
            superuser: flag(me_row, 5),
            createdb: flag(me_row, 6),
            createrole: flag(me_row, 7),
            replication: flag(me_row, 8),
            bypassrls: flag(me_row, 9),
        },
        validity: col(me_row, 10).into(),
        valid_until: col(me_row, 11).into(),
        log_statement: col(me_row, 12).into(),
        log_duration: col(me_row, 13).into(),
    };
    let me_oid = oid(me_row, 4);
    let db_owner_role = col(me_row, 14).parse::<u32>().ok();
    let nodes: Vec<RoleNode> = statement(&mut first, "role memberships")?
        .iter()
        .map(|r| RoleNode {
            oid: oid(r, 0),
            name: col(r, 1).into(),
            path: serde_json::from_str(col(r, 2)).unwrap_or_default(),
            inherited: flag(r, 3),
            attrs: Attrs {
                superuser: flag(r, 4),
                createdb: flag(r, 5),
                createrole: flag(r, 6),
                replication: flag(r, 7),
                bypassrls: flag(r, 8),
            },
        })
        .collect();
    let mut grantors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in statement(&mut first, "direct memberships")? {
        grantors.entry(col(&r, 0).to_string()).or_default().push(col(&r, 1).to_string());
    }
    let roles =
        Roles::new(me_oid, me.name.clone(), nodes, grantors, db_owner_role.map(|o| (o, me.db_owner_oid)), version_num);
    let schema_rows = statement(&mut first, "schemas")?;
    let names: BTreeMap<u32, String> = schema_rows.iter().map(|r| (oid(r, 0), col(r, 1).to_string())).collect();
    let schemas: Vec<Schema> = schema_rows
        .iter()
        .map(|r| Schema {
            oid: oid(r, 0),
            name: col(r, 1).into(),
            owner_oid: oid(r, 2),
            owner: col(r, 3).into(),
            in_scope: flag(r, 4),
            usage: flag(r, 5),
        })
        .collect();

    let in_scope: Vec<u32> = schemas.iter().filter(|s| s.in_scope).map(|s| s.oid).collect();
    let usable: Vec<u32> = schemas.iter().filter(|s| s.in_scope && s.usage).map(|s| s.oid).collect();
    let sql = second_batch(
        version_num,
        &Arrays {
            reached: oid_array(&roles.reachable_oids()),
            inherited: oid_array(&roles.inherited_oids()),
            in_scope: oid_array(&in_scope),
            usable: oid_array(&usable),
        },
    );
    let mut second = batch(client, &sql).await?.into_iter();

    // Relations come back with their namespace oid; the name is looked up here (no join).
    let schema_of =
        |r: &[String]| -> String { names.get(&oid(r, 0)).cloned().unwrap_or_else(|| col(r, 0).to_string()) };
    let grant_rows = |rows: Rows, kind: Option<&str>, by_oid: bool| -> Vec<Grant> {
        let mut out: Vec<Grant> = rows
            .iter()
            .map(|r| Grant {
                schema: if by_oid { schema_of(r) } else { col(r, 0).into() },
                name: col(r, 1).into(),
                kind: kind.map(str::to_string).unwrap_or_else(|| col(r, 2).into()),
                sub: col(r, 3).into(),
                privilege: col(r, 4).into(),
                grantee: oid(r, 5),
                grantor: col(r, 6).into(),
                owner: col(r, 7).into(),
                extension: col(r, 8).into(),
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.extension, &a.schema, &a.name, &a.sub, &a.privilege, a.grantee).cmp(&(
                &b.extension,
                &b.schema,
                &b.name,
                &b.sub,
                &b.privilege,
                b.grantee,
            ))
        });
        out
    };
    let db_grants = grant_rows(statement(&mut second, "database grants")?, Some("d"), false);
    let schema_creates = grant_rows(statement(&mut second, "schema grants")?, Some("n"), false);
    let rel_grants = grant_rows(statement(&mut second, "relation grants")?, None, true);
    let col_grants = grant_rows(statement(&mut second, "column grants")?, None, true);
    let fdw_grants = grant_rows(statement(&mut second, "dblink grants")?, Some("f"), false);
    let mut owned: Vec<Owned> = statement(&mut second, "owned objects")?
        .iter()
        .map(|r| Owned {
            schema: schema_of(r),
            kind: col(r, 1).into(),
            name: col(r, 2).into(),
            args: col(r, 3).into(),
            owner: oid(r, 4),
        })
        .collect();
    owned.sort_by(|a, b| (&a.schema, &a.kind, &a.name, &a.args).cmp(&(&b.schema, &b.kind, &b.name, &b.args)));
    let mut unreadable = Vec::new();
    let mut unreadable_counts = BTreeMap::new();
    for r in statement(&mut second, "unreadable relations")? {
        unreadable_counts.insert(schema_of(&r), col(&r, 3).parse().unwrap_or(0));
        if flag(&r, 4) {
            unreadable.push((schema_of(&r), col(&r, 1).to_string(), col(&r, 2).to_string()));
        }
    }
    let mut creators: Vec<Creator> = statement(&mut second, "creators")?
        .iter()
        .map(|r| Creator {
            schema: schema_of(r),
            role: col(r, 1).into(),
            role_oid: oid(r, 2),
            covered: flag(r, 3),
            schema_owner: flag(r, 4),
        })
        .collect();
    creators.sort_by(|a, b| (&a.schema, &a.role).cmp(&(&b.schema, &b.role)));
    let relations_in_scope =
        statement(&mut second, "relation count")?.first().map(|r| col(r, 0).parse().unwrap_or(0)).unwrap_or(0);

    Ok(Facts {
        me,
        roles,
        schemas,
        db_grants,
        schema_creates,
        rel_grants,
        col_grants,
        fdw_grants,
        owned,
        unreadable,
        unreadable_counts,
        creators,
        relations_in_scope,
    })
}

/// The oid arrays round trip 2 filters on, as SQL literals.
struct Arrays {
    /// Every role the user reaches, itself and PUBLIC (0) included.
    reached: String,
    /// Those whose privileges it holds without SET ROLE.
    inherited: String,
    /// Schemas in scope.
    in_scope: String,
    /// Schemas in scope the user has USAGE on.
    usable: String,
}

/// The user, every role it reaches (with the path and whether privileges flow without SET ROLE),
/// and who granted its direct memberships.
fn first_batch(v: u32, scope: &Scope) -> String {
    let in_scope = scope.predicate();
    let named_or_not_system = match scope {
        Scope::All => NOT_SYSTEM.to_string(),
        Scope::Named(_) => format!("({NOT_SYSTEM} OR {in_scope})"),
    };
    // Before 16 a membership passes privileges on when the *member* has INHERIT, and any member
    // may SET ROLE. From 16 each grant says so itself (inherit_option, set_option).
    let (edge_inherits, edge_usable) =
        if v >= V16 { ("m.inherit_option", "(m.inherit_option OR m.set_option)") } else { ("mr.rolinherit", "true") };
    let db_owner_role =
        if v >= V14 { "(SELECT oid FROM pg_catalog.pg_roles WHERE rolname = 'pg_database_owner')::text" } else { "''" };
    format!(
        "SELECT current_user, current_database(), d.datdba, pg_catalog.pg_get_userbyid(d.datdba), r.oid, \
                r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolreplication, r.rolbypassrls, \
                CASE WHEN r.rolvaliduntil IS NULL OR r.rolvaliduntil = 'infinity' THEN '' \
                     WHEN r.rolvaliduntil < now() THEN 'expired' \
                     WHEN r.rolvaliduntil < now() + interval '14 days' THEN 'soon' ELSE '' END, \
                coalesce(r.rolvaliduntil::text, ''), \
                current_setting('log_statement'), current_setting('log_duration'), {db_owner_role} \
         FROM pg_catalog.pg_roles r, pg_catalog.pg_database d \
         WHERE r.rolname = current_user AND d.datname = current_database();\n\
         WITH RECURSIVE walk(roleid, path, inherited, depth) AS ( \
             SELECT r.oid, ARRAY[]::text[] COLLATE \"C\", true, 0 FROM pg_catalog.pg_roles r WHERE r.rolname = current_user \
           UNION ALL \
             SELECT m.roleid, w.path || (g.rolname::text COLLATE \"C\"), w.inherited AND {edge_inherits}, w.depth + 1 \
             FROM walk w \
             JOIN pg_catalog.pg_auth_members m ON m.member = w.roleid \
             JOIN pg_catalog.pg_roles g ON g.oid = m.roleid \
             JOIN pg_catalog.pg_roles mr ON mr.oid = m.member \
             WHERE w.depth < {MAX_DEPTH} AND {edge_usable} \
         ) \
         SELECT DISTINCT ON (w.roleid) w.roleid, r.rolname, array_to_json(w.path)::text, w.inherited, \
                r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolreplication, r.rolbypassrls \
         FROM walk w JOIN pg_catalog.pg_roles r ON r.oid = w.roleid \
         ORDER BY w.roleid, w.inherited DESC, w.depth;\n\
         SELECT g.rolname, pg_catalog.pg_get_userbyid(m.grantor) \
         FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles g ON g.oid = m.roleid \
         WHERE m.member = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) \
         ORDER BY 1, 2;\n\
         SELECT n.oid, n.nspname, n.nspowner, pg_catalog.pg_get_userbyid(n.nspowner), {in_scope}, \
                pg_catalog.has_schema_privilege(n.oid, 'USAGE') \
         FROM pg_catalog.pg_namespace n WHERE {named_or_not_system} ORDER BY 2;"
    )
}

/// The write privileges, ownerships and read gaps. Relations are filtered by namespace oid (no
/// join), and `has_table_privilege` runs only on the relations in usable schemas.
fn second_batch(v: u32, a: &Arrays) -> String {
    let Arrays { reached, inherited, in_scope, usable } = a;
    let routine_kind = if v >= 110_000 {
        "p.prokind::text"
    } else {
        "CASE WHEN p.proisagg THEN 'a' WHEN p.proiswindow THEN 'w' ELSE 'f' END"
    };
    // MAINTAIN (PostgreSQL 17) locks, vacuums and refreshes; it is judged as a warning.
    let table_writes = "'INSERT','UPDATE','DELETE','TRUNCATE','REFERENCES','TRIGGER','MAINTAIN'";
    let grantor = "pg_catalog.pg_get_userbyid(a.grantor)";
    let listed = UNREADABLE_LISTED;
    format!(
        "SELECT '', '', '', '', a.privilege_type, a.grantee, {grantor}, pg_catalog.pg_get_userbyid(d.datdba), '' \
         FROM pg_catalog.pg_database d \
         CROSS JOIN LATERAL pg_catalog.aclexplode(coalesce(d.datacl, pg_catalog.acldefault('d', d.datdba))) a \
         WHERE d.datname = current_database() AND a.grantee = ANY({reached}) AND a.grantee <> d.datdba;\n\
         SELECT n.nspname, '', '', '', a.privilege_type, a.grantee, {grantor}, pg_catalog.pg_get_userbyid(n.nspowner), '' \
         FROM pg_catalog.pg_namespace n CROSS JOIN LATERAL pg_catalog.aclexplode(n.nspacl) a \
         WHERE n.nspacl IS NOT NULL AND {NOT_SYSTEM} AND a.privilege_type = 'CREATE' \
           AND a.grantee = ANY({reached}) AND a.grantee <> n.nspowner;\n\
         SELECT c.relnamespace, c.relname, c.relkind, '', a.privilege_type, a.grantee, {grantor}, pg_catalog.pg_get_userbyid(c.relowner), '' \
         FROM pg_catalog.pg_class c CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a \
         WHERE c.relacl IS NOT NULL AND c.relnamespace = ANY({in_scope}) AND c.relkind IN ('r','p','v','m','f','S') \
           AND a.grantee = ANY({reached}) AND a.grantee <> c.relowner \
           AND CASE WHEN c.relkind = 'S' THEN a.privilege_type IN ('USAGE','UPDATE') \
                    ELSE a.privilege_type IN ({table_writes}) END;\n\
         SELECT c.relnamespace, c.relname, c.relkind, att.attname, a.privilege_type, a.grantee, {grantor}, pg_catalog.pg_get_userbyid(c.relowner), '' \
         FROM pg_catalog.pg_attribute att \
         JOIN pg_catalog.pg_class c ON c.oid = att.attrelid \
         CROSS JOIN LATERAL pg_catalog.aclexplode(att.attacl) a \
         WHERE att.attacl IS NOT NULL AND NOT att.attisdropped AND c.relnamespace = ANY({in_scope}) \
           AND c.relkind IN ('r','p','v','m','f') AND a.grantee = ANY({reached}) AND a.grantee <> c.relowner \
           AND a.privilege_type IN ('INSERT','UPDATE','REFERENCES');\n\
         SELECT n.nspname, p.proname, '', pg_catalog.pg_get_function_identity_arguments(p.oid), a.privilege_type, \
                a.grantee, {grantor}, pg_catalog.pg_get_userbyid(p.proowner), e.extname \
         FROM pg_catalog.pg_extension e \
         JOIN pg_catalog.pg_depend dep ON dep.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass \
              AND dep.refobjid = e.oid AND dep.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND dep.deptype = 'e' \
         JOIN pg_catalog.pg_proc p ON p.oid = dep.objid \
         JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
         CROSS JOIN LATERAL pg_catalog.aclexplode(coalesce(p.proacl, pg_catalog.acldefault('f', p.proowner))) a \
         WHERE e.extname IN ('dblink', 'postgres_fdw') AND a.privilege_type = 'EXECUTE' AND a.grantee = ANY({reached});\n\
         SELECT n.oid, 'n', '', '', n.nspowner FROM pg_catalog.pg_namespace n \
         WHERE n.oid = ANY({in_scope}) AND n.nspowner = ANY({reached}) \
         UNION ALL \
         SELECT c.relnamespace, c.relkind::text, c.relname, '', c.relowner FROM pg_catalog.pg_class c \
         WHERE c.relnamespace = ANY({in_scope}) AND c.relkind IN ('r','p','v','m','f','S') AND c.relowner = ANY({reached}) \
           AND NOT (c.relkind = 'S' AND EXISTS ( \
                SELECT 1 FROM pg_catalog.pg_depend dep \
                WHERE dep.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND dep.objid = c.oid \
                  AND dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND dep.deptype IN ('a', 'i'))) \
         UNION ALL \
         SELECT p.pronamespace, 'fn:' || {routine_kind}, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid), p.proowner \
         FROM pg_catalog.pg_proc p WHERE p.pronamespace = ANY({in_scope}) AND p.proowner = ANY({reached});\n\
         SELECT relnamespace, relname, relkind, count(*) OVER (PARTITION BY relnamespace), \
                row_number() OVER (ORDER BY nspname, relname) <= {listed} \
         FROM (SELECT c.oid, c.relnamespace, c.relname, c.relkind, n.nspname \
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
               WHERE c.relnamespace = ANY({usable}) AND c.relkind IN ('r','p','v','m','f') AND NOT c.relispartition \
               OFFSET 0) rel \
         WHERE NOT pg_catalog.has_table_privilege(rel.oid, 'SELECT') \
         ORDER BY nspname, relname;\n\
         WITH makers(nsp, role, is_owner) AS ( \
             SELECT DISTINCT c.relnamespace, c.relowner, false FROM pg_catalog.pg_class c \
             WHERE c.relnamespace = ANY({in_scope}) AND c.relkind IN ('r','p','v','m','f') \
           UNION ALL \
             SELECT n.oid, CASE WHEN pg_catalog.pg_get_userbyid(n.nspowner) = 'pg_database_owner' \
                                THEN (SELECT datdba FROM pg_catalog.pg_database WHERE datname = current_database()) \
                                ELSE n.nspowner END, true \
             FROM pg_catalog.pg_namespace n WHERE n.oid = ANY({in_scope}) \
         ), creators AS (SELECT nsp, role, bool_or(is_owner) AS is_owner FROM makers GROUP BY 1, 2) \
         SELECT k.nsp, r.rolname, r.oid, EXISTS ( \
                  SELECT 1 FROM pg_catalog.pg_default_acl da CROSS JOIN LATERAL pg_catalog.aclexplode(da.defaclacl) a \
                  WHERE da.defaclrole = r.oid AND da.defaclobjtype = 'r' AND da.defaclnamespace IN (k.nsp, 0) \
                    AND a.privilege_type = 'SELECT' AND a.grantee = ANY({inherited})), k.is_owner \
         FROM creators k JOIN pg_catalog.pg_roles r ON r.oid = k.role;\n\
         SELECT count(*) FROM pg_catalog.pg_class c \
         WHERE c.relnamespace = ANY({in_scope}) AND c.relkind IN ('r','p','v','m','f','S');"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_predicates_quote_names() {
        assert_eq!(Scope::of(&[]), Scope::All);
        let named = Scope::of(&["Sales Data".into(), "it's".into()]);
        assert_eq!(named.predicate(), "n.nspname::text = ANY(ARRAY['Sales Data', 'it''s']::text[])");
        assert_eq!(oid_array(&[0, 10, 16384]), "'{0,10,16384}'::oid[]");
    }

    #[test]
    fn membership_inheritance_follows_the_server_version() {
        let all = &Scope::All;
        assert!(first_batch(150_000, all).contains("mr.rolinherit"));
        assert!(!first_batch(150_000, all).contains("inherit_option"));
        assert!(first_batch(160_000, all).contains("m.inherit_option OR m.set_option"));
        assert!(!first_batch(130_000, all).contains("pg_database_owner"));
        let arrays = Arrays {
            reached: "'{0}'::oid[]".into(),
            inherited: "'{0}'::oid[]".into(),
            in_scope: "'{}'::oid[]".into(),
            usable: "'{}'::oid[]".into(),
        };
        assert!(second_batch(100_000, &arrays).contains("proisagg"));
        assert!(second_batch(110_000, &arrays).contains("prokind"));
    }
}
