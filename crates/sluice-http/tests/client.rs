//! The client against real loopback servers: plain HTTP, and HTTPS with a certificate from a CA
//! minted for the test and trusted through `SSL_CERT_FILE`.

use std::convert::Infallible;
use std::sync::{Arc, Once};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sluice_http::{Body, HttpError, Method, Outgoing, Url};
use sluice_testkit::TestCa;
use tokio::net::{TcpListener, TcpStream};

/// The CA every HTTPS server here presents a certificate from; the process trusts it (and only
/// it) before the client's TLS settings are first built.
fn ca() -> &'static TestCa {
    static CA: std::sync::OnceLock<TestCa> = std::sync::OnceLock::new();
    static TRUSTED: Once = Once::new();
    let ca = CA.get_or_init(|| TestCa::new("sluice-http test CA").expect("ca"));
    TRUSTED.call_once(|| {
        let path = std::env::temp_dir().join(format!("sluice-http-ca-{}.pem", std::process::id()));
        std::fs::write(&path, &ca.cert_pem).expect("write ca");
        // Every test calls this before any request, so no thread reads the environment meanwhile.
        std::env::set_var("SSL_CERT_FILE", &path);
    });
    ca
}

/// A loopback server answering every request with `status` and `reply(method, path, host, body)`;
/// with `tls`, behind a certificate for `localhost` only.
async fn serve(tls: bool, status: u16, reply: fn(String) -> String) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let acceptor = tls.then(|| {
        let pair = ca().server_cert(&["localhost"]).expect("server cert");
        let chain =
            CertificateDer::pem_slice_iter(pair.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>().expect("pem");
        let key = PrivateKeyDer::from_pem_slice(pair.key_pem.as_bytes()).expect("key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server config");
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    });
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| async move {
                    let (parts, body) = req.into_parts();
                    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    let host = parts.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
                    let seen = format!("{} {} {host} {}", parts.method, parts.uri, String::from_utf8_lossy(&body));
                    let mut response = hyper::Response::new(Full::new(Bytes::from(reply(seen))));
                    *response.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
                    Ok::<_, Infallible>(response)
                });
                let http = hyper::server::conn::http1::Builder::new();
                match acceptor {
                    Some(acceptor) => {
                        if let Ok(tls) = acceptor.accept(stream).await {
                            let _ = http.serve_connection(TokioIo::new(tls), service).await;
                        }
                    }
                    None => {
                        let _ = http.serve_connection(TokioIo::new(stream), service).await;
                    }
                }
            });
        }
    });
    (port, task)
}

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn https_sends_the_request_and_keeps_the_answer() {
    ca();
    let (port, _server) = serve(true, 201, |seen| seen).await;
    let url = format!("https://localhost:{port}/path?q=1");
    let answer =
        sluice_http::request(Method::POST, &url, &[("x-test", "1")], b"hello".to_vec(), WAIT, Body::Keep(1024))
            .await
            .expect("request");
    assert_eq!(answer.status, 201);
    assert_eq!(answer.text(), format!("POST /path?q=1 localhost:{port} hello"));
}

#[tokio::test]
async fn a_certificate_for_another_name_fails_the_handshake_naming_the_url() {
    ca();
    let (port, _server) = serve(true, 200, |seen| seen).await;
    let url = format!("https://127.0.0.1:{port}/");
    let err = sluice_http::request(Method::GET, &url, &[], Vec::new(), WAIT, Body::Keep(1024)).await.expect_err("tls");
    assert!(matches!(err, HttpError::Tls { .. }), "{err:?}");
    assert!(err.to_string().starts_with(&format!("TLS with {url} failed")), "{err}");
}

#[tokio::test]
async fn errors_of_a_url_naming_its_host_leave_its_path_out() {
    ca();
    let (port, _server) = serve(true, 200, |seen| seen).await;
    let url = Url::parse(&format!("https://127.0.0.1:{port}/hooks/s3cret-path")).expect("url").naming_host();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let out = Outgoing { method: &Method::POST, headers: &[], body: b"{}" };
    let err = sluice_http::exchange(tcp, &url, out, Body::Drain(1024)).await.expect_err("tls");
    assert!(err.to_string().starts_with("TLS with 127.0.0.1 failed"), "{err}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

#[tokio::test]
async fn an_answer_over_the_limit_is_an_error_when_kept_and_only_drained_otherwise() {
    ca();
    let (port, _server) = serve(false, 202, |_| "x".repeat(4096)).await;
    let url = format!("http://127.0.0.1:{port}/");
    let err =
        sluice_http::request(Method::GET, &url, &[], Vec::new(), WAIT, Body::Keep(1000)).await.expect_err("limit");
    assert!(matches!(err, HttpError::Answer { .. }), "{err:?}");
    assert!(err.to_string().starts_with(&format!("reading the answer of {url} failed")), "{err}");

    let answer =
        sluice_http::request(Method::GET, &url, &[], Vec::new(), WAIT, Body::Drain(1000)).await.expect("drain");
    assert_eq!(answer.status, 202);
    assert!(answer.body.is_empty());

    let answer = sluice_http::request(Method::GET, &url, &[], Vec::new(), WAIT, Body::Keep(4096)).await.expect("keep");
    assert_eq!(answer.body.len(), 4096);
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_timeout_naming_the_url() {
    ca();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    let err = sluice_http::request(Method::GET, &url, &[], Vec::new(), Duration::from_millis(200), Body::Keep(64))
        .await
        .expect_err("timeout");
    assert!(matches!(err, HttpError::Timeout { .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("{url} did not answer within 200 ms"));
    drop(listener);
}

#[tokio::test]
async fn a_refused_connection_names_the_url() {
    ca();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    drop(listener);
    let err =
        sluice_http::request(Method::GET, &url, &[], Vec::new(), WAIT, Body::Keep(64)).await.expect_err("refused");
    assert!(matches!(err, HttpError::Connect { .. }), "{err:?}");
    assert!(err.to_string().starts_with(&format!("cannot connect to {url}: ")), "{err}");
}

#[test]
fn urls_are_taken_apart_or_refused_with_a_hint() {
    let url = Url::parse("https://user:pw@[::1]/x").expect("url");
    assert!(url.is_https());
    assert_eq!((url.host(), url.port()), ("::1", 443));
    assert!(url.has_user_info());
    let url = Url::parse("http://example.com:8080").expect("url");
    assert_eq!((url.host(), url.port(), url.is_https(), url.has_user_info()), ("example.com", 8080, false, false));

    for (text, expected) in [
        ("ftp://example.com/", "`ftp://example.com/` is not an http:// or https:// URL"),
        ("/just/a/path", "`/just/a/path` is not an http:// or https:// URL"),
    ] {
        let err = Url::parse(text).expect_err(text);
        assert_eq!(err.to_string(), expected);
        assert!(err.hint().contains("https://"), "{}", err.hint());
    }
    let err = Url::parse("http://exa mple.com/").expect_err("space");
    assert!(matches!(err, HttpError::NotAUrl { .. }), "{err:?}");
}
