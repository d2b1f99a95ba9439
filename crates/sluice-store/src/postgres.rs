//! The PostgreSQL backend: one database shared by every instance pointed at it.
//!
//! Servers below 12 are refused before anything is written. Migrations run under sqlx's
//! advisory lock, so instances starting together migrate once. Times come from the server's
//! clock (`statement_timestamp()`), so every instance agrees on them.

use std::str::FromStr;

use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::{PgPool, Row};

use crate::error::db_error;
use crate::model::{source_id, ApiToken, AuditEntry, AuditFilter, AuditId, Millis, QueryCompletion};
use crate::model::{CatalogChange, ChangeId, Pruned, RunId, Session, SnapshotId, SnapshotMeta, User, UserId};
use crate::seal::Sealed;
use crate::{Result, SourceRow, StoreError};

/// The database clock in milliseconds since the Unix epoch.
macro_rules! now {
    () => {
        "(extract(epoch from statement_timestamp()) * 1000)::bigint"
    };
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// PostgreSQL 12: generated columns, `FOR EACH ... EXECUTE FUNCTION`, and still supported by its
/// community when this store was written.
const MIN_SERVER_VERSION_NUM: u32 = 120000;

pub(crate) struct PgBackend {
    pool: PgPool,
}

fn be(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| StoreError::backend(what, e)
}

type Reseal<'a> = &'a (dyn Fn(&str, &str, &Sealed) -> Result<Sealed> + Sync);

impl PgBackend {
    pub(crate) async fn open(location: &crate::location::PgLocation) -> Result<PgBackend> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with((*location.options).clone())
            .await
            .map_err(|e| StoreError::backend("connect to the PostgreSQL store", e))?;
        let version: String = sqlx::query_scalar("SELECT current_setting('server_version_num')")
            .fetch_one(&pool)
            .await
            .map_err(be("read the server version"))?;
        let num: u32 = version
            .parse()
            .map_err(|_| StoreError::Backend { message: format!("unexpected server_version_num `{version}`") })?;
        if num < MIN_SERVER_VERSION_NUM {
            pool.close().await;
            let version = if num >= 100000 {
                format!("{}.{}", num / 10000, num % 10000)
            } else {
                format!("{}.{}.{}", num / 10000, num / 100 % 100, num % 100)
            };
            return Err(StoreError::UnsupportedServer { version });
        }
        MIGRATOR.run(&pool).await.map_err(|e| StoreError::backend("migrate the store", e))?;
        Ok(PgBackend { pool })
    }

    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }

    // ---- master key check ------------------------------------------------------------------

    pub(crate) async fn check_value(&self) -> Result<Option<Sealed>> {
        let row = sqlx::query("SELECT key_id, nonce, ciphertext FROM store_meta WHERE name = 'check'")
            .fetch_optional(&self.pool)
            .await
            .map_err(be("read the key check"))?;
        row.map(|r| sealed(&r, 0)).transpose()
    }

    pub(crate) async fn init_check(&self, s: &Sealed) -> Result<Sealed> {
        sqlx::query("INSERT INTO store_meta (name, key_id, nonce, ciphertext) VALUES ('check', $1, $2, $3) ON CONFLICT (name) DO NOTHING")
            .bind(&s.key_id)
            .bind(&s.nonce)
            .bind(&s.ciphertext)
            .execute(&self.pool)
            .await
            .map_err(be("write the key check"))?;
        self.check_value().await?.ok_or(StoreError::Backend { message: "the key check vanished".into() })
    }

    // ---- sources -----------------------------------------------------------------------------

    /// Inserts the source with its schedule row (due now, on `interval_ms`) in one transaction,
    /// so no instance can claim the source before its interval is stored.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn insert_source(
        &self,
        id: &str,
        name: &str,
        settings: &str,
        secrets: &[(&'static str, Sealed)],
        password_set: bool,
        claim: Option<&str>,
        interval_ms: Option<i64>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(be("begin"))?;
        sqlx::query(concat!(
            "INSERT INTO sources (id, name, settings, created_at, updated_at, password_updated_at) ",
            "VALUES ($1, $2, $3::jsonb, ",
            now!(),
            ", ",
            now!(),
            ", CASE WHEN $4::boolean THEN ",
            now!(),
            " END)"
        ))
        .bind(id)
        .bind(name)
        .bind(settings)
        .bind(password_set)
        .execute(&mut *tx)
        .await
        .map_err(|e| db_error(e, "source", "source"))?;
        for (field, s) in secrets {
            put_secret(&mut tx, id, field, s).await?;
        }
        replace_generated_key(&mut tx, id, secrets, claim).await?;
        sqlx::query(concat!(
            "INSERT INTO discovery_schedule (source_id, interval_ms, next_due_at) VALUES ($1, $2, ",
            now!(),
            ")"
        ))
        .bind(id)
        .bind(interval_ms)
        .execute(&mut *tx)
        .await
        .map_err(be("schedule a new source"))?;
        tx.commit().await.map_err(be("commit"))
    }

    pub(crate) async fn update_source(
        &self,
        id: &str,
        name: &str,
        settings: &str,
        secrets: &[(&'static str, Sealed)],
        password_set: bool,
        edits: crate::SecretEdits<'_>,
    ) -> Result<bool> {
        let crate::SecretEdits { claim, dropped, interval_ms, due_now } = edits;
        if interval_ms.is_some() || due_now {
            // A store from before schedules were kept may have no row for the source yet.
            self.schedule_new_sources().await?;
        }
        let mut tx = self.pool.begin().await.map_err(be("begin"))?;
        let hit = sqlx::query(concat!(
            "UPDATE sources SET name = $2, settings = $3::jsonb, updated_at = ",
            now!(),
            ", password_updated_at = CASE WHEN $4::boolean THEN ",
            now!(),
            " ELSE password_updated_at END, ",
            "last_test_at = CASE WHEN settings = $3::jsonb AND $5::boolean THEN last_test_at END, ",
            "last_test_by = CASE WHEN settings = $3::jsonb AND $5::boolean THEN last_test_by END, ",
            "last_test_ok = CASE WHEN settings = $3::jsonb AND $5::boolean THEN last_test_ok END, ",
            "last_test_failed = CASE WHEN settings = $3::jsonb AND $5::boolean THEN last_test_failed END, ",
            "last_test_message = CASE WHEN settings = $3::jsonb AND $5::boolean THEN last_test_message END ",
            "WHERE id = $1"
        ))
        .bind(id)
        .bind(name)
        .bind(settings)
        .bind(password_set)
        .bind(secrets.is_empty() && dropped.is_empty())
        .execute(&mut *tx)
        .await
        .map_err(|e| db_error(e, "source", "source"))?
        .rows_affected();
        if hit == 0 {
            return Ok(false);
        }
        for (field, s) in secrets {
            put_secret(&mut tx, id, field, s).await?;
        }
        for field in dropped {
            sqlx::query("DELETE FROM source_secrets WHERE source_id = $1 AND field = $2")
                .bind(id)
                .bind(*field)
                .execute(&mut *tx)
                .await
                .map_err(be("drop a secret"))?;
            if *field == "password" {
                sqlx::query("UPDATE sources SET password_updated_at = NULL WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(be("drop a secret"))?;
            }
        }
        replace_generated_key(&mut tx, id, secrets, claim).await?;
        if let Some(ms) = interval_ms {
            schedule::set_interval_on(&mut tx, id, Some(ms)).await?;
        }
        if due_now {
            schedule::due_now_on(&mut tx, id).await?;
        }
        tx.commit().await.map_err(be("commit"))?;
        Ok(true)
    }

    pub(crate) async fn source_row(&self, id: &str) -> Result<Option<SourceRow>> {
        let row = sqlx::query(
            "SELECT id, name, settings::text, created_at, updated_at, password_updated_at, \
             (SELECT string_agg(field, ',') FROM source_secrets WHERE source_id = s.id) AS fields, \
             (SELECT public_key FROM ssh_keys WHERE source_id = s.id) AS ssh_public_key, \
             h.fingerprint, h.algorithm, h.public_key, h.approved_by, h.approved_at, \
             s.last_test_at, s.last_test_by, s.last_test_ok, s.last_test_failed, s.last_test_message \
             FROM sources s LEFT JOIN ssh_host_keys h ON h.source_id = s.id AND h.approved_at IS NOT NULL WHERE s.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(be("read a source"))?;
        row.map(|r| source_row(&r)).transpose()
    }

    pub(crate) async fn source_rows(&self) -> Result<Vec<SourceRow>> {
        let rows = sqlx::query(
            "SELECT id, name, settings::text, created_at, updated_at, password_updated_at, \
             (SELECT string_agg(field, ',') FROM source_secrets WHERE source_id = s.id) AS fields, \
             (SELECT public_key FROM ssh_keys WHERE source_id = s.id) AS ssh_public_key, \
             h.fingerprint, h.algorithm, h.public_key, h.approved_by, h.approved_at, \
             s.last_test_at, s.last_test_by, s.last_test_ok, s.last_test_failed, s.last_test_message \
             FROM sources s LEFT JOIN ssh_host_keys h ON h.source_id = s.id AND h.approved_at IS NOT NULL ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(be("list sources"))?;
        rows.iter().map(source_row).collect()
    }

    pub(crate) async fn source_secrets(&self, id: &str) -> Result<Vec<(String, Sealed)>> {
        let rows = sqlx::query("SELECT field, key_id, nonce, ciphertext FROM source_secrets WHERE source_id = $1")
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .map_err(be("read a source's secrets"))?;
        rows.iter().map(|r| Ok((r.try_get(0).map_err(be("read a secret"))?, sealed(r, 1)?))).collect()
    }

    pub(crate) async fn record_source_test(&self, id: &str, t: &crate::NewSourceTest<'_>) -> Result<bool> {
        let hit = sqlx::query(concat!(
            "UPDATE sources SET last_test_at = ",
            now!(),
            ", last_test_by = $2, last_test_ok = $3, last_test_failed = $4, last_test_message = $5 WHERE id = $1"
        ))
        .bind(id)
        .bind(t.tested_by)
        .bind(t.ok)
        .bind(t.failed)
        .bind(t.message)
        .execute(&self.pool)
        .await
        .map_err(be("record a source's test"))?;
        Ok(hit.rows_affected() == 1)
    }

    pub(crate) async fn delete_source(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM sources WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(be("delete a source"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Re-seals every secret and the check value in one transaction that holds off every other
    /// writer of secrets until it commits.
    pub(crate) async fn reseal_all(&self, reseal: Reseal<'_>) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(be("begin"))?;
        sqlx::query("LOCK TABLE store_meta, source_secrets, ssh_keys, webhook IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .map_err(be("lock the secrets"))?;
        let rows = sqlx::query("SELECT source_id, field, key_id, nonce, ciphertext FROM source_secrets")
            .fetch_all(&mut *tx)
            .await
            .map_err(be("read secrets"))?;
        for r in &rows {
            let source: String = r.try_get(0).map_err(be("read a secret"))?;
            let field: String = r.try_get(1).map_err(be("read a secret"))?;
            let new = reseal(&source, &field, &sealed(r, 2)?)?;
            put_secret(&mut tx, &source, &field, &new).await?;
        }
        let pending = sqlx::query("SELECT id, key_id, nonce, ciphertext FROM ssh_keys WHERE source_id IS NULL")
            .fetch_all(&mut *tx)
            .await
            .map_err(be("read generated SSH keys"))?;
        for r in &pending {
            let id: String = r.try_get(0).map_err(be("read a generated SSH key"))?;
            let new = reseal(&crate::generated_key_context(&id), crate::GENERATED_KEY_FIELD, &sealed(r, 1)?)?;
            sqlx::query("UPDATE ssh_keys SET key_id = $1, nonce = $2, ciphertext = $3 WHERE id = $4")
                .bind(&new.key_id)
                .bind(&new.nonce)
                .bind(&new.ciphertext)
                .bind(&id)
                .execute(&mut *tx)
                .await
                .map_err(be("reseal a generated SSH key"))?;
        }
        let webhook = sqlx::query("SELECT key_id, nonce, ciphertext FROM webhook")
            .fetch_optional(&mut *tx)
            .await
            .map_err(be("read the webhook secret"))?;
        if let Some(r) = &webhook {
            let new = reseal(crate::WEBHOOK_SEAL.source, crate::WEBHOOK_SEAL.field, &sealed(r, 0)?)?;
            sqlx::query("UPDATE webhook SET key_id = $1, nonce = $2, ciphertext = $3 WHERE id = 1")
                .bind(&new.key_id)
                .bind(&new.nonce)
                .bind(&new.ciphertext)
                .execute(&mut *tx)
                .await
                .map_err(be("reseal the webhook secret"))?;
        }
        let check = sqlx::query("SELECT key_id, nonce, ciphertext FROM store_meta WHERE name = 'check'")
            .fetch_one(&mut *tx)
            .await
            .map_err(be("read the key check"))?;
        let new = reseal("", "", &sealed(&check, 0)?)?;
        sqlx::query("UPDATE store_meta SET key_id = $1, nonce = $2, ciphertext = $3 WHERE name = 'check'")
            .bind(&new.key_id)
            .bind(&new.nonce)
            .bind(&new.ciphertext)
            .execute(&mut *tx)
            .await
            .map_err(be("write the key check"))?;
        tx.commit().await.map_err(be("commit"))
    }

    // ---- generated SSH keys ------------------------------------------------------------------

    /// Stores a new unclaimed key (dropping expired unclaimed ones); returns its creation and
    /// expiry times.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn insert_ssh_key(
        &self,
        id: &str,
        public_key: &str,
        fingerprint: &str,
        created_by: &str,
        ttl_ms: i64,
        s: &Sealed,
    ) -> Result<(Millis, Millis)> {
        let mut tx = self.pool.begin().await.map_err(be("begin"))?;
        sqlx::query(concat!("DELETE FROM ssh_keys WHERE source_id IS NULL AND expires_at <= ", now!()))
            .execute(&mut *tx)
            .await
            .map_err(be("drop expired SSH keys"))?;
        let row = sqlx::query(concat!(
            "INSERT INTO ssh_keys (id, public_key, fingerprint, created_by, created_at, expires_at, key_id, nonce, ciphertext) ",
            "VALUES ($1, $2, $3, $4, ",
            now!(),
            ", ",
            now!(),
            " + $5, $6, $7, $8) RETURNING created_at, expires_at"
        ))
        .bind(id)
        .bind(public_key)
        .bind(fingerprint)
        .bind(created_by)
        .bind(ttl_ms)
        .bind(&s.key_id)
        .bind(&s.nonce)
        .bind(&s.ciphertext)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| db_error(e, "SSH key", "SSH key"))?;
        let get = be("read a generated SSH key");
        let times = (row.try_get(0).map_err(&get)?, row.try_get(1).map_err(&get)?);
        tx.commit().await.map_err(be("commit"))?;
        Ok(times)
    }

    /// An unclaimed, unexpired key's sealed private half.
    pub(crate) async fn pending_ssh_key(&self, id: &str) -> Result<Option<Sealed>> {
        let row = sqlx::query(concat!(
            "SELECT key_id, nonce, ciphertext FROM ssh_keys WHERE id = $1 AND source_id IS NULL AND expires_at > ",
            now!()
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(be("read a generated SSH key"))?;
        row.map(|r| sealed(&r, 0)).transpose()
    }

    // ---- bastion host keys -------------------------------------------------------------------

    /// Records a host key a source's bastion presented (again); keys never approved and not
    /// seen for 30 days are dropped.
    pub(crate) async fn record_host_key(
        &self,
        source: &str,
        bastion: &str,
        fingerprint: &str,
        algorithm: &str,
        public_key: &str,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(be("begin"))?;
        sqlx::query(concat!(
            "DELETE FROM ssh_host_keys WHERE source_id = $1 AND approved_at IS NULL AND last_seen_at < ",
            now!(),
            " - 2592000000"
        ))
        .bind(source)
        .execute(&mut *tx)
        .await
        .map_err(be("drop old host keys"))?;
        sqlx::query(concat!(
            "INSERT INTO ssh_host_keys (source_id, bastion, fingerprint, algorithm, public_key, first_seen_at, last_seen_at) ",
            "VALUES ($1, $2, $3, $4, $5, ",
            now!(),
            ", ",
            now!(),
            ") ON CONFLICT (source_id, bastion, fingerprint) DO UPDATE SET algorithm = excluded.algorithm, ",
            "public_key = excluded.public_key, last_seen_at = excluded.last_seen_at"
        ))
        .bind(source)
        .bind(bastion)
        .bind(fingerprint)
        .bind(algorithm)
        .bind(public_key)
        .execute(&mut *tx)
        .await
        .map_err(|e| db_error(e, "host key", "source"))?;
        tx.commit().await.map_err(be("commit"))
    }

    /// Approves the recorded key `fingerprint` of `bastion` (the only approved one of the
    /// source from now on) and stores `settings` (which pin it), in one transaction. `None`
    /// when no such key was recorded: nothing changes.
    pub(crate) async fn approve_host_key(
        &self,
        source: &str,
        bastion: &str,
        fingerprint: &str,
        approved_by: &str,
        settings: &str,
    ) -> Result<Option<(String, String, Millis)>> {
        let mut tx = self.pool.begin().await.map_err(be("begin"))?;
        sqlx::query(
            "UPDATE ssh_host_keys SET approved_by = NULL, approved_at = NULL \
             WHERE source_id = $1 AND approved_at IS NOT NULL AND NOT (bastion = $2 AND fingerprint = $3)",
        )
        .bind(source)
        .bind(bastion)
        .bind(fingerprint)
        .execute(&mut *tx)
        .await
        .map_err(be("approve a host key"))?;
        let row = sqlx::query(concat!(
            "UPDATE ssh_host_keys SET approved_by = $4, approved_at = ",
            now!(),
            " WHERE source_id = $1 AND bastion = $2 AND fingerprint = $3 RETURNING algorithm, public_key, approved_at"
        ))
        .bind(source)
        .bind(bastion)
        .bind(fingerprint)
        .bind(approved_by)
        .fetch_optional(&mut *tx)
        .await
        .map_err(be("approve a host key"))?;
        let Some(row) = row else { return Ok(None) };
        let get = be("read an approved host key");
        let approved = (row.try_get(0).map_err(&get)?, row.try_get(1).map_err(&get)?, row.try_get(2).map_err(&get)?);
        sqlx::query(concat!("UPDATE sources SET settings = $1::jsonb, updated_at = ", now!(), " WHERE id = $2"))
            .bind(settings)
            .bind(source)
            .execute(&mut *tx)
            .await
            .map_err(be("pin a host key"))?;
        tx.commit().await.map_err(be("commit"))?;
        Ok(Some(approved))
    }

    // ---- users -------------------------------------------------------------------------------

    pub(crate) async fn insert_user(&self, login: &str, role: &str, hash: &str) -> Result<User> {
        let row = sqlx::query(concat!(
            "INSERT INTO users (login, role, password_hash, created_at) VALUES ($1, $2, $3, ",
            now!(),
            ") RETURNING id, login, role, created_at, disabled"
        ))
        .bind(login)
        .bind(role)
        .bind(hash)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| db_error(e, "user", "user"))?;
        user(&row, 0)
    }

    pub(crate) async fn user_by_login(&self, login: &str) -> Result<Option<(User, String)>> {
        let row =
            sqlx::query("SELECT id, login, role, created_at, disabled, password_hash FROM users WHERE login = $1")
                .bind(login)
                .fetch_optional(&self.pool)
                .await
                .map_err(be("read a user"))?;
        row.map(|r| Ok((user(&r, 0)?, r.try_get(5).map_err(be("read a user"))?))).transpose()
    }

    pub(crate) async fn user_by_id(&self, id: UserId) -> Result<Option<User>> {
        let row = sqlx::query("SELECT id, login, role, created_at, disabled FROM users WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(be("read a user"))?;
        row.map(|r| user(&r, 0)).transpose()
    }

    pub(crate) async fn users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query("SELECT id, login, role, created_at, disabled FROM users ORDER BY login")
            .fetch_all(&self.pool)
            .await
            .map_err(be("list users"))?;
        rows.iter().map(|r| user(r, 0)).collect()
    }

    pub(crate) async fn set_password_hash(&self, id: UserId, hash: &str) -> Result<bool> {
        self.update_user("UPDATE users SET password_hash = $1 WHERE id = $2", hash, id).await
    }

    pub(crate) async fn set_role(&self, id: UserId, role: &str) -> Result<bool> {
        self.update_user("UPDATE users SET role = $1 WHERE id = $2", role, id).await
    }

    async fn update_user(&self, sql: &'static str, value: &str, id: UserId) -> Result<bool> {
        let done = sqlx::query(sql).bind(value).bind(id.0).execute(&self.pool).await.map_err(be("update a user"))?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn set_disabled(&self, id: UserId, disabled: bool) -> Result<bool> {
        let done = sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
            .bind(disabled)
            .bind(id.0)
            .execute(&self.pool)
            .await
            .map_err(be("update a user"))?;
        Ok(done.rows_affected() == 1)
    }

    // ---- sessions ----------------------------------------------------------------------------

    pub(crate) async fn insert_session(
        &self,
        id_hash: &[u8],
        user: UserId,
        csrf_hash: &[u8],
        ttl_ms: i64,
    ) -> Result<Millis> {
        sqlx::query_scalar(concat!(
            "INSERT INTO sessions (id_hash, user_id, csrf_hash, created_at, expires_at) VALUES ($1, $2, $3, ",
            now!(),
            ", ",
            now!(),
            " + $4) RETURNING expires_at"
        ))
        .bind(id_hash)
        .bind(user.0)
        .bind(csrf_hash)
        .bind(ttl_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| db_error(e, "session", "user"))
    }

    pub(crate) async fn live_session(&self, id_hash: &[u8]) -> Result<Option<Session>> {
        let row = sqlx::query(concat!(
            "SELECT u.id, u.login, u.role, u.created_at, u.disabled, s.created_at, s.expires_at, s.csrf_hash ",
            "FROM sessions s JOIN users u ON u.id = s.user_id ",
            "WHERE s.id_hash = $1 AND NOT s.revoked AND NOT u.disabled AND s.expires_at > ",
            now!()
        ))
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(be("read a session"))?;
        row.map(|r| {
            Ok(Session {
                user: user(&r, 0)?,
                created_at: r.try_get(5).map_err(be("read a session"))?,
                expires_at: r.try_get(6).map_err(be("read a session"))?,
                csrf_hash: r.try_get(7).map_err(be("read a session"))?,
            })
        })
        .transpose()
    }

    pub(crate) async fn revoke_session(&self, id_hash: &[u8]) -> Result<bool> {
        let done = sqlx::query("UPDATE sessions SET revoked = true WHERE id_hash = $1 AND NOT revoked")
            .bind(id_hash)
            .execute(&self.pool)
            .await
            .map_err(be("revoke a session"))?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn revoke_user_sessions(&self, user: UserId) -> Result<u64> {
        let done = sqlx::query(concat!(
            "UPDATE sessions SET revoked = true WHERE user_id = $1 AND NOT revoked AND expires_at > ",
            now!()
        ))
        .bind(user.0)
        .execute(&self.pool)
        .await
        .map_err(be("revoke sessions"))?;
        Ok(done.rows_affected())
    }

    // ---- API tokens --------------------------------------------------------------------------

    pub(crate) async fn insert_token(
        &self,
        public_id: &str,
        hash: &[u8],
        name: &str,
        role: &str,
        source: Option<&str>,
        created_by: Option<UserId>,
    ) -> Result<ApiToken> {
        let row = sqlx::query(concat!(
            "INSERT INTO api_tokens (public_id, secret_hash, name, role, source_id, created_by, created_at) ",
            "VALUES ($1, $2, $3, $4, $5, $6, ",
            now!(),
            ") RETURNING public_id, name, role, source_id, created_by, created_at, last_used_at, revoked"
        ))
        .bind(public_id)
        .bind(hash)
        .bind(name)
        .bind(role)
        .bind(source)
        .bind(created_by.map(|u| u.0))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| db_error(e, "token", "source or user"))?;
        token(&row)
    }

    pub(crate) async fn token(&self, public_id: &str) -> Result<Option<(ApiToken, Vec<u8>)>> {
        let row = sqlx::query(
            "SELECT public_id, name, role, source_id, created_by, created_at, last_used_at, revoked, secret_hash \
             FROM api_tokens WHERE public_id = $1",
        )
        .bind(public_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(be("read a token"))?;
        row.map(|r| Ok((token(&r)?, r.try_get(8).map_err(be("read a token"))?))).transpose()
    }

    pub(crate) async fn touch_token(&self, public_id: &str) -> Result<Option<ApiToken>> {
        let row = sqlx::query(concat!(
            "UPDATE api_tokens SET last_used_at = ",
            now!(),
            " WHERE public_id = $1 AND NOT revoked ",
            "RETURNING public_id, name, role, source_id, created_by, created_at, last_used_at, revoked"
        ))
        .bind(public_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(be("record a token's use"))?;
        row.map(|r| token(&r)).transpose()
    }

    pub(crate) async fn revoke_token(&self, public_id: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE api_tokens SET revoked = true WHERE public_id = $1")
            .bind(public_id)
            .execute(&self.pool)
            .await
            .map_err(be("revoke a token"))?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn tokens(&self) -> Result<Vec<ApiToken>> {
        let rows = sqlx::query(
            "SELECT public_id, name, role, source_id, created_by, created_at, last_used_at, revoked \
             FROM api_tokens ORDER BY created_at, public_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(be("list tokens"))?;
        rows.iter().map(token).collect()
    }

    // ---- setup tokens ------------------------------------------------------------------------

    pub(crate) async fn insert_setup_token(&self, hash: &[u8], ttl_ms: i64) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO setup_tokens (hash, created_at, expires_at) VALUES ($1, ",
            now!(),
            ", ",
            now!(),
            " + $2)"
        ))
        .bind(hash)
        .bind(ttl_ms)
        .execute(&self.pool)
        .await
        .map_err(be("create a setup token"))?;
        Ok(())
    }

    pub(crate) async fn consume_setup_token(&self, hash: &[u8]) -> Result<bool> {
        let done = sqlx::query(concat!(
            "UPDATE setup_tokens SET used_at = ",
            now!(),
            " WHERE hash = $1 AND used_at IS NULL AND expires_at > ",
            now!()
        ))
        .bind(hash)
        .execute(&self.pool)
        .await
        .map_err(be("use a setup token"))?;
        Ok(done.rows_affected() == 1)
    }

    // ---- catalog snapshots -------------------------------------------------------------------

    /// Compare and insert while holding the source's row lock, so two instances storing the
    /// same catalog at once store it once.
    pub(crate) async fn insert_snapshot_if_new(
        &self,
        source: &str,
        hash: &str,
        content: &[u8],
    ) -> Result<Option<SnapshotMeta>> {
        let mut tx = self.pool.begin().await.map_err(be("begin"))?;
        let exists = sqlx::query("SELECT 1 FROM sources WHERE id = $1 FOR UPDATE")
            .bind(source)
            .fetch_optional(&mut *tx)
            .await
            .map_err(be("lock a source"))?;
        if exists.is_none() {
            return Err(StoreError::NotFound { entity: "source" });
        }
        let latest: Option<String> = sqlx::query_scalar(
            "SELECT content_hash FROM catalog_snapshots WHERE source_id = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(source)
        .fetch_optional(&mut *tx)
        .await
        .map_err(be("read the latest snapshot"))?;
        if latest.as_deref() == Some(hash) {
            return Ok(None);
        }
        let row = sqlx::query(concat!(
            "INSERT INTO catalog_snapshots (source_id, content_hash, compression, content, discovered_at) ",
            "VALUES ($1, $2, 'zstd', $3, ",
            now!(),
            ") RETURNING id, source_id, content_hash, discovered_at"
        ))
        .bind(source)
        .bind(hash)
        .bind(content)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| db_error(e, "snapshot", "source"))?;
        let meta = snapshot(&row)?;
        tx.commit().await.map_err(be("commit"))?;
        Ok(Some(meta))
    }

    pub(crate) async fn latest_snapshot(&self, source: &str) -> Result<Option<(SnapshotMeta, Vec<u8>)>> {
        let row = sqlx::query(
            "SELECT id, source_id, content_hash, discovered_at, content FROM catalog_snapshots \
             WHERE source_id = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(source)
        .fetch_optional(&self.pool)
        .await
        .map_err(be("read a snapshot"))?;
        row.map(|r| Ok((snapshot(&r)?, r.try_get(4).map_err(be("read a snapshot"))?))).transpose()
    }

    pub(crate) async fn snapshots(&self, source: &str) -> Result<Vec<SnapshotMeta>> {
        let rows = sqlx::query(
            "SELECT id, source_id, content_hash, discovered_at FROM catalog_snapshots WHERE source_id = $1 ORDER BY id DESC",
        )
        .bind(source)
        .fetch_all(&self.pool)
        .await
        .map_err(be("list snapshots"))?;
        rows.iter().map(snapshot).collect()
    }

    pub(crate) async fn snapshot_at(&self, source: &str, at: Millis) -> Result<Option<(SnapshotMeta, Vec<u8>)>> {
        let row = sqlx::query(
            "SELECT id, source_id, content_hash, discovered_at, content FROM catalog_snapshots \
             WHERE source_id = $1 AND discovered_at <= $2 ORDER BY discovered_at DESC, id DESC LIMIT 1",
        )
        .bind(source)
        .bind(at)
        .fetch_optional(&self.pool)
        .await
        .map_err(be("read a snapshot"))?;
        row.map(|r| Ok((snapshot(&r)?, r.try_get(4).map_err(be("read a snapshot"))?))).transpose()
    }

    pub(crate) async fn previous_snapshot(
        &self,
        source: &str,
        id: SnapshotId,
    ) -> Result<Option<(SnapshotMeta, Vec<u8>)>> {
        let row = sqlx::query(
            "SELECT id, source_id, content_hash, discovered_at, content FROM catalog_snapshots \
             WHERE source_id = $1 AND id < $2 ORDER BY id DESC LIMIT 1",
        )
        .bind(source)
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(be("read a snapshot"))?;
        row.map(|r| Ok((snapshot(&r)?, r.try_get(4).map_err(be("read a snapshot"))?))).transpose()
    }

    // ---- catalog change history --------------------------------------------------------------

    pub(crate) async fn insert_change(
        &self,
        source: &str,
        from: SnapshotId,
        to: SnapshotId,
        diff: &str,
        counts: &str,
    ) -> Result<CatalogChange> {
        let row = sqlx::query(concat!(
            "INSERT INTO catalog_changes (source_id, from_snapshot, to_snapshot, changed_at, diff, counts) ",
            "VALUES ($1, $2, $3, ",
            now!(),
            ", $4::jsonb, $5::jsonb) RETURNING id, source_id, from_snapshot, to_snapshot, changed_at, diff::text, counts::text"
        ))
        .bind(source)
        .bind(from.0)
        .bind(to.0)
        .bind(diff)
        .bind(counts)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| db_error(e, "catalog change", "source"))?;
        change(&row)
    }

    pub(crate) async fn changes(
        &self,
        source: &str,
        before: Option<ChangeId>,
        limit: i64,
    ) -> Result<Vec<CatalogChange>> {
        let rows = sqlx::query(
            "SELECT id, source_id, from_snapshot, to_snapshot, changed_at, diff::text, counts::text FROM catalog_changes \
             WHERE source_id = $1 AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(source)
        .bind(before.map(|c| c.0))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(be("read catalog changes"))?;
        rows.iter().map(change).collect()
    }

    /// One transaction: changes before the cutoff; snapshots older than the one in force at the
    /// cutoff (so the latest always stays); finished runs before the cutoff but each source's
    /// latest.
    pub(crate) async fn prune_history(&self, cutoff: Millis) -> Result<Pruned> {
        let mut tx = self.pool.begin().await.map_err(be("begin"))?;
        let changes = sqlx::query("DELETE FROM catalog_changes WHERE changed_at < $1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await
            .map_err(be("prune catalog changes"))?
            .rows_affected();
        let snapshots = sqlx::query(
            "DELETE FROM catalog_snapshots WHERE discovered_at < $1 AND id < \
             (SELECT max(k.id) FROM catalog_snapshots k \
               WHERE k.source_id = catalog_snapshots.source_id AND k.discovered_at <= $1)",
        )
        .bind(cutoff)
        .execute(&mut *tx)
        .await
        .map_err(be("prune snapshots"))?
        .rows_affected();
        let runs = sqlx::query(
            "DELETE FROM discovery_runs WHERE finished_at IS NOT NULL \
             AND COALESCE(last_finished_at, finished_at) < $1 AND id < \
             (SELECT max(k.id) FROM discovery_runs k WHERE k.source_id = discovery_runs.source_id)",
        )
        .bind(cutoff)
        .execute(&mut *tx)
        .await
        .map_err(be("prune discovery runs"))?
        .rows_affected();
        tx.commit().await.map_err(be("commit"))?;
        Ok(Pruned { changes, snapshots, runs })
    }

    // ---- discovery runs ----------------------------------------------------------------------

    pub(crate) async fn start_run(&self, source: &str) -> Result<RunId> {
        sqlx::query_scalar(concat!(
            "INSERT INTO discovery_runs (source_id, started_at) VALUES ($1, ",
            now!(),
            ") RETURNING id"
        ))
        .bind(source)
        .fetch_one(&self.pool)
        .await
        .map(RunId)
        .map_err(|e| db_error(e, "discovery run", "source"))
    }

    pub(crate) async fn finish_run(
        &self,
        id: RunId,
        outcome: &str,
        stage: Option<&str>,
        message: Option<&str>,
    ) -> Result<bool> {
        let done = sqlx::query(concat!(
            "UPDATE discovery_runs SET finished_at = ",
            now!(),
            ", state = 'finished', outcome = $1, stage = $2, message = $3 WHERE id = $4 AND finished_at IS NULL"
        ))
        .bind(outcome)
        .bind(stage)
        .bind(message)
        .bind(id.0)
        .execute(&self.pool)
        .await
        .map_err(be("finish a discovery run"))?;
        Ok(done.rows_affected() == 1)
    }

    // ---- audit log ---------------------------------------------------------------------------

    /// Claims the periodic task `name` for `instance` when it is due (or new): moves its next due
    /// time `every_ms` ahead in the same statement, so one claimer per period gets true.
    pub(crate) async fn claim_periodic(&self, name: &str, instance: &str, every_ms: i64) -> Result<bool> {
        let row = sqlx::query(concat!(
            "INSERT INTO periodic_tasks (name, next_due_at, claimed_by, claimed_at) VALUES ($1, ",
            now!(),
            " + $3, $2, ",
            now!(),
            ") ON CONFLICT (name) DO UPDATE SET next_due_at = excluded.next_due_at, \
             claimed_by = excluded.claimed_by, claimed_at = excluded.claimed_at \
             WHERE periodic_tasks.next_due_at <= excluded.claimed_at RETURNING name"
        ))
        .bind(name)
        .bind(instance)
        .bind(every_ms)
        .fetch_optional(&self.pool)
        .await
        .map_err(be("claim a periodic task"))?;
        Ok(row.is_some())
    }

    pub(crate) async fn append_audit(
        &self,
        actor: &str,
        kind: &str,
        source: Option<&str>,
        detail: &str,
        sql: Option<&str>,
    ) -> Result<AuditId> {
        sqlx::query_scalar(concat!(
            "INSERT INTO audit_log (at, actor, kind, source_id, detail, sql) VALUES (",
            now!(),
            ", $1, $2, $3, $4::jsonb, $5) RETURNING id"
        ))
        .bind(actor)
        .bind(kind)
        .bind(source)
        .bind(detail)
        .bind(sql)
        .fetch_one(&self.pool)
        .await
        .map(AuditId)
        .map_err(be("append to the audit log"))
    }

    pub(crate) async fn complete_query(&self, id: AuditId, done: &QueryCompletion) -> Result<bool> {
        let hit = sqlx::query(concat!(
            "UPDATE audit_log SET finished_at = ",
            now!(),
            ", duration_ms = $1, rows = $2, bytes = $3, outcome = $4, error = $5 ",
            "WHERE id = $6 AND kind = 'query' AND finished_at IS NULL"
        ))
        .bind(done.duration_ms)
        .bind(done.rows)
        .bind(done.bytes)
        .bind(done.outcome.as_str())
        .bind(done.error.as_deref())
        .bind(id.0)
        .execute(&self.pool)
        .await
        .map_err(be("complete an audit entry"))?;
        Ok(hit.rows_affected() == 1)
    }

    pub(crate) async fn audit(&self, f: &AuditFilter, limit: i64) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT id, at, actor, kind, source_id, detail::text, sql, finished_at, duration_ms, rows, bytes, outcome, error \
             FROM audit_log \
             WHERE ($1::text IS NULL OR actor = $1) AND ($2::text IS NULL OR source_id = $2) AND ($3::text IS NULL OR kind = $3) \
               AND ($4::bigint IS NULL OR at >= $4) AND ($5::bigint IS NULL OR at < $5) AND ($6::bigint IS NULL OR id < $6) \
             ORDER BY id DESC LIMIT $7",
        )
        .bind(f.actor.as_deref())
        .bind(f.source.as_ref().map(|s| s.as_str()))
        .bind(f.kind.as_deref())
        .bind(f.from)
        .bind(f.until)
        .bind(f.before.map(|a| a.0))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(be("read the audit log"))?;
        rows.iter()
            .map(|r| {
                let detail: String = r.try_get(5).map_err(be("read the audit log"))?;
                audit_entry(
                    r,
                    serde_json::from_str(&detail).map_err(|e| StoreError::backend("read an audit detail", e))?,
                )
            })
            .collect()
    }
}

/// When `secrets` replace the source's SSH private key, the generated key it held (if any) is
/// forgotten; and when that key is the generated key `claim`, the key is claimed for the
/// source — once, and only while it has not expired.
async fn replace_generated_key(
    tx: &mut sqlx::PgConnection,
    source: &str,
    secrets: &[(&'static str, Sealed)],
    claim: Option<&str>,
) -> Result<()> {
    if !secrets.iter().any(|(field, _)| *field == crate::GENERATED_KEY_FIELD) {
        return Ok(());
    }
    sqlx::query("DELETE FROM ssh_keys WHERE source_id = $1")
        .bind(source)
        .execute(&mut *tx)
        .await
        .map_err(be("replace a generated SSH key"))?;
    let Some(key) = claim else { return Ok(()) };
    let done = sqlx::query(concat!(
        "UPDATE ssh_keys SET source_id = $1, claimed_at = ",
        now!(),
        ", key_id = NULL, nonce = NULL, ciphertext = NULL ",
        "WHERE id = $2 AND source_id IS NULL AND expires_at > ",
        now!()
    ))
    .bind(source)
    .bind(key)
    .execute(&mut *tx)
    .await
    .map_err(be("claim a generated SSH key"))?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(crate::unusable_generated_key(key))
    }
}

async fn put_secret(tx: &mut sqlx::PgConnection, source: &str, field: &str, s: &Sealed) -> Result<()> {
    sqlx::query(
        "INSERT INTO source_secrets (source_id, field, key_id, nonce, ciphertext) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (source_id, field) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce, \
         ciphertext = excluded.ciphertext",
    )
    .bind(source)
    .bind(field)
    .bind(&s.key_id)
    .bind(&s.nonce)
    .bind(&s.ciphertext)
    .execute(tx)
    .await
    .map_err(be("store a secret"))?;
    Ok(())
}

fn sealed(r: &PgRow, at: usize) -> Result<Sealed> {
    let get = be("read a sealed value");
    Ok(Sealed {
        key_id: r.try_get(at).map_err(&get)?,
        nonce: r.try_get(at + 1).map_err(&get)?,
        ciphertext: r.try_get(at + 2).map_err(&get)?,
    })
}

fn source_row(r: &PgRow) -> Result<SourceRow> {
    let get = be("read a source");
    let fields: Option<String> = r.try_get(6).map_err(&get)?;
    Ok(SourceRow {
        id: r.try_get(0).map_err(&get)?,
        name: r.try_get(1).map_err(&get)?,
        settings: r.try_get(2).map_err(&get)?,
        created_at: r.try_get(3).map_err(&get)?,
        updated_at: r.try_get(4).map_err(&get)?,
        password_updated_at: r.try_get(5).map_err(&get)?,
        fields: fields.map(|f| f.split(',').map(str::to_string).collect()).unwrap_or_default(),
        ssh_public_key: r.try_get(7).map_err(&get)?,
        host_key_approval: match r.try_get::<Option<String>, _>(8).map_err(&get)? {
            None => None,
            Some(fingerprint) => Some(crate::HostKeyApproval {
                fingerprint,
                algorithm: r.try_get(9).map_err(&get)?,
                public_key: r.try_get(10).map_err(&get)?,
                approved_by: r.try_get(11).map_err(&get)?,
                approved_at: r.try_get(12).map_err(&get)?,
            }),
        },
        last_test: match r.try_get::<Option<Millis>, _>(13).map_err(&get)? {
            None => None,
            Some(tested_at) => Some(crate::SourceTest {
                tested_at,
                tested_by: r.try_get::<Option<String>, _>(14).map_err(&get)?.unwrap_or_default(),
                ok: r.try_get::<Option<bool>, _>(15).map_err(&get)?.unwrap_or(false),
                failed: r.try_get(16).map_err(&get)?,
                message: r.try_get(17).map_err(&get)?,
            }),
        },
    })
}

fn user(r: &PgRow, at: usize) -> Result<User> {
    let get = be("read a user");
    Ok(User {
        id: UserId(r.try_get(at).map_err(&get)?),
        login: r.try_get(at + 1).map_err(&get)?,
        role: crate::Role::from_str(r.try_get(at + 2).map_err(&get)?)?,
        created_at: r.try_get(at + 3).map_err(&get)?,
        disabled: r.try_get(at + 4).map_err(&get)?,
    })
}

fn token(r: &PgRow) -> Result<ApiToken> {
    let get = be("read a token");
    Ok(ApiToken {
        public_id: r.try_get(0).map_err(&get)?,
        name: r.try_get(1).map_err(&get)?,
        role: crate::TokenRole::from_str(r.try_get(2).map_err(&get)?)?,
        source: r.try_get::<Option<String>, _>(3).map_err(&get)?.map(source_id).transpose()?,
        created_by: r.try_get::<Option<i64>, _>(4).map_err(&get)?.map(UserId),
        created_at: r.try_get(5).map_err(&get)?,
        last_used_at: r.try_get(6).map_err(&get)?,
        revoked: r.try_get(7).map_err(&get)?,
    })
}

fn snapshot(r: &PgRow) -> Result<SnapshotMeta> {
    let get = be("read a snapshot");
    Ok(SnapshotMeta {
        id: SnapshotId(r.try_get(0).map_err(&get)?),
        source: source_id(r.try_get(1).map_err(&get)?)?,
        content_hash: r.try_get(2).map_err(&get)?,
        discovered_at: r.try_get(3).map_err(&get)?,
    })
}

fn audit_entry(r: &PgRow, detail: serde_json::Value) -> Result<AuditEntry> {
    let get = be("read the audit log");
    Ok(AuditEntry {
        id: AuditId(r.try_get(0).map_err(&get)?),
        at: r.try_get(1).map_err(&get)?,
        actor: r.try_get(2).map_err(&get)?,
        kind: r.try_get(3).map_err(&get)?,
        source: r.try_get::<Option<String>, _>(4).map_err(&get)?.map(source_id).transpose()?,
        detail,
        sql: r.try_get(6).map_err(&get)?,
        finished_at: r.try_get(7).map_err(&get)?,
        duration_ms: r.try_get(8).map_err(&get)?,
        rows: r.try_get(9).map_err(&get)?,
        bytes: r.try_get(10).map_err(&get)?,
        outcome: r.try_get::<Option<String>, _>(11).map_err(&get)?.map(|o| o.parse()).transpose()?,
        error: r.try_get(12).map_err(&get)?,
    })
}

fn change(r: &PgRow) -> Result<CatalogChange> {
    let get = be("read a catalog change");
    let json = |at: usize| -> Result<serde_json::Value> {
        let text: String = r.try_get(at).map_err(be("read a catalog change"))?;
        serde_json::from_str(&text).map_err(|e| StoreError::backend("read a catalog change", e))
    };
    Ok(CatalogChange {
        id: ChangeId(r.try_get(0).map_err(&get)?),
        source: source_id(r.try_get(1).map_err(&get)?)?,
        from_snapshot: SnapshotId(r.try_get(2).map_err(&get)?),
        to_snapshot: SnapshotId(r.try_get(3).map_err(&get)?),
        changed_at: r.try_get(4).map_err(&get)?,
        diff: json(5)?,
        counts: json(6)?,
    })
}

mod alerts;
mod schedule;
