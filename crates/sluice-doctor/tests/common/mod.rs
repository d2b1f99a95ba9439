//! Shared fixtures for the privilege acceptance tests: a cluster with one database, scripts run
//! through psql as a DBA would run them, and the doctor run as the role under test.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

use sluice_core::{Secret, SourceSpec, SslMode};
use sluice_doctor::{
    generate_password, setup_sql, CheckId, DoctorInput, Report, SetupOptions, Status, DEFAULT_STATEMENT_TIMEOUT,
};
use sluice_testkit::{Cluster, SUPERUSER, SUPERUSER_PASSWORD};

pub const ETL_PW: &str = "etl-pw";

/// One cluster and the database under test.
pub struct Db {
    pub cluster: Cluster,
    pub name: String,
    scripts: std::cell::Cell<u32>,
}

impl Db {
    pub fn start(name: &str) -> Db {
        let cluster = Cluster::start_default().expect("cluster");
        cluster.create_database(name).expect("database");
        Db { cluster, name: name.into(), scripts: std::cell::Cell::new(0) }
    }

    pub fn version_num(&self) -> u32 {
        self.cluster.version_num().expect("version")
    }

    /// Superuser SQL in the database under test.
    pub fn sql(&self, sql: &str) -> String {
        self.cluster.psql(&self.name, sql).unwrap_or_else(|e| panic!("{sql}\n{e}"))
    }

    /// Runs a generated script the way the DBA does: a file, `psql -v ON_ERROR_STOP=1 -f`, as
    /// the superuser, connected to the database. Returns stdout and stderr, or them as the error.
    pub fn run_script(&self, script: &str) -> Result<String, String> {
        let n = self.scripts.get() + 1;
        self.scripts.set(n);
        let path: PathBuf = self.cluster.scratch_dir().join(format!("script-{n}.sql"));
        std::fs::write(&path, script).expect("write script");
        let psql = std::env::var_os("PSQL").unwrap_or_else(|| "psql".into());
        let out = Command::new(psql)
            .args(["-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p"])
            .arg(self.cluster.port().to_string())
            .args(["-U", SUPERUSER, "-d", &self.name, "-f"])
            .arg(&path)
            .env("PGPASSWORD", SUPERUSER_PASSWORD)
            .env("PGSSLMODE", "disable")
            .output()
            .expect("spawn psql");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if out.status.success() {
            Ok(text)
        } else {
            Err(text)
        }
    }

    pub fn must_run(&self, script: &str) -> String {
        self.run_script(script).unwrap_or_else(|e| panic!("the script failed:\n{e}\n--- script ---\n{script}"))
    }

    pub async fn doctor(&self, user: &str, password: &str, schemas: &[&str]) -> Report {
        let mut spec = SourceSpec::new("127.0.0.1", self.name.clone(), user);
        spec.hosts[0].port = self.cluster.port();
        spec.password = Some(Secret::new(password));
        spec.sslmode = SslMode::Disable;
        spec.connect_timeout_secs = 10;
        sluice_doctor::run(DoctorInput { spec: Ok(spec), schemas: schemas.iter().map(|s| s.to_string()).collect() })
            .await
    }

    /// Generates and runs the setup script; returns the password.
    pub fn setup(&self, user: &str, schemas: &[&str], elt_owners: &[&str]) -> String {
        let password = generate_password().expect("password");
        let script = setup_sql(&SetupOptions {
            user: user.into(),
            database: self.name.clone(),
            schemas: schemas.iter().map(|s| s.to_string()).collect(),
            elt_owners: elt_owners.iter().map(|s| s.to_string()).collect(),
            read_all_data: false,
            password: password.clone(),
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
        })
        .expect("setup script");
        self.must_run(&script);
        password.expose().to_string()
    }
}

/// `etl_user` owns schema `analytics` and its tables, as an ELT tool's role does.
pub const ELT_FIXTURE: &str = "
CREATE ROLE etl_user LOGIN PASSWORD 'etl-pw';
CREATE SCHEMA analytics AUTHORIZATION etl_user;
SET ROLE etl_user;
CREATE TABLE analytics.orders (id serial PRIMARY KEY, amount numeric NOT NULL);
CREATE TABLE analytics.customers (id serial PRIMARY KEY, name text);
CREATE VIEW analytics.big_orders AS SELECT * FROM analytics.orders WHERE amount > 100;
INSERT INTO analytics.orders (amount) VALUES (10), (200);
RESET ROLE;
";

/// What an ELT run does: drop the table and create it again, as `etl_user`.
pub const RECREATE_ORDERS: &str = "
DROP TABLE analytics.orders CASCADE;
CREATE TABLE analytics.orders (id serial PRIMARY KEY, amount numeric NOT NULL);
INSERT INTO analytics.orders (amount) VALUES (5);
";

pub fn check<'a>(report: &'a Report, id: &str) -> &'a sluice_doctor::Check {
    report.check(id).unwrap_or_else(|| panic!("no {id} check in\n{}", report.to_json()))
}

/// Every check passed (ssh and iam are skipped: no tunnel, password login).
pub fn assert_all_pass(report: &Report) {
    for c in &report.checks {
        let skipped = c.id == CheckId::SSH || c.id == CheckId::IAM;
        let ok = c.status == Status::Pass || (skipped && c.status == Status::Skip);
        assert!(ok, "{} is {:?}\n{}", c.id, c.status, report.to_json());
    }
    assert!(report.ok);
    assert_eq!(report.checks.iter().filter(|c| c.id == CheckId::READ_ONLY).count(), 1);
}

pub fn assert_status(report: &Report, id: &str, status: Status) {
    let c = check(report, id);
    assert_eq!(c.status, status, "{id}\n{}", report.to_json());
}

pub fn detail(report: &Report, id: &str) -> String {
    check(report, id).detail.clone().unwrap_or_default()
}
