//! `sluice serve` and `sluice token create` as processes: the setup link on an empty store, the
//! loopback rule, a token made offline, and a clean stop on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

fn sluice() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.env_remove("SLUICE_MASTER_KEY");
    c
}

#[test]
fn serve_refuses_a_public_address_without_insecure_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = sluice()
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--insecure-http"), "{err}");
    assert!(!dir.path().join("data").exists(), "nothing is created before the refusal");
}

#[test]
fn token_create_works_offline_and_prints_the_token_last() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let out = sluice()
        .args(["token", "create", "--name", "ci", "--role", "analyst", "--data-dir"])
        .arg(&data)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let token = stdout.lines().last().expect("a line").to_string();
    assert!(token.starts_with("sluice_"), "{stdout}");
    let bad = sluice()
        .args(["token", "create", "--name", "ci", "--role", "owner", "--data-dir"])
        .arg(&data)
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(2));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let store = sluice_store::Store::open(&data.display().to_string(), sluice_store::KeyConfig::DataDir)
            .await
            .expect("store");
        let found = store.verify_token(&token).await.expect("verify").expect("the token is valid");
        assert_eq!(found.name, "ci");
        assert_eq!(found.role, sluice_store::TokenRole::Analyst);
        store.close().await;
    });
}

/// One HTTP/1.1 request; returns the status line and the body.
fn post(addr: &str, path: &str, body: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response.lines().next().unwrap_or_default().to_string();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[test]
fn serve_prints_a_one_time_setup_link_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = sluice()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut setup = None;
    let mut addr = None;
    for line in lines.by_ref() {
        let line = line.expect("line");
        if let Some(token) = line.split("#token=").nth(1) {
            setup = Some(token.trim().to_string());
        }
        if let Some(rest) = line.split("listening on http://").nth(1) {
            addr = rest.split_whitespace().next().map(str::to_string);
            break;
        }
    }
    let (setup, addr) = (setup.expect("a setup link"), addr.expect("the address"));
    let body = format!(r#"{{"setup_token":"{setup}","login":"ada","password":"correct horse battery"}}"#);
    let (status, reply) = post(&addr, "/api/v1/setup", &body);
    assert!(status.contains(" 201 "), "{status} {reply}");
    let (status, _) = post(&addr, "/api/v1/setup", &body);
    assert!(status.contains(" 409 ") || status.contains(" 403 "), "the link works once: {status}");

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status}: {rest:?}");
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");

    // A store with an administrator prints no link.
    let mut child = sluice()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut before = Vec::new();
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    for line in lines.by_ref() {
        let line = line.expect("line");
        let listening = line.contains("listening on");
        before.push(line);
        if listening {
            break;
        }
    }
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(child.wait().expect("wait").success(), "{rest:?}");
    assert!(before.last().is_some_and(|l| l.contains("listening on")), "{before:?}");
    assert!(!before.iter().any(|l| l.contains("#token=")), "{before:?}");
}

#[test]
fn serve_refuses_a_bad_network_range_naming_its_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    for (args, env, flag, why) in [
        (vec!["--deny-cidr", "10.0.0.1/8"], None, "--deny-cidr", "host bits are set; the range is 10.0.0.0/8"),
        (vec!["--allow-cidr", "10.0.0.0/8", "--allow-cidr", "intranet"], None, "--allow-cidr", "`intranet` is not"),
        (vec![], Some(("SLUICE_DENY_CIDR", "10.0.0.0/8,10.1.0.0/33")), "--deny-cidr", "/33 is longer than /32"),
    ] {
        let mut cmd = sluice();
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(&data).args(&args);
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(flag) && err.contains(why), "{args:?}: {err}");
        assert!(!data.exists(), "nothing is created before the refusal");
    }
}

#[test]
fn serve_keeps_sources_away_from_its_postgresql_store() {
    let cluster = sluice_testkit::Cluster::start_default().expect("cluster");
    if cluster.version_num().expect("version") < 120_000 {
        return; // a store below PostgreSQL 12 is refused
    }
    cluster.create_database("sluice_store").expect("database");
    let key = sluice_store::MasterKey::generate().expect("key");
    let mut child = sluice()
        .args(["serve", "--listen", "127.0.0.1:0", "--deny-cidr", "10.0.0.0/8", "--store"])
        .arg(cluster.superuser_url("sluice_store"))
        .env("SLUICE_MASTER_KEY", key.to_base64().as_str())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut before = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("line");
        let listening = line.contains("listening on");
        before.push(line);
        if listening {
            break;
        }
    }
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(child.wait().expect("wait").success(), "{before:?} {rest:?}");
    let expected = format!("sources may not reach the store's server (127.0.0.1:{})", cluster.port());
    assert!(before.iter().any(|l| l.contains(&expected)), "{before:?}");
}
