//! `sluice rotate-master-key`: re-seals every secret in the store under a new master key, in one
//! transaction. With the data directory's key file the store replaces the file itself, safely;
//! with a key given in `SLUICE_MASTER_KEY` the new key comes from `SLUICE_NEW_MASTER_KEY`, or is
//! generated and printed once for the operator's secret store.

use std::path::PathBuf;
use std::process::ExitCode;

use sluice_store::{KeyConfig, MasterKey, NewAuditEntry, Store, MASTER_KEY_ENV, NEW_MASTER_KEY_ENV};

use crate::exit::{self, Usage};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The data directory of a SQLite store (its master.key is replaced).
    #[arg(long, value_name = "DIR", conflicts_with = "store", required_unless_present = "store")]
    data_dir: Option<PathBuf>,
    /// A store URL (postgres://… or sqlite://PATH); its key comes from SLUICE_MASTER_KEY.
    #[arg(long, value_name = "URL")]
    store: Option<String>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let target = match (&args.store, &args.data_dir) {
        (Some(url), _) => url.clone(),
        (None, Some(dir)) => dir.display().to_string(),
        (None, None) => return Err(Usage::new("give --data-dir or --store", None).into()),
    };
    let key = KeyConfig::from_env().map_err(|e| exit::usage_from(&e))?;
    let given = match &key {
        KeyConfig::Key(_) => Some(new_key_from_env()?),
        _ => {
            if std::env::var_os(NEW_MASTER_KEY_ENV).is_some() {
                return Err(Usage::new(
                    format!("{NEW_MASTER_KEY_ENV} is set, but the key in use is the data directory's key file"),
                    Some(format!(
                        "unset {NEW_MASTER_KEY_ENV}: the key file is replaced with a new random key; or give the current key in {MASTER_KEY_ENV}"
                    )),
                )
                .into());
            }
            None
        }
    };
    let store = open_existing(&target, key).await?;
    let old_id = store.key_id();
    let outcome = match &given {
        Some(new) => rotate_to(&store, new.clone()).await,
        None => store.rotate_key_file().await.map(|new| (new, false)).map_err(|e| exit::usage_from(&e).into()),
    };
    if outcome.is_ok() {
        if let Err(e) = audit(&store, &old_id).await {
            eprintln!("warning: the rotation is done, but its audit entry could not be written: {e}");
        }
    }
    let location = store.location().to_string();
    store.close().await;
    let (new, print) = outcome?;
    eprintln!("re-sealed every secret of {location} under the new master key (key id {old_id} → {})", new.id());
    match (&given, print) {
        (None, _) => eprintln!("the key file now holds the new key; back it up: the old key no longer opens the store"),
        (Some(_), false) => eprintln!(
            "the store is sealed under {NEW_MASTER_KEY_ENV}'s key: set {MASTER_KEY_ENV} to it and restart every instance"
        ),
        (Some(_), true) => {
            eprintln!(
                "put this new key in your secret store as {MASTER_KEY_ENV} now and restart every instance with it; \
                 it is shown only once, and the old key no longer opens the store:"
            );
            println!("{}", new.to_base64().as_str());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The key from [`NEW_MASTER_KEY_ENV`], or a new random one (then `true`: print it).
fn new_key_from_env() -> anyhow::Result<(MasterKey, bool)> {
    match std::env::var(NEW_MASTER_KEY_ENV) {
        Ok(text) => {
            let key = MasterKey::from_base64(&text).map_err(|e| {
                let u = exit::usage_from(&e);
                Usage::new(format!("{NEW_MASTER_KEY_ENV}: {}", u.message), u.hint)
            });
            drop(zeroize::Zeroizing::new(text));
            Ok((key?, false))
        }
        Err(std::env::VarError::NotPresent) => Ok((MasterKey::generate().map_err(|e| exit::usage_from(&e))?, true)),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(Usage::new(format!("{NEW_MASTER_KEY_ENV} is not valid base64"), None).into())
        }
    }
}

/// Opens a store that must already exist: a rotation never creates one (nor its key file).
async fn open_existing(target: &str, key: KeyConfig) -> anyhow::Result<Store> {
    if let Ok(sluice_store::StoreLocation::Sqlite { file, .. }) = target.parse() {
        if !file.exists() {
            return Err(Usage::new(format!("there is no store at {}", file.display()), None).into());
        }
    }
    let store = Store::open(target, key).await.map_err(|e| exit::usage_from(&e))?;
    if let Some(notice) = store.notice() {
        eprintln!("note: {notice}");
    }
    Ok(store)
}

async fn rotate_to(store: &Store, (new, print): (MasterKey, bool)) -> anyhow::Result<(MasterKey, bool)> {
    if new.id() == store.key_id() {
        return Err(Usage::new(
            format!("{NEW_MASTER_KEY_ENV} holds the key in use"),
            Some("give a new key: head -c 32 /dev/urandom | base64".into()),
        )
        .into());
    }
    let old = current_key()?;
    store.rotate_master_key(&old, new.clone()).await.map_err(|e| exit::usage_from(&e))?;
    Ok((new, print))
}

fn current_key() -> anyhow::Result<MasterKey> {
    match MasterKey::from_env().map_err(|e| exit::usage_from(&e))? {
        Some(k) => Ok(k),
        None => Err(Usage::new(format!("{MASTER_KEY_ENV} is not set"), None).into()),
    }
}

async fn audit(store: &Store, old_id: &str) -> Result<(), sluice_store::StoreError> {
    let entry = NewAuditEntry {
        actor: "cli".into(),
        kind: "store.master_key_rotated".into(),
        source: None,
        detail: serde_json::json!({"old_key_id": old_id, "new_key_id": store.key_id()}),
    };
    store.append_audit(&entry).await.map(drop)
}
