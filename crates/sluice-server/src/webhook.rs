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
use std::time::Duration;

use sluice_connect::NetworkPolicy;
use sluice_core::Secret;
use sluice_http::{Body, Method, Outgoing, Url};
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
/// Notifications leased at once: few enough that the whole batch, each delivery taking its
/// longest, is posted well inside the batch's lease.
const BATCH: u32 = 4;
/// How long a claimed batch stays leased to this instance (it is not renewed): another instance
/// retries what is left of it only after that. Not the discovery lease, which is short so that a
/// source is taken over within its interval.
const DELIVERY_LEASE: Duration = Duration::from_secs(60);
/// What a delivery must still have of the lease when it starts, beyond its own longest time: the
/// store's record of the previous one, and clocks that differ between instances.
const LEASE_MARGIN: Duration = Duration::from_secs(10);
// A batch whose every delivery times out still ends inside its lease.
const _: () = assert!(BATCH as u64 * DELIVERY_TIMEOUT.as_secs() + LEASE_MARGIN.as_secs() <= DELIVERY_LEASE.as_secs());

/// Why a URL cannot be a webhook: the message names what is wrong; `hint` says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadUrl {
    pub message: String,
    pub hint: String,
}

/// A URL checked for delivery: what to send, and the checked addresses to connect to. Errors
/// name only its host (a receiver's URL may carry a secret in its path).
struct Target {
    url: Url,
    addrs: Vec<SocketAddr>,
}

/// Parses `url` (http or https, no user info), resolves its host and checks every address
/// against `policy`.
async fn target(url: &str, policy: &NetworkPolicy) -> Result<Target, BadUrl> {
    let bad = |message: String, hint: &str| BadUrl { message, hint: hint.to_string() };
    let parsed = Url::parse(url).map_err(|e| bad(e.to_string(), "give an https:// URL"))?.naming_host();
    if parsed.has_user_info() {
        return Err(bad(
            "the URL carries user info".into(),
            "leave credentials out of the URL: the receiver checks the signature instead",
        ));
    }
    let host = parsed.host().to_string();
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), parsed.port()))
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
    Ok(Target { url: parsed, addrs: resolved })
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
    let signed = signature(secret.expose(), t, d.body.as_bytes());
    let headers = [
        ("content-type", "application/json"),
        ("user-agent", concat!("sluice/", env!("CARGO_PKG_VERSION"))),
        (SIGNATURE_HEADER, signed.as_str()),
        (EVENT_ID_HEADER, d.event_id.as_str()),
    ];
    let request = Outgoing { method: &Method::POST, headers: &headers, body: d.body.as_bytes() };
    let mut last = String::from("no address to connect to");
    for addr in &target.addrs {
        let tcp = match TcpStream::connect(addr).await {
            Ok(tcp) => tcp,
            Err(e) => {
                last = format!("cannot connect to {addr}: {e}");
                continue;
            }
        };
        let answer = sluice_http::exchange(tcp, &target.url, request, Body::Drain(MAX_ANSWER))
            .await
            .map_err(|e| e.to_string())?;
        return match answer.status {
            200..=299 => Ok(()),
            s => Err(format!("the receiver answered {s}")),
        };
    }
    Err(last)
}

/// `first × 2^attempts`, at most an hour.
fn retry_after(first: Duration, attempts: u32) -> Duration {
    first.saturating_mul(1u32 << attempts.min(20)).min(MAX_RETRY)
}

/// Whether a delivery may start `elapsed` after its batch was claimed: it ends, at its longest,
/// with [`LEASE_MARGIN`] of the lease to spare.
fn another_fits(elapsed: Duration) -> bool {
    elapsed + DELIVERY_TIMEOUT + LEASE_MARGIN <= DELIVERY_LEASE
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
        let claimed = tokio::time::Instant::now();
        let due = state.store().claim_webhook_deliveries(&config.instance, DELIVERY_LEASE, BATCH).await?;
        if due.is_empty() {
            return Ok(());
        }
        let Some((url, secret)) = state.store().webhook_target().await? else { return Ok(()) };
        for d in &due {
            // Posted after its lease ended, a notification could reach the receiver twice: once
            // from here and once from the instance that claimed it meanwhile. What is left waits
            // for its lease to end and goes out in a later batch.
            if !another_fits(claimed.elapsed()) {
                tracing::warn!(
                    event = %d.event_id,
                    "the store was too slow for this batch of webhook notifications; the rest go out after their lease"
                );
                break;
            }
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
    fn a_delivery_starts_only_while_it_can_end_inside_the_lease() {
        assert!(another_fits(Duration::ZERO));
        // Every delivery of a batch taking its longest: the last still starts in time.
        assert!(another_fits(DELIVERY_TIMEOUT * (BATCH - 1)));
        assert!(another_fits(DELIVERY_LEASE - DELIVERY_TIMEOUT - LEASE_MARGIN));
        assert!(!another_fits(DELIVERY_LEASE - DELIVERY_TIMEOUT - LEASE_MARGIN + Duration::from_millis(1)));
        assert!(!another_fits(DELIVERY_LEASE));
    }

    #[test]
    fn retries_double_up_to_an_hour() {
        let first = Duration::from_secs(5);
        assert_eq!(retry_after(first, 0), Duration::from_secs(5));
        assert_eq!(retry_after(first, 3), Duration::from_secs(40));
        assert_eq!(retry_after(first, 30), MAX_RETRY);
    }
}
