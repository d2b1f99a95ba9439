//! `sluice setup-sql` and `sluice doctor --schema … --fix-sql` end to end: the real binary, psql
//! and a real cluster, the way a DBA would use them.

mod common;

use std::path::Path;
use std::process::Command;

use common::{sluice, status_of, text};
use serde_json::Value;
use sluice_testkit::{Cluster, SUPERUSER, SUPERUSER_PASSWORD};

/// `psql -v ON_ERROR_STOP=1 -f FILE` as the superuser, as the DBA runs the scripts.
fn run_script(cluster: &Cluster, db: &str, script: &str, dir: &Path) {
    let file = dir.join("script.sql");
    std::fs::write(&file, script).expect("write script");
    let out = Command::new(std::env::var_os("PSQL").unwrap_or_else(|| "psql".into()))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", &cluster.port().to_string()])
        .args(["-U", SUPERUSER, "-d", db, "-f"])
        .arg(&file)
        .env("PGPASSWORD", SUPERUSER_PASSWORD)
        .output()
        .expect("psql");
    assert!(out.status.success(), "{}\n{script}", text(&out.stderr));
}

const PRIVILEGE_CHECKS: [&str; 7] = [
    "database_connect",
    "read_only",
    "role_attributes",
    "schema_usage",
    "table_select",
    "default_privileges",
    "audit_logging",
];

#[test]
fn setup_sql_then_doctor_then_fix_sql() {
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_database("warehouse").expect("db");
    cluster
        .psql(
            "warehouse",
            "CREATE ROLE etl_user LOGIN PASSWORD 'etl-pw';
             CREATE SCHEMA analytics AUTHORIZATION etl_user;
             SET ROLE etl_user;
             CREATE TABLE analytics.orders (id int, amount numeric);
             RESET ROLE;",
        )
        .expect("fixture");
    let dir = tempfile::tempdir().expect("dir");

    // A generated password: the script on stdout never holds it; stderr shows it once.
    let out = sluice(
        &[
            "setup-sql",
            "--user",
            "sluice_ro",
            "--database",
            "warehouse",
            "--schema",
            "analytics",
            "--elt-owner",
            "etl_user",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let script = text(&out.stdout);
    let stderr = text(&out.stderr);
    let password = stderr.lines().last().expect("password line").trim().to_string();
    assert_eq!(password.len(), 32, "{stderr}");
    assert!(password.chars().all(|c| c.is_ascii_alphanumeric()));
    assert!(!script.contains(&password));
    assert_eq!(stderr.matches(&password).count(), 1);
    run_script(&cluster, "warehouse", &script, dir.path());

    let pw_file = dir.path().join("pw");
    std::fs::write(&pw_file, format!("{password}\n")).expect("pw file");
    let pw = pw_file.to_str().expect("path");
    let url = format!("postgresql://sluice_ro@127.0.0.1:{}/warehouse?sslmode=disable", cluster.port());
    let doctor = |extra: &[&str]| {
        let mut args = vec!["doctor", "--url", &url, "--password-file", pw, "--schema", "analytics"];
        args.extend_from_slice(extra);
        sluice(&args, dir.path())
    };
    let out = doctor(&["--format", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    for id in PRIVILEGE_CHECKS {
        assert_eq!(status_of(&report, id), "pass", "{id}: {report:#}");
    }

    // A write grant: doctor fails; --fix-sql prints the script that undoes it.
    cluster.psql("warehouse", "GRANT INSERT ON analytics.orders TO sluice_ro;").expect("grant");
    let out = doctor(&[]);
    assert_eq!(out.status.code(), Some(1));
    let human = text(&out.stdout);
    assert!(human.contains("INSERT on table analytics.orders (granted directly)"), "{human}");
    let out = doctor(&["--fix-sql"]);
    assert_eq!(out.status.code(), Some(1));
    let fix = text(&out.stdout);
    assert!(fix.contains("REVOKE INSERT ON TABLE analytics.orders FROM sluice_ro;"), "{fix}");
    assert!(text(&out.stderr).contains("(read_only)"), "{}", text(&out.stderr));
    run_script(&cluster, "warehouse", &fix, dir.path());
    let out = doctor(&["--format", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(status_of(&report, "read_only"), "pass");

    // --fix-sql and --format exclude each other.
    assert_eq!(doctor(&["--fix-sql", "--format", "json"]).status.code(), Some(2));
}

#[test]
fn setup_sql_takes_a_password_file_and_names_bad_input() {
    let dir = tempfile::tempdir().expect("dir");
    let pw_file = dir.path().join("pw");
    std::fs::write(&pw_file, "from-a-file-123\n").expect("pw");
    let pw = pw_file.to_str().expect("path");
    let out = sluice(
        &["setup-sql", "--user", "Sales Data", "--database", "select", "--schema", "prix_€", "--password-file", pw],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "", "nothing to show when the password came from a file");
    let script = text(&out.stdout);
    assert!(script.contains("GRANT CONNECT ON DATABASE \"select\" TO \"Sales Data\";"), "{script}");
    assert!(script.contains("GRANT USAGE ON SCHEMA \"prix_€\" TO \"Sales Data\";"), "{script}");
    assert!(!script.contains("from-a-file-123"));

    let out = sluice(&["setup-sql", "--user", "ro", "--database", "db"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--schema"), "{}", text(&out.stderr));

    let out = sluice(&["setup-sql", "--user", "pg_ro", "--database", "db", "--schema", "s"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("user `pg_ro` is reserved"), "{}", text(&out.stderr));
    assert!(text(&out.stdout).is_empty());
}
