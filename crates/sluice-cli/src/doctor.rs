//! `sluice doctor`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use sluice_doctor::{DoctorInput, Report, Status};

use crate::conn::ConnArgs;
use crate::exit;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    conn: ConnArgs,
    /// A schema to audit (repeatable); each one named must exist and be usable. Default: every
    /// schema but pg_catalog, information_schema and pg_toast.
    #[arg(long = "schema", value_name = "SCHEMA")]
    schemas: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Print, instead of the report, one SQL script with every privilege fix the report suggests,
    /// for a superuser to run with psql (idempotent, in one transaction).
    #[arg(long, conflicts_with = "format")]
    fix_sql: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let spec = args.conn.resolve()?;
    let report = sluice_doctor::run(DoctorInput { spec, schemas: args.schemas }).await;
    let text = if args.fix_sql {
        eprintln!("{}", fix_sql_note(&report));
        report.fix_sql()
    } else {
        match args.format {
            Format::Json => report.to_json() + "\n",
            Format::Human => render_human(&report, std::io::stdout().is_terminal()),
        }
    };
    let mut out = std::io::stdout().lock();
    // A closed pipe (`sluice doctor | head`) is not an error worth a message.
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    Ok(if report.ok { ExitCode::SUCCESS } else { exit::FAILURE })
}

/// One line on stderr next to `--fix-sql`'s script, so the verdict is not lost.
fn fix_sql_note(report: &Report) -> String {
    let count = |s: Status| report.checks.iter().filter(|c| c.status == s).count();
    let (fail, warn) = (count(Status::Fail), count(Status::Warn));
    let failed: Vec<&str> = report.checks.iter().filter(|c| c.status == Status::Fail).map(|c| c.id.as_ref()).collect();
    format!(
        "sluice doctor: {fail} check(s) failed{}, {warn} warned; the fix script for the privilege checks is on stdout",
        if failed.is_empty() { String::new() } else { format!(" ({})", failed.join(", ")) }
    )
}

/// The report for a person: one line per check, details and fixes indented below.
pub fn render_human(report: &Report, color: bool) -> String {
    let paint = |code: &str, s: &str| if color { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() };
    let src = &report.source;
    let mut out = format!(
        "sluice doctor: {}@{}:{}/{} (sslmode={}, network={})\n",
        src.user.as_deref().unwrap_or("?"),
        src.host.as_deref().unwrap_or("?"),
        src.port.map(|p| p.to_string()).unwrap_or_else(|| "?".into()),
        src.database.as_deref().unwrap_or("?"),
        src.sslmode.as_deref().unwrap_or("?"),
        src.network.as_deref().unwrap_or("?"),
    );
    for c in &report.checks {
        let (mark, code) = match c.status {
            Status::Pass => ("pass", "32"),
            Status::Warn => ("warn", "33"),
            Status::Fail => ("FAIL", "31;1"),
            Status::Skip => ("skip", "2"),
        };
        out.push_str(&format!("  {} {:<16} {} ({} ms)\n", paint(code, mark), c.id, c.summary, c.elapsed_ms));
        if let Some(d) = &c.detail {
            for line in d.lines() {
                out.push_str(&format!("         {line}\n"));
            }
        }
        if let Some(f) = &c.fix {
            let mut lines = f.lines();
            if let Some(first) = lines.next() {
                out.push_str(&format!("         fix: {first}\n"));
            }
            for line in lines {
                out.push_str(&format!("              {line}\n"));
            }
        }
    }
    let verdict = if report.ok { paint("32", "ok") } else { paint("31;1", "FAILED") };
    out.push_str(&format!(
        "{verdict}{}\n",
        report.server_version.as_ref().map(|v| format!(" (PostgreSQL {v})")).unwrap_or_default()
    ));
    out
}
