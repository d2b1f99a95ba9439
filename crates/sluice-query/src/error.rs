use sluice_connect::tokio_postgres;
use sluice_connect::ConnectError;
use sluice_core::{ErrorKind, UserFacing};

/// Everything that can end a query request. Database errors keep PostgreSQL's own SQLSTATE,
/// message, detail, hint and position (mapped back onto the text the user sent).
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("the request holds no SQL statement")]
    Empty,
    /// A statement the gate could not parse. The gate's parser gives the message only; the
    /// SQLSTATE (42601 unless the server said otherwise: 22025 for a bad escape), the position
    /// and the hint are the server's when it was asked ([`explain_syntax_error`](crate::explain_syntax_error)).
    #[error("{message}")]
    Syntax {
        message: String,
        /// 1-based character position of the failing token in the request text, as PostgreSQL
        /// counts it.
        position: Option<u32>,
        code: String,
        hint: Option<String>,
    },
    #[error("refused: {message}")]
    Refused { message: String, hint: String },
    #[error("{0}")]
    Connect(#[from] ConnectError),
    #[error("{message} (SQLSTATE {code})")]
    Database {
        code: String,
        message: String,
        detail: Option<String>,
        hint: Option<String>,
        /// 1-based character position in the request text, as PostgreSQL counts it.
        position: Option<u32>,
    },
    #[error("the query did not finish within {millis} ms and was cancelled on the server")]
    Timeout { millis: u64 },
    #[error("the query was cancelled")]
    Cancelled,
    #[error("the connection was lost while the query ran: {reason}; the result is incomplete")]
    Lost { reason: String },
    #[error("could not write the output: {0}")]
    Output(#[source] std::io::Error),
    #[error("could not encode the output: {0}")]
    Encode(String),
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("internal error: {0}")]
    Internal(String),
}

impl QueryError {
    /// The SQLSTATE, when PostgreSQL sent one (or the gate's equivalent for a syntax error).
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            QueryError::Database { code, .. } => Some(code),
            QueryError::Syntax { code, .. } => Some(code),
            QueryError::Timeout { .. } | QueryError::Cancelled => Some("57014"),
            QueryError::Connect(e) => e.sqlstate(),
            _ => None,
        }
    }

    /// Where in the request text the error is: a 1-based character position, as PostgreSQL
    /// counts it.
    pub fn position(&self) -> Option<u32> {
        match self {
            QueryError::Database { position, .. } | QueryError::Syntax { position, .. } => *position,
            _ => None,
        }
    }

    /// A syntax error found by the gate, with the grammar's SQLSTATE (42601).
    pub(crate) fn syntax(message: String, position: Option<u32>) -> QueryError {
        QueryError::Syntax { message, position, code: "42601".into(), hint: None }
    }

    /// True when the output sink went away (a closed pipe): the caller stops quietly.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, QueryError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// Maps a driver error. `position_shift` is subtracted from the server's position (the
    /// characters Sluice put in front of the user's statement); `user_offset` is added (where the
    /// statement starts in the request). `timeout_ms` tells a statement timeout from a cancel.
    pub(crate) fn from_driver(
        e: tokio_postgres::Error,
        position_shift: usize,
        user_offset: usize,
        timeout_ms: Option<u64>,
    ) -> QueryError {
        let Some(db) = e.as_db_error() else {
            return QueryError::Lost {
                reason: if e.is_closed() { "the server closed the connection".into() } else { e.to_string() },
            };
        };
        let code = db.code().code().to_string();
        if code == "57014" {
            if db.message().contains("statement timeout") {
                return QueryError::Timeout { millis: timeout_ms.unwrap_or(0) };
            }
            return QueryError::Cancelled;
        }
        // 57P01 admin shutdown / terminated, 57P02 crash shutdown, 57P03 cannot connect now,
        // 57P05 idle session timeout; 08xxx connection exceptions.
        if code.starts_with("57P") || code.starts_with("08") {
            return QueryError::Lost { reason: format!("{} (SQLSTATE {code})", db.message()) };
        }
        let position = match db.position() {
            Some(tokio_postgres::error::ErrorPosition::Original(p)) => {
                let p = *p as usize;
                (p > position_shift).then(|| (p - position_shift + user_offset) as u32)
            }
            _ => None,
        };
        QueryError::Database {
            code,
            message: db.message().to_string(),
            detail: db.detail().map(str::to_string),
            hint: db.hint().map(str::to_string),
            position,
        }
    }
}

impl UserFacing for QueryError {
    fn kind(&self) -> ErrorKind {
        match self {
            QueryError::Empty | QueryError::Syntax { .. } | QueryError::Refused { .. } | QueryError::Invalid { .. } => {
                ErrorKind::Config
            }
            QueryError::Connect(e) => e.kind(),
            QueryError::Database { .. } => ErrorKind::Database,
            QueryError::Timeout { .. } => ErrorKind::Timeout,
            QueryError::Cancelled => ErrorKind::Cancelled,
            QueryError::Lost { .. } => ErrorKind::Network,
            QueryError::Output(_) | QueryError::Encode(_) | QueryError::Internal(_) => ErrorKind::Internal,
        }
    }

    fn message(&self) -> String {
        match self {
            QueryError::Database { message, .. } | QueryError::Syntax { message, .. } => {
                let mut m = format!("{message} (SQLSTATE {})", self.sqlstate().unwrap_or_default());
                if let Some(p) = self.position() {
                    m.push_str(&format!(" at character {p}"));
                }
                if let QueryError::Database { detail: Some(d), .. } = self {
                    m.push_str(&format!("\nDETAIL: {d}"));
                }
                m
            }
            other => other.to_string(),
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            QueryError::Refused { hint, .. } => Some(hint.clone()),
            QueryError::Syntax { hint, .. } => hint.clone(),
            QueryError::Empty => Some("give the SQL with --sql, --file or on stdin".into()),
            QueryError::Connect(e) => e.hint(),
            QueryError::Database { hint, code, .. } => hint.clone().or_else(|| match code.as_str() {
                "25006" => Some("Sluice runs every query in a read-only transaction".into()),
                "42501" => Some("the role lacks a privilege on that object; ask its owner for SELECT".into()),
                _ => None,
            }),
            QueryError::Timeout { .. } => Some("raise --timeout, or narrow the query".into()),
            QueryError::Lost { .. } => {
                Some("the server closed the session (restart, terminated backend, dropped tunnel); retry".into())
            }
            _ => None,
        }
    }
}
