//! `sluice query`: one read-only statement, streamed to stdout or a file.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use sluice_connect::Connector;
use sluice_core::UserFacing;
use sluice_query::export::{self, ExportContext, ExportOptions, Exporter, Format, Sink, Summary};
use sluice_query::{QueryError, QueryRequest};

use crate::conn::ConnArgs;
use crate::exit::{self, Usage};
use crate::output::Output;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    conn: ConnArgs,
    /// The statement to run: one SELECT, VALUES, TABLE, WITH … SELECT, EXPLAIN or SHOW.
    #[arg(long, value_name = "SQL", conflicts_with = "file")]
    sql: Option<String>,
    /// Read the statement from this file (`-` for stdin). Without --sql or --file, stdin is read.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutFormat::Csv)]
    format: OutFormat,
    /// Write here instead of stdout (`-`). A file is replaced only when the query succeeded;
    /// a FIFO or character device is written in place; a symbolic link is followed.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Stop after N rows, cancel the rest on the server and mark the output as truncated.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_rows: Option<u64>,
    /// Cancel the statement on the server after this long: 500ms, 30s, 5m, 1h (a bare number is
    /// seconds). Default: the session's 5 min.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Refuse statements longer than this many bytes before parsing them.
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = sluice_query::gate::DEFAULT_MAX_SQL_BYTES,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    max_sql_bytes: usize,
    /// Cut every value longer than this many bytes (for a quick look at wide data): the kept
    /// part ends at a character boundary and is followed by `…[truncated N bytes]`; the columns
    /// concerned are named on stderr (and in JSON's `truncated_columns`).
    #[arg(long, value_name = "BYTES", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_cell_bytes: Option<usize>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutFormat {
    Csv,
    Json,
    Ndjson,
    Arrow,
    Parquet,
}

impl From<OutFormat> for Format {
    fn from(f: OutFormat) -> Format {
        match f {
            OutFormat::Csv => Format::Csv,
            OutFormat::Json => Format::Json,
            OutFormat::Ndjson => Format::Ndjson,
            OutFormat::Arrow => Format::Arrow,
            OutFormat::Parquet => Format::Parquet,
        }
    }
}

/// `500ms`, `30s`, `5m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num.parse().map_err(|_| format!("`{s}` is not a duration; write e.g. 500ms, 30s, 5m"))?;
    let secs = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit `{other}`; use ms, s, m or h")),
    };
    if !(secs > 0.0 && secs.is_finite()) || secs > 86_400.0 * 7.0 {
        return Err(format!("`{s}` must be more than zero and at most a week"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn read_sql(args: &Args) -> Result<String, Usage> {
    let from_stdin = || -> Result<String, Usage> {
        let mut sql = String::new();
        std::io::stdin()
            .read_to_string(&mut sql)
            .map_err(|e| Usage::new(format!("cannot read the statement from stdin: {e}"), None))?;
        Ok(sql)
    };
    let sql = match (&args.sql, &args.file) {
        (Some(sql), _) => sql.clone(),
        (None, Some(path)) if path == Path::new("-") => from_stdin()?,
        (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
            Usage::new(format!("--file: cannot read {}: {e}", path.display()), Some("give a readable SQL file".into()))
        })?,
        (None, None) if std::io::stdin().is_terminal() => {
            return Err(Usage::new(
                "no statement given".to_string(),
                Some("pass --sql 'SELECT …', --file query.sql, or pipe the SQL on stdin".into()),
            ))
        }
        (None, None) => from_stdin()?,
    };
    if sql.trim().is_empty() {
        return Err(Usage::new("the statement is empty".to_string(), Some("give one SELECT statement".into())));
    }
    Ok(sql)
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let sql = read_sql(&args)?;
    let spec = args.conn.resolve()?.map_err(|e| Usage::new(e.message(), e.hint()))?;
    let format = Format::from(args.format);
    let gate = sluice_query::gate::GateOptions { max_sql_bytes: args.max_sql_bytes };
    let request = QueryRequest {
        sql,
        max_rows: args.max_rows,
        timeout: args.timeout,
        flavor: format.flavor(),
        gate,
        ..Default::default()
    };
    // Refuse what the gate refuses before opening a connection — except a syntax error, for
    // which the server is asked where it is and why (it parses the text and runs nothing).
    let admitted = match sluice_query::gate::admit_with(&request.sql, &gate) {
        Ok(a) => a,
        Err(e @ QueryError::Syntax { .. }) => {
            let e = match Connector::open(spec).await {
                Ok(c) => match c.connect().await {
                    Ok(session) => sluice_query::explain_syntax_error(session, &request, e).await,
                    Err(_) => e,
                },
                Err(_) => e,
            };
            return Ok(fail(&e, &request.sql));
        }
        Err(e) => return Ok(fail(&e, &request.sql)),
    };
    let output = Output::open(args.output.as_deref())?;
    // Runs on main's single-threaded runtime: the session's connection task and the export share
    // one thread (the server and the Parquet encoder have their own).
    let sql = request.sql.clone();
    let options = ExportOptions { max_cell_bytes: args.max_cell_bytes };
    let outcome = execute(spec, (admitted, request), format, args.max_rows, options, output).await;
    match outcome {
        Ok(summary) => {
            note_truncation(&summary, args.max_rows);
            Ok(ExitCode::SUCCESS)
        }
        // `sluice query … | head`: the reader is gone; the statement was cancelled. Not an error.
        Err(e) if e.is_broken_pipe() => Ok(ExitCode::SUCCESS),
        Err(e) => Ok(fail(&e, &sql)),
    }
}

/// Connects, runs and exports into `output`, which is committed only when all went well (a
/// dropped one leaves a file as it was).
async fn execute(
    spec: sluice_core::SourceSpec,
    (admitted, request): (sluice_query::gate::Admitted, QueryRequest),
    format: Format,
    max_rows: Option<u64>,
    options: ExportOptions,
    mut output: Output,
) -> Result<Summary, QueryError> {
    let session = match Connector::open(spec).await {
        Ok(c) => c.connect().await,
        Err(e) => Err(e),
    };
    let session = match session {
        Ok(s) => s,
        Err(e) => return Err(QueryError::from(e)),
    };
    let cancel = session.cancel_handle();
    // Ctrl-C may come before the first row (a statement that sorts or sleeps first).
    let stream = with_interrupt(&cancel, sluice_query::run_admitted(session, admitted, request)).await?;
    let names: Vec<String> = stream.columns().iter().map(|c| c.name.clone()).collect();
    let mut exporter = format.exporter_with(ExportContext { max_rows }, options);
    let note_cut = |exporter: &dyn Exporter| {
        let cut: Vec<&str> =
            exporter.cut_columns().into_iter().filter_map(|i| names.get(i).map(String::as_str)).collect();
        if let (false, Some(cap)) = (cut.is_empty(), options.max_cell_bytes) {
            eprintln!(
                "sluice: values longer than {cap} bytes were cut (--max-cell-bytes), each ending with \
                 `…[truncated N bytes]`, in: {}",
                cut.join(", ")
            );
        }
    };
    let summary =
        with_interrupt(&cancel, export::export(stream, exporter.as_mut(), Sink::Blocking(&mut output))).await?;
    output.commit().map_err(QueryError::Output)?;
    note_cut(exporter.as_ref());
    note_lossy(exporter.as_ref(), &names);
    Ok(summary)
}

/// Names on stderr the columns whose text was not UTF-8 (a `SQL_ASCII` database) and was written
/// with U+FFFD: NDJSON has no place for it in band, and the other formats' own flag is easy to
/// miss. CSV writes the bytes as they are and never reports any.
fn note_lossy(exporter: &dyn Exporter, names: &[String]) {
    let lossy: Vec<&str> =
        exporter.lossy_columns().into_iter().filter_map(|i| names.get(i).map(String::as_str)).collect();
    if !lossy.is_empty() {
        eprintln!(
            "sluice: text that is not UTF-8 (the database's encoding is SQL_ASCII) was written with U+FFFD \
             for each invalid byte sequence in: {}; --format csv keeps the bytes as they are",
            lossy.join(", ")
        );
    }
}

/// Runs `work` until it ends or Ctrl-C; on Ctrl-C the statement is cancelled on the server
/// before this returns.
async fn with_interrupt<T>(
    cancel: &sluice_connect::CancelHandle,
    work: impl std::future::Future<Output = Result<T, QueryError>>,
) -> Result<T, QueryError> {
    tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => {
            let _ = tokio::time::timeout(Duration::from_secs(1), cancel.cancel()).await;
            Err(QueryError::Cancelled)
        }
    }
}

fn note_truncation(summary: &Summary, max_rows: Option<u64>) {
    if summary.truncated {
        eprintln!(
            "sluice: the result was truncated after {} rows (--max-rows {}); the rest was cancelled on the server",
            summary.rows,
            max_rows.unwrap_or(summary.rows)
        );
    }
}

/// Prints the error (message, the line it points at as psql shows it, then PostgreSQL's hint or
/// Sluice's) and returns the exit code: 2 for what the user must change in the invocation, 1 for
/// a query that failed.
fn fail(e: &QueryError, sql: &str) -> ExitCode {
    eprintln!("error: {}", e.message());
    if let Some(pointer) = e.position().and_then(|p| point_at(sql, p)) {
        eprintln!("{pointer}");
    }
    if let Some(h) = e.hint() {
        eprintln!("hint: {h}");
    }
    match e {
        QueryError::Invalid { .. } => exit::bad_invocation(),
        _ => exit::FAILURE,
    }
}

/// psql's pointer at an error position (1-based, in characters): the line holding it, prefixed
/// `LINE n: `, and a caret under the character. A long line is cut to a window around the
/// position, marked with `...`.
fn point_at(sql: &str, position: u32) -> Option<String> {
    const WINDOW: usize = 60;
    let chars: Vec<char> = sql.chars().collect();
    let at = usize::try_from(position).ok()?.checked_sub(1)?.min(chars.len());
    let line_start = chars[..at].iter().rposition(|&c| c == '\n').map_or(0, |i| i + 1);
    let line_end = chars[at..].iter().position(|&c| c == '\n' || c == '\r').map_or(chars.len(), |i| at + i);
    let line_no = chars[..line_start].iter().filter(|&&c| c == '\n').count() + 1;
    let (mut from, mut to) = (line_start, line_end);
    if to - from > WINDOW {
        from = at.saturating_sub(WINDOW / 2).max(line_start);
        to = (from + WINDOW).min(line_end);
        from = to.saturating_sub(WINDOW).max(line_start);
    }
    let head = if from > line_start { "..." } else { "" };
    let tail = if to < line_end { "..." } else { "" };
    // Tabs would move the caret: show them as single spaces, on both lines.
    let text: String = chars[from..to].iter().map(|&c| if c == '\t' { ' ' } else { c }).collect();
    let prefix = format!("LINE {line_no}: {head}");
    let caret_column = prefix.chars().count() + (at - from);
    Some(format!("{prefix}{text}{tail}\n{}^", " ".repeat(caret_column)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "0", "-1s", "5x", "abc", "9999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn points_like_psql() {
        assert_eq!(point_at("SELEC 1", 1).as_deref(), Some("LINE 1: SELEC 1\n        ^"));
        assert_eq!(point_at("SELECT 1\nFROM FROM t", 15).as_deref(), Some("LINE 2: FROM FROM t\n             ^"));
        // Characters, not bytes; the end of the text; a tab.
        assert_eq!(
            point_at("SELECT 'é', x FROM", 13).as_deref(),
            Some("LINE 1: SELECT 'é', x FROM\n                    ^")
        );
        assert_eq!(point_at("SELECT 1 +", 11).as_deref(), Some("LINE 1: SELECT 1 +\n                  ^"));
        assert_eq!(point_at("SELECT\t1 2", 10).as_deref(), Some("LINE 1: SELECT 1 2\n                 ^"));
        assert_eq!(point_at("SELECT 1", 0), None);
    }

    #[test]
    fn long_lines_are_cut_around_the_position() {
        let sql = format!("SELECT {} FROM FROM t", "a, ".repeat(40));
        let p = sql.find("FROM FROM").map(|i| i as u32 + 6).expect("position");
        let shown = point_at(&sql, p).expect("pointer");
        let (line, caret) = shown.split_once('\n').expect("two lines");
        assert!(line.starts_with("LINE 1: ...") && line.len() < 80, "{line}");
        assert_eq!(&line[caret.len() - 1..caret.len() + 4], "FROM ", "{shown}");
    }
}
