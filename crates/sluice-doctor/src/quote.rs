//! PostgreSQL quoting for generated SQL: identifiers and literals from `sluice_core::quote`,
//! dollar quotes that cannot collide with their body, and comments no name can end.

pub use sluice_core::quote::{ident, literal, qualified};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_cannot_be_escaped() {
        assert_eq!(comment("plain"), "-- plain");
        assert_eq!(comment("table \"x\nDROP TABLE y;\""), "-- table \"x\\nDROP TABLE y;\"");
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
        assert_eq!(dollar("a $sluice$ b $sluice1$"), "$sluice2$\na $sluice$ b $sluice1$\n$sluice2$");
    }
}
