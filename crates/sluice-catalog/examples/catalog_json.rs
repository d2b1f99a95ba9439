//! Discovers a catalog and writes it as JSON to stdout through the library alone (what
//! `sluice catalog --format json` does), with phase timings for profiling; `bench/catalog.sh`
//! times the CLI itself.
//!
//!     cargo run --release -p sluice-catalog --example catalog_json -- 'postgresql://…' [--timings]
//!
//! `--timings` prints connect / discover / write times to stderr.

use std::io::Write;
use std::time::Instant;

use sluice_catalog::{discover, DiscoverOptions};
use sluice_connect::Connector;
use sluice_core::UserFacing;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let timings = args.iter().any(|a| a == "--timings");
    let dsn = args.iter().find(|a| !a.starts_with("--")).cloned();
    let env = |k: &str| std::env::var(k).ok();
    let report = |what: &str, message: String, hint: Option<String>| {
        eprintln!("error: {what}: {message}");
        if let Some(h) = hint {
            eprintln!("hint: {h}");
        }
        std::process::ExitCode::from(2)
    };
    let t0 = Instant::now();
    let spec = match sluice_core::parse_dsn(dsn.as_deref(), &env) {
        Ok(s) => s,
        Err(e) => return report("connection string", e.message(), e.hint()),
    };
    let mut session = match Connector::new(spec) {
        Ok(c) => match c.connect().await {
            Ok(s) => s,
            Err(e) => return report("connect", e.message(), e.hint()),
        },
        Err(e) => return report("connect", e.message(), e.hint()),
    };
    let t1 = Instant::now();
    let catalog = match discover(&mut session, &DiscoverOptions::default()).await {
        Ok(c) => c,
        Err(e) => return report("discover", e.message(), e.hint()),
    };
    let t2 = Instant::now();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let written = serde_json::to_writer(&mut out, &catalog)
        .map_err(std::io::Error::from)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(e) = written {
        return report("write", e.to_string(), None);
    }
    let t3 = Instant::now();
    if timings {
        eprintln!(
            "connect {:.0} ms, discover {:.0} ms, write {:.0} ms, total {:.0} ms",
            (t1 - t0).as_secs_f64() * 1e3,
            (t2 - t1).as_secs_f64() * 1e3,
            (t3 - t2).as_secs_f64() * 1e3,
            (t3 - t0).as_secs_f64() * 1e3
        );
    }
    std::process::ExitCode::SUCCESS
}
