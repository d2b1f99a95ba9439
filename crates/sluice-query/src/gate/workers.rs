//! The gate's own threads: a few long-lived threads with a [`GATE_STACK_BYTES`] stack each,
//! started on first use, that parse and walk statements handed to them over a queue. A thread is
//! not started per statement (that cost more than parsing a short one), and an async caller waits
//! for the answer without blocking its runtime.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use super::{refused, GATE_STACK_BYTES};
use crate::QueryError;

type Job = Box<dyn FnOnce() + Send>;

/// The queue's sending end, or why the threads could not be started.
static QUEUE: OnceLock<Result<mpsc::Sender<Job>, String>> = OnceLock::new();

/// At most this many gate threads, however many cores the machine has.
const MAX_THREADS: usize = 4;

fn queue() -> Result<&'static mpsc::Sender<Job>, QueryError> {
    QUEUE
        .get_or_init(start)
        .as_ref()
        .map_err(|e| QueryError::Internal(format!("cannot start the statement gate's threads: {e}")))
}

fn start() -> Result<mpsc::Sender<Job>, String> {
    let (sender, receiver) = mpsc::channel::<Job>();
    let receiver = Arc::new(Mutex::new(receiver));
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, MAX_THREADS);
    for i in 0..threads {
        let receiver = receiver.clone();
        std::thread::Builder::new()
            .name(format!("sluice-gate-{i}"))
            .stack_size(GATE_STACK_BYTES)
            .spawn(move || loop {
                // The lock is held only while waiting for the next job, never while running it.
                let next = match receiver.lock() {
                    Ok(queue) => queue.recv(),
                    Err(_) => return,
                };
                match next {
                    Ok(job) => job(),
                    Err(_) => return,
                }
            })
            .map_err(|e| e.to_string())?;
    }
    Ok(sender)
}

/// Runs `classify` on a gate thread. libpg_query's Rust summary code has a few `panic!`s on
/// shapes the grammar never produces; a panic there becomes a refusal, never reaches the user,
/// and leaves the thread serving.
fn job<F>(classify: F, reply: impl FnOnce(Result<super::Admitted, QueryError>) + Send + 'static) -> Job
where
    F: FnOnce() -> Result<super::Admitted, QueryError> + Send + 'static,
{
    Box::new(move || {
        let answer = catch_unwind(AssertUnwindSafe(classify))
            .unwrap_or_else(|_| Err(refused("the statement could not be classified")));
        reply(answer);
    })
}

fn lost() -> QueryError {
    QueryError::Internal("the statement gate's thread ended without an answer".into())
}

/// Runs `classify` on a gate thread and waits for its answer, blocking the calling thread.
pub(super) fn run_blocking<F>(classify: F) -> Result<super::Admitted, QueryError>
where
    F: FnOnce() -> Result<super::Admitted, QueryError> + Send + 'static,
{
    let (tx, rx) = mpsc::sync_channel(1);
    let work = job(classify, move |answer| {
        let _ = tx.send(answer);
    });
    queue()?.send(work).map_err(|_| lost())?;
    rx.recv().unwrap_or_else(|_| Err(lost()))
}

/// Runs `classify` on a gate thread; the caller's task waits without blocking its thread.
pub(super) async fn run_async<F>(classify: F) -> Result<super::Admitted, QueryError>
where
    F: FnOnce() -> Result<super::Admitted, QueryError> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let work = job(classify, move |answer| {
        let _ = tx.send(answer);
    });
    queue()?.send(work).map_err(|_| lost())?;
    rx.await.unwrap_or_else(|_| Err(lost()))
}
