//! `sluice query` end to end: the real binary against a real cluster.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sluice_testkit::Cluster;

const PW: &str = "query-pw-3301";
const ENDLESS: &str = "SELECT generate_series(1, 1000000000) AS g, repeat('x', 40) AS pad";

struct Env {
    cluster: Cluster,
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let cluster = Cluster::start_default().expect("cluster");
        cluster.create_database("shop").expect("db");
        cluster.create_login("analyst", PW).expect("role");
        cluster
            .psql(
                "shop",
                "CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(8,2));\n\
                 INSERT INTO items VALUES (1, 'a, \"b\"', 1.50), (2, NULL, NULL), (3, E'line\\nbreak', -2);\n\
                 GRANT SELECT, INSERT ON items TO analyst;",
            )
            .expect("setup");
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("pw"), format!("{PW}\n")).expect("pw");
        Env { cluster, dir }
    }

    fn url(&self) -> String {
        format!("postgresql://analyst@127.0.0.1:{}/shop?sslmode=disable", self.cluster.port())
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
        c.arg("query")
            .args(["--url", &self.url(), "--password-file", "pw"])
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("HOME", self.dir.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).stdin(Stdio::null()).output().expect("run sluice")
    }

    fn psql_csv(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args(["-X", "--csv", "-h", "127.0.0.1", "-p", &self.cluster.port().to_string()])
            .args(["-U", "analyst", "-d", "shop", "-c", sql])
            .env("PGPASSWORD", PW)
            .env("PGCLIENTENCODING", "UTF8")
            .output()
            .expect("psql");
        assert!(out.status.success());
        String::from_utf8(out.stdout).expect("utf8")
    }

    fn active(&self) -> u32 {
        self.cluster
            .psql("shop", "SELECT count(*) FROM pg_stat_activity WHERE usename = 'analyst' AND state = 'active';")
            .expect("activity")
            .trim()
            .parse()
            .expect("count")
    }

    /// Waits until a statement runs, then returns; panics after 10 s.
    fn wait_active(&self) {
        let t = Instant::now();
        while self.active() == 0 {
            assert!(t.elapsed() < Duration::from_secs(10), "the statement never started");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the statement to stop. The 20 s bound only guards against hanging (the
    /// statement never ends by itself); cancel latency is measured by
    /// `cargo bench -p sluice-connect --bench cancel`.
    fn stopped(&self) {
        let t = Instant::now();
        while self.active() > 0 {
            assert!(t.elapsed() < Duration::from_secs(20), "the statement still runs");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The names in `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Runs a system command that makes a special file, failing the test with its stderr.
fn make_node(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().expect(program);
    assert!(
        out.status.success(),
        "{program} {args:?} failed (the suite runs as root, as scripts/test.sh does): {}",
        stderr(&out)
    );
}

#[test]
fn output_keeps_devices_fifos_and_links_and_replaces_files_atomically() {
    use std::os::unix::fs::FileTypeExt;
    let env = Env::new();
    let dir = env.dir.path();
    let sql = "SELECT id, name FROM items ORDER BY id";
    let expected = env.psql_csv(sql);

    // A character device of the test's own (the null device's numbers, in the temporary
    // directory): written in place, still a device afterwards.
    let null = dir.join("null");
    make_node("mknod", &[null.to_str().expect("utf-8"), "c", "1", "3"]);
    for format in ["csv", "arrow", "parquet"] {
        let out = env.run(&["--sql", sql, "--format", format, "--output", "null"]);
        assert!(out.status.success(), "{format}: {}", stderr(&out));
        let kind = std::fs::symlink_metadata(&null).expect("lstat").file_type();
        assert!(kind.is_char_device(), "{format}: the device was replaced by {kind:?}");
    }
    // The catalog writes the same way.
    let catalog = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["catalog", "--url", &env.url(), "--password-file", "pw", "--format", "json", "--output", "null"])
        .current_dir(dir)
        .env_clear()
        .env("HOME", dir)
        .output()
        .expect("run sluice catalog");
    assert!(catalog.status.success(), "{}", stderr(&catalog));
    assert!(std::fs::symlink_metadata(&null).expect("lstat").file_type().is_char_device());

    // A FIFO: its reader gets the whole result, and it stays a FIFO.
    let fifo = dir.join("pipe");
    make_node("mkfifo", &[fifo.to_str().expect("utf-8")]);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).expect("read the FIFO"))
    };
    let out = env.run(&["--sql", sql, "--output", "pipe"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(reader.join().expect("reader"), expected);
    assert!(std::fs::symlink_metadata(&fifo).expect("lstat").file_type().is_fifo());

    // A symbolic link: followed, its target replaced, the link kept.
    std::fs::write(dir.join("target.csv"), "old\n").expect("target");
    std::os::unix::fs::symlink("target.csv", dir.join("link.csv")).expect("symlink");
    let out = env.run(&["--sql", sql, "--output", "link.csv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::symlink_metadata(dir.join("link.csv")).expect("lstat").file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(dir.join("target.csv")).expect("target"), expected);

    // A link to nothing and a directory are refused before connecting: exit 2, nothing made.
    std::os::unix::fs::symlink("missing/out.csv", dir.join("dangling.csv")).expect("symlink");
    std::fs::create_dir(dir.join("sub")).expect("dir");
    let before = entries(dir);
    for (target, says) in [("dangling.csv", "which does not exist"), ("sub", "is a directory")] {
        let out = env.run(&["--sql", sql, "--output", target]);
        assert_eq!(out.status.code(), Some(2), "{target}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{target}: {}", stderr(&out));
    }
    assert_eq!(entries(dir), before);

    // A regular file is replaced only by a complete result: a failing query leaves it as it was.
    std::fs::write(dir.join("keep.csv"), "precious\n").expect("keep");
    let before = entries(dir);
    let out = env.run(&["--sql", "SELECT nosuch FROM items", "--output", "keep.csv"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(dir.join("keep.csv")).expect("keep"), "precious\n");
    assert_eq!(entries(dir), before, "no temporary file is left behind");
    // `-` is standard output.
    let out = env.run(&["--sql", sql, "--output", "-"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
}

#[test]
fn csv_json_stdin_file_and_exit_codes() {
    let env = Env::new();
    let sql = "SELECT * FROM items ORDER BY id";
    let out = env.run(&["--sql", sql]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), env.psql_csv(sql));

    // SQL on stdin.
    let mut child =
        env.command(&["--format", "ndjson"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("spawn");
    child.stdin.take().expect("stdin").write_all(b"SELECT id FROM items ORDER BY id").expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n");

    // --file and --output; --max-rows marks JSON as truncated.
    std::fs::write(env.dir.path().join("q.sql"), sql).expect("q.sql");
    let out = env.run(&["--file", "q.sql", "--format", "json", "--max-rows", "2", "--output", "out.json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.dir.path().join("out.json")).expect("out.json")).expect("json");
    assert_eq!(doc["truncated"], true);
    assert_eq!(doc["rows"].as_array().map(Vec::len), Some(2));
    assert_eq!(entries(env.dir.path()), ["out.json", "pw", "q.sql"], "no temporary file is left");

    // CSV truncation: exit 0 and one line on stderr.
    let out = env.run(&["--sql", sql, "--max-rows", "1"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    assert!(stderr(&out).contains("truncated after 1 rows"), "{}", stderr(&out));

    // A query that fails: exit 1, SQLSTATE and position; a failed --output leaves no file.
    let out = env.run(&["--sql", "SELECT nosuch FROM items", "--output", "bad.csv"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("42703") && stderr(&out).contains("at character 8"), "{}", stderr(&out));
    assert!(stderr(&out).contains("LINE 1: SELECT nosuch FROM items\n               ^\n"), "{}", stderr(&out));
    // A syntax error is refused by the gate, with the server's position (and hint, where it has one).
    let out = env.run(&["--sql", "SELECT 1 FROM FROM items"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("42601") && stderr(&out).contains("at character 15"), "{}", stderr(&out));
    assert!(stderr(&out).contains("LINE 1: SELECT 1 FROM FROM items\n                      ^\n"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("hint:"), "{}", stderr(&out));
    // A scanner error, which the gate's parser reports without position or hint: as psql shows it.
    let out = env.run(&["--sql", r"SELECT U&'wrong: \061'"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("error: invalid Unicode escape") && err.contains("(SQLSTATE 42601) at character 18\n"),
        "{err}"
    );
    assert!(err.contains("LINE 1: SELECT U&'wrong: \\061'\n                         ^\n"), "{err}");
    // The server's own words: PostgreSQL 13 reworded this error and gave it a hint.
    if env.cluster.version_num().expect("version") >= 130000 {
        assert!(err.contains("error: invalid Unicode escape (SQLSTATE 42601) at character 18\n"), "{err}");
        assert!(err.contains("hint: Unicode escapes must be \\XXXX or \\+XXXXXX.\n"), "{err}");
    } else {
        assert!(err.contains("error: invalid Unicode escape value at or near \"\\061'\""), "{err}");
    }
    assert_eq!(entries(env.dir.path()), ["out.json", "pw", "q.sql"], "a failed --output leaves nothing");

    // A write, though the role may INSERT: refused, exit 1, nothing written.
    let out = env.run(&["--sql", "INSERT INTO items VALUES (9, 'x', 1)"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("INSERT is not allowed"), "{}", stderr(&out));
    assert_eq!(env.cluster.psql("shop", "SELECT count(*) FROM items;").expect("count"), "3");

    // Bad invocations: exit 2.
    for args in [
        &["--sql", sql, "--max-rows", "0"][..],
        &["--sql", sql, "--format", "xml"],
        &["--sql", sql, "--timeout", "soon"],
        &["--file", "missing.sql"],
        &["--sql", "   "],
    ] {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }

    // Timeout: exit 1 and says so.
    let out = env.run(&["--sql", "SELECT pg_sleep(10)", "--timeout", "300ms"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("did not finish within 300 ms"), "{}", stderr(&out));

    // A row-limited Arrow result past the in-memory spool needs a temporary file; without a
    // writable TMPDIR the export fails, says how to fix it, and leaves no output file.
    let big = "SELECT g, repeat('x', 1000) AS pad FROM generate_series(1, 30000) g";
    let out = env
        .command(&["--sql", big, "--format", "arrow", "--max-rows", "100000", "-o", "big.arrow"])
        .env("TMPDIR", env.dir.path().join("missing"))
        .stdin(Stdio::null())
        .output()
        .expect("run sluice");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("set TMPDIR to a writable directory"), "{}", stderr(&out));
    assert!(!env.dir.path().join("big.arrow").exists() && !env.dir.path().join("big.arrow.partial").exists());
    let out = env.run(&["--sql", big, "--format", "arrow", "--max-rows", "100000", "-o", "big.arrow"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::metadata(env.dir.path().join("big.arrow")).expect("big.arrow").len() > 30_000_000);

    // Arrow and Parquet to files.
    for format in ["arrow", "parquet"] {
        let file = format!("out.{format}");
        let out = env.run(&["--sql", sql, "--format", format, "-o", &file]);
        assert!(out.status.success(), "{format}: {}", stderr(&out));
        assert!(std::fs::metadata(env.dir.path().join(&file)).expect("file").len() > 100);
    }
}

fn spawn_endless(env: &Env) -> Child {
    env.command(&["--sql", ENDLESS])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

#[test]
fn a_closed_stdout_is_a_clean_exit_and_cancels_the_statement() {
    let env = Env::new();
    let mut child = spawn_endless(&env);
    let mut stdout = child.stdout.take().expect("stdout");
    let mut buf = vec![0u8; 64 * 1024];
    stdout.read_exact(&mut buf).expect("some output");
    assert!(buf.starts_with(b"g,pad\n1,"));
    env.wait_active();
    drop(stdout);
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    env.stopped();
}

#[test]
fn ctrl_c_cancels_the_statement() {
    let env = Env::new();
    let mut child = spawn_endless(&env);
    let mut stdout = child.stdout.take().expect("stdout");
    let mut buf = vec![0u8; 4096];
    if let Err(e) = stdout.read_exact(&mut buf) {
        let out = child.wait_with_output().expect("wait");
        panic!("no output ({e}): {}", stderr(&out));
    }
    env.wait_active();
    let reader = std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = stdout.read_to_end(&mut sink);
    });
    let t = Instant::now();
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    env.stopped();
    eprintln!("stopped {:?} after SIGINT", t.elapsed());
    let out = child.wait_with_output().expect("wait");
    reader.join().expect("reader");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cancelled"), "{}", stderr(&out));
    let _ = Path::new("");
}

/// Ctrl-C before the first row (the statement is still sleeping or sorting) cancels it too.
#[test]
fn ctrl_c_before_the_first_row_cancels_the_statement() {
    let env = Env::new();
    let child = env
        .command(&["--sql", "SELECT pg_sleep(30) AS slept"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    env.wait_active();
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    env.stopped();
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("cancelled"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn max_sql_bytes_lowers_and_raises_the_statement_limit() {
    let env = Env::new();
    // A 1.5 MB statement: over the default 1 MiB limit.
    let big = format!("SELECT 42 AS answer /* {} */", "x".repeat(1_500_000));
    std::fs::write(env.dir.path().join("big.sql"), &big).expect("big.sql");
    let out = env.run(&["--file", "big.sql"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("1048576"), "the limit is named: {}", stderr(&out));
    let out = env.run(&["--file", "big.sql", "--max-sql-bytes", "2000000"]);
    assert!(out.status.success(), "a raised limit admits it: {}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "answer\n42\n");
    let out = env.run(&["--sql", "SELECT 1", "--max-sql-bytes", "4"]);
    assert_eq!(out.status.code(), Some(1), "a lowered limit refuses: {}", stderr(&out));
}
