//! A minimal HTTP/1.1 client for the credential endpoints (ECS, IMDS, STS): one request per
//! connection over hyper, HTTPS through rustls (ring) with the OS trust store, every request
//! bounded in time and size.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Responses larger than this are refused: credentials fit in a few KiB.
const MAX_BODY: usize = 256 * 1024;

pub(crate) struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request. Errors are short sentences naming the URL, never a header value.
pub(crate) async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Response, String> {
    match tokio::time::timeout(timeout, exchange(method, url, headers, body)).await {
        Ok(result) => result,
        Err(_) => Err(format!("{url} did not answer within {} ms", timeout.as_millis())),
    }
}

async fn exchange(method: Method, url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Result<Response, String> {
    let uri: Uri = url.parse().map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(format!("`{url}` is not an http:// or https:// URL")),
    };
    let host = uri.host().ok_or_else(|| format!("`{url}` has no host"))?;
    let bare = host.trim_start_matches('[').trim_end_matches(']').to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let authority = uri.authority().map(|a| a.as_str().to_string()).unwrap_or_else(|| host.to_string());
    let path = uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());

    let tcp = TcpStream::connect((bare.as_str(), port)).await.map_err(|e| format!("cannot connect to {url}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let mut request = Request::builder().method(method).uri(path).header("host", authority);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    if !body.is_empty() {
        request = request.header("content-length", body.len().to_string());
    }
    let request = request.body(Full::new(Bytes::from(body))).map_err(|e| format!("bad request to {url}: {e}"))?;

    if https {
        let name = rustls_pki_types::ServerName::try_from(bare.clone())
            .map_err(|_| format!("`{bare}` is not a valid TLS server name"))?;
        let tls = tokio_rustls::TlsConnector::from(tls_config()?)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {url} failed: {e}"))?;
        round_trip(TokioIo::new(tls), request, url).await
    } else {
        round_trip(TokioIo::new(tcp), request, url).await
    }
}

async fn round_trip<T>(io: T, request: Request<Full<Bytes>>, url: &str) -> Result<Response, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(io).await.map_err(|e| format!("HTTP with {url} failed: {e}"))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let result = async {
        let response = sender.send_request(request).await.map_err(|e| format!("HTTP with {url} failed: {e}"))?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("reading the answer of {url} failed: {e}"))?
            .to_bytes()
            .to_vec();
        Ok(Response { status, body })
    }
    .await;
    driver.abort();
    result
}

/// rustls with ring and the OS trust store (`SSL_CERT_FILE` honoured), built once.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err("no trusted CA certificates found in the OS trust store".to_string());
            }
            let config =
                rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                    .with_safe_default_protocol_versions()
                    .map_err(|e| e.to_string())?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}
