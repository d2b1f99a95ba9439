//! Keeping the schema fresh, end to end with real servers: the catalog's change history and the
//! snapshot in force at a time, lost-access alerts with the GRANT that restores access, the
//! signed webhook, and refresh tokens scoped to one source's refresh.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sluice_doctor::{generate_password, setup_sql, SetupOptions, DEFAULT_STATEMENT_TIMEOUT};
use sluice_server::{AppState, Config, Scheduler};
use sluice_store::{KeyConfig, Store};
use sluice_testkit::Cluster;
use tower::ServiceExt;

const DB: &str = "shop";

/// A cluster where the role `elt` owns the schema `analytics` and its table `orders`, and
/// Sluice's read-only role `sluice_ro` was set up by its own script without `elt` as an ELT
/// owner: what `elt` recreates later is not readable (the trap the alerts are for).
fn target() -> (Cluster, String) {
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_database(DB).expect("database");
    cluster
        .psql(
            DB,
            "CREATE ROLE elt LOGIN;
             CREATE SCHEMA analytics AUTHORIZATION elt;
             SET ROLE elt;
             CREATE TABLE analytics.orders AS SELECT g AS id, g * 10 AS total FROM generate_series(1, 5) g;
             RESET ROLE;
             CREATE TABLE public.customers (id int PRIMARY KEY, name text);",
        )
        .expect("fixture");
    let password = generate_password().expect("password");
    let script = setup_sql(&SetupOptions {
        user: "sluice_ro".into(),
        database: DB.into(),
        schemas: vec!["public".into(), "analytics".into()],
        elt_owners: vec![],
        read_all_data: false,
        password: password.clone(),
        statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
    })
    .expect("setup script");
    cluster.psql(DB, &script).expect("setup script runs");
    (cluster, password.expose().to_string())
}

struct Api {
    router: Router,
    store: Arc<Store>,
    _dir: tempfile::TempDir,
    _scheduler: Scheduler,
}

struct Reply {
    status: StatusCode,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn ok(self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "{}", String::from_utf8_lossy(&self.body));
        self.json()
    }

    /// Asserts a 4xx error naming `field`.
    fn refused(&self, status: StatusCode, field: &str) {
        assert_eq!(self.status, status, "{}", String::from_utf8_lossy(&self.body));
        let v = self.json();
        assert_eq!(v["error"]["field"], json!(field), "{v}");
    }
}

impl Api {
    async fn start(config: Config) -> Api {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(
            Store::open(&dir.path().join("data").display().to_string(), KeyConfig::DataDir).await.expect("store"),
        );
        let state = AppState::new(store.clone(), config);
        let router = sluice_server::router(state.clone());
        // As `serve` does: the instance's discovery scheduler runs beside the routes.
        let scheduler = Scheduler::start(state);
        Api { router, store, _dir: dir, _scheduler: scheduler }
    }

    async fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Reply {
        let req = Request::builder().method(method).uri(path).header(header::AUTHORIZATION, format!("Bearer {token}"));
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(&b).expect("json")))
                .expect("request"),
            None => req.body(Body::empty()).expect("request"),
        };
        let response = self.router.clone().oneshot(req).await.expect("infallible");
        let status = response.status();
        let body = response.into_body().collect().await.expect("body").to_bytes().to_vec();
        Reply { status, body }
    }

    /// An admin token made offline against the store, as `sluice token create` does.
    async fn admin_token(&self) -> String {
        let new = sluice_store::NewApiToken {
            name: "automation".into(),
            role: sluice_store::TokenRole::Admin,
            source: None,
            created_by: None,
        };
        let (_, secret) = self.store.create_token(&new).await.expect("token");
        secret.expose().to_string()
    }

    async fn add_source(&self, admin: &str, id: &str, cluster: &Cluster, password: &str) {
        let form = json!({
            "id": id, "name": id, "network": "direct", "host": "127.0.0.1", "port": cluster.port(),
            "database": DB, "user": "sluice_ro", "password": password, "sslmode": "disable",
        });
        self.call(Method::POST, "/api/v1/sources", admin, Some(form)).await.ok(StatusCode::CREATED);
    }

    /// Queues a discovery run and waits until it has finished (bounded); returns the run.
    async fn refresh(&self, token: &str, id: &str) -> Value {
        let queued = self
            .call(Method::POST, &format!("/api/v1/sources/{id}/refresh"), token, None)
            .await
            .ok(StatusCode::ACCEPTED);
        let run = queued["run"].as_i64().expect("a run id");
        let deadline = Instant::now() + Duration::from_secs(60);
        let path = format!("/api/v1/sources/{id}/discoveries/{run}");
        loop {
            let v = self.call(Method::GET, &path, token, None).await.ok(StatusCode::OK);
            if v["state"] != "queued" && v["state"] != "running" {
                return v;
            }
            assert!(Instant::now() < deadline, "the run did not finish: {v}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The latest snapshot's identity.
    async fn latest(&self, token: &str, id: &str) -> Value {
        let v = self.call(Method::GET, &format!("/api/v1/sources/{id}/catalog"), token, None).await.ok(StatusCode::OK);
        v["snapshot"].clone()
    }

    async fn changes(&self, token: &str, id: &str, query: &str) -> Value {
        self.call(Method::GET, &format!("/api/v1/sources/{id}/catalog/changes{query}"), token, None)
            .await
            .ok(StatusCode::OK)
    }
}

fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).expect("time");
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_changed_snapshot_records_its_diff_and_the_catalog_answers_for_a_past_time() {
    let (cluster, password) = target();
    let api = Api::start(Config::default()).await;
    let admin = api.admin_token().await;
    api.add_source(&admin, "shop", &cluster, &password).await;

    // Before any snapshot: a time is answered with 404; a malformed one names `at`.
    let r = api.call(Method::GET, "/api/v1/sources/shop/catalog?at=2020-01-01T00:00:00Z", &admin, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", String::from_utf8_lossy(&r.body));
    for bad in ["yesterday", "2025-02-30T00:00:00Z", "1700000000"] {
        let r = api.call(Method::GET, &format!("/api/v1/sources/shop/catalog?at={bad}"), &admin, None).await;
        r.refused(StatusCode::BAD_REQUEST, "at");
    }
    let r = api.call(Method::GET, "/api/v1/sources/shop/catalog?when=now", &admin, None).await;
    r.refused(StatusCode::BAD_REQUEST, "when");

    // The first snapshot has nothing to compare with; an unchanged catalog stores nothing.
    assert_eq!(api.refresh(&admin, "shop").await["state"], "ok");
    let first = api.latest(&admin, "shop").await;
    assert_eq!(api.changes(&admin, "shop", "").await, json!({"changes": [], "next": null}));
    let same = api.refresh(&admin, "shop").await;
    assert_eq!((same["state"].clone(), same["changed"].clone()), (json!("ok"), json!(false)), "{same}");
    assert_eq!(api.latest(&admin, "shop").await, first);
    let first_at = first["discovered_at"].as_i64().expect("time");

    cluster
        .psql(DB, "CREATE TABLE public.invoices (id int, amount numeric); ALTER TABLE public.customers ADD COLUMN email text;")
        .expect("ddl");
    assert_eq!(api.refresh(&admin, "shop").await["changed"], json!(true));
    let second = api.latest(&admin, "shop").await;
    let second_at = second["discovered_at"].as_i64().expect("time");
    let page = api.changes(&admin, "shop", "").await;
    let changes = page["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "{page}");
    let change = &changes[0];
    assert_eq!((&change["from_snapshot"], &change["to_snapshot"]), (&first["id"], &second["id"]), "{change}");
    assert_eq!(change["counts"], json!({"added_relations": 1, "changed_relations": 1}), "{change}");
    assert_eq!(change["diff"]["added_relations"], json!([{"schema": "public", "name": "invoices", "kind": "table"}]));
    assert_eq!(change["diff"]["changed_relations"][0]["added_columns"], json!([{"name": "email", "type": "text"}]));
    assert_eq!(page["next"], Value::Null);
    let second_change = change["id"].clone();

    // A third change, then paging one at a time, newest first.
    cluster.psql(DB, "DROP TABLE public.invoices;").expect("ddl");
    assert_eq!(api.refresh(&admin, "shop").await["changed"], json!(true));
    let third = api.latest(&admin, "shop").await;
    let page = api.changes(&admin, "shop", "?limit=1").await;
    assert_eq!(page["changes"][0]["counts"], json!({"removed_relations": 1}), "{page}");
    assert_eq!(page["changes"][0]["to_snapshot"], third["id"], "{page}");
    let next = page["next"].as_i64().expect("a next page");
    let page = api.changes(&admin, "shop", &format!("?limit=1&cursor={next}")).await;
    assert_eq!(page["changes"][0]["id"], second_change, "{page}");
    assert_eq!(page["next"], Value::Null);
    let r = api.call(Method::GET, "/api/v1/sources/shop/catalog/changes?limit=0", &admin, None).await;
    r.refused(StatusCode::BAD_REQUEST, "limit");
    let r = api.call(Method::GET, "/api/v1/sources/shop/catalog/changes?cursor=x", &admin, None).await;
    r.refused(StatusCode::BAD_REQUEST, "cursor");
    let r = api.call(Method::GET, "/api/v1/sources/ghost/catalog/changes", &admin, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // The catalog in force at a time: before the first snapshot there was none; at the first
    // snapshot's time, the first; from the second's on, it (invoices there, then gone).
    let at = |ms: i64| format!("/api/v1/sources/shop/catalog?at={}", rfc3339(ms));
    let r = api.call(Method::GET, &at(first_at - 1), &admin, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", String::from_utf8_lossy(&r.body));
    let has_invoices = |v: &Value| v["catalog"].to_string().contains("\"invoices\"");
    if first_at < second_at {
        let v = api.call(Method::GET, &at(first_at), &admin, None).await.ok(StatusCode::OK);
        assert_eq!(v["snapshot"]["id"], first["id"], "{}", v["snapshot"]);
        assert!(!has_invoices(&v));
    }
    let third_at = third["discovered_at"].as_i64().expect("time");
    if second_at < third_at {
        let v = api.call(Method::GET, &at(second_at), &admin, None).await.ok(StatusCode::OK);
        assert_eq!(v["snapshot"]["id"], second["id"], "{}", v["snapshot"]);
        assert!(has_invoices(&v));
    }
    let v = api.call(Method::GET, &at(third_at + 60_000), &admin, None).await.ok(StatusCode::OK);
    assert_eq!(v["snapshot"]["id"], third["id"]);
    assert!(!has_invoices(&v));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_may_only_queue_its_own_sources_discovery() {
    let (cluster, password) = target();
    let api = Api::start(Config::default()).await;
    let admin = api.admin_token().await;
    api.add_source(&admin, "shop", &cluster, &password).await;
    api.add_source(&admin, "other", &cluster, &password).await;

    // A refresh token names its source; without one it is refused naming `source`.
    let r = api.call(Method::POST, "/api/v1/tokens", &admin, Some(json!({"name": "dbt", "role": "refresh"}))).await;
    r.refused(StatusCode::BAD_REQUEST, "source");
    let body = json!({"name": "dbt", "role": "refresh", "source_id": "ghost"});
    api.call(Method::POST, "/api/v1/tokens", &admin, Some(body)).await.refused(StatusCode::BAD_REQUEST, "source");
    let body = json!({"name": "dbt", "role": "refresh", "source_id": "shop"});
    let created = api.call(Method::POST, "/api/v1/tokens", &admin, Some(body)).await.ok(StatusCode::CREATED);
    let hook = created["token"].as_str().expect("token").to_string();
    assert_eq!((created["info"]["role"].clone(), created["info"]["source"].clone()), (json!("refresh"), json!("shop")));

    // Its one permitted call: the refresh of its source, which runs.
    let queued = api.call(Method::POST, "/api/v1/sources/shop/refresh", &hook, None).await.ok(StatusCode::ACCEPTED);
    let run = queued["run"].as_i64().expect("run");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let path = format!("/api/v1/sources/shop/discoveries/{run}");
        let v = api.call(Method::GET, &path, &admin, None).await.ok(StatusCode::OK);
        if v["state"] == "ok" {
            break;
        }
        assert!(v["state"] == "queued" || v["state"] == "running", "{v}");
        assert!(Instant::now() < deadline, "the run did not finish: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let audit = api.call(Method::GET, "/api/v1/audit?kind=source.refresh", &admin, None).await.ok(StatusCode::OK);
    let actor = format!("token:{}", created["info"]["public_id"].as_str().expect("public id"));
    assert!(audit["entries"].as_array().expect("entries").iter().any(|e| e["actor"] == json!(actor)), "{audit}");

    // Everything else is 403: another source's refresh, the catalog, queries, admin endpoints.
    let query = json!({"sql": "SELECT 1"});
    for (method, path, body) in [
        (Method::POST, "/api/v1/sources/other/refresh", None),
        (Method::GET, "/api/v1/sources/shop/catalog", None),
        (Method::GET, "/api/v1/sources/shop/catalog/changes", None),
        (Method::POST, "/api/v1/sources/shop/query", Some(query)),
        (Method::GET, "/api/v1/sources", None),
        (Method::GET, "/api/v1/sources/shop", None),
        (Method::GET, &format!("/api/v1/sources/shop/discoveries/{run}"), None),
        (Method::POST, "/api/v1/sources/shop/test", None),
        (Method::GET, "/api/v1/audit", None),
        (Method::GET, "/api/v1/tokens", None),
        (Method::POST, "/api/v1/tokens", Some(json!({"name": "x", "role": "admin"}))),
    ] {
        let r = api.call(method.clone(), path, &hook, body).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {path}: {}", String::from_utf8_lossy(&r.body));
    }
    // A revoked refresh token is refused.
    let public = created["info"]["public_id"].as_str().expect("public id");
    let r = api.call(Method::DELETE, &format!("/api/v1/tokens/{public}"), &admin, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = api.call(Method::POST, "/api/v1/sources/shop/refresh", &hook, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", String::from_utf8_lossy(&r.body));
}

impl Api {
    async fn source(&self, token: &str, id: &str) -> Value {
        self.call(Method::GET, &format!("/api/v1/sources/{id}"), token, None).await.ok(StatusCode::OK)
    }

    /// Polls the source's view until `done` holds for it (bounded); returns that view.
    async fn wait_for_source(&self, token: &str, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.source(token, id).await;
            if done(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "{what} did not happen: {v}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn audit_kinds(&self, token: &str, kind: &str) -> Vec<Value> {
        let v = self.call(Method::GET, &format!("/api/v1/audit?kind={kind}"), token, None).await.ok(StatusCode::OK);
        v["entries"].as_array().expect("entries").clone()
    }
}

/// The scheduler on a short interval, as a test may set it (the API's floor is a minute).
fn quick_schedule() -> Config {
    let mut config = Config::default();
    config.discovery.default_interval = Duration::from_secs(1);
    config.discovery.poll = Duration::from_millis(50);
    config
}

/// The ELT trap: `elt`'s default privileges stop granting SELECT and it recreates a table;
/// the scheduled run raises `lost_access` naming it with the GRANT that fixes it, runs that
/// change nothing keep it open, and the run after the GRANT clears it (kept in the history).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_table_raises_lost_access_with_its_grant_until_the_grant_runs() {
    let (cluster, password) = target();
    cluster
        .psql(DB, "ALTER DEFAULT PRIVILEGES FOR ROLE elt IN SCHEMA analytics GRANT SELECT ON TABLES TO sluice_ro;")
        .expect("default privileges");
    let api = Api::start(quick_schedule()).await;
    let admin = api.admin_token().await;
    api.add_source(&admin, "shop", &cluster, &password).await;
    let first = api.wait_for_source(&admin, "shop", "a first run", |v| v["discovery"]["last"]["state"] == "ok").await;
    assert_eq!(first["alerts"], json!([]), "{first}");

    // With the default privilege in place a recreated table stays readable: no alert.
    cluster
        .psql(DB, "SET ROLE elt; DROP TABLE analytics.orders; CREATE TABLE analytics.orders (id int, total int);")
        .expect("recreate");
    assert_eq!(api.refresh(&admin, "shop").await["state"], "ok");
    assert_eq!(api.source(&admin, "shop").await["alerts"], json!([]));

    // The trap: the default privilege goes, and the table is recreated once more.
    cluster
        .psql(
            DB,
            "ALTER DEFAULT PRIVILEGES FOR ROLE elt IN SCHEMA analytics REVOKE SELECT ON TABLES FROM sluice_ro;
             SET ROLE elt; DROP TABLE analytics.orders; CREATE TABLE analytics.orders (id int, total int);",
        )
        .expect("recreate without the default privilege");
    let raised = api.wait_for_source(&admin, "shop", "a lost_access alert", |v| v["alerts"] != json!([])).await;
    let alerts = raised["alerts"].as_array().expect("alerts");
    assert_eq!(alerts.len(), 1, "{raised}");
    let alert = &alerts[0];
    assert_eq!((&alert["kind"], &alert["subject"]), (&json!("lost_access"), &json!("analytics.orders")), "{alert}");
    let grant = "GRANT SELECT ON TABLE analytics.orders TO sluice_ro;";
    assert_eq!(alert["details"]["grant"], grant, "{alert}");
    assert_eq!(
        alert["details"]["default_privileges"],
        "ALTER DEFAULT PRIVILEGES FOR ROLE elt IN SCHEMA analytics GRANT SELECT ON TABLES TO sluice_ro;"
    );
    assert_eq!((&alert["details"]["owner"], &alert["cleared_at"]), (&json!("elt"), &Value::Null));

    // Runs that find the same catalog keep it open (it is a state, not an event).
    let unchanged = api.refresh(&admin, "shop").await;
    assert_eq!((&unchanged["state"], &unchanged["changed"]), (&json!("ok"), &json!(false)), "{unchanged}");
    assert_eq!(api.source(&admin, "shop").await["alerts"], json!([alert.clone()]));
    let listed = api.call(Method::GET, "/api/v1/sources", &admin, None).await.ok(StatusCode::OK);
    assert_eq!(listed["sources"][0]["alerts"], json!([alert.clone()]), "{listed}");

    // The GRANT the alert names restores access; the next run clears it.
    cluster.psql(DB, grant).expect("the alert's grant");
    api.refresh(&admin, "shop").await;
    assert_eq!(api.source(&admin, "shop").await["alerts"], json!([]));
    let history = api.call(Method::GET, "/api/v1/sources/shop/alerts", &admin, None).await.ok(StatusCode::OK);
    let history = history["alerts"].as_array().expect("alerts");
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["id"], alert["id"]);
    assert!(history[0]["cleared_at"].as_i64().is_some(), "{history:?}");
    let r = api.call(Method::GET, "/api/v1/sources/shop/alerts?limit=0", &admin, None).await;
    r.refused(StatusCode::BAD_REQUEST, "limit");
    let r = api.call(Method::GET, "/api/v1/sources/shop/alerts?limit=1001", &admin, None).await;
    r.refused(StatusCode::BAD_REQUEST, "limit");

    // Raised and cleared once each, by the system, in the audit log.
    for kind in ["alert.raised", "alert.cleared"] {
        let entries = api.audit_kinds(&admin, kind).await;
        assert_eq!(entries.len(), 1, "{kind}: {entries:?}");
        assert_eq!((&entries[0]["actor"], &entries[0]["source"]), (&json!("system"), &json!("shop")));
        assert_eq!(entries[0]["detail"]["subject"], "analytics.orders");
    }

    // A dropped relation clears its alert too.
    cluster.psql(DB, "REVOKE SELECT ON analytics.orders FROM sluice_ro;").expect("revoke");
    api.wait_for_source(&admin, "shop", "a second alert", |v| v["alerts"].as_array().is_some_and(|a| a.len() == 1))
        .await;
    cluster.psql(DB, "DROP TABLE analytics.orders;").expect("drop");
    api.refresh(&admin, "shop").await;
    assert_eq!(api.source(&admin, "shop").await["alerts"], json!([]));
}

/// Losing USAGE on a schema is one `lost_usage` alert with `GRANT USAGE`, naming the relations
/// it hid, not one alert per relation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_losing_usage_raises_one_alert_with_grant_usage() {
    let (cluster, password) = target();
    let api = Api::start(Config::default()).await;
    let admin = api.admin_token().await;
    api.add_source(&admin, "shop", &cluster, &password).await;
    assert_eq!(api.refresh(&admin, "shop").await["state"], "ok");
    cluster.psql(DB, "REVOKE USAGE ON SCHEMA analytics FROM sluice_ro;").expect("revoke usage");
    api.refresh(&admin, "shop").await;
    let alerts = api.source(&admin, "shop").await["alerts"].clone();
    assert_eq!(alerts.as_array().map(Vec::len), Some(1), "{alerts}");
    assert_eq!((&alerts[0]["kind"], &alerts[0]["subject"]), (&json!("lost_usage"), &json!("analytics")));
    assert_eq!(alerts[0]["details"]["grant"], "GRANT USAGE ON SCHEMA analytics TO sluice_ro;");
    assert_eq!(alerts[0]["details"]["relations"], json!(["orders"]));
    cluster.psql(DB, "GRANT USAGE ON SCHEMA analytics TO sluice_ro;").expect("grant usage");
    api.refresh(&admin, "shop").await;
    assert_eq!(api.source(&admin, "shop").await["alerts"], json!([]));
}

/// Three failed runs in a row raise `discovery_failing` with the doctor's stage; a success
/// clears it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_discovery_failures_raise_an_alert_a_success_clears() {
    let (cluster, password) = target();
    let mut config = Config::default();
    config.discovery.first_backoff = Duration::from_secs(3600);
    let api = Api::start(config).await;
    let admin = api.admin_token().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_port = closed.local_addr().expect("addr").port();
    drop(closed);
    let form = json!({
        "id": "shop", "name": "shop", "network": "direct", "host": "127.0.0.1", "port": dead_port,
        "database": DB, "user": "sluice_ro", "password": password, "sslmode": "disable",
    });
    api.call(Method::POST, "/api/v1/sources", &admin, Some(form)).await.ok(StatusCode::CREATED);
    let failing = |v: &Value| v["discovery"]["failures"].as_u64();
    api.wait_for_source(&admin, "shop", "the first failure", |v| failing(v) == Some(1)).await;
    let second = api.refresh(&admin, "shop").await;
    assert_eq!((&second["state"], &second["stage"]), (&json!("failed"), &json!("tcp")), "{second}");
    assert_eq!(api.source(&admin, "shop").await["alerts"], json!([]), "two failures are not an alert yet");
    api.refresh(&admin, "shop").await;
    let alerts = api.source(&admin, "shop").await["alerts"].clone();
    assert_eq!(alerts.as_array().map(Vec::len), Some(1), "{alerts}");
    assert_eq!((&alerts[0]["kind"], &alerts[0]["subject"]), (&json!("discovery_failing"), &json!("discovery")));
    assert_eq!((&alerts[0]["details"]["stage"], &alerts[0]["details"]["failures"]), (&json!("tcp"), &json!(3)));
    assert!(alerts[0]["details"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{alerts}");

    let fix = json!({"port": cluster.port()});
    api.call(Method::PATCH, "/api/v1/sources/shop", &admin, Some(fix)).await.ok(StatusCode::OK);
    let fixed =
        api.wait_for_source(&admin, "shop", "a successful run", |v| v["discovery"]["last"]["state"] == "ok").await;
    assert_eq!(fixed["alerts"], json!([]), "{fixed}");
}

/// A webhook receiver on loopback: records each POST (headers and body) and answers with the
/// status it is set to (503 while "down").
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<std::sync::Mutex<Vec<(String, String, String)>>>,
    down: Arc<std::sync::atomic::AtomicBool>,
    refused: Arc<std::sync::atomic::AtomicUsize>,
}

impl Receiver {
    async fn start() -> (Receiver, String) {
        use axum::http::HeaderMap;
        let receiver = Receiver::default();
        let r = receiver.clone();
        let app = Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let r = r.clone();
                async move {
                    if r.down.load(std::sync::atomic::Ordering::SeqCst) {
                        r.refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let header =
                        |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                    r.got.lock().expect("lock").push((header("sluice-signature"), header("sluice-event-id"), body));
                    StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    fn received(&self) -> Vec<(String, String, String)> {
        self.got.lock().expect("lock").clone()
    }

    /// Waits (bounded) until `n` notifications arrived; returns them.
    async fn wait_for(&self, n: usize) -> Vec<(String, String, String)> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < deadline, "{n} notifications did not arrive: {got:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Checks `Sluice-Signature: t=…,v1=…` over `t.body` with `secret`, as a receiver would.
fn verify(secret: &str, header: &str, body: &str) -> bool {
    let Some((t, v1)) = header.split_once(",v1=") else { return false };
    let Some(t) = t.strip_prefix("t=").and_then(|t| t.parse::<u64>().ok()) else { return false };
    sluice_server::webhook::signature(secret, t, body.as_bytes()) == format!("t={t},v1={v1}")
}

const HOOK_SECRET: &str = "whsec-4f1c2a9d7e3b8c60";

/// The ELT trap through the webhook: one signed notification when `lost_access` is raised, one
/// when the GRANT clears it; a receiver that is down for a while gets each once when it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_gets_each_alert_once_signed_even_after_being_down() {
    let (cluster, password) = target();
    let mut config = quick_schedule();
    config.discovery.webhook_retry = Duration::from_millis(100);
    let api = Api::start(config).await;
    let admin = api.admin_token().await;
    let (receiver, url) = Receiver::start().await;

    // Configuring: the secret is write-only and must be long enough; bad URLs name `url`.
    let r = api.call(Method::GET, "/api/v1/webhook", &admin, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    api.call(Method::PUT, "/api/v1/webhook", &admin, Some(json!({"url": url, "secret": "short"})))
        .await
        .refused(StatusCode::BAD_REQUEST, "secret");
    for bad in ["ftp://example.com/x", "not a url", "http://user:pw@127.0.0.1/hook", ""] {
        let body = json!({"url": bad, "secret": HOOK_SECRET});
        api.call(Method::PUT, "/api/v1/webhook", &admin, Some(body)).await.refused(StatusCode::BAD_REQUEST, "url");
    }
    let set = api
        .call(Method::PUT, "/api/v1/webhook", &admin, Some(json!({"url": url, "secret": HOOK_SECRET})))
        .await
        .ok(StatusCode::OK);
    assert_eq!((&set["url"], &set["pending"]), (&json!(url), &json!(0)), "{set}");
    assert!(!set.to_string().contains(HOOK_SECRET), "{set}");
    let shown = api.call(Method::GET, "/api/v1/webhook", &admin, None).await.ok(StatusCode::OK);
    assert!(shown.get("secret").is_none() && !shown.to_string().contains(HOOK_SECRET), "{shown}");
    assert_eq!(api.audit_kinds(&admin, "webhook.set").await.len(), 1);

    api.add_source(&admin, "shop", &cluster, &password).await;
    api.wait_for_source(&admin, "shop", "a first run", |v| v["discovery"]["last"]["state"] == "ok").await;
    cluster
        .psql(DB, "SET ROLE elt; DROP TABLE analytics.orders; CREATE TABLE analytics.orders (id int, total int);")
        .expect("recreate without a default privilege");
    let raised = api.wait_for_source(&admin, "shop", "a lost_access alert", |v| v["alerts"] != json!([])).await;
    let alert = raised["alerts"][0].clone();

    let got = receiver.wait_for(1).await;
    let (signature, event_id, body) = &got[0];
    assert!(verify(HOOK_SECRET, signature, body), "{signature} {body}");
    assert!(!verify("another-secret-entirely", signature, body), "a wrong secret is detectable");
    assert!(!verify(HOOK_SECRET, signature, &body.replace("orders", "orderz")), "a changed body is detectable");
    let payload: Value = serde_json::from_str(body).expect("JSON body");
    assert_eq!(
        (&payload["type"], &payload["source"], &payload["id"]),
        (&json!("alert.raised"), &json!("shop"), &json!(event_id))
    );
    assert_eq!(payload["alert"]["subject"], "analytics.orders");
    assert_eq!(payload["alert"]["details"]["grant"], alert["details"]["grant"]);
    assert_eq!(payload["alert"]["id"], alert["id"]);

    // The receiver goes down; the GRANT clears the alert; the notification waits and is
    // retried, then delivered once when the receiver is back.
    receiver.down.store(true, std::sync::atomic::Ordering::SeqCst);
    cluster.psql(DB, "GRANT SELECT ON TABLE analytics.orders TO sluice_ro;").expect("grant");
    api.wait_for_source(&admin, "shop", "the alert cleared", |v| v["alerts"] == json!([])).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while receiver.refused.load(std::sync::atomic::Ordering::SeqCst) < 2 {
        assert!(Instant::now() < deadline, "no retries while the receiver was down");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let pending = api.call(Method::GET, "/api/v1/webhook", &admin, None).await.ok(StatusCode::OK);
    assert_eq!(pending["pending"], json!(1), "{pending}");
    assert!(pending["last_error"].as_str().is_some_and(|e| e.contains("503")), "{pending}");
    receiver.down.store(false, std::sync::atomic::Ordering::SeqCst);
    let got = receiver.wait_for(2).await;
    let (signature, event_id, body) = &got[1];
    assert!(verify(HOOK_SECRET, signature, body));
    let payload: Value = serde_json::from_str(body).expect("JSON body");
    assert_eq!((&payload["type"], &payload["id"]), (&json!("alert.cleared"), &json!(event_id)));
    assert!(payload["alert"]["cleared_at"].as_i64().is_some(), "{payload}");
    let settled = api.wait_for_pending(&admin, 0).await;
    assert_eq!(settled["last_error"], Value::Null);

    // Exactly one of each: more runs (the schedule keeps going) send nothing more.
    api.refresh(&admin, "shop").await;
    api.refresh(&admin, "shop").await;
    assert_eq!(receiver.received().len(), 2, "{:?}", receiver.received());

    // Removing it stops deliveries.
    let r = api.call(Method::DELETE, "/api/v1/webhook", &admin, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = api.call(Method::DELETE, "/api/v1/webhook", &admin, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

impl Api {
    /// Waits (bounded) until the webhook has `n` notifications pending; returns its view.
    async fn wait_for_pending(&self, token: &str, n: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.call(Method::GET, "/api/v1/webhook", token, None).await.ok(StatusCode::OK);
            if v["pending"] == json!(n) {
                return v;
            }
            assert!(Instant::now() < deadline, "pending never became {n}: {v}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// A webhook URL whose host resolves to an address the network policy refuses (cloud metadata
/// by default, or loopback when the policy denies it) is refused when configured, naming `url`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_the_network_policy_refuses_is_refused_at_configuration() {
    let api = Api::start(Config::default()).await;
    let admin = api.admin_token().await;
    let body = json!({"url": "http://169.254.169.254/latest/meta-data/", "secret": HOOK_SECRET});
    let r = api.call(Method::PUT, "/api/v1/webhook", &admin, Some(body)).await;
    r.refused(StatusCode::BAD_REQUEST, "url");
    let v = r.json();
    assert!(v["error"]["message"].as_str().is_some_and(|m| m.contains("169.254.169.254")), "{v}");
    assert!(api.store.webhook().await.expect("webhook").is_none());

    let network =
        sluice_connect::NetworkPolicy::parse(&["127.0.0.0/8"], &[] as &[&str], &[] as &[&str]).expect("policy");
    let config = Config { network, ..Config::default() };
    let strict = Api::start(config).await;
    let admin = strict.admin_token().await;
    let body = json!({"url": "http://localhost:9/hook", "secret": HOOK_SECRET});
    strict.call(Method::PUT, "/api/v1/webhook", &admin, Some(body)).await.refused(StatusCode::BAD_REQUEST, "url");
}

/// The scheduler applies the history's retention on its own: with a retention shorter than the
/// test, the changes go and the latest snapshot stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_applies_the_retention_periodically() {
    let (cluster, password) = target();
    let mut config = Config { history_keep: Duration::from_millis(1), ..Config::default() };
    config.discovery.prune_every = Duration::from_millis(200);
    let api = Api::start(config).await;
    let admin = api.admin_token().await;
    api.add_source(&admin, "shop", &cluster, &password).await;
    assert_eq!(api.refresh(&admin, "shop").await["state"], "ok");
    cluster.psql(DB, "CREATE TABLE public.invoices (id int);").expect("ddl");
    assert_eq!(api.refresh(&admin, "shop").await["changed"], json!(true));
    let latest = api.latest(&admin, "shop").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if api.changes(&admin, "shop", "").await["changes"] == json!([]) {
            break;
        }
        assert!(Instant::now() < deadline, "the retention was never applied");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(api.latest(&admin, "shop").await, latest, "the latest snapshot stays");
}

/// Scheduled runs that find the catalog unchanged share one record, and the API says how many
/// runs it stands for and when the last one ran; a refresh keeps a record of its own (its id is
/// what a client polls), and the scheduled runs after it start a new record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_scheduled_runs_are_one_record_that_the_api_reports_in_full() {
    let (cluster, password) = target();
    let api = Api::start(quick_schedule()).await;
    let admin = api.admin_token().await;
    api.add_source(&admin, "shop", &cluster, &password).await;
    let list = |v: &Value| v["runs"].as_array().cloned().unwrap_or_default();
    let listing = api
        .wait_for_runs(&admin, "three unchanged runs in one record", |runs| {
            runs.first().is_some_and(|r| r["runs"].as_i64() >= Some(3))
        })
        .await;
    let runs = list(&listing);
    let (folded, first) = (&runs[0], runs.last().expect("the first run"));
    assert_eq!(
        (&folded["state"], &folded["reason"], &folded["changed"]),
        (&json!("ok"), &json!("schedule"), &json!(false)),
        "{folded}"
    );
    let at = |v: &Value, field: &str| v[field].as_i64().unwrap_or_else(|| panic!("{field} in {v}"));
    assert!(at(folded, "finished_at") <= at(folded, "last_started_at"), "{folded}");
    assert!(at(folded, "last_started_at") <= at(folded, "last_finished_at"), "{folded}");
    assert!(folded["last_instance"].as_str().is_some_and(|i| !i.is_empty()), "{folded}");
    assert_eq!(folded["relations"], first["relations"], "{runs:?}");
    // The first run stored the catalog: a record of its own, standing for itself alone.
    assert_eq!((&first["changed"], &first["runs"]), (&json!(true), &json!(1)), "{first}");
    assert_eq!((&first["last_started_at"], &first["last_instance"]), (&Value::Null, &Value::Null), "{first}");
    // One run by its id says the same; the source's view shows it as its last run.
    let id = at(folded, "id");
    let shown =
        api.call(Method::GET, &format!("/api/v1/sources/shop/discoveries/{id}"), &admin, None).await.ok(StatusCode::OK);
    assert_eq!(shown["id"], folded["id"]);
    assert!(shown["runs"].as_i64() >= folded["runs"].as_i64(), "{shown}");

    // A refresh: a record of its own, standing for one run, that scheduled runs do not join.
    let refreshed = api.refresh(&admin, "shop").await;
    assert_eq!((&refreshed["state"], &refreshed["runs"]), (&json!("ok"), &json!(1)), "{refreshed}");
    let asked = at(&refreshed, "id");
    let after = api
        .wait_for_runs(&admin, "two scheduled runs after the refresh", |runs| {
            runs.first().is_some_and(|r| r["id"].as_i64() > Some(asked) && r["runs"].as_i64() >= Some(2))
        })
        .await;
    let runs = list(&after);
    let kept = runs.iter().find(|r| r["id"] == json!(asked)).expect("the refresh's record");
    assert_eq!(
        (&kept["reason"], &kept["runs"], &kept["last_started_at"]),
        (&json!("refresh"), &json!(1), &Value::Null)
    );
    assert!(runs.iter().any(|r| r["id"] == json!(id)), "the folded record stays: {runs:?}");
}

/// A discovery run outside the schedule (`refresh_source`, as the demo runs it) counts its
/// failures in a row as a scheduled run does: the third raises `discovery_failing`, and a success
/// starts the count again and clears it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_of_a_direct_refresh_count_towards_the_failing_alert() {
    let (cluster, password) = target();
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        Arc::new(Store::open(&dir.path().join("data").display().to_string(), KeyConfig::DataDir).await.expect("store"));
    // No scheduler: only the direct path discovers.
    let state = AppState::new(store.clone(), Config::default());
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_port = closed.local_addr().expect("addr").port();
    drop(closed);
    let source = |port: u16| {
        let mut spec = sluice_core::SourceSpec::new("127.0.0.1", DB, "sluice_ro");
        spec.hosts[0].port = port;
        spec.password = Some(sluice_core::Secret::new(password.as_str()));
        spec.sslmode = sluice_core::SslMode::Disable;
        spec.split()
    };
    let id: sluice_core::SourceId = "shop".parse().expect("id");
    let (settings, secrets) = source(dead_port);
    store.put_source(&id, "shop", &settings, &secrets).await.expect("source");
    let failing = |alerts: &[sluice_store::Alert]| {
        alerts.iter().filter(|a| a.kind == sluice_store::AlertKind::DiscoveryFailing).cloned().collect::<Vec<_>>()
    };
    for n in 1..=3u32 {
        let e = sluice_server::refresh_source(&state, &id).await.expect_err("the port is closed");
        assert!(!e.message.is_empty());
        assert_eq!(store.discovery_schedule(&id).await.expect("schedule").failures, n);
        let open = failing(&store.open_alerts(Some(&id)).await.expect("alerts"));
        if n < 3 {
            assert!(open.is_empty(), "{n} failures are not an alert yet: {open:?}");
        } else {
            assert_eq!(open.len(), 1, "{open:?}");
            assert_eq!((&open[0].details["stage"], &open[0].details["failures"]), (&json!("tcp"), &json!(3)));
        }
    }
    let (settings, secrets) = source(cluster.port());
    store.update_source(&id, "shop", &settings, &secrets).await.expect("fixed");
    state.drop_pool(&id).await;
    sluice_server::refresh_source(&state, &id).await.expect("a successful run");
    assert_eq!(store.discovery_schedule(&id).await.expect("schedule").failures, 0);
    assert!(failing(&store.open_alerts(Some(&id)).await.expect("alerts")).is_empty(), "cleared by the success");
}

impl Api {
    /// Polls the source's run listing until `done` holds for its runs (bounded); returns it.
    async fn wait_for_runs(&self, token: &str, what: &str, done: impl Fn(&[Value]) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        let path = "/api/v1/sources/shop/discoveries";
        loop {
            let v = self.call(Method::GET, path, token, None).await.ok(StatusCode::OK);
            if done(v["runs"].as_array().map(Vec::as_slice).unwrap_or_default()) {
                return v;
            }
            assert!(Instant::now() < deadline, "{what} did not happen: {v}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}
