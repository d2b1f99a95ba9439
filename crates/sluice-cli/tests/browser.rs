//! The web workspace in a real browser: Debian's Chromium, driven by playwright-core from node's
//! own test runner (`web/e2e/*.test.mjs`), against a real `sluice serve` (SQLite store in a temp
//! dir) and a real target cluster with TLS (a certificate from a CA minted here) holding a small
//! shop, 10,000 tables in 20 schemas and a `bench.wide` of 10,000 rows
//! × 11 columns, read by Sluice's role from its own setup script; an OpenSSH bastion in front of it.
//!
//! Everything the flows need goes to them in one JSON file (`SLUICE_E2E_CONFIG`): the service's
//! address and one-time setup link, the people's passwords, the target's settings and CA, the SSH
//! key and host key fingerprint, the bytes `sluice query` writes for the CSV the flows export, and
//! a superuser DSN for their `psql` checks of `pg_stat_activity`. The flows save screenshots to
//! `docs/screenshots/` and print their timings (`perf: …` lines); this test prints node's output
//! and asserts its exit status.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use sluice_doctor::{generate_password, setup_sql, SetupOptions, DEFAULT_STATEMENT_TIMEOUT};
use sluice_testkit::{Cluster, ClusterOptions, KeyFormat, KeyType, SluiceServe, Sshd, SshdOptions, TestCa, TlsFiles};

const DB: &str = "shop";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repository")
}

/// The shop, the 10,000 tables and `bench.wide`, as the cluster's superuser.
fn seed(cluster: &Cluster) {
    cluster.create_database(DB).expect("database");
    cluster
        .psql(
            DB,
            "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text, note text);
             COMMENT ON TABLE customers IS 'people who ordered';
             INSERT INTO customers SELECT g, 'customer ' || g, 'c' || g || '@example.com',
                 CASE WHEN g % 4 = 0 THEN 'says \"hi\", twice' WHEN g % 7 = 0 THEN E'two\\nlines' END
               FROM generate_series(1, 200) g;
             CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers, total numeric(10,2));
             INSERT INTO orders SELECT g, 1 + g % 200, g * 1.25 FROM generate_series(1, 500) g;",
        )
        .expect("the shop");
    // 20 schemas of 500 small tables each, one transaction per schema.
    for schema in 1..=20 {
        cluster
            .psql(
                DB,
                &format!(
                    "CREATE SCHEMA cat_{schema:03};
                     DO $$ BEGIN FOR t IN 1..500 LOOP
                       EXECUTE format('CREATE TABLE cat_{schema:03}.%I (id bigint, name text, amount numeric(12,2), created_at timestamptz)', 't_' || lpad(t::text, 4, '0'));
                     END LOOP; END $$;"
                ),
            )
            .expect("10,000 tables");
    }
    cluster
        .psql(
            DB,
            "CREATE SCHEMA bench;
             CREATE TABLE bench.wide (id bigint PRIMARY KEY, qty integer NOT NULL, price numeric(12,2),
               score double precision NOT NULL, note text, label varchar(32) NOT NULL, active boolean,
               born date NOT NULL, seen_at timestamptz, ref uuid NOT NULL, attrs jsonb);
             SELECT setseed(0.42);
             INSERT INTO bench.wide
             SELECT g, (random() * 2000000 - 1000000)::int,
                    CASE WHEN random() < 0.1 THEN NULL ELSE round((random() * 1000000)::numeric, 2) END,
                    (random() - 0.5) * 1e6,
                    CASE WHEN random() < 0.1 THEN NULL
                         WHEN random() < 0.05 THEN 'say \"hi\", ' || substr(md5(random()::text), 1, 10)
                         ELSE substr(md5(random()::text) || md5(random()::text), 1, 10 + (random() * 20)::int) END,
                    (ARRAY['alpha','bravo','charlie','delta','echo'])[1 + (random() * 4)::int] || '-' || (random() * 1000)::int,
                    CASE WHEN random() < 0.1 THEN NULL ELSE random() < 0.5 END,
                    date '2000-01-01' + (random() * 9000)::int,
                    CASE WHEN random() < 0.1 THEN NULL ELSE timestamptz '2020-01-01 00:00:00+00' + random() * interval '1500 days' END,
                    md5(g::text)::uuid,
                    CASE WHEN random() < 0.1 THEN NULL ELSE jsonb_build_object('k', (random() * 1000)::int, 'ok', random() < 0.5) END
               FROM generate_series(1, 10000) g;
             VACUUM ANALYZE bench.wide;",
        )
        .expect("bench.wide");
}

#[test]
fn the_web_workspace_in_chromium() {
    let root = repo_root();
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path();

    let ca = TestCa::new("Sluice browser tests CA").expect("ca");
    let server_cert = ca.server_cert(&["localhost", "127.0.0.1"]).expect("server certificate");
    let cluster = Cluster::start(ClusterOptions {
        tls: Some(TlsFiles { server: server_cert, client_ca_pem: None }),
        ..ClusterOptions::default()
    })
    .expect("cluster");
    let started = std::time::Instant::now();
    seed(&cluster);
    eprintln!("browser: seeded in {:?}", started.elapsed());
    let password = generate_password().expect("password");
    let script = setup_sql(&SetupOptions {
        user: "sluice_ro".into(),
        database: DB.into(),
        schemas: vec![],
        elt_owners: vec![],
        read_all_data: true,
        password: password.clone(),
        statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
    })
    .expect("setup script");
    cluster.psql(DB, &script).expect("setup script runs");
    let bastion = Sshd::start(SshdOptions::default()).expect("sshd");
    let key = bastion.client_key(KeyType::Ed25519, KeyFormat::OpenSsh, None, true).expect("client key");

    // What `sluice query` writes for the CSV the flows export from the SQL workspace.
    let csv_sql = "SELECT id, name, email, note FROM customers ORDER BY id";
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, &ca.cert_pem).expect("ca.pem");
    std::fs::write(dir.join("pw"), format!("{}\n", password.expose())).expect("pw");
    let url = format!(
        "postgresql://sluice_ro@localhost:{}/{DB}?sslmode=verify-full&sslrootcert={}",
        cluster.port(),
        ca_path.display()
    );
    let expected_csv = dir.join("expected.csv");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["query", "--url", &url, "--password-file"])
        .arg(dir.join("pw"))
        .args(["--format", "csv", "--sql", csv_sql, "--output"])
        .arg(&expected_csv)
        .env_clear()
        .env("HOME", dir)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("sluice query");
    assert!(out.status.success(), "sluice query: {}", String::from_utf8_lossy(&out.stderr));

    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .env_remove("SLUICE_MASTER_KEY");
    let mut server = SluiceServe::start(command).expect("spawn sluice serve");
    let (setup_url, base_url) = (server.setup_url().expect("a setup link").to_string(), server.url().to_string());

    let config = json!({
        "base_url": base_url,
        "setup_url": setup_url,
        "chromium": "/usr/bin/chromium",
        "screenshots_dir": root.join("docs/screenshots"),
        "admin": {"login": "ada", "password": "correct horse battery staple"},
        "analyst": {"login": "bob", "password": "another long password"},
        "target": {
            "host": "localhost",
            "port": cluster.port(),
            "database": DB,
            "user": "sluice_ro",
            "password": password.expose(),
            "wrong_password": "not-the-password",
            "ca_pem": ca.cert_pem,
        },
        "ssh": {
            "host": bastion.host(),
            "port": bastion.port(),
            "user": bastion.user(),
            "private_key": key.private_key_pem,
            "host_key_fingerprint": bastion.host_key_fingerprint(),
            // The database as the bastion reaches it.
            "db_host": "localhost",
        },
        "csv": {"sql": csv_sql, "expected_path": expected_csv},
        "search": {"relations": 10_000, "needle": "t_0423", "schema": "cat_017"},
        "wide": {"sql": "SELECT * FROM bench.wide ORDER BY id", "rows": 10_000, "columns": 11},
        "superuser_dsn": cluster.superuser_url(DB),
        "secrets": [password.expose(), key.private_key_pem.lines().nth(1).unwrap_or_default()],
    });
    let config_path = dir.join("e2e.json");
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config).expect("json")).expect("e2e.json");

    let e2e = root.join("web/e2e");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&e2e)
        .expect("web/e2e")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".test.mjs")))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no flows in web/e2e");
    // One flow at a time, in file order: each builds on the state the ones before left.
    let out = Command::new("node")
        .args(["--test", "--test-concurrency=1", "--test-reporter=spec"])
        .args(&files)
        .current_dir(root.join("web"))
        .env("SLUICE_E2E_CONFIG", &config_path)
        .output()
        .expect("node --test");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let (_, log) = server.kill().expect("kill");
    if !out.status.success() {
        eprintln!("sluice serve's log:\n{}", log.join("\n"));
    }
    assert!(out.status.success(), "the browser flows failed: {:?}", out.status);
}
