//! What a connector holds for an `rds_iam` source: a token per connection attempt.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sluice_core::{HostPort, RdsIam, Secret};

use crate::assume::{assume_role, RoleRequest};
use crate::token::{self, TokenRequest};
use crate::{chain, Credentials, Env, IamError};

/// The role session name when the source names none.
pub const DEFAULT_SESSION_NAME: &str = "sluice";

/// The time tokens are signed at: the system clock, or a fixed one in tests.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Credentials are fetched again this long before they expire, and long-term ones at least this
/// often (a rotated key file is then picked up).
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);
const MAX_CACHE: Duration = Duration::from_secs(900);

/// Signs a fresh token for every login. Tokens are never cached; credentials are, until shortly
/// before they expire. Cheap to clone (shared cache).
#[derive(Clone)]
pub struct IamAuth {
    spec: RdsIam,
    env: Arc<Env>,
    clock: Clock,
    /// The role session name when the spec gives none.
    session_name: String,
    cached: Arc<Mutex<Option<(Credentials, SystemTime)>>>,
}

impl std::fmt::Debug for IamAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IamAuth").field("spec", &self.spec).finish_non_exhaustive()
    }
}

impl IamAuth {
    /// Credentials from `env` (usually [`Env::from_process`]), signed at the system clock.
    pub fn new(spec: RdsIam, env: Env) -> IamAuth {
        IamAuth {
            spec,
            env: Arc::new(env),
            clock: Arc::new(SystemTime::now),
            session_name: DEFAULT_SESSION_NAME.to_string(),
            cached: Arc::new(Mutex::new(None)),
        }
    }

    /// The role session name used when the spec names a role but no session name, e.g.
    /// `sluice-<source>` (cut to STS's 64 characters).
    pub fn with_session_name(mut self, name: impl Into<String>) -> IamAuth {
        let name: String = name.into().chars().take(64).collect();
        if sluice_core::is_session_name(&name) {
            self.session_name = name;
        }
        self
    }

    /// The role session name an `AssumeRole` uses.
    pub fn session_name(&self) -> &str {
        self.spec.role_session_name.as_deref().unwrap_or(&self.session_name)
    }

    /// Signs at `clock`'s time instead of the system's.
    pub fn with_clock(mut self, clock: Clock) -> IamAuth {
        self.clock = clock;
        self
    }

    pub fn spec(&self) -> &RdsIam {
        &self.spec
    }

    /// The credentials: cached ones while they are fresh, else the chain's — or, when the spec
    /// names a role, the role's, assumed with the chain's. Cached credentials are reused until
    /// shortly before they expire, never past it.
    pub async fn credentials(&self) -> Result<Credentials, IamError> {
        let now = (self.clock)();
        if let Ok(cached) = self.cached.lock() {
            if let Some((creds, until)) = cached.as_ref() {
                if now < *until {
                    return Ok(creds.clone());
                }
            }
        }
        let mut creds = chain::resolve(&self.env, &self.spec.region).await?;
        if let Some(role_arn) = &self.spec.role_arn {
            let role = RoleRequest {
                role_arn,
                external_id: self.spec.external_id.as_deref(),
                session_name: self.session_name(),
                region: &self.spec.region,
            };
            creds = assume_role(&self.env, &creds, &role, now).await?;
        }
        let mut until = now + MAX_CACHE;
        if let Some(expiry) = creds.expiry {
            until = until.min(expiry.checked_sub(REFRESH_BEFORE_EXPIRY).unwrap_or(expiry));
        }
        tracing::debug!(source = %creds.source, "AWS credentials for the RDS IAM token");
        if let Ok(mut cached) = self.cached.lock() {
            *cached = Some((creds.clone(), until));
        }
        Ok(creds)
    }

    /// A new token for logging in as `user` to `dialled` (signed for the spec's `sign_host` /
    /// `sign_port` when given).
    pub async fn token(&self, dialled: &HostPort, user: &str) -> Result<Secret, IamError> {
        let creds = self.credentials().await?;
        self.token_with(&creds, dialled, user)
    }

    /// A new token from credentials already at hand.
    pub fn token_with(&self, creds: &Credentials, dialled: &HostPort, user: &str) -> Result<Secret, IamError> {
        let target = self.spec.signed_for(dialled);
        let request = TokenRequest { host: &target.host, port: target.port, user, region: &self.spec.region };
        token::generate(creds, &request, (self.clock)())
    }
}

/// Why a server refuses an IAM token, in the order a DBA should check: one line each.
pub fn login_failure_causes(region: &str, user: &str) -> Vec<String> {
    vec![
        format!("the role lacks rds_iam: GRANT rds_iam TO \"{user}\";"),
        "IAM database authentication is disabled on the instance or cluster: enable it \
         (aws rds modify-db-instance --enable-iam-database-authentication --apply-immediately)"
            .to_string(),
        format!(
            "the IAM policy of the credentials lacks rds-db:connect on \
             arn:aws:rds-db:{region}:ACCOUNT:dbuser:DBI-RESOURCE-ID/{user} (the instance's resource id, \
             db-…, not its name; cluster-… for Aurora)"
        ),
        "the clock of the machine running Sluice is off by more than a few minutes: the token is \
         valid 15 minutes from its X-Amz-Date (sync it with NTP)"
            .to_string(),
    ]
}
