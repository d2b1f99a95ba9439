//! Privilege acceptance against real clusters: the setup script, the ELT default-privilege trap,
//! every way a "read-only" user can write, and the fix script that undoes each.
//!
//! Runs on the cluster `PG_BIN` points at (Debian's newest by default), so the same tests cover
//! every major of the version matrix.

mod common;

use common::*;
use sluice_doctor::{CheckId, Status};

#[tokio::test]
async fn setup_with_elt_owner_passes_every_check_and_survives_a_rebuild() {
    let db = Db::start("warehouse");
    db.sql(ELT_FIXTURE);
    let pw = db.setup("sluice_ro", &["analytics"], &["etl_user"]);

    let report = db.doctor("sluice_ro", &pw, &["analytics"]).await;
    assert_all_pass(&report);
    assert!(report.fix_sql().starts_with("-- sluice doctor: nothing to fix"));

    // Running the script again succeeds (and sets a new password).
    let pw = db.setup("sluice_ro", &["analytics"], &["etl_user"]);
    assert_all_pass(&db.doctor("sluice_ro", &pw, &["analytics"]).await);

    // The ELT tool drops and recreates a table: the user can still read it.
    db.cluster.psql_as("etl_user", ETL_PW, "warehouse", RECREATE_ORDERS).expect("recreate");
    let n = db
        .cluster
        .psql_as("sluice_ro", &pw, "warehouse", "SELECT count(*) FROM analytics.orders;")
        .expect("the recreated table is readable");
    assert_eq!(n, "1");
    assert_all_pass(&db.doctor("sluice_ro", &pw, &["analytics"]).await);

    // And the role really is read-only by default.
    let write = db.cluster.psql_as("sluice_ro", &pw, "warehouse", "INSERT INTO analytics.orders (amount) VALUES (1);");
    assert!(write.is_err(), "{write:?}");
}

#[tokio::test]
async fn without_elt_owner_the_trap_is_named_and_the_fix_closes_it() {
    let db = Db::start("warehouse");
    db.sql(ELT_FIXTURE);
    let pw = db.setup("sluice_ro", &["analytics"], &[]);

    let report = db.doctor("sluice_ro", &pw, &["analytics"]).await;
    assert_status(&report, CheckId::DEFAULT_PRIVILEGES, Status::Warn);
    let dp = check(&report, CheckId::DEFAULT_PRIVILEGES);
    assert_eq!(
        dp.summary,
        "tables that etl_user creates or recreates in analytics will not be readable by sluice_ro (it owns the schema)"
    );
    assert_eq!(
        dp.fix.as_deref(),
        Some("ALTER DEFAULT PRIVILEGES FOR ROLE etl_user IN SCHEMA analytics GRANT SELECT ON TABLES TO sluice_ro;")
    );
    assert_status(&report, CheckId::TABLE_SELECT, Status::Pass);
    assert_status(&report, CheckId::READ_ONLY, Status::Pass);

    db.cluster.psql_as("etl_user", ETL_PW, "warehouse", RECREATE_ORDERS).expect("recreate");
    let report = db.doctor("sluice_ro", &pw, &["analytics"]).await;
    assert_status(&report, CheckId::TABLE_SELECT, Status::Warn);
    let ts = check(&report, CheckId::TABLE_SELECT);
    assert_eq!(ts.detail.as_deref(), Some("table analytics.orders"));
    assert_eq!(ts.fix.as_deref(), Some("GRANT SELECT ON TABLE analytics.orders TO sluice_ro;"));
    assert!(db.cluster.psql_as("sluice_ro", &pw, "warehouse", "SELECT 1 FROM analytics.orders;").is_err());

    // The consolidated fix script repairs both, and can run twice.
    let fix = report.fix_sql();
    db.must_run(&fix);
    db.must_run(&fix);
    assert_all_pass(&db.doctor("sluice_ro", &pw, &["analytics"]).await);
    db.cluster.psql_as("etl_user", ETL_PW, "warehouse", RECREATE_ORDERS).expect("recreate");
    assert_all_pass(&db.doctor("sluice_ro", &pw, &["analytics"]).await);
}

/// One way to make the user able to write, what `read_only` must say about it, and the cleanup
/// (beyond the fix script) that restores the fixture.
struct Breach {
    grant: &'static str,
    expect: &'static str,
    status: Status,
}

#[tokio::test]
async fn every_write_path_fails_read_only_and_the_fix_script_restores_it() {
    let db = Db::start("warehouse");
    db.sql(ELT_FIXTURE);
    db.sql("CREATE ROLE etl_writer NOLOGIN; GRANT USAGE ON SCHEMA analytics TO etl_writer; GRANT UPDATE ON analytics.customers TO etl_writer;");
    let pw = db.setup("sluice_ro", &["analytics"], &["etl_user"]);
    assert_all_pass(&db.doctor("sluice_ro", &pw, &["analytics"]).await);

    let mut breaches = vec![
        Breach {
            grant: "GRANT INSERT ON analytics.orders TO sluice_ro;",
            expect: "INSERT on table analytics.orders (granted directly)",
            status: Status::Fail,
        },
        Breach {
            grant: "GRANT CREATE ON SCHEMA analytics TO sluice_ro;",
            expect: "CREATE on schema analytics (granted directly)",
            status: Status::Fail,
        },
        Breach {
            grant: "GRANT etl_writer TO sluice_ro;",
            expect: "UPDATE on table analytics.customers (via role etl_writer)",
            status: Status::Fail,
        },
        Breach {
            grant: "ALTER TABLE analytics.customers OWNER TO sluice_ro;",
            expect: "owner of table analytics.customers (owned directly)",
            status: Status::Fail,
        },
        Breach {
            grant: "ALTER ROLE sluice_ro SUPERUSER;",
            expect: "superuser: it bypasses every privilege check (the role's own attribute)",
            status: Status::Fail,
        },
        Breach {
            grant: "GRANT USAGE ON SEQUENCE analytics.orders_id_seq TO sluice_ro;",
            expect: "USAGE on sequence analytics.orders_id_seq (granted directly)",
            status: Status::Fail,
        },
        Breach {
            grant: "GRANT UPDATE (name) ON analytics.customers TO PUBLIC;",
            expect: "UPDATE (name) on table analytics.customers (granted to PUBLIC)",
            status: Status::Fail,
        },
        Breach {
            grant: "GRANT CREATE ON DATABASE warehouse TO sluice_ro;",
            expect: "CREATE on database warehouse (granted directly)",
            status: Status::Fail,
        },
        Breach {
            grant: "GRANT pg_signal_backend TO sluice_ro;",
            expect: "warning: member of pg_signal_backend (can cancel and terminate other sessions) (via role pg_signal_backend)",
            status: Status::Warn,
        },
        Breach {
            grant: "GRANT TEMPORARY ON DATABASE warehouse TO sluice_ro;",
            expect: "warning: TEMPORARY on database warehouse: it can create temporary tables (granted directly)",
            status: Status::Warn,
        },
        // A grant made by a role other than the owner survives a superuser's plain REVOKE.
        Breach {
            grant: "GRANT DELETE ON analytics.orders TO etl_writer WITH GRANT OPTION; \
                    SET ROLE etl_writer; GRANT DELETE ON analytics.orders TO sluice_ro; RESET ROLE;",
            expect: "DELETE on table analytics.orders (granted directly)",
            status: Status::Fail,
        },
    ];
    if db.version_num() >= 110_000 {
        breaches.push(Breach {
            grant: "GRANT pg_write_server_files TO sluice_ro;",
            expect: "member of pg_write_server_files (via role pg_write_server_files)",
            status: Status::Fail,
        });
    }
    if db.version_num() >= 140_000 {
        breaches.push(Breach {
            grant: "CREATE ROLE writers; GRANT pg_write_all_data TO writers; GRANT writers TO sluice_ro;",
            expect: "member of pg_write_all_data (via role pg_write_all_data, through writers)",
            status: Status::Fail,
        });
    }
    if db.version_num() >= 170_000 {
        breaches.push(Breach {
            grant: "GRANT MAINTAIN ON analytics.orders TO sluice_ro;",
            expect: "warning: MAINTAIN on table analytics.orders (granted directly)",
            status: Status::Warn,
        });
        breaches.push(Breach {
            grant: "GRANT pg_maintain TO sluice_ro;",
            expect: "warning: member of pg_maintain (can lock, vacuum, reindex and refresh every relation) (via role pg_maintain)",
            status: Status::Warn,
        });
    }
    // Last, as it changes the role for good before 16: a membership that does not inherit
    // still writes after SET ROLE.
    breaches.push(Breach {
        grant: if db.version_num() >= 160_000 {
            "CREATE ROLE setter; GRANT INSERT ON analytics.customers TO setter; \
             GRANT setter TO sluice_ro WITH INHERIT FALSE;"
        } else {
            "CREATE ROLE setter; GRANT INSERT ON analytics.customers TO setter; \
             ALTER ROLE sluice_ro NOINHERIT; GRANT setter TO sluice_ro;"
        },
        expect: "INSERT on table analytics.customers (via SET ROLE setter, a membership without INHERIT)",
        status: Status::Fail,
    });
    for b in breaches {
        db.sql(b.grant);
        let report = db.doctor("sluice_ro", &pw, &["analytics"]).await;
        assert_status(&report, CheckId::READ_ONLY, b.status);
        let detail = detail(&report, CheckId::READ_ONLY);
        assert!(
            detail.lines().any(|l| l == b.expect),
            "after `{}` expected the line\n  {}\nin\n{detail}\n{}",
            b.grant,
            b.expect,
            report.to_json()
        );
        if b.status == Status::Fail {
            assert!(!report.ok);
        }
        let fix = report.fix_sql();
        db.must_run(&fix);
        db.must_run(&fix);
        let after = db.doctor("sluice_ro", &pw, &["analytics"]).await;
        assert_status(&after, CheckId::READ_ONLY, Status::Pass);
        assert_all_pass(&after);
    }
}

#[tokio::test]
async fn dblink_functions_warn_when_installed() {
    let db = Db::start("warehouse");
    // The server's contrib package is part of the test environment: without it this fails.
    db.cluster.psql("warehouse", "CREATE EXTENSION dblink;").expect("CREATE EXTENSION dblink (as the superuser)");
    db.sql(ELT_FIXTURE);
    let pw = db.setup("sluice_ro", &["analytics"], &["etl_user"]);
    let report = db.doctor("sluice_ro", &pw, &["analytics"]).await;
    assert_status(&report, CheckId::READ_ONLY, Status::Warn);
    let detail = detail(&report, CheckId::READ_ONLY);
    assert!(detail.contains("of extension dblink") && detail.contains("(granted to PUBLIC)"), "{detail}");
    db.must_run(&report.fix_sql());
    let after = db.doctor("sluice_ro", &pw, &["analytics"]).await;
    assert_all_pass(&after);
}

#[tokio::test]
async fn named_schemas_must_exist_and_be_usable() {
    let db = Db::start("warehouse");
    db.sql(ELT_FIXTURE);
    db.sql("CREATE SCHEMA private;");
    let pw = db.setup("sluice_ro", &["analytics"], &["etl_user"]);

    let report = db.doctor("sluice_ro", &pw, &["analytics", "private", "nowhere"]).await;
    assert_status(&report, CheckId::SCHEMA_USAGE, Status::Fail);
    assert_eq!(detail(&report, CheckId::SCHEMA_USAGE), "USAGE: analytics\nno USAGE: private\nno such schema: nowhere");
    assert_eq!(
        check(&report, CheckId::SCHEMA_USAGE).fix.as_deref(),
        Some("GRANT USAGE ON SCHEMA private TO sluice_ro;")
    );

    // Without --schema every schema is in scope; the unusable one is only a warning there.
    let report = db.doctor("sluice_ro", &pw, &[]).await;
    assert_status(&report, CheckId::SCHEMA_USAGE, Status::Warn);
    assert!(detail(&report, CheckId::SCHEMA_USAGE).contains("no USAGE: private"));
}

#[tokio::test]
async fn role_attributes_and_audit_logging_warn_with_their_fixes() {
    let db = Db::start("warehouse");
    db.sql(ELT_FIXTURE);
    let pw = db.setup("sluice_ro", &["analytics"], &["etl_user"]);
    db.sql(
        "ALTER ROLE sluice_ro CREATEDB BYPASSRLS VALID UNTIL 'tomorrow'; \
         ALTER ROLE sluice_ro RESET log_statement;",
    );
    let report = db.doctor("sluice_ro", &pw, &["analytics"]).await;
    assert_status(&report, CheckId::ROLE_ATTRIBUTES, Status::Warn);
    let d = detail(&report, CheckId::ROLE_ATTRIBUTES);
    assert!(d.contains("CREATEDB: sluice_ro can create databases"), "{d}");
    assert!(d.contains("BYPASSRLS: sluice_ro ignores row-level security"), "{d}");
    assert!(d.contains("expires at"), "{d}");
    assert_status(&report, CheckId::AUDIT_LOGGING, Status::Warn);
    assert_eq!(
        check(&report, CheckId::AUDIT_LOGGING).fix.as_deref(),
        Some("ALTER ROLE sluice_ro SET log_statement = 'all';")
    );
    db.must_run(&report.fix_sql());
    assert_all_pass(&db.doctor("sluice_ro", &pw, &["analytics"]).await);
}

#[tokio::test]
async fn createrole_and_replication_warn_held_directly_and_through_set_role() {
    let db = Db::start("warehouse");
    db.sql(ELT_FIXTURE);
    let pw = db.setup("sluice_ro", &["analytics"], &["etl_user"]);
    db.sql(
        "ALTER ROLE sluice_ro CREATEROLE REPLICATION; \
         CREATE ROLE ops_admin NOLOGIN CREATEROLE REPLICATION; GRANT ops_admin TO sluice_ro;",
    );
    let report = db.doctor("sluice_ro", &pw, &["analytics"]).await;
    assert_status(&report, CheckId::ROLE_ATTRIBUTES, Status::Warn);
    let d = detail(&report, CheckId::ROLE_ATTRIBUTES);
    assert!(d.contains("CREATEROLE: sluice_ro can create roles and grant memberships"), "{d}");
    assert!(d.contains("REPLICATION: sluice_ro can stream every table through a replication connection"), "{d}");
    assert!(d.contains("CREATEROLE, REPLICATION of role ops_admin (after SET ROLE ops_admin)"), "{d}");
    let fix = check(&report, CheckId::ROLE_ATTRIBUTES).fix.clone().unwrap_or_default();
    assert!(fix.contains("ALTER ROLE sluice_ro NOCREATEROLE NOREPLICATION;"), "{fix}");
    assert!(fix.contains("REVOKE ops_admin FROM sluice_ro"), "{fix}");
    db.must_run(&report.fix_sql());
    assert_eq!(db.sql("SELECT rolcreaterole OR rolreplication FROM pg_roles WHERE rolname = 'sluice_ro'"), "f");
    assert_eq!(db.sql("SELECT pg_has_role('sluice_ro', 'ops_admin', 'MEMBER')"), "f");
    assert_all_pass(&db.doctor("sluice_ro", &pw, &["analytics"]).await);
}

#[tokio::test]
async fn read_all_data_needs_14_and_then_passes() {
    let db = Db::start("warehouse");
    db.sql(ELT_FIXTURE);
    let password = sluice_doctor::generate_password().expect("password");
    let script = sluice_doctor::setup_sql(&sluice_doctor::SetupOptions {
        user: "sluice_ro".into(),
        database: "warehouse".into(),
        schemas: vec![],
        elt_owners: vec![],
        read_all_data: true,
        password: password.clone(),
        statement_timeout: sluice_doctor::DEFAULT_STATEMENT_TIMEOUT,
    })
    .expect("script");
    if db.version_num() < 140_000 {
        let err = db.run_script(&script).expect_err("refused below 14");
        assert!(err.contains("pg_read_all_data needs PostgreSQL 14 or newer"), "{err}");
        assert_eq!(db.sql("SELECT count(*) FROM pg_roles WHERE rolname = 'sluice_ro';"), "0", "nothing was changed");
        return;
    }
    db.must_run(&script);
    db.must_run(&script);
    let report = db.doctor("sluice_ro", password.expose(), &[]).await;
    assert_all_pass(&report);
    assert!(detail(&report, CheckId::DEFAULT_PRIVILEGES).contains("pg_read_all_data"));
}

#[tokio::test]
async fn the_script_refuses_the_wrong_database_before_changing_anything() {
    let db = Db::start("warehouse");
    db.sql(ELT_FIXTURE);
    let script = sluice_doctor::setup_sql(&sluice_doctor::SetupOptions {
        user: "sluice_ro".into(),
        database: "elsewhere".into(),
        schemas: vec!["analytics".into()],
        elt_owners: vec!["etl_user".into(), "ghost".into()],
        read_all_data: false,
        password: sluice_doctor::generate_password().expect("password"),
        statement_timeout: sluice_doctor::DEFAULT_STATEMENT_TIMEOUT,
    })
    .expect("script");
    let err = db.run_script(&script).expect_err("wrong database");
    assert!(err.contains("this script is for database elsewhere, but it is connected to database warehouse"), "{err}");
    let right = script.replace("'elsewhere'", "'warehouse'");
    let err = db.run_script(&right).expect_err("missing ELT owner");
    assert!(err.contains("ELT owner role ghost does not exist"), "{err}");
    assert_eq!(db.sql("SELECT count(*) FROM pg_roles WHERE rolname = 'sluice_ro';"), "0");
}

#[tokio::test]
async fn privilege_checks_are_skipped_without_a_session() {
    let db = Db::start("warehouse");
    let report = db.doctor("nobody", "wrong", &[]).await;
    assert_status(&report, CheckId::AUTH, Status::Fail);
    for id in [
        CheckId::DATABASE_CONNECT,
        CheckId::READ_ONLY,
        CheckId::ROLE_ATTRIBUTES,
        CheckId::SCHEMA_USAGE,
        CheckId::TABLE_SELECT,
        CheckId::DEFAULT_PRIVILEGES,
        CheckId::AUDIT_LOGGING,
    ] {
        assert_status(&report, id, Status::Skip);
    }
}

const ODD_FIXTURE: &str = r#"
CREATE ROLE "Order""Items" LOGIN PASSWORD 'etl-pw';
CREATE SCHEMA "Sales Data" AUTHORIZATION "Order""Items";
CREATE SCHEMA "prix_€" AUTHORIZATION "Order""Items";
SET ROLE "Order""Items";
CREATE TABLE "Sales Data"."Order""Items" (id int, "prix_€" numeric, "select" text);
CREATE TABLE "Sales Data"."prix_€" (id int);
CREATE TABLE "Sales Data"."select" (id int);
CREATE TABLE "prix_€"."Sales Data" (id int);
INSERT INTO "Sales Data"."Order""Items" VALUES (1, 2.5, 'x');
RESET ROLE;
"#;

#[tokio::test]
async fn odd_identifiers_are_quoted_in_every_generated_statement() {
    let db = Db::start("Sales Data");
    db.sql(ODD_FIXTURE);
    let schemas = ["Sales Data", "prix_€"];
    let pw = db.setup("select", &schemas, &["Order\"Items"]);
    assert_all_pass(&db.doctor("select", &pw, &schemas).await);
    let n = db
        .cluster
        .psql_as("select", &pw, "Sales Data", r#"SELECT count(*) FROM "Sales Data"."Order""Items";"#)
        .expect("readable");
    assert_eq!(n, "1");

    db.sql(
        r#"GRANT INSERT ON "Sales Data"."Order""Items" TO "select";
           GRANT UPDATE ("prix_€") ON "Sales Data"."Order""Items" TO "select";
           GRANT CREATE ON SCHEMA "prix_€" TO "select";
           CREATE ROLE "Sales Data";
           GRANT DELETE ON "Sales Data"."select" TO "Sales Data";
           GRANT "Sales Data" TO "select";
           ALTER TABLE "prix_€"."Sales Data" OWNER TO "select";"#,
    );
    let report = db.doctor("select", &pw, &schemas).await;
    assert_status(&report, CheckId::READ_ONLY, Status::Fail);
    let d = detail(&report, CheckId::READ_ONLY);
    for line in [
        r#"INSERT on table "Sales Data"."Order""Items" (granted directly)"#,
        r#"UPDATE ("prix_€") on table "Sales Data"."Order""Items" (granted directly)"#,
        r#"CREATE on schema "prix_€" (granted directly)"#,
        r#"DELETE on table "Sales Data"."select" (via role "Sales Data")"#,
        r#"owner of table "prix_€"."Sales Data" (owned directly)"#,
    ] {
        assert!(d.lines().any(|l| l == line), "missing\n  {line}\nin\n{d}");
    }
    let fix = report.fix_sql();
    // From 16 the membership revoke names its grantor (GRANTED BY).
    assert!(fix.contains(r#"REVOKE "Sales Data" FROM "select""#), "{fix}");
    db.must_run(&fix);
    db.must_run(&fix);
    assert_all_pass(&db.doctor("select", &pw, &schemas).await);

    // Another role creates a table: both read gaps are named and fixed with quoted SQL.
    db.sql(
        r#"GRANT USAGE, CREATE ON SCHEMA "Sales Data" TO "Sales Data";
           SET ROLE "Sales Data";
           CREATE TABLE "Sales Data"."new ""table""" (id int);
           RESET ROLE;"#,
    );
    let report = db.doctor("select", &pw, &schemas).await;
    assert_status(&report, CheckId::TABLE_SELECT, Status::Warn);
    assert_eq!(detail(&report, CheckId::TABLE_SELECT), r#"table "Sales Data"."new ""table""""#);
    assert_status(&report, CheckId::DEFAULT_PRIVILEGES, Status::Warn);
    assert_eq!(
        check(&report, CheckId::DEFAULT_PRIVILEGES).summary,
        r#"tables that "Sales Data" creates or recreates in "Sales Data" will not be readable by "select""#
    );
    let fix = report.fix_sql();
    db.must_run(&fix);
    db.must_run(&fix);
    assert_all_pass(&db.doctor("select", &pw, &schemas).await);
}

/// Behind PgBouncer in transaction mode every check runs the same and gives the same verdicts:
/// the evidence queries use no named statements and no session-level SET.
#[tokio::test]
async fn through_pgbouncer_the_report_is_the_same() {
    let db = Db::start("warehouse");
    db.sql(ELT_FIXTURE);
    let pw = db.setup("sluice_ro", &["analytics"], &[]);
    let direct = db.doctor("sluice_ro", &pw, &["analytics"]).await;

    let bouncer = sluice_testkit::PgBouncer::start(
        &db.cluster,
        sluice_testkit::PgBouncerOptions { users: vec![("sluice_ro".into(), pw.clone())], ..Default::default() },
    )
    .expect("pgbouncer");
    let mut spec = sluice_core::SourceSpec::new(bouncer.host(), "warehouse", "sluice_ro");
    spec.hosts[0].port = bouncer.port();
    spec.password = Some(sluice_core::Secret::new(pw.as_str()));
    spec.sslmode = sluice_core::SslMode::Disable;
    spec.pgbouncer = true;
    let input = sluice_doctor::DoctorInput { spec: Ok(spec), schemas: vec!["analytics".into()] };
    let pooled = sluice_doctor::run(input).await;

    let verdicts = |r: &sluice_doctor::Report| {
        r.checks.iter().map(|c| (c.id.clone(), c.status, c.summary.clone())).collect::<Vec<_>>()
    };
    assert_status(&pooled, CheckId::DEFAULT_PRIVILEGES, Status::Warn);
    assert_eq!(verdicts(&pooled), verdicts(&direct), "{}", bouncer.log());
}
