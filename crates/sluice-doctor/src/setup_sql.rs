//! `sluice setup-sql`: the script a DBA runs once, as a superuser with psql, to create Sluice's
//! read-only login role — and may run again safely.
//!
//! The script runs in one transaction and checks everything before it changes anything: the
//! database it is connected to, that each schema and ELT owner exists, and (for
//! `--read-all-data`) that the server is PostgreSQL 14 or newer.
//!
//! The password never appears in the script: it is stored as a SCRAM-SHA-256 verifier computed
//! here (as psql's `\password` does), so server logs, `pg_stat_statements` and the file itself
//! never hold it. The caller shows the password once.

use std::time::Duration;

use sluice_core::{ErrorKind, Secret, UserFacing};

use crate::quote::{comment, dollar, ident, literal};

/// How long one statement of the role may run before the server cancels it.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(300);
/// Length of a generated password; 62 symbols, so about 190 bits.
pub const PASSWORD_LEN: usize = 32;
/// PostgreSQL truncates longer names (NAMEDATALEN - 1).
const MAX_NAME_BYTES: usize = 63;

/// What the DBA asked for.
#[derive(Debug, Clone)]
pub struct SetupOptions {
    /// The login role to create (or update).
    pub user: String,
    /// The database it reads; the script must run connected to it.
    pub database: String,
    /// Schemas to read; required unless `read_all_data`.
    pub schemas: Vec<String>,
    /// Roles that create or recreate tables (dbt, Fivetran, Airbyte…): tables they make later
    /// become readable too.
    pub elt_owners: Vec<String>,
    /// Use `pg_read_all_data` (PostgreSQL 14+) instead of per-schema grants.
    pub read_all_data: bool,
    pub password: Secret,
    /// Default [`DEFAULT_STATEMENT_TIMEOUT`].
    pub statement_timeout: Duration,
}

/// Why no script could be written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SetupError {
    #[error("{field} is empty")]
    Empty { field: &'static str },
    #[error("{field} `{value}` contains a NUL character, which PostgreSQL does not allow")]
    Nul { field: &'static str, value: String },
    #[error("{field} `{value}` is longer than PostgreSQL's 63-byte limit for names")]
    TooLong { field: &'static str, value: String },
    #[error("{field} `{value}` is reserved by PostgreSQL")]
    Reserved { field: &'static str, value: String },
    #[error("no schema given")]
    NoSchemas,
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
}

impl UserFacing for SetupError {
    fn kind(&self) -> ErrorKind {
        match self {
            SetupError::Random(_) => ErrorKind::Internal,
            _ => ErrorKind::Config,
        }
    }

    fn message(&self) -> String {
        self.to_string()
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            SetupError::Empty { field } => format!("give a non-empty {field}"),
            SetupError::Nul { field, .. } => format!("remove the NUL character from the {field}"),
            SetupError::TooLong { field, .. } => format!("choose a {field} of at most 63 bytes"),
            SetupError::Reserved { field, .. } => {
                format!("choose a {field} that does not start with pg_ and is not public or none")
            }
            SetupError::NoSchemas => {
                "name the schemas to read with --schema (repeatable), or use --read-all-data on PostgreSQL 14+".into()
            }
            SetupError::Random(_) => "retry, or give the password with --password-file".into(),
        })
    }
}

/// A 32-character password from the OS CSPRNG, letters and digits only (safe in a URI, a
/// `.pgpass` line and a shell).
pub fn generate_password() -> Result<Secret, SetupError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // Bytes ≥ 248 are dropped so that every symbol is equally likely (248 = 4 × 62).
    let mut out = String::with_capacity(PASSWORD_LEN);
    let mut buf = [0u8; 64];
    while out.len() < PASSWORD_LEN {
        getrandom::fill(&mut buf).map_err(|e| SetupError::Random(e.to_string()))?;
        for b in buf {
            if out.len() == PASSWORD_LEN {
                break;
            }
            if usize::from(b) < ALPHABET.len() * 4 {
                if let Some(c) = ALPHABET.get(usize::from(b) % ALPHABET.len()) {
                    out.push(char::from(*c));
                }
            }
        }
    }
    Ok(Secret::new(out))
}

fn check_name(field: &'static str, value: &str) -> Result<(), SetupError> {
    if value.is_empty() {
        return Err(SetupError::Empty { field });
    }
    if value.contains('\0') {
        return Err(SetupError::Nul { field, value: value.replace('\0', "\\0") });
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(SetupError::TooLong { field, value: value.into() });
    }
    Ok(())
}

fn check_role(field: &'static str, value: &str) -> Result<(), SetupError> {
    check_name(field, value)?;
    if value.starts_with("pg_") || value == "public" || value == "none" {
        return Err(SetupError::Reserved { field, value: value.into() });
    }
    Ok(())
}

fn unique(items: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for i in items {
        if !out.contains(i) {
            out.push(i.clone());
        }
    }
    out
}

fn do_block(body: &str) -> String {
    format!("DO {};", dollar(body))
}

/// The DBA's script. Every identifier is quoted by PostgreSQL's rules; every statement is
/// idempotent.
pub fn setup_sql(opts: &SetupOptions) -> Result<String, SetupError> {
    check_role("user", &opts.user)?;
    check_name("database", &opts.database)?;
    let schemas = unique(&opts.schemas);
    let owners = unique(&opts.elt_owners);
    for s in &schemas {
        check_name("schema", s)?;
    }
    for o in &owners {
        check_name("ELT owner", o)?;
    }
    if schemas.is_empty() && !opts.read_all_data {
        return Err(SetupError::NoSchemas);
    }
    if opts.password.is_empty() {
        return Err(SetupError::Empty { field: "password" });
    }
    if opts.password.expose().contains('\0') {
        return Err(SetupError::Nul { field: "password", value: "(hidden)".into() });
    }
    let user = ident(&opts.user);
    let db = ident(&opts.database);
    let verifier = postgres_protocol::password::scram_sha_256(opts.password.expose().as_bytes());
    let timeout_ms = opts.statement_timeout.as_millis().max(1);

    let mut out = vec![
        comment(&format!(
            "Sluice: read-only access for role {user} to database {db}{}.",
            if opts.read_all_data {
                " through pg_read_all_data".to_string()
            } else {
                format!(
                    ", schema{} {}",
                    if schemas.len() == 1 { "" } else { "s" },
                    schemas.iter().map(|s| ident(s)).collect::<Vec<_>>().join(", ")
                )
            }
        )),
        comment("Run it as a superuser with psql, connected to that database. It runs in one"),
        comment("transaction, checks everything before it changes anything, and can run again."),
        comment("The password is stored as a SCRAM-SHA-256 verifier: the password itself is not here."),
        "\\set ON_ERROR_STOP on".into(),
        "BEGIN;".into(),
        String::new(),
        comment("Preflight: the right database, and everything named exists."),
        do_block(&preflight(opts, &schemas, &owners)),
        String::new(),
        comment("The login role: created when absent; its password and attributes set either way."),
        do_block(&format!(
            "BEGIN\n  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {}) THEN\n    CREATE ROLE {user};\n  END IF;\nEND",
            literal(&opts.user)
        )),
        format!(
            "ALTER ROLE {user} WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD {};",
            literal(&verifier)
        ),
        format!("GRANT CONNECT ON DATABASE {db} TO {user};"),
        String::new(),
    ];
    if opts.read_all_data {
        out.push(comment("Read every table, view and sequence, now and later (PostgreSQL 14+)."));
        out.push(format!("GRANT pg_read_all_data TO {user};"));
        out.push(String::new());
    } else {
        for s in &schemas {
            out.extend(schema_grants(&opts.user, s, &owners));
        }
    }
    out.push(comment(&format!("Sessions of {user} are read-only by default, bounded in time, and logged.")));
    for setting in [
        "default_transaction_read_only = on".to_string(),
        format!("statement_timeout = {timeout_ms}"),
        "log_statement = 'all'".to_string(),
        "log_duration = on".to_string(),
    ] {
        out.push(format!("ALTER ROLE {user} SET {setting};"));
    }
    out.push(String::new());
    out.extend(public_create(&owners));
    out.push("COMMIT;".into());
    Ok(out.join("\n") + "\n")
}

fn preflight(opts: &SetupOptions, schemas: &[String], owners: &[String]) -> String {
    let mut body = vec![
        "BEGIN".to_string(),
        format!("  IF current_database() <> {} THEN", literal(&opts.database)),
        format!(
            "    RAISE EXCEPTION 'this script is for database %, but it is connected to database %', {}, current_database()\n      USING HINT = 'connect to that database (psql -d) and run it again';",
            literal(&opts.database)
        ),
        "  END IF;".into(),
    ];
    if opts.read_all_data {
        body.push("  IF current_setting('server_version_num')::int < 140000 THEN".into());
        body.push(
            "    RAISE EXCEPTION 'pg_read_all_data needs PostgreSQL 14 or newer, and this server runs %', current_setting('server_version')\n      USING HINT = 'generate the script again without --read-all-data, naming the schemas with --schema';"
                .into(),
        );
        body.push("  END IF;".into());
    }
    for s in schemas {
        body.push(format!("  IF NOT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = {}) THEN", literal(s)));
        body.push(format!(
            "    RAISE EXCEPTION 'schema % does not exist in database %', {}, current_database();",
            literal(s)
        ));
        body.push("  END IF;".into());
    }
    for o in owners {
        body.push(format!("  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {}) THEN", literal(o)));
        body.push(format!(
            "    RAISE EXCEPTION 'ELT owner role % does not exist', {}\n      USING HINT = 'name the role your ELT tool connects as (the owner of the tables it creates)';",
            literal(o)
        ));
        body.push("  END IF;".into());
    }
    body.push("END".into());
    body.join("\n")
}

fn schema_grants(user_name: &str, schema_name: &str, owners: &[String]) -> Vec<String> {
    let user = ident(user_name);
    let s = ident(schema_name);
    let mut out = vec![
        comment(&format!("Schema {s}: what exists now.")),
        format!("GRANT USAGE ON SCHEMA {s} TO {user};"),
        format!("GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {user};"),
        format!("GRANT SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {user};"),
    ];
    if owners.is_empty() {
        out.push(comment(&format!(
            "Schema {s}: what the role running this script creates later. ALTER DEFAULT PRIVILEGES"
        )));
        out.push(comment("covers only tables created by the role it names; if an ELT tool (dbt, Fivetran,"));
        out.push(comment("Airbyte…) creates or recreates tables as another role, generate this script again"));
        out.push(comment("with --elt-owner ROLE, or those tables become unreadable on their next rebuild."));
        out.push(format!("ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT ON TABLES TO {user};"));
        out.push(format!("ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT ON SEQUENCES TO {user};"));
        out.push(String::new());
        return out;
    }
    out.push(comment(&format!("Schema {s}: what the ELT owners and the schema owner create or recreate later.")));
    for o in owners {
        for what in ["TABLES", "SEQUENCES"] {
            out.push(format!(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {s} GRANT SELECT ON {what} TO {user};",
                ident(o)
            ));
        }
    }
    // The schema owner is whoever owns it when the script runs; pg_database_owner (which owns
    // schema public from 15 on) creates nothing itself, so the database owner stands in for it.
    out.push(do_block(&format!(
        "DECLARE\n  creator name;\nBEGIN\n  SELECT CASE WHEN r.rolname = 'pg_database_owner' THEN pg_catalog.pg_get_userbyid(d.datdba) ELSE r.rolname END\n    INTO creator\n    FROM pg_catalog.pg_namespace n\n    JOIN pg_catalog.pg_roles r ON r.oid = n.nspowner\n    JOIN pg_catalog.pg_database d ON d.datname = current_database()\n   WHERE n.nspname = {schema};\n  EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT SELECT ON TABLES TO %I', creator, {schema}, {user_lit});\n  EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT SELECT ON SEQUENCES TO %I', creator, {schema}, {user_lit});\nEND",
        schema = literal(schema_name),
        user_lit = literal(user_name),
    )));
    out.push(String::new());
    out
}

/// Before PostgreSQL 15 every role may create objects in schema public, so no role is read-only
/// there. CREATE is taken from PUBLIC wherever PUBLIC holds it (15's default) and given back to
/// each ELT owner.
fn public_create(owners: &[String]) -> Vec<String> {
    let regrant: String = owners
        .iter()
        .map(|o| format!("    EXECUTE format('GRANT CREATE ON SCHEMA %I TO %I', s, {});\n", literal(o)))
        .collect();
    vec![
        comment("No role may create objects through PUBLIC (the default from PostgreSQL 15 on;"),
        comment("older servers let every role create in schema public). Roles that create objects"),
        comment("there need their own GRANT CREATE; the ELT owners named get it back here."),
        do_block(&format!(
            "DECLARE\n  s name;\nBEGIN\n  FOR s IN\n    SELECT n.nspname FROM pg_catalog.pg_namespace n, pg_catalog.aclexplode(n.nspacl) a\n     WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'\n       AND a.grantee = 0 AND a.privilege_type = 'CREATE'\n  LOOP\n    EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC', s);\n{regrant}    RAISE NOTICE 'revoked CREATE on schema % from PUBLIC', s;\n  END LOOP;\nEND"
        )),
        String::new(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> SetupOptions {
        SetupOptions {
            user: "sluice_ro".into(),
            database: "Sales Data".into(),
            schemas: vec!["analytics".into(), "Order\"Items".into(), "analytics".into()],
            elt_owners: vec!["etl_user".into()],
            read_all_data: false,
            password: Secret::new("correct horse battery staple"),
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
        }
    }

    #[test]
    fn passwords_are_32_alphanumerics_and_differ() {
        let a = generate_password().expect("password");
        let b = generate_password().expect("password");
        assert_eq!(a.expose().len(), PASSWORD_LEN);
        assert!(a.expose().chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn the_script_never_holds_the_password() {
        let sql = setup_sql(&opts()).expect("script");
        assert!(!sql.contains("correct horse"), "{sql}");
        assert!(sql.contains("PASSWORD 'SCRAM-SHA-256$4096:"), "{sql}");
    }

    #[test]
    fn every_identifier_is_quoted_and_schemas_appear_once() {
        let sql = setup_sql(&opts()).expect("script");
        assert!(sql.contains("GRANT CONNECT ON DATABASE \"Sales Data\" TO sluice_ro;"));
        assert_eq!(sql.matches("GRANT USAGE ON SCHEMA \"Order\"\"Items\" TO sluice_ro;").count(), 1);
        assert_eq!(sql.matches("GRANT USAGE ON SCHEMA analytics TO").count(), 1);
        assert!(sql.contains(
            "ALTER DEFAULT PRIVILEGES FOR ROLE etl_user IN SCHEMA analytics GRANT SELECT ON TABLES TO sluice_ro;"
        ));
        assert!(sql.contains("WHERE n.nspname = 'Order\"Items';"));
        assert!(sql.contains("IF current_database() <> 'Sales Data' THEN"));
        assert!(sql.contains("ALTER ROLE sluice_ro SET statement_timeout = 300000;"));
        assert!(sql.starts_with("-- Sluice: read-only access for role sluice_ro"));
        assert!(sql.ends_with("COMMIT;\n"));
    }

    #[test]
    fn without_elt_owners_only_the_running_role_is_covered_and_the_script_says_so() {
        let sql = setup_sql(&SetupOptions { elt_owners: vec![], ..opts() }).expect("script");
        assert!(!sql.contains("FOR ROLE"));
        assert!(sql.contains("ALTER DEFAULT PRIVILEGES IN SCHEMA analytics GRANT SELECT ON TABLES TO sluice_ro;"));
        assert!(sql.contains("--elt-owner ROLE"));
    }

    #[test]
    fn read_all_data_checks_the_version_in_the_script() {
        let sql = setup_sql(&SetupOptions { read_all_data: true, schemas: vec![], ..opts() }).expect("script");
        assert!(sql.contains("GRANT pg_read_all_data TO sluice_ro;"));
        assert!(sql.contains("server_version_num')::int < 140000"));
        assert!(!sql.contains("GRANT USAGE"));
    }

    #[test]
    fn bad_input_names_the_field() {
        let cases = [
            (SetupOptions { user: "".into(), ..opts() }, SetupError::Empty { field: "user" }),
            (
                SetupOptions { user: "pg_x".into(), ..opts() },
                SetupError::Reserved { field: "user", value: "pg_x".into() },
            ),
            (SetupOptions { schemas: vec![], ..opts() }, SetupError::NoSchemas),
            (
                SetupOptions { schemas: vec!["x".repeat(64)], ..opts() },
                SetupError::TooLong { field: "schema", value: "x".repeat(64) },
            ),
            (
                SetupOptions { elt_owners: vec!["a\0b".into()], ..opts() },
                SetupError::Nul { field: "ELT owner", value: "a\\0b".into() },
            ),
            (SetupOptions { password: Secret::new(""), ..opts() }, SetupError::Empty { field: "password" }),
        ];
        for (o, want) in cases {
            let got = setup_sql(&o).expect_err("must be refused");
            assert_eq!(got, want);
            assert!(got.hint().is_some());
        }
    }
}
