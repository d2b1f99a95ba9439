//! The SQLite store's audit writer: one task with a connection of its own that takes the audit
//! writes queued meanwhile (entries appended, queries' entries completed) and commits them as one
//! transaction.
//!
//! Every query writes twice (its entry begun before the first row, completed after the last),
//! and each commit of its own would write the WAL frames of the table and its four indexes and
//! make every other connection of the store drop its page cache. Under load the writes queue
//! while a batch commits, so the next batch takes them all in one commit.
//!
//! Each caller waits until its own write is committed: an acknowledged write is in the WAL file
//! as surely as one committed alone. A write whose statement fails gets its own error; the batch
//! is rolled back and its other writes, none acknowledged yet, run again in the next batch. When
//! the batch cannot begin or commit, every write in it fails with that error. No write is
//! acknowledged unless its transaction committed.

use std::collections::VecDeque;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use crate::model::{AuditId, QueryCompletion};
use crate::{Result, StoreError};

/// At most this many writes are committed together.
const MAX_BATCH: usize = 256;

/// A new audit entry, owned, as the writer's task needs it.
#[derive(Debug)]
pub(crate) struct NewEntry {
    pub actor: String,
    pub kind: String,
    pub source: Option<String>,
    pub detail: String,
    pub sql: Option<String>,
}

/// One queued write with the caller waiting for its answer.
enum Write {
    Append { entry: NewEntry, reply: oneshot::Sender<Result<AuditId>> },
    Complete { id: AuditId, done: QueryCompletion, reply: oneshot::Sender<Result<bool>> },
}

enum Message {
    Write(Write),
    /// Commits what is queued, closes the connection, then answers.
    Close(oneshot::Sender<()>),
}

impl Write {
    /// Runs the write's statement: the new entry's id, or how many entries were completed.
    async fn run(&self, c: &mut SqliteConnection) -> Result<i64> {
        match self {
            Write::Append { entry, .. } => sqlx::query_scalar(concat!(
                "INSERT INTO audit_log (at, actor, kind, source_id, detail, sql) VALUES (",
                now!(),
                ", ?, ?, ?, ?, ?) RETURNING id"
            ))
            .bind(&entry.actor)
            .bind(&entry.kind)
            .bind(entry.source.as_deref())
            .bind(&entry.detail)
            .bind(entry.sql.as_deref())
            .fetch_one(&mut *c)
            .await
            .map_err(|e| StoreError::backend("append to the audit log", e)),
            Write::Complete { id, done, .. } => sqlx::query(concat!(
                "UPDATE audit_log SET finished_at = ",
                now!(),
                ", duration_ms = ?, rows = ?, bytes = ?, outcome = ?, error = ? ",
                "WHERE id = ? AND kind = 'query' AND finished_at IS NULL"
            ))
            .bind(done.duration_ms)
            .bind(done.rows)
            .bind(done.bytes)
            .bind(done.outcome.as_str())
            .bind(done.error.as_deref())
            .bind(id.0)
            .execute(&mut *c)
            .await
            .map(|r| i64::try_from(r.rows_affected()).unwrap_or(i64::MAX))
            .map_err(|e| StoreError::backend("complete an audit entry", e)),
        }
    }

    /// Hands the caller its answer (a caller that stopped waiting is not told).
    fn answer(self, result: Result<i64>) {
        match self {
            Write::Append { reply, .. } => {
                let _ = reply.send(result.map(AuditId));
            }
            Write::Complete { reply, .. } => {
                let _ = reply.send(result.map(|n| n == 1));
            }
        }
    }

    fn fail(self, message: &str) {
        self.answer(Err(StoreError::Backend { message: message.to_string() }));
    }
}

/// The handle the backend keeps; the task ends when it is closed or dropped.
pub(crate) struct AuditWriter {
    queue: mpsc::UnboundedSender<Message>,
}

impl AuditWriter {
    /// Opens the writer's connection (so a store that cannot be written fails to open) and
    /// starts its task on the current runtime.
    pub(crate) async fn start(options: SqliteConnectOptions) -> Result<AuditWriter> {
        let conn = options.connect().await.map_err(|e| StoreError::backend("open the audit writer's connection", e))?;
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(Task { options, conn: Some(conn), rx, carried: VecDeque::new() }.run());
        Ok(AuditWriter { queue })
    }

    pub(crate) async fn append(&self, entry: NewEntry) -> Result<AuditId> {
        let (reply, answer) = oneshot::channel();
        self.send(Write::Append { entry, reply })?;
        answer.await.map_err(|_| stopped())?
    }

    pub(crate) async fn complete(&self, id: AuditId, done: &QueryCompletion) -> Result<bool> {
        let (reply, answer) = oneshot::channel();
        self.send(Write::Complete { id, done: done.clone(), reply })?;
        answer.await.map_err(|_| stopped())?
    }

    fn send(&self, write: Write) -> Result<()> {
        self.queue.send(Message::Write(write)).map_err(|_| stopped())
    }

    /// Commits the writes queued so far and closes the writer's connection; later writes fail.
    pub(crate) async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.queue.send(Message::Close(done)).is_ok() {
            let _ = closed.await;
        }
    }
}

fn stopped() -> StoreError {
    StoreError::Backend { message: "the audit log's writer has stopped (the store is closed)".into() }
}

struct Task {
    options: SqliteConnectOptions,
    /// `None` after a failure left the connection in doubt; the next batch opens a new one.
    conn: Option<SqliteConnection>,
    rx: mpsc::UnboundedReceiver<Message>,
    /// Writes of a batch rolled back for another write's failure, to run first.
    carried: VecDeque<Write>,
}

impl Task {
    async fn run(mut self) {
        loop {
            if self.carried.is_empty() {
                match self.rx.recv().await {
                    Some(Message::Write(w)) => self.carried.push_back(w),
                    Some(Message::Close(done)) => return self.close(done).await,
                    None => return self.close_connection().await,
                }
            }
            let mut closing = None;
            while self.carried.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(Message::Write(w)) => self.carried.push_back(w),
                    Ok(Message::Close(done)) => {
                        closing = Some(done);
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.commit_next().await;
            if let Some(done) = closing {
                return self.close(done).await;
            }
        }
    }

    /// Commits what is still queued (nothing more can be), then closes the connection.
    async fn close(mut self, done: oneshot::Sender<()>) {
        self.rx.close();
        let mut waiting = vec![done];
        while let Ok(message) = self.rx.try_recv() {
            match message {
                Message::Write(w) => self.carried.push_back(w),
                Message::Close(done) => waiting.push(done),
            }
        }
        while !self.carried.is_empty() {
            self.commit_next().await;
        }
        self.close_connection().await;
        for done in waiting {
            let _ = done.send(());
        }
    }

    async fn close_connection(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
    }

    /// Commits the next batch of queued writes. Writes to run again go before those that came
    /// later, in their order, so each batch answers at least one write.
    async fn commit_next(&mut self) {
        let batch: Vec<Write> = self.carried.drain(..self.carried.len().min(MAX_BATCH)).collect();
        let retry = self.commit(batch).await;
        for w in retry.into_iter().rev() {
            self.carried.push_front(w);
        }
    }

    /// Commits one batch; the writes to run again when another write's failure rolled it back.
    async fn commit(&mut self, mut batch: Vec<Write>) -> Vec<Write> {
        let conn = match self.conn.take() {
            Some(c) => self.conn.insert(c),
            None => match self.options.connect().await {
                Ok(c) => self.conn.insert(c),
                Err(e) => {
                    let message = format!("open the audit writer's connection: {e}");
                    batch.into_iter().for_each(|w| w.fail(&message));
                    return Vec::new();
                }
            },
        };
        // One write alone commits by itself.
        if batch.len() == 1 {
            if let Some(w) = batch.pop() {
                let result = w.run(conn).await;
                w.answer(result);
            }
            return Vec::new();
        }
        if let Err(e) = sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await {
            let message = format!("begin a batch of audit writes: {e}");
            self.rollback().await;
            batch.into_iter().for_each(|w| w.fail(&message));
            return Vec::new();
        }
        let mut ran = Vec::with_capacity(batch.len());
        let mut rest = batch.into_iter();
        while let Some(w) = rest.next() {
            match w.run(conn).await {
                Ok(n) => ran.push((w, n)),
                Err(e) => {
                    self.rollback().await;
                    w.answer(Err(e));
                    return ran.into_iter().map(|(w, _)| w).chain(rest).collect();
                }
            }
        }
        match sqlx::raw_sql("COMMIT").execute(&mut *conn).await {
            Ok(_) => ran.into_iter().for_each(|(w, n)| w.answer(Ok(n))),
            Err(e) => {
                let message = format!("commit a batch of audit writes: {e}");
                self.rollback().await;
                ran.into_iter().for_each(|(w, _)| w.fail(&message));
            }
        }
        Vec::new()
    }

    /// Rolls back the open transaction; a connection whose rollback fails (SQLite may have
    /// ended the transaction itself) is closed, which ends any transaction it still had.
    async fn rollback(&mut self) {
        let Some(conn) = self.conn.as_mut() else { return };
        if sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.is_err() {
            self.close_connection().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions, Row};
    use tokio::sync::{mpsc, oneshot};

    use super::{NewEntry, Task, Write};
    use crate::model::{AuditId, QueryCompletion, QueryOutcome};
    use crate::sqlite::SqliteBackend;
    use crate::StoreError;

    /// A migrated store file, and a writer's task over it (driven batch by batch by the test)
    /// whose connection waits for a lock at most `busy`.
    async fn setup(busy: Duration) -> (tempfile::TempDir, SqliteBackend, Task) {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("store.db");
        let backend = SqliteBackend::open(&file).await.expect("open");
        let options = SqliteConnectOptions::new().filename(&file).foreign_keys(true).busy_timeout(busy);
        let conn = options.connect().await.expect("connect");
        let (_queue, rx) = mpsc::unbounded_channel();
        (dir, backend, Task { options, conn: Some(conn), rx, carried: Default::default() })
    }

    fn append(task: &mut Task, actor: &str) -> oneshot::Receiver<crate::Result<AuditId>> {
        let (reply, answer) = oneshot::channel();
        let entry = NewEntry {
            actor: actor.into(),
            kind: "query".into(),
            source: Some("prod".into()),
            detail: "{}".into(),
            sql: Some("SELECT 1".into()),
        };
        task.carried.push_back(Write::Append { entry, reply });
        answer
    }

    fn complete(task: &mut Task, id: AuditId) -> oneshot::Receiver<crate::Result<bool>> {
        let (reply, answer) = oneshot::channel();
        let done = QueryCompletion { duration_ms: 3, rows: 1, bytes: 20, outcome: QueryOutcome::Ok, error: None };
        task.carried.push_back(Write::Complete { id, done, reply });
        answer
    }

    async fn exec(backend: &SqliteBackend, sql: &'static str) {
        sqlx::raw_sql(sql).execute(&backend.pool).await.expect(sql);
    }

    /// The actors in the log, in id order, and how many entries are completed.
    async fn logged(backend: &SqliteBackend) -> (Vec<String>, i64) {
        let rows = sqlx::query("SELECT actor, finished_at FROM audit_log ORDER BY id")
            .fetch_all(&backend.pool)
            .await
            .expect("log");
        let actors = rows.iter().map(|r| r.get::<String, _>(0)).collect();
        let finished = rows.iter().filter(|r| r.get::<Option<i64>, _>(1).is_some()).count();
        (actors, i64::try_from(finished).expect("count"))
    }

    /// Finds a write refused by a trigger among others, whichever way the trigger refuses.
    async fn one_refused_write(refusal: &'static str) {
        let (_dir, backend, mut task) = setup(Duration::from_secs(10)).await;
        let first = append(&mut task, "first");
        task.commit_next().await;
        let first = first.await.expect("answered").expect("first write");
        exec(&backend, refusal).await;

        let a = append(&mut task, "a");
        let finished = complete(&mut task, first);
        let refused = append(&mut task, "refused");
        let b = append(&mut task, "b");
        task.commit_next().await;
        // The refused write has its own error; the others, rolled back with it, are not
        // acknowledged but queued again.
        let e = refused.await.expect("answered").expect_err("refused by the trigger");
        assert!(e.to_string().contains("no entries for this actor"), "{e}");
        assert_eq!(task.carried.len(), 3);
        assert_eq!(logged(&backend).await, (vec!["first".to_string()], 0));

        task.commit_next().await;
        assert!(task.carried.is_empty());
        let a = a.await.expect("answered").expect("a");
        let b = b.await.expect("answered").expect("b");
        assert!(finished.await.expect("answered").expect("completed"));
        assert!(first < a && a < b, "{first} {a} {b}");
        assert_eq!(logged(&backend).await, (vec!["first".into(), "a".into(), "b".into()], 1));
    }

    #[tokio::test]
    async fn a_write_that_fails_alone_fails_its_caller_and_its_batch_runs_again_without_it() {
        one_refused_write(
            "CREATE TRIGGER refuse BEFORE INSERT ON audit_log WHEN NEW.actor = 'refused' \
             BEGIN SELECT RAISE(ABORT, 'no entries for this actor'); END",
        )
        .await;
    }

    #[tokio::test]
    async fn a_write_whose_failure_ends_the_whole_transaction_loses_none_of_the_others() {
        // RAISE(ROLLBACK) ends the transaction, undoing the batch's earlier writes with it.
        one_refused_write(
            "CREATE TRIGGER refuse BEFORE INSERT ON audit_log WHEN NEW.actor = 'refused' \
             BEGIN SELECT RAISE(ROLLBACK, 'no entries for this actor'); END",
        )
        .await;
    }

    #[tokio::test]
    async fn a_batch_that_cannot_commit_fails_every_write_in_it_and_the_next_batch_commits() {
        let (_dir, backend, mut task) = setup(Duration::from_secs(10)).await;
        // A deferred foreign key fails at COMMIT, not at the statement.
        exec(&backend, "CREATE TABLE doom (parent INTEGER REFERENCES audit_log (id) DEFERRABLE INITIALLY DEFERRED)")
            .await;
        exec(
            &backend,
            "CREATE TRIGGER doom AFTER INSERT ON audit_log WHEN NEW.actor = 'doomed' \
             BEGIN INSERT INTO doom VALUES (-1); END",
        )
        .await;
        let answers = [append(&mut task, "a"), append(&mut task, "doomed"), append(&mut task, "b")];
        task.commit_next().await;
        assert!(task.carried.is_empty());
        for answer in answers {
            let e = answer.await.expect("answered").expect_err("the batch did not commit");
            assert!(matches!(e, StoreError::Backend { .. }), "{e:?}");
            assert!(e.to_string().contains("commit a batch of audit writes"), "{e}");
        }
        assert_eq!(logged(&backend).await, (vec![], 0));

        let c = append(&mut task, "c");
        let d = append(&mut task, "d");
        task.commit_next().await;
        c.await.expect("answered").expect("c");
        d.await.expect("answered").expect("d");
        assert_eq!(logged(&backend).await, (vec!["c".into(), "d".into()], 0));
    }

    #[tokio::test]
    async fn a_batch_that_cannot_begin_fails_every_write_in_it() {
        let (_dir, backend, mut task) = setup(Duration::from_millis(1)).await;
        // Another connection holds the write lock past the writer's patience.
        let mut holder = backend.pool.acquire().await.expect("connection");
        sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *holder).await.expect("lock");
        let answers = [append(&mut task, "a"), append(&mut task, "b")];
        task.commit_next().await;
        for answer in answers {
            let e = answer.await.expect("answered").expect_err("no lock");
            assert!(e.to_string().contains("begin a batch of audit writes"), "{e}");
            assert!(e.to_string().contains("locked"), "{e}");
        }
        sqlx::raw_sql("ROLLBACK").execute(&mut *holder).await.expect("unlock");
        drop(holder);

        let c = append(&mut task, "c");
        let d = append(&mut task, "d");
        task.commit_next().await;
        c.await.expect("answered").expect("c");
        d.await.expect("answered").expect("d");
        assert_eq!(logged(&backend).await, (vec!["c".into(), "d".into()], 0));
    }

    #[tokio::test]
    async fn closing_commits_what_was_queued_and_refuses_what_comes_after() {
        let dir = tempfile::tempdir().expect("dir");
        let backend = SqliteBackend::open(&dir.path().join("store.db")).await.expect("open");
        let answers: Vec<_> = (0..20)
            .map(|i| {
                let (reply, answer) = oneshot::channel();
                let entry = NewEntry {
                    actor: format!("user:{i}"),
                    kind: "source.create".into(),
                    source: None,
                    detail: "{}".into(),
                    sql: None,
                };
                backend.audit.send(Write::Append { entry, reply }).expect("queued");
                answer
            })
            .collect();
        backend.audit.close().await;
        let mut ids = Vec::new();
        for answer in answers {
            ids.push(answer.await.expect("answered").expect("committed before the close"));
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "committed in the order queued: {ids:?}");
        let (actors, _) = logged(&backend).await;
        assert_eq!(actors, (0..20).map(|i| format!("user:{i}")).collect::<Vec<_>>());

        let e = backend.append_audit("user:late", "query", None, "{}", None).await.expect_err("closed");
        assert!(e.to_string().contains("writer has stopped"), "{e}");
        assert_eq!(logged(&backend).await.0.len(), 20);
    }
}
