//! The doctor as a page or a service uses it: checks handed over as they are decided, the login
//! taken through the source's capped pool, and the report sent as JSON and read back.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{assert_all_pass, Db, ELT_FIXTURE};
use sluice_connect::{Connector, Pool, PoolOptions};
use sluice_core::{Secret, SourceSpec, SslMode};
use sluice_doctor::{Check, CheckId, DoctorInput, Report, Status};

fn spec(db: &Db, user: &str, password: &str) -> SourceSpec {
    let mut spec = SourceSpec::new("127.0.0.1", db.name.clone(), user);
    spec.hosts[0].port = db.cluster.port();
    spec.password = Some(Secret::new(password));
    spec.sslmode = SslMode::Disable;
    spec.connect_timeout_secs = 10;
    spec.application_name = "doctor-lane".into();
    spec
}

fn input(spec: SourceSpec) -> DoctorInput {
    DoctorInput { spec: Ok(spec), schemas: vec!["analytics".into()] }
}

const ORDER: [&str; 15] = [
    CheckId::CONFIG,
    CheckId::DNS,
    CheckId::TCP,
    CheckId::SSH,
    CheckId::IAM,
    CheckId::TLS,
    CheckId::AUTH,
    CheckId::SERVER_VERSION,
    CheckId::DATABASE_CONNECT,
    CheckId::READ_ONLY,
    CheckId::ROLE_ATTRIBUTES,
    CheckId::SCHEMA_USAGE,
    CheckId::TABLE_SELECT,
    CheckId::DEFAULT_PRIVILEGES,
    CheckId::AUDIT_LOGGING,
];

#[tokio::test]
async fn every_check_is_handed_over_in_report_order_and_the_report_round_trips_through_json() {
    let db = Db::start("app");
    db.must_run(ELT_FIXTURE);
    let pw = db.setup("sluice_ro", &["analytics"], &["etl_user"]);

    let mut seen: Vec<Check> = Vec::new();
    let report =
        sluice_doctor::run_with(input(spec(&db, "sluice_ro", &pw)), None, &mut |c: &Check| seen.push(c.clone())).await;
    assert_all_pass(&report);
    assert_eq!(seen, report.checks, "the callback saw exactly the report's checks, in its order");
    assert_eq!(seen.iter().map(|c| c.id.as_ref()).collect::<Vec<_>>(), ORDER);

    // A passing report and a failing one (evidence, fixes, skips) parse back equal.
    let failing = sluice_doctor::run(input(spec(&db, "sluice_ro", "not-the-password"))).await;
    assert!(!failing.ok);
    assert_eq!(failing.check(CheckId::AUTH).map(|c| c.status), Some(Status::Fail));
    assert!(failing.checks.iter().any(|c| c.fix.is_some()) && failing.checks.iter().any(|c| c.detail.is_some()));
    for r in [&report, &failing] {
        let back: Report = serde_json::from_str(&r.to_json()).expect("the report's own JSON parses");
        assert_eq!(&back, r);
        let compact = serde_json::to_string(r).expect("serialize");
        assert_eq!(&serde_json::from_str::<Report>(&compact).expect("parse"), r);
    }
    // A check id a newer Sluice added is kept as it is; a status that does not exist is refused.
    let newer = report.to_json().replacen("\"audit_logging\"", "\"a_later_check\"", 1);
    let parsed: Report = serde_json::from_str(&newer).expect("an unknown id parses");
    assert!(parsed.check("a_later_check").is_some());
    let wrong = report.to_json().replacen("\"pass\"", "\"maybe\"", 1);
    assert!(serde_json::from_str::<Report>(&wrong).is_err());
}

#[tokio::test]
async fn through_a_pool_the_doctor_waits_for_a_slot_and_never_exceeds_the_cap() {
    let db = Db::start("app");
    db.must_run(ELT_FIXTURE);
    let pw = db.setup("sluice_ro", &["analytics"], &["etl_user"]);
    let spec = spec(&db, "sluice_ro", &pw);
    let pool = Pool::new(
        Connector::new(spec.clone()).expect("connector"),
        PoolOptions { max_size: 1, acquire_timeout: Duration::from_secs(60), ..Default::default() },
    );
    let sessions = || {
        db.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'doctor-lane'")
            .parse::<u32>()
            .expect("count")
    };

    // The source's one slot is taken: the doctor's login waits for it.
    let held = pool.get().await.expect("the only session");
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let doctor = {
        let (pool, seen) = (pool.clone(), seen.clone());
        tokio::spawn(async move {
            let mut on_check = move |c: &Check| seen.lock().expect("seen").push(c.id.to_string());
            sluice_doctor::run_with(input(spec), Some(&pool), &mut on_check).await
        })
    };
    let started = Instant::now();
    while pool.waiting() != 1 {
        assert!(started.elapsed() < Duration::from_secs(30), "the doctor never asked the pool");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sessions(), 1, "the doctor waits instead of opening a second session");
    // The stages before the login were already handed over, live; the login was not.
    let so_far = seen.lock().expect("seen").clone();
    assert_eq!(so_far, ["config", "dns", "tcp", "ssh", "iam"], "{so_far:?}");
    assert!(!doctor.is_finished());

    drop(held);
    let report = tokio::time::timeout(Duration::from_secs(60), doctor).await.expect("the doctor ends").expect("join");
    assert_all_pass(&report);
    assert_eq!(seen.lock().expect("seen").len(), report.checks.len());
    // Its fresh session went back to the pool, which still holds one session in all.
    assert_eq!((pool.in_use(), pool.idle_count()), (0, 1));
    // (The session the doctor's fresh login replaced may still be exiting on the server.)
    let started = Instant::now();
    while sessions() != 1 {
        assert!(started.elapsed() < Duration::from_secs(10), "{} sessions", sessions());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
