//! A per-source pool with a hard cap, so Sluice can never exhaust a customer's
//! `max_connections`. A session is reset (see [`ReadOnlySession::reset`]) before it is used
//! again; one that cannot be reset, or whose connection died, is closed and replaced. A session
//! that went idle less than [`FOLD_RESET_WITHIN`] ago, with no transaction left open, is handed
//! out with its reset still to do, and its next transaction sends the reset in the same batch as
//! its `BEGIN` (one round trip instead of two); any other is reset before it is handed out, so a
//! transaction left open ends at once, and a connection that died while idle is replaced
//! instead of failing the caller's first statement.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{ConnectError, Connector, ReadOnlySession};

/// Pool limits. Defaults: 5 sessions, 30 s to wait for one, an idle session closed after 5
/// minutes.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub max_size: usize,
    pub acquire_timeout: Duration,
    /// An idle session is closed once it has been idle this long, so a source nobody queries
    /// holds no connection on the customer's server.
    pub idle_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions { max_size: 5, acquire_timeout: Duration::from_secs(30), idle_timeout: Duration::from_secs(300) }
    }
}

/// How recently a session must have come back for its reset to go out with its next `BEGIN`.
pub const FOLD_RESET_WITHIN: Duration = Duration::from_secs(10);

/// Sessions to one source: at most `max_size` exist at once, idle or in use.
#[derive(Clone, Debug)]
pub struct Pool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    connector: Connector,
    options: PoolOptions,
    permits: Arc<Semaphore>,
    /// Idle sessions, each with the time it came back.
    idle: Mutex<Vec<(ReadOnlySession, Instant)>>,
    /// Callers of `get` waiting for a session to be free.
    waiting: AtomicUsize,
}

/// Counts one waiter in [`Inner::waiting`] for as long as it lives (also when `get` is dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(counter: &'a AtomicUsize) -> Waiting<'a> {
        counter.fetch_add(1, Ordering::SeqCst);
        Waiting(counter)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Pool {
    /// A pool; inside a Tokio runtime it also starts the task that closes sessions idle longer
    /// than [`PoolOptions::idle_timeout`] (it ends with the pool).
    pub fn new(connector: Connector, options: PoolOptions) -> Pool {
        let max = options.max_size.max(1);
        let pool = Pool {
            inner: Arc::new(Inner {
                connector,
                options: PoolOptions { max_size: max, ..options },
                permits: Arc::new(Semaphore::new(max)),
                idle: Mutex::new(Vec::new()),
                waiting: AtomicUsize::new(0),
            }),
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(close_idle(Arc::downgrade(&pool.inner)));
        }
        pool
    }

    /// Closes the idle sessions that have been idle for `idle_timeout` or longer; how many.
    pub fn close_idle(&self) -> usize {
        self.inner.close_idle()
    }

    pub fn connector(&self) -> &Connector {
        &self.inner.connector
    }

    pub fn max_size(&self) -> usize {
        self.inner.options.max_size
    }

    /// Idle sessions held right now.
    pub fn idle_count(&self) -> usize {
        self.inner.idle.lock().map(|i| i.len()).unwrap_or(0)
    }

    /// Sessions on loan right now (at most `max_size`).
    pub fn in_use(&self) -> usize {
        self.inner.options.max_size - self.inner.permits.available_permits()
    }

    /// Callers waiting in [`Pool::get`] for a session to be free.
    pub fn waiting(&self) -> usize {
        self.inner.waiting.load(Ordering::SeqCst)
    }

    /// A read-only session, waiting while `max_size` are in use.
    pub async fn get(&self) -> Result<PooledSession, ConnectError> {
        let permit = self.acquire().await?;
        self.get_with(permit).await
    }

    /// A read-only session if one is free under the cap right now (idle, or opened now), without
    /// waiting behind other callers: `Ok(None)` when `max_size` are in use. For work that can
    /// go on without it (a large discovery shares its batch with a second session).
    pub async fn try_get(&self) -> Result<Option<PooledSession>, ConnectError> {
        let Ok(permit) = self.inner.permits.clone().try_acquire_owned() else {
            return Ok(None);
        };
        self.get_with(permit).await.map(Some)
    }

    async fn get_with(&self, permit: OwnedSemaphorePermit) -> Result<PooledSession, ConnectError> {
        while let Some((mut session, returned)) = self.pop_idle() {
            if !session.is_reusable() {
                continue;
            }
            // A session left inside a transaction (its guard or future was dropped mid-flight)
            // is reset before it is handed out: the transaction ends now, not at the next use.
            if !session.pgbouncer && !session.in_transaction && returned.elapsed() < FOLD_RESET_WITHIN {
                session.reset_pending = true;
                return Ok(self.wrap(session, permit));
            }
            match session.reset().await {
                Ok(()) => return Ok(self.wrap(session, permit)),
                Err(e) => tracing::debug!("dropping a session that could not be reset: {e}"),
            }
        }
        let session = self.inner.connector.connect().await?;
        Ok(self.wrap(session, permit))
    }

    /// A newly opened session, counted against the cap like any other — for a check that must
    /// see a fresh login (the doctor). It waits for a free slot like [`Pool::get`]; an idle
    /// session, if there is one, is closed first, so the source never holds more than
    /// `max_size` sessions whoever asks. It goes back to the pool when dropped.
    pub async fn get_fresh(&self) -> Result<PooledSession, ConnectError> {
        let permit = self.acquire().await?;
        drop(self.pop_idle());
        let session = self.inner.connector.connect().await?;
        Ok(self.wrap(session, permit))
    }

    /// A slot under the cap, waiting up to `acquire_timeout`.
    async fn acquire(&self) -> Result<OwnedSemaphorePermit, ConnectError> {
        let timeout = self.inner.options.acquire_timeout;
        let waiting = Waiting::new(&self.inner.waiting);
        let acquired = tokio::time::timeout(timeout, self.inner.permits.clone().acquire_owned()).await;
        drop(waiting);
        match acquired {
            Ok(Ok(p)) => Ok(p),
            _ => Err(ConnectError::PoolTimeout { secs: timeout.as_secs(), max: self.inner.options.max_size }),
        }
    }

    fn pop_idle(&self) -> Option<(ReadOnlySession, Instant)> {
        self.inner.idle.lock().ok().and_then(|mut i| i.pop())
    }

    fn wrap(&self, session: ReadOnlySession, permit: OwnedSemaphorePermit) -> PooledSession {
        PooledSession { session: Some(session), pool: self.inner.clone(), _permit: permit, discard: false }
    }
}

impl Inner {
    fn close_idle(&self) -> usize {
        let timeout = self.options.idle_timeout;
        let Ok(mut idle) = self.idle.lock() else { return 0 };
        let before = idle.len();
        idle.retain(|(_, since)| since.elapsed() < timeout);
        before - idle.len()
    }
}

/// Closes a pool's long-idle sessions, checking a few times per `idle_timeout`, until the pool
/// is gone.
async fn close_idle(pool: std::sync::Weak<Inner>) {
    let every = match pool.upgrade() {
        Some(inner) => (inner.options.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(30)),
        None => return,
    };
    loop {
        tokio::time::sleep(every).await;
        let Some(inner) = pool.upgrade() else { return };
        let closed = inner.close_idle();
        if closed > 0 {
            tracing::debug!(closed, "closed idle sessions");
        }
    }
}

/// A session on loan from a [`Pool`]; it goes back when dropped.
#[derive(Debug)]
pub struct PooledSession {
    session: Option<ReadOnlySession>,
    pool: Arc<Inner>,
    // Dropped after the session is back in the idle list, so a waiter always finds it there.
    _permit: OwnedSemaphorePermit,
    discard: bool,
}

impl PooledSession {
    /// Close this session instead of returning it (after a lost connection or an abandoned
    /// stream whose rest is not worth draining).
    pub fn discard(mut self) {
        self.discard = true;
    }
}

impl Deref for PooledSession {
    type Target = ReadOnlySession;
    fn deref(&self) -> &ReadOnlySession {
        // Present from construction until drop.
        self.session.as_ref().expect("a pooled session is present until dropped")
    }
}

impl DerefMut for PooledSession {
    fn deref_mut(&mut self) -> &mut ReadOnlySession {
        // Present from construction until drop.
        self.session.as_mut().expect("a pooled session is present until dropped")
    }
}

impl Drop for PooledSession {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            if !self.discard && session.is_reusable() {
                if let Ok(mut idle) = self.pool.idle.lock() {
                    idle.push((session, Instant::now()));
                }
            }
        }
    }
}
