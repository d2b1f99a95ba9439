//! `sluice demo`: the whole service on this machine with nothing to prepare. A throwaway
//! PostgreSQL (TLS with a CA of its own) holding a small shop, a read-only user made with
//! Sluice's own setup script, and `sluice serve` on a temporary data directory with that
//! database registered as a source and discovered. Ctrl-C stops the service, the cluster and
//! removes every file the demo made.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use sluice_core::{CertSource, HostPort, Secret, SourceId, SourceSpec, SslMode};
use sluice_doctor::{generate_password, setup_sql, SetupOptions, DEFAULT_STATEMENT_TIMEOUT};
use sluice_server::{AppState, Config};
use sluice_store::{KeyConfig, NewApiToken, Role, Store, TokenRole};
use sluice_testkit::{Cluster, ClusterOptions, HbaRule, TestCa, TlsFiles};

use crate::exit::Usage;

/// The seeded database and the role Sluice reads it as.
const DATABASE: &str = "shop";
const READ_ONLY_USER: &str = "sluice_ro";
const SOURCE_NAME: &str = "shop";
const ADMIN_LOGIN: &str = "admin";
const SHOP_SQL: &str = include_str!("demo/shop.sql");

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The address the service listens on (a loopback address; port 0 picks a free one).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !args.listen.ip().is_loopback() {
        return Err(Usage::new(
            format!("--listen {} is not a loopback address", args.listen),
            Some("the demo serves only this machine: use 127.0.0.1:PORT".into()),
        )
        .into());
    }
    let bin = sluice_testkit::pg_bin_dir().map_err(|_| no_server_binaries())?;
    for program in ["initdb", "pg_ctl", "postgres"] {
        if !bin.join(program).is_file() {
            return Err(no_server_binaries().into());
        }
    }
    // Listen first: a busy port is an invocation error, found before any cluster exists.
    let listener = tokio::net::TcpListener::bind(args.listen).await.map_err(|e| {
        Usage::new(
            format!("cannot listen on {}: {e}", args.listen),
            Some("pick another port with --listen 127.0.0.1:PORT (0 picks a free one)".into()),
        )
    })?;
    let bound = listener.local_addr()?;
    let shutdown = crate::serve::shutdown_signal()?;

    eprintln!("demo: starting a throwaway PostgreSQL from {}", bin.display());
    let ca = TestCa::new("Sluice demo CA").context("cannot make the demo's TLS certificates")?;
    let cluster = start_cluster(bin, &ca).await?;
    let result = serve_demo(&cluster, &ca, listener, bound, shutdown).await;
    // Stopping the cluster waits for pg_ctl: off the async workers.
    let _ = tokio::task::spawn_blocking(move || drop(cluster)).await;
    result?;
    eprintln!("demo: stopped; the cluster and the data directory are removed");
    Ok(ExitCode::SUCCESS)
}

fn no_server_binaries() -> Usage {
    Usage::new(
        "no PostgreSQL server binaries (initdb, pg_ctl, postgres) found in PG_BIN, on PATH or in /usr/lib/postgresql/*/bin",
        Some(
            "install them (Debian/Ubuntu: `apt-get install postgresql`; Fedora: `dnf install postgresql-server`; \
             macOS: `brew install postgresql`), or set PG_BIN to the directory that holds initdb"
                .into(),
        ),
    )
}

async fn start_cluster(bin: PathBuf, ca: &TestCa) -> anyhow::Result<Cluster> {
    let server = ca.server_cert(&["127.0.0.1", "localhost"]).context("cannot make the server certificate")?;
    let superuser_password = generate_password().context("cannot generate a password")?;
    let opts = ClusterOptions {
        bin_dir: Some(bin),
        tls: Some(TlsFiles { server, client_ca_pem: None }),
        // The superuser seeds the shop over loopback; everyone else must use TLS.
        hba: vec![HbaRule::Raw("host all postgres 127.0.0.1/32 scram-sha-256".into()), HbaRule::HostSslScram],
        settings: Vec::new(),
        superuser_password: Some(superuser_password.expose().to_string()),
    };
    tokio::task::spawn_blocking(move || Cluster::start(opts))
        .await
        .context("the cluster's start was interrupted")?
        .context("PostgreSQL did not start")
}

async fn serve_demo(
    cluster: &Cluster,
    ca: &TestCa,
    listener: tokio::net::TcpListener,
    bound: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    eprintln!("demo: seeding a small shop on port {}", cluster.port());
    let (password, version) = seed(cluster).await?;

    let data = tempfile::Builder::new().prefix("sluice-demo-").tempdir().context("cannot make a data directory")?;
    eprintln!("demo: cluster in {}, service data in {}", cluster.scratch_dir().display(), data.path().display());
    let store = Arc::new(
        Store::open(&data.path().display().to_string(), KeyConfig::DataDir)
            .await
            .map_err(|e| crate::exit::usage_from(&e))?,
    );
    let target = Target { cluster, ca, password, version };
    let outcome = register_and_serve(&store, target, listener, bound, shutdown).await;
    if let Ok(store) = Arc::try_unwrap(store) {
        store.close().await;
    }
    outcome
}

/// The seeded database, as the source registers it.
struct Target<'a> {
    cluster: &'a Cluster,
    ca: &'a TestCa,
    password: Secret,
    /// The server's version, for the banner.
    version: String,
}

/// Creates the shop, then the read-only user with `sluice setup-sql`'s script; returns its
/// password and the server's version.
async fn seed(cluster: &Cluster) -> anyhow::Result<(Secret, String)> {
    let (client, connection) = tokio_postgres::connect(&cluster.superuser_url("postgres"), tokio_postgres::NoTls)
        .await
        .context("cannot reach the demo cluster")?;
    let driver = tokio::spawn(connection);
    client.batch_execute(&format!("CREATE DATABASE {DATABASE}")).await.context("CREATE DATABASE")?;
    drop(client);
    let _ = driver.await;

    let (client, connection) = tokio_postgres::connect(&cluster.superuser_url(DATABASE), tokio_postgres::NoTls)
        .await
        .context("cannot reach the demo database")?;
    let driver = tokio::spawn(connection);
    client.batch_execute(SHOP_SQL).await.context("seeding the shop")?;
    let password = generate_password().context("cannot generate a password")?;
    let script = setup_sql(&SetupOptions {
        user: READ_ONLY_USER.into(),
        database: DATABASE.into(),
        schemas: vec!["public".into(), "analytics".into()],
        elt_owners: vec!["etl".into()],
        read_all_data: false,
        password: password.clone(),
        statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
    })
    .map_err(|e| crate::exit::usage_from(&e))?;
    client.batch_execute(&without_psql_commands(&script)?).await.context("running the setup script")?;
    // One table stays the owner's alone: the doctor and the catalog say so.
    client.batch_execute(&format!("REVOKE SELECT ON staff_salaries FROM {READ_ONLY_USER}")).await.context("REVOKE")?;
    let version = client
        .simple_query("SHOW server_version")
        .await
        .ok()
        .and_then(|rows| {
            rows.iter().find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
                _ => None,
            })
        })
        .unwrap_or_default();
    drop(client);
    let _ = driver.await;
    Ok((password, version))
}

/// The setup script is written for psql; its only meta-command turns on stop-at-first-error,
/// which a simple-query batch does anyway. Any other meta-command is refused, not skipped.
fn without_psql_commands(script: &str) -> anyhow::Result<String> {
    let mut sql = String::with_capacity(script.len());
    for line in script.lines() {
        if line.trim_start().starts_with('\\') {
            anyhow::ensure!(
                line.trim() == "\\set ON_ERROR_STOP on",
                "unexpected psql command in the setup script: {line}"
            );
            continue;
        }
        sql.push_str(line);
        sql.push('\n');
    }
    Ok(sql)
}

async fn register_and_serve(
    store: &Arc<Store>,
    target: Target<'_>,
    listener: tokio::net::TcpListener,
    bound: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let Target { cluster, ca, password, version } = target;
    let mut spec = SourceSpec::new(cluster.host(), DATABASE, READ_ONLY_USER);
    spec.hosts = vec![HostPort { host: cluster.host().into(), port: cluster.port() }];
    spec.sslmode = SslMode::VerifyFull;
    spec.sslrootcert = Some(CertSource::Pem(ca.cert_pem.clone()));
    spec.password = Some(password);
    spec.validate().map_err(|e| crate::exit::usage_from(&e))?;
    let id: SourceId = SOURCE_NAME.parse().context("the demo's source id")?;
    let (settings, secrets) = spec.split();
    store.put_source(&id, SOURCE_NAME, &settings, &secrets).await.map_err(|e| crate::exit::usage_from(&e))?;

    let admin_password = generate_password().context("cannot generate a password")?;
    let admin =
        store.create_user(ADMIN_LOGIN, Role::Admin, &admin_password).await.map_err(|e| crate::exit::usage_from(&e))?;
    let (_, token) = store
        .create_token(&NewApiToken {
            name: "demo".into(),
            role: TokenRole::Admin,
            source: None,
            created_by: Some(admin.id),
        })
        .await
        .map_err(|e| crate::exit::usage_from(&e))?;

    let state = AppState::new(store.clone(), Config::default());
    let server = tokio::spawn(sluice_server::serve(listener, state.clone(), shutdown));
    eprintln!("demo: discovering the source's schema");
    match sluice_server::refresh_source(&state, &id).await {
        Ok(_) => {}
        Err(e) => eprintln!("demo: discovery failed: {} ({})", e.message, e.code),
    }

    let base = format!("http://{bound}");
    let source = format!("{base}/api/v1/sources/{id}");
    println!("Sluice demo is running at {base}");
    println!("  sign in:  POST {base}/api/v1/sessions as {ADMIN_LOGIN}, password {}", admin_password.expose());
    println!("  source:   {SOURCE_NAME}: PostgreSQL {} on 127.0.0.1:{}, TLS verify-full", version, cluster.port());
    println!("Try (with the token below in SLUICE_TOKEN):");
    println!("  curl -s -H \"Authorization: Bearer $SLUICE_TOKEN\" -X POST {source}/test");
    println!("  curl -s -H \"Authorization: Bearer $SLUICE_TOKEN\" {source}/catalog");
    println!(
        "  curl -s -H \"Authorization: Bearer $SLUICE_TOKEN\" -H 'Content-Type: application/json' \\\n    \
         -d '{{\"sql\":\"SELECT country, count(*) FROM customers GROUP BY 1 ORDER BY 2 DESC\",\"format\":\"csv\"}}' \\\n    \
         {source}/query"
    );
    println!("Ctrl-C stops the demo and removes the throwaway database and the data directory.");
    println!("API token (admin; shown once):");
    println!("{}", token.expose());
    server.await.context("the service stopped unexpectedly")?.context("the service failed")?;
    Ok(())
}
