//! Connection flags shared by every command that talks to a source.

use std::path::{Path, PathBuf};

use sluice_core::{
    parse_dsn, pgpass, Auth, HostKeyCheck, KeySource, Network, RdsIam, Secret, SourceSpec, SpecError, SshSpec,
};

use crate::exit::Usage;

/// How to reach the database. Anything not given here comes from the `PG*` environment variables,
/// then Sluice's defaults (sslmode=require, port 5432, connect_timeout 10 s).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConnArgs {
    /// A libpq URI (postgresql://user@host:5432/db?sslmode=verify-full) or key=value string.
    /// Do not put the password here: it would show in the process list. Use --password-file.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// A file whose first line is the password.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// The name the server certificate must match, when the host is an IP address or a private
    /// endpoint.
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// How the database is reached: `direct`, or `private_endpoint` (dial the endpoint's DNS name,
    /// verify the certificate against --tls-server-name). --ssh-host implies `ssh`.
    #[arg(long, value_enum, value_name = "KIND")]
    pub network: Option<NetworkKind>,
    #[command(flatten)]
    pub ssh: SshArgs,
    #[command(flatten)]
    pub iam: IamArgs,
}

/// How the login proves itself.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthKind {
    /// The password (--password-file, PGPASSWORD, ~/.pgpass), or none.
    Password,
    /// AWS RDS IAM database authentication: a token signed with AWS credentials, new for every
    /// connection, valid 15 minutes.
    #[value(name = "rds_iam", alias = "rds-iam")]
    RdsIam,
}

/// AWS RDS IAM authentication. Credentials come from the standard AWS chain: environment,
/// shared files (AWS_PROFILE), web identity, ECS, EC2 instance metadata.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct IamArgs {
    /// `password` (default) or `rds_iam`.
    #[arg(long, value_enum, value_name = "METHOD")]
    pub auth: Option<AuthKind>,
    /// The database's AWS region (default: AWS_REGION, then AWS_DEFAULT_REGION).
    #[arg(long, value_name = "REGION")]
    pub aws_region: Option<String>,
    /// The RDS endpoint name the token is signed for, when the host dialled differs from it (a
    /// private endpoint, a tunnel's local name).
    #[arg(long, value_name = "HOST")]
    pub iam_sign_host: Option<String>,
    /// The RDS endpoint port the token is signed for, when it differs from the port dialled.
    #[arg(long, value_name = "PORT")]
    pub iam_sign_port: Option<u16>,
    /// An IAM role to assume (STS AssumeRole) with the chain's credentials; its temporary
    /// credentials sign the token.
    #[arg(long, value_name = "ARN")]
    pub aws_role_arn: Option<String>,
    /// The external id the role's trust policy requires.
    #[arg(long, value_name = "ID", requires = "aws_role_arn")]
    pub aws_external_id: Option<String>,
    /// The role session's name (default: sluice).
    #[arg(long, value_name = "NAME", requires = "aws_role_arn")]
    pub aws_role_session_name: Option<String>,
}

impl IamArgs {
    /// The auth method; IAM-only flags without `--auth rds_iam` are an invocation error.
    fn auth(&self) -> Result<Auth, Usage> {
        if self.auth != Some(AuthKind::RdsIam) {
            let stray = [
                (self.aws_region.is_some(), "--aws-region"),
                (self.iam_sign_host.is_some(), "--iam-sign-host"),
                (self.iam_sign_port.is_some(), "--iam-sign-port"),
                (self.aws_role_arn.is_some(), "--aws-role-arn"),
                (self.aws_external_id.is_some(), "--aws-external-id"),
                (self.aws_role_session_name.is_some(), "--aws-role-session-name"),
            ];
            if let Some((_, flag)) = stray.iter().find(|(given, _)| *given) {
                return Err(Usage::new(format!("{flag} needs --auth rds_iam"), None));
            }
            return Ok(Auth::Password);
        }
        let region = self
            .aws_region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()))
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok().filter(|r| !r.is_empty()))
            .ok_or_else(|| {
                Usage::new(
                    "--auth rds_iam needs the database's region",
                    Some("give --aws-region REGION (or set AWS_REGION)".to_string()),
                )
            })?;
        if let Some(arn) = self.aws_role_arn.as_deref().filter(|a| !sluice_core::is_role_arn(a)) {
            return Err(Usage::new(
                format!("--aws-role-arn: `{arn}` is not an IAM role ARN"),
                Some("give the role's ARN as IAM shows it, e.g. arn:aws:iam::123456789012:role/sluice-reader".into()),
            ));
        }
        Ok(Auth::RdsIam(RdsIam {
            region,
            sign_host: self.iam_sign_host.clone(),
            sign_port: self.iam_sign_port,
            role_arn: self.aws_role_arn.clone(),
            external_id: self.aws_external_id.clone(),
            role_session_name: self.aws_role_session_name.clone(),
        }))
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkKind {
    Direct,
    #[value(name = "private_endpoint", alias = "private-endpoint")]
    PrivateEndpoint,
}

/// An SSH bastion in front of the database. Its host key is always verified: give the pinned
/// fingerprint or a known_hosts file.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SshArgs {
    /// The bastion's host name; the database host is then resolved and dialled by the bastion.
    #[arg(long, value_name = "HOST")]
    pub ssh_host: Option<String>,
    #[arg(long, value_name = "PORT", default_value_t = 22, requires = "ssh_host")]
    pub ssh_port: u16,
    #[arg(long, value_name = "USER", requires = "ssh_host")]
    pub ssh_user: Option<String>,
    /// Private key file (OpenSSH, PEM or PKCS#8; ed25519, ECDSA or RSA).
    #[arg(long, value_name = "FILE", requires = "ssh_host")]
    pub ssh_key: Option<PathBuf>,
    /// A file whose first line is the key's passphrase.
    #[arg(long, value_name = "FILE", requires = "ssh_key")]
    pub ssh_key_passphrase_file: Option<PathBuf>,
    /// The bastion's pinned host key fingerprint, as `ssh-keygen -lf` prints it (SHA256:…).
    #[arg(long, value_name = "SHA256:…", requires = "ssh_host", conflicts_with = "ssh_known_hosts")]
    pub ssh_host_key: Option<String>,
    /// An OpenSSH known_hosts file that lists the bastion.
    #[arg(long, value_name = "FILE", requires = "ssh_host")]
    pub ssh_known_hosts: Option<PathBuf>,
}

impl SshArgs {
    /// The bastion, when one is given. Missing pieces are invocation errors naming the flag.
    fn spec(&self) -> Result<Option<SshSpec>, Usage> {
        let Some(host) = &self.ssh_host else { return Ok(None) };
        let user = self.ssh_user.clone().ok_or_else(|| Usage::new("--ssh-user is required with --ssh-host", None))?;
        let key = self.ssh_key.clone().ok_or_else(|| {
            Usage::new(
                "--ssh-key is required with --ssh-host",
                Some("give the private key file the bastion accepts".to_string()),
            )
        })?;
        let host_key = match (&self.ssh_host_key, &self.ssh_known_hosts) {
            (Some(fp), _) => HostKeyCheck::Fingerprint(fp.clone()),
            (None, Some(file)) => HostKeyCheck::KnownHosts(file.clone()),
            (None, None) => {
                return Err(Usage::new(
                    "the bastion's host key must be pinned: give --ssh-host-key SHA256:… or --ssh-known-hosts FILE",
                    Some("on a trusted machine: ssh-keyscan BASTION | ssh-keygen -lf -".to_string()),
                ))
            }
        };
        let passphrase = match &self.ssh_key_passphrase_file {
            Some(path) => Some(read_secret_file(path, "--ssh-key-passphrase-file")?),
            None => None,
        };
        Ok(Some(SshSpec {
            host: host.clone(),
            port: self.ssh_port,
            user,
            private_key: Some(KeySource::File(key)),
            passphrase,
            host_key,
        }))
    }
}

impl ConnArgs {
    /// The source spec, or the reason the flags do not make one (reported by the caller's
    /// `config` check). Unreadable files are invocation errors.
    pub fn resolve(&self) -> Result<Result<SourceSpec, SpecError>, Usage> {
        let password = match &self.password_file {
            Some(path) => Some(read_password_file(path)?),
            None => None,
        };
        let env = |k: &str| std::env::var(k).ok();
        let mut spec = match parse_dsn(self.url.as_deref(), &env) {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        if let Some(pw) = password {
            spec.password = Some(pw);
        }
        if let Some(name) = &self.tls_server_name {
            spec.tls_server_name = Some(name.clone());
        }
        match (self.ssh.spec()?, self.network) {
            (Some(_), Some(NetworkKind::PrivateEndpoint)) => {
                return Err(Usage::new("--network private_endpoint and --ssh-host exclude each other", None))
            }
            (Some(ssh), _) => spec.network = Network::Ssh(ssh),
            (None, Some(NetworkKind::PrivateEndpoint)) => spec.network = Network::PrivateEndpoint,
            (None, Some(NetworkKind::Direct)) => spec.network = Network::Direct,
            (None, None) => {}
        }
        spec.auth = self.iam.auth()?;
        if spec.password.is_none() && spec.auth == Auth::Password {
            spec.password = pgpass_password(&spec);
        }
        Ok(spec.validate().map(|()| spec))
    }
}

/// The first line of a password file; an unreadable or empty file is a bad invocation.
pub(crate) fn read_password_file(path: &Path) -> Result<Secret, Usage> {
    read_secret_file(path, "--password-file")
}

/// The first line of a secret file; the flag is named in every error.
fn read_secret_file(path: &Path, flag: &str) -> Result<Secret, Usage> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Usage::new(
            format!("{flag}: cannot read {}: {e}", path.display()),
            Some("give a readable file whose first line is the secret".to_string()),
        )
    })?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(Usage::new(
            format!("{flag}: {} is empty", path.display()),
            Some("write the secret on the first line".to_string()),
        ));
    }
    Ok(Secret::new(line))
}

/// `~/.pgpass`, as libpq reads it: ignored (with a warning) when others can read it.
fn pgpass_password(spec: &SourceSpec) -> Option<Secret> {
    let home = std::env::var_os("HOME")?;
    let path = Path::new(&home).join(".pgpass");
    let meta = std::fs::metadata(&path).ok()?;
    if std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o077 != 0 {
        eprintln!("warning: {} is readable by others and is ignored; chmod 600 it", path.display());
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let host = spec.primary_host()?;
    pgpass::lookup(&text, &host.host, host.port, &spec.database, &spec.user)
}
