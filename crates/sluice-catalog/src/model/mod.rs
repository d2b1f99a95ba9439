//! The catalog snapshot: plain data, serialized exactly as `catalog.schema.json` documents.
//!
//! Order is part of the contract: schemas and relations (and partitions) by name, compared as
//! Unicode code points whatever the server's collation; columns in ordinal order; unique
//! constraints, foreign keys and indexes by constraint/index name. Two discoveries of an unchanged
//! database therefore serialize to the same bytes apart from `discovered_at`.
//!
//! Text that was not valid UTF-8 on the server (possible only in a `SQL_ASCII` database, which
//! stores whatever bytes it was given) is decoded with each invalid sequence replaced by U+FFFD,
//! and the object holding it says `lossy_text: true`; such a name cannot be typed back as it
//! is, and two names that differ only in their invalid bytes look alike.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::CatalogError;

mod shared;
mod write;

pub use shared::Text;
pub(crate) use shared::{reading, Interner};

/// What one user can see of one database at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// `current_database()`.
    pub database: String,
    /// `server_version` as the server reports it, e.g. `15.4 (Debian 15.4-1)`.
    pub server_version: String,
    /// `server_version_num`, e.g. 150004.
    #[serde(default)]
    pub server_version_num: u32,
    /// The user the catalog was discovered as: what it lists is what this user may see.
    #[serde(default)]
    pub user: String,
    /// Start of the discovering transaction, UTC, RFC 3339 (`2026-11-27T10:00:00Z`).
    pub discovered_at: String,
    /// The `--schema` filter the discovery ran with; empty means every schema.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schema_filter: Vec<String>,
    pub schemas: Vec<Schema>,
    /// Some text in this snapshot (`database`, `user`, or any object's) was not valid UTF-8 and
    /// holds U+FFFD in place of its invalid bytes; the objects concerned say `lossy_text` too.
    #[serde(default, skip_serializing_if = "is_false")]
    pub lossy_text: bool,
}

impl Catalog {
    /// Reads a snapshot written by [`Catalog::to_json`] (or `sluice catalog --format json`).
    /// `source_name` names the input in the error (a file name, say).
    /// Repeated names are shared, as in a snapshot just discovered.
    pub fn from_json(bytes: &[u8], source_name: &str) -> Result<Catalog, CatalogError> {
        reading(|| serde_json::from_slice(bytes))
            .map_err(|e| CatalogError::Snapshot { source_name: source_name.to_string(), reason: e.to_string() })
    }

    /// [`Catalog::from_json`] from a reader (a decompressing one, say), without holding the
    /// JSON in memory.
    pub fn from_reader<R: std::io::Read>(r: R, source_name: &str) -> Result<Catalog, CatalogError> {
        let r = std::io::BufReader::with_capacity(1 << 16, r);
        reading(|| serde_json::from_reader(r))
            .map_err(|e| CatalogError::Snapshot { source_name: source_name.to_string(), reason: e.to_string() })
    }

    /// Reads a snapshot's schemas one at a time from `r`, handing each to `each` and dropping it
    /// after: a catalog's worth of relations is never held. The other members are skipped, but
    /// a document without `schemas` is refused, as [`Catalog::from_reader`] refuses it.
    pub fn each_schema_from_reader<R: std::io::Read>(
        r: R,
        source_name: &str,
        mut each: impl FnMut(Schema),
    ) -> Result<(), CatalogError> {
        each_element(r, source_name, |schema: Schema| {
            each(schema);
            Ok(())
        })
    }

    /// [`Catalog::each_schema_from_reader`] with each schema handed over as its JSON text,
    /// unparsed; the text is parsed (into a [`Schema`], say) inside `each` with repeated strings
    /// shared as in a discovered catalog. An error `each` returns stops the reading and is
    /// returned as the snapshot's.
    pub(crate) fn each_schema_json_from_reader<R: std::io::Read>(
        r: R,
        source_name: &str,
        each: impl FnMut(Box<serde_json::value::RawValue>) -> Result<(), String>,
    ) -> Result<(), CatalogError> {
        each_element(r, source_name, each)
    }

    /// Writes the snapshot as compact JSON (no trailing newline), straight into `w`: no copy of a
    /// catalog's worth of text is held in memory. `w` is written in small pieces: buffer it.
    pub fn write_json<W: std::io::Write>(&self, w: W) -> std::io::Result<()> {
        self.write_through(Tee { w, content: std::io::sink(), skip_content: false })
    }

    /// Writes the JSON of [`Catalog::write_json`] into `w` and, into `content`, the same bytes
    /// with `discovered_at`'s value empty (`"discovered_at":""`): what two discoveries of an
    /// unchanged database have in common, for a content hash. Both are written as the JSON is produced (buffered here), so neither is
    /// held in memory.
    pub fn write_json_and_content<W: std::io::Write, C: std::io::Write>(
        &self,
        w: W,
        content: C,
    ) -> std::io::Result<()> {
        self.write_through(Tee {
            w: std::io::BufWriter::with_capacity(1 << 16, w),
            content: std::io::BufWriter::with_capacity(1 << 16, content),
            skip_content: false,
        })
    }

    /// The snapshot's JSON into `out`; a large catalog's relations are serialized on two threads
    /// (`write::write_schemas`).
    fn write_through<W: std::io::Write, C: std::io::Write>(&self, mut out: Tee<W, C>) -> std::io::Result<()> {
        // The members in the order, and with the omissions, of the derived `Serialize`
        // (`write_json_matches_the_derived_serialization` checks it).
        out.member("{\"database\":", &self.database)?;
        out.member(",\"server_version\":", &self.server_version)?;
        out.member(",\"server_version_num\":", &self.server_version_num)?;
        out.member(",\"user\":", &self.user)?;
        std::io::Write::write_all(&mut out, b",\"discovered_at\":")?;
        out.skip_content = true;
        serde_json::to_writer(&mut out, &self.discovered_at)?;
        out.skip_content = false;
        std::io::Write::write_all(&mut out.content, b"\"\"")?;
        if !self.schema_filter.is_empty() {
            out.member(",\"schema_filter\":", &self.schema_filter)?;
        }
        std::io::Write::write_all(&mut out, b",\"schemas\":")?;
        write::write_schemas(&self.schemas, &mut out)?;
        if self.lossy_text {
            out.member(",\"lossy_text\":", &true)?;
        }
        std::io::Write::write_all(&mut out, b"}")?;
        std::io::Write::flush(&mut out)
    }

    /// The snapshot as compact JSON.
    pub fn to_json(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Every relation, partitions included, with the schema it lives in, depth first in
    /// snapshot order.
    pub fn relations(&self) -> impl Iterator<Item = (&str, &Relation)> {
        self.schemas.iter().flat_map(|s| {
            let mut out = Vec::new();
            for r in &s.relations {
                walk(&s.name, r, &mut out);
            }
            out.into_iter()
        })
    }

    /// Looks a relation up by schema and name; partitions are found too.
    pub fn relation(&self, schema: &str, name: &str) -> Option<&Relation> {
        self.relations().find(|(s, r)| *s == schema && r.name == name).map(|(_, r)| r)
    }
}

/// Reads a snapshot's `schemas` one element at a time as `T`, with repeated strings shared.
fn each_element<R: std::io::Read, T: serde::de::DeserializeOwned>(
    r: R,
    source_name: &str,
    each: impl FnMut(T) -> Result<(), String>,
) -> Result<(), CatalogError> {
    use serde::de::DeserializeSeed;
    let r = std::io::BufReader::with_capacity(1 << 16, r);
    let mut de = serde_json::Deserializer::from_reader(r);
    reading(|| {
        EachSchema(each, std::marker::PhantomData).deserialize(&mut de)?;
        de.end()
    })
    .map_err(|e| CatalogError::Snapshot { source_name: source_name.to_string(), reason: e.to_string() })
}

/// The top-level object of a snapshot, with `schemas` handed over one by one as `T`.
struct EachSchema<F, T>(F, std::marker::PhantomData<fn() -> T>);

impl<'de, T: serde::de::DeserializeOwned, F: FnMut(T) -> Result<(), String>> serde::de::DeserializeSeed<'de>
    for EachSchema<F, T>
{
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: serde::de::DeserializeOwned, F: FnMut(T) -> Result<(), String>> serde::de::Visitor<'de>
    for EachSchema<F, T>
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a catalog snapshot object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        let mut schemas = false;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "schemas" {
                if schemas {
                    return Err(serde::de::Error::duplicate_field("schemas"));
                }
                schemas = true;
                map.next_value_seed(SchemaList(&mut self.0, std::marker::PhantomData))?;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        if schemas {
            Ok(())
        } else {
            Err(serde::de::Error::missing_field("schemas"))
        }
    }
}

/// The `schemas` array, each element handed over as it is read.
struct SchemaList<'f, F, T>(&'f mut F, std::marker::PhantomData<fn() -> T>);

impl<'de, T: serde::de::DeserializeOwned, F: FnMut(T) -> Result<(), String>> serde::de::DeserializeSeed<'de>
    for SchemaList<'_, F, T>
{
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, T: serde::de::DeserializeOwned, F: FnMut(T) -> Result<(), String>> serde::de::Visitor<'de>
    for SchemaList<'_, F, T>
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of schemas")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(schema) = seq.next_element::<T>()? {
            (self.0)(schema).map_err(serde::de::Error::custom)?;
        }
        Ok(())
    }
}

/// Writes to both, or to `w` alone while `skip_content` is set.
struct Tee<W: std::io::Write, C: std::io::Write> {
    w: W,
    content: C,
    skip_content: bool,
}

impl<W: std::io::Write, C: std::io::Write> Tee<W, C> {
    fn member<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> std::io::Result<()> {
        std::io::Write::write_all(self, key.as_bytes())?;
        serde_json::to_writer(&mut *self, value).map_err(std::io::Error::from)
    }
}

impl<W: std::io::Write, C: std::io::Write> std::io::Write for Tee<W, C> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.w.write_all(buf)?;
        if !self.skip_content {
            self.content.write_all(buf)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()?;
        self.content.flush()
    }
}

fn walk<'a>(schema: &'a str, r: &'a Relation, out: &mut Vec<(&'a str, &'a Relation)>) {
    out.push((r.schema.as_deref().unwrap_or(schema), r));
    for p in &r.partitions {
        walk(schema, p, out);
    }
}

/// One schema. A schema the user has no `USAGE` on is listed with `usable: false` and no
/// relations: nothing in it can be queried, whatever the table grants say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    pub name: Text,
    pub owner: Text,
    pub comment: Option<Text>,
    #[serde(default = "yes")]
    pub usable: bool,
    pub relations: Vec<Relation>,
    /// Its name, owner or comment was not valid UTF-8 (U+FFFD replaces the invalid bytes).
    #[serde(default, skip_serializing_if = "is_false")]
    pub lossy_text: bool,
}

fn yes() -> bool {
    true
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A table, partitioned table, view, materialized view or foreign table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relation {
    pub name: Text,
    /// Set on partitions only (a partition may live in another schema than its parent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Text>,
    pub kind: RelationKind,
    pub owner: Text,
    pub comment: Option<Text>,
    /// From `reltuples`; null when the relation was never analyzed (and for views).
    pub row_estimate: Option<i64>,
    /// Heap plus TOAST pages from the statistics (`relpages` × block size); null when never
    /// vacuumed or analyzed and for views and foreign tables. A partitioned table reports the sum
    /// of its partitions.
    pub size_bytes: Option<i64>,
    /// Whether the user can `SELECT` from it (a table grant, or a grant on some of its columns).
    pub selectable: bool,
    /// True when only some columns are granted: `columns` then lists just those.
    #[serde(default, skip_serializing_if = "is_false")]
    pub columns_limited: bool,
    /// Readable columns in ordinal order; empty unless `selectable`.
    pub columns: Vec<Column>,
    pub primary_key: Option<Vec<Text>>,
    /// Column lists of the UNIQUE constraints, by constraint name.
    pub unique: Vec<Vec<Text>>,
    pub foreign_keys: Vec<ForeignKey>,
    pub indexes: Vec<Index>,
    /// Partitions, by name; each may have partitions of its own.
    pub partitions: Vec<Relation>,
    /// The partitioned table this one is a partition of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_of: Option<QualifiedName>,
    /// `FOR VALUES …` of a partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_bound: Option<Text>,
    /// `RANGE (…)`, `LIST (…)` or `HASH (…)` of a partitioned table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_key: Option<Text>,
    /// Parents of a table that uses (non-partition) inheritance, in inheritance order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inherits: Vec<QualifiedName>,
    /// Some of its own text was not valid UTF-8 (U+FFFD replaces the invalid bytes): its name,
    /// owner, comment, partition bound or key, a constraint or index name or expression, or a
    /// name it refers to (key columns, referenced tables and columns, parents). Its columns and
    /// partitions carry their own flag.
    #[serde(default, skip_serializing_if = "is_false")]
    pub lossy_text: bool,
}

impl Relation {
    /// A relation with nothing known beyond its name, kind and owner: not readable, no columns,
    /// constraints, indexes or partitions. Callers fill in what they learn.
    pub fn new(name: impl Into<Text>, kind: RelationKind, owner: impl Into<Text>) -> Relation {
        Relation {
            name: name.into(),
            schema: None,
            kind,
            owner: owner.into(),
            comment: None,
            row_estimate: None,
            size_bytes: None,
            selectable: false,
            columns_limited: false,
            columns: Vec::new(),
            primary_key: None,
            unique: Vec::new(),
            foreign_keys: Vec::new(),
            indexes: Vec::new(),
            partitions: Vec::new(),
            partition_of: None,
            partition_bound: None,
            partition_key: None,
            inherits: Vec::new(),
            lossy_text: false,
        }
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelationKind {
    Table,
    PartitionedTable,
    View,
    MaterializedView,
    ForeignTable,
}

impl RelationKind {
    /// `pg_class.relkind` → kind, for the kinds discovery lists.
    pub fn from_relkind(relkind: &str) -> Option<RelationKind> {
        Some(match relkind {
            "r" => RelationKind::Table,
            "p" => RelationKind::PartitionedTable,
            "v" => RelationKind::View,
            "m" => RelationKind::MaterializedView,
            "f" => RelationKind::ForeignTable,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RelationKind::Table => "table",
            RelationKind::PartitionedTable => "partitioned_table",
            RelationKind::View => "view",
            RelationKind::MaterializedView => "materialized_view",
            RelationKind::ForeignTable => "foreign_table",
        }
    }

    /// Words for people: `materialized view`.
    pub fn label(self) -> &'static str {
        match self {
            RelationKind::Table => "table",
            RelationKind::PartitionedTable => "partitioned table",
            RelationKind::View => "view",
            RelationKind::MaterializedView => "materialized view",
            RelationKind::ForeignTable => "foreign table",
        }
    }
}

impl fmt::Display for RelationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// `schema.name` of a relation referred to from elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QualifiedName {
    pub schema: Text,
    pub name: Text,
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: Text,
    /// The type exactly as `format_type()` renders it: `character varying(32)`, `public.mood[]`.
    #[serde(rename = "type")]
    pub type_name: Text,
    pub nullable: bool,
    /// The default expression as `pg_get_expr()` renders it; null for none (and for generated
    /// columns, whose expression is under `generated`).
    pub default: Option<Text>,
    pub comment: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<Box<Generated>>,
    /// Its name, type, default, generated expression or comment was not valid UTF-8 (U+FFFD
    /// replaces the invalid bytes).
    #[serde(default, skip_serializing_if = "is_false")]
    pub lossy_text: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Identity {
    /// `GENERATED ALWAYS AS IDENTITY`.
    Always,
    /// `GENERATED BY DEFAULT AS IDENTITY`.
    ByDefault,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generated {
    pub kind: GeneratedKind,
    pub expression: Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GeneratedKind {
    Stored,
    /// PostgreSQL 18's virtual generated columns.
    Virtual,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    pub name: Text,
    pub columns: Vec<Text>,
    pub ref_schema: Text,
    pub ref_table: Text,
    pub ref_columns: Vec<Text>,
    #[serde(default)]
    pub on_update: FkAction,
    #[serde(default)]
    pub on_delete: FkAction,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FkAction {
    #[default]
    NoAction,
    Restrict,
    Cascade,
    SetNull,
    SetDefault,
}

impl FkAction {
    pub fn from_code(code: &str) -> FkAction {
        match code {
            "r" => FkAction::Restrict,
            "c" => FkAction::Cascade,
            "n" => FkAction::SetNull,
            "d" => FkAction::SetDefault,
            _ => FkAction::NoAction,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub name: Text,
    /// The plain-column keys in key order (expression keys are not listed here).
    pub columns: Vec<Text>,
    /// For an index with expression keys: its definition as `pg_get_indexdef()` renders it.
    #[serde(default)]
    pub expression: Option<Text>,
    pub unique: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub primary: bool,
    /// Access method: `btree`, `gin`, …
    #[serde(default)]
    pub method: Text,
    /// `WHERE` clause of a partial index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicate: Option<Text>,
    /// Non-key `INCLUDE` columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<Text>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(filter: bool, lossy: bool) -> Catalog {
        let mut table = Relation::new("orders", RelationKind::Table, "app");
        table.selectable = true;
        table.columns.push(Column {
            name: "id".into(),
            type_name: "bigint".into(),
            nullable: false,
            default: None,
            comment: Some("the \"key\"".into()),
            identity: Some(Identity::Always),
            generated: None,
            lossy_text: false,
        });
        table.primary_key = Some(vec!["id".into()]);
        Catalog {
            database: "shop".into(),
            server_version: "15.4".into(),
            server_version_num: 150004,
            user: "reader".into(),
            discovered_at: "2026-11-30T00:00:00Z".into(),
            schema_filter: if filter { vec!["public".into()] } else { Vec::new() },
            schemas: vec![Schema {
                name: "public".into(),
                owner: "app".into(),
                comment: None,
                usable: true,
                relations: vec![table],
                lossy_text: lossy,
            }],
            lossy_text: lossy,
        }
    }

    #[test]
    fn write_json_matches_the_derived_serialization_and_content_leaves_out_the_time() {
        for (filter, lossy) in [(false, false), (true, true), (true, false), (false, true)] {
            let c = sample(filter, lossy);
            let (mut json, mut content) = (Vec::new(), Vec::new());
            c.write_json_and_content(&mut json, &mut content).expect("write");
            assert_eq!(String::from_utf8_lossy(&json), c.to_json(), "filter {filter}, lossy {lossy}");
            let mut plain = Vec::new();
            c.write_json(&mut plain).expect("write");
            assert_eq!(plain, json, "write_json writes the same bytes");
            let mut later = c.clone();
            later.discovered_at = "2026-12-01T08:00:00Z".into();
            let mut later_content = Vec::new();
            later.write_json_and_content(std::io::sink(), &mut later_content).expect("write");
            assert_eq!(content, later_content, "the time is not content");
            let text = String::from_utf8_lossy(&content);
            let cut = c.to_json().replace(r#""discovered_at":"2026-11-30T00:00:00Z""#, r#""discovered_at":"""#);
            assert_eq!(text, cut, "the content is the JSON with the time's value empty");
            assert!(text.contains(r#""discovered_at":"","#) && text.contains("\"schemas\":[{"), "{text}");
            let mut other = c.clone();
            other.schemas[0].relations[0].columns[0].type_name = "integer".into();
            let mut other_content = Vec::new();
            other.write_json_and_content(std::io::sink(), &mut other_content).expect("write");
            assert_ne!(content, other_content, "a changed column is content");
        }
    }

    #[test]
    fn a_snapshot_reads_back_from_a_reader_as_from_bytes() {
        let c = sample(true, false);
        let json = c.to_json();
        assert_eq!(Catalog::from_reader(json.as_bytes(), "snap").expect("read"), c);
        assert_eq!(Catalog::from_json(json.as_bytes(), "snap").expect("read"), c);
        let e = Catalog::from_reader(&json.as_bytes()[..json.len() / 2], "snap.json").expect_err("truncated");
        assert!(e.to_string().contains("snap.json"), "{e}");
    }
}
