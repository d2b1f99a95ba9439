//! Exit codes and the one place an error reaches the terminal.

use std::process::ExitCode;

use sluice_core::{ErrorKind, UserFacing};

pub const FAILURE: ExitCode = ExitCode::FAILURE;
/// Exit 2.
pub fn bad_invocation() -> ExitCode {
    ExitCode::from(2)
}

/// An invocation error: bad flags, unreadable input files. Exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Usage {
    pub message: String,
    pub hint: Option<String>,
}

impl Usage {
    pub fn new(message: impl Into<String>, hint: impl Into<Option<String>>) -> Usage {
        Usage { message: message.into(), hint: hint.into() }
    }
}

/// Prints `error: …` (and `hint: …`) once, and picks the exit code.
pub fn report(e: &anyhow::Error) -> ExitCode {
    if let Some(u) = e.downcast_ref::<Usage>() {
        eprintln!("error: {}", u.message);
        if let Some(h) = &u.hint {
            eprintln!("hint: {h}");
        }
        return bad_invocation();
    }
    eprintln!("error: {e:#}");
    FAILURE
}

/// An invocation error from a library error a person caused (bad spec, unknown schema, unreadable
/// snapshot).
pub fn usage_from(e: &dyn UserFacing) -> Usage {
    Usage::new(e.message(), e.hint())
}

/// Prints a library error (`error: …`, `hint: …`) and picks the exit code from its kind: 2 for
/// input the user must fix, 1 for everything else.
pub fn user_facing(e: &dyn UserFacing) -> ExitCode {
    eprintln!("error: {}", e.message());
    if let Some(h) = e.hint() {
        eprintln!("hint: {h}");
    }
    if e.kind() == ErrorKind::Config {
        bad_invocation()
    } else {
        FAILURE
    }
}
