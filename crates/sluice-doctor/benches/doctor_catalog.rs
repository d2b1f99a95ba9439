//! How long `sluice doctor` takes on a catalog-heavy database (target: under 2 s at 10,000
//! tables). Not a timed test: it prints figures.
//!
//! ```sh
//! cargo bench -p sluice-doctor --bench doctor_catalog
//! SLUICE_BENCH_SCHEMAS=20 SLUICE_BENCH_TABLES=500 SLUICE_BENCH_VIEWS=1000 SLUICE_BENCH_RUNS=7 \
//!     cargo bench -p sluice-doctor --bench doctor_catalog
//! ```
//!
//! It starts a throwaway cluster (`PG_BIN` picks the server), fills database `bench` with
//! `bench/make-catalog.sql` (schemas `cat_001…`, 12-column tables with identity sequences, FKs,
//! indexes, comments, views), runs the setup script for role `sluice_ro` on every schema (so each
//! of the 10,000 tables carries an ACL the audit must read), then times whole doctor runs —
//! connection stages included — with the schemas named and with the default scope.

use std::time::{Duration, Instant};

use sluice_core::{Secret, SourceSpec, SslMode};
use sluice_doctor::{generate_password, setup_sql, CheckId, DoctorInput, SetupOptions, Status};
use sluice_testkit::{Cluster, ClusterOptions};

fn env_num(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn summary(mut times: Vec<Duration>) -> String {
    times.sort();
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    let median = times.get(times.len() / 2).map(ms).unwrap_or(0.0);
    let min = times.first().map(ms).unwrap_or(0.0);
    let max = times.last().map(ms).unwrap_or(0.0);
    format!("median {median:.0} ms (min {min:.0}, max {max:.0}, {} runs)", times.len())
}

#[tokio::main]
async fn main() {
    let schemas = env_num("SLUICE_BENCH_SCHEMAS", 20);
    let tables = env_num("SLUICE_BENCH_TABLES", 500);
    let views = env_num("SLUICE_BENCH_VIEWS", 1000);
    let runs = env_num("SLUICE_BENCH_RUNS", 5).max(1);

    let cluster = Cluster::start(ClusterOptions {
        settings: vec![
            ("max_locks_per_transaction".into(), "1024".into()),
            ("shared_buffers".into(), "256MB".into()),
            ("autovacuum".into(), "off".into()),
        ],
        ..Default::default()
    })
    .expect("cluster");
    cluster.create_database("bench").expect("database");
    let version = cluster.version_num().expect("version");

    let started = Instant::now();
    let generator = include_str!("../../../bench/make-catalog.sql");
    cluster
        .psql("bench", &format!("\\set schemas {schemas}\n\\set tables {tables}\n\\set views {views}\n{generator}"))
        .expect("make-catalog.sql");
    let relations = cluster
        .psql(
            "bench",
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname ~ '^cat_' AND c.relkind = 'r';",
        )
        .expect("count");
    let pg_class = cluster.psql("bench", "SELECT count(*) FROM pg_class;").expect("count");
    println!(
        "catalog: PostgreSQL {version}, {relations} tables, {pg_class} pg_class rows, made in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let names: Vec<String> = (1..=schemas).map(|i| format!("cat_{i:03}")).collect();
    let password = generate_password().expect("password");
    let script = setup_sql(&SetupOptions {
        user: "sluice_ro".into(),
        database: "bench".into(),
        schemas: names.clone(),
        elt_owners: vec![],
        read_all_data: false,
        password: password.clone(),
        statement_timeout: sluice_doctor::DEFAULT_STATEMENT_TIMEOUT,
    })
    .expect("setup script");
    cluster.psql("bench", &script).expect("setup script runs");

    let mut spec = SourceSpec::new("127.0.0.1", "bench", "sluice_ro");
    spec.hosts[0].port = cluster.port();
    spec.password = Some(Secret::new(password.expose()));
    spec.sslmode = SslMode::Disable;

    for (label, scope) in [("--schema ×N", names.clone()), ("default scope", vec![])] {
        let mut total = Vec::new();
        let mut audit = Vec::new();
        for i in 0..=runs {
            let t = Instant::now();
            let report = sluice_doctor::run(DoctorInput { spec: Ok(spec.clone()), schemas: scope.clone() }).await;
            let elapsed = t.elapsed();
            let failed: Vec<&str> =
                report.checks.iter().filter(|c| c.status == Status::Fail).map(|c| c.id.as_ref()).collect();
            assert!(failed.is_empty(), "checks failed: {failed:?}\n{}", report.to_json());
            if i == 0 {
                continue; // warm-up
            }
            total.push(elapsed);
            if let Some(c) = report.check(CheckId::READ_ONLY) {
                audit.push(Duration::from_millis(c.elapsed_ms));
            }
        }
        println!("doctor, {label}: whole run {}", summary(total));
        println!("doctor, {label}: privilege audit {}", summary(audit));
    }
}
