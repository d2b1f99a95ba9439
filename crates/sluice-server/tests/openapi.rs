//! The OpenAPI document: the committed `docs/openapi.json` is exactly what the code generates,
//! it is well-formed OpenAPI 3.1 (every `$ref` resolves), it states what the API enforces, and
//! the service serves it. Regenerate the committed copy with
//! `SLUICE_BLESS=1 cargo nextest run -p sluice-server --test openapi`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use sluice_server::{AppState, Config};
use sluice_store::{KeyConfig, Store};
use tower::ServiceExt;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

fn generated() -> Value {
    serde_json::from_str(&sluice_server::openapi::document_json()).expect("the document is JSON")
}

#[test]
fn committed_document_is_current() {
    let text = sluice_server::openapi::document_json();
    let path = committed_path();
    if std::env::var_os("SLUICE_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("docs directory");
        std::fs::write(&path, &text).expect("write docs/openapi.json");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != text {
        let first = committed
            .lines()
            .zip(text.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(text.lines().count()));
        panic!(
            "docs/openapi.json differs from the document the code generates (first at line {}); \
             regenerate it with `SLUICE_BLESS=1 cargo nextest run -p sluice-server --test openapi` \
             and commit it",
            first + 1
        );
    }
}

/// Every `$ref` in `v`, collected.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    out.push(v.as_str().expect("a $ref is a string").to_string());
                } else {
                    refs(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// A local JSON pointer resolved in `doc`.
fn resolve<'a>(doc: &'a Value, pointer: &str) -> Option<&'a Value> {
    doc.pointer(pointer.strip_prefix('#')?)
}

#[test]
fn document_is_openapi_3_1_and_every_ref_resolves() {
    let doc = generated();
    let version = doc["openapi"].as_str().expect("openapi field");
    assert!(version.starts_with("3.1."), "openapi is {version}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let paths = doc["paths"].as_object().expect("paths");
    assert!(!paths.is_empty());
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(found.len() > 20, "suspiciously few $refs: {found:?}");
    for r in &found {
        assert!(r.starts_with("#/"), "{r} is not local");
        assert!(resolve(&doc, r).is_some(), "{r} does not resolve");
    }
    // Every operation has its own id, at least one response, and each path parameter declared.
    let mut ids = BTreeSet::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(ids.insert(id), "operationId {id} is used twice");
            assert!(!op["responses"].as_object().expect("responses").is_empty(), "{method} {path}");
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .map(|ps| ps.iter().filter(|p| p["in"] == "path").filter_map(|p| p["name"].as_str()).collect())
                .unwrap_or_default();
            let in_path: BTreeSet<&str> =
                path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).collect();
            assert_eq!(declared, in_path, "{method} {path}: path parameters");
        }
    }
    // The resolver itself fails on what does not exist.
    assert!(resolve(&doc, "#/components/schemas/NoSuchSchema").is_none());
}

#[test]
fn document_states_the_api_rules() {
    let doc = generated();
    let schemas = &doc["components"]["schemas"];
    // JSON bodies refuse unknown fields, and the document says so.
    for name in
        ["SourceForm", "SshForm", "SetupBody", "SignInBody", "NewUserBody", "NewTokenBody", "QueryBody", "NewSshKey"]
    {
        assert_eq!(schemas[name]["additionalProperties"], Value::Bool(false), "{name}");
    }
    let error = &schemas["ErrorDetail"];
    let required: Vec<&str> =
        error["required"].as_array().expect("required").iter().filter_map(Value::as_str).collect();
    for f in ["code", "message", "field"] {
        assert!(required.contains(&f), "ErrorDetail requires {f}: {required:?}");
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["session"]["in"], "cookie");
    assert_eq!(schemes["session"]["name"], sluice_server::auth::SESSION_COOKIE);
    assert_eq!(schemes["csrf"]["in"], "header");
    assert!(schemes["csrf"]["name"].as_str().expect("name").eq_ignore_ascii_case(sluice_server::auth::CSRF_HEADER));
    let paths = &doc["paths"];
    // A state-changing request with a session needs the CSRF header; a read does not.
    let post = &paths["/api/v1/sources"]["post"];
    assert_eq!(post["security"], serde_json::json!([{"bearer": []}, {"session": [], "csrf": []}]));
    assert_eq!(paths["/api/v1/sources"]["get"]["security"], serde_json::json!([{"bearer": []}, {"session": []}]));
    for code in ["400", "401", "403", "413", "415"] {
        assert!(post["responses"][code].is_object(), "POST /sources documents {code}");
    }
    // Open endpoints carry no security requirement.
    for (path, method) in [("/api/v1/health", "get"), ("/api/v1/setup", "post"), ("/api/v1/sessions", "post")] {
        assert!(paths[path][method]["security"].is_null(), "{method} {path}");
        assert!(paths[path][method]["responses"]["401"].is_null() || path == "/api/v1/sessions");
    }
    let query = &paths["/api/v1/sources/{id}/query"]["post"]["responses"]["200"]["content"];
    let types: BTreeSet<&str> = query.as_object().expect("content").keys().map(String::as_str).collect();
    assert_eq!(
        types,
        BTreeSet::from([
            "application/json",
            "application/vnd.apache.arrow.stream",
            "application/vnd.apache.parquet",
            "application/x-ndjson",
            "text/csv",
        ])
    );
    let audit: BTreeSet<&str> = paths["/api/v1/audit"]["get"]["parameters"]
        .as_array()
        .expect("audit parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(audit, BTreeSet::from(["cursor", "from", "kind", "limit", "source", "to", "user"]));
}

/// Routes are registered only through `utoipa_axum::routes!`, which takes annotated handlers
/// alone; a plain axum `.route(` would serve a handler the document does not know.
#[test]
fn no_route_bypasses_the_document() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src];
    let mut seen = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read source");
            seen += 1;
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                for banned in [".route(", ".route_service(", "axum::routing::", "routing::{"] {
                    assert!(
                        !code.contains(banned),
                        "{}:{}: `{banned}` registers a route outside the OpenAPI document; use \
                         `.routes(routes!(handler))` with a `#[utoipa::path]` handler",
                        path.display(),
                        n + 1
                    );
                }
            }
        }
    }
    assert!(seen > 5);
}

#[tokio::test]
async fn the_service_serves_the_document_without_credentials() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("data").display().to_string(), KeyConfig::DataDir).await.expect("store");
    let router = sluice_server::router(AppState::new(Arc::new(store), Config::default()));
    let response = router
        .oneshot(Request::get("/api/v1/openapi.json").body(Body::empty()).expect("request"))
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let body = response.into_body().collect().await.expect("body").to_bytes();
    let served: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(served, generated());
}
