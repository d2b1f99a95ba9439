//! Sluice's own metadata store: registered sources, users, browser sessions, API and setup
//! tokens, catalog snapshots, discovery runs, source alerts, the outgoing webhook with its outbox,
//! and the audit log.
//!
//! One [`Store`] API over two backends, each with native SQL and its own migrations:
//! SQLite (the default: `sluice.db` in a data directory, WAL, `synchronous=NORMAL` so an
//! acknowledged write survives a kill of the process — an OS crash or power loss may lose the
//! commits since the last checkpoint —, foreign keys on, an exclusive lock file so one process
//! owns it) and PostgreSQL 12+ (several instances sharing one store). The backend is chosen once,
//! from the location, when the store opens; no query branches on it.
//!
//! Source secrets are sealed field by field ([`seal`]); passwords are Argon2id hashes and token,
//! session and setup secrets SHA-256 hashes ([`auth`]). Nothing the store hands out or reports
//! carries a secret, except the values a caller asks for by name ([`Store::source_spec`]) and
//! the new secrets returned once at creation.
//!
//! Must not know customer databases, connections, HTTP or the CLI, and must not depend on any
//! Sluice crate but `sluice-core`.

pub mod auth;
mod error;
mod location;
mod model;
mod page;
mod postgres;
pub mod seal;
mod snapshot;
mod sqlite;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use sluice_core::{KeySource, Secret, SecretField, SourceId, SourceSecrets, SourceSpec};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

pub use auth::{OneTimeSecret, MIN_PASSWORD_CHARS, TOKEN_PREFIX};
pub use error::StoreError;
pub use location::{StoreLocation, StoreServer, DB_FILE_NAME};
pub use model::{Alert, AlertId, AlertKind, WebhookDelivery, WebhookInfo};
pub use model::{
    ApiToken, AuditEntry, AuditFilter, AuditId, AuditPage, CatalogChange, ChangeId, ChangePage, DiscoveryRun, Millis,
    NewAuditEntry, Pruned, QueryCompletion, QueryOutcome, Role, RunId, RunOutcome, Session, SnapshotId, SnapshotMeta,
    SourceRecord, TokenRole, User, UserId,
};
pub use model::{ClaimedDiscovery, Completion, DiscoverySchedule, NextDue, RunReason, RunResult, RunState};
pub use model::{GeneratedSshKey, HostKeyApproval, HostKeySeen, NewSourceTest, SourceTest};
pub use page::{page_size, DEFAULT_PAGE, MAX_PAGE};
pub use seal::{MasterKey, KEY_FILE_NAME, MASTER_KEY_ENV, NEW_MASTER_KEY_ENV};
pub use snapshot::{CompressedSnapshot, SnapshotWriter};

use seal::{SealContext, Sealed};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Where the master key comes from.
#[derive(Debug, Clone)]
pub enum KeyConfig {
    /// The key itself (e.g. [`MasterKey::from_env`]).
    Key(MasterKey),
    /// A key file that must exist (base64 text, mode 0600).
    File(PathBuf),
    /// SQLite only: `master.key` in the data directory, created with a new random key when the
    /// store is created. A PostgreSQL store refuses this: its instances must share one key.
    DataDir,
}

impl KeyConfig {
    /// [`MASTER_KEY_ENV`] when it is set, else [`KeyConfig::DataDir`].
    pub fn from_env() -> Result<KeyConfig> {
        Ok(match MasterKey::from_env()? {
            Some(key) => KeyConfig::Key(key),
            None => KeyConfig::DataDir,
        })
    }
}

/// How stale a token's recorded last use may be before a use writes it again.
const TOKEN_USE_RESOLUTION_MS: Millis = 60_000;
/// How long a verified API token is taken at its word without asking the store again. A token
/// revoked (or deleted with its source) through this store is forgotten at once; one revoked
/// through another instance sharing the store is refused here at most this much later.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(1);
/// At most this many verified tokens are remembered; past it, the memory starts over.
const TOKEN_CACHE_MAX: usize = 4096;

fn unix_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX))
        .unwrap_or(0)
}

/// How many Argon2id hashes may run at once (each takes 19 MiB and tens of milliseconds).
const CONCURRENT_PASSWORD_HASHES: usize = 2;

/// A new API token: what it may do and on which source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiToken {
    pub name: String,
    pub role: TokenRole,
    pub source: Option<SourceId>,
    pub created_by: Option<UserId>,
}

/// A new browser session: the cookie's value and the CSRF proof, each shown once.
#[derive(Debug)]
pub struct NewSession {
    pub cookie: OneTimeSecret,
    pub csrf: OneTimeSecret,
    pub expires_at: Millis,
}

pub(crate) enum Backend {
    Sqlite(sqlite::SqliteBackend),
    Postgres(postgres::PgBackend),
}

/// Runs the same call on whichever backend the store opened.
macro_rules! on_backend {
    ($self:ident, $b:ident => $call:expr) => {
        match &$self.backend {
            Backend::Sqlite($b) => $call,
            Backend::Postgres($b) => $call,
        }
    };
}

/// How a SQLite store is opened: by its owner (the service, a key rotation), which holds the
/// data directory's lock file for its life, or by a short command beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Owner,
    BesideService,
}

/// The store. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Store {
    backend: Backend,
    location: StoreLocation,
    key: RwLock<Arc<MasterKey>>,
    /// The key file the key was read from (a SQLite store's `master.key`, or a given file).
    key_file: Option<PathBuf>,
    /// What opening had to repair (an interrupted key rotation), for the operator.
    notice: Option<String>,
    password_hashes: Arc<Semaphore>,
    /// Tokens verified in the last [`TOKEN_CACHE_TTL`], by the SHA-256 of the presented text.
    verified_tokens: Mutex<HashMap<Vec<u8>, (ApiToken, Instant)>>,
    _lock: Option<location::DirLock>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("location", &self.location).field("key_id", &self.key_id()).finish()
    }
}

impl Store {
    /// Opens (and creates or migrates) the store at `target`: a data directory, `sqlite://PATH`
    /// or `postgres://…`. Refuses a SQLite store another process holds, a PostgreSQL server
    /// older than 12, a missing or malformed key, and a key that is not the store's.
    pub async fn open(target: &str, key: KeyConfig) -> Result<Store> {
        Store::open_as(target, key, Access::Owner).await
    }

    /// Opens the store for a short command that may run beside the service owning it (making a
    /// token, listing or resetting users): an existing SQLite store is opened without its lock
    /// file, which the running service holds (SQLite's own locking orders the writes). Creating
    /// the store, or settling an interrupted key rotation, still takes the lock for the
    /// command's life, and so is refused while a service runs. A PostgreSQL store opens as with
    /// [`Store::open`]. Commands that re-seal the store (a key rotation) must use
    /// [`Store::open`].
    pub async fn open_beside_service(target: &str, key: KeyConfig) -> Result<Store> {
        Store::open_as(target, key, Access::BesideService).await
    }

    async fn open_as(target: &str, key: KeyConfig, access: Access) -> Result<Store> {
        let location: StoreLocation = target.parse()?;
        let mut key_file = None;
        let (backend, key, lock) = match &location {
            StoreLocation::Sqlite { file, dir } => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError::backend(&format!("create the data directory {}", dir.display()), e))?;
                let settled = || {
                    let key_path = match &key {
                        KeyConfig::Key(_) => None,
                        KeyConfig::File(path) => Some(path.clone()),
                        KeyConfig::DataDir => Some(dir.join(KEY_FILE_NAME)),
                    };
                    file.exists() && !key_path.is_some_and(|p| seal::pending_key_path(&p).exists())
                };
                let lock = match access {
                    Access::BesideService if settled() => None,
                    _ => Some(location::DirLock::acquire(file)?),
                };
                let fresh = !file.exists();
                let key = match key {
                    KeyConfig::Key(k) => k,
                    KeyConfig::File(path) => {
                        let key = MasterKey::read_file(&path)?;
                        key_file = Some(path);
                        key
                    }
                    KeyConfig::DataDir => {
                        let path = dir.join(KEY_FILE_NAME);
                        key_file = Some(path.clone());
                        if path.exists() {
                            MasterKey::read_file(&path)?
                        } else if fresh && !seal::pending_key_path(&path).exists() {
                            MasterKey::create_file(&path)?
                        } else {
                            return Err(StoreError::key(
                                format!(
                                    "the store {} exists but its key file {} is missing",
                                    file.display(),
                                    path.display()
                                ),
                                "restore master.key from your backup, or give the key in SLUICE_MASTER_KEY",
                            ));
                        }
                    }
                };
                (Backend::Sqlite(sqlite::SqliteBackend::open(file).await?), key, lock)
            }
            StoreLocation::Postgres(pg) => {
                let key = match key {
                    KeyConfig::Key(k) => k,
                    KeyConfig::File(path) => {
                        let key = MasterKey::read_file(&path)?;
                        key_file = Some(path);
                        key
                    }
                    KeyConfig::DataDir => {
                        return Err(StoreError::key(
                            "a PostgreSQL store needs its master key given explicitly",
                            "set SLUICE_MASTER_KEY (the same on every instance) or give a key file",
                        ))
                    }
                };
                (Backend::Postgres(postgres::PgBackend::open(pg).await?), key, None)
            }
        };
        let mut store = Store {
            backend,
            location,
            key: RwLock::new(Arc::new(key)),
            key_file,
            notice: None,
            password_hashes: Arc::new(Semaphore::new(CONCURRENT_PASSWORD_HASHES)),
            verified_tokens: Mutex::new(HashMap::new()),
            _lock: lock,
        };
        let checked = store.check_key().await;
        // Only an owner of the store may settle a rotation: a command opened beside a service
        // without the lock could otherwise settle one that is still running.
        let may_settle =
            access == Access::Owner || store._lock.is_some() || matches!(store.location, StoreLocation::Postgres(_));
        match store.key_file.clone() {
            Some(path) if seal::pending_key_path(&path).exists() => {
                if !may_settle {
                    return Err(StoreError::key(
                        format!("a master key rotation of the store {} is under way", store.location),
                        "run the command again once `sluice rotate-master-key` has finished",
                    ));
                }
                store.settle_rotation(&path, checked).await?
            }
            _ => checked?,
        }
        Ok(store)
    }

    /// A key file with a new key beside it (`master.key.new`) is a rotation that was
    /// interrupted: the new key was written, then the store re-sealed in one transaction, then
    /// the new file renamed over the old. Whichever key opens the store tells how far it got:
    /// the old one, and the re-sealing never committed (the new file is removed); the new one,
    /// and only the rename is missing (it is done now). Either way [`Store::notice`] says so.
    async fn settle_rotation(&mut self, path: &std::path::Path, checked: Result<()>) -> Result<()> {
        let pending = seal::pending_key_path(path);
        if checked.is_ok() {
            seal::remove_key_file(&pending)?;
            self.notice = Some(format!(
                "removed {}: a master key rotation stopped before it re-sealed the store, which is still sealed under {} (key id {})",
                pending.display(),
                path.display(),
                self.key_id()
            ));
            return Ok(());
        }
        let new = MasterKey::read_file(&pending)?;
        let old_id = if path.exists() { self.key_id() } else { "none".into() };
        self.set_key(new);
        if let Err(e) = self.check_key().await {
            return Err(StoreError::key(
                format!(
                    "neither {} nor {} (left by an interrupted key rotation) opens the store: {e}",
                    path.display(),
                    pending.display()
                ),
                "restore the key file from your backup, or give the key in SLUICE_MASTER_KEY",
            ));
        }
        seal::replace_key_file(&pending, path)?;
        self.notice = Some(format!(
            "finished an interrupted master key rotation: the store was re-sealed under {} (key id {}), which now replaces {} (key id {old_id})",
            pending.display(),
            self.key_id(),
            path.display()
        ));
        Ok(())
    }

    /// What opening the store had to repair, if anything (an interrupted key rotation), said for
    /// the operator.
    pub fn notice(&self) -> Option<&str> {
        self.notice.as_deref()
    }

    fn set_key(&self, key: MasterKey) {
        let mut guard = match self.key.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Arc::new(key);
    }

    /// The first opening seals the check value; every later one must open it.
    async fn check_key(&self) -> Result<()> {
        let key = self.key();
        let stored = match on_backend!(self, b => b.check_value().await)? {
            Some(sealed) => sealed,
            None => {
                let sealed = seal::seal_check(&key)?;
                on_backend!(self, b => b.init_check(&sealed).await)?
            }
        };
        seal::verify_check(&key, &stored)
    }

    /// Closes the pool (and, for SQLite, checkpoints the WAL and releases the lock).
    pub async fn close(self) {
        on_backend!(self, b => b.close().await)
    }

    pub fn location(&self) -> &StoreLocation {
        &self.location
    }

    /// The id of the master key in use (public; a hash of the key).
    pub fn key_id(&self) -> String {
        self.key().id().to_string()
    }

    fn key(&self) -> Arc<MasterKey> {
        match self.key.read() {
            Ok(k) => Arc::clone(&k),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    // ---- sources -------------------------------------------------------------------------

    /// Registers a source: its settings (a spec holding no secret) and its secrets, sealed.
    pub async fn put_source(
        &self,
        id: &SourceId,
        name: &str,
        settings: &SourceSpec,
        secrets: &SourceSecrets,
    ) -> Result<SourceRecord> {
        self.put_source_claiming(id, name, settings, secrets, None, None).await
    }

    /// [`Store::put_source`], the source's SSH private key being the generated key `ssh_key`
    /// (see [`Store::create_ssh_key`]) when one is named: it is claimed in the same transaction,
    /// so it serves one source only, and an unknown, expired or claimed key refuses the whole
    /// write (`ssh.private_key_id`). `secrets` must then carry no SSH private key of its own.
    /// The source is scheduled for discovery, due now, on `interval` (`None`: the service's
    /// default) in the same transaction, so its first run already counts its own interval.
    pub async fn put_source_claiming(
        &self,
        id: &SourceId,
        name: &str,
        settings: &SourceSpec,
        secrets: &SourceSecrets,
        ssh_key: Option<&str>,
        interval: Option<Duration>,
    ) -> Result<SourceRecord> {
        let name = check_name(name)?;
        let settings_json = settings_json(settings)?;
        let interval_ms = interval.map(interval_millis).transpose()?;
        let secrets = self.with_generated_key(secrets, ssh_key).await?;
        let sealed = self.seal_secrets(id, &secrets)?;
        on_backend!(self, b => b.insert_source(id.as_str(), name, &settings_json, &sealed, secrets.password.is_some(), ssh_key, interval_ms).await)?;
        self.source(id).await
    }

    /// Replaces a source's name and settings; each secret in `patch` replaces the stored one and
    /// every secret `patch` leaves unset keeps its value (as [`SourceSecrets::updated_with`]).
    pub async fn update_source(
        &self,
        id: &SourceId,
        name: &str,
        settings: &SourceSpec,
        patch: &SourceSecrets,
    ) -> Result<SourceRecord> {
        self.update_source_claiming(id, name, settings, patch, None).await
    }

    /// [`Store::update_source`], claiming the generated key `ssh_key` as the source's SSH
    /// private key when one is named (as [`Store::put_source_claiming`]); the key it replaces
    /// is gone.
    pub async fn update_source_claiming(
        &self,
        id: &SourceId,
        name: &str,
        settings: &SourceSpec,
        patch: &SourceSecrets,
        ssh_key: Option<&str>,
    ) -> Result<SourceRecord> {
        self.update_source_dropping(id, name, settings, patch, ssh_key, &[], ScheduleEdit::default()).await
    }

    /// [`Store::update_source_claiming`] that also deletes the stored secrets named in `dropped`
    /// (a password the source no longer logs in with) and changes the source's discovery
    /// schedule as `schedule` says, in the same transaction: an edit is saved whole or not at
    /// all. Dropping the password clears its time.
    #[allow(clippy::too_many_arguments)]
    pub async fn update_source_dropping(
        &self,
        id: &SourceId,
        name: &str,
        settings: &SourceSpec,
        patch: &SourceSecrets,
        ssh_key: Option<&str>,
        dropped: &[SecretField],
        schedule: ScheduleEdit,
    ) -> Result<SourceRecord> {
        let name = check_name(name)?;
        let settings_json = settings_json(settings)?;
        let interval_ms = schedule.interval.map(interval_millis).transpose()?;
        let patch = self.with_generated_key(patch, ssh_key).await?;
        let sealed = self.seal_secrets(id, &patch)?;
        let dropped: Vec<&'static str> = dropped.iter().filter(|f| !patch.has(**f)).map(|f| f.as_str()).collect();
        let found = on_backend!(self, b => b.update_source(id.as_str(), name, &settings_json, &sealed, patch.password.is_some(), SecretEdits { claim: ssh_key, dropped: &dropped, interval_ms, due_now: schedule.due_now }).await)?;
        if !found {
            return Err(StoreError::NotFound { entity: "source" });
        }
        self.source(id).await
    }

    /// `secrets` with the generated key `ssh_key` as their SSH private key.
    async fn with_generated_key(&self, secrets: &SourceSecrets, ssh_key: Option<&str>) -> Result<SourceSecrets> {
        let Some(key_id) = ssh_key else { return Ok(secrets.clone()) };
        if secrets.ssh_private_key.is_some() {
            return Err(StoreError::Invalid {
                field: "ssh.private_key_id",
                message: "give either a private key or the id of a generated one, not both".into(),
            });
        }
        let private = self.pending_ssh_key(key_id).await?;
        Ok(SourceSecrets { ssh_private_key: Some(KeySource::Pem(private)), ..secrets.clone() })
    }

    // ---- generated SSH keys --------------------------------------------------------------

    /// Keeps a generated key pair until a source claims it ([`Store::put_source_claiming`],
    /// [`Store::update_source_claiming`]) or `ttl` passes: the public half as it is, the private
    /// half sealed under the master key with associated data naming this key. `id` is the
    /// caller's (1 to 64 characters of a-z, 0-9, `-`), unique.
    pub async fn create_ssh_key(
        &self,
        id: &str,
        public_key: &str,
        fingerprint: &str,
        private_key: &Secret,
        created_by: &str,
        ttl: Duration,
    ) -> Result<GeneratedSshKey> {
        let ok = !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(StoreError::Invalid {
                field: "key_id",
                message: "use 1 to 64 characters of a-z, 0-9 and '-'".into(),
            });
        }
        let ttl_ms = ttl_millis(ttl)?;
        let context = generated_key_context(id);
        let ctx = SealContext { source: &context, field: GENERATED_KEY_FIELD };
        let sealed = seal::seal(&self.key(), ctx, private_key.expose().as_bytes())?;
        let (created_at, expires_at) =
            on_backend!(self, b => b.insert_ssh_key(id, public_key, fingerprint, created_by, ttl_ms, &sealed).await)?;
        Ok(GeneratedSshKey {
            id: id.to_string(),
            public_key: public_key.to_string(),
            fingerprint: fingerprint.to_string(),
            created_by: created_by.to_string(),
            created_at,
            expires_at,
        })
    }

    /// The private half of an unclaimed, unexpired generated key (to test a form that names it
    /// before it is saved). An unknown, expired or claimed key is refused naming
    /// `ssh.private_key_id`.
    pub async fn pending_ssh_key(&self, id: &str) -> Result<Secret> {
        let sealed = on_backend!(self, b => b.pending_ssh_key(id).await)?.ok_or_else(|| unusable_generated_key(id))?;
        let context = generated_key_context(id);
        let plain =
            seal::open_secret(&self.key(), SealContext { source: &context, field: GENERATED_KEY_FIELD }, &sealed)?;
        std::str::from_utf8(&plain)
            .map(Secret::new)
            .map_err(|_| StoreError::Backend { message: "a generated SSH key is not in the store's format".into() })
    }

    /// A source's settings and which secrets are set (never their values).
    pub async fn source(&self, id: &SourceId) -> Result<SourceRecord> {
        on_backend!(self, b => b.source_row(id.as_str()).await)?
            .ok_or(StoreError::NotFound { entity: "source" })?
            .into_record()
    }

    /// Every source, by name.
    pub async fn sources(&self) -> Result<Vec<SourceRecord>> {
        on_backend!(self, b => b.source_rows().await)?.into_iter().map(SourceRow::into_record).collect()
    }

    /// The whole spec, secrets unsealed: what a connection needs. Nothing else returns secrets.
    pub async fn source_spec(&self, id: &SourceId) -> Result<SourceSpec> {
        let record = self.source(id).await?;
        let rows = on_backend!(self, b => b.source_secrets(id.as_str()).await)?;
        let key = self.key();
        let mut secrets = SourceSecrets::default();
        for (field, sealed) in rows {
            let field = model::secret_field(&field)?;
            let plain = seal::open_secret(&key, SealContext { source: id.as_str(), field: field.as_str() }, &sealed)?;
            set_secret(&mut secrets, field, &plain)?;
        }
        Ok(record.settings.with_secrets(secrets))
    }

    /// Deletes a source with its secrets, snapshots, runs and scoped tokens (audit entries stay).
    pub async fn delete_source(&self, id: &SourceId) -> Result<()> {
        // The source's scoped tokens go with it.
        let deleted = on_backend!(self, b => b.delete_source(id.as_str()).await);
        self.forget_verified_tokens();
        if deleted? {
            Ok(())
        } else {
            Err(StoreError::NotFound { entity: "source" })
        }
    }

    fn seal_secrets(&self, id: &SourceId, secrets: &SourceSecrets) -> Result<Vec<(&'static str, Sealed)>> {
        let key = self.key();
        secrets
            .fields()
            .into_iter()
            .filter_map(|field| secret_plaintext(secrets, field).map(|plain| (field, plain)))
            .map(|(field, plain)| {
                let ctx = SealContext { source: id.as_str(), field: field.as_str() };
                Ok((field.as_str(), seal::seal(&key, ctx, &plain)?))
            })
            .collect()
    }

    /// Re-seals every secret and the check value under `new`, in one transaction, and uses `new`
    /// from then on. `old` must be the key in use. The caller stores `new` (key file or
    /// environment) before it discards `old`: once this returns, only `new` opens the store.
    pub async fn rotate_master_key(&self, old: &MasterKey, new: MasterKey) -> Result<()> {
        let current = self.key();
        if old.id() != current.id() {
            return Err(StoreError::Invalid {
                field: "old key",
                message: format!("the key given (id {}) is not the key in use (id {})", old.id(), current.id()),
            });
        }
        let reseal = |source: &str, field: &str, sealed: &Sealed| -> Result<Sealed> {
            let ctx = if source.is_empty() { SealContext::CHECK } else { SealContext { source, field } };
            let plain = seal::open_secret(old, ctx, sealed)?;
            seal::seal(&new, ctx, &plain)
        };
        on_backend!(self, b => b.reseal_all(&reseal).await)?;
        self.set_key(new);
        Ok(())
    }

    /// Rotates the key of a store whose key lives in a key file (a SQLite store's `master.key`,
    /// or [`KeyConfig::File`]) to a new random key, never leaving the store without a key file
    /// that opens it: the new key is written beside the old (`master.key.new`, mode 0600,
    /// synced), the store re-sealed in one transaction, then the new file renamed over the old
    /// and the directory synced. A crash at any point leaves files that [`Store::open`] settles.
    /// Returns the new key.
    pub async fn rotate_key_file(&self) -> Result<MasterKey> {
        let Some(path) = self.key_file.clone() else {
            return Err(StoreError::key(
                "this store's master key is not read from a key file",
                "give the new key in SLUICE_NEW_MASTER_KEY (see sluice rotate-master-key --help)",
            ));
        };
        let pending = seal::pending_key_path(&path);
        let old = self.key();
        let new = MasterKey::create_file(&pending)?;
        if let Err(e) = self.rotate_master_key(&old, new.clone()).await {
            // Remove the new key only when the old one still opens the store.
            if self.check_key().await.is_ok() {
                seal::remove_key_file(&pending)?;
            }
            return Err(e);
        }
        seal::replace_key_file(&pending, &path)?;
        Ok(new)
    }

    // ---- Test Connection -------------------------------------------------------------------

    /// Records the outcome of a saved source's Test Connection, timed by the store's clock; the
    /// source's views show it until the next test or an edit of its settings or secrets.
    pub async fn record_source_test(&self, source: &SourceId, test: &NewSourceTest<'_>) -> Result<()> {
        found(on_backend!(self, b => b.record_source_test(source.as_str(), test).await)?, "source")
    }

    // ---- bastion host keys -----------------------------------------------------------------

    /// Records a host key `source`'s bastion (`host:port`) presented and Sluice did not trust,
    /// so that an admin may approve it by its fingerprint ([`Store::approve_host_key`]).
    pub async fn record_host_key(&self, source: &SourceId, bastion: &str, seen: &HostKeySeen) -> Result<()> {
        let fingerprint = normalize_fingerprint(&seen.fingerprint);
        on_backend!(self, b => b.record_host_key(source.as_str(), bastion, fingerprint, &seen.algorithm, &seen.public_key).await)
    }

    /// Pins the host key with `fingerprint` that `source`'s bastion (`host:port`) presented
    /// when it was recorded: `settings` (the source's, pinning it) are stored and the approval
    /// is recorded with `approved_by` and the time, in one transaction. A fingerprint no
    /// recorded key of this bastion has is refused (`fingerprint`), and nothing changes.
    pub async fn approve_host_key(
        &self,
        source: &SourceId,
        bastion: &str,
        fingerprint: &str,
        approved_by: &str,
        settings: &SourceSpec,
    ) -> Result<HostKeyApproval> {
        let fingerprint = normalize_fingerprint(fingerprint);
        let settings_json = settings_json(settings)?;
        let approved = on_backend!(self, b => b.approve_host_key(source.as_str(), bastion, fingerprint, approved_by, &settings_json).await)?;
        let (algorithm, public_key, approved_at) = approved.ok_or_else(|| StoreError::Invalid {
            field: "fingerprint",
            message: format!(
                "the bastion {bastion} of source `{source}` presented no host key with the fingerprint {} to a test",
                fingerprint.chars().take(80).collect::<String>()
            ),
        })?;
        Ok(HostKeyApproval {
            fingerprint: fingerprint.to_string(),
            algorithm,
            public_key,
            approved_by: approved_by.to_string(),
            approved_at,
        })
    }

    // ---- users ---------------------------------------------------------------------------

    async fn hash_password(&self, password: &Secret) -> Result<String> {
        auth::check_password_policy(password)?;
        let _permit = self.password_hashes.acquire().await.map_err(|e| StoreError::backend("hash a password", e))?;
        let bytes = Zeroizing::new(password.expose().as_bytes().to_vec());
        tokio::task::spawn_blocking(move || auth::hash_password_blocking(&bytes))
            .await
            .map_err(|e| StoreError::backend("hash a password", e))?
    }

    async fn verify_password(&self, password: &Secret, phc: String) -> Result<bool> {
        let _permit = self.password_hashes.acquire().await.map_err(|e| StoreError::backend("verify a password", e))?;
        let bytes = Zeroizing::new(password.expose().as_bytes().to_vec());
        tokio::task::spawn_blocking(move || auth::verify_password_blocking(&bytes, &phc))
            .await
            .map_err(|e| StoreError::backend("verify a password", e))
    }

    pub async fn create_user(&self, login: &str, role: Role, password: &Secret) -> Result<User> {
        let login = check_login(login)?;
        let hash = self.hash_password(password).await?;
        on_backend!(self, b => b.insert_user(login, role.as_str(), &hash).await)
    }

    /// The user when `login` and `password` match an enabled account; `None` otherwise (a
    /// missing login costs as long as a wrong password).
    pub async fn authenticate(&self, login: &str, password: &Secret) -> Result<Option<User>> {
        let found = on_backend!(self, b => b.user_by_login(login).await)?;
        let (user, phc) = match found {
            Some(found) => found,
            None => {
                self.verify_password(password, auth::dummy_phc().to_string()).await?;
                return Ok(None);
            }
        };
        let ok = self.verify_password(password, phc).await?;
        Ok((ok && !user.disabled).then_some(user))
    }

    pub async fn user(&self, id: UserId) -> Result<User> {
        on_backend!(self, b => b.user_by_id(id).await)?.ok_or(StoreError::NotFound { entity: "user" })
    }

    pub async fn users(&self) -> Result<Vec<User>> {
        on_backend!(self, b => b.users().await)
    }

    pub async fn set_password(&self, id: UserId, password: &Secret) -> Result<()> {
        let hash = self.hash_password(password).await?;
        found(on_backend!(self, b => b.set_password_hash(id, &hash).await)?, "user")
    }

    /// Disables or re-enables a user; a disabled user's sessions stop working at once.
    pub async fn set_user_disabled(&self, id: UserId, disabled: bool) -> Result<()> {
        found(on_backend!(self, b => b.set_disabled(id, disabled).await)?, "user")
    }

    pub async fn set_user_role(&self, id: UserId, role: Role) -> Result<()> {
        found(on_backend!(self, b => b.set_role(id, role.as_str()).await)?, "user")
    }

    // ---- browser sessions ----------------------------------------------------------------

    /// A new session for `user`, valid for `ttl`. Only hashes of the cookie and CSRF secrets
    /// are stored.
    pub async fn create_session(&self, user: UserId, ttl: Duration) -> Result<NewSession> {
        let cookie = auth::random_secret()?;
        let csrf = auth::random_secret()?;
        let expires_at = on_backend!(self, b => b.insert_session(
            &auth::sha256(cookie.expose().as_bytes()),
            user,
            &auth::sha256(csrf.expose().as_bytes()),
            ttl_millis(ttl)?,
        ).await)?;
        Ok(NewSession { cookie, csrf, expires_at })
    }

    /// The live session a cookie names: not revoked, not expired, its user enabled.
    pub async fn session(&self, cookie: &str) -> Result<Option<Session>> {
        on_backend!(self, b => b.live_session(&auth::sha256(cookie.as_bytes())).await)
    }

    pub async fn revoke_session(&self, cookie: &str) -> Result<()> {
        on_backend!(self, b => b.revoke_session(&auth::sha256(cookie.as_bytes())).await).map(|_| ())
    }

    /// Revokes every session of a user; returns how many were live.
    pub async fn revoke_sessions_of(&self, user: UserId) -> Result<u64> {
        on_backend!(self, b => b.revoke_user_sessions(user).await)
    }

    // ---- API tokens ----------------------------------------------------------------------

    /// A new token; its full text (`sluice_<public id>_<secret>`) is returned once and only
    /// the SHA-256 of the secret is stored.
    pub async fn create_token(&self, new: &NewApiToken) -> Result<(ApiToken, OneTimeSecret)> {
        let name = check_name(&new.name)?;
        let (public_id, secret, full) = auth::new_token()?;
        let hash = auth::sha256(secret.expose().as_bytes());
        let token = on_backend!(self, b => b.insert_token(
            &public_id,
            &hash,
            name,
            new.role.as_str(),
            new.source.as_ref().map(SourceId::as_str),
            new.created_by,
        ).await)?;
        Ok((token, full))
    }

    /// The token a presented text proves, when it is well formed, known, not revoked and its
    /// secret matches (compared in constant time); records its use.
    /// A token verified in the last [`TOKEN_CACHE_TTL`] is answered from memory.
    pub async fn verify_token(&self, text: &str) -> Result<Option<ApiToken>> {
        let Some((public_id, secret)) = auth::split_token(text) else { return Ok(None) };
        let key = auth::sha256(text.as_bytes());
        if let Some(token) = self.recently_verified(&key) {
            return Ok(Some(token));
        }
        let Some((token, hash)) = on_backend!(self, b => b.token(public_id).await)? else { return Ok(None) };
        if !auth::hash_matches(&hash, secret.as_bytes()) || token.revoked {
            return Ok(None);
        }
        // The last-used time is kept to the minute: a token used in every request would
        // otherwise cost an acknowledged write (an fsync) per request.
        let token =
            if token.last_used_at.is_some_and(|used| unix_millis().saturating_sub(used) < TOKEN_USE_RESOLUTION_MS) {
                Some(token)
            } else {
                on_backend!(self, b => b.touch_token(public_id).await)?
            };
        if let (Some(token), Ok(mut cache)) = (&token, self.verified_tokens.lock()) {
            if cache.len() >= TOKEN_CACHE_MAX {
                cache.clear();
            }
            cache.insert(key, (token.clone(), Instant::now()));
        }
        Ok(token)
    }

    fn recently_verified(&self, key: &[u8]) -> Option<ApiToken> {
        let cache = self.verified_tokens.lock().ok()?;
        let (token, at) = cache.get(key)?;
        (at.elapsed() < TOKEN_CACHE_TTL).then(|| token.clone())
    }

    /// Forgets every verified token (one was revoked or deleted).
    fn forget_verified_tokens(&self) {
        if let Ok(mut cache) = self.verified_tokens.lock() {
            cache.clear();
        }
    }

    pub async fn revoke_token(&self, public_id: &str) -> Result<()> {
        self.forget_verified_tokens();
        let revoked = on_backend!(self, b => b.revoke_token(public_id).await);
        // Also after: a request verified while the revocation was being written.
        self.forget_verified_tokens();
        found(revoked?, "token")
    }

    pub async fn tokens(&self) -> Result<Vec<ApiToken>> {
        on_backend!(self, b => b.tokens().await)
    }

    // ---- one-time setup tokens -----------------------------------------------------------

    /// A one-time token for the first administrator's sign-up, valid for `ttl`.
    pub async fn create_setup_token(&self, ttl: Duration) -> Result<OneTimeSecret> {
        let secret = auth::random_secret()?;
        on_backend!(self, b => b.insert_setup_token(&auth::sha256(secret.expose().as_bytes()), ttl_millis(ttl)?).await)?;
        Ok(secret)
    }

    /// Uses a setup token up: true exactly once, for an unexpired token.
    pub async fn consume_setup_token(&self, text: &str) -> Result<bool> {
        on_backend!(self, b => b.consume_setup_token(&auth::sha256(text.as_bytes())).await)
    }

    // ---- catalog snapshots ---------------------------------------------------------------

    /// Stores a discovered catalog (its JSON), zstd-compressed, unless it is identical to the
    /// source's latest snapshot; returns the new snapshot, or `None` when nothing changed.
    pub async fn put_snapshot(&self, source: &SourceId, json: &[u8]) -> Result<Option<SnapshotMeta>> {
        let json = json.to_vec();
        let snapshot = tokio::task::spawn_blocking(move || CompressedSnapshot::from_json(&json))
            .await
            .map_err(|e| StoreError::backend("compress a snapshot", e))??;
        self.put_compressed_snapshot(source, &snapshot).await
    }

    /// Stores a snapshot written through a [`SnapshotWriter`] unless its content hash is the
    /// source's latest snapshot's; returns the new snapshot, or `None` when nothing changed.
    pub async fn put_compressed_snapshot(
        &self,
        source: &SourceId,
        snapshot: &CompressedSnapshot,
    ) -> Result<Option<SnapshotMeta>> {
        on_backend!(self, b => b.insert_snapshot_if_new(source.as_str(), snapshot.content_hash(), snapshot.compressed()).await)
    }

    /// The source's newest snapshot and its JSON.
    pub async fn latest_snapshot(&self, source: &SourceId) -> Result<Option<(SnapshotMeta, Vec<u8>)>> {
        match on_backend!(self, b => b.latest_snapshot(source.as_str()).await)? {
            Some((meta, compressed)) => Ok(Some((meta, decompress(&compressed)?))),
            None => Ok(None),
        }
    }

    /// [`Store::latest_snapshot`] still compressed: read it through [`CompressedSnapshot::reader`]
    /// rather than holding its JSON.
    pub async fn latest_snapshot_compressed(
        &self,
        source: &SourceId,
    ) -> Result<Option<(SnapshotMeta, CompressedSnapshot)>> {
        let found = on_backend!(self, b => b.latest_snapshot(source.as_str()).await)?;
        Ok(found.map(|(meta, compressed)| (meta, CompressedSnapshot::stored(compressed))))
    }

    /// [`Store::snapshot_at`] still compressed.
    pub async fn snapshot_at_compressed(
        &self,
        source: &SourceId,
        at: Millis,
    ) -> Result<Option<(SnapshotMeta, CompressedSnapshot)>> {
        let found = on_backend!(self, b => b.snapshot_at(source.as_str(), at).await)?;
        Ok(found.map(|(meta, compressed)| (meta, CompressedSnapshot::stored(compressed))))
    }

    /// The source's snapshots, newest first (without their content).
    pub async fn snapshots(&self, source: &SourceId) -> Result<Vec<SnapshotMeta>> {
        on_backend!(self, b => b.snapshots(source.as_str()).await)
    }

    /// The snapshot in force at `at`: the newest discovered at or before it.
    pub async fn snapshot_at(&self, source: &SourceId, at: Millis) -> Result<Option<(SnapshotMeta, Vec<u8>)>> {
        match on_backend!(self, b => b.snapshot_at(source.as_str(), at).await)? {
            Some((meta, compressed)) => Ok(Some((meta, decompress(&compressed)?))),
            None => Ok(None),
        }
    }

    /// The snapshot stored just before `id` (what a new snapshot is compared against).
    pub async fn previous_snapshot(
        &self,
        source: &SourceId,
        id: SnapshotId,
    ) -> Result<Option<(SnapshotMeta, Vec<u8>)>> {
        match on_backend!(self, b => b.previous_snapshot(source.as_str(), id).await)? {
            Some((meta, compressed)) => Ok(Some((meta, decompress(&compressed)?))),
            None => Ok(None),
        }
    }

    /// [`Store::previous_snapshot`] still compressed: read it through
    /// [`CompressedSnapshot::reader`] rather than holding its JSON.
    pub async fn previous_snapshot_compressed(
        &self,
        source: &SourceId,
        id: SnapshotId,
    ) -> Result<Option<(SnapshotMeta, CompressedSnapshot)>> {
        let found = on_backend!(self, b => b.previous_snapshot(source.as_str(), id).await)?;
        Ok(found.map(|(meta, compressed)| (meta, CompressedSnapshot::stored(compressed))))
    }

    // ---- catalog change history ----------------------------------------------------------

    /// Records what changed from snapshot `from` to snapshot `to`: the diff's JSON and its
    /// counts by kind (both JSON objects).
    pub async fn add_catalog_change(
        &self,
        source: &SourceId,
        from: SnapshotId,
        to: SnapshotId,
        diff: &serde_json::Value,
        counts: &serde_json::Value,
    ) -> Result<CatalogChange> {
        if !diff.is_object() || !counts.is_object() {
            return Err(StoreError::Invalid {
                field: "diff",
                message: "a change's diff and counts are JSON objects".into(),
            });
        }
        let (diff, counts) = (diff.to_string(), counts.to_string());
        on_backend!(self, b => b.insert_change(source.as_str(), from, to, &diff, &counts).await)
    }

    /// One page of a source's changes, newest first: those before the cursor `before`, at most
    /// `limit` (1 to 1000, default 100).
    pub async fn catalog_changes(
        &self,
        source: &SourceId,
        before: Option<ChangeId>,
        limit: Option<u32>,
    ) -> Result<ChangePage> {
        let size = page::page_size(limit)?;
        let rows = on_backend!(self, b => b.changes(source.as_str(), before, page::rows_to_read(size)).await)?;
        let (changes, next) = page::cut(rows, size, |c| c.id);
        Ok(ChangePage { changes, next })
    }

    /// Applies the history's retention as of `now`: removes catalog changes older than `keep`,
    /// snapshots no longer in force `keep` ago (a source's latest snapshot always stays, and so
    /// does the one in force at the window's start, so `snapshot_at` answers for the whole
    /// window) and finished discovery runs older than `keep` (a folded record by its last run;
    /// each source's latest record stays).
    pub async fn prune_history(&self, now: Millis, keep: Duration) -> Result<Pruned> {
        let cutoff = now.saturating_sub(ttl_millis(keep)?);
        on_backend!(self, b => b.prune_history(cutoff).await)
    }

    // ---- discovery runs ------------------------------------------------------------------

    pub async fn start_discovery_run(&self, source: &SourceId) -> Result<RunId> {
        on_backend!(self, b => b.start_run(source.as_str()).await)
    }

    /// Records how a run ended: once; a finished run is not finished again.
    pub async fn finish_discovery_run(
        &self,
        run: RunId,
        outcome: RunOutcome,
        stage: Option<&str>,
        message: Option<&str>,
    ) -> Result<()> {
        found(
            on_backend!(self, b => b.finish_run(run, outcome.as_str(), stage, message).await)?,
            "unfinished discovery run",
        )
    }

    /// The source's runs, newest first.
    pub async fn discovery_runs(&self, source: &SourceId, limit: u32) -> Result<Vec<DiscoveryRun>> {
        on_backend!(self, b => b.runs(source.as_str(), i64::from(limit.clamp(1, page::MAX_PAGE))).await)
    }

    /// One of the source's runs.
    pub async fn discovery_run(&self, source: &SourceId, run: RunId) -> Result<DiscoveryRun> {
        on_backend!(self, b => b.run_by_id(source.as_str(), run).await)?
            .ok_or(StoreError::NotFound { entity: "discovery run" })
    }

    // ---- discovery schedule --------------------------------------------------------------
    //
    // Every source has a row saying when it is due, written with the source (a row missing, as
    // for a source saved before the schedule existed, is made due now the next time the
    // schedule is read). Instances claim due sources with a lease
    // ([`Store::claim_due_discoveries`]), renew it while the run lasts, and release it with the
    // next due time ([`Store::complete_discovery`]); a lease left to expire is taken over by the
    // next claim and its run recorded as failed at the `scheduler` stage.

    /// Every source's schedule, by source id, each with its last finished run.
    pub async fn discovery_schedules(&self) -> Result<Vec<DiscoverySchedule>> {
        on_backend!(self, b => b.schedules(None).await)
    }

    /// One source's schedule.
    pub async fn discovery_schedule(&self, source: &SourceId) -> Result<DiscoverySchedule> {
        on_backend!(self, b => b.schedules(Some(source.as_str())).await)?
            .into_iter()
            .next()
            .ok_or(StoreError::NotFound { entity: "source" })
    }

    /// The source's own discovery interval (`None`: the service's default). The run in flight,
    /// if any, is scheduled on it when it completes; a shorter interval than before makes the
    /// source due within it from now, not on the old interval.
    pub async fn set_discovery_interval(&self, source: &SourceId, interval: Option<Duration>) -> Result<()> {
        let ms = interval.map(interval_millis).transpose()?;
        found(on_backend!(self, b => b.set_interval(source.as_str(), ms).await)?, "source")
    }

    /// Makes the source due now (it was saved with new connection settings); its failure count
    /// starts again.
    pub async fn discover_now(&self, source: &SourceId) -> Result<()> {
        found(on_backend!(self, b => b.due_now(source.as_str()).await)?, "source")
    }

    /// Counts how a run made outside the schedule ([`Store::start_discovery_run`]) ended in the
    /// source's failures in a row, as [`Store::complete_discovery`] does for a scheduled one: a
    /// failure adds one, a success starts again from 0. Returns the failures in a row now.
    pub async fn count_discovery_outcome(&self, source: &SourceId, outcome: RunOutcome) -> Result<u32> {
        let ok = outcome == RunOutcome::Ok;
        on_backend!(self, b => b.count_outcome(source.as_str(), ok).await)?
            .ok_or(StoreError::NotFound { entity: "source" })
    }

    /// Asks for a run of the source as soon as an instance can: a queued run, or the one already
    /// queued (requests before an instance takes it up share one run).
    pub async fn request_discovery(&self, source: &SourceId) -> Result<RunId> {
        on_backend!(self, b => b.request_run(source.as_str()).await)
    }

    /// Claims up to `limit` sources that are due (or have a queued run) and are not leased, for
    /// `instance`, until `lease` from now: each gets a running run. Concurrent claimers never
    /// get the same source.
    pub async fn claim_due_discoveries(
        &self,
        instance: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<ClaimedDiscovery>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let lease_ms = ttl_millis(lease)?;
        on_backend!(self, b => b.claim(instance, lease_ms, i64::from(limit)).await)
    }

    /// Extends the lease `instance` holds on the source for `run` to `lease` from now; false
    /// when it no longer holds it.
    pub async fn renew_discovery_lease(
        &self,
        claimed: &ClaimedDiscovery,
        instance: &str,
        lease: Duration,
    ) -> Result<bool> {
        let lease_ms = ttl_millis(lease)?;
        on_backend!(self, b => b.renew(claimed.source.as_str(), instance, claimed.run, lease_ms).await)
    }

    /// Records how a claimed run ended and, while `instance` still holds the source, releases it
    /// due again at `next`.
    ///
    /// A scheduled run that succeeded and found the catalog unchanged is folded, in the same
    /// transaction, into the source's previous record when that one is a scheduled, successful,
    /// unchanged run of as many relations: the record counts one run more and takes this run's
    /// times and instance, and this run's own row goes. So the records of a source whose catalog
    /// does not change stop growing. A run asked for, a failure, a change, or a run whose lease
    /// was lost keeps its own record.
    pub async fn complete_discovery(
        &self,
        claimed: &ClaimedDiscovery,
        instance: &str,
        result: &RunResult,
        next: NextDue,
    ) -> Result<Completion> {
        on_backend!(self, b => b.complete(claimed.source.as_str(), instance, claimed.run, result, next).await)
    }

    // ---- alerts and the webhook outbox ----------------------------------------------------
    //
    // Raising or clearing an alert writes, in the same transaction, its audit entry (actor
    // `system`, kind `alert.raised` / `alert.cleared`) and, when a webhook is configured, the
    // notification in the outbox, so neither is lost or written twice.

    /// Raises an alert on `source` unless one of that kind and subject is open already; returns
    /// the new alert, or `None` when it was open.
    pub async fn raise_alert(
        &self,
        source: &SourceId,
        kind: AlertKind,
        subject: &str,
        details: &serde_json::Value,
    ) -> Result<Option<Alert>> {
        if !details.is_object() {
            return Err(StoreError::Invalid {
                field: "details",
                message: "an alert's details are a JSON object".into(),
            });
        }
        on_backend!(self, b => b.raise_alert(source.as_str(), kind.as_str(), subject, &details.to_string()).await)
    }

    /// Clears an open alert; `None` when it is not open (cleared already, or another source's).
    pub async fn clear_alert(&self, source: &SourceId, id: AlertId) -> Result<Option<Alert>> {
        on_backend!(self, b => b.clear_alert(source.as_str(), id).await)
    }

    /// Open alerts, oldest first: of one source, or of every source.
    pub async fn open_alerts(&self, source: Option<&SourceId>) -> Result<Vec<Alert>> {
        on_backend!(self, b => b.open_alerts(source.map(SourceId::as_str)).await)
    }

    /// A source's alerts, open and cleared, newest first, at most `limit` (1 to 1000).
    pub async fn alert_history(&self, source: &SourceId, limit: u32) -> Result<Vec<Alert>> {
        on_backend!(self, b => b.alert_history(source.as_str(), i64::from(limit.clamp(1, page::MAX_PAGE))).await)
    }

    /// Configures the webhook (replacing any): its URL and signing secret, sealed. Notifications
    /// still pending go to the new URL.
    pub async fn set_webhook(&self, url: &str, secret: &Secret) -> Result<WebhookInfo> {
        let sealed = seal::seal(&self.key(), WEBHOOK_SEAL, secret.expose().as_bytes())?;
        on_backend!(self, b => b.set_webhook(url, &sealed).await)?;
        self.webhook().await?.ok_or(StoreError::NotFound { entity: "webhook" })
    }

    /// The configured webhook, without its secret.
    pub async fn webhook(&self) -> Result<Option<WebhookInfo>> {
        on_backend!(self, b => b.webhook().await)
    }

    /// The webhook's URL and its secret, for delivery.
    pub async fn webhook_target(&self) -> Result<Option<(String, Secret)>> {
        let Some((url, sealed)) = on_backend!(self, b => b.webhook_sealed().await)? else { return Ok(None) };
        let plain = seal::open_secret(&self.key(), WEBHOOK_SEAL, &sealed)?;
        let text = String::from_utf8(plain.to_vec())
            .map_err(|_| StoreError::Backend { message: "the stored webhook secret is not UTF-8".into() })?;
        Ok(Some((url, Secret::new(text))))
    }

    /// Removes the webhook and the notifications not delivered yet; false when there was none.
    pub async fn delete_webhook(&self) -> Result<bool> {
        on_backend!(self, b => b.delete_webhook().await)
    }

    /// Leases up to `limit` due notifications to `instance` for `lease`, oldest first; another
    /// instance gets them only once the lease expires.
    pub async fn claim_webhook_deliveries(
        &self,
        instance: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>> {
        let lease_ms = ttl_millis(lease)?;
        on_backend!(self, b => b.claim_deliveries(instance, lease_ms, i64::from(limit.max(1))).await)
    }

    /// Records a delivery's outcome: delivered (`error` None), or failed and due again after
    /// `retry_after`. False when `instance` no longer held it.
    pub async fn finish_webhook_delivery(
        &self,
        delivery: &WebhookDelivery,
        instance: &str,
        error: Option<&str>,
        retry_after: Duration,
    ) -> Result<bool> {
        let delay_ms = i64::try_from(retry_after.as_millis()).unwrap_or(i64::MAX);
        on_backend!(self, b => b.finish_delivery(delivery.id, instance, error, delay_ms).await)
    }

    // ---- periodic service-wide tasks -------------------------------------------------------

    /// Whether `instance` should do the periodic task `name` now: true for exactly one caller
    /// per `every` (the first to ask once it is due; a new task is due at once), however many
    /// instances share the store. A claimer that dies before finishing leaves it to the next
    /// period.
    pub async fn claim_periodic(&self, name: &str, instance: &str, every: Duration) -> Result<bool> {
        let every_ms = ttl_millis(every)?;
        on_backend!(self, b => b.claim_periodic(name, instance, every_ms).await)
    }

    // ---- audit log -----------------------------------------------------------------------

    /// Appends an entry; the log is append-only (the database refuses deletes and rewrites).
    pub async fn append_audit(&self, entry: &NewAuditEntry) -> Result<AuditId> {
        let detail = entry.detail.to_string();
        on_backend!(self, b => b.append_audit(&entry.actor, &entry.kind, entry.source.as_ref().map(SourceId::as_str), &detail, None).await)
    }

    /// Records a query as it starts (kind `query`); [`Store::complete_query_audit`] adds how it
    /// ended, so a query that never ends still shows.
    pub async fn begin_query_audit(&self, actor: &str, source: &SourceId, sql: &str) -> Result<AuditId> {
        on_backend!(self, b => b.append_audit(actor, "query", Some(source.as_str()), "{}", Some(sql)).await)
    }

    /// Completes a query's entry, once.
    pub async fn complete_query_audit(&self, id: AuditId, done: &QueryCompletion) -> Result<()> {
        found(on_backend!(self, b => b.complete_query(id, done).await)?, "unfinished query audit entry")
    }

    /// One page of entries matching `filter`, newest first.
    pub async fn audit(&self, filter: &AuditFilter) -> Result<AuditPage> {
        let size = page::page_size(filter.limit)?;
        let rows = on_backend!(self, b => b.audit(filter, page::rows_to_read(size)).await)?;
        let (entries, next) = page::cut(rows, size, |e| e.id);
        Ok(AuditPage { entries, next })
    }
}

/// `SHA256:…` as OpenSSH prints it: no surrounding space, no base64 padding.
pub fn normalize_fingerprint(fp: &str) -> &str {
    fp.trim().trim_end_matches('=')
}

/// What the webhook's secret is sealed for: never a source id (those have no `:`).
pub(crate) const WEBHOOK_SEAL: SealContext<'static> = SealContext { source: "webhook:", field: "webhook.secret" };

/// The JSON a webhook receives for an alert raised or cleared (`event`: `alert.raised` or
/// `alert.cleared`); `id` is the notification's idempotency id.
pub(crate) fn webhook_body(event: &str, alert: &Alert) -> (String, String) {
    let event_id = format!("alert-{}-{}", alert.id, if event == "alert.raised" { "raised" } else { "cleared" });
    let body = serde_json::json!({
        "id": event_id,
        "type": event,
        "at": alert.cleared_at.unwrap_or(alert.raised_at),
        "source": alert.source,
        "alert": alert,
    });
    (event_id, body.to_string())
}

/// The secret field a generated key becomes, and the field its sealed copy is bound to.
pub(crate) const GENERATED_KEY_FIELD: &str = "ssh.private_key";

/// The seal context's "source" of an unclaimed generated key: never a source id (those have no
/// `:`), so its sealed value opens nowhere else.
pub(crate) fn generated_key_context(id: &str) -> String {
    format!("ssh-key:{id}")
}

pub(crate) fn unusable_generated_key(id: &str) -> StoreError {
    StoreError::Invalid {
        field: "ssh.private_key_id",
        message: format!(
            "the generated SSH key `{}` is unknown, expired or already used: generate a new one",
            id.chars().take(64).collect::<String>()
        ),
    }
}

/// A source as a backend reads it.
pub(crate) struct SourceRow {
    pub id: String,
    pub name: String,
    pub settings: String,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub password_updated_at: Option<Millis>,
    pub fields: Vec<String>,
    pub ssh_public_key: Option<String>,
    pub host_key_approval: Option<HostKeyApproval>,
    pub last_test: Option<SourceTest>,
}

impl SourceRow {
    fn into_record(self) -> Result<SourceRecord> {
        let settings: SourceSpec = serde_json::from_str(&self.settings)
            .map_err(|e| StoreError::backend("read a source's stored settings", e))?;
        let mut secret_fields = self.fields.iter().map(|f| model::secret_field(f)).collect::<Result<Vec<_>>>()?;
        secret_fields.sort_by_key(|f| SecretField::ALL.iter().position(|g| g == f));
        Ok(SourceRecord {
            id: model::source_id(self.id)?,
            name: self.name,
            settings,
            secret_fields,
            created_at: self.created_at,
            updated_at: self.updated_at,
            password_updated_at: self.password_updated_at,
            ssh_public_key: self.ssh_public_key,
            host_key_approval: self.host_key_approval,
            last_test: self.last_test,
        })
    }
}

fn found(hit: bool, entity: &'static str) -> Result<()> {
    if hit {
        Ok(())
    } else {
        Err(StoreError::NotFound { entity })
    }
}

fn check_name(name: &str) -> Result<&str> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 200 || trimmed.chars().any(char::is_control) {
        return Err(StoreError::Invalid { field: "name", message: "use 1 to 200 printable characters".into() });
    }
    Ok(trimmed)
}

fn check_login(login: &str) -> Result<&str> {
    let ok = !login.is_empty()
        && login.len() <= 64
        && login.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(login)
    } else {
        Err(StoreError::Invalid {
            field: "login",
            message: "use 1 to 64 characters of a-z, A-Z, 0-9, '.', '_', '-' and '@'".into(),
        })
    }
}

fn settings_json(settings: &SourceSpec) -> Result<String> {
    if !settings.clone().split().1.is_empty() {
        return Err(StoreError::Invalid {
            field: "settings",
            message: "the settings hold secrets: pass them apart (SourceSpec::split)".into(),
        });
    }
    serde_json::to_string(settings).map_err(|e| StoreError::backend("serialize settings", e))
}

fn ttl_millis(ttl: Duration) -> Result<i64> {
    i64::try_from(ttl.as_millis())
        .ok()
        .filter(|ms| *ms > 0)
        .ok_or(StoreError::Invalid { field: "ttl", message: "must be positive and below 292 million years".into() })
}

/// A discovery interval in ms: positive, or an error naming the field.
fn interval_millis(interval: Duration) -> Result<i64> {
    i64::try_from(interval.as_millis()).ok().filter(|ms| *ms > 0).ok_or(StoreError::Invalid {
        field: "discovery_interval",
        message: "give a discovery interval of at least 1 ms and below 292 million years".into(),
    })
}

fn decompress(bytes: &[u8]) -> Result<Vec<u8>> {
    zstd::stream::decode_all(bytes).map_err(|e| StoreError::backend("decompress a snapshot", e))
}

/// A secret's stored plaintext: passwords and passphrases as they are; keys as `pem:` + text
/// or `file:` + path (a key given as a file stays a path).
fn secret_plaintext(secrets: &SourceSecrets, field: SecretField) -> Option<Zeroizing<Vec<u8>>> {
    let key = |k: &KeySource| -> Zeroizing<Vec<u8>> {
        use std::os::unix::ffi::OsStrExt;
        let mut out = Zeroizing::new(Vec::new());
        match k {
            KeySource::Pem(s) => {
                out.extend_from_slice(b"pem:");
                out.extend_from_slice(s.expose().as_bytes());
            }
            KeySource::File(p) => {
                out.extend_from_slice(b"file:");
                out.extend_from_slice(p.as_os_str().as_bytes());
            }
        }
        out
    };
    let secret = |s: &Secret| Zeroizing::new(s.expose().as_bytes().to_vec());
    match field {
        SecretField::Password => secrets.password.as_ref().map(secret),
        SecretField::SslKey => secrets.sslkey.as_ref().map(key),
        SecretField::SshPrivateKey => secrets.ssh_private_key.as_ref().map(key),
        SecretField::SshPassphrase => secrets.ssh_passphrase.as_ref().map(secret),
    }
}

fn set_secret(secrets: &mut SourceSecrets, field: SecretField, plain: &[u8]) -> Result<()> {
    let bad = || StoreError::Backend { message: format!("a stored {} is not in the store's format", field.as_str()) };
    let text = || std::str::from_utf8(plain).map(Secret::new).map_err(|_| bad());
    let key = || -> Result<KeySource> {
        use std::os::unix::ffi::OsStrExt;
        if let Some(pem) = plain.strip_prefix(b"pem:") {
            return std::str::from_utf8(pem).map(|s| KeySource::Pem(Secret::new(s))).map_err(|_| bad());
        }
        if let Some(path) = plain.strip_prefix(b"file:") {
            return Ok(KeySource::File(std::ffi::OsStr::from_bytes(path).into()));
        }
        Err(bad())
    };
    match field {
        SecretField::Password => secrets.password = Some(text()?),
        SecretField::SslKey => secrets.sslkey = Some(key()?),
        SecretField::SshPrivateKey => secrets.ssh_private_key = Some(key()?),
        SecretField::SshPassphrase => secrets.ssh_passphrase = Some(text()?),
    }
    Ok(())
}

/// What an edit does to a source besides replacing its settings and the secrets it gives.
pub(crate) struct SecretEdits<'a> {
    /// A generated SSH key to claim as the source's private key.
    pub claim: Option<&'a str>,
    /// Stored secrets to delete.
    pub dropped: &'a [&'static str],
    /// A new discovery interval, in milliseconds (a shorter one makes the source due within it).
    pub interval_ms: Option<i64>,
    /// Due now, its failures in a row from 0.
    pub due_now: bool,
}

/// How an edit ([`Store::update_source_dropping`]) changes the source's discovery schedule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScheduleEdit {
    /// A new interval of its own (`None` keeps the one it has). The run in flight, if any, is
    /// scheduled on it when it completes; a shorter one makes the source due within it.
    pub interval: Option<Duration>,
    /// Discover it now (new connection settings), its failures in a row counted from 0.
    pub due_now: bool,
}
