//! Alerts, the webhook and its outbox on PostgreSQL. A raise or a clear writes the alert, its
//! audit entry and its notification in one transaction; notifications are leased with `FOR
//! UPDATE SKIP LOCKED`, so instances delivering at once never take the same one.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::{be, sealed, PgBackend};
use crate::model::{source_id, Alert, AlertId, WebhookDelivery, WebhookInfo};
use crate::seal::Sealed;
use crate::{Result, StoreError};

macro_rules! alert_columns {
    () => {
        "id, source_id, kind, subject, details::text, raised_at, cleared_at"
    };
}

fn alert(r: &PgRow) -> Result<Alert> {
    let get = be("read an alert");
    let details: String = r.try_get(4).map_err(&get)?;
    Ok(Alert {
        id: AlertId(r.try_get(0).map_err(&get)?),
        source: source_id(r.try_get(1).map_err(&get)?)?,
        kind: r.try_get::<String, _>(2).map_err(&get)?.parse()?,
        subject: r.try_get(3).map_err(&get)?,
        details: serde_json::from_str(&details)
            .map_err(|e| StoreError::Backend { message: format!("stored alert details: {e}") })?,
        raised_at: r.try_get(5).map_err(&get)?,
        cleared_at: r.try_get(6).map_err(&get)?,
    })
}

/// The alert's audit entry and, when a webhook is configured, its notification.
async fn record(tx: &mut PgConnection, event: &str, a: &Alert) -> Result<()> {
    let detail = serde_json::json!({ "alert": a.id, "kind": a.kind, "subject": a.subject }).to_string();
    sqlx::query(concat!(
        "INSERT INTO audit_log (at, actor, kind, source_id, detail) VALUES (",
        now!(),
        ", 'system', $1, $2, $3::jsonb)"
    ))
    .bind(event)
    .bind(a.source.as_str())
    .bind(detail)
    .execute(&mut *tx)
    .await
    .map_err(be("audit an alert"))?;
    let (event_id, body) = crate::webhook_body(event, a);
    sqlx::query(concat!(
        "INSERT INTO webhook_outbox (event_id, body, created_at, next_attempt_at) SELECT $1, $2, ",
        now!(),
        ", ",
        now!(),
        " WHERE EXISTS (SELECT 1 FROM webhook) ON CONFLICT (event_id) DO NOTHING"
    ))
    .bind(event_id)
    .bind(body)
    .execute(&mut *tx)
    .await
    .map_err(be("queue a webhook notification"))?;
    Ok(())
}

impl PgBackend {
    pub(crate) async fn raise_alert(
        &self,
        source: &str,
        kind: &str,
        subject: &str,
        details: &str,
    ) -> Result<Option<Alert>> {
        let mut tx = self.pool.begin().await.map_err(be("begin"))?;
        let row = sqlx::query(concat!(
            "INSERT INTO source_alerts (source_id, kind, subject, details, raised_at) VALUES ($1, $2, $3, $4::jsonb, ",
            now!(),
            ") ON CONFLICT (source_id, kind, subject) WHERE cleared_at IS NULL DO NOTHING RETURNING ",
            alert_columns!()
        ))
        .bind(source)
        .bind(kind)
        .bind(subject)
        .bind(details)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| crate::error::db_error(e, "alert", "source"))?;
        let Some(row) = row else { return Ok(None) };
        let a = alert(&row)?;
        record(&mut tx, "alert.raised", &a).await?;
        tx.commit().await.map_err(be("commit"))?;
        Ok(Some(a))
    }

    pub(crate) async fn clear_alert(&self, source: &str, id: AlertId) -> Result<Option<Alert>> {
        let mut tx = self.pool.begin().await.map_err(be("begin"))?;
        let row = sqlx::query(concat!(
            "UPDATE source_alerts SET cleared_at = ",
            now!(),
            " WHERE id = $1 AND source_id = $2 AND cleared_at IS NULL RETURNING ",
            alert_columns!()
        ))
        .bind(id.0)
        .bind(source)
        .fetch_optional(&mut *tx)
        .await
        .map_err(be("clear an alert"))?;
        let Some(row) = row else { return Ok(None) };
        let a = alert(&row)?;
        record(&mut tx, "alert.cleared", &a).await?;
        tx.commit().await.map_err(be("commit"))?;
        Ok(Some(a))
    }

    pub(crate) async fn open_alerts(&self, source: Option<&str>) -> Result<Vec<Alert>> {
        let sql = concat!(
            "SELECT ",
            alert_columns!(),
            " FROM source_alerts WHERE cleared_at IS NULL AND ($1::text IS NULL OR source_id = $1) ORDER BY id"
        );
        let rows = sqlx::query(sql).bind(source).fetch_all(&self.pool).await.map_err(be("list alerts"))?;
        rows.iter().map(alert).collect()
    }

    pub(crate) async fn alert_history(&self, source: &str, limit: i64) -> Result<Vec<Alert>> {
        let sql =
            concat!("SELECT ", alert_columns!(), " FROM source_alerts WHERE source_id = $1 ORDER BY id DESC LIMIT $2");
        let rows = sqlx::query(sql).bind(source).bind(limit).fetch_all(&self.pool).await.map_err(be("list alerts"))?;
        rows.iter().map(alert).collect()
    }

    pub(crate) async fn set_webhook(&self, url: &str, secret: &Sealed) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO webhook (id, url, key_id, nonce, ciphertext, updated_at) VALUES (1, $1, $2, $3, $4, ",
            now!(),
            ") ON CONFLICT (id) DO UPDATE SET url = excluded.url, key_id = excluded.key_id, \
             nonce = excluded.nonce, ciphertext = excluded.ciphertext, updated_at = excluded.updated_at"
        ))
        .bind(url)
        .bind(&secret.key_id)
        .bind(&secret.nonce)
        .bind(&secret.ciphertext)
        .execute(&self.pool)
        .await
        .map_err(be("configure the webhook"))?;
        Ok(())
    }

    pub(crate) async fn webhook(&self) -> Result<Option<WebhookInfo>> {
        let row = sqlx::query(
            "SELECT w.url, w.updated_at, \
             (SELECT count(*) FROM webhook_outbox WHERE delivered_at IS NULL), \
             (SELECT last_error FROM webhook_outbox WHERE delivered_at IS NULL AND last_error IS NOT NULL \
              ORDER BY id DESC LIMIT 1) \
             FROM webhook w",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(be("read the webhook"))?;
        row.map(|r| {
            let get = be("read the webhook");
            Ok(WebhookInfo {
                url: r.try_get(0).map_err(&get)?,
                updated_at: r.try_get(1).map_err(&get)?,
                pending: u64::try_from(r.try_get::<i64, _>(2).map_err(&get)?).unwrap_or(0),
                last_error: r.try_get(3).map_err(&get)?,
            })
        })
        .transpose()
    }

    pub(crate) async fn webhook_sealed(&self) -> Result<Option<(String, Sealed)>> {
        let row = sqlx::query("SELECT url, key_id, nonce, ciphertext FROM webhook")
            .fetch_optional(&self.pool)
            .await
            .map_err(be("read the webhook"))?;
        row.map(|r| Ok((r.try_get(0).map_err(be("read the webhook"))?, sealed(&r, 1)?))).transpose()
    }

    pub(crate) async fn delete_webhook(&self) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(be("begin"))?;
        let gone = sqlx::query("DELETE FROM webhook").execute(&mut *tx).await.map_err(be("remove the webhook"))?;
        sqlx::query("DELETE FROM webhook_outbox WHERE delivered_at IS NULL")
            .execute(&mut *tx)
            .await
            .map_err(be("drop pending notifications"))?;
        tx.commit().await.map_err(be("commit"))?;
        Ok(gone.rows_affected() > 0)
    }

    pub(crate) async fn claim_deliveries(
        &self,
        instance: &str,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<WebhookDelivery>> {
        let mut tx = self.pool.begin().await.map_err(be("begin"))?;
        let rows = sqlx::query(concat!(
            "UPDATE webhook_outbox SET leased_by = $1, lease_expires_at = ",
            now!(),
            " + $2 WHERE id IN (SELECT id FROM webhook_outbox WHERE delivered_at IS NULL AND next_attempt_at <= ",
            now!(),
            " AND (leased_by IS NULL OR lease_expires_at <= ",
            now!(),
            ") ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING id, event_id, body, attempts"
        ))
        .bind(instance)
        .bind(lease_ms)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(be("claim webhook notifications"))?;
        tx.commit().await.map_err(be("commit"))?;
        let mut out = rows
            .iter()
            .map(|r| {
                let get = be("read a webhook notification");
                Ok(WebhookDelivery {
                    id: r.try_get(0).map_err(&get)?,
                    event_id: r.try_get(1).map_err(&get)?,
                    body: r.try_get(2).map_err(&get)?,
                    attempts: u32::try_from(r.try_get::<i32, _>(3).map_err(&get)?).unwrap_or(0),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        out.sort_by_key(|d| d.id);
        Ok(out)
    }

    pub(crate) async fn finish_delivery(
        &self,
        id: i64,
        instance: &str,
        error: Option<&str>,
        delay_ms: i64,
    ) -> Result<bool> {
        let hit = match error {
            None => sqlx::query(concat!(
                "UPDATE webhook_outbox SET delivered_at = ",
                now!(),
                ", attempts = attempts + 1, leased_by = NULL, lease_expires_at = NULL, last_error = NULL \
                 WHERE id = $1 AND leased_by = $2 AND delivered_at IS NULL"
            ))
            .bind(id)
            .bind(instance),
            Some(error) => sqlx::query(concat!(
                "UPDATE webhook_outbox SET next_attempt_at = ",
                now!(),
                " + $4, attempts = attempts + 1, leased_by = NULL, lease_expires_at = NULL, last_error = $3 \
                 WHERE id = $1 AND leased_by = $2 AND delivered_at IS NULL"
            ))
            .bind(id)
            .bind(instance)
            .bind(error)
            .bind(delay_ms),
        }
        .execute(&self.pool)
        .await
        .map_err(be("record a webhook delivery"))?;
        Ok(hit.rows_affected() > 0)
    }
}
