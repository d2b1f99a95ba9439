use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

use crate::sys::{chown_tree, command_as, free_port, is_root, pg_bin_dir, run, service_user_ids};
use crate::{CertPair, TestkitError};

/// The bootstrap superuser of every test cluster.
pub const SUPERUSER: &str = "postgres";
/// Its password unless [`ClusterOptions::superuser_password`] names another (test clusters
/// listen on loopback only).
pub const SUPERUSER_PASSWORD: &str = "testkit-superuser";

/// TLS material for the server: its certificate and key, and the CA that signs client
/// certificates (for `cert` authentication).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub server: CertPair,
    pub client_ca_pem: Option<String>,
}

/// One `pg_hba.conf` line, spelled out so a test reads like the DBA's file.
#[derive(Debug, Clone)]
pub enum HbaRule {
    /// `host all all 127.0.0.1/32 scram-sha-256` (TLS or not).
    HostScram,
    /// `hostssl all all 127.0.0.1/32 scram-sha-256`.
    HostSslScram,
    /// `hostssl all ROLE 127.0.0.1/32 cert`.
    HostSslCert { role: String },
    /// Anything else, verbatim.
    Raw(String),
}

impl HbaRule {
    fn line(&self) -> String {
        match self {
            HbaRule::HostScram => "host all all 127.0.0.1/32 scram-sha-256".into(),
            HbaRule::HostSslScram => "hostssl all all 127.0.0.1/32 scram-sha-256".into(),
            HbaRule::HostSslCert { role } => format!("hostssl all {role} 127.0.0.1/32 cert"),
            HbaRule::Raw(s) => s.clone(),
        }
    }
}

/// How to start a cluster. `Default` gives plaintext-only scram auth on loopback.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Server binaries; default [`pg_bin_dir`].
    pub bin_dir: Option<PathBuf>,
    pub tls: Option<TlsFiles>,
    /// `pg_hba.conf` rules in order; empty means `HostScram` (and replication for the superuser).
    pub hba: Vec<HbaRule>,
    /// Extra `postgresql.conf` settings, e.g. `("max_connections", "20")`.
    pub settings: Vec<(String, String)>,
    /// The bootstrap superuser's password; default [`SUPERUSER_PASSWORD`]. A cluster that
    /// outlives a test (a demo) takes a random one.
    pub superuser_password: Option<String>,
}

/// A throwaway PostgreSQL cluster on `127.0.0.1` and a free port, stopped and deleted on drop.
pub struct Cluster {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    run_as: Option<String>,
    superuser_password: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("port", &self.port).field("dir", &self.dir.path()).finish()
    }
}

impl Cluster {
    /// initdb + start with the defaults.
    pub fn start_default() -> crate::Result<Cluster> {
        Cluster::start(ClusterOptions::default())
    }

    pub fn start(opts: ClusterOptions) -> crate::Result<Cluster> {
        let bin = match &opts.bin_dir {
            Some(b) => b.clone(),
            None => pg_bin_dir()?,
        };
        let run_as = is_root().then(|| std::env::var("PG_RUN_AS").unwrap_or_else(|_| "postgres".into()));
        let dir = tempfile::Builder::new().prefix("sluice-pg-").tempdir()?;
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        let pwfile = dir.path().join("pw");
        let superuser_password = opts.superuser_password.clone().unwrap_or_else(|| SUPERUSER_PASSWORD.to_string());
        std::fs::write(&pwfile, &superuser_password)?;
        if let Some(user) = &run_as {
            chown_tree(dir.path(), service_user_ids(user)?)?;
        }
        let data = dir.path().join("data");
        run(command_as(run_as.as_deref(), &bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", SUPERUSER, "-A", "scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"])
            .arg(format!("--pwfile={}", pwfile.display())))?;

        let mut conf = String::from(
            "\n# sluice-testkit\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 40\n\
             shared_buffers = '32MB'\npassword_encryption = 'scram-sha-256'\nmax_wal_senders = 4\n\
             wal_level = replica\nhot_standby = on\nlog_min_messages = warning\n",
        );
        if let Some(tls) = &opts.tls {
            write_private(&data.join("server.crt"), &tls.server.cert_pem)?;
            write_private(&data.join("server.key"), &tls.server.key_pem)?;
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
            if let Some(ca) = &tls.client_ca_pem {
                write_private(&data.join("root.crt"), ca)?;
                conf.push_str("ssl_ca_file = 'root.crt'\n");
            }
        }
        for (k, v) in &opts.settings {
            conf.push_str(&format!("{k} = '{}'\n", v.replace('\'', "''")));
        }
        append(&data.join("postgresql.conf"), &conf)?;
        let rules = if opts.hba.is_empty() { vec![HbaRule::HostScram] } else { opts.hba.clone() };
        let mut hba: String = rules.iter().map(|r| r.line() + "\n").collect();
        hba.push_str("host replication all 127.0.0.1/32 scram-sha-256\n");
        std::fs::write(data.join("pg_hba.conf"), hba)?;
        if let Some(user) = &run_as {
            chown_tree(dir.path(), service_user_ids(user)?)?;
        }

        // The password file has done its job; the password lives on only in the cluster.
        std::fs::remove_file(&pwfile)?;
        let mut cluster = Cluster { dir, bin, port: 0, run_as, superuser_password };
        cluster.start_on_free_port()?;
        cluster.spawn_watchdog();
        Ok(cluster)
    }

    /// A hot standby streaming from `primary`, on its own port, with the same roles and data.
    /// Built with `pg_basebackup -R` when the server binaries include it, else from a copy of
    /// the primary's data directory taken while the primary is briefly stopped (the npm server
    /// packages ship only initdb, pg_ctl and postgres). Returns once the standby streams.
    pub fn start_standby_of(primary: &Cluster) -> crate::Result<Cluster> {
        let dir = tempfile::Builder::new().prefix("sluice-pg-standby-").tempdir()?;
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        let ids = match &primary.run_as {
            Some(user) => Some(service_user_ids(user)?),
            None => None,
        };
        if let Some(ids) = ids {
            chown_tree(dir.path(), ids)?;
        }
        let data = dir.path().join("data");
        let conninfo = format!(
            "host=127.0.0.1 port={} user={SUPERUSER} password={} application_name=standby",
            primary.port, primary.superuser_password
        );
        let basebackup = primary.bin.join("pg_basebackup");
        if basebackup.is_file() {
            run(command_as(primary.run_as.as_deref(), &basebackup)
                .arg("-d")
                .arg(&conninfo)
                .arg("-D")
                .arg(&data)
                .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"]))
            .map_err(|e| TestkitError::Other(format!("pg_basebackup: {e}")))?;
        } else {
            primary.stop()?;
            let copied = copy_tree(&primary.data_dir(), &data);
            primary.restart()?;
            copied?;
            let _ = std::fs::remove_file(data.join("postmaster.pid"));
            let major: u32 = std::fs::read_to_string(data.join("PG_VERSION"))?
                .trim()
                .parse()
                .map_err(|_| TestkitError::Other("unreadable PG_VERSION".into()))?;
            let quoted = conninfo.replace('\'', "''");
            if major >= 12 {
                append(&data.join("postgresql.auto.conf"), &format!("primary_conninfo = '{quoted}'\n"))?;
                std::fs::write(data.join("standby.signal"), "")?;
            } else {
                std::fs::write(
                    data.join("recovery.conf"),
                    format!("standby_mode = 'on'\nprimary_conninfo = '{quoted}'\n"),
                )?;
            }
        }
        if let Some(ids) = ids {
            chown_tree(dir.path(), ids)?;
        }
        let mut standby = Cluster {
            dir,
            bin: primary.bin.clone(),
            port: 0,
            run_as: primary.run_as.clone(),
            superuser_password: primary.superuser_password.clone(),
        };
        standby.start_on_free_port()?;
        standby.spawn_watchdog();
        let started = std::time::Instant::now();
        loop {
            let streaming = primary.psql(
                "postgres",
                "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'standby' AND state = 'streaming';",
            )?;
            if streaming != "0" {
                return Ok(standby);
            }
            if started.elapsed() > std::time::Duration::from_secs(60) {
                return Err(TestkitError::Other(format!(
                    "the standby did not start streaming\nstandby log:\n{}",
                    standby.log()
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    fn start_on_free_port(&mut self) -> crate::Result<()> {
        let mut last = None;
        for _ in 0..5 {
            self.port = free_port()?;
            match self.pg_ctl_start() {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| TestkitError::Other("could not start PostgreSQL".into())))
    }

    fn pg_ctl_start(&self) -> crate::Result<()> {
        run(self
            .pg_ctl()
            .arg("-l")
            .arg(self.log_path())
            .args(["-w", "-t", "60", "-o"])
            .arg(format!("-p {}", self.port))
            .arg("start"))
        .map(drop)
        .map_err(|e| TestkitError::Other(format!("{e}\nserver log:\n{}", self.log())))
    }

    fn pg_ctl(&self) -> Command {
        let mut c = command_as(self.run_as.as_deref(), &self.bin.join("pg_ctl"));
        c.arg("-D").arg(self.data_dir());
        c
    }

    /// Stops the server and deletes the directory if this process dies without unwinding.
    fn spawn_watchdog(&self) {
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            stop = match &self.run_as {
                Some(u) => format!("runuser -u {u} -- '{}'", self.bin.join("pg_ctl").display()),
                None => format!("'{}'", self.bin.join("pg_ctl").display()),
            },
            data = self.data_dir().display(),
            dir = self.dir.path().display(),
        );
        let _ = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A scratch directory owned by this cluster, removed with it.
    pub fn scratch_dir(&self) -> &Path {
        self.dir.path()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The server log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// A libpq URI for the superuser.
    pub fn superuser_url(&self, database: &str) -> String {
        format!(
            "postgresql://{SUPERUSER}:{}@127.0.0.1:{}/{database}?sslmode=disable",
            self.superuser_password, self.port
        )
    }

    /// Runs `sql` (any number of statements) through Debian's `psql` as the superuser; stops at
    /// the first error. Returns the unaligned, tuples-only output.
    pub fn psql(&self, database: &str, sql: &str) -> crate::Result<String> {
        self.psql_as(SUPERUSER, &self.superuser_password, database, sql)
    }

    /// Like [`Cluster::psql`], as another role.
    pub fn psql_as(&self, user: &str, password: &str, database: &str, sql: &str) -> crate::Result<String> {
        let psql = std::env::var_os("PSQL").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("psql"));
        let mut child = Command::new(&psql)
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .args(["-U", user, "-d", database, "-f", "-"])
            .env("PGPASSWORD", password)
            .env("PGSSLMODE", "prefer")
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| TestkitError::Spawn { program: "psql".into(), source })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(sql.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(TestkitError::Failed {
                program: "psql".into(),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    }

    /// `CREATE ROLE name LOGIN PASSWORD …` plus `extra` attributes.
    pub fn create_login(&self, name: &str, password: &str) -> crate::Result<()> {
        self.psql(
            "postgres",
            &format!(
                "CREATE ROLE \"{}\" LOGIN PASSWORD '{}';",
                name.replace('"', "\"\""),
                password.replace('\'', "''")
            ),
        )
        .map(drop)
    }

    pub fn create_database(&self, name: &str) -> crate::Result<()> {
        self.psql("postgres", &format!("CREATE DATABASE \"{}\";", name.replace('"', "\"\""))).map(drop)
    }

    /// `CREATE DATABASE` with its own server encoding (`SQL_ASCII`, `LATIN1`, `WIN1252`, …) and the
    /// C locale, which goes with every encoding.
    pub fn create_database_with_encoding(&self, name: &str, encoding: &str) -> crate::Result<()> {
        self.psql(
            "postgres",
            &format!(
                "CREATE DATABASE \"{}\" ENCODING '{}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;",
                name.replace('"', "\"\""),
                encoding.replace('\'', "''")
            ),
        )
        .map(drop)
    }

    /// What `psql --csv -c sql` prints as the superuser with `client_encoding` (`PGCLIENTENCODING`),
    /// byte for byte.
    pub fn psql_csv(&self, database: &str, sql: &str, client_encoding: &str) -> crate::Result<Vec<u8>> {
        let psql = std::env::var_os("PSQL").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("psql"));
        let out = Command::new(&psql)
            .args(["-X", "-q", "--csv", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .args(["-U", SUPERUSER, "-d", database, "-c", sql])
            .env("PGPASSWORD", &self.superuser_password)
            .env("PGSSLMODE", "prefer")
            .env("PGCONNECT_TIMEOUT", "10")
            .env("PGCLIENTENCODING", client_encoding)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| TestkitError::Spawn { program: "psql".into(), source })?;
        if !out.status.success() {
            return Err(TestkitError::Failed {
                program: "psql".into(),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(out.stdout)
    }

    /// `server_version_num`, e.g. 150018.
    pub fn version_num(&self) -> crate::Result<u32> {
        let v = self.psql("postgres", "SHOW server_version_num;")?;
        v.trim().parse().map_err(|_| TestkitError::Other(format!("unexpected server_version_num `{v}`")))
    }

    /// Stops the server (fast shutdown); [`Cluster::restart`] brings it back on the same port.
    pub fn stop(&self) -> crate::Result<()> {
        run(self.pg_ctl().args(["-m", "fast", "-w", "stop"])).map(drop)
    }

    pub fn restart(&self) -> crate::Result<()> {
        self.pg_ctl_start()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ =
            self.pg_ctl().args(["-m", "immediate", "-w", "stop"]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

fn write_private(path: &Path, contents: &str) -> crate::Result<()> {
    std::fs::write(path, contents)?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(())
}

/// Copies a directory tree (files and directories; a data directory has nothing else).
fn copy_tree(from: &Path, to: &Path) -> crate::Result<()> {
    std::fs::create_dir_all(to)?;
    std::fs::set_permissions(to, std::fs::metadata(from)?.permissions())?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn append(path: &Path, text: &str) -> crate::Result<()> {
    let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_runs_sql_and_cleans_up() -> crate::Result<()> {
        let dir;
        {
            let c = Cluster::start_default()?;
            dir = c.scratch_dir().to_path_buf();
            assert!(c.version_num()? >= 100000);
            c.create_login("ro", "pw")?;
            assert_eq!(c.psql_as("ro", "pw", "postgres", "SELECT current_user;")?, "ro");
            assert!(c.psql_as("ro", "wrong", "postgres", "SELECT 1;").is_err());
        }
        assert!(!dir.exists(), "the cluster's directory is removed on drop");
        Ok(())
    }

    #[test]
    fn a_standby_streams_from_its_primary() -> crate::Result<()> {
        let primary = Cluster::start_default()?;
        primary.psql("postgres", "CREATE TABLE before_copy(x int); INSERT INTO before_copy VALUES (1);")?;
        let standby = Cluster::start_standby_of(&primary)?;
        assert_eq!(standby.psql("postgres", "SELECT pg_is_in_recovery();")?, "t");
        assert_eq!(primary.psql("postgres", "SELECT pg_is_in_recovery();")?, "f");
        primary.psql("postgres", "INSERT INTO before_copy VALUES (2);")?;
        let started = std::time::Instant::now();
        while standby.psql("postgres", "SELECT count(*) FROM before_copy;")? != "2" {
            assert!(started.elapsed() < std::time::Duration::from_secs(30), "the insert never arrived");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Ok(())
    }
}
