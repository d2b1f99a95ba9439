use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use tempfile::TempDir;

use crate::sys::{
    current_user, free_port, is_root, log_count, process_tree, run, signal, spawn_watchdog, wait_for_log,
};
use crate::TestkitError;

/// How to run the bastion. `Default`: forwarding to any destination.
#[derive(Debug, Clone)]
pub struct SshdOptions {
    /// `AllowTcpForwarding`.
    pub allow_tcp_forwarding: bool,
    /// `PermitOpen` destinations (`host:port`); empty means `any`.
    pub permit_open: Vec<String>,
}

impl Default for SshdOptions {
    fn default() -> Self {
        SshdOptions { allow_tcp_forwarding: true, permit_open: Vec::new() }
    }
}

/// A client key type, as `ssh-keygen -t` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Ed25519,
    /// ECDSA on P-256.
    Ecdsa,
    /// RSA, 2048 bits.
    Rsa,
}

/// How the private key file is written (`ssh-keygen -m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormat {
    /// `-----BEGIN OPENSSH PRIVATE KEY-----`.
    OpenSsh,
    /// PEM: `BEGIN RSA PRIVATE KEY` / `BEGIN EC PRIVATE KEY` (not for ed25519).
    Pem,
    /// `BEGIN PRIVATE KEY`, or `BEGIN ENCRYPTED PRIVATE KEY` with a passphrase.
    Pkcs8,
}

/// A client key pair generated for one test.
#[derive(Debug, Clone)]
pub struct ClientKey {
    pub private_key_path: PathBuf,
    /// The private key file's contents.
    pub private_key_pem: String,
    /// `ssh-ed25519 AAAA… comment`.
    pub public_line: String,
    /// `SHA256:…`, as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
}

/// A real OpenSSH bastion (Debian's `sshd`) on `127.0.0.1` and a free port, with a generated
/// ed25519 host key and key-only logins for [`Sshd::user`]. Torn down (with every session it
/// forked) on drop; a watchdog kills it if the test process dies without unwinding.
pub struct Sshd {
    dir: TempDir,
    port: u16,
    user: String,
    host_public_line: String,
    host_fingerprint: String,
    child: Mutex<Option<Child>>,
}

impl std::fmt::Debug for Sshd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sshd").field("port", &self.port).field("dir", &self.dir.path()).finish()
    }
}

fn sshd_binary() -> PathBuf {
    std::env::var_os("SSHD").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/sbin/sshd"))
}

impl Sshd {
    pub fn start(opts: SshdOptions) -> crate::Result<Sshd> {
        let sshd = sshd_binary();
        if !sshd.is_file() {
            return Err(TestkitError::Other(format!(
                "no sshd at {}: `apt-get install openssh-server` or set SSHD",
                sshd.display()
            )));
        }
        if is_root() {
            // Privilege separation chroots into this directory; Debian creates it at boot only
            // when the ssh service runs.
            std::fs::create_dir_all("/run/sshd")?;
            std::fs::set_permissions("/run/sshd", std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        }
        let dir = tempfile::Builder::new().prefix("sluice-sshd-").tempdir()?;
        let host_key = dir.path().join("ssh_host_ed25519_key");
        keygen(&host_key, "ed25519", None, "sluice-testkit-host")?;
        let host_public_line = read_public(&host_key)?;
        let host_fingerprint = fingerprint(&host_key)?;
        std::fs::write(dir.path().join("authorized_keys"), "")?;
        let user = current_user()?;

        let permit_open = if opts.permit_open.is_empty() { "any".to_string() } else { opts.permit_open.join(" ") };
        let write_config = |dir: &Path, port: u16| -> crate::Result<()> {
            let config = format!(
                "ListenAddress 127.0.0.1:{port}\n\
             HostKey {host_key}\n\
             PidFile {pid}\n\
             AuthorizedKeysFile {auth}\n\
             AuthenticationMethods publickey\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             UsePAM no\n\
             StrictModes no\n\
             PermitRootLogin prohibit-password\n\
             AllowUsers {user}\n\
             AllowTcpForwarding {fwd}\n\
             PermitOpen {permit_open}\n\
             X11Forwarding no\n\
             PrintMotd no\n\
             MaxStartups 100\n\
             MaxSessions 100\n\
             LogLevel VERBOSE\n",
                host_key = host_key.display(),
                pid = dir.join("sshd.pid").display(),
                auth = dir.join("authorized_keys").display(),
                fwd = if opts.allow_tcp_forwarding { "yes" } else { "no" },
            );
            std::fs::write(dir.join("sshd_config"), config)?;
            // `sshd -t` names a bad option precisely; a failed start would only say "exited".
            run(Command::new(&sshd).arg("-t").arg("-f").arg(dir.join("sshd_config"))).map(drop)
        };
        let port = free_port()?;
        write_config(dir.path(), port)?;
        let mut s = Sshd { dir, port, user: user.clone(), host_public_line, host_fingerprint, child: Mutex::new(None) };
        // Another test may take the free port first: sshd then fails to bind, and we try another.
        let mut attempt = 0;
        while let Err(e) = s.launch() {
            attempt += 1;
            if attempt == 5 {
                return Err(e);
            }
            s.port = free_port()?;
            write_config(s.dir.path(), s.port)?;
        }
        spawn_watchdog(&s.dir.path().join("listener.pid"), "");
        Ok(s)
    }

    /// What sshd logs once it has bound its port.
    fn listening_line(&self) -> String {
        format!("Server listening on 127.0.0.1 port {}.", self.port)
    }

    fn launch(&self) -> crate::Result<()> {
        let seen_before = log_count(&self.log_path(), &self.listening_line());
        let log = File::options().create(true).append(true).open(self.log_path())?;
        let mut child = Command::new(sshd_binary())
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(self.dir.path().join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|source| TestkitError::Spawn { program: "sshd".into(), source })?;
        std::fs::write(self.dir.path().join("listener.pid"), child.id().to_string())?;
        let deadline = Duration::from_secs(15);
        if !wait_for_log(&mut child, &self.log_path(), &self.listening_line(), seen_before, deadline) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(TestkitError::Other(format!("sshd did not start on port {}\nlog:\n{}", self.port, self.log())));
        }
        if let Ok(mut slot) = self.child.lock() {
            *slot = Some(child);
        }
        Ok(())
    }

    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The login user: the user the tests run as (root logs in with keys only).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The host key's `SHA256:…` fingerprint, as `ssh-keygen -lf` prints it.
    pub fn host_key_fingerprint(&self) -> &str {
        &self.host_fingerprint
    }

    /// This bastion's known_hosts line: `[127.0.0.1]:PORT ssh-ed25519 AAAA…`.
    pub fn known_hosts_line(&self) -> String {
        let mut parts = self.host_public_line.split_whitespace();
        let (alg, key) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        format!("[{}]:{} {alg} {key}", self.host(), self.port)
    }

    /// Writes a known_hosts file holding `lines` into this bastion's directory; with `hashed`,
    /// host names are hashed as `ssh-keygen -H` does (`|1|salt|hash`).
    pub fn write_known_hosts(&self, name: &str, lines: &[String], hashed: bool) -> crate::Result<PathBuf> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, lines.join("\n") + "\n")?;
        if hashed {
            run(Command::new("ssh-keygen").arg("-H").arg("-f").arg(&path))?;
            let old = PathBuf::from(format!("{}.old", path.display()));
            let _ = std::fs::remove_file(old);
        }
        Ok(path)
    }

    /// Generates a client key; with `authorize`, the bastion accepts it for [`Sshd::user`].
    pub fn client_key(
        &self,
        kind: KeyType,
        format: KeyFormat,
        passphrase: Option<&str>,
        authorize: bool,
    ) -> crate::Result<ClientKey> {
        let (t, n) = match kind {
            KeyType::Ed25519 => ("ed25519", 0),
            KeyType::Ecdsa => ("ecdsa", 256),
            KeyType::Rsa => ("rsa", 2048),
        };
        let stem = format!("client_{t}_{:?}_{}", format, std::fs::read_dir(self.dir.path())?.count()).to_lowercase();
        let path = self.dir.path().join(stem);
        let mut cmd = Command::new("ssh-keygen");
        cmd.args(["-q", "-t", t, "-C", "sluice-testkit-client", "-N"])
            .arg(passphrase.unwrap_or(""))
            .arg("-f")
            .arg(&path);
        if n > 0 {
            cmd.arg("-b").arg(n.to_string());
        }
        match format {
            KeyFormat::OpenSsh => {}
            KeyFormat::Pem => {
                cmd.args(["-m", "PEM"]);
            }
            KeyFormat::Pkcs8 => {
                cmd.args(["-m", "PKCS8"]);
            }
        }
        run(&mut cmd)?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        let public_line = read_public(&path)?;
        if authorize {
            let auth = self.dir.path().join("authorized_keys");
            let mut all = std::fs::read_to_string(&auth)?;
            all.push_str(&public_line);
            all.push('\n');
            std::fs::write(&auth, all)?;
        }
        Ok(ClientKey {
            private_key_pem: std::fs::read_to_string(&path)?,
            fingerprint: fingerprint(&path)?,
            private_key_path: path,
            public_line,
        })
    }

    /// Gives the bastion a new host key (as a reinstalled bastion, or an impostor, has) and
    /// restarts it on the same port.
    pub fn replace_host_key(&mut self) -> crate::Result<()> {
        self.kill();
        let host_key = self.dir.path().join("ssh_host_ed25519_key");
        std::fs::remove_file(&host_key)?;
        std::fs::remove_file(self.dir.path().join("ssh_host_ed25519_key.pub"))?;
        keygen(&host_key, "ed25519", None, "sluice-testkit-host")?;
        self.host_public_line = read_public(&host_key)?;
        self.host_fingerprint = fingerprint(&host_key)?;
        self.restart()
    }

    /// Adds a public key line (`ssh-ed25519 AAAA… comment`) to the bastion's authorized_keys,
    /// as an admin pasting a key Sluice generated does.
    pub fn authorize(&self, public_line: &str) -> crate::Result<()> {
        let auth = self.dir.path().join("authorized_keys");
        let mut all = std::fs::read_to_string(&auth)?;
        all.push_str(public_line.trim());
        all.push('\n');
        std::fs::write(&auth, all)?;
        Ok(())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("sshd.log")
    }

    /// sshd's log so far (LogLevel VERBOSE), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn tree(&self) -> Vec<u32> {
        match self.child.lock() {
            Ok(slot) => slot.as_ref().map(|c| process_tree(c.id())).unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    /// Kills the bastion with SIGKILL: the listener and every session it forked, as when the
    /// machine dies. Connections are reset at once.
    pub fn kill(&self) {
        let tree = self.tree();
        signal(&tree, "CONT");
        signal(&tree, "KILL");
        if let Ok(mut slot) = self.child.lock() {
            if let Some(mut c) = slot.take() {
                let _ = c.wait();
            }
        }
    }

    /// Freezes the bastion (SIGSTOP to the listener and every session): packets are still
    /// acknowledged by the kernel, but nothing answers — a hung host or a dropped route.
    pub fn freeze(&self) {
        signal(&self.tree(), "STOP");
    }

    /// Undoes [`Sshd::freeze`].
    pub fn thaw(&self) {
        signal(&self.tree(), "CONT");
    }

    /// Starts the bastion again on the same port, with the same keys, after [`Sshd::kill`].
    pub fn restart(&self) -> crate::Result<()> {
        self.kill();
        let mut last = None;
        for _ in 0..20 {
            match self.launch() {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(last.unwrap_or_else(|| TestkitError::Other("sshd did not restart".into())))
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.dir.path().join("listener.pid"));
        self.kill();
    }
}

fn keygen(path: &Path, kind: &str, passphrase: Option<&str>, comment: &str) -> crate::Result<()> {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-C", comment, "-N"])
        .arg(passphrase.unwrap_or(""))
        .arg("-f")
        .arg(path))
    .map(drop)
}

fn read_public(private: &Path) -> crate::Result<String> {
    let public = PathBuf::from(format!("{}.pub", private.display()));
    Ok(std::fs::read_to_string(public)?.trim().to_string())
}

/// `SHA256:…` of the key whose private half is at `private` (read from its `.pub`).
fn fingerprint(private: &Path) -> crate::Result<String> {
    let public = PathBuf::from(format!("{}.pub", private.display()));
    let out = run(Command::new("ssh-keygen").args(["-l", "-E", "sha256", "-f"]).arg(public))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .map(str::to_string)
        .ok_or_else(|| TestkitError::Other(format!("unexpected ssh-keygen -l output `{text}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_generates_keys_and_stops() -> crate::Result<()> {
        let sshd = Sshd::start(SshdOptions::default())?;
        assert!(sshd.host_key_fingerprint().starts_with("SHA256:"));
        assert!(sshd.known_hosts_line().starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 AAAA", sshd.port())));
        let key = sshd.client_key(KeyType::Rsa, KeyFormat::OpenSsh, Some("passphrase-1"), true)?;
        assert!(key.private_key_pem.contains("BEGIN OPENSSH PRIVATE KEY"));
        let pem = sshd.client_key(KeyType::Ecdsa, KeyFormat::Pem, None, false)?;
        assert!(pem.private_key_pem.contains("BEGIN EC PRIVATE KEY"), "{}", pem.private_key_pem);
        let p8 = sshd.client_key(KeyType::Rsa, KeyFormat::Pkcs8, Some("passphrase-2"), false)?;
        assert!(p8.private_key_pem.contains("BEGIN ENCRYPTED PRIVATE KEY"));
        let port = sshd.port();
        sshd.kill();
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
        sshd.restart()?;
        let mut banner = [0u8; 8];
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
        std::io::Read::read_exact(&mut s, &mut banner)?;
        assert_eq!(&banner, b"SSH-2.0-");
        Ok(())
    }
}
