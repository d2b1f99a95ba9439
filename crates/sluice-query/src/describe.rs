//! What an admitted statement returns, learned without running it and without rewriting it.
//!
//! The statement text goes to the server exactly as admitted, in a Parse and a Describe of the
//! extended protocol (`Client::prepare`): the RowDescription gives each column's name (as the
//! server made it: duplicates and `?column?` included), its type OID and type modifier, and for
//! a plain table column its table and attribute number. Nothing is executed and no name of
//! Sluice's can meet a name of the user's. The statement is closed again at once.
//!
//! The driver resolves a type OID it does not know (an enum, a domain's array, an extension's
//! type) with its own lookup queries, once per client and OID. That is safe here: the Describe's
//! answer is complete before the lookup is sent (nothing waits behind unread rows, so no
//! deadlock), and behind PgBouncer the lookups run inside the request's read-only transaction,
//! which deallocates whatever was prepared in it and re-prepares the driver's cached lookups in
//! the next one (see `sluice_connect`'s `transaction.rs`).
//!
//! Two things the RowDescription does not say are read from the catalog with one
//! simple-protocol query of Sluice's own ([`type_names_sql`]), sent together with the statement's
//! execution so it costs no round trip of its own: each type's SQL name (`format_type`), and the
//! domain of a table column (the wire carries a domain's base type). Built-in types' names are
//! read once per session (`sluice_connect::TypeNames`); a statement whose columns are all
//! expressions of built-in types sends no catalog query at all.
//!
//! Columns Sluice cannot render exactly on the client must come from the server as text. The
//! driver asks for every result column in binary (its Bind has one result-format code, binary,
//! and no public API sends another), so those columns are rendered by [`wrap`]: an outer SELECT
//! that names the statement's columns only by position.
//!
//! In a `SQL_ASCII` database the server checks every name and text value it sends a UTF8
//! client and refuses bytes that are not UTF-8 (SQLSTATE 22021), also in a RowDescription. There
//! the names are read first as bytea ([`names_sql`]: the statement as a never-executed derived
//! table, its whole-row value's keys), and the statement is described with its columns renamed
//! by position ([`aliased_sql`]); text-carrying columns are fetched as the stored bytes by
//! [`wrap`] ([`Codec::RawText`]). Both steps happen only in such a database.

use sluice_connect::tokio_postgres;
use sluice_connect::TypeNames;

use crate::types::{Codec, Column, Flavor, Scalar, SessionFormat};
use crate::QueryError;

/// One column as the RowDescription gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WireColumn {
    pub name: String,
    /// The OID on the wire: a domain's base type, else the type itself.
    pub oid: u32,
    pub typmod: i32,
    /// The table and attribute number when the column is a plain table column.
    pub origin: Option<(u32, i16)>,
}

impl WireColumn {
    pub fn from_driver(c: &tokio_postgres::Column) -> WireColumn {
        WireColumn {
            name: c.name().to_string(),
            oid: c.type_().oid(),
            typmod: c.type_modifier(),
            origin: c.table_oid().zip(c.column_id()),
        }
    }
}

/// Describes `sql` with Parse + Describe (a named statement, closed again when this returns).
pub(crate) async fn describe(
    client: &tokio_postgres::Client,
    sql: &str,
) -> Result<Vec<WireColumn>, tokio_postgres::Error> {
    columns_of(client.prepare(sql).await)
}

/// The columns of a statement the server described (prepared).
pub(crate) fn columns_of(
    described: Result<tokio_postgres::Statement, tokio_postgres::Error>,
) -> Result<Vec<WireColumn>, tokio_postgres::Error> {
    let statement = described?;
    let columns = statement.columns().iter().map(WireColumn::from_driver).collect();
    // Dropping the last handle sends Close for the statement, ahead of anything sent after.
    drop(statement);
    Ok(columns)
}

/// The error PostgreSQL gives a `$n` outside a prepared statement — psql sends text with the
/// simple protocol, where a parameter is an error (`there is no parameter $n`), while a Parse
/// would take it as a parameter to infer. `None` when the statement has no parameter.
/// `offset` is where the statement starts in the request, in characters.
pub(crate) fn parameter_error(sql: &str, offset: usize) -> Option<QueryError> {
    let scan = pg_query::scan(sql).ok()?;
    let token = scan.tokens.iter().find(|t| t.token == pg_query::protobuf::Token::Param as i32)?;
    let start = usize::try_from(token.start).ok()?;
    let end = usize::try_from(token.end).ok()?;
    let text = sql.get(start..end)?;
    let position = sql.get(..start).and_then(|p| u32::try_from(p.chars().count() + offset + 1).ok());
    Some(QueryError::Database {
        code: "42P02".into(),
        message: format!("there is no parameter {text}"),
        detail: None,
        hint: None,
        position,
    })
}

/// The catalog query that names each column's type, for what `known` (the session's memory of
/// built-in types' names) does not already say; `None` when it says everything.
///
/// The type is the table column's domain when the column comes straight from a table whose
/// column is a domain (the wire carries the domain's base type), else the wire type. Rows are
/// tagged: `a` (table, attribute number, declared type, its name) for each plain table column,
/// read with one index lookup each; `t` ('', '', type, its name) for each wire type whose name is
/// not known. The query reads two catalogs without joining them, so it costs the server little
/// to plan: it runs on every statement.
pub(crate) fn type_names_sql(columns: &[WireColumn], known: &TypeNames) -> Option<String> {
    let mut relations: Vec<(u32, Vec<i16>)> = Vec::new();
    for (rel, att) in columns.iter().filter_map(|c| c.origin) {
        match relations.iter_mut().find(|(r, _)| *r == rel) {
            Some((_, atts)) if atts.contains(&att) => {}
            Some((_, atts)) => atts.push(att),
            None => relations.push((rel, vec![att])),
        }
    }
    let mut unknown: Vec<u32> = Vec::new();
    for c in columns {
        if !unknown.contains(&c.oid) && !known.knows(c.oid) {
            unknown.push(c.oid);
        }
    }
    let mut parts = Vec::new();
    if !relations.is_empty() {
        let filter: Vec<String> = relations
            .iter()
            .map(|(rel, atts)| {
                let atts: Vec<String> = atts.iter().map(i16::to_string).collect();
                format!(
                    "(a.attrelid OPERATOR(pg_catalog.=) {rel} \
                     AND a.attnum OPERATOR(pg_catalog.=) ANY ('{{{}}}'::pg_catalog.int2[]))",
                    atts.join(",")
                )
            })
            .collect();
        parts.push(format!(
            "SELECT 'a', a.attrelid::pg_catalog.text, a.attnum::pg_catalog.text, a.atttypid::pg_catalog.text, \
             pg_catalog.format_type(a.atttypid, NULL) FROM pg_catalog.pg_attribute a WHERE {}",
            filter.join(" OR ")
        ));
    }
    if !unknown.is_empty() {
        let oids: Vec<String> = unknown.iter().map(u32::to_string).collect();
        parts.push(format!(
            "SELECT 't', '', '', t.o::pg_catalog.text, pg_catalog.format_type(t.o, NULL) \
             FROM pg_catalog.unnest('{{{}}}'::pg_catalog.oid[]) AS t(o)",
            oids.join(",")
        ));
    }
    (!parts.is_empty()).then(|| parts.join(" UNION ALL "))
}

/// Reads [`type_names_sql`]'s rows (none when it sent no query) into (type OID, type name) per
/// column, in column order, and teaches `known` the built-in names it saw.
///
/// A table column whose declared type differs from the wire's is named by its domain. One whose
/// declared type is a built-in type other than the wire's (possible only if the table was
/// altered between the Describe and this read) is named by the wire type, as is an expression.
pub(crate) fn resolve_type_names(
    columns: &[WireColumn],
    rows: &[Vec<String>],
    known: &TypeNames,
) -> Result<Vec<(u32, String)>, String> {
    let mut declared: Vec<((u32, i16), (u32, String))> = Vec::new();
    let mut named: Vec<(u32, String)> = Vec::new();
    for r in rows {
        let [kind, rel, att, oid, name] = r.as_slice() else {
            return Err(format!("a type row had {} fields, not 5", r.len()));
        };
        let oid: u32 = oid.parse().map_err(|_| format!("a type OID was {oid:?}"))?;
        match kind.as_str() {
            "a" => {
                let rel = rel.parse().map_err(|_| format!("a table OID was {rel:?}"))?;
                let att = att.parse().map_err(|_| format!("an attribute number was {att:?}"))?;
                declared.push(((rel, att), (oid, name.clone())));
            }
            "t" => {
                known.learn(oid, name);
                named.push((oid, name.clone()));
            }
            other => return Err(format!("an unexpected row kind {other:?}")),
        }
    }
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let table = c.origin.and_then(|o| declared.iter().find(|(k, _)| *k == o)).map(|(_, v)| v);
            match table {
                Some((oid, name)) if *oid == c.oid => {
                    known.learn(*oid, name);
                    return Ok((*oid, name.clone()));
                }
                Some((oid, name)) if !TypeNames::keeps(*oid) => return Ok((*oid, name.clone())),
                _ => {}
            }
            named
                .iter()
                .find(|(oid, _)| *oid == c.oid)
                .map(|(_, name)| name.clone())
                .or_else(|| known.get(c.oid))
                .map(|name| (c.oid, name))
                .ok_or_else(|| format!("no name for the type of column {}", i + 1))
        })
        .collect()
}

/// How each column travels and is rendered. `utility` is for EXPLAIN and SHOW, which cannot be
/// wrapped: their columns are text, json or xml, and xml's binary form is its text (in a
/// `SQL_ASCII` database too: their text must then be UTF-8, or the server refuses to send it).
pub(crate) fn codecs(wire: &[WireColumn], fmt: &SessionFormat, flavor: Flavor, utility: bool) -> Vec<Codec> {
    let as_is;
    let fmt = if utility && fmt.raw_text {
        as_is = SessionFormat { raw_text: false, ..fmt.clone() };
        &as_is
    } else {
        fmt
    };
    wire.iter()
        .map(|w| match Codec::for_oid(w.oid, fmt, flavor) {
            Codec::ServerText if utility => Codec::Scalar(Scalar::Text),
            codec => codec,
        })
        .collect()
}

/// A `SQL_ASCII` database's query that names the statement's columns as their stored bytes, one
/// bytea row per column in order (duplicates kept: `json`, unlike `jsonb`, keeps repeated keys),
/// and how many characters precede the statement in it. The statement is a derived table joined
/// `ON false` to one row, so it is planned but yields nothing; the row its columns make there
/// (`s.*`, which no column the statement names `s` can shadow), all NULL, still has every
/// column's name.
pub(crate) fn names_sql(sql: &str) -> (String, usize) {
    let prefix = "SELECT pg_catalog.convert_to(k.k, 'SQL_ASCII') FROM pg_catalog.json_object_keys((\
                  SELECT pg_catalog.row_to_json(s.*) FROM (SELECT q.* FROM (VALUES (1)) AS d(x) LEFT JOIN (\n";
    let text = format!("{prefix}{sql}\n) AS q ON false) AS s)) WITH ORDINALITY AS k(k, i) ORDER BY k.i");
    (text, prefix.chars().count())
}

/// The statement with its `n` columns renamed `c1` … `cN` by position, for a Describe whose
/// RowDescription holds only names that are ASCII; and the characters before the statement.
pub(crate) fn aliased_sql(sql: &str, n: usize) -> (String, usize) {
    let prefix = "SELECT * FROM (\n";
    let list: Vec<String> = (1..=n).map(|i| format!("c{i}")).collect();
    let text =
        if n == 0 { format!("{prefix}{sql}\n) AS q") } else { format!("{prefix}{sql}\n) AS q({})", list.join(", ")) };
    (text, prefix.chars().count())
}

/// Gives described columns the names [`names_sql`] read: UTF-8 names as they are, others decoded
/// with U+FFFD and their bytes kept.
pub(crate) fn rename(wire: &mut [WireColumn], names: Vec<Vec<u8>>) -> Result<Vec<Option<Vec<u8>>>, String> {
    if names.len() != wire.len() {
        return Err(format!("named {} columns of {}", names.len(), wire.len()));
    }
    Ok(wire
        .iter_mut()
        .zip(names)
        .map(|(w, raw)| match String::from_utf8(raw) {
            Ok(name) => {
                w.name = name;
                None
            }
            Err(e) => {
                let raw = e.into_bytes();
                let mut name = Vec::with_capacity(raw.len() + 2);
                crate::decode::push_utf8_lossy(&mut name, &raw);
                w.name = String::from_utf8_lossy(&name).into_owned();
                Some(raw)
            }
        })
        .collect())
}

/// The result columns: names from the wire (and a `SQL_ASCII` name's bytes, by position), type
/// names from the catalog.
pub(crate) fn columns(
    wire: Vec<WireColumn>,
    codecs: Vec<Codec>,
    names: Vec<(u32, String)>,
    mut name_bytes: Vec<Option<Vec<u8>>>,
) -> Vec<Column> {
    name_bytes.resize(wire.len(), None);
    wire.into_iter()
        .zip(codecs)
        .zip(names)
        .zip(name_bytes)
        .map(|(((w, codec), (type_oid, type_name)), name_bytes)| Column {
            codec,
            name: w.name,
            name_bytes,
            type_name,
            type_oid,
            typmod: w.typmod,
        })
        .collect()
}

/// The statement as the server should run it, and how many characters precede the user's text
/// in it (to map error positions back).
///
/// When every column is decoded on the client, that is the statement unchanged. Otherwise the
/// server renders the [`Codec::ServerText`] columns with their type's own output function:
///
/// ```sql
/// SELECT q.c1, CASE WHEN pg_catalog.num_nulls(q.c2) OPERATOR(pg_catalog.=) 0
///                   THEN pg_catalog.format('%s', q.c2) END
/// FROM (
/// <the statement>
/// ) AS q(c1, c2)
/// ```
///
/// and a [`Codec::RawText`] column (a `SQL_ASCII` database) is that text's stored bytes, as
/// bytea, which the server sends without checking them against the client encoding:
/// `pg_catalog.convert_to(pg_catalog.format('%s', q.c2), 'SQL_ASCII')` (converting to
/// `SQL_ASCII` returns the bytes unchanged).
///
/// No name can collide: the statement is a derived table at the top level and not `LATERAL`, so
/// nothing of the outer SELECT is in scope inside it (it resolves every name exactly as alone),
/// and the outer SELECT reaches its columns only through the column alias list, by position, so
/// the names the statement gives them (repeated, `?column?`, `q`, `c1`, quoted) play no part.
/// Everything outside the statement is schema-qualified, so no `search_path` can reroute it.
pub(crate) fn wrap(sql: &str, codecs: &[Codec]) -> (String, usize) {
    if !codecs.iter().any(|c| c.server_rendered()) {
        return (sql.to_string(), 0);
    }
    let select: Vec<String> = codecs
        .iter()
        .enumerate()
        .map(|(i, c)| match c {
            Codec::ServerText => format!(
                "CASE WHEN pg_catalog.num_nulls(q.c{n}) OPERATOR(pg_catalog.=) 0 \
                 THEN pg_catalog.format('%s', q.c{n}) END",
                n = i + 1
            ),
            Codec::RawText { .. } => format!(
                "CASE WHEN pg_catalog.num_nulls(q.c{n}) OPERATOR(pg_catalog.=) 0 \
                 THEN pg_catalog.convert_to(pg_catalog.format('%s', q.c{n}), 'SQL_ASCII') END",
                n = i + 1
            ),
            _ => format!("q.c{}", i + 1),
        })
        .collect();
    let list: Vec<String> = (1..=codecs.len()).map(|i| format!("c{i}")).collect();
    let prefix = format!("SELECT {} FROM (\n", select.join(", "));
    let shift = prefix.chars().count();
    (format!("{prefix}{sql}\n) AS q({})", list.join(", ")), shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwrapped_when_every_column_is_decoded() {
        let cols = [Codec::Scalar(Scalar::Int4), Codec::Array(Scalar::Text)];
        assert_eq!(wrap("SELECT 1 AS q, '{}'::text[] AS c1", &cols), ("SELECT 1 AS q, '{}'::text[] AS c1".into(), 0));
        assert_eq!(wrap("SELECT", &[]), ("SELECT".into(), 0));
    }

    #[test]
    fn wrapped_columns_are_positional() {
        let cols = [Codec::Scalar(Scalar::Int4), Codec::ServerText];
        let (text, shift) = wrap("SELECT 1 AS q, 2 AS q -- note", &cols);
        assert!(text.ends_with("SELECT 1 AS q, 2 AS q -- note\n) AS q(c1, c2)"), "{text}");
        assert!(text.starts_with("SELECT q.c1, CASE WHEN pg_catalog.num_nulls(q.c2)"), "{text}");
        assert_eq!(&text[shift..shift + 6], "SELECT");
        assert_eq!(text[..shift].chars().last(), Some('\n'));
    }

    #[test]
    fn a_parameter_is_an_error_at_its_position() {
        assert!(parameter_error("SELECT '$1', \"$2\", 1 -- $3", 0).is_none());
        let e = parameter_error("SELECT 'é', $12 + $1", 3).expect("a parameter");
        assert_eq!(e.sqlstate(), Some("42P02"));
        assert_eq!(e.position(), Some(16));
        assert!(e.to_string().contains("there is no parameter $12"), "{e}");
    }

    #[test]
    fn utility_columns_are_never_server_rendered() {
        let fmt = SessionFormat {
            timezone: "UTC".into(),
            datestyle: "ISO, MDY".into(),
            extra_float_digits: 1,
            bytea_output: "hex".into(),
            raw_text: false,
        };
        let wire = |oid| WireColumn { name: "QUERY PLAN".into(), oid, typmod: -1, origin: None };
        let cols = [wire(25), wire(114), wire(142)];
        let as_is = [Codec::Scalar(Scalar::Text), Codec::Scalar(Scalar::Json), Codec::Scalar(Scalar::Text)];
        assert_eq!(codecs(&cols, &fmt, Flavor::Text, true), as_is);
        assert_eq!(codecs(&cols, &fmt, Flavor::Text, false)[2], Codec::ServerText);
        let sql_ascii = SessionFormat { raw_text: true, ..fmt };
        assert_eq!(codecs(&cols, &sql_ascii, Flavor::Text, true), as_is);
        assert_eq!(
            codecs(&cols, &sql_ascii, Flavor::Text, false),
            [Codec::RawText { json: false }, Codec::RawText { json: true }, Codec::RawText { json: false }]
        );
    }

    #[test]
    fn raw_text_columns_travel_as_stored_bytes() {
        let cols = [Codec::Scalar(Scalar::Int4), Codec::RawText { json: false }];
        let (text, shift) = wrap("SELECT 1, 'x'", &cols);
        assert!(text.starts_with("SELECT q.c1, CASE WHEN pg_catalog.num_nulls(q.c2)"), "{text}");
        assert!(text.contains("THEN pg_catalog.convert_to(pg_catalog.format('%s', q.c2), 'SQL_ASCII') END"), "{text}");
        assert_eq!(&text[shift..], "SELECT 1, 'x'\n) AS q(c1, c2)");
    }

    #[test]
    fn sql_ascii_names_are_read_by_position() {
        let (text, shift) = names_sql("SELECT 1 AS s, 2 AS k -- note");
        assert!(text[shift..].starts_with("SELECT 1 AS s, 2 AS k -- note\n) AS q ON false) AS s"), "{text}");
        assert!(text.ends_with("WITH ORDINALITY AS k(k, i) ORDER BY k.i"), "{text}");
        let (text, shift) = aliased_sql("SELECT 1, 2", 2);
        assert_eq!((&text[..shift], &text[shift..]), ("SELECT * FROM (\n", "SELECT 1, 2\n) AS q(c1, c2)"));
        assert_eq!(aliased_sql("SELECT", 0).0, "SELECT * FROM (\nSELECT\n) AS q");

        let wire = |n: &str| WireColumn { name: n.into(), oid: 25, typmod: -1, origin: None };
        let mut cols = [wire("c1"), wire("c2")];
        let bytes = rename(&mut cols, vec![b"plain".to_vec(), b"caf\xe9".to_vec()]).expect("renamed");
        assert_eq!((cols[0].name.as_str(), cols[1].name.as_str()), ("plain", "caf\u{FFFD}"));
        assert_eq!(bytes, [None, Some(b"caf\xe9".to_vec())]);
        assert!(rename(&mut cols, vec![b"one".to_vec()]).is_err());
    }

    #[test]
    fn type_names_are_asked_only_for_what_the_session_does_not_know() {
        let known = TypeNames::default();
        assert_eq!(type_names_sql(&[], &known), None);
        let wire = [
            WireColumn { name: "a".into(), oid: 23, typmod: -1, origin: Some((16384, 3)) },
            WireColumn { name: "b".into(), oid: 25, typmod: -1, origin: None },
            WireColumn { name: "c".into(), oid: 23, typmod: -1, origin: Some((16384, 1)) },
            WireColumn { name: "d".into(), oid: 16500, typmod: -1, origin: None },
        ];
        let sql = type_names_sql(&wire, &known).expect("sql");
        assert!(
            sql.contains("a.attrelid OPERATOR(pg_catalog.=) 16384 AND a.attnum OPERATOR(pg_catalog.=) ANY ('{3,1}'"),
            "{sql}"
        );
        assert!(sql.contains("unnest('{23,25,16500}'::pg_catalog.oid[])"), "{sql}");

        // The server's answer: column a is a domain, c is not; 16500 is an enum, whose name is
        // not kept.
        let row = |v: [&str; 5]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let rows = [
            row(["a", "16384", "3", "16400", "posint"]),
            row(["a", "16384", "1", "23", "integer"]),
            row(["t", "", "", "23", "integer"]),
            row(["t", "", "", "25", "text"]),
            row(["t", "", "", "16500", "mood"]),
        ];
        let names = resolve_type_names(&wire, &rows, &known).expect("names");
        assert_eq!(
            names,
            [(16400, "posint".into()), (25, "text".into()), (23, "integer".into()), (16500, "mood".into())]
        );
        assert_eq!(
            (known.get(23), known.get(25), known.get(16500)),
            (Some("integer".into()), Some("text".into()), None)
        );

        // Next time only the table's columns and the enum are asked for.
        let sql = type_names_sql(&wire, &known).expect("sql");
        assert!(sql.contains("unnest('{16500}'::pg_catalog.oid[])"), "{sql}");
        // Expressions of built-in types only: nothing to ask.
        assert_eq!(type_names_sql(&wire[1..2], &known), None);
        assert_eq!(resolve_type_names(&wire[1..2], &[], &known), Ok(vec![(25, "text".into())]));

        // A declared built-in type other than the wire's (the table changed meanwhile) falls back
        // to the wire type; a column nobody named is an error, not a guess.
        let altered = [row(["a", "16384", "3", "20", "bigint"])];
        assert_eq!(resolve_type_names(&wire[..1], &altered, &known), Ok(vec![(23, "integer".into())]));
        assert!(resolve_type_names(&wire[3..], &[], &known).is_err());
        assert!(resolve_type_names(&wire[..1], &[row(["x", "", "", "1", "n"])], &known).is_err());
    }
}
