use sluice_connect::tokio_postgres;
use sluice_core::{ErrorKind, UserFacing};

/// Everything that can stop a discovery or a snapshot from being read.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A `--schema` value can never name a schema.
    #[error("schema filter `{name}` is not a valid schema name: {reason}")]
    InvalidSchemaName { name: String, reason: &'static str },

    /// Schemas asked for with `--schema` that the database does not have (or that are system
    /// schemas, which discovery never lists).
    #[error("schema{} not found: {}", if names.len() == 1 { "" } else { "s" }, names.join(", "))]
    SchemaNotFound { names: Vec<String> },

    /// Discovery needs PostgreSQL 10 or newer (declarative partitioning, identity columns).
    #[error("PostgreSQL {version} is not supported: catalog discovery needs PostgreSQL 10 or newer")]
    UnsupportedVersion { version: String },

    /// The server answered a catalog query with an error.
    #[error("a catalog query failed: {message} (SQLSTATE {code})")]
    Query { code: String, message: String, server_hint: Option<String> },

    /// The connection broke or the driver failed while reading the catalog.
    #[error("the connection failed while reading the catalog: {reason}")]
    Connection { reason: String },

    /// A catalog row did not have the shape the queries ask for (a bug, or a server that is not
    /// PostgreSQL).
    #[error("unexpected catalog data in {statement}: {detail}")]
    Protocol { statement: &'static str, detail: String },

    /// A file handed to `diff` is not a catalog snapshot.
    #[error("{source_name} is not a catalog snapshot: {reason}")]
    Snapshot { source_name: String, reason: String },
}

impl CatalogError {
    pub(crate) fn from_driver(e: tokio_postgres::Error) -> CatalogError {
        match e.as_db_error() {
            Some(db) => CatalogError::Query {
                code: db.code().code().to_string(),
                message: db.message().to_string(),
                server_hint: db.hint().map(str::to_string),
            },
            None => CatalogError::Connection { reason: e.to_string() },
        }
    }

    /// The SQLSTATE the server reported, when it reported one.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            CatalogError::Query { code, .. } => Some(code),
            _ => None,
        }
    }
}

impl UserFacing for CatalogError {
    fn kind(&self) -> ErrorKind {
        match self {
            CatalogError::InvalidSchemaName { .. }
            | CatalogError::SchemaNotFound { .. }
            | CatalogError::UnsupportedVersion { .. }
            | CatalogError::Snapshot { .. } => ErrorKind::Config,
            CatalogError::Query { code, .. } => match code.as_str() {
                // query_canceled: statement_timeout, or a cancel request.
                "57014" => ErrorKind::Timeout,
                // lock_not_available: lock_timeout while deparsing an expression.
                "55P03" => ErrorKind::Timeout,
                _ => ErrorKind::Database,
            },
            CatalogError::Connection { .. } => ErrorKind::Network,
            CatalogError::Protocol { .. } => ErrorKind::Internal,
        }
    }

    fn message(&self) -> String {
        self.to_string()
    }

    fn hint(&self) -> Option<String> {
        let hint = match self {
            CatalogError::InvalidSchemaName { .. } => {
                "give the schema name exactly as it is spelled in the database, without quotes".into()
            }
            CatalogError::SchemaNotFound { .. } => {
                "check the spelling and case of --schema (names are compared exactly); system schemas are never listed".into()
            }
            CatalogError::UnsupportedVersion { .. } => {
                "upgrade the server to a supported PostgreSQL release (10 or newer)".into()
            }
            CatalogError::Query { code, server_hint, .. } => match code.as_str() {
                "57014" => "the catalog queries ran longer than statement_timeout or were cancelled; retry, or raise the source's statement timeout".into(),
                "55P03" => "a table was locked exclusively (ALTER TABLE, VACUUM FULL…) while its expressions were read; retry when the DDL has finished".into(),
                "42501" => "the user may not read the system catalogs; check that pg_catalog access was not revoked".into(),
                _ => return server_hint.clone(),
            },
            CatalogError::Connection { .. } => "the server closed the connection or the network dropped; retry".into(),
            CatalogError::Protocol { .. } => return None,
            CatalogError::Snapshot { .. } => {
                "give files written by `sluice catalog --format json`".into()
            }
        };
        Some(hint)
    }
}
