//! `sluice user` as a process, against a real SQLite store: listing accounts, and resetting a
//! locked-out administrator's password from a pipe, a file or a generated one — the old
//! password and every session stop working, the reset is audited, and bad input changes nothing.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use sluice_core::Secret;
use sluice_store::{AuditFilter, KeyConfig, Role, Store};

const OLD: &str = "correct horse battery";

fn sluice() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.env_remove("SLUICE_MASTER_KEY");
    c
}

/// Runs `sluice user ARGS --data-dir DATA` with `stdin` piped in (or /dev/null).
fn user(data: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = sluice()
        .arg("user")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut pipe = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(pipe);
    child.wait_with_output().expect("wait")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

async fn open(data: &Path) -> Store {
    Store::open(&data.display().to_string(), KeyConfig::DataDir).await.expect("store")
}

/// A store with the administrator `ada` (signed in once) and the analyst `bob`; returns ada's
/// session cookie.
fn seeded(data: &Path) -> String {
    runtime().block_on(async {
        let store = open(data).await;
        let ada = store.create_user("ada", Role::Admin, &Secret::new(OLD)).await.expect("ada");
        store.create_user("bob", Role::Analyst, &Secret::new("bob's password")).await.expect("bob");
        let session = store.create_session(ada.id, Duration::from_secs(3600)).await.expect("session");
        store.close().await;
        session.cookie.expose().to_string()
    })
}

/// Whether `password` signs `login` in, and whether `cookie` is still a live session.
fn state(data: &Path, login: &str, password: &str, cookie: &str) -> (bool, bool) {
    runtime().block_on(async {
        let store = open(data).await;
        let signs_in = store.authenticate(login, &Secret::new(password)).await.expect("authenticate").is_some();
        let live = store.session(cookie).await.expect("session").is_some();
        store.close().await;
        (signs_in, live)
    })
}

fn resets(data: &Path) -> Vec<sluice_store::AuditEntry> {
    runtime().block_on(async {
        let store = open(data).await;
        let filter = AuditFilter { kind: Some("user.password_reset".into()), ..AuditFilter::default() };
        let page = store.audit(&filter).await.expect("audit");
        store.close().await;
        page.entries
    })
}

#[test]
fn user_list_shows_logins_roles_and_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    seeded(&data);
    let out = user(&data, &["list"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("LOGIN"), "{stdout}");
    assert!(lines.iter().any(|l| l.starts_with("ada ") && l.contains("admin") && l.contains("active")), "{stdout}");
    assert!(lines.iter().any(|l| l.starts_with("bob ") && l.contains("analyst")), "{stdout}");
    assert!(!stdout.contains(OLD), "{stdout}");
}

#[test]
fn reset_password_from_a_pipe_signs_the_user_out_and_is_audited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let cookie = seeded(&data);
    assert_eq!(state(&data, "ada", OLD, &cookie), (true, true));

    let out = user(&data, &["reset-password", "--login", "ada"], Some("a brand new passphrase\n"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("1 session signed out"), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("a brand new passphrase"), "a given password is never echoed");
    assert_eq!(state(&data, "ada", "a brand new passphrase", &cookie), (true, false));
    assert!(!state(&data, "ada", OLD, &cookie).0, "the old password still works");
    let entries = resets(&data);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].actor, "cli");
    assert_eq!(entries[0].detail["login"], "ada", "{:?}", entries[0].detail);
    assert_eq!(entries[0].detail["sessions_revoked"], 1, "{:?}", entries[0].detail);
    // bob is untouched.
    assert!(state(&data, "bob", "bob's password", &cookie).0);
}

#[test]
fn reset_password_generates_one_or_reads_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let cookie = seeded(&data);

    let out = user(&data, &["reset-password", "--login", "ada", "--generate"], Some("ignored\n"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let generated = stdout.lines().last().expect("the password on the last line").to_string();
    assert!(generated.len() >= 16, "{stdout}");
    assert_eq!(state(&data, "ada", &generated, &cookie), (true, false));

    let file = dir.path().join("pw");
    std::fs::write(&file, "from a file, 2nd try\n").expect("write");
    let out =
        user(&data, &["reset-password", "--login", "ada", "--password-file", file.to_str().expect("utf-8")], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "a given password prints nothing: {}", text(&out.stdout));
    assert!(state(&data, "ada", "from a file, 2nd try", &cookie).0);
    assert!(!state(&data, "ada", &generated, &cookie).0);
    assert_eq!(resets(&data).len(), 2);
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let cookie = seeded(&data);
    let missing = dir.path().join("missing");
    let cases: Vec<(Vec<&str>, Option<&str>, &str)> = vec![
        (vec!["--login", "eve"], Some("a long enough password\n"), "no user has the login `eve`"),
        (vec!["--login", "ada"], Some("short\n"), "use at least 8 characters"),
        (vec!["--login", "ada"], Some(""), "standard input holds no password"),
        (vec!["--login", "ada"], None, "standard input holds no password"),
        (vec!["--login", "ada"], Some("two\nlines\n"), "more than one line"),
        (vec!["--login", "ada", "--password-file", missing.to_str().expect("utf-8")], None, "--password-file"),
    ];
    for (args, stdin, why) in cases {
        let mut all = vec!["reset-password"];
        all.extend(&args);
        let out = user(&data, &all, stdin);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(why), "{args:?}: {err}");
    }
    assert_eq!(state(&data, "ada", OLD, &cookie), (true, true), "nothing changed");
    assert!(resets(&data).is_empty());
}
