//! `sluice demo` end to end: it starts a real throwaway PostgreSQL and the service, its source
//! tests green through the API, discovery has run, a query returns the seeded rows and a write
//! is refused; Ctrl-C stops everything and removes every file it made.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// The binary in a clean environment, as the other CLI tests run it.
fn demo(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.arg("demo").args(args).env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    if let Some(bin) = std::env::var_os("PG_BIN") {
        cmd.env("PG_BIN", bin);
    }
    cmd
}

/// One HTTP/1.0 exchange (the response ends with the connection, never chunked): the status and
/// the body.
fn request(addr: &str, method: &str, path: &str, token: &str, body: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

struct Running {
    child: Child,
    addr: String,
    token: String,
    banner: Vec<String>,
    /// The cluster's and the data directory's paths, from stderr.
    dirs: Vec<PathBuf>,
    stderr: std::sync::mpsc::Receiver<String>,
}

/// Starts the demo and reads its banner up to the token (the last line it prints).
fn start() -> Running {
    let mut child =
        demo(&["--listen", "127.0.0.1:0"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut banner = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    for line in lines.by_ref() {
        let line = line.expect("line");
        let last = line.starts_with("API token");
        banner.push(line);
        if last {
            break;
        }
    }
    let token = lines.next().and_then(Result::ok).unwrap_or_default();
    let errors: Vec<String> = rx.try_iter().collect();
    assert!(token.starts_with("sluice_"), "no token; stdout {banner:?}, stderr {errors:?}");
    let addr = banner
        .first()
        .and_then(|l| l.split("http://").nth(1))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no address in {banner:?}"));
    let dirs = errors
        .iter()
        .find_map(|l| l.strip_prefix("demo: cluster in "))
        .map(|rest| rest.split(", service data in ").map(PathBuf::from).collect())
        .unwrap_or_else(|| panic!("no directories in {errors:?}"));
    Running { child, addr, token, banner, dirs, stderr: rx }
}

#[test]
fn demo_serves_a_tested_discovered_source_and_cleans_up_on_ctrl_c() {
    let mut demo = start();
    let (addr, token) = (demo.addr.clone(), demo.token.clone());
    assert!(demo.banner.iter().any(|l| l.contains("TLS verify-full")), "{:?}", demo.banner);
    for dir in &demo.dirs {
        assert!(dir.is_dir(), "{} exists while the demo runs", dir.display());
    }

    // Test Connection: every stage passes, and the audit sees the table kept from the user.
    let (status, body) = request(&addr, "POST", "/api/v1/sources/shop/test", &token, None);
    assert_eq!(status, 200, "{body}");
    let report: Value = serde_json::from_str(&body).expect("report JSON");
    assert_eq!(report["ok"], true, "{body}");
    for stage in ["dns", "tcp", "tls", "auth", "read_only"] {
        assert_eq!(common::status_of(&report, stage), "pass", "{stage}: {body}");
    }
    assert_eq!(common::check(&report, "tls")["status"], "pass");

    // Discovery ran before the banner: the catalog holds the shop and the ELT schema.
    let (status, body) = request(&addr, "GET", "/api/v1/sources/shop/catalog", &token, None);
    assert_eq!(status, 200, "{body}");
    let catalog: Value = serde_json::from_str(&body).expect("catalog JSON");
    let relations: Vec<String> = catalog["catalog"]["schemas"]
        .as_array()
        .expect("schemas")
        .iter()
        .flat_map(|s| {
            let schema = s["name"].as_str().unwrap_or_default().to_string();
            s["relations"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |r| format!("{schema}.{}", r["name"].as_str().unwrap_or_default()))
        })
        .collect();
    for expected in
        ["public.customers", "public.orders", "public.order_items", "public.events", "analytics.daily_revenue"]
    {
        assert!(relations.iter().any(|r| r == expected), "{expected} missing from {relations:?}");
    }

    // A query returns the seeded rows, as CSV.
    let sql =
        r#"{"sql":"SELECT count(*) AS customers, count(DISTINCT country) AS countries FROM customers","format":"csv"}"#;
    let (status, body) = request(&addr, "POST", "/api/v1/sources/shop/query", &token, Some(sql));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "customers,countries\n200,5\n");

    // The table kept from the read-only user stays kept, and a write never runs.
    let sql = r#"{"sql":"SELECT * FROM staff_salaries","format":"json"}"#;
    let (status, body) = request(&addr, "POST", "/api/v1/sources/shop/query", &token, Some(sql));
    assert!(body.contains("42501") || body.contains("permission denied"), "{status} {body}");
    let sql = r#"{"sql":"DELETE FROM orders","format":"json"}"#;
    let (status, body) = request(&addr, "POST", "/api/v1/sources/shop/query", &token, Some(sql));
    assert!((400..500).contains(&status), "a write is refused: {status} {body}");

    // Ctrl-C: the service stops, the cluster stops, and the directories are gone.
    let interrupted = Command::new("kill").args(["-INT", &demo.child.id().to_string()]).status().expect("kill");
    assert!(interrupted.success());
    let exit = demo.child.wait().expect("wait");
    let rest: Vec<String> = demo.stderr.iter().collect();
    assert!(exit.success(), "{exit}: {rest:?}");
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
    for dir in &demo.dirs {
        assert!(!dir.exists(), "{} is removed", dir.display());
    }
    assert!(TcpStream::connect(&addr).is_err(), "the service no longer listens");
}

#[test]
fn demo_without_server_binaries_says_how_to_install_them() {
    let empty = tempfile::tempdir().expect("tempdir");
    let out = demo(&["--listen", "127.0.0.1:0"]).env("PG_BIN", empty.path()).output().expect("run");
    let stderr = common::text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no PostgreSQL server binaries"), "{stderr}");
    assert!(stderr.contains("apt-get install postgresql") && stderr.contains("PG_BIN"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing is served: {}", common::text(&out.stdout));
}

#[test]
fn demo_refuses_a_public_or_busy_address_before_starting_anything() {
    let out = demo(&["--listen", "0.0.0.0:0"]).output().expect("run");
    let stderr = common::text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not a loopback address"), "{stderr}");

    let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("addr").to_string();
    let out = demo(&["--listen", &addr]).output().expect("run");
    let stderr = common::text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("cannot listen on {addr}")), "{stderr}");
    assert!(!stderr.contains("starting a throwaway PostgreSQL"), "no cluster is started: {stderr}");
}
