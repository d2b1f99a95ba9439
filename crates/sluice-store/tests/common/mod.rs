//! One store per test on either backend: SQLite in a temporary data directory, or a database of
//! its own in a throwaway PostgreSQL cluster. The conformance suite runs every case on both.

#![allow(dead_code)]

use std::path::PathBuf;

use sluice_store::{KeyConfig, MasterKey, Store, StoreError};
use sluice_testkit::Cluster;
use sqlx::{Connection, Row};

pub enum Backend {
    Sqlite { dir: tempfile::TempDir },
    Postgres { cluster: Cluster, url: String },
}

pub struct Fixture {
    pub backend: Backend,
    pub key: MasterKey,
}

impl Fixture {
    pub fn sqlite() -> Fixture {
        let dir = tempfile::Builder::new().prefix("sluice-store-").tempdir().expect("tempdir");
        Fixture { backend: Backend::Sqlite { dir }, key: MasterKey::generate().expect("key") }
    }

    pub fn postgres() -> Fixture {
        let cluster = Cluster::start_default().expect("cluster");
        cluster.create_database("store").expect("database");
        let url = cluster.superuser_url("store");
        Fixture { backend: Backend::Postgres { cluster, url }, key: MasterKey::generate().expect("key") }
    }

    /// Whether the store can live on this cluster. Below PostgreSQL 12 (the version matrix runs
    /// every test on older servers too) it asserts the store's refusal instead, and the case
    /// ends there.
    pub async fn supported(&self) -> bool {
        let Backend::Postgres { cluster, .. } = &self.backend else { return true };
        let version = cluster.version_num().expect("server version");
        if version >= 120000 {
            return true;
        }
        let e = self.open_with(KeyConfig::Key(self.key.clone())).await.expect_err("a server below 12 is refused");
        assert!(matches!(e, StoreError::UnsupportedServer { .. }), "{e:?}");
        assert!(e.to_string().contains(&format!("PostgreSQL {}.", version / 10000)), "{e}");
        assert!(e.to_string().contains("PostgreSQL 12 or newer is needed"), "{e}");
        false
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self.backend, Backend::Sqlite { .. })
    }

    /// What `Store::open` is given: the data directory, or the postgres URL.
    pub fn target(&self) -> String {
        match &self.backend {
            Backend::Sqlite { dir } => dir.path().to_string_lossy().into_owned(),
            Backend::Postgres { url, .. } => url.clone(),
        }
    }

    pub fn data_dir(&self) -> Option<PathBuf> {
        match &self.backend {
            Backend::Sqlite { dir } => Some(dir.path().to_path_buf()),
            Backend::Postgres { .. } => None,
        }
    }

    pub async fn open(&self) -> Store {
        self.open_with(KeyConfig::Key(self.key.clone())).await.expect("open the store")
    }

    pub async fn open_with(&self, key: KeyConfig) -> Result<Store, StoreError> {
        Store::open(&self.target(), key).await
    }

    /// Runs one statement on a connection of the test's own, beside the store's.
    pub async fn raw_exec(&self, sql: &'static str) -> Result<u64, String> {
        match &self.backend {
            Backend::Sqlite { dir } => {
                let url = format!("sqlite://{}", dir.path().join(sluice_store::DB_FILE_NAME).display());
                let mut c = sqlx::SqliteConnection::connect(&url).await.map_err(|e| e.to_string())?;
                sqlx::query(sql).execute(&mut c).await.map(|r| r.rows_affected()).map_err(|e| e.to_string())
            }
            Backend::Postgres { url, .. } => {
                let mut c = sqlx::PgConnection::connect(url).await.map_err(|e| e.to_string())?;
                sqlx::query(sql).execute(&mut c).await.map(|r| r.rows_affected()).map_err(|e| e.to_string())
            }
        }
    }

    /// One number from a query on a connection of the test's own.
    pub async fn raw_scalar(&self, sql: String) -> i64 {
        match &self.backend {
            Backend::Sqlite { dir } => {
                let url = format!("sqlite://{}", dir.path().join(sluice_store::DB_FILE_NAME).display());
                let mut c = sqlx::SqliteConnection::connect(&url).await.expect("connect");
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&mut c).await.expect("query")
            }
            Backend::Postgres { url, .. } => {
                let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&mut c).await.expect("query")
            }
        }
    }

    /// Everything the store keeps, as bytes: every file of a SQLite data directory (database,
    /// WAL, shared memory), or every row of every table of the PostgreSQL store as text plus
    /// every bytea value as it is.
    pub async fn raw_bytes(&self) -> Vec<Vec<u8>> {
        match &self.backend {
            Backend::Sqlite { dir } => std::fs::read_dir(dir.path())
                .expect("data dir")
                .map(|e| e.expect("entry").path())
                .filter(|p| p.file_name().is_some_and(|n| n != sluice_store::KEY_FILE_NAME))
                .map(|p| std::fs::read(&p).expect("read a store file"))
                .collect(),
            Backend::Postgres { url, .. } => {
                let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
                let tables: Vec<String> =
                    sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
                        .fetch_all(&mut c)
                        .await
                        .expect("tables");
                assert!(tables.len() >= 10, "{tables:?}");
                let mut out = Vec::new();
                for table in tables {
                    let sql = format!("SELECT t::text FROM public.{table} t");
                    let rows: Vec<String> =
                        sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_all(&mut c).await.expect("rows");
                    out.extend(rows.into_iter().map(String::into_bytes));
                }
                for sql in ["SELECT nonce, ciphertext FROM source_secrets", "SELECT nonce, ciphertext FROM store_meta"]
                {
                    for row in sqlx::query(sql).fetch_all(&mut c).await.expect("sealed rows") {
                        out.push(row.get::<Vec<u8>, _>(0));
                        out.push(row.get::<Vec<u8>, _>(1));
                    }
                }
                out
            }
        }
    }
}

/// How often `needle` occurs in `haystack`.
pub fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).filter(|w| *w == needle).count()
}
