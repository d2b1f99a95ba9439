//! `sluice doctor`, `catalog` and `query` through a real OpenSSH bastion.

mod common;

use std::path::Path;
use std::process::Output;

use common::check;
use serde_json::Value;
use sluice_testkit::{ClientKey, Cluster, KeyFormat, KeyType, Sshd, SshdOptions};

const PW: &str = "ssh-doctor-pw";

fn sluice(args: &[String], dir: &Path) -> Output {
    common::sluice(&args.iter().map(String::as_str).collect::<Vec<_>>(), dir)
}

/// The connection flags for role `ro` on `cluster`, reached through `sshd` with `key`, the
/// bastion's host key pinned to `pin`.
fn through_bastion(cluster: &Cluster, pw: &Path, sshd: &Sshd, key: &ClientKey, pin: &str) -> Vec<String> {
    [
        "--url",
        &format!("postgresql://ro@127.0.0.1:{}/postgres?sslmode=prefer", cluster.port()),
        "--password-file",
        pw.to_str().expect("path"),
        "--ssh-host",
        sshd.host(),
        "--ssh-port",
        &sshd.port().to_string(),
        "--ssh-user",
        sshd.user(),
        "--ssh-key",
        key.private_key_path.to_str().expect("path"),
        "--ssh-host-key",
        pin,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn doctor_runs_the_bastion_stages_and_pins_its_key() {
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_login("ro", PW).expect("role");
    // Before PostgreSQL 15 every role may create in `public`; the doctor rightly fails that.
    cluster.psql("postgres", "REVOKE CREATE ON SCHEMA public FROM PUBLIC;").expect("revoke");
    let sshd = Sshd::start(SshdOptions::default()).expect("sshd");
    let key = sshd.client_key(KeyType::Ed25519, KeyFormat::OpenSsh, None, true).expect("key");
    let dir = tempfile::tempdir().expect("dir");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, PW).expect("pw");
    let base = |pin: &str| -> Vec<String> {
        let mut args = vec!["doctor".to_string(), "--format".into(), "json".into()];
        args.extend(through_bastion(&cluster, &pw, &sshd, &key, pin));
        args
    };

    let out = sluice(&base(sshd.host_key_fingerprint()), dir.path());
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["source"]["network"], "ssh");
    assert_eq!(check(&report, "ssh")["status"], "pass", "{report:#}");
    let detail = check(&report, "ssh")["detail"].as_str().unwrap_or_default();
    for stage in ["reach", "host_key", "auth", "forward"] {
        assert!(detail.contains(stage), "{stage} missing from {detail}");
    }
    assert_eq!(check(&report, "auth")["status"], "pass");

    // A wrong pin fails at ssh and shows the key the bastion really presented.
    let wrong = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let out = sluice(&base(wrong), dir.path());
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(check(&report, "ssh")["status"], "fail");
    assert!(
        check(&report, "ssh")["summary"].as_str().unwrap_or_default().contains(sshd.host_key_fingerprint()),
        "{report:#}"
    );
    assert_eq!(check(&report, "tls")["status"], "skip");

    // No pin at all is a bad invocation: there is no "accept any key".
    let mut unpinned = base("x");
    unpinned.truncate(unpinned.len() - 2);
    let out = sluice(&unpinned, dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ssh-host-key"));
}

/// Discovery and queries take the bastion too (a tool that syncs its schema around the tunnel is
/// a known failure): with the bastion up both work; with it gone both fail at the bastion.
#[test]
fn catalog_and_query_go_through_the_bastion() {
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_login("ro", PW).expect("role");
    cluster
        .psql(
            "postgres",
            "CREATE TABLE tunnelled (id int); INSERT INTO tunnelled VALUES (7); GRANT SELECT ON tunnelled TO ro;",
        )
        .expect("table");
    let sshd = Sshd::start(SshdOptions::default()).expect("sshd");
    let key = sshd.client_key(KeyType::Ed25519, KeyFormat::OpenSsh, None, true).expect("key");
    let dir = tempfile::tempdir().expect("dir");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, PW).expect("pw");
    let with_ssh = |command: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        args.extend(through_bastion(&cluster, &pw, &sshd, &key, sshd.host_key_fingerprint()));
        args
    };
    let catalog = with_ssh(&["catalog", "--format", "json"]);
    let query = with_ssh(&["query", "--sql", "SELECT id FROM tunnelled"]);

    let out = sluice(&catalog, dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out.stderr));
    let snapshot: Value = serde_json::from_slice(&out.stdout).expect("json");
    let names: Vec<&str> = snapshot["schemas"][0]["relations"]
        .as_array()
        .map(|r| r.iter().filter_map(|r| r["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["tunnelled"], "{snapshot:#}");
    let out = sluice(&query, dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out.stderr));
    assert_eq!(common::text(&out.stdout), "id\n7\n");

    sshd.kill();
    for args in [&catalog, &query] {
        let out = sluice(args, dir.path());
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(common::text(&out.stderr).contains("SSH bastion"), "{}", common::text(&out.stderr));
    }
}
