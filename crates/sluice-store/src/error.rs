use std::path::PathBuf;

use sluice_core::{ErrorKind, UserFacing};

/// Everything the store can refuse or fail at. No variant carries a secret: not a password from
/// a URL, not a key, not a sealed value.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row asked for does not exist (or, for a token or session, is no longer valid).
    #[error("{entity} not found")]
    NotFound { entity: &'static str },

    /// A unique value is already taken; `field` names it (`name`, `login`, `id`).
    #[error("a {entity} with this {field} already exists")]
    Conflict { entity: &'static str, field: String },

    /// An argument is not acceptable.
    #[error("invalid {field}: {message}")]
    Invalid { field: &'static str, message: String },

    /// Where the store lives cannot be understood.
    #[error("{message}")]
    Location { message: String },

    /// Another process holds the SQLite data directory.
    #[error("the store at {} is in use by another Sluice process", path.display())]
    Locked { path: PathBuf },

    /// The master key is missing, malformed, or not the one the store was sealed with.
    #[error("{message}")]
    Key { message: String, hint: String },

    /// The PostgreSQL server is too old to hold the store.
    #[error("PostgreSQL {version} cannot hold the store: PostgreSQL 12 or newer is needed")]
    UnsupportedServer { version: String },

    /// The database or the file system failed.
    #[error("the store failed: {message}")]
    Backend { message: String },
}

impl StoreError {
    pub(crate) fn backend(what: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Backend { message: format!("{what}: {e}") }
    }

    pub(crate) fn key(message: impl Into<String>, hint: impl Into<String>) -> StoreError {
        StoreError::Key { message: message.into(), hint: hint.into() }
    }
}

/// Maps a driver error at one call site: a unique violation names the field it hit, a foreign
/// key violation names the missing `entity`, anything else is a backend failure.
pub(crate) fn db_error(e: sqlx::Error, entity: &'static str, missing: &'static str) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            return StoreError::Conflict { entity, field: unique_field(db.as_ref()) };
        }
        if db.is_foreign_key_violation() {
            return StoreError::NotFound { entity: missing };
        }
    }
    StoreError::backend(entity, e)
}

/// The column a unique violation is about: SQLite says `UNIQUE constraint failed: table.col`,
/// PostgreSQL names the constraint `table_col_key` (or `table_pkey` for the primary key).
fn unique_field(db: &dyn sqlx::error::DatabaseError) -> String {
    if let Some(constraint) = db.constraint() {
        if constraint.ends_with("_pkey") {
            return "id".into();
        }
        if let Some(stem) = constraint.strip_suffix("_key") {
            if let Some((_, col)) = stem.split_once('_') {
                return col.to_string();
            }
        }
        return constraint.to_string();
    }
    let message = db.message();
    match message.rsplit_once('.') {
        Some((_, col)) if message.contains("UNIQUE constraint failed") => col.to_string(),
        _ => "value".into(),
    }
}

impl UserFacing for StoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            StoreError::NotFound { .. }
            | StoreError::Conflict { .. }
            | StoreError::Invalid { .. }
            | StoreError::Location { .. }
            | StoreError::Locked { .. }
            | StoreError::Key { .. }
            | StoreError::UnsupportedServer { .. } => ErrorKind::Config,
            StoreError::Backend { .. } => ErrorKind::Internal,
        }
    }

    fn message(&self) -> String {
        self.to_string()
    }

    fn hint(&self) -> Option<String> {
        let hint = match self {
            StoreError::NotFound { .. } | StoreError::Invalid { .. } | StoreError::Backend { .. } => return None,
            StoreError::Conflict { field, .. } => format!("choose another {field}"),
            StoreError::Location { .. } => {
                "give a data directory, sqlite://PATH or postgres://USER@HOST/DATABASE".into()
            }
            StoreError::Locked { .. } => {
                "stop the other process, or give this one its own data directory (several instances share a store only through PostgreSQL)".into()
            }
            StoreError::Key { hint, .. } => hint.clone(),
            StoreError::UnsupportedServer { .. } => "upgrade the server, or use another one for the store".into(),
        };
        Some(hint)
    }
}
