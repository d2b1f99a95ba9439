//! The web workspace's front end: the built assets of `web/` (`web/dist`, committed), embedded in
//! the binary with rust-embed and served by [`serve`], which `sluice-server` mounts for every path
//! outside its API.
//!
//! What a path gets: `/` and any path that names no file get `index.html` (the pages route on the
//! client), revalidated on every load (`no-cache`); the hashed bundles under `/assets/` are
//! immutable for a year, and a miss there is a plain 404 (never the page, which a script tag would
//! then try to run); other files (the icon) are revalidated by their `ETag`. Text is sent gzipped
//! to clients that accept it, compressed once per file and kept. Every response carries the
//! security headers ([`SECURITY_HEADERS`]): a Content-Security-Policy that allows no inline script
//! or style and no framing, `nosniff`, no referrer.
//!
//! Must not do: know the API, sessions or anything of the store; answer for `/api/` paths (the
//! server keeps those JSON).

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use rust_embed::{Embed, EmbeddedFile};

#[derive(Embed)]
#[folder = "../../web/dist"]
struct Assets;

/// The page's Content-Security-Policy: scripts, styles and connections from this origin only,
/// nothing inline, no framing, no `<base>`, forms posting only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The headers on every response of this crate.
pub const SECURITY_HEADERS: [(&str, &str); 4] = [
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
];

/// `Cache-Control` of the content-hashed bundles under `/assets/`.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of `index.html` and the other unhashed files.
pub const REVALIDATE: &str = "no-cache";

/// Smaller files are sent as they are: compressing them saves less than its headers cost.
const COMPRESS_FROM: usize = 1024;

/// The embedded file names, sorted (for diagnostics and tests).
pub fn files() -> Vec<String> {
    let mut names: Vec<String> = Assets::iter().map(|name| name.into_owned()).collect();
    names.sort();
    names
}

/// Answers a request for a page or an asset (any method; only GET and HEAD are served).
pub async fn serve(req: Request) -> Response {
    respond(req.method(), req.uri().path(), req.headers())
}

fn respond(method: &Method, path: &str, request: &HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD are served here\n");
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let name = path.trim_start_matches('/');
    let (name, file) = match Assets::get(name) {
        Some(file) if !name.is_empty() => (name, file),
        _ if name.starts_with("assets/") => return plain(StatusCode::NOT_FOUND, "no such asset\n"),
        _ => match Assets::get("index.html") {
            Some(file) => ("index.html", file),
            None => {
                return plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "this build carries no web workspace: web/dist was empty when it was compiled\n",
                )
            }
        },
    };
    let cache = if name.starts_with("assets/") { IMMUTABLE } else { REVALIDATE };
    let content_type = content_type(name);
    let compressible = is_compressible(content_type) && file.data.len() >= COMPRESS_FROM;
    let gzip = if compressible && accepts_gzip(request) { gzipped(name, &file) } else { None };
    let hash = hex(&file.metadata.sha256_hash()[..16]);
    let etag = if gzip.is_some() { format!("\"{hash}-gz\"") } else { format!("\"{hash}\"") };

    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    if compressible {
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if matches_etag(request, &etag) {
        return build(StatusCode::NOT_MODIFIED, headers, Body::empty());
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let bytes = match gzip {
        Some(compressed) => {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            compressed
        }
        None => bytes_of(&file),
    };
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    let body = if method == Method::HEAD { Body::empty() } else { Body::from(bytes) };
    build(StatusCode::OK, headers, body)
}

fn build(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    add_security_headers(response.headers_mut());
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(REVALIDATE));
    build(status, headers, Body::from(text))
}

fn add_security_headers(headers: &mut HeaderMap) {
    for (name, value) in SECURITY_HEADERS {
        headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
    }
}

fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, ext)| ext).unwrap_or("");
    match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "json" | "map" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "png" => "image/png",
        "ico" => "image/vnd.microsoft.icon",
        "woff2" => "font/woff2",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

fn is_compressible(content_type: &str) -> bool {
    content_type.starts_with("text/") || content_type == "image/svg+xml" || content_type == "application/json"
}

/// Whether `Accept-Encoding` lists gzip (or `*`) with a non-zero weight.
fn accepts_gzip(request: &HeaderMap) -> bool {
    request.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(
        |item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            if !coding.eq_ignore_ascii_case("gzip") && coding != "*" {
                return false;
            }
            !parts.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=")
                    .or_else(|| p.strip_prefix("Q="))
                    .is_some_and(|q| q.trim().parse::<f32>() == Ok(0.0))
            })
        },
    )
}

fn matches_etag(request: &HeaderMap, etag: &str) -> bool {
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim())
        .any(|tag| tag == "*" || tag == etag || tag.strip_prefix("W/") == Some(etag))
}

fn bytes_of(file: &EmbeddedFile) -> Bytes {
    match &file.data {
        std::borrow::Cow::Borrowed(data) => Bytes::from_static(data),
        std::borrow::Cow::Owned(data) => Bytes::from(data.clone()),
    }
}

/// The file gzipped, compressed on first use and kept for the process's life (the set is fixed
/// at build time and small).
fn gzipped(name: &str, file: &EmbeddedFile) -> Option<Bytes> {
    static CACHE: OnceLock<Mutex<HashMap<String, Bytes>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let lock = |cache: &'static Mutex<HashMap<String, Bytes>>| match cache.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(bytes) = lock(cache).get(name) {
        return Some(bytes.clone());
    }
    // Writing into a Vec does not fail; if it did, the file would go out uncompressed.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let compressed = Bytes::from(encoder.write_all(&file.data).and_then(|()| encoder.finish()).ok()?);
    lock(cache).insert(name.to_string(), compressed.clone());
    Some(compressed)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(HeaderName, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn accept_encoding_is_read_with_weights() {
        assert!(accepts_gzip(&headers(&[(header::ACCEPT_ENCODING, "gzip, deflate, br")])));
        assert!(accepts_gzip(&headers(&[(header::ACCEPT_ENCODING, "br;q=1.0, GZIP;q=0.5")])));
        assert!(accepts_gzip(&headers(&[(header::ACCEPT_ENCODING, "*")])));
        assert!(!accepts_gzip(&headers(&[(header::ACCEPT_ENCODING, "gzip;q=0")])));
        assert!(!accepts_gzip(&headers(&[(header::ACCEPT_ENCODING, "br, identity")])));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn if_none_match_takes_lists_and_weak_tags() {
        let tag = "\"abc\"";
        assert!(matches_etag(&headers(&[(header::IF_NONE_MATCH, "\"x\", \"abc\"")]), tag));
        assert!(matches_etag(&headers(&[(header::IF_NONE_MATCH, "W/\"abc\"")]), tag));
        assert!(matches_etag(&headers(&[(header::IF_NONE_MATCH, "*")]), tag));
        assert!(!matches_etag(&headers(&[(header::IF_NONE_MATCH, "\"abcd\"")]), tag));
        assert!(!matches_etag(&HeaderMap::new(), tag));
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(content_type("assets/index-x.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("favicon.svg"), "image/svg+xml");
        assert_eq!(content_type("LICENSE"), "application/octet-stream");
    }
}
