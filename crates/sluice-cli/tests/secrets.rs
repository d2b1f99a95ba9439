//! No secret Sluice is given — a password (in a file or in the URL), a client key, an SSH
//! private key or its passphrase — appears in anything it prints, at the most verbose log level,
//! whether the run succeeds or fails.

mod common;

use std::path::Path;
use std::process::Output;

use common::{status_of, text};
use serde_json::Value;
use sluice_testkit::{
    ClientKey, Cluster, ClusterOptions, HbaRule, KeyFormat, KeyType, Sshd, SshdOptions, TestCa, TlsFiles,
};

const PASSWORD: &str = "pw-canary-7Hq2xV";
const WRONG_PASSWORD: &str = "wrong-canary-Qp4tY";
const URL_PASSWORD: &str = "url-canary-Lm3kR";
const PASSPHRASE: &str = "phrase-canary-Zx9wB";

/// `sluice ARGS` in `dir` with `SLUICE_LOG=trace` and nothing else from the caller's environment.
fn traced(args: &[String], dir: &Path) -> Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    common::sluice_with(&args, dir, &[("SLUICE_LOG", "trace")])
}

/// The base64 lines of a PEM or OpenSSH key: any of them in the output would leak key material.
fn key_lines(pem: &str) -> Vec<String> {
    let lines: Vec<String> =
        pem.lines().map(str::trim).filter(|l| !l.starts_with("-----") && l.len() >= 16).map(str::to_string).collect();
    assert!(!lines.is_empty(), "no key material found in {pem:?}");
    lines
}

/// Fails when any canary is in the run's stdout or stderr.
fn assert_no_secret(out: &Output, canaries: &[String], what: &str) {
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    for canary in canaries {
        assert!(!stdout.contains(canary.as_str()), "{what}: a secret is on stdout: {stdout}");
        assert!(!stderr.contains(canary.as_str()), "{what}: a secret is on stderr");
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn passwords_ssh_keys_and_passphrases_never_appear_in_output_or_logs() {
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_login("ro", PASSWORD).expect("role");
    // Before PostgreSQL 15 every role may create in `public`; the doctor rightly fails that.
    cluster
        .psql(
            "postgres",
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC; CREATE TABLE t (id int); GRANT SELECT ON t TO ro;",
        )
        .expect("table");
    let sshd = Sshd::start(SshdOptions::default()).expect("sshd");
    let key: ClientKey = sshd.client_key(KeyType::Ed25519, KeyFormat::OpenSsh, Some(PASSPHRASE), true).expect("key");
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("pw"), PASSWORD).expect("pw");
    std::fs::write(dir.path().join("wrong"), WRONG_PASSWORD).expect("wrong pw");
    std::fs::write(dir.path().join("phrase"), PASSPHRASE).expect("passphrase");
    let mut canaries: Vec<String> = [PASSWORD, WRONG_PASSWORD, URL_PASSWORD, PASSPHRASE].map(String::from).to_vec();
    canaries.extend(key_lines(&key.private_key_pem));

    let url = format!("postgresql://ro@127.0.0.1:{}/postgres?sslmode=prefer", cluster.port());
    let bastion = args(&[
        "--ssh-host",
        sshd.host(),
        "--ssh-port",
        &sshd.port().to_string(),
        "--ssh-user",
        sshd.user(),
        "--ssh-key",
        key.private_key_path.to_str().expect("path"),
        "--ssh-key-passphrase-file",
        "phrase",
        "--ssh-host-key",
        sshd.host_key_fingerprint(),
    ]);
    let with = |command: &[&str], password_file: &str| -> Vec<String> {
        let mut a = args(command);
        a.extend(args(&["--url", &url, "--password-file", password_file]));
        a.extend(bastion.clone());
        a
    };

    // Success through the bastion: every secret was used.
    let out = traced(&with(&["doctor", "--format", "json"], "pw"), dir.path());
    let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(status_of(&report, "ssh"), "pass", "{report:#}");
    assert_eq!(status_of(&report, "auth"), "pass", "{report:#}");
    // A run that reached the server logged at trace level (the driver's and TLS's records too), or
    // this test would prove nothing about the logs.
    assert!(text(&out.stderr).contains("TRACE"), "nothing was logged at trace level");
    assert_no_secret(&out, &canaries, "doctor --format json");
    for command in [&["doctor"][..], &["catalog", "--format", "json"], &["query", "--sql", "SELECT id FROM t"]] {
        let out = traced(&with(command, "pw"), dir.path());
        assert_eq!(out.status.code(), Some(0), "{command:?}: {}", text(&out.stderr));
        assert_no_secret(&out, &canaries, &format!("{command:?}"));
    }

    // Failures: a wrong password, a wrong passphrase, and a password in the URL.
    let out = traced(&with(&["doctor", "--format", "json"], "wrong"), dir.path());
    let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(status_of(&report, "auth"), "fail", "{report:#}");
    assert_no_secret(&out, &canaries, "doctor with a wrong password");

    std::fs::write(dir.path().join("phrase"), WRONG_PASSWORD).expect("wrong passphrase");
    let out = traced(&with(&["query", "--sql", "SELECT 1"], "pw"), dir.path());
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("the passphrase does not decrypt"), "{}", text(&out.stderr));
    assert_no_secret(&out, &canaries, "query with a wrong passphrase");

    let in_url = format!("postgresql://ro:{URL_PASSWORD}@127.0.0.1:{}/postgres?sslmode=prefer", cluster.port());
    for command in [&["doctor"][..], &["query", "--sql", "SELECT 1"], &["catalog"]] {
        let mut a = args(command);
        a.extend(args(&["--url", &in_url]));
        let out = traced(&a, dir.path());
        assert_ne!(out.status.code(), Some(0), "{command:?}: the URL's password is wrong");
        assert_no_secret(&out, &canaries, &format!("{command:?} with a password in the URL"));
    }
}

#[test]
fn a_client_key_never_appears_in_output_or_logs() {
    let ca = TestCa::new("Sluice Secrets CA").expect("ca");
    let server = ca.server_cert(&["localhost"]).expect("server cert");
    let cluster = Cluster::start(ClusterOptions {
        tls: Some(TlsFiles { server, client_ca_pem: Some(ca.cert_pem.clone()) }),
        hba: vec![HbaRule::HostSslCert { role: "certuser".into() }, HbaRule::HostSslScram],
        ..Default::default()
    })
    .expect("cluster");
    cluster.psql("postgres", "CREATE ROLE certuser LOGIN;").expect("cert role");
    let client = ca.client_cert("certuser").expect("client cert");
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("ca.pem"), &ca.cert_pem).expect("ca");
    std::fs::write(dir.path().join("client.crt"), &client.cert_pem).expect("cert");
    std::fs::write(dir.path().join("client.key"), &client.key_pem).expect("key");
    let canaries = key_lines(&client.key_pem);

    let url = format!(
        "postgresql://certuser@localhost:{}/postgres?sslmode=verify-full&sslrootcert=ca.pem&sslcert=client.crt&sslkey=client.key",
        cluster.port()
    );
    let out = traced(&args(&["doctor", "--format", "json", "--url", &url]), dir.path());
    let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(status_of(&report, "auth"), "pass", "{report:#}");
    assert!(text(&out.stderr).contains("TRACE"), "nothing was logged at trace level");
    assert_no_secret(&out, &canaries, "doctor with a client certificate");
    let out = traced(&args(&["query", "--sql", "SELECT current_user", "--url", &url]), dir.path());
    assert_eq!(text(&out.stdout), "current_user\ncertuser\n", "{}", text(&out.stderr));
    assert_no_secret(&out, &canaries, "query with a client certificate");

    // A client certificate the server does not accept (for another role): refused, key unseen.
    let other = url.replace("certuser@", "someone@");
    let out = traced(&args(&["query", "--sql", "SELECT 1", "--url", &other]), dir.path());
    assert_ne!(out.status.code(), Some(0));
    assert_no_secret(&out, &canaries, "a refused client certificate");
}
