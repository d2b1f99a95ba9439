//! HTTPS on the service's own listener: certificates minted by a test CA, a real rustls client
//! that verifies against that CA, the client's address still reaching the handlers, a plain-HTTP
//! client and a client that never starts its handshake, graceful shutdown, and the files that
//! cannot serve (missing, not PEM, a key that is not the certificate's).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use sluice_server::tls::{self, TlsConfigError};
use sluice_server::{AppState, Config};
use sluice_store::{AuditFilter, KeyConfig, Store};
use sluice_testkit::TestCa;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Files {
    _dir: tempfile::TempDir,
    ca: TestCa,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

/// A CA and a server certificate for 127.0.0.1 and localhost, written to files.
fn files() -> Files {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("sluice test ca").expect("ca");
    let pair = ca.server_cert(&["127.0.0.1", "localhost"]).expect("cert");
    let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    std::fs::write(&cert, &pair.cert_pem).expect("write cert");
    std::fs::write(&key, &pair.key_pem).expect("write key");
    Files { _dir: dir, ca, cert, key }
}

fn client(ca_pem: &str) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("ca pem")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// One HTTP/1.1 request over TLS; the whole response as text.
async fn https(addr: SocketAddr, ca_pem: &str, request: &str) -> Result<String, std::io::Error> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let mut tls = client(ca_pem).connect(name, tcp).await?;
    tls.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
}

struct Running {
    addr: SocketAddr,
    store: Arc<Store>,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _data: tempfile::TempDir,
}

async fn start(f: &Files) -> Running {
    let data = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(
        Store::open(&data.path().join("data").display().to_string(), KeyConfig::DataDir).await.expect("store"),
    );
    let config = tls::load(&f.cert, &f.key).expect("tls settings");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sluice_server::serve_tls(
        listener,
        config,
        AppState::new(store.clone(), Config { secure_cookies: true, ..Config::default() }),
        async {
            let _ = stopped.await;
        },
    ));
    Running { addr, store, stop, server, _data: data }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_answers_a_verifying_client_and_knows_its_address() {
    let f = files();
    let s = start(&f).await;

    // A client that never starts its handshake keeps nobody else out.
    let _stalled = TcpStream::connect(s.addr).await.expect("connect");

    let response = https(s.addr, &f.ca.cert_pem, &get("/api/v1/health")).await.expect("https");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""status":"ok""#), "{response}");

    // The sign-in handler sees the client's address through TLS (the audit entry records it).
    let body = r#"{"login":"nobody","password":"not the password"}"#;
    let request = format!(
        "POST /api/v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let response = https(s.addr, &f.ca.cert_pem, &request).await.expect("https");
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    let filter = AuditFilter { kind: Some("sign_in.failed".into()), ..AuditFilter::default() };
    let page = s.store.audit(&filter).await.expect("audit");
    assert_eq!(page.entries.len(), 1, "{page:?}");
    assert_eq!(page.entries[0].detail["ip"], "127.0.0.1", "{page:?}");

    // A client trusting another CA refuses the server.
    let other = TestCa::new("another ca").expect("ca");
    let refused = https(s.addr, &other.cert_pem, &get("/api/v1/health")).await;
    let err = refused.expect_err("an unknown issuer is refused");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");

    s.stop.send(()).expect("stop");
    s.server.await.expect("join").expect("serve ends cleanly");
    // The listening socket is closed with the server.
    let after = TcpStream::connect(s.addr).await;
    assert!(after.is_err(), "the port still accepts after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_the_https_port_gets_no_http_answer() {
    let f = files();
    let s = start(&f).await;
    let mut tcp = TcpStream::connect(s.addr).await.expect("connect");
    tcp.write_all(get("/api/v1/health").as_bytes()).await.expect("send");
    let mut reply = Vec::new();
    // The server answers the bogus ClientHello with at most a TLS alert, then closes.
    let _ = tcp.read_to_end(&mut reply).await;
    assert!(!reply.starts_with(b"HTTP/"), "{}", String::from_utf8_lossy(&reply));
    if let Some(first) = reply.first() {
        assert_eq!(*first, 0x15, "a TLS alert record, if anything: {reply:?}");
    }
    // The server still serves TLS clients afterwards.
    let response = https(s.addr, &f.ca.cert_pem, &get("/api/v1/health")).await.expect("https");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    s.stop.send(()).expect("stop");
    s.server.await.expect("join").expect("serve ends cleanly");
}

#[test]
fn files_that_cannot_serve_are_named() {
    let f = files();
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.pem");
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "just some text\n").expect("write");
    let other = f.ca.server_cert(&["127.0.0.1"]).expect("cert");
    let other_key = dir.path().join("other.key");
    std::fs::write(&other_key, &other.key_pem).expect("write");

    let err = |cert: &Path, key: &Path| tls::load(cert, key).expect_err("refused");
    match err(&missing, &f.key) {
        TlsConfigError::Cert { path, reason } => {
            assert_eq!(path, missing);
            assert!(reason.contains("cannot read"), "{reason}");
        }
        e => panic!("{e}"),
    }
    match err(&f.cert, &missing) {
        TlsConfigError::Key { path, reason } => {
            assert_eq!(path, missing);
            assert!(reason.contains("cannot read"), "{reason}");
        }
        e => panic!("{e}"),
    }
    match err(&not_pem, &f.key) {
        TlsConfigError::Cert { path, reason } => {
            assert_eq!(path, not_pem);
            assert!(reason.contains("no PEM certificate"), "{reason}");
        }
        e => panic!("{e}"),
    }
    // The two files swapped: the key file holds no certificate.
    assert!(matches!(err(&f.key, &f.cert), TlsConfigError::Cert { path, .. } if path == f.key));
    match err(&f.cert, &not_pem) {
        TlsConfigError::Key { path, reason } => {
            assert_eq!(path, not_pem);
            assert!(reason.contains("no PEM private key"), "{reason}");
        }
        e => panic!("{e}"),
    }
    let mismatch = err(&f.cert, &other_key);
    assert!(matches!(&mismatch, TlsConfigError::Mismatch { cert, key } if *cert == f.cert && *key == other_key));
    let text = mismatch.to_string();
    assert!(text.contains("does not belong") && text.contains("other.key"), "{text}");
    tls::load(&f.cert, &f.key).expect("the matching pair loads");
}
