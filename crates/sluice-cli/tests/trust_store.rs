//! verify-ca / verify-full without `sslrootcert` trust the operating system's store, read by
//! rustls-native-certs — which reads only `SSL_CERT_FILE` when that variable is set. A CA minted
//! here and handed over that way is trusted; any other store does not know it.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{check, status_of};
use serde_json::Value;
use sluice_testkit::{Cluster, ClusterOptions, HbaRule, TestCa, TlsFiles};

const PW: &str = "trust-store-pw-31";

/// `sluice doctor --format json` in a clean environment (as `common::sluice`), with
/// `SSL_CERT_FILE` set to `cert_file` when given.
fn doctor(url: &str, pw_file: &Path, cert_file: Option<&Path>, dir: &Path) -> (Output, Value) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(["doctor", "--format", "json", "--url", url, "--password-file"])
        .arg(pw_file)
        .current_dir(dir)
        .env_clear()
        .env("HOME", dir)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    if let Some(file) = cert_file {
        cmd.env("SSL_CERT_FILE", file);
    }
    let out = cmd.output().expect("run sluice");
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    (out, report)
}

#[test]
fn verify_modes_without_sslrootcert_use_the_os_trust_store() {
    let ca = TestCa::new("Trust store CA").expect("ca");
    let cluster = Cluster::start(ClusterOptions {
        tls: Some(TlsFiles { server: ca.server_cert(&["localhost"]).expect("cert"), client_ca_pem: None }),
        hba: vec![HbaRule::HostSslScram],
        ..Default::default()
    })
    .expect("cluster");
    cluster.create_login("ro", PW).expect("role");
    let dir = tempfile::tempdir().expect("dir");
    let store = dir.path().join("store.pem");
    std::fs::write(&store, &ca.cert_pem).expect("store file");
    let other_store = dir.path().join("other-store.pem");
    std::fs::write(&other_store, TestCa::new("Unrelated CA").expect("ca").cert_pem).expect("other store");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, format!("{PW}\n")).expect("pw file");
    let port = cluster.port();

    for (sslmode, verified) in [("verify-full", "chain+name"), ("verify-ca", "chain")] {
        let url = format!("postgresql://ro@localhost:{port}/postgres?sslmode={sslmode}");

        // The store holds the test CA: the chain (and name) verify, and the login goes on.
        let (_, report) = doctor(&url, &pw, Some(&store), dir.path());
        assert_eq!(status_of(&report, "tls"), "pass", "{sslmode}: {report:#}");
        let detail = check(&report, "tls")["detail"].as_str().unwrap_or_default();
        assert!(detail.ends_with(&format!("certificate verified: {verified}")), "{sslmode}: {report:#}");
        assert_eq!(status_of(&report, "auth"), "pass", "{sslmode}: {report:#}");

        // A store without it: unknown CA, and nothing after TLS runs.
        let (out, report) = doctor(&url, &pw, Some(&other_store), dir.path());
        assert_eq!(out.status.code(), Some(1), "{sslmode}: {report:#}");
        assert_eq!(status_of(&report, "tls"), "fail", "{sslmode}: {report:#}");
        assert!(check(&report, "tls")["summary"].to_string().contains("unknown CA"), "{sslmode}: {report:#}");
        assert_eq!(status_of(&report, "auth"), "skip", "{sslmode}: {report:#}");

        // No SSL_CERT_FILE: the machine's own store, which has never heard of the test CA.
        let (out, report) = doctor(&url, &pw, None, dir.path());
        assert_eq!(out.status.code(), Some(1), "{sslmode}: {report:#}");
        if Path::new("/etc/ssl/certs/ca-certificates.crt").exists() {
            assert_eq!(status_of(&report, "tls"), "fail", "{sslmode}: {report:#}");
            assert!(check(&report, "tls")["summary"].to_string().contains("unknown CA"), "{sslmode}: {report:#}");
        } else {
            // Without Debian's ca-certificates the store is empty, which is said as such.
            assert!(report.to_string().contains("trust store"), "{sslmode}: {report:#}");
        }
    }
}
