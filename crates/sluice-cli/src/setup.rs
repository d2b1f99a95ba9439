//! `sluice setup-sql`: the DBA's script on stdout; a generated password, once, on stderr.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use sluice_core::UserFacing;
use sluice_doctor::{generate_password, setup_sql, SetupOptions, DEFAULT_STATEMENT_TIMEOUT};

use crate::conn::read_password_file;
use crate::exit::Usage;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The login role to create (or update when it exists).
    #[arg(long, value_name = "NAME")]
    user: String,
    /// The database the role reads; the script must run connected to it.
    #[arg(long, value_name = "DB")]
    database: String,
    /// A schema to read (repeatable). Required unless --read-all-data.
    #[arg(long = "schema", value_name = "SCHEMA")]
    schemas: Vec<String>,
    /// A role that creates or recreates tables, such as the one dbt, Fivetran or Airbyte connects
    /// as (repeatable): tables it makes later become readable too.
    #[arg(long = "elt-owner", value_name = "ROLE")]
    elt_owners: Vec<String>,
    /// Grant pg_read_all_data (PostgreSQL 14+) instead of per-schema privileges; the script
    /// refuses to run on an older server.
    #[arg(long)]
    read_all_data: bool,
    /// A file whose first line is the role's password. Without it a 32-character password is
    /// generated and printed once, on stderr.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (password, generated) = match &args.password_file {
        Some(path) => (read_password_file(path)?, false),
        None => (generate_password().map_err(|e| Usage::new(e.message(), e.hint()))?, true),
    };
    let script = setup_sql(&SetupOptions {
        user: args.user.clone(),
        database: args.database,
        schemas: args.schemas,
        elt_owners: args.elt_owners,
        read_all_data: args.read_all_data,
        password: password.clone(),
        statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
    })
    .map_err(|e| Usage::new(format!("setup-sql: {}", e.message()), e.hint()))?;
    let mut out = std::io::stdout().lock();
    match out.write_all(script.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => {}
        // A closed pipe is the reader's choice; the password is not shown for a script not read.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        Err(e) => return Err(anyhow::anyhow!("cannot write the script to stdout: {e}")),
    }
    if generated {
        eprintln!(
            "The password of role {} (shown only now; the script holds just its SCRAM verifier):\n{}",
            args.user,
            password.expose()
        );
    }
    Ok(ExitCode::SUCCESS)
}
