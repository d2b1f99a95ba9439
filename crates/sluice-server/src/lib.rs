//! The workspace service: Sluice's HTTP API over the store ([`sluice_store`]) and the engine
//! (doctor, catalog, query), JSON under `/api/v1`.
//!
//! Paths outside `/api/` and `/metrics` are the web workspace's pages and assets (`sluice_web`).
//!
//! [`serve`] is the one entry point (or [`serve_tls`], HTTPS with [`tls::load`]'s settings): it
//! takes a bound listener (tests bind port 0) and a shutdown future, and drains open requests
//! before it returns. [`router`] builds the routes, one module per resource under `routes/`;
//! authorization is an extractor named for the access it proves ([`auth::Authenticated`],
//! [`auth::RequireAdmin`]), so a handler's signature states who may call it. Every error is an [`ApiError`] (`{"error":{"code","message","field"}}`): bad input
//! is a 4xx naming the field. Each source has one capped [`sluice_connect::Pool`], held in
//! [`AppState`], built on first use and rebuilt when the source is edited.
//!
//! Must not do: decide what SQL may run, speak the PostgreSQL protocol, or keep state of its own
//! outside the store (sign-in throttling and pools are per instance, by design).

pub mod alerts;
pub mod auth;
mod discovery;
mod error;
mod form;
mod metrics;
pub mod openapi;
mod routes;
mod scheduler;
pub mod tls;
pub mod webhook;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use sluice_connect::policy::ExactAddress;
use sluice_connect::{Connector, NetworkPolicy, Pool, PoolOptions};
use sluice_core::SourceId;
use sluice_store::{Store, StoreLocation, StoreServer};
use tracing::Instrument;

pub use discovery::{prune_history, refresh_source, Refreshed, DEFAULT_HISTORY_KEEP};
pub use error::{ApiError, ApiJson};
pub use scheduler::{DiscoveryConfig, Scheduler, RUN_LOG_TARGET};

/// The header a request id travels in, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// How the service behaves; [`Config::default`] is what `sluice serve` uses.
#[derive(Debug, Clone)]
pub struct Config {
    /// Cookies are marked `Secure` (the public URL is https).
    pub secure_cookies: bool,
    /// Sessions per source (the pool's cap, and so the source's query concurrency).
    pub pool_size: usize,
    /// How long a request waits for one of a source's sessions before it gets 429.
    pub pool_wait: Duration,
    /// How many requests may wait for a source's sessions at once; more get 429 at once.
    pub pool_queue: usize,
    /// The largest request body accepted.
    pub body_limit: usize,
    /// Row cap of interactive (JSON) queries when the request gives none.
    pub interactive_max_rows: u64,
    /// Failed sign-ins (per login and address) before further attempts get 429.
    pub sign_in_failures: u32,
    /// How long sign-in stays refused after too many failures.
    pub sign_in_lockout: Duration,
    /// How long a browser session lives.
    pub session_ttl: Duration,
    /// After shutdown is asked for, how long open requests (streaming queries) may still run.
    pub shutdown_grace: Duration,
    /// Which addresses sources and their bastions may resolve to: checked before every dial of
    /// every connector the service builds (pools, Test Connection, discovery, cancel requests).
    pub network: NetworkPolicy,
    /// Where `rds_iam` sources get their AWS credentials.
    pub iam: IamSetup,
    /// The discovery scheduler's settings ([`Scheduler`]).
    pub discovery: DiscoveryConfig,
    /// How long catalog changes (and the snapshots and discovery runs they need) are kept; a
    /// source's latest snapshot always stays ([`prune_history`]).
    pub history_keep: Duration,
}

/// Where `rds_iam` sources get AWS credentials, and the clock their tokens are signed at.
#[derive(Clone, Default)]
pub struct IamSetup {
    /// The variables the AWS credential chain reads; `None`: the process environment, read each
    /// time a source's connector is built.
    pub env: Option<sluice_iam::Env>,
    /// Signs at this clock instead of the system's.
    pub clock: Option<sluice_iam::Clock>,
}

impl std::fmt::Debug for IamSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IamSetup").field("env", &self.env).field("fixed_clock", &self.clock.is_some()).finish()
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            secure_cookies: false,
            pool_size: 5,
            pool_wait: Duration::from_secs(10),
            pool_queue: 32,
            body_limit: 2 << 20,
            interactive_max_rows: 10_000,
            sign_in_failures: 5,
            sign_in_lockout: Duration::from_secs(60),
            session_ttl: Duration::from_secs(12 * 3600),
            shutdown_grace: Duration::from_secs(30),
            network: NetworkPolicy::default(),
            iam: IamSetup::default(),
            discovery: DiscoveryConfig::default(),
            history_keep: DEFAULT_HISTORY_KEEP,
        }
    }
}

/// What [`Config::deny_store`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreDenial {
    /// A SQLite store: no server to refuse.
    NoServer,
    /// A PostgreSQL store reached through a Unix socket in this directory: it has no address to
    /// refuse, so a source naming the same server by a TCP address is not refused by this rule.
    Socket(std::path::PathBuf),
    /// These addresses (the store host's, at its port) are now refused.
    Denied(Vec<SocketAddr>),
}

impl Config {
    /// Refuses the PostgreSQL store's own server to sources (so nobody registers the store as a
    /// source and reads every source's sealed secrets through it): every address its host
    /// resolves to now, at the store's port, joins the policy's exact denied addresses. The name
    /// is resolved once, here; the same machine's other addresses and ports are left to `deny`.
    pub async fn deny_store(&mut self, location: &StoreLocation) -> std::io::Result<StoreDenial> {
        match location.server() {
            None => Ok(StoreDenial::NoServer),
            Some(StoreServer::Socket(dir)) => Ok(StoreDenial::Socket(dir)),
            Some(StoreServer::Tcp { host, port }) => {
                let mut found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port)).await?.collect();
                found.sort();
                found.dedup();
                if found.is_empty() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("the store's host {host} resolves to no address"),
                    ));
                }
                for addr in &found {
                    let exact = ExactAddress::Socket(*addr);
                    if !self.network.deny_addresses.contains(&exact) {
                        self.network.deny_addresses.push(exact);
                    }
                }
                Ok(StoreDenial::Denied(found))
            }
        }
    }
}

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

/// How long a query takes the store's word that its source exists.
pub const SOURCE_CHECK_TTL: Duration = Duration::from_secs(1);
/// At most this many sources are remembered as existing; past it, the memory starts over.
const KNOWN_SOURCES_MAX: usize = 4096;

struct Inner {
    store: Arc<Store>,
    config: Config,
    pools: tokio::sync::Mutex<HashMap<SourceId, Pool>>,
    /// When the store last said each source exists (see [`AppState::check_source`]).
    known_sources: Mutex<HashMap<SourceId, Instant>>,
    sign_ins: Mutex<HashMap<String, auth::Failures>>,
    /// Set once the shutdown grace is over: streaming responses end at once.
    closing: tokio::sync::watch::Sender<bool>,
    metrics: metrics::Metrics,
    wake: scheduler::WakeHandle,
}

impl AppState {
    pub fn new(store: Arc<Store>, config: Config) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                store,
                config,
                pools: tokio::sync::Mutex::new(HashMap::new()),
                known_sources: Mutex::new(HashMap::new()),
                sign_ins: Mutex::new(HashMap::new()),
                closing: tokio::sync::watch::Sender::new(false),
                metrics: metrics::Metrics::default(),
                wake: Default::default(),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The source's pool, built from its stored spec on first use.
    pub async fn pool(&self, id: &SourceId) -> Result<Pool, ApiError> {
        let mut pools = self.inner.pools.lock().await;
        if let Some(pool) = pools.get(id) {
            return Ok(pool.clone());
        }
        let spec = self.store().source_spec(id).await?;
        let iam = self.iam_signer(Some(id), &spec);
        let mut connector = Connector::open(spec).await?.with_policy(self.config().network.clone());
        if let Some(iam) = iam {
            connector = connector.with_iam(iam);
        }
        let options = PoolOptions {
            max_size: self.config().pool_size,
            acquire_timeout: self.config().pool_wait,
            ..Default::default()
        };
        let pool = Pool::new(connector, options);
        pools.insert(id.clone(), pool.clone());
        Ok(pool)
    }

    /// The token signer of an `rds_iam` source: the configured environment and clock, and the
    /// role session name `sluice-<id>` unless the source names one.
    pub(crate) fn iam_signer(
        &self,
        id: Option<&SourceId>,
        spec: &sluice_core::SourceSpec,
    ) -> Option<sluice_iam::IamAuth> {
        let sluice_core::Auth::RdsIam(iam) = &spec.auth else { return None };
        let setup = &self.config().iam;
        let env = setup.env.clone().unwrap_or_else(sluice_iam::Env::from_process);
        let mut signer = sluice_iam::IamAuth::new(iam.clone(), env);
        if let Some(clock) = &setup.clock {
            signer = signer.with_clock(clock.clone());
        }
        if let Some(id) = id {
            signer = signer.with_session_name(format!("sluice-{id}"));
        }
        Some(signer)
    }

    /// Fails unless the source exists. The store's yes is taken for [`SOURCE_CHECK_TTL`]: a
    /// source deleted through this instance is forgotten at once ([`AppState::drop_pool`]), one
    /// deleted through another instance sharing the store is refused here at most that much later.
    pub(crate) async fn check_source(&self, id: &SourceId) -> Result<(), ApiError> {
        let known = self.inner.known_sources.lock().ok().and_then(|m| m.get(id).copied());
        if known.is_some_and(|at| at.elapsed() < SOURCE_CHECK_TTL) {
            return Ok(());
        }
        self.store().source(id).await?;
        if let Ok(mut m) = self.inner.known_sources.lock() {
            if m.len() >= KNOWN_SOURCES_MAX {
                m.clear();
            }
            m.insert(id.clone(), Instant::now());
        }
        Ok(())
    }

    /// Forgets a source's pool (after an edit or a delete); its sessions close once returned.
    pub async fn drop_pool(&self, id: &SourceId) {
        if let Ok(mut m) = self.inner.known_sources.lock() {
            m.remove(id);
        }
        self.inner.pools.lock().await.remove(id);
    }

    /// Wakes this instance's scheduler: a run was asked for, or a source is due now.
    pub(crate) fn wake_scheduler(&self) {
        self.inner.wake.wake();
    }

    pub(crate) fn wake_handle(&self) -> scheduler::WakeHandle {
        self.inner.wake.clone()
    }

    pub(crate) fn metrics(&self) -> &metrics::Metrics {
        &self.inner.metrics
    }

    /// Every pool built so far, by source.
    pub(crate) async fn pools_snapshot(&self) -> Vec<(SourceId, Pool)> {
        let pools = self.inner.pools.lock().await;
        let mut all: Vec<(SourceId, Pool)> = pools.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Completes when streaming responses must end (the shutdown grace is over).
    pub(crate) fn closing(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.inner.closing.subscribe();
        async move {
            if rx.wait_for(|closing| *closing).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    fn sign_ins(&self) -> std::sync::MutexGuard<'_, HashMap<String, auth::Failures>> {
        match self.inner.sign_ins.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// The API's routes with their layers, and the web workspace's pages on every other path.
pub fn router(state: AppState) -> Router {
    let limit = state.config().body_limit;
    let (routes, _) = openapi::routes().split_for_parts();
    Router::new()
        .merge(routes)
        .fallback(page_or_not_found)
        .layer(DefaultBodyLimit::max(limit))
        // Outermost: every response, errors and rejections included, carries the request id
        // and is counted.
        .layer(axum::middleware::from_fn_with_state(state.clone(), request_id))
        .with_state(state)
}

/// Any path no route took: under `/api/` (or `/metrics`) a JSON 404, as every API answer is JSON;
/// anywhere else the web workspace (`sluice_web`), whose pages route on the client.
async fn page_or_not_found(req: Request) -> Response {
    let path = req.uri().path();
    let reserved =
        |prefix: &str| path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    if reserved("/api") || reserved("/metrics") {
        return axum::response::IntoResponse::into_response(routes::not_found().await);
    }
    sluice_web::serve(req).await
}

/// Serves the API on `listener` until `shutdown` completes, then stops accepting and waits for
/// open requests (running queries included) to finish, at most [`Config::shutdown_grace`]; a
/// query still streaming then is dropped, which cancels its statement.
///
/// The instance's discovery [`Scheduler`] runs alongside, from the start until the requests are
/// drained; its runs in flight are then cancelled and their sources released to any instance.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_on(listener, None, state, shutdown).await
}

/// [`serve`] over HTTPS: each connection's TLS handshake (see [`tls::TlsListener`]) finishes
/// before the HTTP server sees it.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_on(listener, Some(tls), state, shutdown).await
}

async fn serve_on(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let scheduler = Scheduler::start(state.clone());
    let served = serve_requests(listener, tls, state, shutdown).await;
    scheduler.stop().await;
    served
}

async fn serve_requests(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = state.config().shutdown_grace;
    let closing = state.inner.clone();
    let (asked_tx, asked_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = asked_tx.send(());
    };
    use axum::serve::ListenerExt;
    use std::future::IntoFuture;
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    // A response is its head and then its body in pieces: without TCP_NODELAY, Nagle's algorithm
    // holds a small piece back until the client's delayed ACK, tens of milliseconds per request.
    let server = match tls {
        None => {
            let listener = listener.tap_io(|tcp: &mut tokio::net::TcpStream| set_nodelay(tcp));
            axum::serve(listener, app).with_graceful_shutdown(signal).into_future()
        }
        Some(config) => {
            let listener = tls::TlsListener::new(listener, config)?.tap_io(
                |tls: &mut tokio_rustls::server::TlsStream<tokio::net::TcpStream>| set_nodelay(tls.get_ref().0),
            );
            axum::serve(listener, app).with_graceful_shutdown(signal).into_future()
        }
    };
    tokio::pin!(server);
    let deadline = async move {
        if asked_rx.await.is_err() {
            // The server ended on its own; never let the deadline win then.
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = &mut server => return result,
        () = deadline => {}
    }
    // Past the grace: streaming responses end now (a query's statement is cancelled as for a
    // client that went away), and their connections close.
    tracing::warn!(grace_ms = grace.as_millis() as u64, "open requests outlived the shutdown grace; ending them");
    closing.closing.send_replace(true);
    match tokio::time::timeout(grace, server).await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

fn set_nodelay(tcp: &tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY");
    }
}

/// The incoming `X-Request-Id` when it is short printable text, else a new one: on the request's
/// span and echoed on the response.
async fn request_id(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(new_request_id);
    let value = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    req.headers_mut().insert(REQUEST_ID, value.clone());
    let span = tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path());
    let mut response = next.run(req).instrument(span).await;
    response.headers_mut().insert(REQUEST_ID, value);
    state.metrics().response(response.status().as_u16());
    response
}

fn new_request_id() -> String {
    let mut bytes = [0u8; 12];
    if getrandom::fill(&mut bytes).is_err() {
        return "unknown".into();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
