//! `sluice catalog` (discover a source's schema) and `sluice catalog diff` (compare two snapshots).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use sluice_catalog::{Catalog, DiscoverOptions};
use sluice_connect::Connector;

use crate::conn::ConnArgs;
use crate::exit::{self, Usage};

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
    /// Write to this file instead of standard output (replaced only once discovery succeeded).
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
    if let Some(path) = &args.output {
        check_writable_dir(path)?;
    }
    let spec = args.conn.resolve()?.map_err(|e| exit::usage_from(&e))?;
    let mut session = match Connector::new(spec) {
        Ok(c) => match c.connect().await {
            Ok(s) => s,
            Err(e) => return Ok(exit::user_facing(&e)),
        },
        Err(e) => return Ok(exit::user_facing(&e)),
    };
    let catalog = match sluice_catalog::discover(&mut session, &DiscoverOptions { schemas: args.schemas }).await {
        Ok(c) => c,
        Err(e) => return Ok(exit::user_facing(&e)),
    };
    drop(session);
    let written = match &args.output {
        Some(path) => write_file(path, |w| render(&catalog, args.format, w)),
        None => {
            // A closed pipe (`sluice catalog | head`) is not an error worth a message.
            let _ = render(&catalog, args.format, std::io::stdout().lock());
            Ok(())
        }
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

/// Fails before the (possibly long) discovery when the output could not be written anyway.
fn check_writable_dir(path: &Path) -> Result<(), Usage> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if dir.is_dir() {
        Ok(())
    } else {
        Err(Usage::new(
            format!("--output: {} is not a directory", dir.display()),
            Some("create the directory first, or write to standard output".to_string()),
        ))
    }
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

/// Writes next to `path` and renames, so a reader never sees half a snapshot.
fn write_file(path: &Path, write: impl FnOnce(std::fs::File) -> std::io::Result<()>) -> Result<(), Usage> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let result = std::fs::File::create(&tmp).and_then(write).and_then(|()| std::fs::rename(&tmp, path));
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Usage::new(format!("--output: cannot write {}: {e}", path.display()), None)
    })
}

fn write_stdout(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`sluice catalog | head`) is not an error worth a message.
    let _ = out.write_all(bytes).and_then(|()| out.flush());
}
