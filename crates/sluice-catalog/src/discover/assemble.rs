//! Assembling the folded rows into the [`Catalog`](crate::model::Catalog) tree: constraint and
//! index keys named, partitions hung under their parents, everything sorted.

use std::collections::HashMap;

use sluice_connect::SessionInfo;

use super::fold::{Access, Builder, Rel};
use super::DiscoverOptions;
use crate::model::{Catalog, ForeignKey, Index, Relation, RelationKind, Schema, Text};
use crate::CatalogError;

impl Builder {
    pub(super) fn finish(mut self, info: &SessionInfo, opts: &DiscoverOptions) -> Result<Catalog, CatalogError> {
        if !opts.schemas.is_empty() {
            let mut missing: Vec<String> =
                opts.schemas.iter().filter(|want| !self.schemas.iter().any(|s| s.name == **want)).cloned().collect();
            if !missing.is_empty() {
                missing.sort();
                missing.dedup();
                return Err(CatalogError::SchemaNotFound { names: missing });
            }
        }

        for rel in &mut self.rels {
            for col in &mut rel.relation.columns {
                let (name, lossy) = self.types.named(&col.type_name)?;
                col.type_name = name.clone();
                col.lossy_text |= lossy;
            }
            rel.sort_columns();
            for (attnum, expr, lossy) in std::mem::take(&mut rel.defaults) {
                let Some(col) = rel.position(attnum).and_then(|i| rel.relation.columns.get_mut(i)) else {
                    continue;
                };
                col.lossy_text |= lossy;
                match &mut col.generated {
                    Some(g) => g.expression = expr,
                    None => col.default = Some(expr),
                }
            }
            for (attnum, text, lossy) in std::mem::take(&mut rel.column_comments) {
                if let Some(col) = rel.position(attnum).and_then(|i| rel.relation.columns.get_mut(i)) {
                    col.comment = Some(text);
                    col.lossy_text |= lossy;
                }
            }
        }

        self.resolve_constraints();
        for rel in &mut self.rels {
            finish_relation(rel);
        }

        // Inheritance: partitions hang under their parent; other children name their parents.
        self.inherits.sort_unstable_by_key(|i| (i.child, i.position));
        let mut parent_of: HashMap<u32, u32> = HashMap::new();
        for row in std::mem::take(&mut self.inherits) {
            let Some(&i) = self.by_oid.get(&row.child) else {
                continue;
            };
            let Some(rel) = self.rels.get_mut(i) else {
                continue;
            };
            rel.relation.lossy_text |= row.lossy;
            if rel.is_partition {
                parent_of.insert(row.child, row.parent);
                rel.relation.partition_of = Some(row.parent_name);
            } else {
                rel.relation.inherits.push(row.parent_name);
            }
        }

        let schema_names: HashMap<u32, &Text> = self.schemas.iter().map(|s| (s.oid, &s.name)).collect();
        let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
        let mut top: Vec<usize> = Vec::new();
        for (i, rel) in self.rels.iter().enumerate() {
            match parent_of.get(&rel.oid).and_then(|p| self.by_oid.get(p)) {
                Some(&parent) => children.entry(parent).or_default().push(i),
                None => top.push(i),
            }
        }
        // Each schema's list made at its final size: grown by doubling, a third of it would be
        // empty room while the whole tree is held (20 MB over 100,000 tables).
        let mut by_schema: HashMap<u32, Vec<Relation>> = HashMap::new();
        let mut counts: HashMap<u32, usize> = HashMap::new();
        for &i in &top {
            if let Some(rel) = self.rels.get(i) {
                *counts.entry(rel.namespace).or_default() += 1;
            }
        }
        for (namespace, n) in counts {
            by_schema.entry(namespace).or_default().reserve_exact(n);
        }
        for i in top {
            if let Some((namespace, relation)) = assemble(i, &mut self.rels, &children, &schema_names, false) {
                by_schema.entry(namespace).or_default().push(relation);
            }
        }
        drop(schema_names);
        drop(std::mem::take(&mut self.rels));

        let mut schemas: Vec<Schema> = self
            .schemas
            .into_iter()
            .map(|s| {
                let mut relations = by_schema.remove(&s.oid).unwrap_or_default();
                relations.sort_unstable_by(|a, b| a.name.cmp(&b.name));
                Schema {
                    name: s.name,
                    owner: s.owner,
                    comment: s.comment,
                    usable: s.usable,
                    relations,
                    lossy_text: s.lossy,
                }
            })
            .collect();
        schemas.sort_unstable_by(|a, b| a.name.cmp(&b.name));

        let mut schema_filter = opts.schemas.clone();
        schema_filter.sort();
        schema_filter.dedup();
        let lossy_text =
            self.meta_lossy || schemas.iter().any(|s| s.lossy_text || s.relations.iter().any(relation_lossy));
        Ok(Catalog {
            lossy_text,
            database: self.database,
            server_version: info.server_version.clone(),
            server_version_num: info.server_version_num,
            user: self.user,
            discovered_at: self.discovered_at,
            schema_filter,
            schemas,
        })
    }

    /// Primary keys, unique constraints and foreign keys, with column names, onto their
    /// relations.
    fn resolve_constraints(&mut self) {
        let mut constraints = std::mem::take(&mut self.constraints);
        let owner_of: HashMap<u32, u32> = constraints.iter().map(|c| (c.oid, c.rel)).collect();
        constraints.sort_unstable_by(|a, b| (a.rel, &a.name).cmp(&(b.rel, &b.name)));
        let schema_names: HashMap<u32, (&Text, bool)> =
            self.schemas.iter().map(|s| (s.oid, (&s.name, s.name_lossy))).collect();
        let mut resolved: Vec<(usize, Resolved, bool)> = Vec::with_capacity(constraints.len());
        for con in constraints {
            let Some(&i) = self.by_oid.get(&con.rel) else {
                continue;
            };
            let Some(rel) = self.rels.get(i) else {
                continue;
            };
            let columns = rel.names(&con.key);
            let mut lossy = con.lossy || rel.names_lossy(&con.key);
            let item = match con.kind {
                b'p' => Resolved::PrimaryKey(columns),
                b'u' => Resolved::Unique(columns),
                b'f' => {
                    // A foreign key that references a partitioned table has one extra row per
                    // referenced partition, all children of the real one on the same table.
                    if con.parent != 0 && owner_of.get(&con.parent) == Some(&con.rel) {
                        continue;
                    }
                    let (ref_schema, ref_table, ref_columns) = match con.foreign_ref {
                        Some(mut names) if names.len() >= 2 => {
                            let rest = names.split_off(2);
                            let mut two = names.into_iter();
                            (two.next().unwrap_or_default(), two.next().unwrap_or_default(), rest)
                        }
                        _ => match self.rel(con.ref_rel) {
                            Some(r) => {
                                let (schema, schema_lossy) = match schema_names.get(&r.namespace) {
                                    Some((schema, lossy)) => ((*schema).clone(), *lossy),
                                    None => (Text::default(), false),
                                };
                                lossy |= schema_lossy || r.name_lossy || r.names_lossy(&con.ref_key);
                                (schema, r.relation.name.clone(), r.names(&con.ref_key))
                            }
                            None => (
                                Text::default(),
                                Text::from(format!("#{}", con.ref_rel)),
                                con.ref_key.iter().map(|n| Text::from(format!("#{n}"))).collect(),
                            ),
                        },
                    };
                    Resolved::ForeignKey(ForeignKey {
                        name: con.name,
                        columns,
                        ref_schema,
                        ref_table,
                        ref_columns,
                        on_update: con.on_update,
                        on_delete: con.on_delete,
                    })
                }
                _ => continue,
            };
            resolved.push((i, item, lossy));
        }
        for (i, item, lossy) in resolved {
            let Some(rel) = self.rels.get_mut(i) else {
                continue;
            };
            rel.keys_lossy |= lossy;
            match item {
                Resolved::PrimaryKey(cols) => rel.relation.primary_key = Some(cols),
                Resolved::Unique(cols) => push_short(&mut rel.relation.unique, cols),
                Resolved::ForeignKey(fk) => push_short(&mut rel.relation.foreign_keys, fk),
            }
        }
    }
}

/// Pushes onto a list that usually holds one item or none (a table's foreign keys, its unique
/// keys): the first push makes room for one, where `Vec` would make room for four.
pub(super) fn push_short<T>(list: &mut Vec<T>, item: T) {
    if list.capacity() == 0 {
        list.reserve_exact(1);
    }
    list.push(item);
}

enum Resolved {
    PrimaryKey(Vec<Text>),
    Unique(Vec<Text>),
    ForeignKey(ForeignKey),
}

/// Names index columns, then applies access: a relation the user cannot select keeps no
/// columns, keys or indexes; one with column grants keeps the granted columns.
fn finish_relation(rel: &mut Rel) {
    if rel.access == Access::None {
        let r = &mut rel.relation;
        r.columns = Vec::new();
        r.primary_key = None;
        r.unique = Vec::new();
        r.foreign_keys = Vec::new();
        rel.indexes = Vec::new();
        return;
    }
    rel.relation.lossy_text |= rel.keys_lossy;
    let mut indexes: Vec<Index> = std::mem::take(&mut rel.indexes)
        .into_iter()
        .map(|ix| {
            let split = ix.key_count.min(ix.key.len());
            let (key, include) = ix.key.split_at(split);
            let plain: Vec<i16> = key.iter().copied().filter(|n| *n != 0).collect();
            let has_expression = plain.len() != key.len();
            rel.relation.lossy_text |= ix.lossy || rel.names_lossy(&plain) || rel.names_lossy(include);
            Index {
                columns: rel.names(&plain),
                include: rel.names(include),
                expression: if has_expression { ix.definition } else { None },
                name: ix.name,
                unique: ix.unique,
                primary: ix.primary,
                method: ix.method,
                predicate: ix.predicate,
            }
        })
        .collect();
    indexes.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    rel.relation.indexes = indexes;
    if rel.access == Access::Columns {
        let grants = std::mem::take(&mut rel.grants);
        let mut keep = grants.into_iter();
        rel.relation.columns.retain(|_| keep.next().flatten() == Some(true));
    }
}

/// Whether a relation, one of its columns or partitions holds text that was not UTF-8.
fn relation_lossy(r: &Relation) -> bool {
    r.lossy_text || r.columns.iter().any(|c| c.lossy_text) || r.partitions.iter().any(relation_lossy)
}

/// Takes relation `i` out of `rels` with its partitions (recursively) nested under it.
fn assemble(
    i: usize,
    rels: &mut [Rel],
    children: &HashMap<usize, Vec<usize>>,
    schema_names: &HashMap<u32, &Text>,
    nested: bool,
) -> Option<(u32, Relation)> {
    let rel = rels.get_mut(i).filter(|r| !r.taken)?;
    rel.taken = true;
    let namespace = rel.namespace;
    let mut relation = std::mem::replace(&mut rel.relation, empty_relation());
    if nested {
        relation.schema = schema_names.get(&namespace).map(|s| (*s).clone());
    }
    for child in children.get(&i).into_iter().flatten() {
        if let Some((_, partition)) = assemble(*child, rels, children, schema_names, true) {
            relation.partitions.push(partition);
        }
    }
    relation.partitions.sort_unstable_by(|a, b| (&a.name, &a.schema).cmp(&(&b.name, &b.schema)));
    if relation.kind == RelationKind::PartitionedTable && relation.size_bytes.is_none() {
        relation.size_bytes =
            relation.partitions.iter().filter_map(|p| p.size_bytes).reduce(|a, b| a.saturating_add(b));
    }
    Some((namespace, relation))
}

/// What a relation's slot holds once the relation has moved into the tree (allocates nothing).
fn empty_relation() -> Relation {
    Relation::new(Text::default(), RelationKind::Table, Text::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Column;

    fn col(name: &str) -> Column {
        Column {
            name: name.into(),
            type_name: "integer".into(),
            nullable: true,
            default: None,
            comment: None,
            identity: None,
            generated: None,
            lossy_text: false,
        }
    }

    fn rel(columns: &[(i16, &str)], access: Access) -> Rel {
        let mut relation = empty_relation();
        relation.columns = columns.iter().map(|(_, n)| col(n)).collect();
        Rel {
            oid: 1,
            namespace: 1,
            access,
            is_partition: false,
            relation,
            attnums: columns.iter().map(|(a, _)| *a).collect(),
            grants: if access == Access::Columns {
                columns.iter().map(|(a, _)| Some(*a != 2)).collect()
            } else {
                Vec::new()
            },
            defaults: Vec::new(),
            column_comments: Vec::new(),
            indexes: Vec::new(),
            name_lossy: false,
            lossy_attnames: Vec::new(),
            keys_lossy: false,
            taken: false,
        }
    }

    #[test]
    fn columns_arriving_out_of_order_are_sorted_with_their_grants() {
        let mut r = rel(&[(3, "c"), (1, "a"), (2, "b")], Access::Columns);
        r.sort_columns();
        assert_eq!(r.attnums, vec![1, 2, 3]);
        let names: Vec<&str> = r.relation.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, vec!["a", "b", "c"]);
        assert_eq!(r.grants, vec![Some(true), Some(false), Some(true)]);
        assert_eq!(r.names(&[3, 1, 9]), vec!["c", "a", "#9"]);
        finish_relation(&mut r);
        let kept: Vec<&str> = r.relation.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(kept, vec!["a", "c"], "only granted columns stay");
    }

    #[test]
    fn an_unselectable_relation_keeps_nothing_but_its_name() {
        let mut r = rel(&[(1, "a")], Access::None);
        r.relation.primary_key = Some(vec!["a".into()]);
        finish_relation(&mut r);
        assert!(r.relation.columns.is_empty() && r.relation.primary_key.is_none());
    }
}
