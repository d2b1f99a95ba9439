//! The discovery scheduler: each source is discovered when it is saved, then on its interval,
//! and when someone asks (`POST …/refresh` queues a run). Every instance sharing the store runs
//! one; they coordinate only through the store's schedule, where a due source is claimed under
//! a lease by exactly one instance ([`sluice_store::Store::claim_due_discoveries`]), so a source
//! is discovered once per interval however many instances run.
//!
//! The loop claims no more sources than it has free slots ([`DiscoveryConfig::concurrency`]), and
//! the runs in flight share a memory budget ([`DiscoveryConfig::memory_budget`]): each run first
//! reserves its estimate ([`memory_estimate`], from the relations its source's last run found)
//! and only then connects, so the catalogs held at once stay within the budget. Each run
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

use sluice_store::{ClaimedDiscovery, Completion, NextDue, RunOutcome, RunResult};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::discovery::discover_and_store;
use crate::AppState;

/// How sources are discovered on schedule. [`Default`] is what `sluice serve` uses.
#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
    /// A source's interval unless it sets its own (the API accepts 60 s and more). Default 5
    /// minutes.
    pub default_interval: Duration,
    /// Discoveries this instance runs at once (default 4), whatever their size.
    pub concurrency: usize,
    /// The memory the discoveries in flight may hold together (default 1 GiB). A run holds its
    /// catalog and, when it changed, the previous one read back to compare, plus their
    /// compressed JSON: [`memory_estimate`] reserves
    /// [`BYTES_PER_RELATION`] per relation its source's last run found (10,000 relations for a
    /// source never discovered). A run waits, its lease held, until its estimate fits; one larger
    /// than the whole budget runs alone.
    pub memory_budget: u64,
    /// The longest one run may take (default 2 minutes); past it the run fails at the `timeout`
    /// stage and the source backs off.
    pub run_timeout: Duration,
    /// How long a claimed source stays leased without renewal (default 20 s, renewed every
    /// third of it while the run lasts, however long it takes): how long a source waits when the
    /// instance running it dies, so well within the shortest interval (60 s). A run whose
    /// renewals all fail for two thirds of it (the store unreachable that long) loses its
    /// source to another instance.
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
            memory_budget: 1 << 30,
            run_timeout: Duration::from_secs(120),
            lease: Duration::from_secs(20),
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

/// What one run may hold at its peak, per relation of its catalog: the new catalog, its
/// compressed JSON, and one schema of the previous snapshot at a time, read back to compare.
/// `bench/catalog.sh` with `SERVE=1` measured a service peaking at 257 MiB while it discovered a
/// changed catalog of 101,000 relations of a dozen columns (228 MiB for the first discovery; the
/// idle service holds about 21 MiB): 2.4 KiB per relation, the allocator's retained memory
/// included. The estimate keeps a quarter more than that.
pub const BYTES_PER_RELATION: u64 = 3 * 1024;

/// The estimate for a source never discovered (or whose runs all failed).
const UNKNOWN_RELATIONS: u64 = 10_000;

/// The memory a run of a source whose last successful run found `relations` reserves, in MiB
/// (the budget's unit), at least 1 and at most the whole budget.
pub fn memory_estimate(relations: Option<i64>, budget_mib: u32) -> u32 {
    let relations = relations.and_then(|r| u64::try_from(r).ok()).unwrap_or(UNKNOWN_RELATIONS);
    let mib = relations.saturating_mul(BYTES_PER_RELATION).div_ceil(1 << 20);
    u32::try_from(mib).unwrap_or(u32::MAX).clamp(1, budget_mib.max(1))
}

fn budget_mib(config: &DiscoveryConfig) -> u32 {
    u32::try_from(config.memory_budget >> 20).unwrap_or(u32::MAX).max(1)
}

/// The memory budget the runs in flight share, counted in MiB. A reservation waits until its
/// estimate fits (in order: a large run waiting is not overtaken by smaller ones, so it is never
/// starved) and is given back when dropped.
#[derive(Clone)]
struct MemoryBudget {
    mib: u32,
    free: Arc<Semaphore>,
}

impl MemoryBudget {
    fn new(config: &DiscoveryConfig) -> MemoryBudget {
        let mib = budget_mib(config);
        MemoryBudget { mib, free: Arc::new(Semaphore::new(mib as usize)) }
    }

    /// Whether any of the budget is free: while none is, the loop claims nothing (a claimed run
    /// waiting for memory holds a lease another instance could have used).
    fn has_room(&self) -> bool {
        self.free.available_permits() > 0
    }

    /// Reserves the estimate for a source whose last run found `relations`; the reservation
    /// lasts as long as the permit. `None` only if the budget were closed, which it never is.
    async fn reserve(&self, relations: Option<i64>) -> Option<OwnedSemaphorePermit> {
        self.free.clone().acquire_many_owned(memory_estimate(relations, self.mib)).await.ok()
    }
}

async fn run(state: AppState, mut stopped: watch::Receiver<bool>) {
    let config = state.config().discovery.clone();
    let cap = config.concurrency.max(1);
    let wake = state.wake_handle();
    let memory = MemoryBudget::new(&config);
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
        let free = if memory.has_room() { cap.saturating_sub(runs.len()) } else { 0 };
        if free > 0 {
            let limit = u32::try_from(free).unwrap_or(u32::MAX);
            match state.store().claim_due_discoveries(&config.instance, config.lease, limit).await {
                Ok(claimed) => {
                    for c in claimed {
                        runs.spawn(run_one(state.clone(), c, memory.clone(), stopped.clone()));
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
async fn run_one(state: AppState, claimed: ClaimedDiscovery, memory: MemoryBudget, mut stopped: watch::Receiver<bool>) {
    let config = &state.config().discovery;
    let default_interval_ms = i64::try_from(config.default_interval.as_millis()).unwrap_or(i64::MAX).max(1);
    // The interval as claimed caps the backoff; the store caps it again by the interval stored
    // when the run completes, and schedules a success on that one.
    let interval_ms = claimed.interval_ms.unwrap_or(default_interval_ms).max(1);
    // A task of its own, so a stretch of the discovery that does not yield (a large catalog
    // assembled) never holds up a renewal.
    let mut renewal = Renewal(tokio::spawn(renew_lease(state.clone(), claimed.clone())));
    let work = async {
        // Held until the run ends.
        let _reserved = memory.reserve(last_relations(&state, &claimed).await).await;
        tokio::time::timeout(config.run_timeout, discover_and_store(&state, &claimed.source)).await
    };
    let result = tokio::select! {
        done = work => match done {
            Ok(Ok(found)) => found.result(),
            Ok(Err((stage, e))) => failed(stage, e.message.clone()),
            Err(_) => failed("timeout", format!("discovery took longer than {} s", config.run_timeout.as_secs())),
        },
        _ = &mut renewal.0 => {
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
    drop(renewal);
    let next = match result.outcome {
        RunOutcome::Ok => NextDue::Interval { default_interval_ms },
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
        Ok(done) => {
            if !done.held {
                tracing::warn!(source = %claimed.source, run = %claimed.run, "a discovery ended after its lease");
            }
            log_finished(&claimed, &config.instance, &result, &done);
        }
        Err(e) => {
            tracing::warn!(source = %claimed.source, run = %claimed.run, error = %e, "failed to record a discovery")
        }
    }
}

/// The log target of [`log_finished`]'s lines: `SLUICE_LOG=sluice::discovery_run=debug` shows
/// them alone.
pub const RUN_LOG_TARGET: &str = "sluice::discovery_run";

/// One line per run this instance finished and recorded, at debug level on [`RUN_LOG_TARGET`]:
/// a record of every run that does not depend on the store's records, where consecutive
/// unchanged runs share one. Fields: `source`, `run` (its id), `record` (the record it is kept
/// in: its own, or the one it was folded into), `reason`, `outcome`, `changed`, `started_at` and
/// `finished_at` (the store's clock, in ms; `finished_at` is absent when the instance that took
/// the source over had recorded the run already), `instance`, `held` (whether its lease was
/// still held).
fn log_finished(claimed: &ClaimedDiscovery, instance: &str, result: &RunResult, done: &Completion) {
    tracing::debug!(
        target: RUN_LOG_TARGET,
        source = %claimed.source,
        run = claimed.run.0,
        record = done.record.0,
        reason = %claimed.reason.as_str(),
        outcome = %result.outcome.as_str(),
        changed = result.changed.unwrap_or(false),
        started_at = claimed.started_at,
        finished_at = done.finished_at,
        instance = %instance,
        held = done.held,
        "a discovery run finished"
    );
}

/// How many relations the source's last successful run found (among its recent runs).
async fn last_relations(state: &AppState, claimed: &ClaimedDiscovery) -> Option<i64> {
    match state.store().discovery_runs(&claimed.source, 20).await {
        Ok(runs) => runs.iter().find_map(|r| r.relations),
        Err(e) => {
            tracing::warn!(source = %claimed.source, error = %e, "failed to read a source's last runs");
            None
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

/// A run's lease renewal ([`renew_lease`]), stopped when the run ends.
struct Renewal(tokio::task::JoinHandle<()>);

impl Drop for Renewal {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Renews the lease every third of its length; completes when it can no longer be renewed.
async fn renew_lease(state: AppState, claimed: ClaimedDiscovery) {
    let config = &state.config().discovery;
    let every = (config.lease / 3).max(Duration::from_millis(10));
    loop {
        tokio::time::sleep(every).await;
        match state.store().renew_discovery_lease(&claimed, &config.instance, config.lease).await {
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
    fn a_run_reserves_its_last_size_within_the_budget() {
        // 101,000 relations (the 100,000-table benchmark) at 3 KiB each: 296 MiB.
        assert_eq!(memory_estimate(Some(101_000), 1024), 296);
        assert_eq!(memory_estimate(Some(0), 1024), 1, "at least 1 MiB");
        assert_eq!(memory_estimate(None, 1024), 30, "an unknown source counts as 10,000 relations");
        assert_eq!(memory_estimate(Some(10_000_000), 1024), 1024, "a source above the budget runs alone");
        assert_eq!(memory_estimate(Some(-5), 1024), 30, "a nonsense count is unknown");
        assert_eq!(memory_estimate(Some(i64::MAX), 0), 1);
        let config = DiscoveryConfig { memory_budget: 1 << 30, ..DiscoveryConfig::default() };
        assert_eq!(budget_mib(&config), 1024);
        assert_eq!(budget_mib(&DiscoveryConfig { memory_budget: 5, ..config }), 1, "at least 1 MiB");
    }

    #[test]
    fn a_run_that_does_not_fit_waits_until_the_budget_frees() {
        use std::future::Future;
        use std::task::{Context, Poll, Waker};
        let mut cx = Context::from_waker(Waker::noop());
        // 300 MiB: the 100,000-table source (296 MiB) fits, a 10,000-relation one (30) beside it
        // does not.
        let budget = MemoryBudget::new(&DiscoveryConfig { memory_budget: 300 << 20, ..DiscoveryConfig::default() });
        let mut big = std::pin::pin!(budget.reserve(Some(101_000)));
        let Poll::Ready(Some(big)) = big.as_mut().poll(&mut cx) else { panic!("the first run fits") };
        assert!(budget.has_room(), "4 MiB are left");
        let mut small = std::pin::pin!(budget.reserve(Some(10_000)));
        assert!(small.as_mut().poll(&mut cx).is_pending(), "30 MiB do not fit beside 296");
        let mut tiny = std::pin::pin!(budget.reserve(Some(100)));
        assert!(tiny.as_mut().poll(&mut cx).is_pending(), "a later run does not overtake a waiting one");
        drop(big);
        let Poll::Ready(Some(small)) = small.as_mut().poll(&mut cx) else { panic!("runs once the budget frees") };
        let Poll::Ready(Some(tiny)) = tiny.as_mut().poll(&mut cx) else { panic!("and the next one too") };
        // A source larger than the whole budget runs alone: it waits for every other to end.
        let mut huge = std::pin::pin!(budget.reserve(Some(10_000_000)));
        assert!(huge.as_mut().poll(&mut cx).is_pending());
        drop(small);
        assert!(huge.as_mut().poll(&mut cx).is_pending(), "one run still holds 1 MiB");
        drop(tiny);
        let Poll::Ready(Some(huge)) = huge.as_mut().poll(&mut cx) else { panic!("runs alone") };
        assert!(!budget.has_room(), "nothing is claimed while it runs");
        drop(huge);
        assert!(budget.has_room());
    }

    #[test]
    fn a_dead_instances_sources_are_taken_over_within_the_shortest_interval() {
        let config = DiscoveryConfig::default();
        let shortest = Duration::from_secs(crate::routes::sources::MIN_DISCOVERY_INTERVAL_SECS);
        // The run an instance dies in holds its source until the lease ends (from the run's start
        // or its last renewal, at most the death), and the next claim comes up to a poll later.
        assert!(config.lease + config.poll < shortest, "{:?} + {:?} against {shortest:?}", config.lease, config.poll);
        // And a run renews two more times before its lease could end between two renewals.
        assert!(config.lease / 3 >= config.poll, "a renewal every {:?}", config.lease / 3);
    }

    #[test]
    fn the_backoff_doubles_up_to_the_interval() {
        let first = Duration::from_secs(10);
        let got: Vec<i64> = (0..7).map(|f| backoff(first, f, 300_000)).collect();
        assert_eq!(got, [10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000]);
        assert_eq!(backoff(first, u32::MAX, 300_000), 300_000);
    }
}
