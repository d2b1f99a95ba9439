//! Connection flags shared by every command that talks to a source.

use std::path::{Path, PathBuf};

use sluice_core::{parse_dsn, pgpass, Secret, SourceSpec, SpecError};

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
        if spec.password.is_none() {
            spec.password = pgpass_password(&spec);
        }
        Ok(spec.validate().map(|()| spec))
    }
}

fn read_password_file(path: &Path) -> Result<Secret, Usage> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Usage::new(
            format!("--password-file: cannot read {}: {e}", path.display()),
            Some("give a readable file whose first line is the password".to_string()),
        )
    })?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(Usage::new(
            format!("--password-file: {} is empty", path.display()),
            Some("write the password on the first line".to_string()),
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
