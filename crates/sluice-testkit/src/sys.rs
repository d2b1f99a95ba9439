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

/// The name of the user this process runs as.
pub(crate) fn current_user() -> crate::Result<String> {
    let out = run(Command::new("id").arg("-un"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `pid` and every process below it (children, their children…), parents first.
pub(crate) fn process_tree(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(p) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // `pid (comm) state ppid …`: comm may contain spaces and parentheses.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|s| s.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parents.push((p, ppid));
            }
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(parents.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    tree
}

/// Sends `signal` (e.g. `KILL`, `STOP`, `CONT`) to each of `pids`; gone processes are ignored.
pub(crate) fn signal(pids: &[u32], signal: &str) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg("-s")
        .arg(signal)
        .args(pids.iter().map(u32::to_string))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// If this (test) process dies without unwinding, kills the process whose id is in `pid_file`
/// and its whole tree (frozen ones too), then runs `cleanup` (a shell snippet). Drop removes the
/// file first, so a normal teardown leaves the watchdog nothing to do and a reused pid is safe.
pub(crate) fn spawn_watchdog(pid_file: &Path, cleanup: &str) {
    let script = format!(
        "while kill -0 {me} 2>/dev/null; do sleep 1; done; \
         tree() {{ echo $1; for c in $(ps -o pid= --ppid $1); do tree $c; done; }}; \
         pid=$(cat '{file}' 2>/dev/null); \
         if [ -n \"$pid\" ]; then pids=$(tree $pid); kill -CONT $pids 2>/dev/null; kill -KILL $pids 2>/dev/null; fi; {cleanup}",
        me = std::process::id(),
        file = pid_file.display(),
    );
    let _ = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

/// Waits until `log` holds `needle` more than `seen_before` times while `child` runs: proof that
/// this very process bound its port (a bare port probe could be answered by another test's
/// server that grabbed the same free port first).
pub(crate) fn wait_for_log(
    child: &mut std::process::Child,
    log: &std::path::Path,
    needle: &str,
    seen_before: usize,
    deadline: std::time::Duration,
) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return false;
        }
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.matches(needle).count() > seen_before {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

/// How often `needle` already occurs in `log`.
pub(crate) fn log_count(log: &std::path::Path, needle: &str) -> usize {
    std::fs::read_to_string(log).unwrap_or_default().matches(needle).count()
}
