//! Exit codes and the one place an error reaches the terminal.

use std::process::ExitCode;

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
