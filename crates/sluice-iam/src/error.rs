//! What can go wrong finding credentials or signing a token. No message ever carries a secret
//! key, a session token or a token.

use sluice_core::{ErrorKind, UserFacing};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IamError {
    /// Every source of the chain was tried and none is configured.
    #[error("no AWS credentials found for the RDS IAM token (looked at: {tried})")]
    NoCredentials { tried: String },
    /// A source is configured but did not give credentials (a half-set environment, a broken
    /// profile, STS or a metadata endpoint refusing).
    #[error("AWS credentials from {provider}: {message}")]
    Source { provider: &'static str, message: String, hint: String, kind: ErrorKind },
    /// The token could not be signed.
    #[error("cannot sign the RDS IAM token: {0}")]
    Sign(String),
}

impl IamError {
    pub(crate) fn source(provider: &'static str, message: impl Into<String>, hint: impl Into<String>) -> IamError {
        IamError::Source { provider, message: message.into(), hint: hint.into(), kind: ErrorKind::Config }
    }

    /// A source that was reached over the network and failed there.
    pub(crate) fn network(provider: &'static str, message: impl Into<String>, hint: impl Into<String>) -> IamError {
        IamError::Source { provider, message: message.into(), hint: hint.into(), kind: ErrorKind::Network }
    }
}

impl UserFacing for IamError {
    fn kind(&self) -> ErrorKind {
        match self {
            IamError::NoCredentials { .. } => ErrorKind::Config,
            IamError::Source { kind, .. } => *kind,
            IamError::Sign(_) => ErrorKind::Internal,
        }
    }

    fn message(&self) -> String {
        self.to_string()
    }

    fn hint(&self) -> Option<String> {
        match self {
            IamError::NoCredentials { .. } => Some(
                "give Sluice AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), \
                 a profile in ~/.aws/credentials or ~/.aws/config (AWS_PROFILE), a web identity \
                 (AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN), an ECS task role, or an EC2 instance role"
                    .into(),
            ),
            IamError::Source { hint, .. } => Some(hint.clone()),
            IamError::Sign(_) => None,
        }
    }
}
