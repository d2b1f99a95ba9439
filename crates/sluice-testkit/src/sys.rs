use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Why a test server could not be prepared. Tests fail with this text, so it says what to install.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    #[error("no PostgreSQL server binaries found: set PG_BIN to a directory with initdb, pg_ctl and postgres, or `apt-get install postgresql`")]
    NoPgBin,
    #[error("`{program}` could not be started: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("`{program}` failed ({status}): {stderr}")]
    Failed { program: String, status: String, stderr: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("certificate generation failed: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("{0}")]
    Other(String),
}

/// The PostgreSQL server binaries: `$PG_BIN`, then `initdb` on `PATH`, then the newest
/// `/usr/lib/postgresql/*/bin`.
pub fn pg_bin_dir() -> crate::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let initdb = dir.join("initdb");
            if initdb.is_file() {
                // Resolve Debian's /usr/local/bin symlinks so pg_ctl finds its sibling postgres.
                let real = std::fs::canonicalize(&initdb).unwrap_or(initdb);
                if let Some(parent) = real.parent() {
                    return Ok(parent.to_path_buf());
                }
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| crate::TestkitError::NoPgBin)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p).ok_or(crate::TestkitError::NoPgBin)
}

/// A loopback port that was free a moment ago. Callers retry on a bind race.
pub fn free_port() -> crate::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

pub(crate) fn is_root() -> bool {
    // SAFETY-free check: `id -u` avoids a libc dependency for one syscall.
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// The uid and gid of the unprivileged user that runs servers when the tests run as root.
pub(crate) fn service_user_ids(user: &str) -> crate::Result<(u32, u32)> {
    let out = run(Command::new("id").arg("-u").arg(user))?;
    let uid = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| crate::TestkitError::Other(format!("no user `{user}`")))?;
    let out = run(Command::new("id").arg("-g").arg(user))?;
    let gid = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| crate::TestkitError::Other(format!("no group for `{user}`")))?;
    Ok((uid, gid))
}

/// A command for `program`, run as `as_user` when the tests run as root (PostgreSQL, PgBouncer
/// and sshd's helpers refuse root or need a real user).
pub(crate) fn command_as(as_user: Option<&str>, program: &Path) -> Command {
    match as_user {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.arg("-u").arg(user).arg("--").arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// Runs to completion; a non-zero exit is an error carrying stderr.
pub(crate) fn run(cmd: &mut Command) -> crate::Result<Output> {
    let program = format!("{:?}", cmd.get_program());
    let out = cmd.output().map_err(|source| crate::TestkitError::Spawn { program: program.clone(), source })?;
    if !out.status.success() {
        return Err(crate::TestkitError::Failed {
            program: format!("{program} {:?}", cmd.get_args().collect::<Vec<_>>()),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
        });
    }
    Ok(out)
}

/// Hands a path to the service user (recursively), so the server can own its data directory.
pub(crate) fn chown_tree(path: &Path, ids: (u32, u32)) -> crate::Result<()> {
    std::os::unix::fs::chown(path, Some(ids.0), Some(ids.1))?;
    if path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), ids)?;
        }
    }
    Ok(())
}
