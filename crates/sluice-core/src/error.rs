/// What kind of thing went wrong, once, for every error Sluice reports. The CLI maps it to an exit
/// code, the server to an HTTP status and a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The source spec or an argument is wrong; the user fixes their input.
    Config,
    /// The network path to the database failed (DNS, TCP, SSH, TLS).
    Network,
    /// The server refused the credentials or the pg_hba rules.
    Auth,
    /// The database answered with an error (it carries a SQLSTATE).
    Database,
    /// A deadline passed.
    Timeout,
    /// The request was cancelled by its caller.
    Cancelled,
    /// Sluice itself failed; a bug.
    Internal,
}

/// The one way an error reaches a person. Implemented by each library's error enum; deliberately
/// not implemented for `anyhow::Error`, so an error whose text was never reviewed for secrets
/// cannot be shown by accident.
pub trait UserFacing {
    fn kind(&self) -> ErrorKind;
    /// One sentence: what happened. Never contains a password, key or full DSN.
    fn message(&self) -> String;
    /// What to do about it, when Sluice knows.
    fn hint(&self) -> Option<String> {
        None
    }
}
