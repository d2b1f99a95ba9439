//! The service mounts the web workspace on every path outside its API: pages and assets there,
//! while a miss under `/api/` or `/metrics` stays a JSON 404 and the API's own answers stay JSON.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::response::Response;
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use sluice_server::{AppState, Config};
use sluice_store::{KeyConfig, Store};
use tower::ServiceExt;

async fn service() -> (tempfile::TempDir, Router) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("data").display().to_string(), KeyConfig::DataDir).await.expect("store");
    (dir, sluice_server::router(AppState::new(Arc::new(store), Config::default())))
}

async fn send(router: &Router, method: Method, path: &str) -> Response {
    let req = Request::builder().method(method).uri(path).body(Body::empty()).expect("request");
    router.clone().oneshot(req).await.expect("infallible")
}

fn content_type(response: &Response) -> String {
    response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
}

#[tokio::test]
async fn api_misses_stay_json_404s() {
    let (_dir, router) = service().await;
    for path in ["/api", "/api/", "/api/v2/sources", "/api/v1/nope", "/api/v1/sources/x/nope", "/metrics/x"] {
        let response = send(&router, Method::GET, path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(content_type(&response), "application/json", "{path}");
        assert!(response.headers().contains_key("x-request-id"), "{path}");
        let body = response.into_body().collect().await.expect("body").to_bytes();
        let json: Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(json["error"]["code"], "not_found", "{path}: {json}");
    }
    let posted = send(&router, Method::POST, "/api/v1/nope").await;
    assert_eq!(posted.status(), StatusCode::NOT_FOUND);
    assert_eq!(content_type(&posted), "application/json");
}

#[tokio::test]
async fn other_paths_get_the_page_with_its_headers() {
    let (_dir, router) = service().await;
    for path in ["/", "/signin", "/sources/new", "/apis", "/metricsx", "/audit?user=a"] {
        let response = send(&router, Method::GET, path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(content_type(&response), "text/html; charset=utf-8", "{path}");
        let csp = response.headers().get("content-security-policy").expect("CSP").to_str().expect("ascii");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(response.headers().contains_key("x-request-id"), "{path}");
    }
    let api = send(&router, Method::GET, "/api/v1/openapi.json").await;
    assert_eq!(api.status(), StatusCode::OK);
    assert_eq!(content_type(&api), "application/json");
    let metrics = send(&router, Method::GET, "/metrics").await;
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(content_type(&metrics).starts_with("text/plain"), "{}", content_type(&metrics));
}
