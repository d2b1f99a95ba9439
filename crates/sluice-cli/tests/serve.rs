//! `sluice serve` and `sluice token create` as processes: the setup link on an empty store, the
//! loopback rule, a token made offline, one instance per data directory (with offline commands
//! beside it), HTTPS with its flags, and a clean stop on SIGTERM.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use sluice_testkit::SluiceServe;

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
    assert!(err.contains("--insecure-http") && err.contains("--tls-cert"), "{err}");
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

/// One HTTP/1.1 GET with a bearer token; returns the status line and the body.
fn get(addr: &str, path: &str, token: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response.lines().next().unwrap_or_default().to_string();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// `sluice serve` on `data`, up to its "listening on" line.
fn serve_on(data: &std::path::Path) -> SluiceServe {
    let mut command = sluice();
    command.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(data);
    SluiceServe::start(command).expect("sluice serve")
}

#[test]
fn one_serve_owns_a_data_directory_and_offline_commands_work_beside_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut first = serve_on(&data);
    let addr = first.addr().to_string();

    // A second instance on the same directory is refused, naming it and the shared store.
    let out = sluice().args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(&data).output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("the data directory {} is in use by another sluice serve", data.display())), "{err}");
    assert!(err.contains("--store postgres://"), "{err}");
    assert!(err.contains("sluice.db.lock"), "{err}");
    // The same file named as sqlite:// is the same store.
    let url = format!("sqlite://{}", data.join("sluice.db").display());
    let out = sluice().args(["serve", "--listen", "127.0.0.1:0", "--store", &url]).output().expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));

    // Offline commands do not need the service's lock: a token made now works on the service.
    let out = sluice()
        .args(["token", "create", "--name", "ops", "--role", "admin", "--data-dir"])
        .arg(&data)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).expect("utf-8").lines().last().expect("a line").to_string();
    let (status, body) = get(&addr, "/api/v1/me", &token);
    assert!(status.contains(" 200 "), "{status} {body}");
    let (status, _) = get(&addr, "/api/v1/me", "sluice_not-a-token");
    assert!(status.contains(" 401 "), "{status}");
    let out = sluice().args(["user", "list", "--data-dir"]).arg(&data).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // A key rotation re-seals the store under the service's feet: refused while it runs.
    let out = sluice().args(["rotate-master-key", "--data-dir"]).arg(&data).output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("in use by another Sluice process"), "{err}");

    let (status, log) = first.terminate().expect("SIGTERM");
    assert!(status.success());
    assert!(log.iter().any(|l| l.contains("stopped")), "{log:?}");

    // Once it stopped, the directory serves again, and the offline token still works there.
    let second = serve_on(&data);
    let (status, body) = get(second.addr(), "/api/v1/me", &token);
    assert!(status.contains(" 200 "), "{status} {body}");
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
    let mut first = serve_on(&dir.path().join("data"));
    let (setup, addr) = (first.setup_token().expect("a setup link"), first.addr());
    let body = format!(r#"{{"setup_token":"{setup}","login":"ada","password":"correct horse battery"}}"#);
    let (status, reply) = post(addr, "/api/v1/setup", &body);
    assert!(status.contains(" 201 "), "{status} {reply}");
    let (status, _) = post(addr, "/api/v1/setup", &body);
    assert!(status.contains(" 409 ") || status.contains(" 403 "), "the link works once: {status}");

    let (status, rest) = first.terminate().expect("SIGTERM");
    assert!(status.success(), "{status}: {rest:?}");
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");

    // A store with an administrator prints no link.
    let mut second = serve_on(&dir.path().join("data"));
    let before = second.startup_log().to_vec();
    let (status, rest) = second.terminate().expect("SIGTERM");
    assert!(status.success(), "{rest:?}");
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
fn serve_refuses_a_discovery_memory_budget_out_of_range_naming_its_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    for (args, env) in [
        (vec!["--discovery-memory-mib", "8"], None),
        (vec!["--discovery-memory-mib", "2000000"], None),
        (vec!["--discovery-memory-mib", "1GiB"], None),
        (vec![], Some(("SLUICE_DISCOVERY_MEMORY_MIB", "0"))),
    ] {
        let mut cmd = sluice();
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(&data).args(&args);
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("--discovery-memory-mib"), "{args:?}: {err}");
        assert!(!data.exists(), "nothing is created before the refusal");
    }
    // The flag is documented with its unit.
    let help = sluice().args(["serve", "--help"]).output().expect("run");
    assert!(String::from_utf8_lossy(&help.stdout).contains("--discovery-memory-mib <MIB>"));
}

#[test]
fn serve_keeps_sources_away_from_its_postgresql_store() {
    let cluster = sluice_testkit::Cluster::start_default().expect("cluster");
    if cluster.version_num().expect("version") < 120_000 {
        return; // a store below PostgreSQL 12 is refused
    }
    cluster.create_database("sluice_store").expect("database");
    let key = sluice_store::MasterKey::generate().expect("key");
    let mut command = sluice();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--deny-cidr", "10.0.0.0/8", "--store"])
        .arg(cluster.superuser_url("sluice_store"))
        .env("SLUICE_MASTER_KEY", key.to_base64().as_str());
    let mut server = SluiceServe::start(command).expect("sluice serve");
    let before = server.startup_log().to_vec();
    let (status, rest) = server.terminate().expect("SIGTERM");
    assert!(status.success(), "{before:?} {rest:?}");
    let expected = format!("sources may not reach the store's server (127.0.0.1:{})", cluster.port());
    assert!(before.iter().any(|l| l.contains(&expected)), "{before:?}");
}

/// A CA and its server certificate for 127.0.0.1, with a second key that is not the
/// certificate's, written to `dir`.
fn tls_files(
    dir: &std::path::Path,
) -> (sluice_testkit::TestCa, std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let ca = sluice_testkit::TestCa::new("sluice test ca").expect("ca");
    let pair = ca.server_cert(&["127.0.0.1"]).expect("cert");
    let other = ca.server_cert(&["127.0.0.1"]).expect("cert");
    let (cert, key, wrong) = (dir.join("server.crt"), dir.join("server.key"), dir.join("other.key"));
    std::fs::write(&cert, &pair.cert_pem).expect("write");
    std::fs::write(&key, &pair.key_pem).expect("write");
    std::fs::write(&wrong, &other.key_pem).expect("write");
    (ca, cert, key, wrong)
}

/// One GET over TLS to 127.0.0.1, verified against `ca_pem`; the whole response.
fn https_get(port: u16, ca_pem: &str, path: &str) -> std::io::Result<String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("ca pem")).expect("root");
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("client");
    let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(("127.0.0.1", port))?);
    write!(tls, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    tls.read_to_string(&mut response)?;
    Ok(response)
}

#[test]
fn serve_refuses_bad_tls_flags_naming_the_flag_or_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (_ca, cert, key, wrong) = tls_files(dir.path());
    let missing = dir.path().join("missing.pem");
    let not_pem = dir.path().join("notes.txt");
    std::fs::write(&not_pem, "not a certificate\n").expect("write");
    let p = |p: &std::path::Path| p.display().to_string();
    for (args, expected) in [
        (vec!["--tls-cert".to_string(), p(&cert)], vec!["--tls-cert needs --tls-key".to_string()]),
        (vec!["--tls-key".to_string(), p(&key)], vec!["--tls-key needs --tls-cert".to_string()]),
        (
            vec!["--tls-cert".to_string(), p(&cert), "--tls-key".to_string(), p(&wrong)],
            vec!["does not belong to the certificate".to_string(), p(&wrong), p(&cert)],
        ),
        (
            vec!["--tls-cert".to_string(), p(&missing), "--tls-key".to_string(), p(&key)],
            vec!["cannot read it".to_string(), p(&missing)],
        ),
        (
            vec!["--tls-cert".to_string(), p(&not_pem), "--tls-key".to_string(), p(&key)],
            vec!["no PEM certificate".to_string(), p(&not_pem)],
        ),
        (
            vec!["--tls-cert".to_string(), p(&cert), "--tls-key".to_string(), p(&not_pem)],
            vec!["no PEM private key".to_string(), p(&not_pem)],
        ),
    ] {
        let out = sluice()
            .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
            .arg(&data)
            .args(&args)
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        for e in &expected {
            assert!(err.contains(e.as_str()), "{args:?}: {e}: {err}");
        }
        assert!(err.contains("hint: "), "{args:?}: {err}");
        assert!(!data.exists(), "nothing is created before the refusal");
    }
}

#[test]
fn serve_over_https_answers_a_verifying_client_and_refuses_plain_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key, _) = tls_files(dir.path());
    // With TLS a non-loopback address needs no --insecure-http; the test reaches it on loopback.
    let mut command = sluice();
    command
        .args(["serve", "--listen", "0.0.0.0:0", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .arg("--data-dir")
        .arg(dir.path().join("data"));
    let mut server = SluiceServe::start(command).expect("sluice serve");
    let before = server.startup_log();
    let port = server.url().strip_prefix("https://0.0.0.0:").unwrap_or_else(|| panic!("an https address: {before:?}"));
    assert!(before.iter().any(|l| l.contains(&format!("https://0.0.0.0:{port}/setup#token="))), "{before:?}");
    let port: u16 = port.parse().expect("port");
    let reply = https_get(port, &ca.cert_pem, "/api/v1/health").expect("https");
    assert!(reply.starts_with("HTTP/1.1 200") && reply.contains(r#""status":"ok""#), "{reply}");

    // A client trusting another CA refuses the certificate.
    let other = sluice_testkit::TestCa::new("another ca").expect("ca");
    let err = https_get(port, &other.cert_pem, "/api/v1/health").expect_err("an unknown issuer");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");

    // Plain HTTP to the TLS port gets no HTTP answer.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(stream, "GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").expect("write");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    assert!(!response.starts_with(b"HTTP/"), "{}", String::from_utf8_lossy(&response));

    let (status, rest) = server.terminate().expect("SIGTERM");
    assert!(status.success(), "{status}: {rest:?}");
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
}
