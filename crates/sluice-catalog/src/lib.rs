//! Schema discovery: what one user can see of one PostgreSQL database, read in a fixed number of
//! round trips, as a stable snapshot, and the diff between two snapshots.
//!
//! [`discover`] sends one simple-protocol message: a `REPEATABLE READ READ ONLY` transaction of a
//! fixed number of set-based `pg_catalog` queries (the notes in `sql.rs` say why each is shaped as
//! it is), then one naming the column types those met, and
//! folds the rows into a [`Catalog`] as they stream in. The snapshot's JSON shape is documented
//! by `catalog.schema.json` next to this crate; [`diff`] compares two snapshots for the
//! scheduler; [`render_human`] and [`render_diff_human`] are the text the CLI prints.
//!
//! Decisions a reader of the snapshot needs:
//! - System schemas (`pg_catalog`, `information_schema`, `pg_toast*`, `pg_temp_*`) are never
//!   listed.
//! - A schema without `USAGE` is listed with `usable: false` and no relations.
//! - A relation the user cannot `SELECT` is listed with `selectable: false` and no columns,
//!   keys or indexes. With grants on some columns only, it is selectable, `columns_limited`, and
//!   lists just those columns.
//! - Partitions are nested under their parent (recursively), not listed at the top level; a
//!   partition whose parent is invisible stays at the top level with `partition_of` set.
//!   Inheritance children are ordinary tables that name their parents in `inherits`.
//!
//! Must not do: open connections or choose sessions (that is `sluice-connect`), print, read files,
//! or run anything but catalog reads.

mod diff;
mod discover;
mod error;
pub mod model;
mod render;
mod sql;
mod text;

pub use diff::{
    diff, diff_from_reader, AddedColumn, CatalogDiff, KindChange, NullabilityChange, RelationChange, RelationRef,
    TypeChange,
};
pub use discover::{discover, discover_sharing, DiscoverOptions, GetSecondSession, SecondSession, DEFAULT_SHARE_ABOVE};
pub use error::CatalogError;
pub use model::{
    Catalog, Column, FkAction, ForeignKey, Generated, GeneratedKind, Identity, Index, QualifiedName, Relation,
    RelationKind, Schema,
};
pub use render::{render_diff_human, render_human};

/// The JSON Schema of a snapshot (`catalog.schema.json`).
pub const JSON_SCHEMA: &str = include_str!("../catalog.schema.json");
