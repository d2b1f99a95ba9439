//! TLS exactly as libpq defines each sslmode, on rustls with Sluice's own verifiers.
//!
//! | sslmode | encrypts | verifies chain | verifies name |
//! |---|---|---|---|
//! | disable | never | – | – |
//! | allow | only if the server insists | no | no |
//! | prefer | when the server offers it | no | no |
//! | require | always | only with sslrootcert (libpq: then as verify-ca) | no |
//! | verify-ca | always | yes | no |
//! | verify-full | always | yes | yes (`tls_server_name`, else the host) |
//!
//! tokio-postgres itself only knows disable/prefer/require; it runs in `Require` for `require`
//! and stricter, so those modes never fall back to plaintext.
//!
//! The stream offers SCRAM channel binding with the certificate hash
//! [`crate::channel_binding`] computes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sluice_core::{CertSource, KeySource, SourceSpec, SslMode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, TlsConnect};

use crate::channel_binding::{tls_server_end_point, EndPointHash, NoBinding};
use crate::{ConnectError, TlsFailure};

/// What channel binding the server certificate allows, recorded per handshake so that a login
/// refused under `channel_binding=require` can say why.
pub(crate) type BindingSlot = Arc<Mutex<Option<Result<EndPointHash, NoBinding>>>>;

/// What was negotiated, for the doctor's `tls` check and the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TlsInfo {
    pub protocol: String,
    pub cipher_suite: String,
    /// `none`, `chain` (verify-ca) or `chain+name` (verify-full).
    pub verified: &'static str,
}

/// How much of the server certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    None,
    Chain,
    ChainAndName,
}

impl Verification {
    /// libpq's rule: `require` with a root certificate behaves as `verify-ca`.
    pub fn for_spec(spec: &SourceSpec) -> Verification {
        match spec.sslmode {
            SslMode::VerifyFull => Verification::ChainAndName,
            SslMode::VerifyCa => Verification::Chain,
            SslMode::Require if spec.sslrootcert.is_some() => Verification::Chain,
            _ => Verification::None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Verification::None => "none",
            Verification::Chain => "chain",
            Verification::ChainAndName => "chain+name",
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls configuration for one source; built once and shared by every session and cancel.
#[derive(Clone)]
pub struct TlsSetup {
    config: Arc<ClientConfig>,
    verification: Verification,
    has_client_cert: bool,
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSetup").field("verification", &self.verification).finish_non_exhaustive()
    }
}

impl TlsSetup {
    /// Reads certificates and keys (from PEM text or files) and builds the verifier.
    pub fn from_spec(spec: &SourceSpec) -> Result<TlsSetup, ConnectError> {
        let verification = Verification::for_spec(spec);
        let provider = provider();
        let verifier: Arc<dyn ServerCertVerifier> = match verification {
            Verification::None => Arc::new(NoVerifier(provider.clone())),
            level => {
                let roots = load_roots(spec.sslrootcert.as_ref().unwrap_or(&CertSource::System))?;
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| {
                        config_err(
                            "sslrootcert",
                            format!("cannot use these roots: {e}"),
                            "give a PEM file with the CA certificate(s)",
                        )
                    })?;
                if level == Verification::Chain {
                    Arc::new(ChainOnlyVerifier(webpki))
                } else {
                    webpki
                }
            }
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| config_err("sslmode", e.to_string(), "this is a bug"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let (config, has_client_cert) = match (&spec.sslcert, &spec.sslkey) {
            (Some(cert), Some(key)) => {
                let chain = load_certs(cert, "sslcert")?;
                let key = load_key(key)?;
                let config = builder.with_client_auth_cert(chain, key).map_err(|e| {
                    config_err(
                        "sslkey",
                        format!("the key does not fit the certificate: {e}"),
                        "give the private key of sslcert",
                    )
                })?;
                (config, true)
            }
            _ => (builder.with_no_client_auth(), false),
        };
        Ok(TlsSetup { config: Arc::new(config), verification, has_client_cert })
    }

    pub fn verification(&self) -> Verification {
        self.verification
    }

    /// A connector for one handshake against `server_name`, recording what was negotiated in `info`.
    pub fn connector(
        &self,
        server_name: &str,
        info: Arc<Mutex<Option<TlsInfo>>>,
    ) -> Result<RustlsConnect, ConnectError> {
        let name = ServerName::try_from(server_name.to_string()).map_err(|_| {
            config_err(
                "tls_server_name",
                format!("`{server_name}` is not a valid TLS server name"),
                "give a DNS name or an IP address",
            )
        })?;
        Ok(RustlsConnect { setup: self.clone(), name, info, binding: None, await_close: false })
    }

    /// Turns a handshake error (however deep in an error chain) into what a person needs.
    pub fn classify(&self, err: &(dyn std::error::Error + 'static)) -> TlsFailure {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = cur {
            if let Some(r) = e.downcast_ref::<rustls::Error>() {
                return classify_rustls(r, self.has_client_cert);
            }
            if let Some(io) = e.downcast_ref::<io::Error>() {
                if let Some(r) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    return classify_rustls(r, self.has_client_cert);
                }
            }
            cur = e.source();
        }
        TlsFailure::Other(err.to_string())
    }

    /// Whether `err` came from TLS (a handshake failure or an alert after it).
    pub fn is_tls_error(err: &(dyn std::error::Error + 'static)) -> bool {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = cur {
            if e.is::<rustls::Error>() {
                return true;
            }
            if let Some(io) = e.downcast_ref::<io::Error>() {
                if io.get_ref().is_some_and(|i| i.is::<rustls::Error>()) {
                    return true;
                }
            }
            cur = e.source();
        }
        false
    }
}

fn classify_rustls(e: &rustls::Error, has_client_cert: bool) -> TlsFailure {
    use rustls::Error as E;
    match e {
        E::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => TlsFailure::UnknownCa,
            CertificateError::NotValidForName => {
                TlsFailure::NameMismatch { expected: String::new(), presented: vec![] }
            }
            CertificateError::NotValidForNameContext { expected, presented } => TlsFailure::NameMismatch {
                expected: server_name_text(expected),
                presented: presented.iter().map(|p| clean_presented(p)).collect(),
            },
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => TlsFailure::Expired,
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => TlsFailure::NotYetValid,
            other => TlsFailure::Other(format!("invalid server certificate: {other:?}")),
        },
        E::AlertReceived(alert) if has_client_cert => TlsFailure::ClientCertRejected(format!("{alert:?}")),
        E::AlertReceived(rustls::AlertDescription::CertificateRequired) => {
            TlsFailure::ClientCertRejected("the server requires a client certificate".into())
        }
        E::InvalidMessage(_) => TlsFailure::NotTls,
        other => TlsFailure::Other(other.to_string()),
    }
}

fn server_name_text(n: &ServerName<'_>) -> String {
    match n {
        ServerName::DnsName(d) => d.as_ref().to_string(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}

/// rustls reports names as `DnsName("localhost")`; people read `localhost`.
fn clean_presented(p: &str) -> String {
    let inner = p.split_once('(').map(|(_, r)| r.trim_end_matches(')')).unwrap_or(p);
    inner.trim_matches('"').to_string()
}

fn config_err(field: &'static str, message: impl Into<String>, hint: &str) -> ConnectError {
    ConnectError::Config { field, message: message.into(), hint: hint.to_string() }
}

fn read_source(field: &'static str, src: &CertSource) -> Result<Vec<u8>, ConnectError> {
    match src {
        CertSource::Pem(p) => Ok(p.as_bytes().to_vec()),
        CertSource::File(path) => std::fs::read(path).map_err(|e| {
            config_err(
                field,
                format!("cannot read {}: {e}", path.display()),
                "give a readable PEM file, or the PEM text itself",
            )
        }),
        CertSource::System => Ok(Vec::new()),
    }
}

fn load_certs(src: &CertSource, field: &'static str) -> Result<Vec<CertificateDer<'static>>, ConnectError> {
    let pem = read_source(field, src)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem).collect::<Result<_, _>>().map_err(|e| {
        config_err(field, format!("not valid PEM: {e}"), "give PEM text starting with -----BEGIN CERTIFICATE-----")
    })?;
    if certs.is_empty() {
        return Err(config_err(
            field,
            "no certificate found",
            "give PEM text starting with -----BEGIN CERTIFICATE-----",
        ));
    }
    Ok(certs)
}

fn load_roots(src: &CertSource) -> Result<RootCertStore, ConnectError> {
    let mut roots = RootCertStore::empty();
    let certs = match src {
        CertSource::System => {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                return Err(config_err(
                    "sslrootcert",
                    "the system trust store is empty or unreadable",
                    "install ca-certificates, or give the CA as sslrootcert",
                ));
            }
            found.certs
        }
        other => load_certs(other, "sslrootcert")?,
    };
    let (_, ignored) = roots.add_parsable_certificates(certs);
    if roots.is_empty() {
        return Err(config_err(
            "sslrootcert",
            format!("none of the certificates could be used ({ignored} rejected)"),
            "give the CA certificate in PEM",
        ));
    }
    Ok(roots)
}

fn load_key(src: &KeySource) -> Result<PrivateKeyDer<'static>, ConnectError> {
    let pem = match src {
        KeySource::Pem(s) => s.expose().as_bytes().to_vec(),
        KeySource::File(path) => std::fs::read(path).map_err(|e| {
            config_err("sslkey", format!("cannot read {}: {e}", path.display()), "give a readable PEM key file")
        })?,
    };
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| {
        config_err(
            "sslkey",
            "no private key found (PKCS#8, PKCS#1 or SEC1 PEM expected)",
            "give an unencrypted PEM private key",
        )
    })
}

/// `require`/`prefer`/`allow` without a root certificate: encrypt, check the handshake signature,
/// trust the certificate.
#[derive(Debug)]
struct NoVerifier(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerifier {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// verify-ca: the full WebPKI check, except that a name mismatch is accepted.
#[derive(Debug)]
struct ChainOnlyVerifier(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnlyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(m, c, d)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(m, c, d)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// tokio-postgres's TLS hook, backed by tokio-rustls.
pub struct RustlsConnect {
    setup: TlsSetup,
    name: ServerName<'static>,
    info: Arc<Mutex<Option<TlsInfo>>>,
    binding: Option<BindingSlot>,
    await_close: bool,
}

impl RustlsConnect {
    /// Records in `slot` which hash channel binding uses, or why there is none.
    pub(crate) fn recording_binding(mut self, slot: BindingSlot) -> Self {
        self.binding = Some(slot);
        self
    }

    /// For a cancel request: shutting the stream down waits for the server to close first and
    /// sends no close_notify, which a pooler could take for the client hanging up early.
    pub(crate) fn awaiting_close(mut self) -> Self {
        self.await_close = true;
        self
    }
}

// No `'static` bound on `S`: with one, futures over a boxed (`dyn`) stream stop being provably
// `Send` ("implementation of `Send` is not general enough").
impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = HandshakeFuture<S>;

    fn connect(self, stream: S) -> Self::Future {
        let connector = tokio_rustls::TlsConnector::from(self.setup.config.clone());
        HandshakeFuture {
            inner: connector.connect(self.name, stream),
            info: self.info,
            binding: self.binding,
            verification: self.setup.verification,
            await_close: self.await_close,
        }
    }
}

/// The TLS handshake; records what was negotiated when it completes.
pub struct HandshakeFuture<S> {
    inner: tokio_rustls::Connect<S>,
    info: Arc<Mutex<Option<TlsInfo>>>,
    binding: Option<BindingSlot>,
    verification: Verification,
    await_close: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Future for HandshakeFuture<S> {
    type Output = io::Result<RustlsStream<S>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let tls = match Pin::new(&mut self.inner).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(tls)) => tls,
        };
        let (_, conn) = tls.get_ref();
        let info = TlsInfo {
            protocol: conn.protocol_version().map(|v| format!("{v:?}").replace('_', ".")).unwrap_or_default(),
            cipher_suite: conn.negotiated_cipher_suite().map(|c| format!("{:?}", c.suite())).unwrap_or_default(),
            verified: self.verification.label(),
        };
        if let Ok(mut slot) = self.info.lock() {
            *slot = Some(info);
        }
        let binding = match conn.peer_certificates().and_then(|c| c.first()) {
            Some(cert) => tls_server_end_point(cert.as_ref()),
            None => Err(NoBinding::NoCertificate),
        };
        if let Some(Ok(mut slot)) = self.binding.as_ref().map(|s| s.lock()) {
            *slot = Some(binding.as_ref().map(|(hash, _)| *hash).map_err(Clone::clone));
        }
        let end_point = binding.ok().map(|(_, value)| value);
        Poll::Ready(Ok(RustlsStream { tls, end_point, await_close: self.await_close }))
    }
}

/// A TLS stream that also offers SCRAM channel binding (`tls-server-end-point`, hashed as
/// [`crate::channel_binding`] says).
pub struct RustlsStream<S> {
    tls: tokio_rustls::client::TlsStream<S>,
    /// `None` when the certificate allows no binding (an Ed25519 signature, say).
    end_point: Option<Vec<u8>>,
    await_close: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        match &self.end_point {
            Some(value) => ChannelBinding::tls_server_end_point(value.clone()),
            None => ChannelBinding::none(),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tls).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.await_close {
            return crate::cancel::poll_until_closed(&mut self.tls, cx);
        }
        Pin::new(&mut self.tls).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn require_with_root_cert_is_verify_ca() {
        let mut s = SourceSpec::new("h", "d", "u");
        assert_eq!(Verification::for_spec(&s), Verification::None);
        s.sslrootcert = Some(CertSource::Pem("x".into()));
        assert_eq!(Verification::for_spec(&s), Verification::Chain);
        s.sslmode = SslMode::Prefer;
        assert_eq!(Verification::for_spec(&s), Verification::None);
        s.sslmode = SslMode::VerifyFull;
        assert_eq!(Verification::for_spec(&s), Verification::ChainAndName);
    }

    #[test]
    fn presented_names_read_plainly() {
        assert_eq!(clean_presented("DnsName(\"localhost\")"), "localhost");
        assert_eq!(clean_presented("IpAddress(127.0.0.1)"), "127.0.0.1");
    }

    #[test]
    fn bad_pem_names_the_field() {
        let mut s = SourceSpec::new("h", "d", "u");
        s.sslmode = SslMode::VerifyFull;
        s.sslrootcert =
            Some(CertSource::Pem("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n".into()));
        match TlsSetup::from_spec(&s) {
            Err(ConnectError::Config { field, .. }) => assert_eq!(field, "sslrootcert"),
            other => panic!("expected a config error, got {other:?}"),
        }
        s.sslrootcert = Some(CertSource::File("/nonexistent/ca.pem".into()));
        match TlsSetup::from_spec(&s) {
            Err(ConnectError::Config { field, message, .. }) => {
                assert_eq!(field, "sslrootcert");
                assert!(message.contains("/nonexistent/ca.pem"));
            }
            other => panic!("expected a config error, got {other:?}"),
        }
    }
}
