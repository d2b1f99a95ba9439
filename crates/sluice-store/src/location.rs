//! Where the store lives: a SQLite file (a data directory, or `sqlite://PATH`) or a PostgreSQL
//! database (`postgres://…`). A URL's password never appears in `Debug`, `Display` or an error.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

use crate::StoreError;

/// The database file's name inside a data directory.
pub const DB_FILE_NAME: &str = "sluice.db";

#[derive(Clone)]
pub enum StoreLocation {
    /// A SQLite file; `dir` holds it, its lock file and (by default) the master key.
    Sqlite { file: PathBuf, dir: PathBuf },
    /// A PostgreSQL database shared by every instance pointed at it.
    Postgres(PgLocation),
}

/// A parsed `postgres://` URL. Shown as `postgres://user@host:port/database`, never with its
/// password.
#[derive(Clone)]
pub struct PgLocation {
    pub(crate) options: Box<PgConnectOptions>,
}

/// Where a PostgreSQL store's server is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreServer {
    /// Over TCP: the URL's host (a name or an address) and port.
    Tcp { host: String, port: u16 },
    /// Through a Unix socket in this directory.
    Socket(PathBuf),
}

impl StoreLocation {
    /// The server a PostgreSQL store lives on; `None` for SQLite.
    pub fn server(&self) -> Option<StoreServer> {
        let StoreLocation::Postgres(pg) = self else { return None };
        let o = &pg.options;
        if let Some(dir) = o.get_socket() {
            return Some(StoreServer::Socket(dir.clone()));
        }
        let host = o.get_host();
        if host.starts_with('/') {
            return Some(StoreServer::Socket(PathBuf::from(host)));
        }
        // An IPv6 address keeps the URL's brackets.
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        Some(StoreServer::Tcp { host: host.to_string(), port: o.get_port() })
    }
}

impl PgLocation {
    fn shown(&self) -> String {
        let o = &self.options;
        format!(
            "postgres://{}@{}:{}/{}",
            o.get_username(),
            o.get_host(),
            o.get_port(),
            o.get_database().unwrap_or(o.get_username())
        )
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Sqlite { file, .. } => write!(f, "sqlite://{}", file.display()),
            StoreLocation::Postgres(pg) => f.write_str(&pg.shown()),
        }
    }
}

impl fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreLocation({self})")
    }
}

impl FromStr for StoreLocation {
    type Err = StoreError;

    /// `postgres://…` or `postgresql://…`; `sqlite://PATH` (a database file); anything else is a
    /// data directory holding `sluice.db`.
    fn from_str(target: &str) -> Result<StoreLocation, StoreError> {
        if target.starts_with("postgres://") || target.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(target)
                .map_err(|_| StoreError::Location { message: "the store URL is not a valid postgres:// URL".into() })?;
            return Ok(StoreLocation::Postgres(PgLocation { options: Box::new(options) }));
        }
        if let Some(path) = target.strip_prefix("sqlite://").or_else(|| target.strip_prefix("sqlite:")) {
            if path.is_empty() || path.contains('?') || path == ":memory:" {
                return Err(StoreError::Location {
                    message: format!("`{target}` does not name a database file: give sqlite://PATH, without options"),
                });
            }
            let file = PathBuf::from(path);
            let dir = match file.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            return Ok(StoreLocation::Sqlite { file, dir });
        }
        if target.contains("://") {
            return Err(StoreError::Location {
                message: "the store must be a data directory, sqlite://PATH or postgres://…".into(),
            });
        }
        if target.is_empty() {
            return Err(StoreError::Location { message: "the store's data directory is empty".into() });
        }
        let dir = PathBuf::from(target);
        Ok(StoreLocation::Sqlite { file: dir.join(DB_FILE_NAME), dir })
    }
}

/// An exclusive advisory lock on `<database file>.lock`, held for the store's life, so a second
/// process cannot open the same SQLite store (SQLite itself would let it, and two services
/// sharing one file would each believe they own its schedule and its key file).
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    pub(crate) fn acquire(db_file: &Path) -> Result<DirLock, StoreError> {
        let mut name = db_file.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::backend(&format!("open the lock file {}", path.display()), e))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked { path: db_file.to_path_buf() }),
            Err(std::fs::TryLockError::Error(e)) => Err(StoreError::backend(&format!("lock {}", path.display()), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_a_password_is_never_shown() {
        let loc: StoreLocation =
            "postgresql://app:s3cr3t-pw@db.internal:6432/sluice?sslmode=disable".parse().expect("pg");
        for shown in [format!("{loc}"), format!("{loc:?}")] {
            assert!(!shown.contains("s3cr3t-pw"), "{shown}");
            assert!(shown.contains("app@db.internal:6432/sluice"), "{shown}");
        }
        let e = "postgres://app:s3cr3t-pw@[bad".parse::<StoreLocation>().expect_err("bad url");
        assert!(!e.to_string().contains("s3cr3t-pw"), "{e}");

        match "/var/lib/sluice".parse::<StoreLocation>().expect("dir") {
            StoreLocation::Sqlite { file, dir } => {
                assert_eq!(file, Path::new("/var/lib/sluice/sluice.db"));
                assert_eq!(dir, Path::new("/var/lib/sluice"));
            }
            other => panic!("{other:?}"),
        }
        match "sqlite:///srv/meta.db".parse::<StoreLocation>().expect("file") {
            StoreLocation::Sqlite { file, dir } => {
                assert_eq!(file, Path::new("/srv/meta.db"));
                assert_eq!(dir, Path::new("/srv"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            "postgres://app:pw@db.internal:6432/sluice".parse::<StoreLocation>().expect("pg").server(),
            Some(StoreServer::Tcp { host: "db.internal".into(), port: 6432 })
        );
        assert_eq!(
            "postgres://app@[fd00::5]/sluice".parse::<StoreLocation>().expect("pg").server(),
            Some(StoreServer::Tcp { host: "fd00::5".into(), port: 5432 })
        );
        assert_eq!(
            "postgres://app@%2Fvar%2Frun%2Fpostgresql/sluice".parse::<StoreLocation>().expect("socket").server(),
            Some(StoreServer::Socket(PathBuf::from("/var/run/postgresql")))
        );
        assert_eq!(
            "postgres:///sluice?host=/tmp/pg".parse::<StoreLocation>().expect("socket").server(),
            Some(StoreServer::Socket(PathBuf::from("/tmp/pg")))
        );
        assert_eq!("/var/lib/sluice".parse::<StoreLocation>().expect("dir").server(), None);
        for bad in ["", "sqlite://", "sqlite::memory:", "sqlite://x.db?mode=rwc", "mysql://h/db"] {
            assert!(matches!(bad.parse::<StoreLocation>(), Err(StoreError::Location { .. })), "{bad}");
        }
    }
}
