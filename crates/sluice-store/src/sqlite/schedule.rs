//! The discovery schedule on SQLite: one process owns the store (its lock file), and each claim
//! is one `BEGIN IMMEDIATE` transaction, so claims never interleave.

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::{be, SqliteBackend};
use crate::model::{
    source_id, ClaimedDiscovery, Completion, DiscoveryRun, DiscoverySchedule, NextDue, RunId, RunResult,
};
use crate::{Result, StoreError};

/// A discovery run's columns, as [`run`] reads them.
macro_rules! run_columns {
    () => {
        "r.id, r.source_id, r.state, r.started_at, r.finished_at, r.outcome, r.stage, r.message, r.reason, r.instance, r.changed, r.relations, \
         r.runs, r.last_started_at, r.last_finished_at, r.last_instance"
    };
}

pub(super) fn run(r: &SqliteRow, at: usize) -> Result<DiscoveryRun> {
    let get = be("read a discovery run");
    let text = |i: usize| -> Result<Option<String>> { r.try_get::<Option<String>, _>(at + i).map_err(&get) };
    Ok(DiscoveryRun {
        id: RunId(r.try_get(at).map_err(&get)?),
        source: source_id(r.try_get(at + 1).map_err(&get)?)?,
        state: r.try_get::<String, _>(at + 2).map_err(&get)?.parse()?,
        started_at: r.try_get(at + 3).map_err(&get)?,
        finished_at: r.try_get(at + 4).map_err(&get)?,
        outcome: text(5)?.map(|o| o.parse()).transpose()?,
        stage: text(6)?,
        message: text(7)?,
        reason: text(8)?.map(|o| o.parse()).transpose()?,
        instance: text(9)?,
        changed: r.try_get(at + 10).map_err(&get)?,
        relations: r.try_get(at + 11).map_err(&get)?,
        runs: r.try_get(at + 12).map_err(&get)?,
        last_started_at: r.try_get(at + 13).map_err(&get)?,
        last_finished_at: r.try_get(at + 14).map_err(&get)?,
        last_instance: text(15)?,
    })
}

impl SqliteBackend {
    pub(crate) async fn runs(&self, source: &str, limit: i64) -> Result<Vec<DiscoveryRun>> {
        let sql = concat!(
            "SELECT ",
            run_columns!(),
            " FROM discovery_runs r WHERE r.source_id = ?1 ORDER BY r.id DESC LIMIT ?2"
        );
        let rows =
            sqlx::query(sql).bind(source).bind(limit).fetch_all(&self.pool).await.map_err(be("list discovery runs"))?;
        rows.iter().map(|r| run(r, 0)).collect()
    }

    pub(crate) async fn run_by_id(&self, source: &str, id: RunId) -> Result<Option<DiscoveryRun>> {
        let sql = concat!("SELECT ", run_columns!(), " FROM discovery_runs r WHERE r.source_id = ?1 AND r.id = ?2");
        let row = sqlx::query(sql)
            .bind(source)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(be("read a discovery run"))?;
        row.map(|r| run(&r, 0)).transpose()
    }

    /// Every source's schedule row (made for sources that have none yet, due now).
    pub(crate) async fn schedules(&self, source: Option<&str>) -> Result<Vec<DiscoverySchedule>> {
        self.schedule_new_sources().await?;
        let sql = concat!(
            "SELECT d.source_id, d.interval_ms, d.next_due_at, d.failures, d.leased_by, d.lease_expires_at, \
             d.requested_run, ",
            run_columns!(),
            " FROM discovery_schedule d \
             LEFT JOIN discovery_runs r ON r.id = d.last_run_id \
             WHERE ?1 IS NULL OR d.source_id = ?1 ORDER BY d.source_id"
        );
        let rows = sqlx::query(sql).bind(source).fetch_all(&self.pool).await.map_err(be("read the schedule"))?;
        rows.iter()
            .map(|r| {
                let get = be("read the schedule");
                let last: Option<i64> = r.try_get(7).map_err(&get)?;
                Ok(DiscoverySchedule {
                    source: source_id(r.try_get(0).map_err(&get)?)?,
                    interval_ms: r.try_get(1).map_err(&get)?,
                    next_due_at: r.try_get(2).map_err(&get)?,
                    failures: u32::try_from(r.try_get::<i32, _>(3).map_err(&get)?).unwrap_or(0),
                    leased_by: r.try_get(4).map_err(&get)?,
                    lease_expires_at: r.try_get(5).map_err(&get)?,
                    requested_run: r.try_get::<Option<i64>, _>(6).map_err(&get)?.map(RunId),
                    last_run: last.map(|_| run(r, 7)).transpose()?,
                })
            })
            .collect()
    }

    /// Sources saved without a schedule row get one, due now.
    pub(super) async fn schedule_new_sources(&self) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO discovery_schedule (source_id, next_due_at) SELECT s.id, ",
            now!(),
            " FROM sources s WHERE NOT EXISTS (SELECT 1 FROM discovery_schedule d WHERE d.source_id = s.id) ",
            "ON CONFLICT (source_id) DO NOTHING"
        ))
        .execute(&self.pool)
        .await
        .map_err(be("schedule new sources"))?;
        Ok(())
    }

    pub(crate) async fn set_interval(&self, source: &str, interval_ms: Option<i64>) -> Result<bool> {
        self.schedule_new_sources().await?;
        let mut conn = self.pool.acquire().await.map_err(be("set a discovery interval"))?;
        set_interval_on(&mut conn, source, interval_ms).await
    }

    pub(crate) async fn due_now(&self, source: &str) -> Result<bool> {
        self.schedule_new_sources().await?;
        let mut conn = self.pool.acquire().await.map_err(be("schedule a discovery"))?;
        due_now_on(&mut conn, source).await
    }

    /// Counts the outcome of a run made outside the schedule in the source's failures in a row
    /// (0 after a success); the new count, `None` for no such source.
    pub(crate) async fn count_outcome(&self, source: &str, ok: bool) -> Result<Option<u32>> {
        self.schedule_new_sources().await?;
        let failures: Option<i64> = sqlx::query_scalar(
            "UPDATE discovery_schedule SET failures = CASE WHEN ?2 THEN 0 ELSE failures + 1 END \
             WHERE source_id = ?1 RETURNING failures",
        )
        .bind(source)
        .bind(ok)
        .fetch_optional(&self.pool)
        .await
        .map_err(be("count a discovery's outcome"))?;
        Ok(failures.map(|f| u32::try_from(f).unwrap_or(0)))
    }

    /// A queued run for `source`, or the one already queued.
    pub(crate) async fn request_run(&self, source: &str) -> Result<RunId> {
        self.schedule_new_sources().await?;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(be("begin"))?;
        let queued: Option<Option<i64>> =
            sqlx::query_scalar("SELECT requested_run FROM discovery_schedule WHERE source_id = ?1")
                .bind(source)
                .fetch_optional(&mut *tx)
                .await
                .map_err(be("read the schedule"))?;
        let Some(queued) = queued else { return Err(StoreError::NotFound { entity: "source" }) };
        if let Some(run) = queued {
            return Ok(RunId(run));
        }
        let run: i64 = sqlx::query_scalar(concat!(
            "INSERT INTO discovery_runs (source_id, started_at, state, reason) VALUES (?1, ",
            now!(),
            ", 'queued', 'refresh') RETURNING id"
        ))
        .bind(source)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| crate::error::db_error(e, "discovery run", "source"))?;
        sqlx::query("UPDATE discovery_schedule SET requested_run = ?2 WHERE source_id = ?1")
            .bind(source)
            .bind(run)
            .execute(&mut *tx)
            .await
            .map_err(be("queue a discovery run"))?;
        tx.commit().await.map_err(be("commit"))?;
        Ok(RunId(run))
    }

    pub(crate) async fn claim(&self, instance: &str, lease_ms: i64, limit: i64) -> Result<Vec<ClaimedDiscovery>> {
        self.schedule_new_sources().await?;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(be("begin"))?;
        let rows = sqlx::query(concat!(
            "SELECT source_id, interval_ms, failures, requested_run, run_id, next_due_at <= ",
            now!(),
            " FROM discovery_schedule WHERE (next_due_at <= ",
            now!(),
            " OR requested_run IS NOT NULL) AND (leased_by IS NULL OR lease_expires_at <= ",
            now!(),
            ") ORDER BY next_due_at LIMIT ?1"
        ))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(be("claim due sources"))?;
        let mut claimed = Vec::with_capacity(rows.len());
        for r in &rows {
            let get = be("claim due sources");
            let source: String = r.try_get(0).map_err(&get)?;
            let requested: Option<i64> = r.try_get(3).map_err(&get)?;
            let abandoned: Option<i64> = r.try_get(4).map_err(&get)?;
            let due: bool = r.try_get(5).map_err(&get)?;
            if let Some(old) = abandoned {
                abandon(&mut tx, old).await?;
            }
            let reason = if requested.is_some() && !due { "refresh" } else { "schedule" };
            let (run, started_at): (i64, i64) = match requested {
                Some(run) => sqlx::query_as(concat!(
                    "UPDATE discovery_runs SET state = 'running', started_at = ",
                    now!(),
                    ", instance = ?2 WHERE id = ?1 RETURNING id, started_at"
                ))
                .bind(run)
                .bind(instance)
                .fetch_one(&mut *tx)
                .await
                .map_err(be("start a queued run"))?,
                None => sqlx::query_as(concat!(
                    "INSERT INTO discovery_runs (source_id, started_at, state, reason, instance) VALUES (?1, ",
                    now!(),
                    ", 'running', ?2, ?3) RETURNING id, started_at"
                ))
                .bind(&source)
                .bind(reason)
                .bind(instance)
                .fetch_one(&mut *tx)
                .await
                .map_err(be("start a discovery run"))?,
            };
            sqlx::query(concat!(
                "UPDATE discovery_schedule SET leased_by = ?2, lease_expires_at = ",
                now!(),
                " + ?3, run_id = ?4, requested_run = NULL WHERE source_id = ?1"
            ))
            .bind(&source)
            .bind(instance)
            .bind(lease_ms)
            .bind(run)
            .execute(&mut *tx)
            .await
            .map_err(be("lease a source"))?;
            claimed.push(ClaimedDiscovery {
                source: source_id(source)?,
                run: RunId(run),
                started_at,
                reason: if requested.is_some() { crate::RunReason::Refresh } else { crate::RunReason::Schedule },
                interval_ms: r.try_get(1).map_err(&get)?,
                failures: u32::try_from(r.try_get::<i32, _>(2).map_err(&get)?).unwrap_or(0),
            });
        }
        tx.commit().await.map_err(be("commit"))?;
        Ok(claimed)
    }

    pub(crate) async fn renew(&self, source: &str, instance: &str, run: RunId, lease_ms: i64) -> Result<bool> {
        let done = sqlx::query(concat!(
            "UPDATE discovery_schedule SET lease_expires_at = ",
            now!(),
            " + ?3 WHERE source_id = ?1 AND leased_by = ?2 AND run_id = ?4"
        ))
        .bind(source)
        .bind(instance)
        .bind(lease_ms)
        .bind(run.0)
        .execute(&self.pool)
        .await
        .map_err(be("renew a lease"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Records the run's end and, while `instance` still holds the source, releases it with its
    /// next due time and folds the run into the previous record when both are scheduled,
    /// successful and unchanged ([`fold`]).
    pub(crate) async fn complete(
        &self,
        source: &str,
        instance: &str,
        run: RunId,
        result: &RunResult,
        next: NextDue,
    ) -> Result<Completion> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(be("begin"))?;
        let finished_at: Option<i64> = sqlx::query_scalar(concat!(
            "UPDATE discovery_runs SET state = 'finished', finished_at = ",
            now!(),
            ", outcome = ?2, stage = ?3, message = ?4, changed = ?5, relations = ?6 ",
            "WHERE id = ?1 AND state <> 'finished' RETURNING finished_at"
        ))
        .bind(run.0)
        .bind(result.outcome.as_str())
        .bind(result.stage.as_deref())
        .bind(result.message.as_deref())
        .bind(result.changed)
        .bind(result.relations)
        .fetch_optional(&mut *tx)
        .await
        .map_err(be("finish a discovery run"))?;
        // The interval is read here, not taken from the claim: one stored while the run lasted
        // (a new source's, saved after its first run was claimed; an edit's) is the one that counts.
        let (retry, ms) = match next {
            NextDue::Interval { default_interval_ms } => (false, default_interval_ms.max(1)),
            NextDue::After { delay_ms } => (true, delay_ms.max(0)),
        };
        let done = sqlx::query(concat!(
            "UPDATE discovery_schedule SET leased_by = NULL, lease_expires_at = NULL, run_id = NULL, last_run_id = ?3, ",
            "failures = CASE WHEN ?4 = 'ok' THEN 0 ELSE failures + 1 END, ",
            "next_due_at = CASE WHEN ?5 THEN ",
            now!(),
            " + MIN(?6, COALESCE(interval_ms, ?6)) WHEN next_due_at > ",
            now!(),
            " THEN next_due_at ELSE next_due_at + COALESCE(interval_ms, ?6) * ((",
            now!(),
            " - next_due_at) / COALESCE(interval_ms, ?6) + 1) END ",
            "WHERE source_id = ?1 AND leased_by = ?2 AND run_id = ?3"
        ))
        .bind(source)
        .bind(instance)
        .bind(run.0)
        .bind(result.outcome.as_str())
        .bind(retry)
        .bind(ms)
        .execute(&mut *tx)
        .await
        .map_err(be("release a source"))?;
        let held = done.rows_affected() == 1;
        let mut record = run;
        if held && finished_at.is_some() {
            if let Some(into) = fold(&mut tx, run.0).await? {
                record = RunId(into);
                sqlx::query("UPDATE discovery_schedule SET last_run_id = ?2 WHERE source_id = ?1 AND last_run_id = ?3")
                    .bind(source)
                    .bind(into)
                    .bind(run.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(be("fold a discovery run"))?;
            }
        }
        tx.commit().await.map_err(be("commit"))?;
        Ok(Completion { held, finished_at, record })
    }
}

/// Folds the finished run `run` into the source's record before it (the newest older one) when
/// both are scheduled runs that succeeded and found the catalog unchanged, with as many
/// relations: that record counts one run more and takes `run`'s times and instance, and `run`'s
/// row goes. Returns the record it was folded into.
async fn fold(tx: &mut SqliteConnection, run: i64) -> Result<Option<i64>> {
    let previous: Option<(i64, bool)> = sqlx::query_as(concat!(
        "SELECT p.id, COALESCE(c.state = 'finished' AND c.reason = 'schedule' AND c.outcome = 'ok' AND NOT c.changed ",
        "AND p.state = 'finished' AND p.reason = 'schedule' AND p.outcome = 'ok' AND NOT p.changed ",
        "AND p.relations = c.relations, false) ",
        "FROM discovery_runs c JOIN discovery_runs p ON p.source_id = c.source_id AND p.id < c.id ",
        "WHERE c.id = ?1 ORDER BY p.id DESC LIMIT 1"
    ))
    .bind(run)
    .fetch_optional(&mut *tx)
    .await
    .map_err(be("read the previous discovery run"))?;
    let Some((into, true)) = previous else { return Ok(None) };
    let folded = sqlx::query(
        "UPDATE discovery_runs SET runs = runs + 1, (last_started_at, last_finished_at, last_instance) = \
         (SELECT c.started_at, c.finished_at, c.instance FROM discovery_runs c WHERE c.id = ?2) WHERE id = ?1",
    )
    .bind(into)
    .bind(run)
    .execute(&mut *tx)
    .await
    .map_err(be("fold a discovery run"))?;
    if folded.rows_affected() != 1 {
        return Ok(None);
    }
    sqlx::query("DELETE FROM discovery_runs WHERE id = ?1")
        .bind(run)
        .execute(&mut *tx)
        .await
        .map_err(be("fold a discovery run"))?;
    Ok(Some(into))
}

/// A run whose instance let its lease expire: recorded as failed at the `scheduler` stage.
async fn abandon(tx: &mut SqliteConnection, run: i64) -> Result<()> {
    sqlx::query(concat!(
        "UPDATE discovery_runs SET state = 'finished', finished_at = ",
        now!(),
        ", outcome = 'failed', stage = 'scheduler', ",
        "message = 'the instance running it stopped renewing its lease; another instance took the source over' ",
        "WHERE id = ?1 AND state <> 'finished'"
    ))
    .bind(run)
    .execute(tx)
    .await
    .map_err(be("record an abandoned run"))?;
    Ok(())
}

/// Sets the source's own discovery interval on `conn` (a connection of the pool, or an edit's
/// transaction). A shorter interval counts from now: the source is due within it, not on the old
/// one. Whether the source has a schedule.
pub(super) async fn set_interval_on(
    conn: &mut SqliteConnection,
    source: &str,
    interval_ms: Option<i64>,
) -> Result<bool> {
    let done = sqlx::query(concat!(
        "UPDATE discovery_schedule SET interval_ms = ?2, next_due_at = CASE WHEN next_due_at > ",
        now!(),
        " + ?2 THEN ",
        now!(),
        " + ?2 ELSE next_due_at END WHERE source_id = ?1"
    ))
    .bind(source)
    .bind(interval_ms)
    .execute(conn)
    .await
    .map_err(be("set a discovery interval"))?;
    Ok(done.rows_affected() == 1)
}

/// Makes the source due now on `conn`, its failures in a row counted from 0. Whether the source
/// has a schedule.
pub(super) async fn due_now_on(conn: &mut SqliteConnection, source: &str) -> Result<bool> {
    let done = sqlx::query(concat!(
        "UPDATE discovery_schedule SET next_due_at = ",
        now!(),
        ", failures = 0 WHERE source_id = ?1"
    ))
    .bind(source)
    .execute(conn)
    .await
    .map_err(be("schedule a discovery"))?;
    Ok(done.rows_affected() == 1)
}
