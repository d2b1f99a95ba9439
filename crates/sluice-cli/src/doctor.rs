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
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let spec = args.conn.resolve()?;
    let report = sluice_doctor::run(DoctorInput { spec, schemas: Vec::new() }).await;
    let text = match args.format {
        Format::Json => report.to_json() + "\n",
        Format::Human => render_human(&report, std::io::stdout().is_terminal()),
    };
    let mut out = std::io::stdout().lock();
    // A closed pipe (`sluice doctor | head`) is not an error worth a message.
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    Ok(if report.ok { ExitCode::SUCCESS } else { exit::FAILURE })
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
