//! `sluice token create`: a new API token, made offline against the store (for automation).

use std::path::PathBuf;
use std::process::ExitCode;

use sluice_core::SourceId;
use sluice_store::{NewApiToken, TokenRole};

use crate::exit::{self, Usage};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Create a token and print it on the last line of standard output (shown only once).
    Create(CreateArgs),
}

#[derive(clap::Args, Debug)]
struct CreateArgs {
    /// The data directory of a SQLite store.
    #[arg(long, value_name = "DIR", conflicts_with = "store", required_unless_present = "store")]
    data_dir: Option<PathBuf>,
    /// A store URL (postgres://… or sqlite://PATH); its master key comes from SLUICE_MASTER_KEY.
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// What the token is for (shown in listings and the audit log).
    #[arg(long)]
    name: String,
    /// admin, analyst, or refresh (may only trigger discovery of the source given by --source:
    /// the ELT hook).
    #[arg(long, value_parser = ["admin", "analyst", "refresh"])]
    role: String,
    /// Scope the token to this source (required with --role refresh).
    #[arg(long, value_name = "ID")]
    source: Option<String>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Command::Create(args) = args.command;
    let role: TokenRole = args.role.parse().map_err(|e| exit::usage_from(&e))?;
    let source: Option<SourceId> = match &args.source {
        Some(s) => Some(s.parse().map_err(|e: sluice_core::BadSourceId| Usage::new(format!("--source: {e}"), None))?),
        None if role == TokenRole::Refresh => {
            return Err(Usage::new(
                "a refresh token is scoped to one source",
                Some("give the source's id with --source ID".into()),
            )
            .into())
        }
        None => None,
    };
    let dir = args.data_dir.unwrap_or_default();
    let store = crate::serve::open_store(&dir, args.store.as_deref()).await?;
    let exists = match &source {
        Some(id) => store.source(id).await.map(|_| ()),
        None => Ok(()),
    };
    let created = match exists {
        Ok(()) => store
            .create_token(&NewApiToken { name: args.name, role, source: source.clone(), created_by: None })
            .await
            .map_err(|e| Usage::new(format!("cannot create the token: {e}"), None)),
        Err(e) => Err(Usage::new(format!("--source: {e}"), Some("name a saved source's id".into()))),
    };
    let (token, text) = match created {
        Ok(t) => t,
        Err(e) => {
            store.close().await;
            return Err(e.into());
        }
    };
    let entry = sluice_store::NewAuditEntry {
        actor: "cli".into(),
        kind: "token.create".into(),
        source,
        detail: serde_json::json!({"token": token.public_id, "name": token.name, "role": token.role}),
    };
    let audited = store.append_audit(&entry).await;
    store.close().await;
    audited.map_err(|e| exit::usage_from(&e))?;
    eprintln!("created {} token `{}` ({}); it is shown only now:", token.role, token.name, token.public_id);
    println!("{}", text.expose());
    Ok(ExitCode::SUCCESS)
}
