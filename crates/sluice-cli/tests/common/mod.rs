//! What every CLI test needs: the real `sluice` binary, run in a clean environment.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs `sluice ARGS` in `dir` with nothing from the caller's environment but `PATH`, and `HOME`
/// set to `dir` (so no real `~/.pgpass` or `PG*` variable leaks into a test).
pub fn sluice(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("HOME", dir)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("run sluice")
}

/// Output bytes as text, for assertions and failure messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
