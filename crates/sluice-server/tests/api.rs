//! The API end to end: a real store (SQLite in a temp dir), a real PostgreSQL cluster with
//! Sluice's read-only role made by its own setup script, and the router driven request by
//! request. Every response body is kept and searched for the source's password at the end.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sluice_doctor::{generate_password, setup_sql, SetupOptions, DEFAULT_STATEMENT_TIMEOUT};
use sluice_server::{AppState, Config, Scheduler};
use sluice_store::{KeyConfig, Store};
use sluice_testkit::Cluster;
use tower::ServiceExt;

const DB: &str = "shop";

struct Target {
    cluster: Cluster,
    password: String,
}

/// A cluster with a small shop schema and Sluice's read-only role `sluice_ro`.
fn target() -> Target {
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_database(DB).expect("database");
    cluster
        .psql(
            DB,
            "CREATE TABLE customers (id int PRIMARY KEY, name text, note text);
             INSERT INTO customers SELECT g, 'customer ' || g, CASE WHEN g % 3 = 0 THEN 'a \"quoted\", note' END
               FROM generate_series(1, 50) g;",
        )
        .expect("fixture");
    let password = generate_password().expect("password");
    let script = setup_sql(&SetupOptions {
        user: "sluice_ro".into(),
        database: DB.into(),
        schemas: vec!["public".into()],
        elt_owners: vec![],
        read_all_data: false,
        password: password.clone(),
        statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
    })
    .expect("setup script");
    cluster.psql(DB, &script).expect("setup script runs");
    Target { cluster, password: password.expose().to_string() }
}

struct Api {
    router: Router,
    store: Arc<Store>,
    bodies: RefCell<Vec<Vec<u8>>>,
    _dir: tempfile::TempDir,
    _scheduler: Scheduler,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts a 4xx error naming `field`.
    fn refused(&self, status: StatusCode, field: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        let v = self.json();
        assert_eq!(v["error"]["field"], json!(field), "{v}");
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        v
    }
}

/// Who sends a request.
#[derive(Clone, Copy)]
enum As<'a> {
    Nobody,
    Token(&'a str),
    /// Session cookie and, when given, the CSRF header.
    Cookie(&'a str, Option<&'a str>),
}

impl Api {
    /// A SQLite store in a temporary data directory.
    async fn start(config: Config) -> Api {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            Store::open(&dir.path().join("data").display().to_string(), KeyConfig::DataDir).await.expect("store");
        Api::with_store(store, config, dir)
    }

    fn with_store(store: Store, config: Config, dir: tempfile::TempDir) -> Api {
        let mut api = Api::with_store_arc(Arc::new(store), config);
        api._dir = dir;
        api
    }

    fn with_store_arc(store: Arc<Store>, config: Config) -> Api {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = AppState::new(store.clone(), config);
        let router = sluice_server::router(state.clone());
        // As `serve` does: the instance's discovery scheduler runs beside the routes.
        let scheduler = Scheduler::start(state);
        Api { router, store, bodies: RefCell::new(Vec::new()), _dir: dir, _scheduler: scheduler }
    }

    fn request(method: Method, path: &str, who: As<'_>, body: Option<&Value>) -> Request<Body> {
        let mut req = Request::builder().method(method).uri(path);
        match who {
            As::Nobody => {}
            As::Token(t) => req = req.header(header::AUTHORIZATION, format!("Bearer {t}")),
            As::Cookie(c, csrf) => {
                req = req.header(header::COOKIE, format!("sluice_session={c}"));
                if let Some(csrf) = csrf {
                    req = req.header("x-csrf-token", csrf);
                }
            }
        }
        match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(b).expect("json")))
                .expect("request"),
            None => req.body(Body::empty()).expect("request"),
        }
    }

    async fn send(&self, req: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(req).await.expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.expect("body").to_bytes().to_vec();
        self.bodies.borrow_mut().push(body.clone());
        Reply { status, headers, body }
    }

    async fn call(&self, method: Method, path: &str, who: As<'_>, body: Option<Value>) -> Reply {
        self.send(Api::request(method, path, who, body.as_ref())).await
    }

    /// A service with its first administrator (whose API token comes second) and the target
    /// registered as source `shop`.
    async fn with_shop(config: Config, t: &Target) -> (Api, String) {
        let api = Api::start(config).await;
        let admin = api.admin_token().await;
        let r =
            api.call(Method::POST, "/api/v1/sources", As::Token(&admin), Some(api.source_form(t, &t.password))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        (api, admin)
    }

    /// Sets up the first administrator and returns an admin API token.
    async fn admin_token(&self) -> String {
        let setup = self.store.create_setup_token(Duration::from_secs(3600)).await.expect("setup token");
        let body = json!({"setup_token": setup.expose(), "login": "ada", "password": "correct horse battery"});
        let r = self.call(Method::POST, "/api/v1/setup", As::Nobody, Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        // Single use.
        let again = self.call(Method::POST, "/api/v1/setup", As::Nobody, Some(body)).await;
        assert!(again.status.is_client_error(), "{}", again.text());
        let r = self
            .call(Method::POST, "/api/v1/tokens", As::Nobody, Some(json!({"name": "automation", "role": "admin"})))
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let (cookie, csrf) = self.sign_in("ada", "correct horse battery").await;
        let r = self
            .call(
                Method::POST,
                "/api/v1/tokens",
                As::Cookie(&cookie, Some(&csrf)),
                Some(json!({"name": "automation", "role": "admin"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        r.json()["token"].as_str().expect("token").to_string()
    }

    /// Signs in; returns the session cookie and the CSRF token.
    async fn sign_in(&self, login: &str, password: &str) -> (String, String) {
        let r = self
            .call(Method::POST, "/api/v1/sessions", As::Nobody, Some(json!({"login": login, "password": password})))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        let cookies: Vec<String> =
            r.headers.get_all(header::SET_COOKIE).iter().map(|v| v.to_str().expect("ascii").to_string()).collect();
        let session = cookies.iter().find(|c| c.starts_with("sluice_session=")).expect("session cookie");
        assert!(session.contains("HttpOnly") && session.contains("SameSite=Lax"), "{session}");
        let value = session.trim_start_matches("sluice_session=").split(';').next().expect("value").to_string();
        (value, r.json()["csrf_token"].as_str().expect("csrf").to_string())
    }

    fn source_form(&self, t: &Target, password: &str) -> Value {
        json!({
            "id": "shop",
            "name": "Shop",
            "network": "direct",
            "host": "127.0.0.1",
            "port": t.cluster.port(),
            "database": DB,
            "user": "sluice_ro",
            "password": password,
            "sslmode": "disable",
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_flow_end_to_end() {
    let t = target();
    let api = Api::start(Config::default()).await;
    admin_flow(&api, &t).await;
}

/// The same flow with the store in PostgreSQL (here, a database of the target's cluster).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_flow_with_a_postgresql_store() {
    let t = target();
    t.cluster.create_database("sluice_store").expect("store database");
    let url = t.cluster.superuser_url("sluice_store");
    let key = sluice_store::MasterKey::generate().expect("key");
    let opened = Store::open(&url, KeyConfig::Key(key)).await;
    if t.cluster.version_num().expect("version") < 120_000 {
        assert!(opened.is_err(), "a store below PostgreSQL 12 is refused");
        return;
    }
    let api = Api::with_store(opened.expect("store"), Config::default(), tempfile::tempdir().expect("tempdir"));
    admin_flow(&api, &t).await;
}

async fn admin_flow(api: &Api, t: &Target) {
    let admin = api.admin_token().await;
    let me = api.call(Method::GET, "/api/v1/me", As::Token(&admin), None).await;
    assert_eq!(me.json()["role"], "admin", "{}", me.text());

    // Create the source with its password; the response says only that it is set.
    let form = api.source_form(t, &t.password);
    let r = api.call(Method::POST, "/api/v1/sources", As::Token(&admin), Some(form.clone())).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let v = r.json();
    assert_eq!(v["password_set"], true);
    assert_eq!(v["password_age_days"], 0);
    assert_eq!(v["password_rotation"], "ok");
    assert!(v["password_updated_at"].is_i64());
    let dup = api.call(Method::POST, "/api/v1/sources", As::Token(&admin), Some(form)).await;
    // Both the id and the name are unique; the backends report whichever they check first.
    let v = dup.refused(StatusCode::CONFLICT, dup.json()["error"]["field"].as_str().unwrap_or("?"));
    assert!(v["error"]["field"] == "id" || v["error"]["field"] == "name", "{v}");

    // Test Connection, whole report: the same JSON as `sluice doctor --format json`.
    let r = api.call(Method::POST, "/api/v1/sources/shop/test", As::Token(&admin), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let report: sluice_doctor::Report = serde_json::from_slice(&r.body).expect("a doctor report");
    assert!(report.ok, "{}", r.text());
    assert!(report.check("auth").is_some_and(|c| c.status == sluice_doctor::Status::Pass));

    // Streamed: one check per body chunk as it is decided, then the summary.
    let mut req = Api::request(Method::POST, "/api/v1/sources/shop/test", As::Token(&admin), None);
    req.headers_mut().insert(header::ACCEPT, "application/x-ndjson".parse().expect("header"));
    let response = api.router.clone().oneshot(req).await.expect("infallible");
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/x-ndjson");
    let mut body = response.into_body();
    let mut lines = Vec::new();
    while let Some(frame) = body.frame().await {
        let data = frame.expect("frame").into_data().expect("data");
        let text = String::from_utf8(data.to_vec()).expect("utf-8");
        assert_eq!(text.matches('\n').count(), 1, "one line per chunk: {text:?}");
        lines.push(serde_json::from_str::<Value>(text.trim_end()).expect("json line"));
    }
    let (summary, checks) = lines.split_last().expect("lines");
    assert_eq!(summary["summary"]["ok"], true, "{summary}");
    assert_eq!(checks.len(), report.checks.len(), "one line per check");
    for (line, check) in checks.iter().zip(&report.checks) {
        assert_eq!(line["id"], json!(check.id), "{line}");
    }
    // The list shows the saved source's last test, and who ran it.
    let r = api.call(Method::GET, "/api/v1/sources", As::Token(&admin), None).await;
    let last = &r.json()["sources"][0]["last_test"];
    assert_eq!((&last["ok"], &last["failed"]), (&json!(true), &Value::Null), "{last}");
    assert!(
        last["tested_at"].is_i64() && last["tested_by"].as_str().is_some_and(|a| a.starts_with("token:")),
        "{last}"
    );

    // An unsaved form with a wrong password: `auth` fails, with its fix.
    let wrong = api.source_form(t, "not-the-password");
    let r = api.call(Method::POST, "/api/v1/sources/test", As::Token(&admin), Some(wrong)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let report: sluice_doctor::Report = serde_json::from_slice(&r.body).expect("report");
    assert!(!report.ok);
    let auth = report.check("auth").expect("auth check");
    assert_eq!(auth.status, sluice_doctor::Status::Fail, "{}", r.text());
    assert!(auth.fix.as_deref().is_some_and(|f| !f.is_empty()), "{}", r.text());

    // An edit without a password keeps it (the pool is rebuilt and still logs in).
    let r =
        api.call(Method::PATCH, "/api/v1/sources/shop", As::Token(&admin), Some(json!({"name": "Shop (EU)"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["name"], "Shop (EU)");
    assert_eq!(r.json()["password_set"], true);
    assert_eq!(r.json()["last_test"]["ok"], true, "a rename keeps the last test: {}", r.text());

    // A saved source with a wrong password: its test fails at `auth`, and the source says so
    // until a new password clears it.
    let wrong = json!({"password": "not-the-password"});
    let r = api.call(Method::PATCH, "/api/v1/sources/shop", As::Token(&admin), Some(wrong)).await;
    assert_eq!((r.status, &r.json()["last_test"]), (StatusCode::OK, &Value::Null), "{}", r.text());
    let r = api.call(Method::POST, "/api/v1/sources/shop/test", As::Token(&admin), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = api.call(Method::GET, "/api/v1/sources/shop", As::Token(&admin), None).await;
    let last = &r.json()["last_test"];
    assert_eq!((&last["ok"], &last["failed"]), (&json!(false), &json!("auth")), "{last}");
    assert!(last["message"].as_str().is_some_and(|m| !m.is_empty()), "{last}");
    let right = json!({"password": t.password});
    let r = api.call(Method::PATCH, "/api/v1/sources/shop", As::Token(&admin), Some(right)).await;
    assert_eq!((r.status, &r.json()["last_test"]), (StatusCode::OK, &Value::Null), "{}", r.text());

    // Refresh: the run's id at once, then the run reported until it is done; then the catalog.
    let r = api.call(Method::POST, "/api/v1/sources/shop/refresh", As::Token(&admin), None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let run = r.json()["run"].as_i64().expect("a run id");
    let done = api.wait_for_run(&admin, "shop", run).await;
    assert_eq!(done["state"], "ok", "{done}");
    assert_eq!(done["relations"], 1, "{done}");
    assert!(done["changed"].is_boolean() && done["finished_at"].is_i64(), "{done}");
    let r = api.call(Method::GET, "/api/v1/sources/shop/discoveries", As::Token(&admin), None).await;
    let runs = r.json()["runs"].as_array().cloned().unwrap_or_default();
    assert!(runs.iter().any(|r| r["id"] == run && r["reason"] == "refresh"), "{}", r.text());
    let r = api.call(Method::GET, "/api/v1/sources/shop", As::Token(&admin), None).await;
    let discovery = &r.json()["discovery"];
    assert_eq!(
        (discovery["interval_secs"].as_u64(), discovery["failures"].as_u64()),
        (Some(300), Some(0)),
        "{discovery}"
    );
    assert!(discovery["next_due_at"].is_i64() && discovery["last"]["state"] == "ok", "{discovery}");
    let r = api.call(Method::GET, "/api/v1/audit?kind=source.refresh", As::Token(&admin), None).await;
    assert_eq!(r.json()["entries"][0]["detail"]["run"], run, "{}", r.text());
    let r = api.call(Method::GET, "/api/v1/sources/shop/catalog", As::Token(&admin), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let catalog = r.json();
    assert!(catalog["snapshot"]["discovered_at"].is_i64(), "{catalog}");
    assert!(r.text().contains("\"customers\""), "{}", r.text());
    // The stored snapshot, written compressed as it was produced, is byte for byte the JSON
    // `sluice catalog --format json` writes (`Catalog::write_json`), but for its time.
    let mut spec = sluice_core::SourceSpec::new(t.cluster.host(), DB, "sluice_ro");
    spec.hosts[0].port = t.cluster.port();
    spec.password = Some(sluice_core::Secret::new(t.password.clone()));
    spec.sslmode = sluice_core::SslMode::Disable;
    let mut session = sluice_connect::Connector::new(spec).expect("connector").connect().await.expect("connect");
    let direct =
        sluice_catalog::discover(&mut session, &sluice_catalog::DiscoverOptions::default()).await.expect("discover");
    let mut cli = Vec::new();
    direct.write_json(&mut cli).expect("write");
    let cli = String::from_utf8(cli).expect("utf-8").replace(&direct.discovered_at, "AT");
    let served = r.text();
    let stored = served.split_once(",\"catalog\":").map(|(_, c)| &c[..c.len() - 1]).expect("the catalog member");
    let at = catalog["catalog"]["discovered_at"].as_str().expect("its time");
    assert_eq!(stored.replace(at, "AT"), cli);

    // Queries: JSON, and CSV byte-identical to psql --csv (which `sluice query` matches).
    let sql = "SELECT id, name, note FROM customers ORDER BY id";
    let r = api.call(Method::POST, "/api/v1/sources/shop/query", As::Token(&admin), Some(json!({"sql": sql}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/json");
    let rows = r.json();
    assert!(r.text().contains("customer 50"), "{rows}");
    let r = api
        .call(Method::POST, "/api/v1/sources/shop/query", As::Token(&admin), Some(json!({"sql": sql, "format": "csv"})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.headers[header::CONTENT_DISPOSITION].to_str().expect("ascii").starts_with("attachment"));
    let psql = t.cluster.psql_csv(DB, sql, "UTF8").expect("psql --csv");
    assert_eq!(r.text(), String::from_utf8_lossy(&psql), "CSV differs from psql --csv");
    assert_eq!(r.body, psql);

    // Both are in the audit log, completed with rows and bytes.
    let audit = wait_for_audit(api, &admin, 2).await;
    for entry in &audit[..2] {
        assert_eq!(entry["sql"], sql, "{entry}");
        assert_eq!(entry["outcome"], "ok", "{entry}");
        assert_eq!(entry["rows"], 50, "{entry}");
        assert!(entry["bytes"].as_i64().is_some_and(|b| b > 0), "{entry}");
        assert!(entry["actor"].as_str().is_some_and(|a| a.starts_with("token:")), "{entry}");
    }
    let csv_entry = &audit[0];
    assert_eq!(csv_entry["bytes"].as_i64(), Some(psql.len() as i64), "{csv_entry}");

    // A new password is a secret change, audited; the source still works with it.
    let r = api
        .call(Method::PATCH, "/api/v1/sources/shop", As::Token(&admin), Some(json!({"password": t.password.clone()})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // (The wrong password and its correction above are the other two.)
    let r = api.call(Method::GET, "/api/v1/audit?kind=source.secret_changed", As::Token(&admin), None).await;
    assert_eq!(r.json()["entries"].as_array().map(Vec::len), Some(3), "{}", r.text());
    let r = api.call(Method::GET, "/api/v1/audit?kind=source.create&source=shop", As::Token(&admin), None).await;
    assert_eq!(r.json()["entries"].as_array().map(Vec::len), Some(1), "{}", r.text());

    // An analyst: queries and the catalog, nothing an admin owns.
    let r = api
        .call(Method::POST, "/api/v1/tokens", As::Token(&admin), Some(json!({"name": "ana", "role": "analyst"})))
        .await;
    let analyst = r.json()["token"].as_str().expect("token").to_string();
    let admin_only: [(Method, &str, Option<Value>); 9] = [
        (Method::POST, "/api/v1/sources", Some(api.source_form(t, "x"))),
        (Method::PATCH, "/api/v1/sources/shop", Some(json!({"name": "mine"}))),
        (Method::DELETE, "/api/v1/sources/shop", None),
        (Method::POST, "/api/v1/sources/shop/test", None),
        (Method::POST, "/api/v1/sources/shop/refresh", None),
        (Method::GET, "/api/v1/audit", None),
        (Method::GET, "/api/v1/users", None),
        (Method::GET, "/api/v1/tokens", None),
        (Method::POST, "/api/v1/tokens", Some(json!({"name": "more", "role": "admin"}))),
    ];
    for (method, path, body) in admin_only {
        let r = api.call(method.clone(), path, As::Token(&analyst), body).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {path}: {}", r.text());
    }
    let r = api
        .call(Method::POST, "/api/v1/sources/shop/query", As::Token(&analyst), Some(json!({"sql": "SELECT 1"})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = api.call(Method::GET, "/api/v1/sources/shop/catalog", As::Token(&analyst), None).await;
    assert_eq!(r.status, StatusCode::OK);

    // A token scoped to one source sees no other.
    let mut other = api.source_form(t, &t.password);
    other["id"] = json!("other");
    other["name"] = json!("Other");
    let r = api.call(Method::POST, "/api/v1/sources", As::Token(&admin), Some(other)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = api
        .call(
            Method::POST,
            "/api/v1/tokens",
            As::Token(&admin),
            Some(json!({"name": "shop only", "role": "analyst", "source": "shop"})),
        )
        .await;
    let scoped = r.json()["token"].as_str().expect("token").to_string();
    let r = api.call(Method::GET, "/api/v1/sources", As::Token(&scoped), None).await;
    let listed: Vec<Value> = r.json()["sources"].as_array().expect("sources").iter().map(|s| s["id"].clone()).collect();
    assert_eq!(listed, vec![json!("shop")]);
    let r = api
        .call(Method::POST, "/api/v1/sources/other/query", As::Token(&scoped), Some(json!({"sql": "SELECT 1"})))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    let r = api.call(Method::GET, "/api/v1/sources/other/catalog", As::Token(&scoped), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());

    // Metrics: Prometheus text, every name `sluice_…`.
    let r = api.call(Method::GET, "/metrics", As::Nobody, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let text = r.text();
    let value = |line: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(line).map(|v| v.trim().parse::<f64>().expect("a number")))
            .unwrap_or_else(|| panic!("no {line} in\n{text}"))
    };
    assert!(value("sluice_queries_total{outcome=\"ok\"}") >= 2.0, "{text}");
    // The refresh, and the runs each save asked for.
    assert!(value("sluice_discovery_runs_total{outcome=\"ok\"}") >= 1.0, "{text}");
    assert_eq!(value("sluice_pool_sessions{source=\"shop\",kind=\"max\"}"), 5.0, "{text}");
    assert!(value("sluice_http_responses_total{class=\"4xx\"}") >= 9.0, "{text}");
    assert!(text.lines().filter(|l| !l.starts_with('#')).all(|l| l.starts_with("sluice_")), "{text}");

    // No response ever carried the password.
    for body in api.bodies.borrow().iter() {
        let text = String::from_utf8_lossy(body);
        assert!(!text.contains(&t.password), "a response carries the password: {text}");
    }
}

impl Api {
    /// Polls a discovery run until it has finished (bounded), and returns it.
    async fn wait_for_run(&self, token: &str, source: &str, run: i64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        let path = format!("/api/v1/sources/{source}/discoveries/{run}");
        loop {
            let r = self.call(Method::GET, &path, As::Token(token), None).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            let v = r.json();
            if v["state"] != "queued" && v["state"] != "running" {
                return v;
            }
            assert!(Instant::now() < deadline, "the run did not finish: {v}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The newest `n` query entries once all are completed.
async fn wait_for_audit(api: &Api, admin: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = api.call(Method::GET, "/api/v1/audit?kind=query", As::Token(admin), None).await;
        let entries = r.json()["entries"].as_array().cloned().unwrap_or_default();
        if entries.len() >= n && entries[..n].iter().all(|e| !e["finished_at"].is_null()) {
            return entries;
        }
        assert!(Instant::now() < deadline, "the audit entries were not completed: {}", r.text());
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A saved source is discovered without being asked; a source that cannot log in fails at the
/// doctor's `auth` stage, backs off, and says so in its view; fixing its password discovers it
/// again at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_source_is_discovered_and_a_failing_one_keeps_its_stage() {
    let t = target();
    let api = Api::start(Config::default()).await;
    let admin = api.admin_token().await;
    let mut form = api.source_form(&t, "not-the-password");
    form["discovery_interval_secs"] = json!(600);
    let r = api.call(Method::POST, "/api/v1/sources", As::Token(&admin), Some(form)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["discovery"]["interval_secs"], 600, "{}", r.text());
    assert_eq!(r.json()["discovery"]["interval_is_own"], true, "{}", r.text());

    // The first run comes from the save itself.
    let failed = api.wait_for_last_run(&admin, |d| d["failures"].as_u64() >= Some(1)).await;
    assert_eq!(failed["last"]["state"], "failed", "{failed}");
    assert_eq!(failed["last"]["stage"], "auth", "{failed}");
    assert_eq!(failed["last"]["reason"], "schedule", "{failed}");
    assert!(failed["last"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{failed}");
    // Backing off: due again later, within its interval.
    let due = failed["next_due_at"].as_i64().expect("due");
    let finished = failed["last"]["finished_at"].as_i64().expect("finished");
    assert!(due > finished && due <= finished + 600_000, "{failed}");
    let r = api.call(Method::GET, "/api/v1/sources/shop/catalog", As::Token(&admin), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());

    // The right password: discovered again at once, the failures forgotten.
    let r = api
        .call(Method::PATCH, "/api/v1/sources/shop", As::Token(&admin), Some(json!({"password": t.password.clone()})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let ok = api.wait_for_last_run(&admin, |d| d["last"]["state"] == "ok").await;
    assert_eq!((ok["failures"].as_u64(), ok["last"]["changed"].as_bool()), (Some(0), Some(true)), "{ok}");
    assert_eq!(ok["last"]["relations"], 1, "{ok}");
    let r = api.call(Method::GET, "/api/v1/sources/shop/catalog", As::Token(&admin), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

impl Api {
    /// Polls the source `shop` until its discovery status satisfies `done` (bounded).
    async fn wait_for_last_run(&self, token: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = self.call(Method::GET, "/api/v1/sources/shop", As::Token(token), None).await;
            let discovery = r.json()["discovery"].clone();
            if done(&discovery) {
                return discovery;
            }
            assert!(Instant::now() < deadline, "the source's discovery never got there: {discovery}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_4xx_naming_the_field() {
    let t = target();
    let api = Api::start(Config::default()).await;
    let admin = api.admin_token().await;
    let mut form = api.source_form(&t, &t.password);
    let post = |body: Value| api.call(Method::POST, "/api/v1/sources", As::Token(&admin), Some(body));

    form["bogus"] = json!(1);
    post(form.clone()).await.refused(StatusCode::BAD_REQUEST, "bogus");
    form.as_object_mut().expect("object").remove("bogus");
    let mut f = form.clone();
    f["port"] = json!("five");
    post(f).await.refused(StatusCode::BAD_REQUEST, "port");
    let mut f = form.clone();
    f.as_object_mut().expect("object").remove("host");
    post(f).await.refused(StatusCode::BAD_REQUEST, "host");
    let mut f = form.clone();
    f["sslrootcert"] = json!("/etc/passwd");
    post(f).await.refused(StatusCode::BAD_REQUEST, "sslrootcert");
    let mut f = form.clone();
    f["sslmode"] = json!("verify_full");
    post(f).await.refused(StatusCode::BAD_REQUEST, "sslmode");
    let mut f = form.clone();
    f["network"] = json!("ssh");
    f["ssh"] = json!({"user": "jump", "host_key": "SHA256:abcdefghijklmnopqrstuvwxyz"});
    post(f.clone()).await.refused(StatusCode::BAD_REQUEST, "ssh.host");
    f["ssh"]["surprise"] = json!(true);
    post(f).await.refused(StatusCode::BAD_REQUEST, "ssh.surprise");
    let mut f = form.clone();
    f["database"] = json!("");
    post(f).await.refused(StatusCode::BAD_REQUEST, "database");
    let mut f = form.clone();
    f["id"] = json!("Not An Id");
    post(f).await.refused(StatusCode::BAD_REQUEST, "id");
    for interval in [json!(59), json!(0), json!(7 * 86_400 + 1)] {
        let mut f = form.clone();
        f["discovery_interval_secs"] = interval;
        post(f).await.refused(StatusCode::BAD_REQUEST, "discovery_interval_secs");
    }
    let mut f = form.clone();
    f["discovery_interval_secs"] = json!(-5);
    post(f).await.refused(StatusCode::BAD_REQUEST, "discovery_interval_secs");

    // Not JSON, the wrong type, a body too large.
    let mut req = Api::request(Method::POST, "/api/v1/sources", As::Token(&admin), None);
    req.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().expect("header"));
    *req.body_mut() = Body::from("{\"name\": ");
    let r = api.send(req).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "invalid");
    let mut req = Api::request(Method::POST, "/api/v1/sources", As::Token(&admin), None);
    *req.body_mut() = Body::from("name=x");
    assert_eq!(api.send(req).await.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big = json!({"name": "x".repeat(3 << 20)});
    let r = post(big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text());

    let created = post(form).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let query = |body: Value| api.call(Method::POST, "/api/v1/sources/shop/query", As::Token(&admin), Some(body));
    let v = query(json!({"sql": "DELETE FROM customers"})).await.refused(StatusCode::BAD_REQUEST, "sql");
    assert_eq!(v["error"]["code"], "refused");
    let delete_refused = v["error"]["message"].clone();
    let v = query(json!({"sql": "SELECT 1 FROM customers WHERE"})).await.refused(StatusCode::BAD_REQUEST, "sql");
    assert_eq!(v["error"]["code"], "syntax");
    assert_eq!(v["error"]["position"], 30, "{v}");
    assert_eq!(v["error"]["sqlstate"], "42601", "{v}");
    assert!(v["error"]["hint"].is_null(), "{v}");
    // A scanner error, which the gate's parser reports without position or hint: the server's.
    let v = query(json!({"sql": r"SELECT U&'wrong: \061'"})).await.refused(StatusCode::BAD_REQUEST, "sql");
    assert_eq!(v["error"]["code"], "syntax");
    assert_eq!(v["error"]["sqlstate"], "42601", "{v}");
    assert_eq!(v["error"]["position"], 18, "{v}");
    assert!(v["error"]["message"].as_str().is_some_and(|m| m.starts_with("invalid Unicode escape")), "{v}");
    // The server's own words: PostgreSQL 13 gave this error its hint.
    if t.cluster.version_num().expect("version") >= 130000 {
        assert_eq!(v["error"]["hint"], r"Unicode escapes must be \XXXX or \+XXXXXX.", "{v}");
    }
    let v = query(json!({"sql": "SELECT * FROM no_such_table"})).await.refused(StatusCode::BAD_REQUEST, "sql");
    assert_eq!(v["error"]["sqlstate"], "42P01", "{v}");
    // Each refusal is on record as a failed query with its text and reason, newest first.
    let r = api.call(Method::GET, "/api/v1/audit?kind=query&source=shop", As::Token(&admin), None).await;
    let entries = r.json()["entries"].as_array().cloned().unwrap_or_default();
    let seen: Vec<_> =
        entries.iter().map(|e| (e["sql"].as_str().unwrap_or(""), e["outcome"].as_str().unwrap_or(""))).collect();
    assert_eq!(
        seen,
        [
            ("SELECT * FROM no_such_table", "failed"),
            (r"SELECT U&'wrong: \061'", "failed"),
            ("SELECT 1 FROM customers WHERE", "failed"),
            ("DELETE FROM customers", "failed"),
        ],
        "{}",
        r.text()
    );
    let reasons: Vec<_> = entries.iter().map(|e| e["error"].as_str().unwrap_or("")).collect();
    assert!(reasons[1].starts_with("invalid Unicode escape"), "{reasons:?}");
    assert_eq!(json!(reasons[3]), delete_refused, "the audit gives the reason the caller was given");
    // A statement refused for a source that does not exist is a 404, and not on record.
    let r = api
        .call(Method::POST, "/api/v1/sources/nope/query", As::Token(&admin), Some(json!({"sql": "DELETE FROM t"})))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    query(json!({"sql": "SELECT 1", "max_rows": 0})).await.refused(StatusCode::BAD_REQUEST, "max_rows");
    query(json!({"sql": "SELECT 1", "timeout_ms": 0})).await.refused(StatusCode::BAD_REQUEST, "timeout_ms");
    query(json!({"sql": "SELECT 1", "format": "xml"})).await.refused(StatusCode::BAD_REQUEST, "format");
    query(json!({"sql": "SELECT 1", "rows": 5})).await.refused(StatusCode::BAD_REQUEST, "rows");

    let r = api.call(Method::GET, "/api/v1/sources/nope", As::Token(&admin), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    for path in [
        "/api/v1/sources/shop/discoveries/999999",
        "/api/v1/sources/shop/discoveries/x",
        "/api/v1/sources/nope/discoveries",
    ] {
        let r = api.call(Method::GET, path, As::Token(&admin), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text());
    }
    let r = api.call(Method::POST, "/api/v1/sources/nope/refresh", As::Token(&admin), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    let r = api.call(Method::GET, "/api/v1/audit?limit=5000", As::Token(&admin), None).await;
    r.refused(StatusCode::BAD_REQUEST, "limit");
    let r = api.call(Method::GET, "/api/v1/audit?from=yesterday", As::Token(&admin), None).await;
    r.refused(StatusCode::BAD_REQUEST, "from");
    let r = api.call(Method::GET, "/api/v1/audit?kind=query&nope=1", As::Token(&admin), None).await;
    r.refused(StatusCode::BAD_REQUEST, "nope");
    let r = api.call(Method::GET, "/api/v1/nothing-here", As::Token(&admin), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"]["code"], "not_found");
    let r = api.call(Method::GET, "/api/v1/sources", As::Token("sluice_nope_nope"), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Every reply so far carries a request id.
    let r = api.call(Method::GET, "/api/v1/health", As::Nobody, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers.contains_key("x-request-id"));
    let mut req = Api::request(Method::GET, "/api/v1/health", As::Nobody, None);
    req.headers_mut().insert("x-request-id", "trace-42".parse().expect("header"));
    assert_eq!(api.send(req).await.headers["x-request-id"], "trace-42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_need_csrf_sign_out_ends_them_and_failures_are_throttled() {
    let api = Api::start(Config { sign_in_failures: 3, ..Config::default() }).await;
    let _admin = api.admin_token().await;
    let (cookie, csrf) = api.sign_in("ada", "correct horse battery").await;
    let me = api.call(Method::GET, "/api/v1/me", As::Cookie(&cookie, None), None).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["login"], "ada");
    let body = json!({"login": "bob", "password": "another long password", "role": "analyst"});
    let r = api.call(Method::POST, "/api/v1/users", As::Cookie(&cookie, None), Some(body.clone())).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "csrf");
    let r = api.call(Method::POST, "/api/v1/users", As::Cookie(&cookie, Some("forged")), Some(body.clone())).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = api.call(Method::POST, "/api/v1/users", As::Cookie(&cookie, Some(&csrf)), Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());

    // A sign-in from a browser holding a session replaces it (a new id; the old one ends).
    let mut req = Api::request(
        Method::POST,
        "/api/v1/sessions",
        As::Cookie(&cookie, None),
        Some(&json!({"login": "ada", "password": "correct horse battery"})),
    );
    req.headers_mut().insert(header::COOKIE, format!("sluice_session={cookie}").parse().expect("header"));
    let r = api.send(req).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let replaced = api.call(Method::GET, "/api/v1/me", As::Cookie(&cookie, None), None).await;
    assert_eq!(replaced.status, StatusCode::UNAUTHORIZED);
    let (cookie, _csrf) = api.sign_in("ada", "correct horse battery").await;

    // A second sign-in is a new session; signing out ends only that one.
    let (second, second_csrf) = api.sign_in("ada", "correct horse battery").await;
    assert_ne!(second, cookie);
    let r = api.call(Method::DELETE, "/api/v1/sessions/current", As::Cookie(&second, Some(&second_csrf)), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = api.call(Method::GET, "/api/v1/me", As::Cookie(&second, None), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = api.call(Method::GET, "/api/v1/me", As::Cookie(&cookie, None), None).await;
    assert_eq!(r.status, StatusCode::OK);

    // Failed sign-ins: 401 until the limit, then 429 with Retry-After — even with the right password.
    let wrong = json!({"login": "bob", "password": "wrong password!!"});
    for _ in 0..3 {
        let r = api.call(Method::POST, "/api/v1/sessions", As::Nobody, Some(wrong.clone())).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
    }
    let right = json!({"login": "bob", "password": "another long password"});
    let r = api.call(Method::POST, "/api/v1/sessions", As::Nobody, Some(right)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    assert!(r.headers[header::RETRY_AFTER].to_str().expect("ascii").parse::<u64>().is_ok_and(|s| s >= 1));
    let failed = sluice_store::AuditFilter { kind: Some("sign_in.failed".into()), ..Default::default() };
    assert_eq!(api.store.audit(&failed).await.expect("audit").entries.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_query_response_cancels_the_statement() {
    let t = target();
    let (api, admin) = Api::with_shop(Config::default(), &t).await;
    // A set-returning function in the select list streams its rows (in FROM it would first
    // materialize all of them).
    let sql = "SELECT generate_series(1, 200000000) AS g, repeat('x', 200) AS pad";
    let req = Api::request(
        Method::POST,
        "/api/v1/sources/shop/query",
        As::Token(&admin),
        Some(&json!({"sql": sql, "format": "csv"})),
    );
    let response = api.router.clone().oneshot(req).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let first = body.frame().await.expect("a first chunk").expect("frame");
    assert!(first.into_data().is_ok_and(|d| !d.is_empty()));
    let active = "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%generate_series(1, 200000000)%' AND pid <> pg_backend_pid()";
    assert_eq!(t.cluster.psql(DB, active).expect("psql"), "1", "the statement runs while the body is read");
    drop(body);
    let deadline = Instant::now() + Duration::from_secs(30);
    while t.cluster.psql(DB, active).expect("psql") != "0" {
        assert!(Instant::now() < deadline, "the statement still runs after the client went away");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let entries = wait_for_audit(&api, &admin, 1).await;
    assert_eq!(entries[0]["outcome"], "cancelled", "{}", entries[0]);
}

/// A client that goes away before the first row (a browser's Cancel aborts its request) cancels
/// the statement, and the query's audit entry is completed as cancelled, not left open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_abandoned_before_its_first_row_is_cancelled_and_audited() {
    let t = target();
    let (api, admin) = Api::with_shop(Config::default(), &t).await;
    let req = Api::request(
        Method::POST,
        "/api/v1/sources/shop/query",
        As::Token(&admin),
        Some(&json!({"sql": "SELECT pg_sleep(60)", "format": "json"})),
    );
    let request = tokio::spawn(api.router.clone().oneshot(req));
    let active = "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()";
    let deadline = Instant::now() + Duration::from_secs(30);
    while t.cluster.psql(DB, active).expect("psql") != "1" {
        assert!(Instant::now() < deadline, "the statement never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    request.abort();
    assert!(request.await.is_err_and(|e| e.is_cancelled()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while t.cluster.psql(DB, active).expect("psql") != "0" {
        assert!(Instant::now() < deadline, "the statement still runs after the client went away");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let entries = wait_for_audit(&api, &admin, 1).await;
    assert_eq!(entries[0]["outcome"], "cancelled", "{}", entries[0]);
    assert_eq!(entries[0]["sql"], "SELECT pg_sleep(60)", "{}", entries[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_source_answers_429_after_a_bounded_wait() {
    let t = target();
    let config = Config { pool_size: 1, pool_wait: Duration::from_millis(300), ..Config::default() };
    let (api, admin) = Api::with_shop(config, &t).await;
    // The discovery the save asked for takes a session of the pool too: let it finish first.
    api.wait_for_last_run(&admin, |d| d["last"]["state"] == "ok").await;
    // The one session is held by a streaming response nobody reads to the end.
    let long = json!({"sql": "SELECT generate_series(1, 200000000) AS g", "format": "csv"});
    let req = Api::request(Method::POST, "/api/v1/sources/shop/query", As::Token(&admin), Some(&long));
    let response = api.router.clone().oneshot(req).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let mut held = response.into_body();
    assert!(held.frame().await.is_some());
    let r =
        api.call(Method::POST, "/api/v1/sources/shop/query", As::Token(&admin), Some(json!({"sql": "SELECT 1"}))).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    assert!(r.headers.contains_key(header::RETRY_AFTER));
    // Once the first response is gone, its session serves the next request.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = api
            .call(Method::POST, "/api/v1/sources/shop/query", As::Token(&admin), Some(json!({"sql": "SELECT 1"})))
            .await;
        if r.status == StatusCode::OK {
            break;
        }
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
        assert!(Instant::now() < deadline, "the session never came back");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_then_drops_a_query_past_its_grace() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = target();
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        Arc::new(Store::open(&dir.path().join("data").display().to_string(), KeyConfig::DataDir).await.expect("store"));
    let setup = Api::with_store_arc(store.clone(), Config::default());
    let admin = setup.admin_token().await;
    let r =
        setup.call(Method::POST, "/api/v1/sources", As::Token(&admin), Some(setup.source_form(&t, &t.password))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let config = Config { shutdown_grace: Duration::from_millis(500), ..Config::default() };
    let server = tokio::spawn(sluice_server::serve(listener, AppState::new(store.clone(), config), async {
        let _ = stop_rx.await;
    }));
    let body = json!({"sql": "SELECT generate_series(1, 200000000) AS g", "format": "csv"}).to_string();
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "POST /api/v1/sources/shop/query HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes()).await.expect("send");
    let mut first = vec![0u8; 4096];
    let n = conn.read(&mut first).await.expect("read");
    assert!(
        String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&first[..n])
    );

    // The client keeps the response open (reading nothing more); shutdown waits out the grace,
    // then drops the response, which cancels the statement.
    let _ = stop_tx.send(());
    server.await.expect("join").expect("serve ends");
    let active = "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%generate_series(1, 200000000)%' AND pid <> pg_backend_pid()";
    let deadline = Instant::now() + Duration::from_secs(30);
    while t.cluster.psql(DB, active).expect("psql") != "0" {
        assert!(Instant::now() < deadline, "the statement still runs after shutdown");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(conn);
    let entries = wait_for_audit(&setup, &admin, 1).await;
    assert_eq!(entries[0]["outcome"], "cancelled", "{}", entries[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_secure_behind_https_and_a_disabled_user_is_signed_out() {
    let api = Api::start(Config { secure_cookies: true, ..Config::default() }).await;
    let admin = api.admin_token().await;
    let r = api
        .call(
            Method::POST,
            "/api/v1/users",
            As::Token(&admin),
            Some(json!({"login": "bob", "password": "another long password", "role": "analyst"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let bob = r.json()["user"]["id"].clone();
    let r = api
        .call(
            Method::POST,
            "/api/v1/sessions",
            As::Nobody,
            Some(json!({"login": "bob", "password": "another long password"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let cookies: Vec<&str> = r.headers.get_all(header::SET_COOKIE).iter().map(|v| v.to_str().expect("ascii")).collect();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    assert!(cookies.iter().all(|c| c.contains("; Secure")), "{cookies:?}");
    let session = cookies[0].trim_start_matches("sluice_session=").split(';').next().expect("value").to_string();
    let me = api.call(Method::GET, "/api/v1/me", As::Cookie(&session, None), None).await;
    assert_eq!(me.json()["role"], "analyst");
    let r = api.call(Method::DELETE, &format!("/api/v1/users/{bob}"), As::Token(&admin), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let me = api.call(Method::GET, "/api/v1/me", As::Cookie(&session, None), None).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    let r = api.call(Method::DELETE, "/api/v1/users/999999", As::Token(&admin), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    let r = api.call(Method::GET, "/api/v1/audit?kind=user.disable", As::Token(&admin), None).await;
    assert_eq!(r.json()["entries"].as_array().map(Vec::len), Some(1), "{}", r.text());
}

/// The Setup SQL page's script: a generated password answered once (never in the script), a
/// script that really makes a read-only role on the cluster, and bad input refused by field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_sql_writes_a_script_that_makes_a_read_only_role() {
    let t = target();
    let api = Api::start(Config::default()).await;
    let admin = api.admin_token().await;
    let post = |body: Value| api.call(Method::POST, "/api/v1/setup-sql", As::Token(&admin), Some(body));

    let r = post(json!({"user": "web_ro", "database": DB, "schemas": ["public"]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/json");
    let v = r.json();
    let password = v["generated_password"].as_str().expect("a generated password").to_string();
    assert_eq!(password.len(), sluice_doctor::PASSWORD_LEN, "{v}");
    let sql = v["sql"].as_str().expect("sql");
    assert!(!sql.contains(&password), "the script holds only the verifier");
    assert!(sql.contains("GRANT USAGE ON SCHEMA public TO web_ro;"), "{sql}");
    t.cluster.psql(DB, sql).expect("the script runs");
    let seen = t
        .cluster
        .psql_as("web_ro", &password, DB, "SELECT count(*) FROM customers; SHOW default_transaction_read_only;")
        .expect("the role logs in with the generated password");
    assert_eq!(seen.split_whitespace().collect::<Vec<_>>(), ["50", "on"], "{seen}");

    // A given password is used and not answered back; ELT owners and pg_read_all_data.
    let r = post(json!({
        "user": "web_ro", "database": DB, "schemas": [], "read_all_data": true, "server_major": 15,
        "elt_owners": ["etl"], "password": "a password the DBA chose",
    }))
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.json()["generated_password"].is_null(), "{}", r.text());
    assert!(r.text().contains("GRANT pg_read_all_data TO web_ro;"), "{}", r.text());
    assert!(!r.text().contains("a password the DBA chose"), "{}", r.text());

    // Bad input names the field.
    let base = json!({"user": "web_ro", "database": DB, "schemas": ["public"]});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    post(with("user", json!(""))).await.refused(StatusCode::BAD_REQUEST, "user");
    post(with("user", json!("pg_monitor"))).await.refused(StatusCode::BAD_REQUEST, "user");
    post(with("database", json!("x".repeat(64)))).await.refused(StatusCode::BAD_REQUEST, "database");
    post(with("schemas", json!([]))).await.refused(StatusCode::BAD_REQUEST, "schemas");
    post(with("schemas", json!(["a\u{0}b"]))).await.refused(StatusCode::BAD_REQUEST, "schemas");
    post(with("elt_owners", json!([""]))).await.refused(StatusCode::BAD_REQUEST, "elt_owners");
    post(with("password", json!(""))).await.refused(StatusCode::BAD_REQUEST, "password");
    let v = post(json!({"user": "web_ro", "database": DB, "read_all_data": true, "server_major": 13}))
        .await
        .refused(StatusCode::BAD_REQUEST, "read_all_data");
    assert!(v["error"]["hint"].as_str().is_some_and(|h| h.contains("schemas")), "{v}");
    post(with("superuser", json!(true))).await.refused(StatusCode::BAD_REQUEST, "superuser");

    // Audited without the password; administrators only.
    let r = api.call(Method::GET, "/api/v1/audit?kind=setup_sql.generated", As::Token(&admin), None).await;
    let entries = r.json()["entries"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), 2, "{}", r.text());
    assert_eq!(entries[1]["detail"]["password_generated"], true, "{}", r.text());
    assert!(!r.text().contains(&password) && !r.text().contains("a password the DBA chose"), "{}", r.text());
    let r = api
        .call(Method::POST, "/api/v1/tokens", As::Token(&admin), Some(json!({"name": "ana", "role": "analyst"})))
        .await;
    let analyst = r.json()["token"].as_str().expect("token").to_string();
    let r = api.call(Method::POST, "/api/v1/setup-sql", As::Token(&analyst), Some(base)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
}

/// The SQL workspace's history: each caller sees only its own queries, newest first, with how
/// they ended, paged and filtered by source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn my_queries_are_the_callers_own_newest_first() {
    let t = target();
    let (api, admin) = Api::with_shop(Config::default(), &t).await;
    let mut other = api.source_form(&t, &t.password);
    other["id"] = json!("other");
    other["name"] = json!("Other");
    let r = api.call(Method::POST, "/api/v1/sources", As::Token(&admin), Some(other)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let body = json!({"login": "bob", "password": "another long password", "role": "analyst"});
    let r = api.call(Method::POST, "/api/v1/users", As::Token(&admin), Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let (bob, csrf) = api.sign_in("bob", "another long password").await;

    async fn run(api: &Api, who: As<'_>, source: &str, sql: &str) -> Reply {
        let path = format!("/api/v1/sources/{source}/query");
        api.call(Method::POST, &path, who, Some(json!({"sql": sql}))).await
    }
    assert_eq!(run(&api, As::Token(&admin), "shop", "SELECT 'admin'").await.status, StatusCode::OK);
    let bob_as = As::Cookie(&bob, Some(&csrf));
    assert_eq!(run(&api, bob_as, "shop", "SELECT id FROM customers ORDER BY id").await.status, StatusCode::OK);
    let r = run(&api, bob_as, "shop", "SELECT 1 / 0").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(run(&api, bob_as, "other", "SELECT 'elsewhere'").await.status, StatusCode::OK);

    async fn mine(api: &Api, who: As<'_>, query: &str) -> Reply {
        api.call(Method::GET, &format!("/api/v1/me/queries{query}"), who, None).await
    }
    // Completed entries only once every body has ended.
    let deadline = Instant::now() + Duration::from_secs(30);
    let queries = loop {
        let r = mine(&api, As::Cookie(&bob, None), "").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let queries = r.json()["queries"].as_array().cloned().unwrap_or_default();
        if queries.len() == 3 && queries.iter().all(|q| q["finished_at"].is_i64()) {
            break queries;
        }
        assert!(Instant::now() < deadline, "bob's queries were not completed: {}", r.text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let sqls: Vec<&str> = queries.iter().filter_map(|q| q["sql"].as_str()).collect();
    assert_eq!(sqls, ["SELECT 'elsewhere'", "SELECT 1 / 0", "SELECT id FROM customers ORDER BY id"]);
    assert_eq!((queries[2]["outcome"].as_str(), queries[2]["rows"].as_i64()), (Some("ok"), Some(50)), "{queries:?}");
    assert_eq!(queries[1]["outcome"], "failed", "{queries:?}");
    assert!(queries[1]["error"].as_str().is_some_and(|e| e.contains("division by zero")), "{queries:?}");
    assert_eq!(queries[0]["source"], "other");

    // Paged, and filtered by source.
    let r = mine(&api, As::Cookie(&bob, None), "?limit=2").await;
    let page = r.json();
    assert_eq!(page["queries"].as_array().map(Vec::len), Some(2), "{page}");
    let next = page["next"].as_i64().expect("a next page");
    let r = mine(&api, As::Cookie(&bob, None), &format!("?limit=2&cursor={next}")).await;
    assert_eq!(r.json()["queries"][0]["sql"], "SELECT id FROM customers ORDER BY id", "{}", r.text());
    assert!(r.json()["next"].is_null(), "{}", r.text());
    let r = mine(&api, As::Cookie(&bob, None), "?source=other").await;
    assert_eq!(r.json()["queries"].as_array().map(Vec::len), Some(1), "{}", r.text());

    // The administrator's own history holds only its query.
    let r = mine(&api, As::Token(&admin), "").await;
    let sqls: Vec<Value> = r.json()["queries"].as_array().expect("queries").iter().map(|q| q["sql"].clone()).collect();
    assert_eq!(sqls, [json!("SELECT 'admin'")], "{}", r.text());

    // Bad parameters name themselves; no caller, no history.
    mine(&api, As::Token(&admin), "?limit=0").await.refused(StatusCode::BAD_REQUEST, "limit");
    mine(&api, As::Token(&admin), "?limit=many").await.refused(StatusCode::BAD_REQUEST, "limit");
    mine(&api, As::Token(&admin), "?source=Not%20An%20Id").await.refused(StatusCode::BAD_REQUEST, "source");
    mine(&api, As::Token(&admin), "?user=bob").await.refused(StatusCode::BAD_REQUEST, "user");
    assert_eq!(mine(&api, As::Nobody, "").await.status, StatusCode::UNAUTHORIZED);
}

/// A browser's export is a plain form POST (no headers): the session's CSRF token travels in the
/// form and is checked as the header would be; the answer is an attachment streamed in the
/// format asked for, the same bytes as the JSON request's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_post_streams_a_download_with_the_csrf_token_in_the_form() {
    let t = target();
    let (api, _) = Api::with_shop(Config { interactive_max_rows: 10, ..Config::default() }, &t).await;
    let (cookie, csrf) = api.sign_in("ada", "correct horse battery").await;
    let sql = "SELECT id, name, note FROM customers ORDER BY id";
    let form = |fields: &[(&str, &str)]| {
        let body: String =
            fields.iter().map(|(k, v)| format!("{k}={}", percent_encode(v))).collect::<Vec<_>>().join("&");
        Request::builder()
            .method(Method::POST)
            .uri("/api/v1/sources/shop/query")
            .header(header::COOKIE, format!("sluice_session={cookie}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .expect("request")
    };

    let r = api.send(form(&[("sql", sql), ("format", "csv"), ("csrf_token", &csrf)])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert_eq!(r.headers[header::CONTENT_DISPOSITION], "attachment; filename=\"shop-query.csv\"");
    let psql = t.cluster.psql_csv(DB, sql, "UTF8").expect("psql --csv");
    assert_eq!(r.body, psql, "the download is psql --csv's bytes");

    // JSON as a download: an attachment, and not capped at the interactive limit (10 here).
    let r = api.send(form(&[("sql", sql), ("format", "json"), ("csrf_token", &csrf)])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.headers[header::CONTENT_DISPOSITION], "attachment; filename=\"shop-query.json\"");
    assert_eq!(r.json()["rows"].as_array().map(Vec::len), Some(50), "{}", r.text());
    assert_eq!(r.json()["truncated"], false);
    let capped = api
        .call(Method::POST, "/api/v1/sources/shop/query", As::Cookie(&cookie, Some(&csrf)), Some(json!({"sql": sql})))
        .await;
    assert_eq!(capped.json()["rows"].as_array().map(Vec::len), Some(10), "{}", capped.text());
    assert!(capped.headers.get(header::CONTENT_DISPOSITION).is_none());

    // Without the token, with a wrong one, or with the token only in a header: refused.
    for fields in [
        vec![("sql", sql), ("format", "csv"), ("csrf_token", "")],
        vec![("sql", sql), ("format", "csv"), ("csrf_token", "not-the-token")],
    ] {
        let r = api.send(form(&fields)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
        assert_eq!(r.json()["error"]["code"], "csrf", "{}", r.text());
    }
    let mut with_header = form(&[("sql", sql), ("format", "csv")]);
    with_header.headers_mut().insert("x-csrf-token", csrf.parse().expect("header"));
    let r = api.send(with_header).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "a form without csrf_token is incomplete: {}", r.text());
    let r = api.send(form(&[("sql", sql), ("csrf_token", &csrf), ("password", "x")])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.json()["error"]["message"].as_str().is_some_and(|m| m.contains("password")), "{}", r.text());
    // A refused statement is a JSON error, as for JSON requests.
    let r = api.send(form(&[("sql", "DELETE FROM customers"), ("format", "csv"), ("csrf_token", &csrf)])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "refused", "{}", r.text());
    // No session at all: 401.
    let anonymous = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/sources/shop/query")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("sql=SELECT+1&csrf_token={csrf}")))
        .expect("request");
    assert_eq!(api.send(anonymous).await.status, StatusCode::UNAUTHORIZED);
}

/// `application/x-www-form-urlencoded` encoding of a value.
fn percent_encode(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
