//! What every CLI test needs: the real `sluice` binary, run in a clean environment.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// Runs `sluice ARGS` in `dir` with nothing from the caller's environment but `PATH`, and `HOME`
/// set to `dir` (so no real `~/.pgpass` or `PG*` variable leaks into a test).
pub fn sluice(args: &[&str], dir: &Path) -> Output {
    sluice_with(args, dir, &[])
}

/// [`sluice`] with these environment variables as well (e.g. `SLUICE_LOG=trace`).
pub fn sluice_with(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("HOME", dir)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .expect("run sluice")
}

/// Output bytes as text, for assertions and failure messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The doctor report check with this id (`Null` when absent).
pub fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"].as_array().and_then(|c| c.iter().find(|c| c["id"] == id)).unwrap_or(&Value::Null)
}

/// A check's status, or `missing`.
pub fn status_of<'a>(report: &'a Value, id: &str) -> &'a str {
    check(report, id)["status"].as_str().unwrap_or("missing")
}
