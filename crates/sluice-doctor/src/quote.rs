//! PostgreSQL quoting for generated SQL: identifiers as `quote_ident` does it, literals as
//! `quote_literal` does it, and dollar quotes that cannot collide with their body.
//!
//! An identifier stays bare only when PostgreSQL would read it back unchanged: lower-case ASCII
//! letters, digits and underscores, not starting with a digit, and not a keyword of any category
//! (PostgreSQL 10–18). Everything else — upper case, spaces, quotes, non-ASCII, keywords such as
//! `select` or `user` — is double-quoted with embedded `"` doubled.

/// Every keyword PostgreSQL 10–18 knows (`pg_get_keywords()`), all categories, sorted. Quoting an
/// unreserved keyword is never needed but always harmless, so the whole list is used.
const KEYWORDS: &[&str] = &[
    "abort",
    "absent",
    "absolute",
    "access",
    "action",
    "add",
    "admin",
    "after",
    "aggregate",
    "all",
    "also",
    "alter",
    "always",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asensitive",
    "assertion",
    "assignment",
    "asymmetric",
    "at",
    "atomic",
    "attach",
    "attribute",
    "authorization",
    "backward",
    "before",
    "begin",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "breadth",
    "by",
    "cache",
    "call",
    "called",
    "cascade",
    "cascaded",
    "case",
    "cast",
    "catalog",
    "chain",
    "char",
    "character",
    "characteristics",
    "check",
    "checkpoint",
    "class",
    "close",
    "cluster",
    "coalesce",
    "collate",
    "collation",
    "column",
    "columns",
    "comment",
    "comments",
    "commit",
    "committed",
    "compression",
    "concurrently",
    "conditional",
    "configuration",
    "conflict",
    "connection",
    "constraint",
    "constraints",
    "content",
    "continue",
    "conversion",
    "copy",
    "cost",
    "create",
    "cross",
    "csv",
    "cube",
    "current",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "cursor",
    "cycle",
    "data",
    "database",
    "day",
    "deallocate",
    "dec",
    "decimal",
    "declare",
    "default",
    "defaults",
    "deferrable",
    "deferred",
    "definer",
    "delete",
    "delimiter",
    "delimiters",
    "depends",
    "depth",
    "desc",
    "detach",
    "dictionary",
    "disable",
    "discard",
    "distinct",
    "do",
    "document",
    "domain",
    "double",
    "drop",
    "each",
    "else",
    "empty",
    "enable",
    "encoding",
    "encrypted",
    "end",
    "enforced",
    "enum",
    "error",
    "escape",
    "event",
    "except",
    "exclude",
    "excluding",
    "exclusive",
    "execute",
    "exists",
    "explain",
    "expression",
    "extension",
    "external",
    "extract",
    "false",
    "family",
    "fetch",
    "filter",
    "finalize",
    "first",
    "float",
    "following",
    "for",
    "force",
    "foreign",
    "format",
    "forward",
    "freeze",
    "from",
    "full",
    "function",
    "functions",
    "generated",
    "global",
    "grant",
    "granted",
    "greatest",
    "group",
    "grouping",
    "groups",
    "handler",
    "having",
    "header",
    "hold",
    "hour",
    "identity",
    "if",
    "ilike",
    "immediate",
    "immutable",
    "implicit",
    "import",
    "in",
    "include",
    "including",
    "increment",
    "indent",
    "index",
    "indexes",
    "inherit",
    "inherits",
    "initially",
    "inline",
    "inner",
    "inout",
    "input",
    "insensitive",
    "insert",
    "instead",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "invoker",
    "is",
    "isnull",
    "isolation",
    "join",
    "json",
    "json_array",
    "json_arrayagg",
    "json_exists",
    "json_object",
    "json_objectagg",
    "json_query",
    "json_scalar",
    "json_serialize",
    "json_table",
    "json_value",
    "keep",
    "key",
    "keys",
    "label",
    "language",
    "large",
    "last",
    "lateral",
    "leading",
    "leakproof",
    "least",
    "left",
    "level",
    "like",
    "limit",
    "listen",
    "load",
    "local",
    "localtime",
    "localtimestamp",
    "location",
    "lock",
    "locked",
    "logged",
    "mapping",
    "match",
    "matched",
    "materialized",
    "maxvalue",
    "merge",
    "merge_action",
    "method",
    "minute",
    "minvalue",
    "mode",
    "month",
    "move",
    "name",
    "names",
    "national",
    "natural",
    "nchar",
    "nested",
    "new",
    "next",
    "nfc",
    "nfd",
    "nfkc",
    "nfkd",
    "no",
    "none",
    "normalize",
    "normalized",
    "not",
    "nothing",
    "notify",
    "notnull",
    "nowait",
    "null",
    "nullif",
    "nulls",
    "numeric",
    "object",
    "objects",
    "of",
    "off",
    "offset",
    "oids",
    "old",
    "omit",
    "on",
    "only",
    "operator",
    "option",
    "options",
    "or",
    "order",
    "ordinality",
    "others",
    "out",
    "outer",
    "over",
    "overlaps",
    "overlay",
    "overriding",
    "owned",
    "owner",
    "parallel",
    "parameter",
    "parser",
    "partial",
    "partition",
    "passing",
    "password",
    "path",
    "period",
    "placing",
    "plan",
    "plans",
    "policy",
    "position",
    "preceding",
    "precision",
    "prepare",
    "prepared",
    "preserve",
    "primary",
    "prior",
    "privileges",
    "procedural",
    "procedure",
    "procedures",
    "program",
    "publication",
    "quote",
    "quotes",
    "range",
    "read",
    "real",
    "reassign",
    "recheck",
    "recursive",
    "ref",
    "references",
    "referencing",
    "refresh",
    "reindex",
    "relative",
    "release",
    "rename",
    "repeatable",
    "replace",
    "replica",
    "reset",
    "restart",
    "restrict",
    "return",
    "returning",
    "returns",
    "revoke",
    "right",
    "role",
    "rollback",
    "rollup",
    "routine",
    "routines",
    "row",
    "rows",
    "rule",
    "savepoint",
    "scalar",
    "schema",
    "schemas",
    "scroll",
    "search",
    "second",
    "security",
    "select",
    "sequence",
    "sequences",
    "serializable",
    "server",
    "session",
    "session_user",
    "set",
    "setof",
    "sets",
    "share",
    "show",
    "similar",
    "simple",
    "skip",
    "smallint",
    "snapshot",
    "some",
    "source",
    "sql",
    "stable",
    "standalone",
    "start",
    "statement",
    "statistics",
    "stdin",
    "stdout",
    "storage",
    "stored",
    "strict",
    "string",
    "strip",
    "subscription",
    "substring",
    "support",
    "symmetric",
    "sysid",
    "system",
    "system_user",
    "table",
    "tables",
    "tablesample",
    "tablespace",
    "target",
    "temp",
    "template",
    "temporary",
    "text",
    "then",
    "ties",
    "time",
    "timestamp",
    "to",
    "trailing",
    "transaction",
    "transform",
    "treat",
    "trigger",
    "trim",
    "true",
    "truncate",
    "trusted",
    "type",
    "types",
    "uescape",
    "unbounded",
    "uncommitted",
    "unconditional",
    "unencrypted",
    "union",
    "unique",
    "unknown",
    "unlisten",
    "unlogged",
    "until",
    "update",
    "user",
    "using",
    "vacuum",
    "valid",
    "validate",
    "validator",
    "value",
    "values",
    "varchar",
    "variadic",
    "varying",
    "verbose",
    "version",
    "view",
    "views",
    "virtual",
    "volatile",
    "when",
    "where",
    "whitespace",
    "window",
    "with",
    "within",
    "without",
    "work",
    "wrapper",
    "write",
    "xml",
    "xmlattributes",
    "xmlconcat",
    "xmlelement",
    "xmlexists",
    "xmlforest",
    "xmlnamespaces",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmltable",
    "year",
    "yes",
    "zone",
];

/// A SQL identifier, quoted when PostgreSQL needs it to be.
pub fn ident(name: &str) -> String {
    if is_bare(name) {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// `schema.name`, each part quoted as needed.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", ident(schema), ident(name))
}

/// A string literal. Like `quote_literal`, a value with a backslash becomes an `E'…'` literal with
/// the backslashes doubled, so it reads the same whatever `standard_conforming_strings` says.
pub fn literal(value: &str) -> String {
    let quoted = value.replace('\'', "''");
    if value.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

/// `body` between dollar quotes whose tag (`$sluice$`, `$sluice1$`, …) does not occur in it.
pub fn dollar(body: &str) -> String {
    let mut tag = String::from("$sluice$");
    let mut n = 0u32;
    while body.contains(&tag) {
        n += 1;
        tag = format!("$sluice{n}$");
    }
    format!("{tag}\n{body}\n{tag}")
}

/// A `--` comment line. Control characters (a newline in a table name, say) are shown escaped, so
/// no text can end the comment and turn the rest of its line into SQL.
pub fn comment(text: &str) -> String {
    let mut out = String::from("-- ");
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Splits generated SQL into lines, except at a newline inside a quoted identifier or a literal
/// (a name may contain one). Works on what this crate generates: every quote is balanced and a
/// backslash never escapes a quote (see [`literal`]).
pub fn lines(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let (mut in_ident, mut in_literal, mut in_comment) = (false, false, false);
    for c in sql.chars() {
        match c {
            '\n' if !in_ident && !in_literal => {
                out.push(std::mem::take(&mut current));
                in_comment = false;
                continue;
            }
            '-' if !in_ident && !in_literal && current.ends_with('-') => in_comment = true,
            '"' if !in_literal && !in_comment => in_ident = !in_ident,
            '\'' if !in_ident && !in_comment => in_literal = !in_literal,
            _ => {}
        }
        current.push(c);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn is_bare(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = matches!(chars.next(), Some('a'..='z' | '_'));
    first_ok
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && KEYWORDS.binary_search(&name).is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        let cases = [
            ("analytics", "analytics"),
            ("sluice_ro", "sluice_ro"),
            ("_x1", "_x1"),
            ("Sales Data", "\"Sales Data\""),
            ("Order\"Items", "\"Order\"\"Items\""),
            ("prix_€", "\"prix_€\""),
            ("select", "\"select\""),
            ("user", "\"user\""),
            ("json_table", "\"json_table\""),
            ("Analytics", "\"Analytics\""),
            ("1abc", "\"1abc\""),
            ("a$b", "\"a$b\""),
            ("a-b", "\"a-b\""),
            ("", "\"\""),
            ("\"", "\"\"\"\""),
        ];
        for (name, want) in cases {
            assert_eq!(ident(name), want, "{name}");
        }
        assert_eq!(
            qualified("Sales Data", "select"),
            "\"Sales Data\".\"select\""
        );
    }

    #[test]
    fn keyword_list_is_sorted_for_binary_search() {
        assert!(KEYWORDS.windows(2).all(|w| w[0] < w[1]));
        assert!(KEYWORDS.contains(&"select") && KEYWORDS.contains(&"system_user"));
    }

    #[test]
    fn literals() {
        assert_eq!(literal("plain"), "'plain'");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal("a\\b'c"), "E'a\\\\b''c'");
        assert_eq!(literal("prix_€"), "'prix_€'");
        assert_eq!(literal(""), "''");
    }

    #[test]
    fn comments_cannot_be_escaped() {
        assert_eq!(comment("plain"), "-- plain");
        assert_eq!(
            comment("table \"x\nDROP TABLE y;\""),
            "-- table \"x\\nDROP TABLE y;\""
        );
        assert!(!comment("a\rb\u{7}c").contains(['\r', '\u{7}']));
    }

    #[test]
    fn lines_keep_quoted_newlines() {
        let sql = format!(
            "{}\nGRANT SELECT ON TABLE {} TO ro;\nREVOKE x FROM {};\n",
            comment("it's \"odd\""),
            qualified("a\nb", "c'd"),
            literal("x\ny")
        );
        assert_eq!(
            lines(&sql),
            vec![
                "-- it's \"odd\"".to_string(),
                "GRANT SELECT ON TABLE \"a\nb\".\"c'd\" TO ro;".to_string(),
                "REVOKE x FROM 'x\ny';".to_string(),
            ]
        );
    }

    #[test]
    fn dollar_tags_avoid_the_body() {
        assert_eq!(dollar("x"), "$sluice$\nx\n$sluice$");
        assert_eq!(
            dollar("a $sluice$ b $sluice1$"),
            "$sluice2$\na $sluice$ b $sluice1$\n$sluice2$"
        );
    }
}
