//! One-shot HTTP/1.1 requests for the few calls Sluice makes out (the AWS credential endpoints
//! and STS, the service's outgoing webhook): one request per connection over hyper, HTTPS through
//! rustls (ring) verified against the OS trust store (`SSL_CERT_FILE` honoured), the answer read
//! up to a limit the caller sets.
//!
//! [`request`] connects by the URL's host name within a deadline; [`exchange`] speaks over a TCP
//! stream the caller dialled itself (the webhook dials only addresses its network policy
//! checked). Errors name what failed and where, never a header value or a body.
//!
//! Must not: follow redirects, retry, pool connections, read more of an answer than the caller
//! allows, or choose which addresses may be dialled (callers that check addresses dial first).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub use hyper::Method;

/// Why a request failed. The message names the URL (or only its host, see [`Url::naming_host`])
/// and the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("`{url}` is not a URL: {reason}")]
    NotAUrl { url: String, reason: String },
    #[error("`{url}` is not an http:// or https:// URL")]
    NotHttp { url: String },
    #[error("`{url}` has no host")]
    NoHost { url: String },
    #[error("cannot connect to {peer}: {source}")]
    Connect { peer: String, source: std::io::Error },
    #[error("{peer} did not answer within {} ms", .timeout.as_millis())]
    Timeout { peer: String, timeout: Duration },
    #[error("`{host}` is not a valid TLS server name")]
    ServerName { host: String },
    #[error("no trusted CA certificates found in the OS trust store")]
    NoTrustedRoots,
    #[error("cannot set up TLS: {0}")]
    TlsSetup(String),
    #[error("TLS with {peer} failed: {source}")]
    Tls { peer: String, source: std::io::Error },
    #[error("bad request to {peer}: {reason}")]
    Request { peer: String, reason: String },
    #[error("HTTP with {peer} failed: {source}")]
    Http { peer: String, source: hyper::Error },
    #[error("reading the answer of {peer} failed: {reason}")]
    Answer { peer: String, reason: String },
}

impl HttpError {
    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            HttpError::NotAUrl { .. } | HttpError::NotHttp { .. } | HttpError::NoHost { .. } => {
                "give an http:// or https:// URL with a host"
            }
            HttpError::ServerName { .. } => "give a host name or an IP address",
            HttpError::NoTrustedRoots => "install the OS's CA certificates, or point SSL_CERT_FILE at a PEM bundle",
            HttpError::TlsSetup(_) => "report this: the TLS settings are Sluice's own",
            HttpError::Tls { .. } => {
                "check that the server's certificate is valid for its name and chains to a CA in the OS trust store"
            }
            HttpError::Request { .. } => "check the URL and the header values",
            HttpError::Connect { .. }
            | HttpError::Timeout { .. }
            | HttpError::Http { .. }
            | HttpError::Answer { .. } => "check that the endpoint is reachable from Sluice and answers HTTP",
        }
    }
}

/// An http:// or https:// URL taken apart for one request.
#[derive(Debug, Clone)]
pub struct Url {
    https: bool,
    host: String,
    port: u16,
    authority: String,
    path: String,
    user_info: bool,
    /// How errors name the peer: the whole URL, or only its host.
    shown: String,
}

impl Url {
    pub fn parse(text: &str) -> Result<Url, HttpError> {
        let uri: hyper::Uri = text.parse().map_err(|e: hyper::http::uri::InvalidUri| HttpError::NotAUrl {
            url: text.into(),
            reason: e.to_string(),
        })?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(HttpError::NotHttp { url: text.into() }),
        };
        let authority = uri.authority().ok_or_else(|| HttpError::NoHost { url: text.into() })?;
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_string();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path = uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
        Ok(Url {
            https,
            host,
            port,
            authority: authority.as_str().to_string(),
            path,
            user_info: authority.as_str().contains('@'),
            shown: text.to_string(),
        })
    }

    /// Errors name only the host, not the whole URL (whose path or query may be a secret).
    pub fn naming_host(mut self) -> Url {
        self.shown = self.host.clone();
        self
    }

    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The host without the brackets of an IPv6 literal.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port given, else 443 or 80.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the URL carries `user:password@`.
    pub fn has_user_info(&self) -> bool {
        self.user_info
    }
}

/// How much of the answer is read, and what to do with it.
#[derive(Debug, Clone, Copy)]
pub enum Body {
    /// Keep up to this many bytes; a longer answer is an error.
    Keep(usize),
    /// Read and drop up to this many bytes, only to finish the exchange; the status is what counts.
    Drain(usize),
}

/// A request's headers and body.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub method: &'a Method,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// An answer: its status, and its body as [`Body`] said.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text, invalid UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request to `url`, connecting by its host name; the whole exchange, connection
/// included, must finish within `timeout`.
pub async fn request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    timeout: Duration,
    answer: Body,
) -> Result<Response, HttpError> {
    let send = async {
        let url = Url::parse(url)?;
        let tcp = TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|source| HttpError::Connect { peer: url.shown.clone(), source })?;
        exchange(tcp, &url, Outgoing { method: &method, headers, body: &body }, answer).await
    };
    match tokio::time::timeout(timeout, send).await {
        Ok(result) => result,
        Err(_) => Err(HttpError::Timeout { peer: url.to_string(), timeout }),
    }
}

/// Sends one request over `tcp`, already connected to `url`'s host (TLS for https, verified
/// against that host's name), and reads the answer.
pub async fn exchange(tcp: TcpStream, url: &Url, out: Outgoing<'_>, answer: Body) -> Result<Response, HttpError> {
    let _ = tcp.set_nodelay(true);
    let mut request =
        Request::builder().method(out.method).uri(url.path.as_str()).header("host", url.authority.as_str());
    for (k, v) in out.headers {
        request = request.header(*k, *v);
    }
    if !out.body.is_empty() {
        request = request.header("content-length", out.body.len().to_string());
    }
    let request = request
        .body(Full::new(Bytes::copy_from_slice(out.body)))
        .map_err(|e| HttpError::Request { peer: url.shown.clone(), reason: e.to_string() })?;
    if url.https {
        let name = rustls_pki_types::ServerName::try_from(url.host.clone())
            .map_err(|_| HttpError::ServerName { host: url.host.clone() })?;
        let tls = tokio_rustls::TlsConnector::from(tls_config()?)
            .connect(name, tcp)
            .await
            .map_err(|source| HttpError::Tls { peer: url.shown.clone(), source })?;
        round_trip(TokioIo::new(tls), request, &url.shown, answer).await
    } else {
        round_trip(TokioIo::new(tcp), request, &url.shown, answer).await
    }
}

async fn round_trip<T>(io: T, request: Request<Full<Bytes>>, peer: &str, answer: Body) -> Result<Response, HttpError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let http = |source| HttpError::Http { peer: peer.to_string(), source };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(http)?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let result = async {
        let response = sender.send_request(request).await.map_err(http)?;
        let status = response.status().as_u16();
        let body = match answer {
            Body::Keep(limit) => Limited::new(response.into_body(), limit)
                .collect()
                .await
                .map_err(|e| HttpError::Answer { peer: peer.to_string(), reason: e.to_string() })?
                .to_bytes()
                .to_vec(),
            Body::Drain(limit) => {
                let _ = Limited::new(response.into_body(), limit).collect().await;
                Vec::new()
            }
        };
        Ok(Response { status, body })
    }
    .await;
    driver.abort();
    result
}

/// Why the client's TLS settings could not be built (kept, as the settings are, once per process).
#[derive(Clone)]
enum Setup {
    NoRoots,
    Failed(String),
}

/// rustls with ring and the OS trust store (`SSL_CERT_FILE` honoured), built once per process.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, HttpError> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, Setup>> = OnceLock::new();
    let built = CONFIG.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            return Err(Setup::NoRoots);
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| Setup::Failed(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    });
    match built {
        Ok(config) => Ok(config.clone()),
        Err(Setup::NoRoots) => Err(HttpError::NoTrustedRoots),
        Err(Setup::Failed(e)) => Err(HttpError::TlsSetup(e.clone())),
    }
}
