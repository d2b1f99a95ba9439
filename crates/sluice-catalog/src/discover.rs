//! Running the discovery batch and assembling its rows into a [`Catalog`].
//!
//! Rows are consumed as they stream in (nothing holds a whole result set); what is kept is the
//! catalog itself plus the key arrays needed to name constraint and index columns at the end.
//!
//! Text in a `SQL_ASCII` database arrives escaped (`sql::txt`): the client turns it back into the
//! stored bytes, keeps them when they are UTF-8 (as they often are there), and otherwise replaces
//! each invalid sequence with U+FFFD and flags the object (`lossy_text`). One such byte in a
//! comment never fails a discovery. Every other server encoding is converted to UTF8 by the
//! server, as for any client.

use std::cell::Cell;
use std::collections::HashMap;
use std::str::FromStr;

use futures_util::StreamExt;
use sluice_connect::tokio_postgres::{Client, SimpleQueryMessage, SimpleQueryRow};
use sluice_connect::{Isolation, ReadOnlySession, SessionInfo, TransactionOptions};

use crate::model::{
    Catalog, Column, FkAction, ForeignKey, Generated, GeneratedKind, Identity, Index, QualifiedName, Relation,
    RelationKind, Schema,
};
use crate::sql::{self, Features, Statement};
use crate::CatalogError;

/// What to discover.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoverOptions {
    /// Only these schemas (exact names); empty means every non-system schema.
    pub schemas: Vec<String>,
}

/// Discovers everything `session`'s user can see, in one read-only `REPEATABLE READ`
/// transaction: begun and confirmed read-only (one round trip), then a fixed number of catalog
/// queries sent as one message (one round trip whatever the catalog's size), then committed.
///
/// On error the transaction is rolled back and the session stays usable. If the future is
/// dropped midway, the session is left inside the transaction: hand it back to its pool, whose
/// reset ends it, or drop it (the next transaction on the session also ends it first).
pub async fn discover(session: &mut ReadOnlySession, opts: &DiscoverOptions) -> Result<Catalog, CatalogError> {
    let info = session.info().clone();
    if info.server_version_num < 100_000 {
        return Err(CatalogError::UnsupportedVersion { version: info.server_version.clone() });
    }
    let (sql, order) = sql::batch(Features::for_version(info.server_version_num), session.settings(), &opts.schemas)?;
    let options = TransactionOptions { isolation: Isolation::RepeatableRead, ..Default::default() };
    let tx = session.read_only_transaction_with(&options).await.map_err(connect_err)?;
    let mut builder = Builder::default();
    if let Err(e) = run(tx.client(), &sql, &order, &mut builder).await {
        // Best effort: the batch stopped inside the transaction.
        let _ = tx.rollback().await;
        return Err(e);
    }
    tx.commit().await.map_err(connect_err)?;
    let started = std::time::Instant::now();
    let catalog = builder.finish(&info, opts);
    tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "catalog assembled");
    catalog
}

fn connect_err(e: sluice_connect::ConnectError) -> CatalogError {
    CatalogError::Connection { reason: e.to_string() }
}

async fn run(client: &Client, sql: &str, order: &[Statement], builder: &mut Builder) -> Result<(), CatalogError> {
    let stream = client.simple_query_raw(sql).await.map_err(CatalogError::from_driver)?;
    let mut stream = std::pin::pin!(stream);
    let mut done = 0usize;
    let started = std::time::Instant::now();
    while let Some(message) = stream.next().await {
        match message.map_err(CatalogError::from_driver)? {
            SimpleQueryMessage::Row(row) => {
                let statement = order.get(done).copied().ok_or(CatalogError::Protocol {
                    statement: "batch",
                    detail: "more result sets than statements".into(),
                })?;
                let escaped = builder.escaped;
                builder.row(Cells { row: &row, statement, escaped, lossy: Cell::new(false) })?;
            }
            SimpleQueryMessage::CommandComplete(rows) => {
                tracing::debug!(
                    statement = order.get(done).map_or("?", |s| s.name()),
                    rows,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "catalog statement done"
                );
                done += 1;
            }
            _ => {}
        }
    }
    if done != order.len() {
        return Err(CatalogError::Protocol {
            statement: "batch",
            detail: format!("{done} of {} statements completed", order.len()),
        });
    }
    Ok(())
}

/// Typed access to one text-format row, with errors that name the statement and column.
struct Cells<'a> {
    row: &'a SimpleQueryRow,
    statement: Statement,
    /// Text values arrive escaped (a `SQL_ASCII` database).
    escaped: bool,
    /// Some text value read so far was not UTF-8 (see [`Cells::take_lossy`]).
    lossy: Cell<bool>,
}

impl<'a> Cells<'a> {
    fn err(&self, detail: String) -> CatalogError {
        CatalogError::Protocol { statement: self.statement.name(), detail }
    }

    fn get(&self, i: usize) -> Result<Option<&'a str>, CatalogError> {
        self.row.try_get(i).map_err(|e| self.err(format!("column {i}: {e}")))
    }

    fn text(&self, i: usize) -> Result<&'a str, CatalogError> {
        self.get(i)?.ok_or_else(|| self.err(format!("column {i} is null")))
    }

    /// A name, comment or expression (a column the batch sends through `sql::txt`).
    fn string(&self, i: usize) -> Result<String, CatalogError> {
        let text = self.text(i)?;
        self.decode(text).map_err(|detail| self.err(format!("column {i}: {detail}")))
    }

    fn opt_string(&self, i: usize) -> Result<Option<String>, CatalogError> {
        match self.get(i)? {
            None => Ok(None),
            Some(_) => self.string(i).map(Some),
        }
    }

    /// Names from a `text[]` of escaped names.
    fn names(&self, i: usize) -> Result<Vec<String>, CatalogError> {
        self.parsed(i, crate::text::parse_name_array)?
            .iter()
            .map(|n| self.decode(n).map_err(|detail| self.err(format!("column {i}: {detail}"))))
            .collect()
    }

    fn decode(&self, text: &str) -> Result<String, String> {
        if !self.escaped {
            return Ok(text.to_string());
        }
        let (decoded, lossy) = crate::text::unescape_bytes(text)?;
        if lossy {
            self.lossy.set(true);
        }
        Ok(decoded)
    }

    /// Whether a text value read since the last call was not UTF-8; resets.
    fn take_lossy(&self) -> bool {
        self.lossy.replace(false)
    }

    fn num<T: FromStr>(&self, i: usize) -> Result<T, CatalogError> {
        let s = self.text(i)?;
        s.parse().map_err(|_| self.err(format!("column {i}: `{s}` is not a number")))
    }

    fn opt_num<T: FromStr>(&self, i: usize) -> Result<Option<T>, CatalogError> {
        match self.get(i)? {
            None => Ok(None),
            Some(_) => self.num(i).map(Some),
        }
    }

    fn opt_bool(&self, i: usize) -> Result<Option<bool>, CatalogError> {
        match self.get(i)? {
            None => Ok(None),
            Some("t") => Ok(Some(true)),
            Some("f") => Ok(Some(false)),
            Some(s) => Err(self.err(format!("column {i}: `{s}` is not a boolean"))),
        }
    }

    fn bool(&self, i: usize) -> Result<bool, CatalogError> {
        self.opt_bool(i)?.ok_or_else(|| self.err(format!("column {i} is null")))
    }

    fn parsed<T>(&self, i: usize, parse: fn(&str) -> Result<T, String>) -> Result<T, CatalogError> {
        parse(self.text(i)?).map_err(|e| self.err(format!("column {i}: {e}")))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// SELECT on the table.
    Table,
    /// SELECT on some columns only.
    Columns,
    None,
}

struct SchemaRow {
    oid: u32,
    name: String,
    owner: String,
    usable: bool,
    comment: Option<String>,
    name_lossy: bool,
    lossy: bool,
}

/// One relation while its rows arrive. `relation` is already the output value; the rest is what
/// finishing it needs.
struct Rel {
    oid: u32,
    namespace: u32,
    access: Access,
    is_partition: bool,
    relation: Relation,
    /// attnum of each entry of `relation.columns`.
    attnums: Vec<i16>,
    /// Column-level grant of each entry of `relation.columns` (`None`: no column ACL).
    grants: Vec<Option<bool>>,
    /// (attnum, expression, lossy), applied once the columns are in order.
    defaults: Vec<(i16, String, bool)>,
    /// (attnum, comment, lossy), likewise.
    column_comments: Vec<(i16, String, bool)>,
    indexes: Vec<IndexRow>,
    /// Its name was not UTF-8.
    name_lossy: bool,
    /// attnums of the columns whose names were not UTF-8 (almost always none).
    lossy_attnames: Vec<i16>,
    /// A key, constraint or inheritance row held text that was not UTF-8; it counts once it is
    /// known what the user may see.
    keys_lossy: bool,
    /// Set once `relation` has been moved into the tree.
    taken: bool,
}

impl Rel {
    /// Puts the columns in attnum order (they almost always arrive in it).
    fn sort_columns(&mut self) {
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
    fn names_lossy(&self, key: &[i16]) -> bool {
        !self.lossy_attnames.is_empty() && key.iter().any(|n| self.lossy_attnames.contains(n))
    }

    fn position(&self, attnum: i16) -> Option<usize> {
        self.attnums.binary_search(&attnum).ok()
    }

    /// Column names for attnums; `#n` for an attnum that is not there, which only a catalog
    /// changing under the snapshot could cause.
    fn names(&self, key: &[i16]) -> Vec<String> {
        key.iter()
            .map(|n| {
                self.position(*n)
                    .and_then(|i| self.relation.columns.get(i))
                    .map_or_else(|| format!("#{n}"), |c| c.name.clone())
            })
            .collect()
    }
}

struct ConstraintRow {
    oid: u32,
    rel: u32,
    name: String,
    kind: u8,
    key: Vec<i16>,
    ref_rel: u32,
    ref_key: Vec<i16>,
    on_update: FkAction,
    on_delete: FkAction,
    parent: u32,
    /// For a foreign key to another schema: [schema, table, column…] from SQL.
    foreign_ref: Option<Vec<String>>,
    lossy: bool,
}

struct IndexRow {
    name: String,
    unique: bool,
    primary: bool,
    key: Vec<i16>,
    key_count: usize,
    method: String,
    definition: Option<String>,
    predicate: Option<String>,
    lossy: bool,
}

struct InheritRow {
    child: u32,
    parent: u32,
    position: i32,
    parent_name: QualifiedName,
    lossy: bool,
}

#[derive(Default)]
struct Builder {
    /// Text values arrive escaped (a `SQL_ASCII` database); known from the first row.
    escaped: bool,
    database: String,
    user: String,
    /// The database or user name was not UTF-8.
    meta_lossy: bool,
    discovered_at: String,
    schemas: Vec<SchemaRow>,
    rels: Vec<Rel>,
    by_oid: HashMap<u32, usize>,
    /// The last relation looked up: rows of one relation arrive together.
    last: Option<(u32, usize)>,
    constraints: Vec<ConstraintRow>,
    inherits: Vec<InheritRow>,
}

impl Builder {
    fn rel_mut(&mut self, oid: u32) -> Option<&mut Rel> {
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

    fn rel(&self, oid: u32) -> Option<&Rel> {
        self.by_oid.get(&oid).and_then(|i| self.rels.get(*i))
    }

    fn row(&mut self, c: Cells<'_>) -> Result<(), CatalogError> {
        match c.statement {
            Statement::Meta => {
                self.escaped = c.text(3)? == "SQL_ASCII";
                let c = Cells { escaped: self.escaped, ..c };
                self.database = c.string(0)?;
                self.user = c.string(1)?;
                self.meta_lossy = c.take_lossy();
                self.discovered_at = c.text(2)?.to_string();
            }
            Statement::Schemas => {
                let name = c.string(1)?;
                let name_lossy = c.take_lossy();
                self.schemas.push(SchemaRow {
                    oid: c.num(0)?,
                    name,
                    owner: c.string(2)?,
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
                let name = c.string(2)?;
                let name_lossy = c.take_lossy();
                let column = Column {
                    name,
                    type_name: c.string(3)?,
                    nullable: !c.bool(4)?,
                    default: None,
                    comment: None,
                    identity: match c.text(5)? {
                        "a" => Some(Identity::Always),
                        "d" => Some(Identity::ByDefault),
                        _ => None,
                    },
                    generated: match c.text(6)? {
                        "s" => Some(GeneratedKind::Stored),
                        "v" => Some(GeneratedKind::Virtual),
                        _ => None,
                    }
                    .map(|kind| Generated { kind, expression: String::new() }),
                    lossy_text: name_lossy || c.take_lossy(),
                };
                let grant = c.opt_bool(7)?;
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
                    method: c.opt_string(6)?.unwrap_or_default(),
                    definition: c.opt_string(7)?,
                    predicate: c.opt_string(8)?,
                    lossy: c.take_lossy(),
                };
                if let Some(rel) = self.rel_mut(oid) {
                    rel.indexes.push(index);
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
            Statement::Settings => {}
        }
        Ok(())
    }

    fn relation_row(&mut self, c: &Cells<'_>) -> Result<(), CatalogError> {
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
            ..Relation::new(name, kind, c.string(4)?)
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

    fn finish(mut self, info: &SessionInfo, opts: &DiscoverOptions) -> Result<Catalog, CatalogError> {
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

        let schema_names: HashMap<u32, &str> = self.schemas.iter().map(|s| (s.oid, s.name.as_str())).collect();
        let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
        let mut top: Vec<usize> = Vec::new();
        for (i, rel) in self.rels.iter().enumerate() {
            match parent_of.get(&rel.oid).and_then(|p| self.by_oid.get(p)) {
                Some(&parent) => children.entry(parent).or_default().push(i),
                None => top.push(i),
            }
        }
        let mut by_schema: HashMap<u32, Vec<Relation>> = HashMap::new();
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
        let schema_names: HashMap<u32, (&str, bool)> =
            self.schemas.iter().map(|s| (s.oid, (s.name.as_str(), s.name_lossy))).collect();
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
                                let (schema, schema_lossy) =
                                    schema_names.get(&r.namespace).copied().unwrap_or_default();
                                lossy |= schema_lossy || r.name_lossy || r.names_lossy(&con.ref_key);
                                (schema.to_string(), r.relation.name.clone(), r.names(&con.ref_key))
                            }
                            None => (
                                String::new(),
                                format!("#{}", con.ref_rel),
                                con.ref_key.iter().map(|n| format!("#{n}")).collect(),
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
                Resolved::Unique(cols) => rel.relation.unique.push(cols),
                Resolved::ForeignKey(fk) => rel.relation.foreign_keys.push(fk),
            }
        }
    }
}

enum Resolved {
    PrimaryKey(Vec<String>),
    Unique(Vec<String>),
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
    schema_names: &HashMap<u32, &str>,
    nested: bool,
) -> Option<(u32, Relation)> {
    let rel = rels.get_mut(i).filter(|r| !r.taken)?;
    rel.taken = true;
    let namespace = rel.namespace;
    let mut relation = std::mem::replace(&mut rel.relation, empty_relation());
    if nested {
        relation.schema = schema_names.get(&namespace).map(|s| s.to_string());
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
    Relation::new(String::new(), RelationKind::Table, String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

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
