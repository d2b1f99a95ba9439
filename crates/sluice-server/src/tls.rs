//! HTTPS on the service's own listener: rustls (ring) over each accepted TCP stream. Every
//! handshake runs on a task of its own, bounded in time, so a client that stalls mid-handshake
//! holds up nobody; only finished handshakes reach the HTTP server, which sees a [`TlsListener`]
//! like any other `axum::serve::Listener` (graceful shutdown and the client's address included).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
/// The TLS settings [`load`] makes, as [`crate::serve_tls`] takes them.
pub use rustls::ServerConfig;
use sluice_core::{ErrorKind, UserFacing};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A certificate or key file that cannot serve HTTPS.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// The certificate file is unreadable or holds no PEM certificate.
    #[error("the certificate file {}: {reason}", path.display())]
    Cert { path: PathBuf, reason: String },
    /// The key file is unreadable or holds no usable PEM private key.
    #[error("the private key file {}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    /// The key is not the certificate's.
    #[error("the private key in {} does not belong to the certificate in {}", key.display(), cert.display())]
    Mismatch { cert: PathBuf, key: PathBuf },
}

impl UserFacing for TlsConfigError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Config
    }

    fn message(&self) -> String {
        self.to_string()
    }

    fn hint(&self) -> Option<String> {
        Some(
            match self {
                TlsConfigError::Cert { .. } => {
                    "give a readable PEM file holding the server's certificate first, then its intermediates"
                }
                TlsConfigError::Key { .. } => {
                    "give a readable PEM file holding the certificate's private key (PKCS#8, PKCS#1 or SEC1), unencrypted"
                }
                TlsConfigError::Mismatch { .. } => {
                    "give the key the certificate was issued for (the first certificate in the file is the server's)"
                }
            }
            .into(),
        )
    }
}

/// The server's TLS settings from a PEM certificate chain (the server's certificate first) and
/// its PEM private key (PKCS#8, PKCS#1 or SEC1). TLS 1.2 and 1.3, HTTP/1.1 by ALPN.
pub fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let cert_err = |reason: String| TlsConfigError::Cert { path: cert.to_path_buf(), reason };
    let key_err = |reason: String| TlsConfigError::Key { path: key.to_path_buf(), reason };
    let cert_pem = std::fs::read(cert).map_err(|e| cert_err(format!("cannot read it: {e}")))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(format!("not PEM certificates: {e}")))?;
    if chain.is_empty() {
        return Err(cert_err("it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into()));
    }
    let key_pem = zeroize::Zeroizing::new(std::fs::read(key).map_err(|e| key_err(format!("cannot read it: {e}")))?);
    let private = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|_| key_err("it holds no PEM private key (PKCS#8, PKCS#1 or SEC1)".into()))?;
    // Explicitly ring: with both ring and aws-lc-rs in the tree, rustls picks no default.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| key_err(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => {
                TlsConfigError::Mismatch { cert: cert.to_path_buf(), key: key.to_path_buf() }
            }
            rustls::Error::InvalidCertificate(e) => cert_err(format!("its first certificate is not valid: {e}")),
            other => key_err(format!("the key cannot sign: {other}")),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A listener whose connections are TLS streams with finished handshakes. Dropping it stops
/// accepting and closes the listening socket.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `listener` (within a Tokio runtime).
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let tls = TlsAcceptor::from(config);
        let acceptor = tokio::spawn(async move {
            while !tx.is_closed() {
                let (tcp, addr) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) if is_connection_error(&e) => continue,
                    Err(e) => {
                        // Out of file descriptors, typically: back off as axum's own listener does.
                        tracing::error!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                let (tls, tx) = (tls.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            // Fails only when the server stopped accepting: the stream just closes.
                            let _ = tx.send((stream, addr)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local, acceptor })
    }
}

/// Errors of one incoming connection, not of the listener (as axum's own listener sorts them).
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The acceptor task is gone (the runtime is shutting down): accept nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
