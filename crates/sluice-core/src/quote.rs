//! PostgreSQL quoting, in one place for every crate that writes SQL: identifiers as
//! `quote_ident` does it, literals as `quote_literal` does it.
//!
//! An identifier stays bare only when PostgreSQL would read it back unchanged: lower-case ASCII
//! letters, digits and underscores, not starting with a digit, and not a keyword that any of
//! PostgreSQL 10–18 reserves in some position. Everything else — upper case, spaces, quotes,
//! non-ASCII, keywords such as `select` or `user` — is double-quoted with embedded `"` doubled.
//! A literal with a backslash becomes `E'…'` with the backslashes doubled, so it reads the same
//! whatever `standard_conforming_strings` says.

/// The keywords PostgreSQL 10–18 does not let stand as a bare name in every position
/// (`pg_get_keywords()` categories reserved, type/function name and column name), merged over
/// those majors and sorted. Unreserved keywords (`name`, `data`, `admin`…) need no quotes, as
/// `quote_ident` and `pg_dump` agree.
const KEYWORDS: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "case",
    "cast",
    "char",
    "character",
    "check",
    "coalesce",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "dec",
    "decimal",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "exists",
    "extract",
    "false",
    "fetch",
    "float",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "greatest",
    "group",
    "grouping",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "inout",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
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
    "lateral",
    "leading",
    "least",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "merge_action",
    "national",
    "natural",
    "nchar",
    "none",
    "normalize",
    "not",
    "notnull",
    "null",
    "nullif",
    "numeric",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "out",
    "outer",
    "overlaps",
    "overlay",
    "placing",
    "position",
    "precision",
    "primary",
    "real",
    "references",
    "returning",
    "right",
    "row",
    "select",
    "session_user",
    "setof",
    "similar",
    "smallint",
    "some",
    "substring",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "then",
    "time",
    "timestamp",
    "to",
    "trailing",
    "treat",
    "trim",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "varchar",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
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

fn is_bare(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = matches!(chars.next(), Some('a'..='z' | '_'));
    first_ok && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_')) && KEYWORDS.binary_search(&name).is_err()
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
            ("name", "name"),
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
        assert_eq!(qualified("Sales Data", "select"), "\"Sales Data\".\"select\"");
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
}
