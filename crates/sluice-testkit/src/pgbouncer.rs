use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::sys::{chown_tree, free_port, is_root, service_user_ids, spawn_watchdog, wait_for_log};
use crate::{Cluster, TestkitError};

/// How to run PgBouncer. `Default`: transaction pooling with 2 server connections per
/// database/user pair, so concurrent clients really do share (and swap) server connections.
#[derive(Debug, Clone)]
pub struct PgBouncerOptions {
    /// `pool_mode`: `session`, `transaction` or `statement`.
    pub pool_mode: String,
    /// `default_pool_size`.
    pub default_pool_size: u32,
    /// Logins PgBouncer accepts (and uses towards the server): `(user, password)`.
    pub users: Vec<(String, String)>,
}

impl Default for PgBouncerOptions {
    fn default() -> Self {
        PgBouncerOptions { pool_mode: "transaction".into(), default_pool_size: 2, users: Vec::new() }
    }
}

/// A real PgBouncer (Debian's) in front of one [`Cluster`], on `127.0.0.1` and a free port,
/// with scram-sha-256 client authentication from an auth_file. Runs as the `postgres` user when
/// the tests run as root (PgBouncer refuses root). Killed on drop.
pub struct PgBouncer {
    dir: TempDir,
    port: u16,
    child: Option<Child>,
}

impl std::fmt::Debug for PgBouncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBouncer").field("port", &self.port).finish()
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

impl PgBouncer {
    pub fn start(cluster: &Cluster, opts: PgBouncerOptions) -> crate::Result<PgBouncer> {
        let binary =
            std::env::var_os("PGBOUNCER").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/sbin/pgbouncer"));
        if !binary.is_file() {
            return Err(TestkitError::Other(format!(
                "no pgbouncer at {}: `apt-get install pgbouncer` or set PGBOUNCER",
                binary.display()
            )));
        }
        let dir = tempfile::Builder::new().prefix("sluice-pgbouncer-").tempdir()?;
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        let auth: String = opts.users.iter().map(|(u, p)| format!("{} {}\n", quote(u), quote(p))).collect();
        std::fs::write(dir.path().join("users.txt"), auth)?;
        let mut last = None;
        for _ in 0..5 {
            let port = free_port()?;
            let ini = format!(
                "[databases]\n* = host={host} port={pg}\n\n[pgbouncer]\n\
                 listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = scram-sha-256\nauth_file = {dir}/users.txt\n\
                 pool_mode = {mode}\ndefault_pool_size = {size}\nmax_client_conn = 200\n\
                 server_tls_sslmode = disable\nlogfile = {dir}/pgbouncer.log\n\
                 pidfile = {dir}/pgbouncer.pid\nignore_startup_parameters = extra_float_digits\n",
                host = cluster.host(),
                pg = cluster.port(),
                dir = dir.path().display(),
                mode = opts.pool_mode,
                size = opts.default_pool_size,
            );
            std::fs::write(dir.path().join("pgbouncer.ini"), ini)?;
            let ids = if is_root() {
                let ids = service_user_ids(&std::env::var("PG_RUN_AS").unwrap_or_else(|_| "postgres".into()))?;
                chown_tree(dir.path(), ids)?;
                Some(ids)
            } else {
                None
            };
            let stderr = File::create(dir.path().join("stderr.log"))?;
            let mut cmd = match ids {
                // setpriv execs in place, so the child's pid is PgBouncer's own.
                Some((uid, gid)) => {
                    let mut c = Command::new("setpriv");
                    c.arg(format!("--reuid={uid}")).arg(format!("--regid={gid}")).arg("--clear-groups").arg(&binary);
                    c
                }
                None => Command::new(&binary),
            };
            let mut child = cmd
                .arg(dir.path().join("pgbouncer.ini"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .map_err(|source| TestkitError::Spawn { program: "pgbouncer".into(), source })?;
            std::fs::write(dir.path().join("child.pid"), child.id().to_string())?;
            let log = dir.path().join("pgbouncer.log");
            if wait_for_log(&mut child, &log, &format!("listening on 127.0.0.1:{port}"), 0, Duration::from_secs(10)) {
                let bouncer = PgBouncer { dir, port, child: Some(child) };
                spawn_watchdog(&bouncer.dir.path().join("child.pid"), "");
                return Ok(bouncer);
            }
            let _ = child.kill();
            let _ = child.wait();
            last = Some(TestkitError::Other(format!(
                "pgbouncer did not start on port {port}:\n{}{}",
                std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default(),
                std::fs::read_to_string(dir.path().join("pgbouncer.log")).unwrap_or_default()
            )));
        }
        Err(last.unwrap_or_else(|| TestkitError::Other("pgbouncer did not start".into())))
    }

    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// PgBouncer's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.dir.path().join("child.pid"));
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_in_transaction_mode() -> crate::Result<()> {
        let cluster = Cluster::start_default()?;
        cluster.create_login("app", "pw")?;
        let bouncer = PgBouncer::start(
            &cluster,
            PgBouncerOptions { users: vec![("app".into(), "pw".into())], ..Default::default() },
        )?;
        let out = std::process::Command::new("psql")
            .args(["-X", "-A", "-t", "-h", "127.0.0.1", "-p"])
            .arg(bouncer.port().to_string())
            .args(["-U", "app", "-d", "postgres", "-c", "SELECT current_user"])
            .env("PGPASSWORD", "pw")
            .env("PGSSLMODE", "disable")
            .output()?;
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "app",
            "{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            bouncer.log()
        );
        let wrong = std::process::Command::new("psql")
            .args(["-X", "-h", "127.0.0.1", "-p"])
            .arg(bouncer.port().to_string())
            .args(["-U", "app", "-d", "postgres", "-c", "SELECT 1"])
            .env("PGPASSWORD", "wrong")
            .env("PGSSLMODE", "disable")
            .output()?;
        assert!(!wrong.status.success());
        Ok(())
    }
}
