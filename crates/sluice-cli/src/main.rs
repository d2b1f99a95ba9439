//! The `sluice` binary: parses flags once into typed arguments, runs one command, maps the
//! outcome to an exit code (0 success, 1 a check or query failed, 2 a bad invocation).
//!
//! Must not do: any work a library crate owns — it turns flags into library calls and library
//! results into text. `anyhow` lives here and only here.

mod alloc;
mod catalog;
mod conn;
mod demo;
mod doctor;
mod exit;
mod output;
mod query;
mod rotate;
mod serve;
mod setup;
mod token;
mod user;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Sluice: a controlled, read-only channel to PostgreSQL.
#[derive(Parser, Debug)]
#[command(name = "sluice", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check a source stage by stage (config, dns, tcp, ssh, tls, auth, server_version), then
    /// audit the user's privileges (read_only, schema_usage, table_select, default_privileges…),
    /// and say what to fix.
    Doctor(doctor::Args),
    /// Run one read-only statement and stream its rows as CSV (identical to `psql --csv`), JSON,
    /// NDJSON, Arrow IPC or Parquet. Exit 0 on success, 1 when the query failed, 2 for a bad
    /// invocation.
    Query(query::Args),
    /// Print the SQL a DBA runs (as a superuser, with psql) to create Sluice's read-only role.
    SetupSql(setup::Args),
    /// Discover every schema, table, view and column the user can see (`catalog diff OLD NEW`
    /// compares two snapshots).
    Catalog(catalog::Args),
    /// Run the workspace service: the HTTP API over the store (see README, "sluice serve").
    Serve(serve::Args),
    /// Run the whole service on this machine with nothing to prepare: a throwaway PostgreSQL
    /// with a small shop, a read-only user made by `setup-sql`, and `serve` with that database
    /// registered and discovered. Ctrl-C stops it and removes everything it made.
    Demo(demo::Args),
    /// Manage API tokens offline, against the store (`token create`).
    Token(token::Args),
    /// Manage people's accounts offline, against the store (`user list`, `user reset-password`).
    User(user::Args),
    /// Re-seal every secret in the store under a new master key, in one transaction (the data
    /// directory's key file is replaced safely; a key from SLUICE_MASTER_KEY is replaced by
    /// SLUICE_NEW_MASTER_KEY's, or by a new one printed once).
    RotateMasterKey(rotate::Args),
}

fn main() -> ExitCode {
    alloc::keep_large_blocks_unmapped_on_free();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { exit::bad_invocation() } else { ExitCode::SUCCESS };
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("SLUICE_LOG"))
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log written to a file or read by a program stays plain.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Catalog discovery and query export are one stream the client decodes while the server
    // produces it: on a single thread the decoder never contends with (or wakes) the driver's
    // connection task on another thread.
    let runtime = match &cli.command {
        Command::Catalog(_) | Command::Query(_) => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        _ => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Doctor(args) => doctor::run(args).await,
            Command::Query(args) => query::run(args).await,
            Command::SetupSql(args) => setup::run(args),
            Command::Catalog(args) => catalog::run(args).await,
            Command::Serve(args) => serve::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Token(args) => token::run(args).await,
            Command::User(args) => user::run(args).await,
            Command::RotateMasterKey(args) => rotate::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => exit::report(&e),
    }
}
