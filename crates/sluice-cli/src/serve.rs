//! `sluice serve`: the workspace service on one address, over a store in a data directory
//! (SQLite) or a shared PostgreSQL store.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use sluice_connect::policy::IpRange;
use sluice_connect::NetworkPolicy;
use sluice_server::{AppState, Config, DiscoveryConfig, StoreDenial};
use sluice_store::{KeyConfig, Store, StoreError};

use crate::exit::{self, Usage};

/// How long the printed setup link stays valid.
const SETUP_TTL: Duration = Duration::from_secs(3600);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The data directory of the SQLite store (and its master.key).
    #[arg(long, value_name = "DIR", default_value = "./sluice-data")]
    data_dir: PathBuf,
    /// The address to listen on. Anything but a loopback address needs HTTPS (--tls-cert and
    /// --tls-key) or --insecure-http.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Serve HTTPS with this PEM certificate chain (the server's certificate first, then its
    /// intermediates); needs --tls-key.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1, unencrypted).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// A shared store instead of the data directory: postgres://USER@HOST/DATABASE (or
    /// sqlite://PATH). Its master key comes from SLUICE_MASTER_KEY.
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// The URL people reach the service at (for the setup link; https makes cookies Secure).
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// Serve plain HTTP on a non-loopback address (behind a proxy that terminates TLS).
    #[arg(long, conflicts_with = "tls_cert")]
    insecure_http: bool,
    /// Refuse sources and SSH bastions resolving into this range (CIDR, or one address), besides
    /// the link-local and cloud metadata ranges always refused. Repeatable; the variable takes a
    /// comma-separated list.
    #[arg(long, value_name = "CIDR", env = "SLUICE_DENY_CIDR", value_delimiter = ',', value_parser = cidr)]
    deny_cidr: Vec<IpRange>,
    /// Let sources and SSH bastions resolve only into these ranges (the denied ones stay
    /// refused). Repeatable; the variable takes a comma-separated list.
    #[arg(long, value_name = "CIDR", env = "SLUICE_ALLOW_CIDR", value_delimiter = ',', value_parser = cidr)]
    allow_cidr: Vec<IpRange>,
    /// How many days of catalog change history to keep (each source's latest snapshot always
    /// stays).
    #[arg(long, value_name = "DAYS", env = "SLUICE_KEEP_HISTORY_DAYS", default_value_t = 90,
          value_parser = clap::value_parser!(u32).range(1..=36_500))]
    keep_history_days: u32,
    /// The memory the discoveries in flight may hold together, in MiB (16 to 1048576): before
    /// it connects, a run reserves 3 KiB per relation its source's last run found, and waits
    /// until that fits; a source larger than the budget runs alone.
    #[arg(long, value_name = "MIB", env = "SLUICE_DISCOVERY_MEMORY_MIB", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(16..=1_048_576))]
    discovery_memory_mib: u64,
    /// Hidden, for tests and benchmarks: the discovery interval of sources that set none, in
    /// milliseconds (a source's own interval, set through the API, is 60 s or more).
    #[arg(long, hide = true, value_name = "MS", value_parser = clap::value_parser!(u64).range(100..))]
    discovery_interval_ms: Option<u64>,
    /// Hidden, for tests: how long a claimed source stays leased without renewal, in
    /// milliseconds (how soon another instance takes over from one that died).
    #[arg(long, hide = true, value_name = "MS", value_parser = clap::value_parser!(u64).range(100..))]
    discovery_lease_ms: Option<u64>,
    /// Hidden, for tests: how often the store is asked for due sources, in milliseconds.
    #[arg(long, hide = true, value_name = "MS", value_parser = clap::value_parser!(u64).range(10..))]
    discovery_poll_ms: Option<u64>,
}

/// The discovery scheduler's settings: the defaults, but for the memory budget and the hidden
/// test flags.
fn discovery_config(args: &Args) -> DiscoveryConfig {
    let mut config = DiscoveryConfig { memory_budget: args.discovery_memory_mib << 20, ..DiscoveryConfig::default() };
    if let Some(ms) = args.discovery_interval_ms {
        config.default_interval = Duration::from_millis(ms);
    }
    if let Some(ms) = args.discovery_lease_ms {
        config.lease = Duration::from_millis(ms);
    }
    if let Some(ms) = args.discovery_poll_ms {
        config.poll = Duration::from_millis(ms);
    }
    config
}

fn cidr(text: &str) -> Result<IpRange, String> {
    text.parse::<IpRange>().map_err(|e| format!("{e} (give a range such as 10.0.0.0/8 or fd00::/8, or one address)"))
}

/// The store a short command names (`--store URL`, else the data directory), opened beside a
/// service that may be running on it ([`Store::open_beside_service`]).
pub async fn open_store(data_dir: &std::path::Path, store: Option<&str>) -> anyhow::Result<Store> {
    let target = store_target(data_dir, store);
    let key = KeyConfig::from_env().map_err(|e| exit::usage_from(&e))?;
    let store = Store::open_beside_service(&target, key).await.map_err(|e| exit::usage_from(&e))?;
    if let Some(notice) = store.notice() {
        eprintln!("note: {notice}");
    }
    Ok(store)
}

fn store_target(data_dir: &std::path::Path, store: Option<&str>) -> String {
    match store {
        Some(url) => url.to_string(),
        None => data_dir.display().to_string(),
    }
}

/// The store `serve` owns: a SQLite data directory is locked for the process's life, so a
/// second instance on it is refused, pointing at the shared PostgreSQL store.
async fn open_owned_store(data_dir: &std::path::Path, store: Option<&str>) -> anyhow::Result<Store> {
    let target = store_target(data_dir, store);
    let key = KeyConfig::from_env().map_err(|e| exit::usage_from(&e))?;
    let store = match Store::open(&target, key).await {
        Ok(store) => store,
        Err(StoreError::Locked { path }) => {
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.display().to_string(),
                _ => ".".into(),
            };
            return Err(Usage::new(
                format!(
                    "the data directory {dir} is in use by another sluice serve (it holds the lock on {}.lock); \
                     one data directory serves one instance",
                    path.display()
                ),
                Some(
                    "stop the other instance first; to run several instances, give each the same shared store: \
                     --store postgres://USER@HOST/DATABASE with the same SLUICE_MASTER_KEY"
                        .into(),
                ),
            )
            .into());
        }
        Err(e) => return Err(exit::usage_from(&e).into()),
    };
    if let Some(notice) = store.notice() {
        eprintln!("note: {notice}");
    }
    Ok(store)
}

/// The TLS settings the flags name: both files or neither.
fn tls_settings(args: &Args) -> anyhow::Result<Option<Arc<sluice_server::tls::ServerConfig>>> {
    let (cert, key) = match (&args.tls_cert, &args.tls_key) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        (Some(_), None) => {
            return Err(Usage::new(
                "--tls-cert needs --tls-key",
                Some("give the certificate's private key with --tls-key FILE".into()),
            )
            .into())
        }
        (None, Some(_)) => {
            return Err(Usage::new(
                "--tls-key needs --tls-cert",
                Some("give the certificate chain with --tls-cert FILE".into()),
            )
            .into())
        }
    };
    Ok(Some(sluice_server::tls::load(cert, key).map_err(|e| exit::usage_from(&e))?))
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let tls = tls_settings(&args)?;
    if !args.listen.ip().is_loopback() && tls.is_none() && !args.insecure_http {
        return Err(Usage::new(
            format!("--listen {} is not a loopback address, and serving it plain HTTP needs --insecure-http", args.listen),
            Some(
                "serve HTTPS with --tls-cert FILE --tls-key FILE, or pass --insecure-http if a proxy in front terminates TLS"
                    .into(),
            ),
        )
        .into());
    }
    let public_url = args.public_url.as_deref().map(|u| u.trim_end_matches('/').to_string());
    if let Some(url) = &public_url {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(Usage::new(format!("--public-url {url} is not an http(s) URL"), None).into());
        }
    }
    let store = Arc::new(open_owned_store(&args.data_dir, args.store.as_deref()).await?);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Usage::new(format!("cannot listen on {}: {e}", args.listen), None))?;
    let bound = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let base = public_url.clone().unwrap_or_else(|| format!("{scheme}://{bound}"));
    if store.users().await.map_err(|e| exit::usage_from(&e))?.is_empty() {
        let token = store.create_setup_token(SETUP_TTL).await.map_err(|e| exit::usage_from(&e))?;
        eprintln!("No administrator yet. Create the first one within the hour (the link works once):");
        eprintln!("  {base}/setup#token={}", token.expose());
        eprintln!(
            "  or: curl -X POST {base}/api/v1/setup -H 'Content-Type: application/json' -d '{{\"setup_token\":\"{}\",\"login\":\"admin\",\"password\":\"…\"}}'",
            token.expose()
        );
    }
    let discovery = discovery_config(&args);
    let mut network = NetworkPolicy::default();
    network.deny.extend(args.deny_cidr);
    network.allow = args.allow_cidr;
    let mut config = Config {
        secure_cookies: base.starts_with("https://"),
        network,
        history_keep: Duration::from_secs(u64::from(args.keep_history_days) * 86_400),
        discovery,
        ..Config::default()
    };
    match config.deny_store(store.location()).await {
        Ok(StoreDenial::NoServer) => {}
        Ok(StoreDenial::Denied(addrs)) => {
            let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
            eprintln!("network policy: sources may not reach the store's server ({})", list.join(", "));
        }
        Ok(StoreDenial::Socket(dir)) => eprintln!(
            "network policy: the store is reached through a Unix socket in {}, so no address of its server is refused; \
             name its TCP address with --deny-cidr",
            dir.display()
        ),
        Err(e) => {
            return Err(Usage::new(
                format!("cannot resolve the store's host to keep sources away from it: {e}"),
                Some("check the --store URL's host, or the resolver".into()),
            )
            .into())
        }
    }
    let state = AppState::new(store.clone(), config);
    let shutdown = shutdown_signal()?;
    eprintln!("sluice serve: listening on {scheme}://{bound} (store: {})", store.location());
    match tls {
        Some(tls) => sluice_server::serve_tls(listener, tls, state, shutdown).await?,
        None => sluice_server::serve(listener, state, shutdown).await?,
    }
    // stderr may be gone by now (a closed pipe); stopping cleanly matters more than this line.
    let _ = writeln!(std::io::stderr(), "sluice serve: stopped");
    if let Ok(store) = Arc::try_unwrap(store) {
        store.close().await;
    }
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGINT or SIGTERM. The handlers are installed now, before the caller says it
/// listens, so a signal sent right after that line stops the server gracefully.
pub(crate) fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
