//! `sluice catalog` (discover a source's schema) and `sluice catalog diff` (compare two snapshots).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use sluice_catalog::{Catalog, DiscoverOptions, GetSecondSession, SecondSession};
use sluice_connect::Connector;

use crate::conn::ConnArgs;
use crate::exit::{self, Usage};
use crate::output::Output;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    #[command(flatten)]
    conn: ConnArgs,
    /// Only this schema (exact name; repeat for several). Default: every schema but the system ones.
    #[arg(long = "schema", value_name = "SCHEMA")]
    schemas: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Write here instead of standard output (`-`). A file is replaced only once discovery
    /// succeeded; a FIFO or character device is written in place; a symbolic link is followed.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Compare two snapshots written by `sluice catalog --format json`. Exit 0 when nothing
    /// changed, 1 when something did, 2 when a file cannot be read.
    Diff(DiffArgs),
}

#[derive(clap::Args, Debug)]
struct DiffArgs {
    /// The older snapshot.
    old: PathBuf,
    /// The newer snapshot.
    new: PathBuf,
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
    if let Some(Action::Diff(d)) = args.action {
        return diff(d);
    }
    // Opened first: a path that cannot be written fails before the (possibly long) discovery.
    let mut output = Output::open(args.output.as_deref())?;
    let spec = args.conn.resolve()?.map_err(|e| exit::usage_from(&e))?;
    let connector = match Connector::open(spec).await {
        Ok(c) => c,
        Err(e) => return Ok(exit::user_facing(&e)),
    };
    let mut session = match connector.connect().await {
        Ok(s) => s,
        Err(e) => return Ok(exit::user_facing(&e)),
    };
    // A large catalog is read over a second connection too (the server works on both at once).
    let second: GetSecondSession = Box::pin(async move {
        match connector.connect().await {
            Ok(s) => Some(SecondSession::Own(s)),
            Err(e) => {
                tracing::debug!("no second session for the discovery: {e}");
                None
            }
        }
    });
    let options = DiscoverOptions { schemas: args.schemas, ..Default::default() };
    let catalog = match sluice_catalog::discover_sharing(&mut session, &options, second).await {
        Ok(c) => c,
        Err(e) => return Ok(exit::user_facing(&e)),
    };
    drop(session);
    let written = render(&catalog, args.format, &mut output).and_then(|()| output.commit());
    let written = match (written, &args.output) {
        (Ok(()), _) => Ok(()),
        // A closed pipe (`sluice catalog | head`) is not an error worth a message.
        (Err(e), None) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        (Err(e), path) => Err(Usage::new(
            format!(
                "--output: cannot write {}: {e}",
                path.as_deref().unwrap_or(Path::new("standard output")).display()
            ),
            None,
        )),
    };
    // The process ends here: freeing a catalog's hundreds of thousands of small allocations one
    // by one would only delay the exit.
    std::mem::forget(catalog);
    written?;
    Ok(ExitCode::SUCCESS)
}

fn diff(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let old = read_snapshot(&args.old)?;
    let new = read_snapshot(&args.new)?;
    let d = sluice_catalog::diff(&old, &new);
    let text = match args.format {
        Format::Json => serde_json::to_string(&d)? + "\n",
        Format::Human => sluice_catalog::render_diff_human(&d),
    };
    write_stdout(text.as_bytes());
    Ok(if d.is_empty() { ExitCode::SUCCESS } else { exit::FAILURE })
}

fn read_snapshot(path: &Path) -> Result<Catalog, Usage> {
    let bytes = std::fs::read(path).map_err(|e| {
        Usage::new(
            format!("cannot read {}: {e}", path.display()),
            Some("give two files written by `sluice catalog --format json`".to_string()),
        )
    })?;
    Catalog::from_json(&bytes, &path.display().to_string()).map_err(|e| exit::usage_from(&e))
}

fn render(catalog: &Catalog, format: Format, w: impl Write) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::with_capacity(1 << 16, w);
    match format {
        Format::Json => {
            catalog.write_json(&mut w)?;
            w.write_all(b"\n")?;
        }
        Format::Human => w.write_all(sluice_catalog::render_human(catalog).as_bytes())?,
    }
    w.flush()
}

fn write_stdout(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`sluice catalog | head`) is not an error worth a message.
    let _ = out.write_all(bytes).and_then(|()| out.flush());
}
