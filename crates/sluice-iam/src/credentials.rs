//! AWS credentials and where they came from.

use std::fmt;
use std::path::PathBuf;
use std::time::SystemTime;

use sluice_core::Secret;

/// Which source of the chain supplied the credentials: reported by the doctor, never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (/ `AWS_SESSION_TOKEN`).
    Environment,
    /// A profile of the shared credentials or config file.
    Profile { profile: String, file: PathBuf },
    /// STS `AssumeRoleWithWebIdentity` with a token file (from the environment or a profile).
    WebIdentity { role_arn: String },
    /// The ECS (or EKS Pod Identity) container credentials endpoint.
    Ecs { uri: String },
    /// EC2 instance metadata, IMDSv2, for the instance profile's role.
    Imds { role: String },
    /// STS `AssumeRole` for `role_arn`, signed with credentials from `via`.
    AssumedRole { role_arn: String, via: Box<CredentialSource> },
}

impl CredentialSource {
    /// A short stable name: `environment`, `profile`, `web_identity`, `ecs`, `imds`,
    /// `assumed_role`.
    pub fn id(&self) -> &'static str {
        match self {
            CredentialSource::Environment => "environment",
            CredentialSource::Profile { .. } => "profile",
            CredentialSource::WebIdentity { .. } => "web_identity",
            CredentialSource::Ecs { .. } => "ecs",
            CredentialSource::Imds { .. } => "imds",
            CredentialSource::AssumedRole { .. } => "assumed_role",
        }
    }
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Environment => f.write_str("the environment (AWS_ACCESS_KEY_ID)"),
            CredentialSource::Profile { profile, file } => {
                write!(f, "profile `{profile}` in {}", file.display())
            }
            CredentialSource::WebIdentity { role_arn } => {
                write!(f, "web identity (STS AssumeRoleWithWebIdentity for {role_arn})")
            }
            CredentialSource::Ecs { uri } => write!(f, "ECS container credentials ({uri})"),
            CredentialSource::Imds { role } => write!(f, "EC2 instance metadata (IMDSv2, role `{role}`)"),
            CredentialSource::AssumedRole { role_arn, via } => write!(f, "role {role_arn} assumed with {via}"),
        }
    }
}

/// One set of AWS credentials. `Debug` shows the access key id and the source, never the secret
/// key or the session token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
    /// When temporary credentials stop working; `None` for long-term keys.
    pub expiry: Option<SystemTime>,
    pub source: CredentialSource,
}

impl Credentials {
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
        source: CredentialSource,
    ) -> Credentials {
        Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: Secret::new(secret_access_key),
            session_token: session_token.map(Secret::new),
            expiry: None,
            source,
        }
    }

    pub fn with_expiry(mut self, expiry: Option<SystemTime>) -> Credentials {
        self.expiry = expiry;
        self
    }

    pub(crate) fn to_aws(&self) -> aws_credential_types::Credentials {
        aws_credential_types::Credentials::new(
            &self.access_key_id,
            self.secret_access_key.expose(),
            self.session_token.as_ref().map(|t| t.expose().to_string()),
            self.expiry,
            "sluice",
        )
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &self.session_token)
            .field("expiry", &self.expiry)
            .field("source", &self.source)
            .finish()
    }
}
