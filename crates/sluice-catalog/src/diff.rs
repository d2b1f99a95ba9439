//! What changed between two catalog snapshots, as data the scheduler acts on.
//!
//! Relations are matched by schema and name, partitions included. Access is part of the
//! comparison: a relation that stops being selectable (a `REVOKE`, or a table recreated by a role
//! that granted nothing) is reported in `lost_access`, not as removed, and its columns are not
//! compared. A schema that loses `USAGE` is reported in `lost_usage`, and each selectable relation
//! it held in `lost_access` (the relations are still there; the user can no longer reach them).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::model::{Catalog, Relation, RelationKind, Schema};
use crate::CatalogError;

/// The changes from an old snapshot to a new one. Every list is sorted by schema, then name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogDiff {
    pub added_schemas: Vec<String>,
    pub removed_schemas: Vec<String>,
    /// Schemas the user lost `USAGE` on.
    pub lost_usage: Vec<String>,
    /// Schemas the user gained `USAGE` on.
    pub gained_usage: Vec<String>,
    pub added_relations: Vec<RelationRef>,
    pub removed_relations: Vec<RelationRef>,
    /// Relations that were selectable and no longer are.
    pub lost_access: Vec<RelationRef>,
    /// Relations that were not selectable and now are.
    pub gained_access: Vec<RelationRef>,
    /// Relations present (and comparable) in both with a different kind or columns.
    pub changed_relations: Vec<RelationChange>,
}

impl CatalogDiff {
    pub fn is_empty(&self) -> bool {
        self.added_schemas.is_empty()
            && self.removed_schemas.is_empty()
            && self.lost_usage.is_empty()
            && self.gained_usage.is_empty()
            && self.added_relations.is_empty()
            && self.removed_relations.is_empty()
            && self.lost_access.is_empty()
            && self.gained_access.is_empty()
            && self.changed_relations.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationRef {
    pub schema: String,
    pub name: String,
    pub kind: RelationKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationChange {
    pub schema: String,
    pub name: String,
    /// Set when the kind changed (say, a view replaced by a materialized view).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<KindChange>,
    pub added_columns: Vec<AddedColumn>,
    pub removed_columns: Vec<String>,
    pub type_changes: Vec<TypeChange>,
    pub nullability_changes: Vec<NullabilityChange>,
}

impl RelationChange {
    fn is_empty(&self) -> bool {
        self.kind.is_none()
            && self.added_columns.is_empty()
            && self.removed_columns.is_empty()
            && self.type_changes.is_empty()
            && self.nullability_changes.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindChange {
    pub from: RelationKind,
    pub to: RelationKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddedColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeChange {
    pub column: String,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NullabilityChange {
    pub column: String,
    /// Whether the column was nullable before.
    pub from: bool,
    /// Whether it is nullable now.
    pub to: bool,
}

type Key<'a> = (&'a str, &'a str);

fn rel_ref((schema, name): Key<'_>, r: &Relation) -> RelationRef {
    RelationRef { schema: schema.to_string(), name: name.to_string(), kind: r.kind }
}

/// Every relation of a schema, partitions included, with the schema it is keyed by.
fn walk_schema(s: &Schema) -> Vec<(&str, &Relation)> {
    fn walk<'a>(schema: &'a str, r: &'a Relation, out: &mut Vec<(&'a str, &'a Relation)>) {
        out.push((r.schema.as_deref().unwrap_or(schema), r));
        for p in &r.partitions {
            walk(schema, p, out);
        }
    }
    let mut out = Vec::new();
    for r in &s.relations {
        walk(&s.name, r, &mut out);
    }
    out
}

/// The changes from `old` to `new`.
pub fn diff(old: &Catalog, new: &Catalog) -> CatalogDiff {
    let mut differ = Differ::new(new);
    for s in &old.schemas {
        differ.old_schema(s);
    }
    differ.finish()
}

/// [`diff`] with the old snapshot read from its JSON one schema at a time (a decompressing
/// reader, say): only `new`, an index of it, and one old schema are held at once. `old_name`
/// names the input in the error.
///
/// An old schema whose JSON text is the very text its namesake in `new` serializes to is not
/// parsed: nothing in it changed, so its relations are only marked as found. Snapshots are
/// written by the same serializer, so an unchanged schema is byte for byte the same; one written
/// otherwise (an older release, say) is parsed and compared as any other.
pub fn diff_from_reader<R: std::io::Read>(old: R, old_name: &str, new: &Catalog) -> Result<CatalogDiff, CatalogError> {
    let mut differ = Differ::new(new);
    let mut new_json = Vec::new();
    Catalog::each_schema_json_from_reader(old, old_name, |text| {
        if differ.same_as_new(text.get(), &mut new_json) {
            return Ok(());
        }
        let schema: Schema = serde_json::from_str(text.get()).map_err(|e| e.to_string())?;
        differ.old_schema(&schema);
        Ok(())
    })?;
    Ok(differ.finish())
}

/// Compares old schemas, handed over one at a time, with a new catalog held whole. Relations
/// are matched by key across the whole catalog (a partition may live in another schema than
/// its parent), so what is decided only once every old schema is known (added schemas, added
/// or newly readable relations) waits for [`Differ::finish`]; every list is sorted there.
struct Differ<'n> {
    new_schemas: BTreeMap<&'n str, &'n Schema>,
    /// The new catalog's relations by key, as indexes into `matched`.
    new_rels: BTreeMap<Key<'n>, usize>,
    /// Each new relation, with whether an old relation matched it.
    matched: Vec<(&'n Relation, bool)>,
    /// Each old schema's `usable`, by name.
    old_usable: HashMap<String, bool>,
    d: CatalogDiff,
}

impl<'n> Differ<'n> {
    fn new(new: &'n Catalog) -> Differ<'n> {
        Differ {
            new_schemas: new.schemas.iter().map(|s| (s.name.as_str(), s)).collect(),
            new_rels: new.relations().enumerate().map(|(i, (s, r))| ((s, r.name.as_str()), i)).collect(),
            matched: new.relations().map(|(_, r)| (r, false)).collect(),
            old_usable: HashMap::new(),
            d: CatalogDiff::default(),
        }
    }

    /// A schema the user cannot use on the new side hides its relations there.
    fn hidden_in_new(&self, schema: &str) -> bool {
        self.new_schemas.get(schema).is_some_and(|s| !s.usable)
    }

    /// Whether `old_json` is the JSON of the new schema of the same name; if so, that schema is
    /// recorded as found unchanged (as [`Differ::old_schema`] would record it). `buf` is reused
    /// for the new schema's JSON.
    ///
    /// The name is read from the text's start, where the serializer puts it (`{"name":…`), not
    /// by scanning the whole schema: a text that starts otherwise cannot equal what the new
    /// schema serializes to, and a wrong name only makes the comparison fail.
    fn same_as_new(&mut self, old_json: &str, buf: &mut Vec<u8>) -> bool {
        let Some(rest) = old_json.strip_prefix("{\"name\":") else { return false };
        let Some(Ok(name)) = serde_json::Deserializer::from_str(rest).into_iter::<String>().next() else {
            return false;
        };
        let Some(&n) = self.new_schemas.get(name.as_str()) else { return false };
        buf.clear();
        if serde_json::to_writer(&mut *buf, n).is_err() || buf.as_slice() != old_json.as_bytes() {
            return false;
        }
        self.old_usable.insert(n.name.to_string(), n.usable);
        for (schema, r) in walk_schema(n) {
            if let Some(&i) = self.new_rels.get(&(schema, r.name.as_str())) {
                self.matched[i].1 = true;
            }
        }
        true
    }

    fn old_schema(&mut self, o: &Schema) {
        self.old_usable.insert(o.name.to_string(), o.usable);
        match self.new_schemas.get(o.name.as_str()) {
            None => self.d.removed_schemas.push(o.name.to_string()),
            Some(n) if o.usable && !n.usable => self.d.lost_usage.push(o.name.to_string()),
            Some(n) if !o.usable && n.usable => self.d.gained_usage.push(o.name.to_string()),
            Some(_) => {}
        }
        for key in walk_schema(o) {
            let (schema, r) = key;
            let key = (schema, r.name.as_str());
            let hidden = self.hidden_in_new(schema);
            match self.new_rels.get(&key).copied() {
                None => {
                    if hidden {
                        if r.selectable {
                            self.d.lost_access.push(rel_ref(key, r));
                        }
                    } else {
                        self.d.removed_relations.push(rel_ref(key, r));
                    }
                }
                Some(i) => {
                    let n = self.matched[i].0;
                    self.matched[i].1 = true;
                    if r.selectable && !n.selectable {
                        self.d.lost_access.push(rel_ref(key, n));
                    } else if !r.selectable && n.selectable {
                        self.d.gained_access.push(rel_ref(key, n));
                    }
                    let change = compare(key, r, n);
                    if !change.is_empty() {
                        self.d.changed_relations.push(change);
                    }
                }
            }
        }
    }

    fn finish(mut self) -> CatalogDiff {
        for name in self.new_schemas.keys() {
            if !self.old_usable.contains_key(*name) {
                self.d.added_schemas.push(name.to_string());
            }
        }
        for (key, i) in &self.new_rels {
            let (n, matched) = self.matched[*i];
            if matched {
                continue;
            }
            // Relations of a schema the user could not use on the old side were hidden there.
            if self.old_usable.get(key.0) == Some(&false) {
                if n.selectable {
                    self.d.gained_access.push(rel_ref(*key, n));
                }
            } else {
                self.d.added_relations.push(rel_ref(*key, n));
            }
        }
        let mut d = self.d;
        for names in [&mut d.added_schemas, &mut d.removed_schemas, &mut d.lost_usage, &mut d.gained_usage] {
            names.sort_unstable();
        }
        for refs in [&mut d.added_relations, &mut d.removed_relations, &mut d.lost_access, &mut d.gained_access] {
            refs.sort_by(|a, b| (a.schema.as_str(), a.name.as_str()).cmp(&(b.schema.as_str(), b.name.as_str())));
        }
        d.changed_relations
            .sort_by(|a, b| (a.schema.as_str(), a.name.as_str()).cmp(&(b.schema.as_str(), b.name.as_str())));
        d
    }
}

fn compare(key: Key<'_>, o: &Relation, n: &Relation) -> RelationChange {
    let mut change = RelationChange {
        schema: key.0.to_string(),
        name: key.1.to_string(),
        kind: (o.kind != n.kind).then_some(KindChange { from: o.kind, to: n.kind }),
        added_columns: Vec::new(),
        removed_columns: Vec::new(),
        type_changes: Vec::new(),
        nullability_changes: Vec::new(),
    };
    // Columns are only known on both sides when both are selectable.
    if !(o.selectable && n.selectable) {
        return change;
    }
    for c in &n.columns {
        match o.column(&c.name) {
            None => {
                change.added_columns.push(AddedColumn { name: c.name.to_string(), type_name: c.type_name.to_string() })
            }
            Some(prev) => {
                if prev.type_name != c.type_name {
                    change.type_changes.push(TypeChange {
                        column: c.name.to_string(),
                        from: prev.type_name.to_string(),
                        to: c.type_name.to_string(),
                    });
                }
                if prev.nullable != c.nullable {
                    change.nullability_changes.push(NullabilityChange {
                        column: c.name.to_string(),
                        from: prev.nullable,
                        to: c.nullable,
                    });
                }
            }
        }
    }
    change.removed_columns =
        o.columns.iter().filter(|c| n.column(&c.name).is_none()).map(|c| c.name.to_string()).collect();
    change
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::model::Column;

    fn relations(c: &Catalog) -> BTreeMap<Key<'_>, &Relation> {
        c.relations().map(|(s, r)| ((s, r.name.as_str()), r)).collect()
    }

    fn schemas(c: &Catalog) -> BTreeMap<&str, &Schema> {
        c.schemas.iter().map(|s| (s.name.as_str(), s)).collect()
    }

    /// The comparison as it was first written, over two whole catalogs: the oracle the
    /// streaming [`Differ`] is checked against.
    fn diff_by_maps(old: &Catalog, new: &Catalog) -> CatalogDiff {
        let mut d = CatalogDiff::default();
        let (old_schemas, new_schemas) = (schemas(old), schemas(new));
        let (old_rels, new_rels) = (relations(old), relations(new));

        for (name, s) in &new_schemas {
            match old_schemas.get(name) {
                None => d.added_schemas.push(name.to_string()),
                Some(o) if o.usable && !s.usable => d.lost_usage.push(name.to_string()),
                Some(o) if !o.usable && s.usable => d.gained_usage.push(name.to_string()),
                Some(_) => {}
            }
        }
        d.removed_schemas =
            old_schemas.keys().filter(|n| !new_schemas.contains_key(*n)).map(|n| n.to_string()).collect();
        // Relations of a schema the user cannot use on one side are hidden there, not absent.
        let hidden_in = |side: &BTreeMap<&str, &Schema>, schema: &str| side.get(schema).is_some_and(|s| !s.usable);

        let keys: BTreeSet<Key<'_>> = old_rels.keys().chain(new_rels.keys()).copied().collect();
        for key in keys {
            match (old_rels.get(&key), new_rels.get(&key)) {
                (Some(o), None) => {
                    if hidden_in(&new_schemas, key.0) {
                        if o.selectable {
                            d.lost_access.push(rel_ref(key, o));
                        }
                    } else {
                        d.removed_relations.push(rel_ref(key, o));
                    }
                }
                (None, Some(n)) => {
                    if hidden_in(&old_schemas, key.0) {
                        if n.selectable {
                            d.gained_access.push(rel_ref(key, n));
                        }
                    } else {
                        d.added_relations.push(rel_ref(key, n));
                    }
                }
                (Some(o), Some(n)) => {
                    if o.selectable && !n.selectable {
                        d.lost_access.push(rel_ref(key, n));
                    } else if !o.selectable && n.selectable {
                        d.gained_access.push(rel_ref(key, n));
                    }
                    let change = compare(key, o, n);
                    if !change.is_empty() {
                        d.changed_relations.push(change);
                    }
                }
                (None, None) => {}
            }
        }
        d
    }

    fn col(name: &str, ty: &str, nullable: bool) -> Column {
        Column {
            name: name.into(),
            type_name: ty.into(),
            nullable,
            default: None,
            comment: None,
            identity: None,
            generated: None,
            lossy_text: false,
        }
    }

    fn rel(name: &str, kind: RelationKind, selectable: bool, columns: Vec<Column>) -> Relation {
        Relation {
            selectable,
            columns: if selectable { columns } else { Vec::new() },
            ..Relation::new(name, kind, "app")
        }
    }

    fn catalog(schemas: Vec<(&str, bool, Vec<Relation>)>) -> Catalog {
        Catalog {
            database: "db".into(),
            server_version: "15".into(),
            server_version_num: 150000,
            user: "u".into(),
            discovered_at: "2026-01-01T00:00:00Z".into(),
            schema_filter: Vec::new(),
            schemas: schemas
                .into_iter()
                .map(|(name, usable, relations)| Schema {
                    name: name.into(),
                    owner: "app".into(),
                    comment: None,
                    usable,
                    relations,
                    lossy_text: false,
                })
                .collect(),
            lossy_text: false,
        }
    }

    fn orders(selectable: bool) -> Relation {
        rel("orders", RelationKind::Table, selectable, vec![col("id", "bigint", false), col("note", "text", true)])
    }

    #[test]
    fn identical_snapshots_have_no_changes() {
        let c = catalog(vec![("public", true, vec![orders(true)])]);
        let d = diff(&c, &c.clone());
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn columns_kinds_and_relations() {
        let old = catalog(vec![(
            "public",
            true,
            vec![
                orders(true),
                rel("gone", RelationKind::Table, true, vec![]),
                rel("v", RelationKind::View, true, vec![col("a", "integer", true)]),
            ],
        )]);
        let mut new_orders = orders(true);
        new_orders.columns = vec![col("id", "integer", false), col("note", "text", false), col("added", "jsonb", true)];
        let new = catalog(vec![
            (
                "public",
                true,
                vec![
                    new_orders,
                    rel("fresh", RelationKind::Table, true, vec![]),
                    rel("v", RelationKind::MaterializedView, true, vec![col("a", "integer", true)]),
                ],
            ),
            ("extra", true, vec![]),
        ]);
        let d = diff(&old, &new);
        assert_eq!(d.added_schemas, vec!["extra"]);
        assert_eq!(d.removed_relations.len(), 1);
        assert_eq!(d.removed_relations[0].name, "gone");
        assert_eq!(d.added_relations[0].name, "fresh");
        let o = d.changed_relations.iter().find(|c| c.name == "orders").expect("orders changed");
        assert_eq!(o.added_columns, vec![AddedColumn { name: "added".into(), type_name: "jsonb".into() }]);
        assert_eq!(
            o.type_changes,
            vec![TypeChange { column: "id".into(), from: "bigint".into(), to: "integer".into() }]
        );
        assert_eq!(o.nullability_changes, vec![NullabilityChange { column: "note".into(), from: true, to: false }]);
        let v = d.changed_relations.iter().find(|c| c.name == "v").expect("v changed");
        assert_eq!(v.kind, Some(KindChange { from: RelationKind::View, to: RelationKind::MaterializedView }));
        assert!(d.lost_access.is_empty() && d.gained_access.is_empty());
    }

    #[test]
    fn access_flips_are_not_column_changes() {
        let old = catalog(vec![("public", true, vec![orders(true)])]);
        let new = catalog(vec![("public", true, vec![orders(false)])]);
        let d = diff(&old, &new);
        assert_eq!(d.lost_access.len(), 1);
        assert_eq!(d.lost_access[0].name, "orders");
        assert!(d.changed_relations.is_empty(), "{d:?}");
        assert!(d.removed_relations.is_empty());
        let back = diff(&new, &old);
        assert_eq!(back.gained_access.len(), 1);
        assert!(back.lost_access.is_empty());
    }

    #[test]
    fn losing_schema_usage_loses_access_to_its_relations() {
        let old = catalog(vec![("sales", true, vec![orders(true), rel("secret", RelationKind::Table, false, vec![])])]);
        let new = catalog(vec![("sales", false, vec![])]);
        let d = diff(&old, &new);
        assert_eq!(d.lost_usage, vec!["sales"]);
        assert_eq!(d.lost_access.len(), 1, "only the selectable one: {d:?}");
        assert!(d.removed_relations.is_empty());
        let back = diff(&new, &old);
        assert_eq!(back.gained_usage, vec!["sales"]);
        assert_eq!(back.gained_access.len(), 1);
        assert!(back.added_relations.is_empty());
    }

    #[test]
    fn partitions_are_compared_too() {
        let mut parent = rel("events", RelationKind::PartitionedTable, true, vec![]);
        let mut p1 = rel("events_2024", RelationKind::Table, true, vec![]);
        p1.schema = Some("public".into());
        parent.partitions.push(p1);
        let old = catalog(vec![("public", true, vec![parent.clone()])]);
        let mut p2 = rel("events_2025", RelationKind::Table, true, vec![]);
        p2.schema = Some("public".into());
        parent.partitions.push(p2);
        let new = catalog(vec![("public", true, vec![parent])]);
        let d = diff(&old, &new);
        assert_eq!(d.added_relations.len(), 1);
        assert_eq!(d.added_relations[0].name, "events_2025");
    }

    /// A small deterministic generator (xorshift), so a failing case can be replayed.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }

        fn chance(&mut self, percent: u64) -> bool {
            self.next(100) < percent
        }

        /// Few names, so that two catalogs share most of them and every outcome occurs.
        fn relation(&mut self, name: &str, schema: Option<&str>) -> Relation {
            let mut columns = Vec::new();
            for c in ["id", "note", "total"] {
                if self.chance(70) {
                    let ty = if self.chance(50) { "text" } else { "bigint" };
                    columns.push(col(c, ty, self.chance(50)));
                }
            }
            let kind = if self.chance(80) { RelationKind::Table } else { RelationKind::View };
            let mut r = rel(name, kind, self.chance(75), columns);
            r.schema = schema.map(Into::into);
            r
        }

        fn catalog(&mut self) -> Catalog {
            let names = ["a", "b", "c", "d"];
            let mut schemas = Vec::new();
            for schema in names {
                if !self.chance(70) {
                    continue;
                }
                let usable = self.chance(80);
                let mut relations = Vec::new();
                for t in ["t1", "t2", "t3", "t4"] {
                    if usable && self.chance(60) {
                        relations.push(self.relation(t, None));
                    }
                }
                // A partitioned table whose partitions may live in another schema.
                if usable && self.chance(50) {
                    let mut parent = rel("events", RelationKind::PartitionedTable, true, vec![]);
                    for p in ["p1", "p2"] {
                        if self.chance(60) {
                            let home = names[self.next(4) as usize];
                            // Named after the parent's schema: a (schema, name) pair is unique.
                            let name = format!("events_{schema}_{p}");
                            parent.partitions.push(self.relation(&name, Some(home)));
                        }
                    }
                    relations.push(parent);
                }
                schemas.push((schema, usable, relations));
            }
            catalog(schemas)
        }
    }

    #[test]
    fn the_streaming_comparison_agrees_with_the_whole_one() {
        let mut g = Gen(0x9e37_79b9_7f4a_7c15);
        let mut nonempty = 0;
        for case in 0..2000 {
            let (old, new) = (g.catalog(), g.catalog());
            let expected = diff_by_maps(&old, &new);
            assert_eq!(diff(&old, &new), expected, "case {case}: {old:?} -> {new:?}");
            let read = diff_from_reader(old.to_json().as_bytes(), "old", &new).expect("a snapshot");
            assert_eq!(read, expected, "case {case}, read back: {old:?} -> {new:?}");
            nonempty += usize::from(!expected.is_empty());
        }
        // The generator makes changes of every kind, not a run of identical pairs.
        assert!(nonempty > 1500, "{nonempty}");
    }

    #[test]
    fn schemas_read_back_unchanged_are_matched_unparsed_and_agree() {
        let mut g = Gen(0x2545_f491_4f6c_dd1d);
        let (mut kept, mut changed) = (0, 0);
        for case in 0..1000 {
            let old = g.catalog();
            let other = g.catalog();
            // The new catalog: the old one with some schemas taken from another catalog instead.
            let mut new = old.clone();
            for s in &mut new.schemas {
                if g.chance(30) {
                    if let Some(o) = other.schemas.iter().find(|o| o.name == s.name) {
                        *s = o.clone();
                    }
                }
            }
            let expected = diff_by_maps(&old, &new);
            let read = diff_from_reader(old.to_json().as_bytes(), "old", &new).expect("a snapshot");
            assert_eq!(read, expected, "case {case}: {old:?} -> {new:?}");
            let mut differ = Differ::new(&new);
            let mut buf = Vec::new();
            for s in &old.schemas {
                let json = serde_json::to_string(s).expect("json");
                if differ.same_as_new(&json, &mut buf) {
                    assert_eq!(new.schemas.iter().find(|n| n.name == s.name), Some(s), "case {case}");
                    kept += 1;
                } else {
                    assert_ne!(new.schemas.iter().find(|n| n.name == s.name), Some(s), "case {case}");
                    changed += 1;
                }
            }
        }
        assert!(kept > 1000 && changed > 200, "{kept} kept, {changed} changed");
        // A schema whose JSON is not the new one's, even by a space, is parsed and compared.
        let new = catalog(vec![("public", true, vec![orders(true)])]);
        let json = serde_json::to_string(&new.schemas[0]).expect("json");
        let mut differ = Differ::new(&new);
        assert!(!differ.same_as_new(&json.replacen(':', ": ", 1), &mut Vec::new()));
        assert!(!differ.same_as_new("{\"name\": 3}", &mut Vec::new()));
        assert!(!differ.same_as_new("{\"name\":3}", &mut Vec::new()));
        assert!(!differ.same_as_new("{\"name\":\"gone\",\"usable\":true}", &mut Vec::new()));
        let reordered = json.replacen("{\"name\":\"public\",", "{", 1).replacen('}', ",\"name\":\"public\"}", 1);
        assert!(!differ.same_as_new(&reordered, &mut Vec::new()), "{reordered}");
        assert!(differ.same_as_new(&json, &mut Vec::new()));
        assert!(differ.finish().is_empty(), "the one schema was found as it is");
    }

    #[test]
    fn every_kind_of_change_is_generated() {
        let mut g = Gen(0x9e37_79b9_7f4a_7c15);
        let mut seen = [0usize; 9];
        for _ in 0..2000 {
            let d = diff(&g.catalog(), &g.catalog());
            let lens = [
                d.added_schemas.len(),
                d.removed_schemas.len(),
                d.lost_usage.len(),
                d.gained_usage.len(),
                d.added_relations.len(),
                d.removed_relations.len(),
                d.lost_access.len(),
                d.gained_access.len(),
                d.changed_relations.len(),
            ];
            for (s, l) in seen.iter_mut().zip(lens) {
                *s += l;
            }
        }
        assert!(seen.iter().all(|n| *n > 0), "{seen:?}");
    }

    #[test]
    fn a_document_that_is_not_a_snapshot_is_refused_by_name() {
        let new = catalog(vec![("public", true, vec![orders(true)])]);
        for (text, why) in [
            ("{\"database\": \"db\"}", "missing field `schemas`"),
            ("{\"schemas\": [{\"name\": 3}]}", "invalid type"),
            ("{\"schemas\": []", "EOF"),
            ("{\"schemas\": [], \"schemas\": []}", "duplicate field"),
            ("{\"schemas\": []} trailing", "trailing characters"),
        ] {
            let e = diff_from_reader(text.as_bytes(), "previous snapshot", &new).expect_err(text);
            let message = e.to_string();
            assert!(message.starts_with("previous snapshot is not a catalog snapshot"), "{message}");
            assert!(message.contains(why), "{text}: {message}");
        }
        // Members other than `schemas` are skipped, whatever they hold.
        let d = diff_from_reader(&b"{\"extra\": {\"x\": [1, 2]}, \"schemas\": []}"[..], "old", &new).expect("read");
        assert_eq!(d.added_schemas, ["public"]);
        assert_eq!(d.added_relations.len(), 1);
    }
}
