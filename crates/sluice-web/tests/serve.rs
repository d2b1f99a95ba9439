//! The embedded web workspace as a browser meets it: the page on every client route, hashed
//! assets cached for good, misses under `/assets/` never answered with the page, gzip when
//! accepted, revalidation by ETag, and the security headers on every answer.

use std::io::Read;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::response::Response;
use axum::Router;
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn get(path: &str, headers: &[(header::HeaderName, &str)]) -> Response {
    send(Method::GET, path, headers).await
}

async fn send(method: Method, path: &str, headers: &[(header::HeaderName, &str)]) -> Response {
    let mut req = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        req = req.header(name, *value);
    }
    let app: Router = Router::new().fallback(sluice_web::serve);
    app.oneshot(req.body(Body::empty()).expect("request")).await.expect("infallible")
}

async fn body(response: Response) -> Vec<u8> {
    response.into_body().collect().await.expect("body").to_bytes().to_vec()
}

fn header<'a>(response: &'a Response, name: &str) -> &'a str {
    response.headers().get(name).map(|v| v.to_str().expect("ascii")).unwrap_or("")
}

fn assert_security_headers(response: &Response) {
    let csp = header(response, "content-security-policy");
    for directive in ["default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"] {
        assert!(csp.contains(directive), "CSP lacks {directive}: {csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    assert_eq!(header(response, "x-content-type-options"), "nosniff");
    assert_eq!(header(response, "referrer-policy"), "no-referrer");
    assert_eq!(header(response, "x-frame-options"), "DENY");
}

/// The `/assets/…` paths index.html loads.
fn referenced_assets(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for (i, _) in html.match_indices(attr) {
            let rest = &html[i + attr.len()..];
            let end = rest.find('"').expect("closing quote");
            if rest[..end].starts_with("/assets/") {
                out.push(rest[..end].to_string());
            }
        }
    }
    out
}

#[tokio::test]
async fn the_page_is_served_on_its_own_and_on_client_routes() {
    let root = get("/", &[]).await;
    assert_eq!(root.status(), StatusCode::OK);
    assert_eq!(header(&root, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&root, "cache-control"), "no-cache");
    assert_security_headers(&root);
    let page = String::from_utf8(body(root).await).expect("utf-8");
    assert!(page.contains("<div id=\"app\">"), "{page}");

    for route in ["/index.html", "/signin", "/sources/01HXYZ", "/query/abc?x=1", "/setup?token=t", "/users/"] {
        let response = get(route, &[]).await;
        assert_eq!(response.status(), StatusCode::OK, "{route}");
        assert_eq!(header(&response, "cache-control"), "no-cache", "{route}");
        assert_security_headers(&response);
        assert_eq!(String::from_utf8(body(response).await).expect("utf-8"), page, "{route}");
    }
}

#[tokio::test]
async fn the_page_has_no_inline_script_or_style() {
    let page = String::from_utf8(body(get("/", &[]).await).await).expect("utf-8");
    for (i, _) in page.match_indices("<script") {
        let tag = &page[i..i + page[i..].find('>').expect("tag end")];
        assert!(tag.contains(" src=\"/assets/"), "inline script: {tag}");
        assert!(page[i..].starts_with(&format!("{tag}></script>")), "script with content: {tag}");
    }
    assert!(!page.contains("<style"), "inline style element");
    assert!(!page.contains(" style="), "inline style attribute");
    let assets = referenced_assets(&page);
    assert!(assets.iter().any(|a| a.ends_with(".js")), "no script bundle in {assets:?}");
    assert!(assets.iter().any(|a| a.ends_with(".css")), "no style sheet in {assets:?}");
}

#[tokio::test]
async fn hashed_assets_are_immutable_typed_and_gzipped_when_accepted() {
    let page = String::from_utf8(body(get("/", &[]).await).await).expect("utf-8");
    let mut compressed_seen = 0;
    for asset in referenced_assets(&page) {
        let plain = get(&asset, &[]).await;
        assert_eq!(plain.status(), StatusCode::OK, "{asset}");
        assert_eq!(header(&plain, "cache-control"), "public, max-age=31536000, immutable", "{asset}");
        let expected_type =
            if asset.ends_with(".js") { "text/javascript; charset=utf-8" } else { "text/css; charset=utf-8" };
        assert_eq!(header(&plain, "content-type"), expected_type, "{asset}");
        assert_eq!(header(&plain, "content-encoding"), "", "{asset}");
        assert_security_headers(&plain);
        let plain_etag = header(&plain, "etag").to_string();
        let plain_bytes = body(plain).await;
        assert_eq!(
            plain_bytes,
            std::fs::read(format!("{}/../../web/dist{asset}", env!("CARGO_MANIFEST_DIR"))).expect("dist file"),
            "{asset} is the committed file"
        );

        let zipped = get(&asset, &[(header::ACCEPT_ENCODING, "gzip, deflate, br")]).await;
        assert_eq!(zipped.status(), StatusCode::OK);
        if plain_bytes.len() >= 1024 {
            assert_eq!(header(&zipped, "content-encoding"), "gzip", "{asset}");
            assert_eq!(header(&zipped, "vary"), "accept-encoding");
            assert_ne!(header(&zipped, "etag"), plain_etag, "each encoding has its own tag");
            let compressed = body(zipped).await;
            assert!(compressed.len() < plain_bytes.len(), "{asset}: {} >= {}", compressed.len(), plain_bytes.len());
            let mut unzipped = Vec::new();
            flate2::read::GzDecoder::new(&compressed[..]).read_to_end(&mut unzipped).expect("gzip");
            assert_eq!(unzipped, plain_bytes, "{asset} unzips to the file");
            compressed_seen += 1;
        } else {
            assert_eq!(header(&zipped, "content-encoding"), "", "{asset} is too small to compress");
        }
    }
    assert!(compressed_seen > 0, "the bundles exceed 1 KiB, so some asset must have been compressed");
}

#[tokio::test]
async fn a_missing_asset_is_a_plain_404_not_the_page() {
    for path in ["/assets/index-00000000.js", "/assets/", "/assets/../index.html"] {
        let response = get(path, &[]).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(header(&response, "content-type"), "text/plain; charset=utf-8", "{path}");
        assert_security_headers(&response);
        assert!(!String::from_utf8(body(response).await).expect("utf-8").contains("<html"), "{path}");
    }
}

#[tokio::test]
async fn revalidation_answers_304_by_etag() {
    let first = get("/", &[]).await;
    let etag = header(&first, "etag").to_string();
    assert!(etag.starts_with('"') && etag.len() > 10, "{etag}");
    let again = get("/sources", &[(header::IF_NONE_MATCH, etag.as_str())]).await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header(&again, "cache-control"), "no-cache");
    assert_security_headers(&again);
    assert!(body(again).await.is_empty());
    let stale = get("/", &[(header::IF_NONE_MATCH, "\"0000\"")]).await;
    assert_eq!(stale.status(), StatusCode::OK);
}

#[tokio::test]
async fn head_has_no_body_and_other_methods_are_refused() {
    let head = send(Method::HEAD, "/", &[]).await;
    assert_eq!(head.status(), StatusCode::OK);
    let length: usize = header(&head, "content-length").parse().expect("content-length");
    assert!(length > 0);
    assert!(body(head).await.is_empty());

    for method in [Method::POST, Method::PUT, Method::DELETE] {
        let response = send(method.clone(), "/sources", &[]).await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(header(&response, "allow"), "GET, HEAD");
        assert_security_headers(&response);
    }
}

#[test]
fn the_build_embeds_the_committed_dist() {
    let files = sluice_web::files();
    assert!(files.contains(&"index.html".to_string()), "{files:?}");
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/dist");
    let mut on_disk = Vec::new();
    let mut dirs = vec![dist.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("web/dist") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                on_disk.push(path.strip_prefix(&dist).expect("under dist").to_string_lossy().replace('\\', "/"));
            }
        }
    }
    on_disk.sort();
    assert_eq!(files, on_disk);
}
