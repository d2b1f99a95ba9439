//! `sluice catalog` and `sluice catalog diff` end to end: the real binary against a real cluster.

mod common;

use common::{sluice, text};
use serde_json::Value;
use sluice_testkit::Cluster;

const PW: &str = "catalog-pw-5521";

#[test]
fn catalog_snapshots_and_diffs_them() {
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_login("reader", PW).expect("reader");
    cluster.create_login("other", PW).expect("other");
    cluster
        .psql(
            "postgres",
            "CREATE SCHEMA app; GRANT USAGE, CREATE ON SCHEMA app TO other; GRANT USAGE ON SCHEMA app TO reader;\n\
             CREATE TABLE app.keep (id int PRIMARY KEY, note text); GRANT SELECT ON app.keep TO reader;\n\
             SET ROLE other; CREATE TABLE app.audit (id int); GRANT SELECT ON app.audit TO reader; RESET ROLE;",
        )
        .expect("fixture");
    let dir = tempfile::tempdir().expect("dir");
    let pw_file = dir.path().join("pw");
    std::fs::write(&pw_file, format!("{PW}\n")).expect("pw file");
    let pw = pw_file.to_str().expect("utf-8 path");
    let url = format!("postgresql://reader@127.0.0.1:{}/postgres?sslmode=disable", cluster.port());

    // JSON to a file.
    let out = sluice(
        &["catalog", "--url", &url, "--password-file", pw, "--format", "json", "--output", "old.json"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let old: Value = serde_json::from_slice(&std::fs::read(dir.path().join("old.json")).expect("old.json"))
        .expect("snapshot is JSON");
    assert_eq!(old["user"], "reader");
    let app = old["schemas"].as_array().and_then(|s| s.iter().find(|s| s["name"] == "app")).expect("schema app");
    let names: Vec<&str> =
        app["relations"].as_array().expect("relations").iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["audit", "keep"]);

    // Human text to stdout, one schema only.
    let out = sluice(&["catalog", "--url", &url, "--password-file", pw, "--schema", "app"], dir.path());
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let human = text(&out.stdout);
    assert!(human.contains("schema app (owner postgres)"), "{human}");
    assert!(human.contains("primary key (id)"), "{human}");
    assert!(!human.contains("schema public"), "filtered: {human}");

    // The table is recreated by its owner without grants: the diff names exactly it, exit 1.
    cluster
        .psql_as("other", PW, "postgres", "DROP TABLE app.audit; CREATE TABLE app.audit (id int);")
        .expect("recreate");
    let out = sluice(
        &["catalog", "--url", &url, "--password-file", pw, "--format", "json", "--output", "new.json"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let out = sluice(&["catalog", "diff", "old.json", "new.json"], dir.path());
    assert_eq!(out.status.code(), Some(1), "changes exit 1; stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "! lost access to table app.audit\n");
    let out = sluice(&["catalog", "diff", "old.json", "new.json", "--format", "json"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let d: Value = serde_json::from_slice(&out.stdout).expect("diff JSON");
    assert_eq!(d["lost_access"], serde_json::json!([{"schema": "app", "name": "audit", "kind": "table"}]));

    // No changes: exit 0.
    let out = sluice(&["catalog", "diff", "new.json", "new.json"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "no changes\n");

    // Bad invocations: exit 2 with the file named.
    std::fs::write(dir.path().join("junk.json"), "{\"not\": \"a catalog\"}").expect("junk");
    let out = sluice(&["catalog", "diff", "old.json", "junk.json"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("junk.json is not a catalog snapshot"), "{}", text(&out.stderr));
    let out = sluice(&["catalog", "diff", "old.json", "missing.json"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("missing.json"), "{}", text(&out.stderr));
    let out = sluice(&["catalog", "--url", &url, "--password-file", pw, "--schema", "nope"], dir.path());
    assert_eq!(out.status.code(), Some(2), "unknown schema is the user's to fix");
    assert!(text(&out.stderr).contains("schema not found: nope"), "{}", text(&out.stderr));
    let out = sluice(&["catalog", "--url", &url, "--password-file", pw, "--output", "no/such/dir/x.json"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--output"), "{}", text(&out.stderr));

    // A server that refuses the login: exit 1 with a hint.
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "nope\n").expect("wrong pw");
    let out = sluice(&["catalog", "--url", &url, "--password-file", wrong.to_str().expect("path")], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("hint:"), "{}", text(&out.stderr));
}
