//! `--auth rds_iam` end to end: the real binary, a real TLS cluster that refuses the token (its
//! role has another password), credentials from the environment and from a profile file. The
//! doctor names the credential source and the causes of a refused token in a DBA's order, and
//! nothing secret — secret key, session token, any part of a token — reaches stdout or stderr,
//! even at SLUICE_LOG=trace.

mod common;

use std::path::Path;
use std::process::Output;

use common::{check, status_of, text};
use serde_json::Value;
use sluice_testkit::{Cluster, ClusterOptions, HbaRule, TestCa, TlsFiles};

const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SESSION_TOKEN: &str = "FwoGZXIvYXdzSESSIONTOKENxyz+/=";

/// The binary at trace level, with no instance metadata service to ask.
fn sluice(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut all = vec![("SLUICE_LOG", "trace"), ("AWS_EC2_METADATA_DISABLED", "true")];
    all.extend_from_slice(env);
    common::sluice_with(args, dir, &all)
}

fn assert_no_secret(out: &Output) {
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    for secret in [SECRET_KEY, SESSION_TOKEN, "X-Amz-Signature", "X-Amz-Credential", "Action=connect"] {
        assert!(!all.contains(secret), "{secret} appears in the output:\n{all}");
    }
}

#[test]
fn rds_iam_flags_the_doctors_iam_check_and_no_secret_in_any_output() {
    let ca = TestCa::new("IAM CLI CA").expect("ca");
    let cluster = Cluster::start(ClusterOptions {
        tls: Some(TlsFiles { server: ca.server_cert(&["localhost"]).expect("cert"), client_ca_pem: None }),
        hba: vec![HbaRule::HostSslScram],
        ..Default::default()
    })
    .expect("cluster");
    cluster.create_login("iam_ro", "not-the-token").expect("role");
    let dir = tempfile::tempdir().expect("dir");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.cert_pem).expect("ca file");
    let url = format!(
        "postgresql://iam_ro@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
        cluster.port(),
        ca_file.display()
    );
    let iam =
        ["--auth", "rds_iam", "--aws-region", "eu-west-1", "--iam-sign-host", "mydb.x.eu-west-1.rds.amazonaws.com"];
    let env_creds = [
        ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEACCESS01"),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_SESSION_TOKEN", SESSION_TOKEN),
    ];

    let mut args = vec!["doctor", "--format", "json", "--url", &url];
    args.extend(iam);
    let out = sluice(&args, dir.path(), &env_creds);
    assert_no_secret(&out);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)));
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    assert_eq!(status_of(&report, "iam"), "pass", "{report:#}");
    let iam_check = check(&report, "iam");
    assert!(iam_check["summary"].as_str().is_some_and(|s| s.contains("the environment")), "{iam_check}");
    assert!(iam_check["detail"].as_str().is_some_and(|d| d.contains("AKIAEXAMPLEACCESS01")), "{iam_check}");
    assert_eq!(status_of(&report, "tls"), "pass", "{report:#}");
    assert_eq!(status_of(&report, "auth"), "fail", "{report:#}");
    let fix = check(&report, "auth")["fix"].as_str().unwrap_or_default().to_string();
    let order = ["GRANT rds_iam", "--enable-iam-database-authentication", "rds-db:connect", "clock"];
    let at: Vec<usize> = order.iter().map(|w| fix.find(w).unwrap_or_else(|| panic!("{w} in {fix}"))).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{fix}");
    let ids: Vec<&str> = report["checks"].as_array().expect("checks").iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(ids[..6], ["config", "dns", "tcp", "ssh", "iam", "tls"]);

    // The same through `query`: refused at login, and still nothing secret at trace level.
    let mut args = vec!["query", "--url", &url];
    args.extend(iam);
    args.extend(["--sql", "SELECT 1"]);
    let out = sluice(&args, dir.path(), &env_creds);
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("rds_iam"), "{}", text(&out.stderr));
    assert_no_secret(&out);

    // Credentials from a named profile of a credentials file.
    let creds_file = dir.path().join("creds");
    std::fs::write(&creds_file, format!("[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = other\n[ro]\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = {SECRET_KEY}\n")).expect("file");
    let mut args = vec!["doctor", "--format", "json", "--url", &url];
    args.extend(iam);
    let file = creds_file.to_str().expect("path");
    let out = sluice(&args, dir.path(), &[("AWS_SHARED_CREDENTIALS_FILE", file), ("AWS_PROFILE", "ro")]);
    assert_no_secret(&out);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let summary = check(&report, "iam")["summary"].as_str().unwrap_or_default().to_string();
    assert!(summary.contains("profile `ro`") && summary.contains(file), "{report:#}");

    // No credentials anywhere: the iam check fails, says where it looked, and the login is not tried.
    let out = sluice(&args, dir.path(), &[]);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(status_of(&report, "iam"), "fail", "{report:#}");
    assert!(check(&report, "iam")["summary"].as_str().is_some_and(|s| s.contains("no AWS credentials")), "{report:#}");
    assert_eq!(status_of(&report, "auth"), "skip");

    // Refusals: plaintext sslmode, a password alongside, a region missing.
    let plain = format!("postgresql://iam_ro@localhost:{}/postgres?sslmode=prefer", cluster.port());
    let mut args = vec!["doctor", "--format", "json", "--url", &plain];
    args.extend(iam);
    let out = sluice(&args, dir.path(), &env_creds);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(status_of(&report, "config"), "fail");
    assert!(check(&report, "config")["summary"].as_str().is_some_and(|s| s.contains("rds_iam")), "{report:#}");
    let out = sluice(&["doctor", "--url", &url, "--auth", "rds_iam"], dir.path(), &env_creds);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--aws-region"), "{}", text(&out.stderr));
    // A role ARN of the wrong shape is refused before anything is dialled, naming the flag.
    let mut args = vec!["doctor", "--url", &url];
    args.extend(iam);
    args.extend(["--aws-role-arn", "arn:aws:iam::123456789012:user/app"]);
    let out = sluice(&args, dir.path(), &env_creds);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--aws-role-arn") && text(&out.stderr).contains(":role/"),
        "{}",
        text(&out.stderr)
    );
    let out = sluice(
        &["doctor", "--url", &url, "--aws-role-arn", "arn:aws:iam::123456789012:role/r"],
        dir.path(),
        &env_creds,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("needs --auth rds_iam"), "{}", text(&out.stderr));
}
