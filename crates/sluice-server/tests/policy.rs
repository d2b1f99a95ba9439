//! The service's network policy through the API: the store's own server, a configured deny range
//! and an allow list each decide what Test Connection, discovery and queries may dial; a refused
//! source fails the `dns` check and nothing is sent to it.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sluice_connect::NetworkPolicy;
use sluice_server::{AppState, Config, Scheduler, StoreDenial};
use sluice_store::{KeyConfig, Store};
use sluice_testkit::Cluster;
use tower::ServiceExt;

struct Api {
    router: Router,
    token: String,
    _dir: tempfile::TempDir,
    _scheduler: Scheduler,
}

impl Api {
    /// A SQLite store in a temporary directory, unless `store` is given; an admin API token.
    async fn start(store: Option<Store>, config: Config) -> Api {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = match store {
            Some(s) => s,
            None => {
                Store::open(&dir.path().join("data").display().to_string(), KeyConfig::DataDir).await.expect("store")
            }
        };
        let store = Arc::new(store);
        let user = store
            .create_user("ada", sluice_store::Role::Admin, &sluice_core::Secret::new("correct horse battery"))
            .await
            .expect("user");
        let (_, token) = store
            .create_token(&sluice_store::NewApiToken {
                name: "t".into(),
                role: sluice_store::TokenRole::Admin,
                source: None,
                created_by: Some(user.id),
            })
            .await
            .expect("token");
        let state = AppState::new(store, config);
        let router = sluice_server::router(state.clone());
        // As `serve` does; its discoveries go through the same policy.
        let scheduler = Scheduler::start(state);
        Api { router, token: token.expose().to_string(), _dir: dir, _scheduler: scheduler }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::CONTENT_TYPE, "application/json");
        let req = match body {
            Some(b) => req.body(Body::from(serde_json::to_vec(&b).expect("json"))),
            None => req.body(Body::empty()),
        }
        .expect("request");
        let response = self.router.clone().oneshot(req).await.expect("infallible");
        let status = response.status();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
        (status, value)
    }

    /// Saves a source at `host:port` with a password login and no TLS.
    async fn source(&self, id: &str, host: &str, port: u16, user: &str, password: &str, database: &str) {
        let form = json!({
            "id": id, "name": id, "network": "direct", "host": host, "port": port,
            "database": database, "user": user, "password": password, "sslmode": "disable",
        });
        let (status, v) = self.call(Method::POST, "/api/v1/sources", Some(form)).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
    }
}

fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"].as_array().and_then(|c| c.iter().find(|c| c["id"] == id)).unwrap_or_else(|| panic!("{report}"))
}

/// The saved source's Test Connection fails `dns` with `reason` and skips the rest; its query
/// and refresh are refused at the `dns` stage too.
async fn refused_everywhere(api: &Api, id: &str, reason: &str) {
    let (status, report) = api.call(Method::POST, &format!("/api/v1/sources/{id}/test"), None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["ok"], false, "{report}");
    let dns = check(&report, "dns");
    assert_eq!(dns["status"], "fail", "{report}");
    assert!(dns["summary"].as_str().is_some_and(|s| s.contains(reason)), "{dns}");
    for later in ["tcp", "tls", "auth"] {
        assert_eq!(check(&report, later)["status"], "skip", "{later}: {report}");
    }
    let (status, v) =
        api.call(Method::POST, &format!("/api/v1/sources/{id}/query"), Some(json!({"sql": "SELECT 1"}))).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{v}");
    assert_eq!(v["error"]["field"], "stage.dns", "{v}");
    assert!(v["error"]["message"].as_str().is_some_and(|m| m.contains(reason)), "{v}");
    let (status, v) = api.call(Method::POST, &format!("/api/v1/sources/{id}/refresh"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let path = format!("/api/v1/sources/{id}/discoveries/{}", v["run"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let run = loop {
        let (status, run) = api.call(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{run}");
        if run["state"] != "queued" && run["state"] != "running" {
            break run;
        }
        assert!(std::time::Instant::now() < deadline, "the run did not finish: {run}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!((&run["state"], &run["stage"]), (&json!("failed"), &json!("dns")), "{run}");
    assert!(run["message"].as_str().is_some_and(|m| m.contains(reason)), "{run}");
}

/// Whether anything dialled the listener.
fn dialled(l: &TcpListener) -> bool {
    !matches!(l.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.set_nonblocking(true).expect("non-blocking");
    let port = l.local_addr().expect("addr").port();
    (l, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgresql_stores_own_server_is_refused_to_sources() {
    let cluster = Cluster::start_default().expect("cluster");
    if cluster.version_num().expect("version") < 120_000 {
        return; // a store below PostgreSQL 12 is refused (tested with the store)
    }
    cluster.create_database("sluice_store").expect("store database");
    let url = cluster.superuser_url("sluice_store");
    let store =
        Store::open(&url, KeyConfig::Key(sluice_store::MasterKey::generate().expect("key"))).await.expect("store");
    let mut config = Config::default();
    let denial = config.deny_store(store.location()).await.expect("resolve the store's host");
    let StoreDenial::Denied(addrs) = denial else { panic!("{denial:?}") };
    assert_eq!(addrs, vec![format!("127.0.0.1:{}", cluster.port()).parse().expect("addr")]);
    let api = Api::start(Some(store), config).await;

    // The store's own server, with the store's own credentials: refused before any packet.
    api.source("store", "127.0.0.1", cluster.port(), "postgres", "x", "sluice_store").await;
    refused_everywhere(&api, "store", &format!("it denies the address 127.0.0.1:{}", cluster.port())).await;
    // By another name of the same address too (0.0.0.0 dials this machine).
    api.source("store2", "0.0.0.0", cluster.port(), "postgres", "x", "sluice_store").await;
    refused_everywhere(&api, "store2", "it denies the address").await;
    // An unsaved form as well.
    let form = json!({"network": "direct", "host": "127.0.0.1", "port": cluster.port(), "database": "sluice_store",
        "user": "postgres", "password": "x", "sslmode": "disable"});
    let (_, report) = api.call(Method::POST, "/api/v1/sources/test", Some(form)).await;
    assert_eq!(check(&report, "dns")["status"], "fail", "{report}");
    assert_eq!(check(&report, "tcp")["status"], "skip", "{report}");

    // Another port of the same host is another server: dialled (the tcp check reaches it).
    let (l, port) = listener();
    let form = json!({"network": "direct", "host": "127.0.0.1", "port": port, "database": "d",
        "user": "u", "password": "x", "sslmode": "disable", "connect_timeout_secs": 1});
    let (_, report) = api.call(Method::POST, "/api/v1/sources/test", Some(form)).await;
    assert_eq!(check(&report, "dns")["status"], "pass", "{report}");
    assert!(dialled(&l), "another port of the store's host was not dialled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_range_refuses_a_loopback_source_through_the_api() {
    let (l, port) = listener();
    let network = NetworkPolicy::parse(&["127.0.0.0/8", "::1/128"], &[], &[]).expect("policy");
    let api = Api::start(None, Config { network, ..Config::default() }).await;
    api.source("local", "127.0.0.1", port, "u", "x", "d").await;
    refused_everywhere(&api, "local", "it denies 127.0.0.0/8").await;
    api.source("byname", "localhost", port, "u", "x", "d").await;
    refused_everywhere(&api, "byname", "the network policy refuses").await;
    assert!(!dialled(&l), "a refused address was dialled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allow_list_admits_only_what_it_names() {
    let cluster = Cluster::start_default().expect("cluster");
    cluster.create_login("reader", "reader-pw").expect("login");
    // As `sluice serve --allow-cidr 127.0.0.1/32` makes it: the default deny list, and the allow list.
    let network = NetworkPolicy { allow: vec!["127.0.0.1/32".parse().expect("range")], ..NetworkPolicy::default() };
    let api = Api::start(None, Config { network, pool_wait: Duration::from_secs(5), ..Config::default() }).await;

    api.source("allowed", "127.0.0.1", cluster.port(), "reader", "reader-pw", "postgres").await;
    let (status, report) = api.call(Method::POST, "/api/v1/sources/allowed/test", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(check(&report, "dns")["status"], "pass", "{report}");
    assert_eq!(check(&report, "auth")["status"], "pass", "{report}");
    let (status, v) =
        api.call(Method::POST, "/api/v1/sources/allowed/query", Some(json!({"sql": "SELECT 41 + 1 AS n"}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(v.to_string().contains("42"), "{v}");

    // 127.0.0.2 is loopback too, but not in the list.
    let (l, port) = {
        let l = TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
        l.set_nonblocking(true).expect("non-blocking");
        let port = l.local_addr().expect("addr").port();
        (l, port)
    };
    api.source("other", "127.0.0.2", port, "reader", "reader-pw", "postgres").await;
    refused_everywhere(&api, "other", "it allows only 127.0.0.1/32").await;
    assert!(!dialled(&l), "an address outside the allow list was dialled");
    // Deny wins over allow: the metadata service stays refused by the default list.
    api.source("metadata", "169.254.169.254", 80, "u", "x", "d").await;
    refused_everywhere(&api, "metadata", "it denies 169.254.0.0/16").await;
}
