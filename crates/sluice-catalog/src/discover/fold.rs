//! Folding the batch's rows, as they stream in, into per-relation builders.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;
use std::str::FromStr;

use sluice_connect::tokio_postgres::SimpleQueryRow;

use crate::model::{
    Column, FkAction, Generated, GeneratedKind, Identity, Interner, QualifiedName, Relation, RelationKind, Text,
};
use crate::sql::Statement;
use crate::CatalogError;

/// Typed access to one text-format row, with errors that name the statement and column.
pub(super) struct Cells<'a> {
    pub(super) row: &'a SimpleQueryRow,
    pub(super) statement: Statement,
    /// Text values arrive escaped (a `SQL_ASCII` database).
    pub(super) escaped: bool,
    /// Some text value read so far was not UTF-8 (see [`Cells::take_lossy`]).
    pub(super) lossy: Cell<bool>,
}

impl<'a> Cells<'a> {
    pub(super) fn err(&self, detail: String) -> CatalogError {
        CatalogError::Protocol { statement: self.statement.name(), detail }
    }

    pub(super) fn get(&self, i: usize) -> Result<Option<&'a str>, CatalogError> {
        self.row.try_get(i).map_err(|e| self.err(format!("column {i}: {e}")))
    }

    pub(super) fn text(&self, i: usize) -> Result<&'a str, CatalogError> {
        self.get(i)?.ok_or_else(|| self.err(format!("column {i} is null")))
    }

    /// A comment or expression (a column the batch sends through `sql::txt`).
    pub(super) fn string(&self, i: usize) -> Result<Text, CatalogError> {
        self.decoded(i).map(|s| Text::from(s.as_ref()))
    }

    /// A name that may repeat (a column or type name, an owner): the interner's shared copy.
    pub(super) fn shared(&self, i: usize, interner: &mut Interner) -> Result<Text, CatalogError> {
        self.decoded(i).map(|s| interner.text(&s))
    }

    pub(super) fn opt_string(&self, i: usize) -> Result<Option<Text>, CatalogError> {
        match self.get(i)? {
            None => Ok(None),
            Some(_) => self.string(i).map(Some),
        }
    }

    fn decoded(&self, i: usize) -> Result<Cow<'a, str>, CatalogError> {
        let text = self.text(i)?;
        self.decode(text).map_err(|detail| self.err(format!("column {i}: {detail}")))
    }

    /// Names from a `text[]` of escaped names.
    pub(super) fn names(&self, i: usize) -> Result<Vec<Text>, CatalogError> {
        self.parsed(i, crate::text::parse_name_array)?
            .iter()
            .map(|n| {
                self.decode(n)
                    .map(|s| Text::from(s.as_ref()))
                    .map_err(|detail| self.err(format!("column {i}: {detail}")))
            })
            .collect()
    }

    pub(super) fn decode<'t>(&self, text: &'t str) -> Result<Cow<'t, str>, String> {
        if !self.escaped {
            return Ok(Cow::Borrowed(text));
        }
        let (decoded, lossy) = crate::text::unescape_bytes(text)?;
        if lossy {
            self.lossy.set(true);
        }
        Ok(Cow::Owned(decoded))
    }

    /// Whether a text value read since the last call was not UTF-8; resets.
    pub(super) fn take_lossy(&self) -> bool {
        self.lossy.replace(false)
    }

    pub(super) fn num<T: FromStr>(&self, i: usize) -> Result<T, CatalogError> {
        let s = self.text(i)?;
        s.parse().map_err(|_| self.err(format!("column {i}: `{s}` is not a number")))
    }

    pub(super) fn opt_num<T: FromStr>(&self, i: usize) -> Result<Option<T>, CatalogError> {
        match self.get(i)? {
            None => Ok(None),
            Some(_) => self.num(i).map(Some),
        }
    }

    pub(super) fn opt_bool(&self, i: usize) -> Result<Option<bool>, CatalogError> {
        match self.get(i)? {
            None => Ok(None),
            Some("t") => Ok(Some(true)),
            Some("f") => Ok(Some(false)),
            Some(s) => Err(self.err(format!("column {i}: `{s}` is not a boolean"))),
        }
    }

    pub(super) fn bool(&self, i: usize) -> Result<bool, CatalogError> {
        self.opt_bool(i)?.ok_or_else(|| self.err(format!("column {i} is null")))
    }

    pub(super) fn parsed<T>(&self, i: usize, parse: fn(&str) -> Result<T, String>) -> Result<T, CatalogError> {
        parse(self.text(i)?).map_err(|e| self.err(format!("column {i}: {e}")))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// SELECT on the table.
    Table,
    /// SELECT on some columns only.
    Columns,
    None,
}

pub(super) struct SchemaRow {
    pub(super) oid: u32,
    pub(super) name: Text,
    pub(super) owner: Text,
    pub(super) usable: bool,
    pub(super) comment: Option<Text>,
    pub(super) name_lossy: bool,
    pub(super) lossy: bool,
}

/// One relation while its rows arrive. `relation` is already the output value; the rest is what
/// finishing it needs.
pub(super) struct Rel {
    pub(super) oid: u32,
    pub(super) namespace: u32,
    pub(super) access: Access,
    pub(super) is_partition: bool,
    pub(super) relation: Relation,
    /// attnum of each entry of `relation.columns`.
    pub(super) attnums: Vec<i16>,
    /// Column-level grant of each entry of `relation.columns` (`None`: no column ACL).
    pub(super) grants: Vec<Option<bool>>,
    /// (attnum, expression, lossy), applied once the columns are in order.
    pub(super) defaults: Vec<(i16, Text, bool)>,
    /// (attnum, comment, lossy), likewise.
    pub(super) column_comments: Vec<(i16, Text, bool)>,
    pub(super) indexes: Vec<IndexRow>,
    /// Its name was not UTF-8.
    pub(super) name_lossy: bool,
    /// attnums of the columns whose names were not UTF-8 (almost always none).
    pub(super) lossy_attnames: Vec<i16>,
    /// A key, constraint or inheritance row held text that was not UTF-8; it counts once it is
    /// known what the user may see.
    pub(super) keys_lossy: bool,
    /// Set once `relation` has been moved into the tree.
    pub(super) taken: bool,
}

impl Rel {
    /// Puts the columns in attnum order (they almost always arrive in it).
    pub(super) fn sort_columns(&mut self) {
        if self.attnums.windows(2).all(|w| w[0] < w[1]) {
            return;
        }
        let mut order: Vec<usize> = (0..self.attnums.len()).collect();
        order.sort_by_key(|&i| self.attnums.get(i).copied());
        let mut columns: Vec<Option<Column>> =
            std::mem::take(&mut self.relation.columns).into_iter().map(Some).collect();
        let attnums = std::mem::take(&mut self.attnums);
        let grants = std::mem::take(&mut self.grants);
        for i in order {
            if let Some(c) = columns.get_mut(i).and_then(Option::take) {
                self.relation.columns.push(c);
            }
            self.attnums.extend(attnums.get(i));
            self.grants.extend(grants.get(i));
        }
    }

    /// Whether any of these columns' names was not UTF-8.
    pub(super) fn names_lossy(&self, key: &[i16]) -> bool {
        !self.lossy_attnames.is_empty() && key.iter().any(|n| self.lossy_attnames.contains(n))
    }

    pub(super) fn position(&self, attnum: i16) -> Option<usize> {
        self.attnums.binary_search(&attnum).ok()
    }

    /// Column names for attnums; `#n` for an attnum that is not there, which only a catalog
    /// changing under the snapshot could cause.
    pub(super) fn names(&self, key: &[i16]) -> Vec<Text> {
        key.iter()
            .map(|n| {
                self.position(*n)
                    .and_then(|i| self.relation.columns.get(i))
                    .map_or_else(|| Text::from(format!("#{n}")), |c| c.name.clone())
            })
            .collect()
    }
}

pub(super) struct ConstraintRow {
    pub(super) oid: u32,
    pub(super) rel: u32,
    pub(super) name: Text,
    pub(super) kind: u8,
    pub(super) key: Vec<i16>,
    pub(super) ref_rel: u32,
    pub(super) ref_key: Vec<i16>,
    pub(super) on_update: FkAction,
    pub(super) on_delete: FkAction,
    pub(super) parent: u32,
    /// For a foreign key to another schema: [schema, table, column…] from SQL.
    pub(super) foreign_ref: Option<Vec<Text>>,
    pub(super) lossy: bool,
}

pub(super) struct IndexRow {
    pub(super) name: Text,
    pub(super) unique: bool,
    pub(super) primary: bool,
    pub(super) key: Vec<i16>,
    pub(super) key_count: usize,
    pub(super) method: Text,
    pub(super) definition: Option<Text>,
    pub(super) predicate: Option<Text>,
    pub(super) lossy: bool,
}

pub(super) struct InheritRow {
    pub(super) child: u32,
    pub(super) parent: u32,
    pub(super) position: i32,
    pub(super) parent_name: QualifiedName,
    pub(super) lossy: bool,
}

#[derive(Default)]
pub(super) struct Builder {
    /// Text values arrive escaped (a `SQL_ASCII` database); known from the first row.
    pub(super) escaped: bool,
    pub(super) database: String,
    pub(super) user: String,
    /// The database or user name was not UTF-8.
    pub(super) meta_lossy: bool,
    pub(super) discovered_at: String,
    pub(super) schemas: Vec<SchemaRow>,
    pub(super) rels: Vec<Rel>,
    pub(super) by_oid: HashMap<u32, usize>,
    /// The last relation looked up: rows of one relation arrive together.
    pub(super) last: Option<(u32, usize)>,
    pub(super) constraints: Vec<ConstraintRow>,
    pub(super) inherits: Vec<InheritRow>,
    /// One copy of each repeated name (column names, owners, index methods).
    pub(super) interner: Interner,
    /// The column types met, each distinct (type OID, typmod) once.
    pub(super) types: Types,
}

/// The column types met while the columns stream in, named once they are all in.
///
/// Until then a column's `type_name` is a placeholder shared by every column of its type: a NUL
/// and the type's number here. No type name holds a NUL (PostgreSQL's text cannot), so a
/// placeholder is never taken for a name, and it costs no memory of its own per column.
#[derive(Default)]
pub(super) struct Types {
    /// Each distinct (type OID, typmod), in the order met.
    pub(super) keys: Vec<(u32, i32)>,
    index: HashMap<(u32, i32), u32>,
    /// The placeholder of each entry of `keys`.
    placeholders: Vec<Text>,
    /// The name of each entry of `keys` (`format_type()`), and whether it was not UTF-8.
    names: Vec<Option<(Text, bool)>>,
}

impl Types {
    /// The placeholder for a column of this type.
    fn placeholder(&mut self, key: (u32, i32)) -> Text {
        if let Some(p) = self.index.get(&key).and_then(|&id| self.placeholders.get(id as usize)) {
            return p.clone();
        }
        let id = self.keys.len() as u32;
        let placeholder = Text::from(format!("\0{id}"));
        self.keys.push(key);
        self.index.insert(key, id);
        self.placeholders.push(placeholder.clone());
        self.names.push(None);
        placeholder
    }

    fn name(&mut self, key: (u32, i32), name: Text, lossy: bool) {
        if let Some(slot) = self.index.get(&key).and_then(|&id| self.names.get_mut(id as usize)) {
            *slot = Some((name, lossy));
        }
    }

    /// The name a placeholder stands for, and whether it was not UTF-8.
    pub(super) fn named(&self, placeholder: &str) -> Result<&(Text, bool), CatalogError> {
        let id: usize =
            placeholder.strip_prefix('\0').and_then(|n| n.parse().ok()).ok_or_else(|| CatalogError::Protocol {
                statement: Statement::TypeNames.name(),
                detail: format!("`{placeholder}` is not a type's placeholder"),
            })?;
        self.names.get(id).and_then(Option::as_ref).ok_or_else(|| {
            let (oid, typmod) = self.keys.get(id).copied().unwrap_or((0, -1));
            CatalogError::Protocol {
                statement: Statement::TypeNames.name(),
                detail: format!("no name came for type {oid} (typmod {typmod})"),
            }
        })
    }
}

impl Builder {
    pub(super) fn rel_mut(&mut self, oid: u32) -> Option<&mut Rel> {
        let i = match self.last {
            Some((o, i)) if o == oid => i,
            _ => {
                let i = *self.by_oid.get(&oid)?;
                self.last = Some((oid, i));
                i
            }
        };
        self.rels.get_mut(i)
    }

    pub(super) fn rel(&self, oid: u32) -> Option<&Rel> {
        self.by_oid.get(&oid).and_then(|i| self.rels.get(*i))
    }

    pub(super) fn row(&mut self, c: Cells<'_>) -> Result<(), CatalogError> {
        match c.statement {
            Statement::Meta => {
                self.escaped = c.text(3)? == "SQL_ASCII";
                let c = Cells { escaped: self.escaped, ..c };
                self.database = c.string(0)?.into();
                self.user = c.string(1)?.into();
                self.meta_lossy = c.take_lossy();
                self.discovered_at = c.text(2)?.to_string();
            }
            Statement::Schemas => {
                let name = c.string(1)?;
                let name_lossy = c.take_lossy();
                self.schemas.push(SchemaRow {
                    oid: c.num(0)?,
                    name,
                    owner: c.shared(2, &mut self.interner)?,
                    usable: c.bool(3)?,
                    comment: c.opt_string(4)?,
                    name_lossy,
                    lossy: name_lossy || c.take_lossy(),
                });
            }
            Statement::Relations => self.relation_row(&c)?,
            Statement::Columns => {
                let oid = c.num(0)?;
                let attnum: i16 = c.num(1)?;
                let name = c.shared(2, &mut self.interner)?;
                let name_lossy = c.take_lossy();
                let column = Column {
                    name,
                    type_name: self.types.placeholder((c.num(3)?, c.num(4)?)),
                    nullable: !c.bool(5)?,
                    default: None,
                    comment: None,
                    identity: match c.text(6)? {
                        "a" => Some(Identity::Always),
                        "d" => Some(Identity::ByDefault),
                        _ => None,
                    },
                    generated: match c.text(7)? {
                        "s" => Some(GeneratedKind::Stored),
                        "v" => Some(GeneratedKind::Virtual),
                        _ => None,
                    }
                    .map(|kind| Box::new(Generated { kind, expression: Text::default() })),
                    lossy_text: name_lossy || c.take_lossy(),
                };
                let grant = c.opt_bool(8)?;
                if let Some(rel) = self.rel_mut(oid) {
                    if name_lossy {
                        rel.lossy_attnames.push(attnum);
                    }
                    rel.attnums.push(attnum);
                    rel.relation.columns.push(column);
                    if rel.access == Access::Columns {
                        rel.grants.push(grant);
                    }
                }
            }
            Statement::Defaults => {
                let oid = c.num(0)?;
                let attnum = c.num(1)?;
                let expr = c.opt_string(2)?;
                let lossy = c.take_lossy();
                if let (Some(rel), Some(expr)) = (self.rel_mut(oid), expr) {
                    rel.defaults.push((attnum, expr, lossy));
                }
            }
            Statement::Comments => {
                let oid = c.num(0)?;
                let attnum: i16 = c.num(1)?;
                if let Some(rel) = self.rel_mut(oid) {
                    let text = c.string(2)?;
                    let lossy = c.take_lossy();
                    if attnum == 0 {
                        rel.relation.comment = Some(text);
                        rel.relation.lossy_text |= lossy;
                    } else {
                        rel.column_comments.push((attnum, text, lossy));
                    }
                }
            }
            Statement::Constraints => {
                let kind = c.text(3)?.bytes().next().unwrap_or(b'?');
                let ref_key = match c.get(6)? {
                    Some(_) => c.parsed(6, crate::text::parse_int2_array)?,
                    None => Vec::new(),
                };
                let foreign_ref = match c.get(10)? {
                    Some(_) => Some(c.names(10)?),
                    None => None,
                };
                let name = c.string(2)?;
                self.constraints.push(ConstraintRow {
                    oid: c.num(0)?,
                    rel: c.num(1)?,
                    name,
                    kind,
                    key: c.parsed(4, crate::text::parse_int2_array)?,
                    ref_rel: c.num(5)?,
                    ref_key,
                    on_update: FkAction::from_code(c.text(7)?),
                    on_delete: FkAction::from_code(c.text(8)?),
                    parent: c.num(9)?,
                    foreign_ref,
                    lossy: c.take_lossy(),
                });
            }
            Statement::Indexes => {
                let oid = c.num(0)?;
                let index = IndexRow {
                    name: c.string(1)?,
                    unique: c.bool(2)?,
                    primary: c.bool(3)?,
                    key: c.parsed(4, crate::text::parse_int2vector)?,
                    key_count: c.num(5)?,
                    method: match c.get(6)? {
                        Some(_) => c.shared(6, &mut self.interner)?,
                        None => Text::default(),
                    },
                    definition: c.opt_string(7)?,
                    predicate: c.opt_string(8)?,
                    lossy: c.take_lossy(),
                };
                if let Some(rel) = self.rel_mut(oid) {
                    // Most relations have one index, or none: a first push would make room
                    // for four (300 bytes a table wasted, 30 MB over 100,000 tables).
                    super::assemble::push_short(&mut rel.indexes, index);
                }
            }
            Statement::Inherits => {
                let child = c.num(0)?;
                if self.by_oid.contains_key(&child) {
                    self.inherits.push(InheritRow {
                        child,
                        parent: c.num(1)?,
                        position: c.num(2)?,
                        parent_name: QualifiedName { schema: c.string(3)?, name: c.string(4)? },
                        lossy: c.take_lossy(),
                    });
                }
            }
            Statement::TypeNames => {
                let key = (c.num(0)?, c.num(1)?);
                let name = c.string(2)?;
                let lossy = c.take_lossy();
                self.types.name(key, name, lossy);
            }
            Statement::Settings | Statement::Split => {}
        }
        Ok(())
    }

    /// A statement's rows are all in. The lists they filled grew by doubling, so up to half of
    /// each is empty room; it is given back before the next statements' rows arrive (with
    /// 100,000 tables, 27 MB of the peak).
    pub(super) fn statement_done(&mut self, statement: Statement) {
        match statement {
            Statement::Relations => self.rels.shrink_to_fit(),
            Statement::Constraints => self.constraints.shrink_to_fit(),
            Statement::Inherits => self.inherits.shrink_to_fit(),
            _ => {}
        }
    }

    pub(super) fn relation_row(&mut self, c: &Cells<'_>) -> Result<(), CatalogError> {
        let oid = c.num(0)?;
        let relkind = c.text(3)?;
        let kind =
            RelationKind::from_relkind(relkind).ok_or_else(|| c.err(format!("unexpected relkind `{relkind}`")))?;
        let access = match c.text(5)? {
            "t" => Access::Table,
            "c" => Access::Columns,
            _ => Access::None,
        };
        let name = c.string(2)?;
        let name_lossy = c.take_lossy();
        let relation = Relation {
            row_estimate: c.opt_num(6)?,
            size_bytes: c.opt_num(7)?,
            selectable: access != Access::None,
            columns_limited: access == Access::Columns,
            partition_bound: c.opt_string(9)?,
            partition_key: c.opt_string(10)?,
            ..Relation::new(name, kind, c.shared(4, &mut self.interner)?)
        };
        // relnatts counts dropped columns too: at most a little more than needed.
        let natts = c.num::<usize>(11)?.min(1600);
        let mut relation = relation;
        relation.lossy_text = name_lossy || c.take_lossy();
        relation.columns.reserve_exact(natts);
        self.by_oid.insert(oid, self.rels.len());
        self.rels.push(Rel {
            oid,
            namespace: c.num(1)?,
            access,
            is_partition: c.bool(8)?,
            relation,
            attnums: Vec::with_capacity(natts),
            grants: if access == Access::Columns { Vec::with_capacity(natts) } else { Vec::new() },
            defaults: Vec::new(),
            column_comments: Vec::new(),
            indexes: Vec::new(),
            name_lossy,
            lossy_attnames: Vec::new(),
            keys_lossy: false,
            taken: false,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_of_one_type_share_its_placeholder_until_it_is_named() {
        let mut types = Types::default();
        let int = types.placeholder((23, -1));
        let varchar32 = types.placeholder((1043, 36));
        assert_eq!(types.placeholder((23, -1)), int, "one placeholder per (OID, typmod)");
        assert_ne!(varchar32, int, "a typmod makes another type");
        assert_eq!(types.keys, [(23, -1), (1043, 36)], "each pair asked for once, in the order met");
        assert!(int.starts_with('\0'), "no type name starts so: {int:?}");

        let unnamed = types.named(&int).expect_err("not named yet");
        assert!(unnamed.to_string().contains("no name came for type 23 (typmod -1)"), "{unnamed}");

        types.name((23, -1), Text::from("integer"), false);
        types.name((1043, 36), Text::from("character varying(32)"), true);
        // A row for a pair never asked for changes nothing.
        types.name((25, -1), Text::from("text"), false);
        assert_eq!(types.named(&int).expect("named"), &(Text::from("integer"), false));
        assert_eq!(types.named(&varchar32).expect("named"), &(Text::from("character varying(32)"), true));
        assert_eq!(types.keys.len(), 2);

        for not_a_known_type in ["integer", "\0", "\0x", "\0-1", "\u{0}99"] {
            assert!(types.named(not_a_known_type).is_err(), "{not_a_known_type:?}");
        }
    }
}
