//! The outgoing webhook: each alert raised or cleared is POSTed once, as JSON, to the URL an
//! admin configured, signed with its secret.
//!
//! The notification is written to the store's outbox in the transaction that raised or cleared
//! the alert; [`run`] (beside the discovery scheduler) leases due notifications from there, posts
//! each and marks it delivered on a 2xx answer, or retries it after a backoff that doubles from
//! [`crate::DiscoveryConfig::webhook_retry`] up to an hour. A crash or a receiver that is down
//! loses nothing, and a receiver that answers 2xx gets each notification once; one that took it
//! but did not answer may get it again, with the same `id` (at least once, idempotent by `id`).
//!
//! The request carries `Sluice-Signature: t=<unix seconds>,v1=<hex>`, where the hex is
//! HMAC-SHA256 with the secret over `<t>.<body>`, and `Sluice-Event-Id: <id>`. The URL's host
//! is resolved and every address checked against the network policy ([`crate::Config::network`])
//! when it is configured and again before each delivery, and only a checked address is dialled.
//!
//! Must not: deliver anything not in the outbox, follow redirects, or dial an address the policy
//! refuses.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use sluice_connect::NetworkPolicy;
use sluice_core::Secret;
use sluice_store::WebhookDelivery;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::AppState;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Sluice-Signature";
/// The header carrying the notification's idempotency id (also the body's `id`).
pub const EVENT_ID_HEADER: &str = "Sluice-Event-Id";
/// How long one delivery may take, connection included.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between two attempts.
const MAX_RETRY: Duration = Duration::from_secs(3600);
/// How much of a receiver's answer is read (only to finish the exchange).
const MAX_ANSWER: usize = 64 * 1024;
/// Notifications leased at once.
const BATCH: u32 = 16;

/// Why a URL cannot be a webhook: the message names what is wrong; `hint` says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadUrl {
    pub message: String,
    pub hint: String,
}

/// A URL checked for delivery: where to connect, and what to send.
struct Target {
    https: bool,
    host: String,
    authority: String,
    path: String,
    addrs: Vec<SocketAddr>,
}

/// Parses `url` (http or https, no user info), resolves its host and checks every address
/// against `policy`.
async fn target(url: &str, policy: &NetworkPolicy) -> Result<Target, BadUrl> {
    let bad = |message: String, hint: &str| BadUrl { message, hint: hint.to_string() };
    let uri: Uri = url.parse().map_err(|e| bad(format!("`{url}` is not a URL: {e}"), "give an https:// URL"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(bad(format!("`{url}` is not an http:// or https:// URL"), "give an https:// URL")),
    };
    let authority = uri.authority().ok_or_else(|| bad(format!("`{url}` has no host"), "give an https:// URL"))?;
    if authority.as_str().contains('@') {
        return Err(bad(
            "the URL carries user info".into(),
            "leave credentials out of the URL: the receiver checks the signature instead",
        ));
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_string();
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| bad(format!("cannot resolve `{host}`: {e}"), "give a host name that resolves from this service"))?
        .collect();
    if resolved.is_empty() {
        return Err(bad(format!("`{host}` resolves to no address"), "give a host name that resolves"));
    }
    for addr in &resolved {
        if let Err(refusal) = policy.check(*addr) {
            return Err(BadUrl { message: format!("{host}: {refusal}"), hint: refusal.hint() });
        }
    }
    let path = uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
    Ok(Target { https, host, authority: authority.as_str().to_string(), path, addrs: resolved })
}

/// Checks a URL an admin wants to configure: as a delivery would, after DNS.
pub(crate) async fn check_url(url: &str, policy: &NetworkPolicy) -> Result<(), BadUrl> {
    target(url, policy).await.map(|_| ())
}

/// `t=<t>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the secret>`.
pub fn signature(secret: &str, t: u64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(t.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let tag = ctx.sign();
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

/// Posts one notification; `Ok` on a 2xx answer, else a short reason (never the secret).
async fn post(url: &str, secret: &Secret, policy: &NetworkPolicy, d: &WebhookDelivery) -> Result<(), String> {
    let target = target(url, policy).await.map_err(|e| e.message)?;
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let request = Request::builder()
        .method(Method::POST)
        .uri(target.path.as_str())
        .header("host", target.authority.as_str())
        .header("content-type", "application/json")
        .header("user-agent", concat!("sluice/", env!("CARGO_PKG_VERSION")))
        .header(SIGNATURE_HEADER, signature(secret.expose(), t, d.body.as_bytes()))
        .header(EVENT_ID_HEADER, d.event_id.as_str())
        .header("content-length", d.body.len().to_string())
        .body(Full::new(Bytes::from(d.body.clone())))
        .map_err(|e| format!("bad request: {e}"))?;
    let mut last = String::from("no address to connect to");
    for addr in &target.addrs {
        let tcp = match TcpStream::connect(addr).await {
            Ok(tcp) => tcp,
            Err(e) => {
                last = format!("cannot connect to {addr}: {e}");
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let status = if target.https {
            let name = rustls_pki_types::ServerName::try_from(target.host.clone())
                .map_err(|_| format!("`{}` is not a valid TLS server name", target.host))?;
            let tls = tokio_rustls::TlsConnector::from(tls_config()?)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {} failed: {e}", target.host))?;
            round_trip(TokioIo::new(tls), request).await?
        } else {
            round_trip(TokioIo::new(tcp), request).await?
        };
        return match status {
            200..=299 => Ok(()),
            s => Err(format!("the receiver answered {s}")),
        };
    }
    Err(last)
}

async fn round_trip<T>(io: T, request: Request<Full<Bytes>>) -> Result<u16, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(io).await.map_err(|e| format!("HTTP failed: {e}"))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let result = async {
        let response = sender.send_request(request).await.map_err(|e| format!("HTTP failed: {e}"))?;
        let status = response.status().as_u16();
        let _ = Limited::new(response.into_body(), MAX_ANSWER).collect().await;
        Ok(status)
    }
    .await;
    driver.abort();
    result
}

/// rustls with ring and the OS trust store, built once.
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

/// `first × 2^attempts`, at most an hour.
fn retry_after(first: Duration, attempts: u32) -> Duration {
    first.saturating_mul(1u32 << attempts.min(20)).min(MAX_RETRY)
}

/// Delivers due notifications until stopped.
pub(crate) async fn run(state: AppState, mut stopped: watch::Receiver<bool>) {
    let config = state.config().discovery.clone();
    loop {
        if *stopped.borrow() {
            return;
        }
        if let Err(e) = deliver_due(&state).await {
            tracing::warn!(error = %e, "failed to deliver webhook notifications");
        }
        tokio::select! {
            () = tokio::time::sleep(config.poll) => {}
            _ = stopped.changed() => {}
        }
    }
}

async fn deliver_due(state: &AppState) -> Result<(), sluice_store::StoreError> {
    let config = &state.config().discovery;
    loop {
        let due = state.store().claim_webhook_deliveries(&config.instance, config.lease, BATCH).await?;
        if due.is_empty() {
            return Ok(());
        }
        let Some((url, secret)) = state.store().webhook_target().await? else { return Ok(()) };
        for d in &due {
            let outcome =
                match tokio::time::timeout(DELIVERY_TIMEOUT, post(&url, &secret, &state.config().network, d)).await {
                    Ok(r) => r,
                    Err(_) => Err(format!("no answer within {} s", DELIVERY_TIMEOUT.as_secs())),
                };
            let error = outcome.err();
            if let Some(e) = &error {
                tracing::warn!(event = %d.event_id, error = %e, "a webhook delivery failed; it will be retried");
            }
            let delay = retry_after(config.webhook_retry, d.attempts);
            state.store().finish_webhook_delivery(d, &config.instance, error.as_deref(), delay).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_over_time_dot_body() {
        // Reference value from Python: hmac.new(b"s3cret", b"1700000000.{}", hashlib.sha256).hexdigest()
        assert_eq!(
            signature("s3cret", 1_700_000_000, b"{}"),
            "t=1700000000,v1=97926816e98fbb41ccb1673225ff29a2f35369099990e1b1561651e7bd097ebf"
        );
    }

    #[test]
    fn retries_double_up_to_an_hour() {
        let first = Duration::from_secs(5);
        assert_eq!(retry_after(first, 0), Duration::from_secs(5));
        assert_eq!(retry_after(first, 3), Duration::from_secs(40));
        assert_eq!(retry_after(first, 30), MAX_RETRY);
    }
}
