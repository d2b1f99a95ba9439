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
//! domain of a table column (the wire carries a domain's base type).
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

use sluice_connect::tokio_postgres::{self, SimpleQueryMessage};

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

/// The catalog query that names each column's type: rows of (position, type OID, `format_type`)
/// in column order. The type is the table column's domain when the column comes straight from a
/// table whose column is a domain over the wire type (at any depth), else the wire type.
/// `None` when there are no columns.
pub(crate) fn type_names_sql(columns: &[WireColumn]) -> Option<String> {
    if columns.is_empty() {
        return None;
    }
    let oids: Vec<String> = columns.iter().map(|c| c.oid.to_string()).collect();
    let rels: Vec<String> = columns.iter().map(|c| c.origin.map_or(0, |o| o.0).to_string()).collect();
    let atts: Vec<String> = columns.iter().map(|c| c.origin.map_or(0, |o| o.1).to_string()).collect();
    Some(format!(
        "WITH RECURSIVE u(wire, rel, att, i) AS (\
           SELECT * FROM ROWS FROM (pg_catalog.unnest('{{{}}}'::pg_catalog.oid[]), \
           pg_catalog.unnest('{{{}}}'::pg_catalog.oid[]), pg_catalog.unnest('{{{}}}'::pg_catalog.int2[])) \
           WITH ORDINALITY), \
         d(i, dom, base) AS (\
           SELECT u.i, t.oid, t.typbasetype FROM u \
           JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) u.rel \
             AND a.attnum OPERATOR(pg_catalog.=) u.att \
           JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) a.atttypid AND t.typtype OPERATOR(pg_catalog.=) 'd' \
           UNION ALL \
           SELECT d.i, d.dom, t.typbasetype FROM d \
           JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) d.base AND t.typtype OPERATOR(pg_catalog.=) 'd') \
         SELECT u.i::pg_catalog.text, COALESCE(d.dom, u.wire)::pg_catalog.int8::pg_catalog.text, \
         pg_catalog.format_type(COALESCE(d.dom, u.wire), NULL) \
         FROM u LEFT JOIN d ON d.i OPERATOR(pg_catalog.=) u.i AND d.base OPERATOR(pg_catalog.=) u.wire \
         ORDER BY u.i",
        oids.join(","),
        rels.join(","),
        atts.join(","),
    ))
}

/// Reads [`type_names_sql`]'s answer into (type OID, type name) per column, in column order.
pub(crate) fn parse_type_names(messages: &[SimpleQueryMessage], n: usize) -> Result<Vec<(u32, String)>, String> {
    let mut out = Vec::with_capacity(n);
    for m in messages {
        if let SimpleQueryMessage::Row(r) = m {
            let oid = r.get(1).and_then(|v| v.parse().ok()).ok_or("a type OID was missing")?;
            out.push((oid, r.get(2).unwrap_or_default().to_string()));
        }
    }
    if out.len() != n {
        return Err(format!("named {} column types for {n} columns", out.len()));
    }
    Ok(out)
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
    fn type_names_query_lists_every_column_in_order() {
        assert_eq!(type_names_sql(&[]), None);
        let wire = [
            WireColumn { name: "a".into(), oid: 23, typmod: -1, origin: Some((16384, 3)) },
            WireColumn { name: "b".into(), oid: 25, typmod: -1, origin: None },
        ];
        let sql = type_names_sql(&wire).expect("sql");
        for list in ["'{23,25}'::pg_catalog.oid[]", "'{16384,0}'::pg_catalog.oid[]", "'{3,0}'::pg_catalog.int2[]"] {
            assert!(sql.contains(list), "{sql}");
        }
        assert!(sql.ends_with("ORDER BY u.i"), "{sql}");
    }
}
