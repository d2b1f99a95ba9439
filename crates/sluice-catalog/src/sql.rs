//! The discovery batch: one simple-protocol message of a fixed number of set-based `pg_catalog`
//! queries, whatever the size of the catalog, sent inside a confirmed read-only `REPEATABLE READ`
//! transaction (`sluice_connect::ReadOnlyTransaction`).
//!
//! Choices that keep it fast and safe (measured on 10,000 tables; see `bench/catalog.sh`):
//! - Privileges are computed once per relation (in [`Statement::Relations`]); the column query
//!   only asks `has_column_privilege` for columns that carry their own ACL.
//! - Defaults are deparsed with `pg_get_expr(adbin, 0)`: with a relation OID, PostgreSQL opens
//!   (and briefly locks) the relation to name its columns, which costs ~6 µs a call and waits
//!   behind `ACCESS EXCLUSIVE` locks (up to `lock_timeout`, then SQLSTATE 55P03). Only generated
//!   columns (which reference columns), partial-index predicates and expression indexes pay that.
//! - Constraint and index keys come back as attnum arrays and are named client-side from the
//!   columns already fetched; only cross-schema foreign keys name their referenced columns in SQL
//!   (the referenced table may be outside the discovered schemas).
//! - `size_bytes` reads `relpages`, not `pg_table_size()`, which takes a lock and stats files per
//!   relation (0.46 s for 10,000 tables here).
//! - No `ORDER BY` (the client sorts, by code point) and no `information_schema`.
//! - JIT is switched off for the transaction: its compile time dwarfs these queries. Parallel
//!   workers too: a background refresh should not take them from the customer's workload.
//! - Columns travel with their type's OID and typmod; [`type_names`] then asks `format_type` once
//!   per distinct pair in the same transaction (100,000 tables: 1.2 million columns, 50 pairs),
//!   which took a sixth of the server's time for the columns statement.
//! - Only built-in result types, text format: no type lookups, no named statements, so it runs
//!   through PgBouncer in transaction mode.
//! - Every name, comment and expression goes through [`txt`]. A `SQL_ASCII` database stores
//!   whatever bytes it was given and the server does not convert them for a UTF8 client: it
//!   validates each outgoing text value as UTF-8 instead, and one Latin-1 byte in one comment
//!   fails the whole batch (SQLSTATE 22021). There, `txt` sends the stored bytes through
//!   `encode(convert_to(…, 'SQL_ASCII'), 'escape')` — ASCII as is, other bytes as `\ooo`, a
//!   backslash doubled — and the client decodes them (see `discover.rs`). The test is an
//!   uncorrelated sub-select, evaluated once per statement; every other encoding sends text
//!   unchanged (the server converts it to UTF8).

use sluice_connect::SessionSettings;

use crate::CatalogError;

/// The statements of the batch, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Statement {
    Settings,
    /// How large the catalog is, and for a large one the snapshot a second session imports.
    Split,
    Meta,
    Schemas,
    Relations,
    Columns,
    Defaults,
    Comments,
    Constraints,
    Indexes,
    Inherits,
    /// The names of the column types met, asked once the batch is in ([`type_names`]).
    TypeNames,
}

impl Statement {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Statement::Settings => "settings",
            Statement::Split => "split",
            Statement::Meta => "meta",
            Statement::Schemas => "schemas",
            Statement::Relations => "relations",
            Statement::Columns => "columns",
            Statement::Defaults => "defaults",
            Statement::Comments => "comments",
            Statement::Constraints => "constraints",
            Statement::Indexes => "indexes",
            Statement::Inherits => "inherits",
            Statement::TypeNames => "type names",
        }
    }

    /// Whether its rows can only be folded once every relation is in (they attach to one).
    pub(crate) fn needs_relations(self) -> bool {
        match self {
            Statement::Settings
            | Statement::Split
            | Statement::Meta
            | Statement::Schemas
            | Statement::Relations
            | Statement::Constraints
            | Statement::TypeNames => false,
            Statement::Columns
            | Statement::Defaults
            | Statement::Comments
            | Statement::Indexes
            | Statement::Inherits => true,
        }
    }
}

/// The batch, in one part or in two that can run on two sessions sharing one snapshot.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) first: Part,
    /// The second part, when the batch was split: its statements do not depend on each other's
    /// order, and it may run after the first on the same session.
    pub(crate) second: Option<Part>,
}

/// SQL of one simple-protocol message, with the statement of each `CommandComplete` in order.
#[derive(Debug)]
pub(crate) struct Part {
    pub(crate) sql: String,
    pub(crate) order: Vec<Statement>,
}

impl Part {
    fn of(stmts: Vec<(Statement, String)>) -> Part {
        let order = stmts.iter().map(|(s, _)| *s).collect();
        let sql = stmts.into_iter().map(|(_, sql)| sql).collect::<Vec<_>>().join(";\n");
        Part { sql, order }
    }
}

/// What the server version allows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Features {
    /// `pg_attribute.attgenerated` (12+).
    generated: bool,
    /// `pg_index.indnkeyatts` and `INCLUDE` (11+).
    include_columns: bool,
    /// `pg_constraint.conparentid` (11+).
    conparentid: bool,
    /// The `jit` setting (11+).
    jit: bool,
    /// `reltuples = -1` means "never analyzed" (14+); before, `relpages = 0 AND reltuples = 0`.
    reltuples_unknown_negative: bool,
}

impl Features {
    pub(crate) fn for_version(version_num: u32) -> Features {
        Features {
            generated: version_num >= 120000,
            include_columns: version_num >= 110000,
            conparentid: version_num >= 110000,
            jit: version_num >= 110000,
            reltuples_unknown_negative: version_num >= 140000,
        }
    }
}

/// True in a `SQL_ASCII` database: evaluated once per statement (an init plan).
const RAW_BYTES: &str = "(SELECT pg_catalog.current_setting('server_encoding') = 'SQL_ASCII')";

/// A text expression as the server can always send it (see the module docs): escaped bytes in a
/// `SQL_ASCII` database, the text itself elsewhere.
pub(crate) fn txt(expr: &str) -> String {
    format!(
        "CASE WHEN {RAW_BYTES} THEN pg_catalog.encode(pg_catalog.convert_to({expr}, 'SQL_ASCII'), 'escape') \
         ELSE {expr} END"
    )
}

/// Relation kinds discovery lists.
const KINDS: &str = "('r', 'p', 'v', 'm', 'f')";

/// The batch for one server version and schema filter.
///
/// With `split_above`, it comes in two parts of about equal work (the columns are divided by
/// relation OID), and the first part begins with [`Statement::Split`]: it reads the estimated
/// size of `pg_class` and, when that is at least `split_above` rows, exports the transaction's
/// snapshot for the second part's session to import.
pub(crate) fn batch(
    features: Features,
    limits: &SessionSettings,
    schemas: &[String],
    split_above: Option<u64>,
) -> Result<Batch, CatalogError> {
    let mut schema_pred = String::from(
        "n.nspname NOT IN ('pg_catalog', 'information_schema') \
         AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_'",
    );
    if !schemas.is_empty() {
        let list = schemas.iter().map(|s| literal(s)).collect::<Result<Vec<_>, _>>()?;
        schema_pred.push_str(&format!(" AND n.nspname = ANY (ARRAY[{}]::name[])", list.join(", ")));
    }
    let usable = format!(
        "SELECT n.oid FROM pg_catalog.pg_namespace n WHERE {schema_pred} \
         AND pg_catalog.has_schema_privilege(n.oid, 'USAGE')"
    );
    let unknown_stats =
        if features.reltuples_unknown_negative { "c.reltuples < 0" } else { "(c.relpages = 0 AND c.reltuples = 0)" };
    let generated = if features.generated { "a.attgenerated" } else { "''::pg_catalog.\"char\"" };
    let conparentid = if features.conparentid { "co.conparentid" } else { "0::oid" };
    let nkeyatts = if features.include_columns { "i.indnkeyatts" } else { "i.indnatts" };

    let mut settings: Vec<(Statement, String)> = Vec::new();
    // The session's limits, for this transaction: behind PgBouncer the session has none of its
    // own (elsewhere this repeats them).
    for (name, value) in [
        ("statement_timeout", limits.statement_timeout),
        ("lock_timeout", limits.lock_timeout),
        ("idle_in_transaction_session_timeout", limits.idle_in_transaction_timeout),
    ] {
        settings.push((Statement::Settings, format!("SET LOCAL {name} = {}", value.as_millis())));
    }
    // A background refresh should not take the customer's parallel workers; on a busy or small
    // server they cost more than they save for these short scans.
    settings.push((Statement::Settings, "SET LOCAL max_parallel_workers_per_gather = 0".into()));
    if features.jit {
        settings.push((Statement::Settings, "SET LOCAL jit = off".into()));
    }
    let mut stmts = settings.clone();
    match split_above {
        None => {}
        // Always split.
        Some(0) => stmts.push((Statement::Split, "SELECT pg_catalog.pg_export_snapshot()".into())),
        // reltuples is -1 (14+) or 0 until the table was first vacuumed or analyzed: then there
        // is no estimate, and no split.
        Some(above) => stmts.push((
            Statement::Split,
            format!(
                "SELECT CASE WHEN c.reltuples >= {above} THEN pg_catalog.pg_export_snapshot() END \
                 FROM pg_catalog.pg_class c WHERE c.oid = 'pg_catalog.pg_class'::pg_catalog.regclass"
            ),
        )),
    }
    // database, user, start time, server encoding (the escaping of every later text value)
    stmts.push((
        Statement::Meta,
        format!(
            "SELECT {}, {}, \
             pg_catalog.to_char(pg_catalog.now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
             pg_catalog.current_setting('server_encoding')",
            txt("pg_catalog.current_database()"),
            txt("current_user")
        ),
    ));
    // oid, name, owner, usable, comment
    stmts.push((
        Statement::Schemas,
        format!(
            "SELECT n.oid, {}, {}, pg_catalog.has_schema_privilege(n.oid, 'USAGE'), {} \
             FROM pg_catalog.pg_namespace n \
             LEFT JOIN pg_catalog.pg_description d ON d.objoid = n.oid \
             AND d.classoid = 'pg_catalog.pg_namespace'::pg_catalog.regclass AND d.objsubid = 0 \
             WHERE {schema_pred}",
            txt("n.nspname"),
            txt("pg_catalog.pg_get_userbyid(n.nspowner)"),
            txt("d.description")
        ),
    ));
    // oid, namespace, name, relkind, owner, access (t: table grant, c: some columns, n: none),
    // row estimate, size, is partition, partition bound, partition key, attribute count
    stmts.push((
        Statement::Relations,
        format!(
            "SELECT c.oid, c.relnamespace, {relname}, c.relkind, {relowner}, \
             CASE WHEN pg_catalog.has_table_privilege(c.oid, 'SELECT') THEN 't' \
             WHEN pg_catalog.has_any_column_privilege(c.oid, 'SELECT') THEN 'c' ELSE 'n' END, \
             CASE WHEN {unknown_stats} OR c.relkind = 'v' THEN NULL ELSE c.reltuples::int8 END, \
             CASE WHEN {unknown_stats} OR c.relkind IN ('v', 'f', 'p') THEN NULL \
             ELSE (c.relpages::int8 + CASE WHEN c.reltoastrelid = 0 THEN 0 ELSE COALESCE((SELECT t.relpages \
             FROM pg_catalog.pg_class t WHERE t.oid = c.reltoastrelid), 0) END) \
             * pg_catalog.current_setting('block_size')::int8 END, \
             c.relispartition, \
             CASE WHEN c.relispartition THEN {bound} END, \
             CASE WHEN c.relkind = 'p' THEN {partkey} END, c.relnatts \
             FROM pg_catalog.pg_class c WHERE c.relkind IN {KINDS} AND c.relnamespace IN ({usable})",
            relname = txt("c.relname"),
            relowner = txt("pg_catalog.pg_get_userbyid(c.relowner)"),
            bound = txt("pg_catalog.pg_get_expr(c.relpartbound, 0)"),
            partkey = txt("pg_catalog.pg_get_partkeydef(c.oid)"),
        ),
    ));
    // relation, attnum, name, type OID, typmod, not null, identity, generated, column grant
    // (null: no column ACL, the table grant decides). The type is named later, once per distinct
    // (OID, typmod), by [`type_names`]: a catalog has a few dozen of them and a million columns.
    let columns = |only: &str| {
        (
            Statement::Columns,
            format!(
                "SELECT a.attrelid, a.attnum, {}, a.atttypid, a.atttypmod, \
                 a.attnotnull, a.attidentity, {generated}, \
                 CASE WHEN a.attacl IS NOT NULL THEN pg_catalog.has_column_privilege(a.attrelid, a.attnum, 'SELECT') END \
                 FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
                 WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN {KINDS} \
                 AND c.relnamespace IN ({usable}){only}",
                txt("a.attname"),
            ),
        )
    };
    // Split, the columns (over half of the server's work) are shared by relation OID: two
    // fifths to the first part, which also reads the relations, and the rest to the second (100,000
    // tables: the two parts then take about as long).
    if split_above.is_some() {
        stmts.push(columns(" AND a.attrelid::pg_catalog.int8 % 5 < 2"));
    } else {
        stmts.push(columns(""));
    }
    // relation, attnum, expression. `pg_get_expr` gets the relation only for expressions that
    // reference columns (generated columns): defaults cannot, and deparse without opening it.
    let defaults = (
        Statement::Defaults,
        format!(
            "SELECT ad.adrelid, ad.adnum, {} \
             FROM pg_catalog.pg_attrdef ad JOIN pg_catalog.pg_class c ON c.oid = ad.adrelid \
             WHERE c.relkind IN {KINDS} AND c.relnamespace IN ({usable})",
            txt("pg_catalog.pg_get_expr(ad.adbin, \
                 CASE WHEN ad.adbin::text LIKE '%{VAR %' THEN ad.adrelid ELSE 0 END)")
        ),
    );
    // relation, attnum (0: the relation itself), comment. Rows for relations outside the
    // discovered set are dropped by the client; with a schema filter they are not sent.
    let comment_filter = if schemas.is_empty() {
        String::new()
    } else {
        format!(
            " AND d.objoid IN (SELECT c.oid FROM pg_catalog.pg_class c \
             WHERE c.relkind IN {KINDS} AND c.relnamespace IN ({usable}))"
        )
    };
    let comments = (
        Statement::Comments,
        format!(
            "SELECT d.objoid, d.objsubid, {} FROM pg_catalog.pg_description d \
             WHERE d.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass{comment_filter}",
            txt("d.description")
        ),
    );
    // oid, relation, name, type, key attnums, referenced relation, its attnums, on update,
    // on delete, parent constraint, and for a foreign key to another schema (whose table may be
    // outside the discovered set) [schema, table, column…]; same-schema references are named by
    // the client from the columns it already has.
    let constraints = (
        Statement::Constraints,
        format!(
            "SELECT co.oid, co.conrelid, {conname}, co.contype, co.conkey, co.confrelid, co.confkey, \
             co.confupdtype, co.confdeltype, {conparentid}, \
             CASE WHEN co.contype = 'f' THEN \
             (SELECT ARRAY[(SELECT {nspname} FROM pg_catalog.pg_namespace rn \
             WHERE rn.oid = rc.relnamespace), {relname}] || ARRAY(SELECT {attname} \
             FROM pg_catalog.unnest(co.confkey) WITH ORDINALITY k(n, i) \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = co.confrelid AND a.attnum = k.n ORDER BY k.i) \
             FROM pg_catalog.pg_class rc \
             WHERE rc.oid = co.confrelid AND rc.relnamespace <> co.connamespace) END \
             FROM pg_catalog.pg_constraint co \
             WHERE co.contype IN ('p', 'u', 'f') AND co.conrelid <> 0 AND co.connamespace IN ({usable})",
            conname = txt("co.conname"),
            nspname = txt("rn.nspname::text"),
            relname = txt("rc.relname::text"),
            attname = txt("a.attname::text"),
        ),
    );
    // relation, name, unique, primary, key attnums (int2vector), key count, method,
    // definition (expression indexes only), predicate
    let indexes = (
        Statement::Indexes,
        format!(
            "SELECT i.indrelid, {relname}, i.indisunique, i.indisprimary, i.indkey, {nkeyatts}, {amname}, \
             CASE WHEN i.indexprs IS NOT NULL THEN {indexdef} END, {pred} \
             FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid \
             LEFT JOIN pg_catalog.pg_am am ON am.oid = ic.relam \
             WHERE ic.relnamespace IN ({usable})",
            relname = txt("ic.relname"),
            amname = txt("am.amname"),
            indexdef = txt("pg_catalog.pg_get_indexdef(i.indexrelid)"),
            pred = txt("pg_catalog.pg_get_expr(i.indpred, i.indrelid)"),
        ),
    );
    // child, parent, position, parent schema, parent name
    let inherits = (
        Statement::Inherits,
        format!(
            "SELECT i.inhrelid, i.inhparent, i.inhseqno, {}, {} \
             FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class pc ON pc.oid = i.inhparent \
             JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace \
             WHERE pc.relkind IN ('r', 'p', 'f')",
            txt("pn.nspname"),
            txt("pc.relname")
        ),
    );

    // What follows the relations and columns needs no order among its statements. In the second
    // part the constraints go first, as they need no relation to fold into.
    if split_above.is_none() {
        stmts.extend([defaults, comments, constraints, indexes, inherits]);
        return Ok(Batch { first: Part::of(stmts), second: None });
    }
    stmts.extend([defaults, comments]);
    let mut second = settings;
    second.extend([constraints, columns(" AND a.attrelid::pg_catalog.int8 % 5 >= 2"), indexes, inherits]);
    Ok(Batch { first: Part::of(stmts), second: Some(Part::of(second)) })
}

/// The statement that names column types: type OID, typmod and `format_type()` of each
/// (OID, typmod) pair, in the discovery's transaction. Its rows may come in any order.
///
/// `format_type` qualifies a type with its schema unless the session's `search_path` finds it,
/// so the server names them, as it would column by column.
pub(crate) fn type_names(types: &[(u32, i32)]) -> String {
    let oids: Vec<String> = types.iter().map(|(oid, _)| oid.to_string()).collect();
    let typmods: Vec<String> = types.iter().map(|(_, typmod)| typmod.to_string()).collect();
    format!(
        "SELECT u.t, u.m, {} FROM ROWS FROM (pg_catalog.unnest('{{{}}}'::pg_catalog.oid[]), \
         pg_catalog.unnest('{{{}}}'::pg_catalog.int4[])) AS u(t, m)",
        txt("pg_catalog.format_type(u.t, u.m)"),
        oids.join(","),
        typmods.join(","),
    )
}

/// A schema name as a string literal (`sluice_core::quote::literal`), refused when it is empty or
/// holds a NUL, which no schema name can.
fn literal(s: &str) -> Result<String, CatalogError> {
    if s.is_empty() {
        return Err(CatalogError::InvalidSchemaName { name: s.to_string(), reason: "it is empty" });
    }
    if s.contains('\0') {
        return Err(CatalogError::InvalidSchemaName {
            name: s.replace('\0', "\\0"),
            reason: "it contains a NUL character",
        });
    }
    Ok(sluice_core::quote::literal(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        let cases = [
            ("public", "'public'"),
            ("it's", "'it''s'"),
            (r"back\slash", r"E'back\\slash'"),
            ("naïve ü", "'naïve ü'"),
            ("'; DROP TABLE x; --", "'''; DROP TABLE x; --'"),
        ];
        for (input, want) in cases {
            assert_eq!(literal(input).expect(input), want, "{input}");
        }
        assert!(matches!(literal(""), Err(CatalogError::InvalidSchemaName { .. })));
        assert!(matches!(literal("a\0b"), Err(CatalogError::InvalidSchemaName { .. })));
    }

    fn one_part(version: u32, schemas: &[String]) -> (String, Vec<Statement>) {
        let b = batch(Features::for_version(version), &SessionSettings::default(), schemas, None).expect("batch");
        assert!(b.second.is_none(), "not split");
        (b.first.sql, b.first.order)
    }

    #[test]
    fn batch_is_of_fixed_size_and_gated_by_version() {
        let (sql10, order10) = one_part(100_023, &[]);
        let (sql18, order18) = one_part(180_001, &[]);
        assert_eq!(order10.first(), Some(&Statement::Settings));
        assert_eq!(order10.last(), Some(&Statement::Inherits));
        assert!(!order10.contains(&Statement::Split) && !sql10.contains("pg_export_snapshot"));
        assert!(!sql10.contains("BEGIN") && !sql10.contains("COMMIT"), "the caller's transaction");
        assert!(!sql10.contains("jit"), "no jit setting on 10");
        assert!(sql18.contains("SET LOCAL jit = off"));
        assert!(sql10.contains("SET LOCAL statement_timeout = 300000;"), "the session's limits, locally");
        assert!(sql10.contains("SET LOCAL lock_timeout = 5000;"));
        assert!(!sql10.contains("attgenerated") && sql18.contains("attgenerated"));
        assert!(!sql10.contains("indnkeyatts") && sql18.contains("indnkeyatts"));
        assert!(!sql10.contains("reltuples < 0") && sql18.contains("reltuples < 0"));
        assert_eq!(sql18.matches(";\n").count() + 1, order18.len());
        for forbidden in ["information_schema.", "ORDER BY c.", "pg_table_size"] {
            assert!(!sql18.contains(forbidden), "{forbidden}");
        }
        let (filtered, _) = one_part(150_000, &["a b".into(), "it's".into()]);
        assert!(filtered.contains("ANY (ARRAY['a b', 'it''s']::name[])"));
    }

    #[test]
    fn type_names_are_asked_for_each_pair_and_never_per_column() {
        let sql = type_names(&[(23, -1), (1043, 36), (1700, 655366)]);
        assert!(
            sql.contains(
                "unnest('{23,1043,1700}'::pg_catalog.oid[]), pg_catalog.unnest('{-1,36,655366}'::pg_catalog.int4[])"
            ),
            "{sql}"
        );
        assert!(sql.contains("pg_catalog.format_type(u.t, u.m)"), "{sql}");
        assert!(sql.contains(RAW_BYTES), "escaped in a SQL_ASCII database like any name");
        let (batch_sql, _) = one_part(150_000, &[]);
        assert!(!batch_sql.contains("format_type"), "the batch sends type OIDs and typmods");
        assert!(batch_sql.contains("a.atttypid, a.atttypmod"));
    }

    #[test]
    fn a_split_batch_reads_everything_once_over_its_two_parts() {
        let (whole, whole_order) = one_part(150_000, &[]);
        let b = batch(Features::for_version(150_000), &SessionSettings::default(), &[], Some(20_000)).expect("split");
        let second = b.second.expect("a second part");
        // The first part decides, then reads what the second part's rows attach to.
        let first_kinds: Vec<Statement> = b.first.order.iter().copied().filter(|s| *s != Statement::Settings).collect();
        assert_eq!(
            first_kinds,
            [
                Statement::Split,
                Statement::Meta,
                Statement::Schemas,
                Statement::Relations,
                Statement::Columns,
                Statement::Defaults,
                Statement::Comments
            ]
        );
        assert!(b.first.sql.contains("c.reltuples >= 20000 THEN pg_catalog.pg_export_snapshot()"));
        // Each part carries the transaction's limits, as the second runs on a session of its own.
        for part in [&b.first, &second] {
            assert!(part.sql.contains("SET LOCAL statement_timeout = 300000"));
            assert!(part.sql.contains("SET LOCAL jit = off"));
            assert_eq!(part.sql.matches(";\n").count() + 1, part.order.len());
        }
        assert_eq!(second.order.iter().find(|s| **s != Statement::Settings), Some(&Statement::Constraints));
        assert!(!second.order.contains(&Statement::Relations) && !second.order.contains(&Statement::Split));
        // Every statement of the whole batch once, the columns in two complementary halves.
        let mut kinds: Vec<Statement> = b.first.order.iter().chain(&second.order).copied().collect();
        kinds.retain(|s| !matches!(s, Statement::Settings | Statement::Split));
        let mut want: Vec<Statement> = whole_order.into_iter().filter(|s| *s != Statement::Settings).collect();
        want.push(Statement::Columns);
        kinds.sort_by_key(|s| s.name());
        want.sort_by_key(|s| s.name());
        assert_eq!(kinds, want);
        assert!(b.first.sql.contains("a.attrelid::pg_catalog.int8 % 5 < 2"));
        assert!(second.sql.contains("a.attrelid::pg_catalog.int8 % 5 >= 2"));
        assert!(!whole.contains("% 5"));
    }
}
