//! Shared set-up for the query acceptance tests: a real cluster, an over-privileged analyst role,
//! a pool of one session, and helpers that run a request to bytes.
#![allow(dead_code)]

use std::process::Command;
use std::time::Duration;

use sluice_connect::{Connector, Pool, PoolOptions};
use sluice_core::{Secret, SourceSpec, SslMode};
use sluice_query::export::{self, ExportContext, Format, Sink, Summary};
use sluice_query::{run, QueryError, QueryRequest};
use sluice_testkit::Cluster;

pub const DB: &str = "shop";
pub const USER: &str = "analyst";
pub const PW: &str = "analyst-pw";

pub struct Env {
    pub cluster: Cluster,
    pub pool: Pool,
}

/// A cluster with database `shop`, and the role `analyst`, who may INSERT/UPDATE/DELETE,
/// CREATE, use TEMP and sequences: everything a read-only channel must stop.
pub fn env() -> Env {
    env_with(&[])
}

/// Like [`env`], with `ALTER ROLE analyst SET …` settings (e.g. `("TimeZone", "Asia/Kolkata")`).
pub fn env_with(role_settings: &[(&str, &str)]) -> Env {
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_database(DB).expect("database");
    cluster.create_login(USER, PW).expect("role");
    let mut sql = format!(
        "GRANT CREATE, TEMP ON DATABASE {DB} TO {USER};\n\
         GRANT ALL ON SCHEMA public TO {USER};\n\
         ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO {USER};\n\
         ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO {USER};\n\
         CREATE TABLE accounts (id serial PRIMARY KEY, owner text NOT NULL, balance numeric(12,2));\n\
         INSERT INTO accounts (owner, balance) SELECT 'owner ' || g, g * 10.5 FROM generate_series(1, 100) g;\n\
         CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');\n"
    );
    for (k, v) in role_settings {
        sql.push_str(&format!("ALTER ROLE {USER} SET {k} = '{v}';\n"));
    }
    cluster.psql(DB, &sql).expect("setup");
    let pool = pool_of(&cluster, 1);
    Env { cluster, pool }
}

pub fn spec(cluster: &Cluster) -> SourceSpec {
    let mut s = SourceSpec::new(cluster.host(), DB, USER);
    s.hosts[0].port = cluster.port();
    s.password = Some(Secret::new(PW));
    s.sslmode = SslMode::Disable;
    s.connect_timeout_secs = 10;
    s
}

pub fn pool_of(cluster: &Cluster, max: usize) -> Pool {
    Pool::new(
        Connector::new(spec(cluster)).expect("connector"),
        PoolOptions { max_size: max, acquire_timeout: Duration::from_secs(30), ..Default::default() },
    )
}

pub fn req(sql: &str, format: Format) -> QueryRequest {
    QueryRequest { sql: sql.to_string(), flavor: format.flavor(), ..Default::default() }
}

/// Runs one request on a pooled session and exports it to memory.
pub async fn export_bytes(
    pool: &Pool,
    request: QueryRequest,
    format: Format,
) -> Result<(Vec<u8>, Summary), QueryError> {
    let session = pool.get().await?;
    let ctx = ExportContext { max_rows: request.max_rows };
    let stream = run(session, request).await?;
    let mut exporter = format.exporter(ctx);
    let mut out: Vec<u8> = Vec::new();
    let summary = export::export(stream, exporter.as_mut(), Sink::Blocking(&mut out)).await?;
    Ok((out, summary))
}

pub async fn csv(pool: &Pool, sql: &str) -> Result<String, QueryError> {
    let (bytes, _) = export_bytes(pool, req(sql, Format::Csv), Format::Csv).await?;
    Ok(String::from_utf8(bytes).expect("utf8 csv"))
}

/// `psql --csv` as the analyst: the reference output.
pub fn psql_csv(cluster: &Cluster, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-X", "--csv", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p"])
        .arg(cluster.port().to_string())
        .args(["-U", USER, "-d", DB, "-c", sql])
        .env("PGPASSWORD", PW)
        .env("PGCLIENTENCODING", "UTF8")
        .env("PGSSLMODE", "disable")
        .output()
        .expect("run psql");
    assert!(out.status.success(), "psql failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf8 from psql")
}

/// What `psql` says of a statement: its CSV output, or the error it printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Psql {
    Csv(String),
    Error { sqlstate: String, message: String, position: Option<u32>, hint: Option<String> },
}

/// `psql --csv` as the analyst, errors included (`VERBOSITY=verbose` prints the SQLSTATE). The
/// position is read off psql's `LINE 1:` caret when the statement is one line and psql did not
/// shorten it.
pub fn psql_outcome(cluster: &Cluster, sql: &str) -> Psql {
    let out = Command::new("psql")
        .args(["-X", "--csv", "-v", "VERBOSITY=verbose", "-h", "127.0.0.1", "-p"])
        .arg(cluster.port().to_string())
        .args(["-U", USER, "-d", DB, "-c", sql])
        .env("PGPASSWORD", PW)
        .env("PGCLIENTENCODING", "UTF8")
        .env("PGSSLMODE", "disable")
        .output()
        .expect("run psql");
    if out.status.success() {
        return Psql::Csv(String::from_utf8(out.stdout).expect("utf8 from psql"));
    }
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let lines: Vec<&str> = err.lines().collect();
    let first = lines.iter().find_map(|l| l.strip_prefix("ERROR:  ")).unwrap_or_else(|| panic!("psql: {err}"));
    let (sqlstate, message) = first.split_once(": ").unwrap_or_else(|| panic!("psql: {err}"));
    let hint = lines.iter().find_map(|l| l.strip_prefix("HINT:  ")).map(str::to_string);
    let position = lines.iter().position(|l| l.starts_with("LINE 1: ")).and_then(|i| {
        let shown = &lines[i]["LINE 1: ".len()..];
        let caret = lines.get(i + 1)?;
        let col = caret.chars().position(|c| c == '^')?;
        let single_line = !sql.contains('\n') && !shown.starts_with("...") && !shown.ends_with("...");
        (single_line && shown == sql).then(|| (col - "LINE 1: ".chars().count() + 1) as u32)
    });
    Psql::Error { sqlstate: sqlstate.to_string(), message: message.to_string(), position, hint }
}

/// Parses RFC 4180 CSV (as psql writes it) into records of fields.
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    field.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            ',' => record.push(std::mem::take(&mut field)),
            '\n' => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            _ => field.push(c),
        }
    }
    records
}

/// Runs SQL as the superuser in the test database.
pub fn su(cluster: &Cluster, sql: &str) -> String {
    cluster.psql(DB, sql).expect("superuser sql")
}
