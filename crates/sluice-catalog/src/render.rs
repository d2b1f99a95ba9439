//! Text for people: a catalog as an indented outline, a diff as one line per change.

use std::fmt::Write;

use crate::diff::{CatalogDiff, RelationChange, RelationRef};
use crate::model::{Catalog, Column, Identity, Relation};

/// The catalog as an outline: schemas, their relations, and each selectable relation's columns
/// and keys.
pub fn render_human(c: &Catalog) -> String {
    let mut out = String::new();
    let relations = c.relations().count();
    let _ = writeln!(
        out,
        "database {} (PostgreSQL {}) as {}, discovered {}: {} schema{}, {} relation{}",
        c.database,
        c.server_version,
        c.user,
        c.discovered_at,
        c.schemas.len(),
        plural(c.schemas.len()),
        relations,
        plural(relations),
    );
    if !c.schema_filter.is_empty() {
        let _ = writeln!(out, "only schemas: {}", c.schema_filter.join(", "));
    }
    if c.lossy_text {
        out.push_str(
            "note: some names, comments or expressions are not valid UTF-8 in this database; \
             \u{FFFD} stands for each invalid byte sequence (lossy_text in the JSON snapshot)\n",
        );
    }
    for s in &c.schemas {
        let _ = write!(out, "\nschema {} (owner {})", s.name, s.owner);
        if !s.usable {
            out.push_str("  [no USAGE: nothing in it can be queried]");
        }
        out.push('\n');
        if let Some(comment) = &s.comment {
            let _ = writeln!(out, "  -- {}", one_line(comment));
        }
        for r in &s.relations {
            relation(&mut out, r, 1);
        }
    }
    out
}

fn relation(out: &mut String, r: &Relation, depth: usize) {
    let pad = "  ".repeat(depth);
    let name = match &r.schema {
        Some(schema) => format!("{schema}.{}", r.name),
        None => r.name.to_string(),
    };
    let _ = write!(out, "{pad}{} {name} (owner {})", r.kind, r.owner);
    if let Some(n) = r.row_estimate {
        let _ = write!(out, ", ~{} rows", thousands(n));
    }
    if let Some(b) = r.size_bytes {
        let _ = write!(out, ", {}", bytes(b));
    }
    if let Some(bound) = &r.partition_bound {
        let _ = write!(out, ", {bound}");
    }
    if let Some(key) = &r.partition_key {
        let _ = write!(out, ", partitioned by {key}");
    }
    if !r.selectable {
        out.push_str("  [no SELECT]");
    } else if r.columns_limited {
        out.push_str("  [SELECT on some columns only]");
    }
    out.push('\n');
    let inner = format!("{pad}  ");
    if let Some(comment) = &r.comment {
        let _ = writeln!(out, "{inner}-- {}", one_line(comment));
    }
    if let Some(parent) = r.partition_of.as_ref().filter(|_| depth == 1) {
        let _ = writeln!(out, "{inner}partition of {parent}");
    }
    if !r.inherits.is_empty() {
        let parents: Vec<String> = r.inherits.iter().map(|p| p.to_string()).collect();
        let _ = writeln!(out, "{inner}inherits {}", parents.join(", "));
    }
    let width = r.columns.iter().map(|c| c.name.chars().count()).max().unwrap_or(0);
    let type_width = r.columns.iter().map(|c| c.type_name.chars().count()).max().unwrap_or(0);
    for c in &r.columns {
        let line = format!("{inner}{:width$}  {:type_width$}{}", c.name, c.type_name, column_notes(c));
        let _ = writeln!(out, "{}", line.trim_end());
    }
    if let Some(pk) = &r.primary_key {
        let _ = writeln!(out, "{inner}primary key ({})", pk.join(", "));
    }
    for u in &r.unique {
        let _ = writeln!(out, "{inner}unique ({})", u.join(", "));
    }
    for fk in &r.foreign_keys {
        let _ = writeln!(
            out,
            "{inner}foreign key {} ({}) -> {}.{} ({})",
            fk.name,
            fk.columns.join(", "),
            fk.ref_schema,
            fk.ref_table,
            fk.ref_columns.join(", ")
        );
    }
    for ix in &r.indexes {
        let what = match &ix.expression {
            // `CREATE INDEX name ON table USING btree (lower(email)) WHERE …`: keep from the method.
            Some(def) => def.split_once(" USING ").map_or_else(|| def.to_string(), |(_, rest)| rest.to_string()),
            None => {
                let mut what = format!("{} ({})", ix.method, ix.columns.join(", "));
                if !ix.include.is_empty() {
                    let _ = write!(what, " include ({})", ix.include.join(", "));
                }
                if let Some(p) = &ix.predicate {
                    let _ = write!(what, " where {p}");
                }
                what
            }
        };
        let _ = writeln!(out, "{inner}{}index {} {what}", if ix.unique { "unique " } else { "" }, ix.name);
    }
    for p in &r.partitions {
        relation(out, p, depth + 1);
    }
}

fn column_notes(c: &Column) -> String {
    let mut notes = String::new();
    if !c.nullable {
        notes.push_str("  not null");
    }
    match c.identity {
        Some(Identity::Always) => notes.push_str("  identity always"),
        Some(Identity::ByDefault) => notes.push_str("  identity by default"),
        None => {}
    }
    if let Some(g) = &c.generated {
        let kind = match g.kind {
            crate::model::GeneratedKind::Stored => "stored",
            crate::model::GeneratedKind::Virtual => "virtual",
        };
        let _ = write!(notes, "  generated ({}) {kind}", g.expression);
    }
    if let Some(d) = &c.default {
        let _ = write!(notes, "  default {d}");
    }
    if let Some(comment) = &c.comment {
        let _ = write!(notes, "  -- {}", one_line(comment));
    }
    notes
}

/// The diff, one line per change; `no changes` when there are none.
pub fn render_diff_human(d: &CatalogDiff) -> String {
    if d.is_empty() {
        return "no changes\n".into();
    }
    let mut out = String::new();
    for s in &d.added_schemas {
        let _ = writeln!(out, "+ schema {s}");
    }
    for s in &d.removed_schemas {
        let _ = writeln!(out, "- schema {s}");
    }
    for s in &d.lost_usage {
        let _ = writeln!(out, "! lost USAGE on schema {s}");
    }
    for s in &d.gained_usage {
        let _ = writeln!(out, "* gained USAGE on schema {s}");
    }
    for r in &d.added_relations {
        let _ = writeln!(out, "+ {}", rel(r));
    }
    for r in &d.removed_relations {
        let _ = writeln!(out, "- {}", rel(r));
    }
    for r in &d.lost_access {
        let _ = writeln!(out, "! lost access to {}", rel(r));
    }
    for r in &d.gained_access {
        let _ = writeln!(out, "* gained access to {}", rel(r));
    }
    for c in &d.changed_relations {
        changed(&mut out, c);
    }
    out
}

fn rel(r: &RelationRef) -> String {
    format!("{} {}.{}", r.kind, r.schema, r.name)
}

fn changed(out: &mut String, c: &RelationChange) {
    let _ = writeln!(out, "~ {}.{}", c.schema, c.name);
    if let Some(k) = &c.kind {
        let _ = writeln!(out, "    kind: {} -> {}", k.from, k.to);
    }
    for a in &c.added_columns {
        let _ = writeln!(out, "    + column {} {}", a.name, a.type_name);
    }
    for r in &c.removed_columns {
        let _ = writeln!(out, "    - column {r}");
    }
    for t in &c.type_changes {
        let _ = writeln!(out, "    column {}: {} -> {}", t.column, t.from, t.to);
    }
    for n in &c.nullability_changes {
        let _ = writeln!(out, "    column {}: {}", n.column, if n.to { "now nullable" } else { "now NOT NULL" });
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    let first = match digits.len() % 3 {
        0 => 3,
        n => n,
    };
    for (i, ch) in digits.chars().enumerate() {
        if i >= first && (i - first) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_for_people() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(bytes(8192), "8.0 kB");
        assert_eq!(bytes(100), "100 B");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024), "3.0 GB");
        assert_eq!(one_line("a\n  b"), "a b");
    }

    #[test]
    fn empty_diff_reads_no_changes() {
        assert_eq!(render_diff_human(&CatalogDiff::default()), "no changes\n");
    }
}
