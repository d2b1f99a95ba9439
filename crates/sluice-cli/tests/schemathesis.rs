//! The API against its own OpenAPI document, fuzzed: a real `sluice serve` (SQLite store in a
//! temp dir) with a real source (a throwaway cluster with Sluice's read-only role from its own
//! setup script) and an admin API token, then `schemathesis run` on
//! `/api/v1/openapi.json`. It checks that no request gets a 5xx and that every response's status,
//! content type and JSON body are what the document says. Bounded: a fixed seed and a few
//! examples per operation.
//!
//! schemathesis comes from PyPI into the venv `scripts/install-deps.sh` makes
//! (`/var/cache/sluice-py`, or `SLUICE_SCHEMATHESIS` naming the executable).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use serde_json::{json, Value};
use sluice_doctor::{generate_password, setup_sql, SetupOptions, DEFAULT_STATEMENT_TIMEOUT};
use sluice_testkit::{Cluster, SluiceServe};

/// The schemathesis executable (`scripts/deps.sh`'s `schemathesis_bin`).
fn schemathesis() -> String {
    std::env::var("SLUICE_SCHEMATHESIS").unwrap_or_else(|_| "/var/cache/sluice-py/bin/schemathesis".into())
}

/// Operations left out of the run because they would undo the run itself: revoking a token or
/// disabling a user could end the admin token the run authenticates with (user ids are small
/// integers, easily generated), and deleting a source removes the one the run queries.
const EXCLUDED: [&str; 3] = ["revoke_token", "disable_user", "delete_source"];

struct Reply {
    status: u16,
    headers: String,
    body: String,
}

/// One HTTP/1.1 request with `Connection: close`.
fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&Value>) -> Reply {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).expect("write");
    stream.write_all(body.as_bytes()).expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (headers, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = headers.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Reply { status, headers: headers.to_string(), body: body.to_string() }
}

fn json_of(r: &Reply) -> Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.body))
}

#[test]
fn the_api_conforms_to_its_openapi_document_under_schemathesis() {
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_database("shop").expect("database");
    cluster
        .psql(
            "shop",
            "CREATE TABLE customers (id int PRIMARY KEY, name text); INSERT INTO customers VALUES (1, 'ada');",
        )
        .expect("fixture");
    let password = generate_password().expect("password");
    let script = setup_sql(&SetupOptions {
        user: "sluice_ro".into(),
        database: "shop".into(),
        schemas: vec!["public".into()],
        elt_owners: vec![],
        read_all_data: false,
        password: password.clone(),
        statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
    })
    .expect("setup script");
    cluster.psql("shop", &script).expect("setup script runs");

    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env_remove("SLUICE_MASTER_KEY");
    let mut server = SluiceServe::start(command).expect("spawn sluice serve");
    let (setup, addr) = (server.setup_token().expect("a setup link").to_string(), server.addr().to_string());

    let admin = json!({"setup_token": setup, "login": "ada", "password": "correct horse battery"});
    let r = request(&addr, "POST", "/api/v1/setup", &[], Some(&admin));
    assert_eq!(r.status, 201, "{}", r.body);
    let r = request(
        &addr,
        "POST",
        "/api/v1/sessions",
        &[],
        Some(&json!({"login": "ada", "password": "correct horse battery"})),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let csrf = json_of(&r)["csrf_token"].as_str().expect("csrf").to_string();
    let cookie = r
        .headers
        .lines()
        .filter_map(|l| l.strip_prefix("set-cookie: ").or_else(|| l.strip_prefix("Set-Cookie: ")))
        .find(|c| c.starts_with("sluice_session="))
        .and_then(|c| c.split(';').next())
        .expect("session cookie")
        .to_string();
    let r = request(
        &addr,
        "POST",
        "/api/v1/tokens",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        Some(&json!({"name": "schemathesis", "role": "admin"})),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let token = json_of(&r)["token"].as_str().expect("token").to_string();
    let bearer = format!("Bearer {token}");
    let auth = [("Authorization", bearer.as_str())];
    let source = json!({
        "id": "shop", "name": "Shop", "network": "direct", "host": "127.0.0.1", "port": cluster.port(),
        "database": "shop", "user": "sluice_ro", "password": password.expose(), "sslmode": "disable",
    });
    let r = request(&addr, "POST", "/api/v1/sources", &auth, Some(&source));
    assert_eq!(r.status, 201, "{}", r.body);
    let r = request(&addr, "POST", "/api/v1/sources/shop/refresh", &auth, None);
    assert_eq!(r.status, 202, "{}", r.body);
    let run = json_of(&r)["run"].as_i64().expect("the queued run's id");
    // The run is queued: wait until the scheduler has finished it (a bounded wait, not a timing
    // assertion), so the catalog the fuzzer reads exists.
    let path = format!("/api/v1/sources/shop/discoveries/{run}");
    let mut state = String::new();
    for _ in 0..600 {
        let r = request(&addr, "GET", &path, &auth, None);
        assert_eq!(r.status, 200, "{}", r.body);
        state = json_of(&r)["state"].as_str().unwrap_or_default().to_string();
        if !matches!(state.as_str(), "queued" | "running") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(state, "ok", "the refresh run finished");
    // The source answers, so the run reaches real queries, not only refusals.
    let r = request(
        &addr,
        "POST",
        "/api/v1/sources/shop/query",
        &auth,
        Some(&json!({"sql": "SELECT name FROM customers"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("\"ada\""), "{}", r.body);

    let mut run = Command::new(schemathesis());
    run.arg("run")
        .arg(format!("http://{addr}/api/v1/openapi.json"))
        .args(["--url", &format!("http://{addr}")])
        .args(["--header", &format!("Authorization: {bearer}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", "25", "--seed", "20240611", "--workers", "1", "--no-color"]);
    for id in EXCLUDED {
        run.args(["--exclude-operation-id", id]);
    }
    let out = run
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} ({e}); scripts/install-deps.sh installs it", schemathesis()));
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis found failures:\n{report}");
    // It really ran: every operation but the excluded ones was exercised.
    assert!(report.contains("passed"), "{report}");

    // The run's token still works, and the source is still there.
    let r = request(&addr, "GET", "/api/v1/sources/shop", &auth, None);
    assert_eq!(r.status, 200, "{}", r.body);
    let (_, log) = server.kill().expect("kill");
    assert!(!log.iter().any(|l| l.contains("internal error")), "the server logged an internal error: {log:?}");
}
