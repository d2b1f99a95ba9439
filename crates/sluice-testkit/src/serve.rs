//! `sluice serve` as a process of its own, for the tests that drive the service from outside.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;

use crate::sys::spawn_watchdog;
use crate::TestkitError;

/// A running `sluice serve`, started once it printed where it listens; killed on drop (and by a
/// watchdog if the test process dies), so a failing test leaves no service behind.
///
/// Its stderr is read here: the lines up to "listening on …" are kept ([`SluiceServe::startup_log`])
/// and the rest is drained on a thread, so the service never blocks on a full pipe, and handed
/// over by [`SluiceServe::terminate`].
pub struct SluiceServe {
    child: Child,
    url: String,
    setup_url: Option<String>,
    startup: Vec<String>,
    rest: Option<JoinHandle<Vec<String>>>,
    /// Holds the file the watchdog reads the pid from; removed first on drop.
    watch: tempfile::TempDir,
}

impl std::fmt::Debug for SluiceServe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SluiceServe").field("pid", &self.child.id()).field("url", &self.url).finish_non_exhaustive()
    }
}

impl SluiceServe {
    /// Starts `command`: the `sluice` binary with `serve` and its flags and environment, as the
    /// caller built it (the testkit builds no Sluice binary). Its stdout is discarded. Waits for
    /// the line that says where it listens; a service that exits before saying so is an error
    /// carrying all it printed.
    pub fn start(mut command: Command) -> crate::Result<SluiceServe> {
        let program = command.get_program().to_string_lossy().into_owned();
        let mut child = command
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|source| TestkitError::Spawn { program, source })?;
        let watch = tempfile::tempdir()?;
        let pid_file = watch.path().join("serve.pid");
        std::fs::write(&pid_file, child.id().to_string())?;
        spawn_watchdog(&pid_file, "true");
        let Some(stderr) = child.stderr.take() else {
            return Err(TestkitError::Other("sluice serve's stderr was not piped".into()));
        };
        let mut lines = BufReader::new(stderr).lines();
        let (mut startup, mut url, mut setup_url) = (Vec::new(), None, None);
        for line in lines.by_ref() {
            let line = line?;
            if let Some(link) = line.split_whitespace().find(|w| w.contains("/setup#token=")) {
                setup_url = Some(link.to_string());
            }
            if let Some(rest) = line.split("listening on ").nth(1) {
                url = rest.split_whitespace().next().map(str::to_string);
            }
            startup.push(line);
            if url.is_some() {
                break;
            }
        }
        let Some(url) = url else {
            let _ = child.kill();
            let status = child.wait()?;
            return Err(TestkitError::Other(format!("sluice serve ended ({status}) before listening: {startup:?}")));
        };
        let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect());
        Ok(SluiceServe { child, url, setup_url, startup, rest: Some(rest), watch })
    }

    /// Where it listens, as it printed it: `http://127.0.0.1:PORT` (or `https://…`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `host:port` of [`SluiceServe::url`].
    pub fn addr(&self) -> &str {
        self.url.split_once("://").map(|(_, a)| a).unwrap_or(&self.url)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr().rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or(0)
    }

    /// The one-time setup link it printed on an empty store (`…/setup#token=…`), if any.
    pub fn setup_url(&self) -> Option<&str> {
        self.setup_url.as_deref()
    }

    /// The setup link's token.
    pub fn setup_token(&self) -> Option<&str> {
        self.setup_url.as_deref().and_then(|u| u.split("#token=").nth(1))
    }

    /// What it printed on stderr up to and including the "listening on" line.
    pub fn startup_log(&self) -> &[String] {
        &self.startup
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops it with SIGTERM, as an operator would: its exit status and what it printed after
    /// the "listening on" line.
    pub fn terminate(&mut self) -> crate::Result<(ExitStatus, Vec<String>)> {
        let sent = Command::new("kill").args(["-s", "TERM", &self.pid().to_string()]).status()?;
        if !sent.success() {
            return Err(TestkitError::Other(format!("kill -TERM {} failed: {sent}", self.pid())));
        }
        self.ended()
    }

    /// Kills it with SIGKILL, in the middle of whatever it does: its exit status and what it
    /// printed after the "listening on" line.
    pub fn kill(&mut self) -> crate::Result<(ExitStatus, Vec<String>)> {
        self.child.kill()?;
        self.ended()
    }

    fn ended(&mut self) -> crate::Result<(ExitStatus, Vec<String>)> {
        let status = self.child.wait()?;
        let rest = self.rest.take().map(|r| r.join().unwrap_or_default()).unwrap_or_default();
        Ok((status, rest))
    }
}

impl Drop for SluiceServe {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.watch.path().join("serve.pid"));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in that prints what `sluice serve` prints, then runs until SIGTERM.
    fn stand_in(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.arg("-c").arg(script);
        command
    }

    #[test]
    fn it_starts_at_the_listening_line_and_hands_over_the_rest_of_the_log() {
        let mut serve = SluiceServe::start(stand_in(
            "echo 'sluice serve: no administrator yet; set one up at' >&2; \
             echo '  http://127.0.0.1:4321/setup#token=abc123' >&2; \
             echo 'sluice serve: listening on http://127.0.0.1:4321 (store: x)' >&2; \
             trap 'echo stopped >&2; exit 0' TERM; while :; do sleep 0.05; done",
        ))
        .expect("start");
        assert_eq!(serve.url(), "http://127.0.0.1:4321");
        assert_eq!(serve.addr(), "127.0.0.1:4321");
        assert_eq!(serve.port(), 4321);
        assert_eq!(serve.setup_url(), Some("http://127.0.0.1:4321/setup#token=abc123"));
        assert_eq!(serve.setup_token(), Some("abc123"));
        assert_eq!(serve.startup_log().len(), 3);
        let (status, rest) = serve.terminate().expect("terminate");
        assert!(status.success(), "{status}");
        assert_eq!(rest, vec!["stopped".to_string()]);
    }

    #[test]
    fn a_service_that_ends_before_listening_is_an_error_with_what_it_printed() {
        let err = SluiceServe::start(stand_in("echo 'the data directory is in use' >&2; exit 2")).expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("before listening") && text.contains("the data directory is in use"), "{text}");
    }

    #[test]
    fn a_kill_ends_it_by_sigkill() {
        use std::os::unix::process::ExitStatusExt;
        let mut serve =
            SluiceServe::start(stand_in("echo 'listening on http://127.0.0.1:1' >&2; while :; do sleep 0.05; done"))
                .expect("start");
        assert!(serve.setup_token().is_none());
        let (status, _) = serve.kill().expect("kill");
        assert_eq!(status.signal(), Some(9));
    }
}
