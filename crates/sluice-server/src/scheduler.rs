//! The discovery scheduler: each source is discovered when it is saved, then on its interval,
//! and when someone asks (`POST …/refresh` queues a run). Every instance sharing the store runs
//! one; they coordinate only through the store's schedule, where a due source is claimed under
//! a lease by exactly one instance ([`sluice_store::Store::claim_due_discoveries`]), so a source
//! is discovered once per interval however many instances run.
//!
//! The loop claims no more sources than it has free slots ([`DiscoveryConfig::concurrency`]), so
//! the runs in flight, and so the catalogs held in memory at once, stay under that cap. Each run
//! is a task of its own with a timeout ([`DiscoveryConfig::run_timeout`]): a slow or unreachable
//! source holds one slot for at most that long and never delays another source's run. While a
//! run lasts its lease is renewed every third of [`DiscoveryConfig::lease`]; an instance that
//! dies stops renewing, and once the lease expires another instance claims the source (recording
//! the dead run as failed at the `scheduler` stage). A failing source is retried after a backoff
//! that doubles from [`DiscoveryConfig::first_backoff`] up to its interval, and from its
//! [`crate::alerts::FAILING_AFTER`]th failure in a row the source shows a `discovery_failing`
//! alert until a run succeeds.
//!
//! Every [`DiscoveryConfig::prune_every`] one instance (the first to claim the period in the
//! store) applies the change history's retention.
//!
//! Must not: run discovery outside a lease it holds, keep schedule state of its own (the store
//! is the schedule; a restart loses nothing), or wait on one source before claiming another.

use std::sync::Arc;
use std::time::Duration;

use sluice_store::{ClaimedDiscovery, NextDue, RunOutcome, RunResult};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use crate::discovery::discover_and_store;
use crate::AppState;

/// How sources are discovered on schedule. [`Default`] is what `sluice serve` uses.
#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
    /// A source's interval unless it sets its own (the API accepts 60 s and more). Default 5
    /// minutes.
    pub default_interval: Duration,
    /// Discoveries this instance runs at once (default 4). Each holds its catalog three times
    /// at its peak — the rows folded into the model, the JSON, and the compressed copy — about
    /// 3 MB per thousand relations, so the default keeps four 10,000-table sources under
    /// ~150 MB; lower it for stores of very large catalogs.
    pub concurrency: usize,
    /// The longest one run may take (default 2 minutes); past it the run fails at the `timeout`
    /// stage and the source backs off.
    pub run_timeout: Duration,
    /// How long a claimed source stays leased without renewal (default 60 s, renewed every
    /// third of it): how long a source waits when the instance running it dies.
    pub lease: Duration,
    /// How often the store is asked for due sources (default 1 s; a refresh asked of this
    /// instance starts at once).
    pub poll: Duration,
    /// The first retry delay after a failure; it doubles per failure, up to the interval.
    pub first_backoff: Duration,
    /// This instance's name in leases and run records; unique per process.
    pub instance: String,
    /// The first retry delay of a webhook notification the receiver did not take (default 5 s);
    /// it doubles per attempt, up to an hour ([`crate::webhook`]).
    pub webhook_retry: Duration,
    /// How often the change history's retention is applied ([`crate::prune_history`]; default
    /// hourly), by one instance per period however many share the store.
    pub prune_every: Duration,
}

impl Default for DiscoveryConfig {
    fn default() -> DiscoveryConfig {
        DiscoveryConfig {
            default_interval: Duration::from_secs(300),
            concurrency: 4,
            run_timeout: Duration::from_secs(120),
            lease: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            first_backoff: Duration::from_secs(10),
            instance: instance_name(),
            webhook_retry: Duration::from_secs(5),
            prune_every: Duration::from_secs(3600),
        }
    }
}

/// `<host>-<pid>-<random>`: unique among the instances sharing a store.
fn instance_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    let mut bytes = [0u8; 4];
    let random = match getrandom::fill(&mut bytes) {
        Ok(()) => bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        Err(_) => "0".into(),
    };
    let host: String = host.chars().filter(|c| c.is_ascii_graphic()).take(64).collect();
    let host = if host.is_empty() { "sluice".to_string() } else { host };
    format!("{host}-{}-{random}", std::process::id())
}

/// The running scheduler; [`Scheduler::stop`] ends it.
pub struct Scheduler {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    webhook: tokio::task::JoinHandle<()>,
}

impl Scheduler {
    /// Starts the scheduler of `state`'s instance, and beside it the delivery of webhook
    /// notifications ([`crate::webhook`]).
    pub fn start(state: AppState) -> Scheduler {
        let (stop, stopped) = watch::channel(false);
        let webhook = tokio::spawn(crate::webhook::run(state.clone(), stopped.clone()));
        let task = tokio::spawn(run(state, stopped));
        Scheduler { stop, task, webhook }
    }

    /// Stops claiming, cancels the runs in flight (each recorded as cancelled and its source
    /// released, due at once, for any instance), and waits for that.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
        let _ = self.webhook.await;
    }

    /// Ends the scheduler at once, as a crash would: its leases are left to expire.
    pub fn abort(self) {
        self.task.abort();
        self.webhook.abort();
    }
}

/// The handle [`AppState`] keeps to wake its instance's scheduler (a refresh was asked for, a
/// source was saved).
#[derive(Default)]
pub(crate) struct Wake(Notify);

/// Shared so [`AppState`] can hand it to the loop.
pub(crate) type WakeHandle = Arc<Wake>;

impl Wake {
    pub(crate) fn wake(&self) {
        self.0.notify_one();
    }
}

async fn run(state: AppState, mut stopped: watch::Receiver<bool>) {
    let config = state.config().discovery.clone();
    let cap = config.concurrency.max(1);
    let wake = state.wake_handle();
    let mut runs = JoinSet::new();
    // When to ask the store whether the retention is due again (the store decides who prunes).
    let prune_check = config.prune_every.min(PRUNE_CHECK);
    let mut next_prune_check = tokio::time::Instant::now();
    loop {
        if *stopped.borrow() {
            break;
        }
        if tokio::time::Instant::now() >= next_prune_check {
            next_prune_check = tokio::time::Instant::now() + prune_check;
            tokio::spawn(prune_if_due(state.clone()));
        }
        let free = cap.saturating_sub(runs.len());
        if free > 0 {
            let limit = u32::try_from(free).unwrap_or(u32::MAX);
            match state.store().claim_due_discoveries(&config.instance, config.lease, limit).await {
                Ok(claimed) => {
                    for c in claimed {
                        runs.spawn(run_one(state.clone(), c, stopped.clone()));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "failed to claim due sources"),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(config.poll) => {}
            () = wake.0.notified() => {}
            Some(_) = runs.join_next(), if !runs.is_empty() => {}
            _ = stopped.changed() => {}
        }
    }
    // Each run sees the stop too and records itself as cancelled.
    while runs.join_next().await.is_some() {}
}

/// How often at most an instance asks the store whether the retention is due.
const PRUNE_CHECK: Duration = Duration::from_secs(60);

/// The store's periodic task the retention runs as.
const PRUNE_TASK: &str = "prune_history";

/// Applies the history's retention when this instance claims this period's turn.
async fn prune_if_due(state: AppState) {
    let config = &state.config().discovery;
    match state.store().claim_periodic(PRUNE_TASK, &config.instance, config.prune_every).await {
        Ok(true) => match crate::discovery::prune_history(&state).await {
            Ok(pruned) => tracing::debug!(?pruned, "applied the history's retention"),
            Err(e) => tracing::warn!(error = %e.message, "failed to apply the history's retention"),
        },
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "failed to claim the history's retention"),
    }
}

/// One claimed run: discovery under a timeout while the lease is renewed; then the run's record
/// and the source's next due time.
async fn run_one(state: AppState, claimed: ClaimedDiscovery, mut stopped: watch::Receiver<bool>) {
    let config = &state.config().discovery;
    let interval_ms = claimed
        .interval_ms
        .unwrap_or_else(|| i64::try_from(config.default_interval.as_millis()).unwrap_or(i64::MAX))
        .max(1);
    let renew = renew_lease(&state, &claimed);
    let work = tokio::time::timeout(config.run_timeout, discover_and_store(&state, &claimed.source));
    let result = tokio::select! {
        done = work => match done {
            Ok(Ok(found)) => found.result(),
            Ok(Err((stage, e))) => failed(stage, e.message.clone()),
            Err(_) => failed("timeout", format!("discovery took longer than {} s", config.run_timeout.as_secs())),
        },
        () = renew => {
            // Another instance holds the source now (this one could not renew in time); it
            // records this run.
            tracing::warn!(source = %claimed.source, run = %claimed.run, "lost the lease of a running discovery");
            return;
        }
        _ = stopped.wait_for(|s| *s) => RunResult {
            outcome: RunOutcome::Cancelled,
            stage: Some("scheduler".into()),
            message: Some("the instance running it was stopped".into()),
            changed: None,
            relations: None,
        },
    };
    let next = match result.outcome {
        RunOutcome::Ok => NextDue::Interval { interval_ms },
        RunOutcome::Cancelled => NextDue::After { delay_ms: 0 },
        RunOutcome::Failed => NextDue::After { delay_ms: backoff(config.first_backoff, claimed.failures, interval_ms) },
    };
    state.metrics().discovery(result.outcome);
    if let (RunOutcome::Failed, Some(stage), Some(message)) = (result.outcome, &result.stage, &result.message) {
        let failures = claimed.failures.saturating_add(1);
        if let Err(e) = crate::alerts::after_failure(&state, &claimed.source, failures, stage, message).await {
            tracing::warn!(source = %claimed.source, error = %e, "failed to raise a discovery alert");
        }
    }
    match state.store().complete_discovery(&claimed, &config.instance, &result, next).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(source = %claimed.source, run = %claimed.run, "a discovery ended after its lease"),
        Err(e) => {
            tracing::warn!(source = %claimed.source, run = %claimed.run, error = %e, "failed to record a discovery")
        }
    }
}

fn failed(stage: &str, message: String) -> RunResult {
    RunResult {
        outcome: RunOutcome::Failed,
        stage: Some(stage.into()),
        message: Some(message),
        changed: None,
        relations: None,
    }
}

/// Renews the lease every third of its length; completes when it can no longer be renewed.
async fn renew_lease(state: &AppState, claimed: &ClaimedDiscovery) {
    let config = &state.config().discovery;
    let every = (config.lease / 3).max(Duration::from_millis(10));
    loop {
        tokio::time::sleep(every).await;
        match state.store().renew_discovery_lease(claimed, &config.instance, config.lease).await {
            Ok(true) => {}
            Ok(false) => return,
            // A store that cannot be reached now may be back before the lease ends.
            Err(e) => tracing::warn!(source = %claimed.source, error = %e, "failed to renew a lease"),
        }
    }
}

/// `first × 2^failures`, at most the interval.
fn backoff(first: Duration, failures: u32, interval_ms: i64) -> i64 {
    let first = i64::try_from(first.as_millis()).unwrap_or(i64::MAX).max(1);
    first.saturating_mul(1i64 << failures.min(40)).min(interval_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_the_interval() {
        let first = Duration::from_secs(10);
        let got: Vec<i64> = (0..7).map(|f| backoff(first, f, 300_000)).collect();
        assert_eq!(got, [10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000]);
        assert_eq!(backoff(first, u32::MAX, 300_000), 300_000);
    }
}
