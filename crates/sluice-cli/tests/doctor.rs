//! `sluice doctor` end to end: the real binary against real clusters.

mod common;

use std::process::Output;

use common::{sluice, status_of};
use serde_json::Value;
use sluice_testkit::{Cluster, ClusterOptions, HbaRule, TestCa, TlsFiles};

const PW: &str = "doctor-pw-7781";

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn summary_of(report: &Value, id: &str) -> String {
    report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == id))
        .map(|c| c["summary"].to_string())
        .unwrap_or_default()
}

#[test]
fn doctor_reports_each_stage_as_json_and_text() {
    let ca = TestCa::new("Doctor CA").expect("ca");
    let cluster = Cluster::start(ClusterOptions {
        tls: Some(TlsFiles { server: ca.server_cert(&["localhost"]).expect("cert"), client_ca_pem: None }),
        hba: vec![HbaRule::HostSslScram],
        ..Default::default()
    })
    .expect("cluster");
    cluster.create_login("ro", PW).expect("role");
    // Before PostgreSQL 15 every role may create tables in schema public, which read_only fails.
    cluster.psql("postgres", "REVOKE CREATE ON SCHEMA public FROM PUBLIC;").expect("revoke");
    let dir = tempfile::tempdir().expect("dir");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.cert_pem).expect("ca file");
    let pw_file = dir.path().join("pw");
    std::fs::write(&pw_file, format!("{PW}\n")).expect("pw file");
    let port = cluster.port();
    let pw = pw_file.to_str().expect("utf-8 path");

    // verify-full to 127.0.0.1 with --tls-server-name: everything passes, exit 0.
    let url =
        format!("postgresql://ro@127.0.0.1:{port}/postgres?sslmode=verify-full&sslrootcert={}", ca_file.display());
    let out = sluice(
        &["doctor", "--format", "json", "--url", &url, "--password-file", pw, "--tls-server-name", "localhost"],
        dir.path(),
    );
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["ok"], true);
    let ids: Vec<&str> = report["checks"].as_array().expect("checks").iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(
        ids,
        [
            "config",
            "dns",
            "tcp",
            "ssh",
            "iam",
            "tls",
            "auth",
            "server_version",
            "database_connect",
            "read_only",
            "role_attributes",
            "schema_usage",
            "table_select",
            "default_privileges",
            "audit_logging"
        ]
    );
    for (id, want) in [
        ("config", "pass"),
        ("dns", "pass"),
        ("tcp", "pass"),
        ("ssh", "skip"),
        ("iam", "skip"),
        ("tls", "pass"),
        ("auth", "pass"),
        ("server_version", "pass"),
    ] {
        assert_eq!(status_of(&report, id), want, "{id}: {report:#}");
    }
    assert_eq!(report["source"]["sslmode"], "verify-full");
    assert!(report["server_version"].as_str().is_some_and(|v| v.starts_with(char::is_numeric)), "{report:#}");
    for c in report["checks"].as_array().expect("checks") {
        for key in ["id", "status", "summary", "detail", "fix", "elapsed_ms"] {
            assert!(c.get(key).is_some(), "check lacks {key}: {c}");
        }
    }

    // Without the name override, verify-full fails at tls and names the certificate's name.
    let out = sluice(&["doctor", "--format", "json", "--url", &url, "--password-file", pw], dir.path());
    let report = json(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(status_of(&report, "tls"), "fail");
    assert!(summary_of(&report, "tls").contains("localhost"), "{report:#}");
    assert_eq!(status_of(&report, "auth"), "skip");

    // A wrong password fails at auth and is never echoed, in either format.
    let bad = dir.path().join("bad");
    std::fs::write(&bad, "wrong-password-55\n").expect("file");
    let require = format!("postgresql://ro@127.0.0.1:{port}/postgres?sslmode=require");
    for format in ["json", "human"] {
        let out = sluice(
            &["doctor", "--format", format, "--url", &require, "--password-file", bad.to_str().expect("path")],
            dir.path(),
        );
        assert_eq!(out.status.code(), Some(1));
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!all.contains("wrong-password-55"), "{all}");
        if format == "json" {
            let report = json(&out);
            assert_eq!(status_of(&report, "auth"), "fail");
            // require on a non-loopback-verified path: encrypted, handshake fine.
            assert_eq!(status_of(&report, "tls"), "pass");
        } else {
            assert!(all.contains("FAIL auth"), "{all}");
        }
    }

    // A refused parameter is a config failure naming it.
    let out = sluice(&["doctor", "--format", "json", "--url", &format!("{require}&options=-c%20x%3Dy")], dir.path());
    let report = json(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(status_of(&report, "config"), "fail");
    assert!(summary_of(&report, "config").contains("options"), "{report:#}");

    // An unreadable password file is a bad invocation.
    let out = sluice(&["doctor", "--url", &require, "--password-file", "/nonexistent/pw"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--password-file"));
}

#[test]
fn doctor_reads_pgpass_like_libpq() {
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_login("ro", PW).expect("role");
    cluster.psql("postgres", "REVOKE CREATE ON SCHEMA public FROM PUBLIC;").expect("revoke");
    let dir = tempfile::tempdir().expect("dir");
    let pgpass = dir.path().join(".pgpass");
    std::fs::write(&pgpass, format!("127.0.0.1:{}:postgres:ro:{PW}\n", cluster.port())).expect("pgpass");
    std::fs::set_permissions(&pgpass, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
    let url = format!("postgresql://ro@127.0.0.1:{}/postgres?sslmode=disable", cluster.port());
    let out = sluice(&["doctor", "--format", "json", "--url", &url], dir.path());
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(status_of(&report, "auth"), "pass");

    // A .pgpass readable by others is ignored, as libpq does, with a warning.
    std::fs::set_permissions(&pgpass, std::os::unix::fs::PermissionsExt::from_mode(0o644)).expect("chmod");
    let out = sluice(&["doctor", "--format", "json", "--url", &url], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("readable by others"));
    assert_eq!(status_of(&json(&out), "auth"), "fail");
}

#[test]
fn doctor_says_when_the_port_is_not_postgres() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        use std::io::Write;
        for mut s in listener.incoming().flatten().take(4) {
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        }
    });
    let dir = tempfile::tempdir().expect("dir");
    let out =
        sluice(&["doctor", "--format", "json", "--url", &format!("postgresql://ro@127.0.0.1:{port}/db")], dir.path());
    let report = json(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(status_of(&report, "tcp"), "fail");
    assert!(summary_of(&report, "tcp").contains("not a PostgreSQL server"), "{report:#}");
}
