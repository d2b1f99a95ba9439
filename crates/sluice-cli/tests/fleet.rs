//! Several `sluice serve` processes on one PostgreSQL store: each due source is discovered by
//! exactly one instance per interval, a token made once works on every instance, and an instance
//! killed (SIGKILL) in the middle of a run loses its source to another once its lease expires,
//! within one interval. The instances run with the hidden schedule flags of `sluice serve` so an
//! interval lasts seconds.
//!
//! The store keeps consecutive unchanged runs as one record, so the runs themselves are counted
//! from each instance's log: one line per finished run (`SLUICE_LOG=sluice::discovery_run=debug`),
//! checked against the store's records.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice_store::{DiscoveryRun, KeyConfig, MasterKey, RunOutcome, Store};
use sluice_testkit::{Cluster, SluiceServe};

/// The interval of every source here, and the lease: an instance that dies loses its sources
/// after the lease, well within one interval.
const INTERVAL: Duration = Duration::from_secs(4);
const LEASE: Duration = Duration::from_millis(1500);
const PASSWORD: &str = "fleet-reader-pw";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime")
}

/// A cluster holding the source databases, each with a couple of tables readable by the login
/// `reader`, and another holding the store (the service refuses sources on its store's server).
struct Fleet {
    cluster: Cluster,
    _store_cluster: Cluster,
    url: String,
    key: String,
    dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
}

impl Fleet {
    /// `None` on a server below PostgreSQL 12, after checking that the store is refused there.
    fn new(databases: &[&str]) -> Option<Fleet> {
        let store_cluster = Cluster::start_default().expect("store cluster");
        store_cluster.create_database("sluice_store").expect("store database");
        let url = store_cluster.superuser_url("sluice_store");
        let key = MasterKey::generate().expect("key").to_base64().to_string();
        if store_cluster.version_num().expect("version") < 120_000 {
            let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
                .env("SLUICE_MASTER_KEY", &key)
                .args(["token", "create", "--name", "fleet", "--role", "admin", "--store", &url])
                .output()
                .expect("run");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{stderr}");
            assert!(stderr.contains("PostgreSQL 12 or newer is needed"), "{stderr}");
            return None;
        }
        let cluster = Cluster::start_default().expect("cluster");
        cluster.create_login("reader", PASSWORD).expect("login");
        for db in databases {
            cluster.create_database(db).expect("database");
            cluster
                .psql(
                    db,
                    "CREATE TABLE public.orders (id int PRIMARY KEY, total numeric);
                     CREATE TABLE public.customers (id int PRIMARY KEY, name text);
                     GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader;",
                )
                .expect("fixture");
        }
        Some(Fleet {
            cluster,
            _store_cluster: store_cluster,
            url,
            key,
            dir: tempfile::tempdir().expect("dir"),
            rt: runtime(),
        })
    }

    fn sluice(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
        c.env("SLUICE_MASTER_KEY", &self.key);
        c
    }

    /// An administrator's token, made offline in the shared store.
    fn admin_token(&self) -> String {
        let out = self
            .sluice()
            .args(["token", "create", "--name", "fleet", "--role", "admin", "--store", &self.url])
            .output()
            .expect("run");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8").lines().last().expect("a line").to_string()
    }

    /// One `sluice serve` on the shared store, up to its "listening on" line.
    fn serve(&self) -> Instance {
        let mut command = self.sluice();
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--store", &self.url, "--data-dir"])
            .arg(self.dir.path().join("unused"))
            .args(["--discovery-interval-ms", &INTERVAL.as_millis().to_string()])
            .args(["--discovery-lease-ms", &LEASE.as_millis().to_string()])
            .args(["--discovery-poll-ms", "100"])
            .env("SLUICE_LOG", format!("{}=debug", sluice_server::RUN_LOG_TARGET));
        Instance(SluiceServe::start(command).expect("sluice serve"))
    }

    fn store(&self) -> Store {
        let key = MasterKey::from_base64(&self.key).expect("key");
        self.rt.block_on(Store::open(&self.url, KeyConfig::Key(key))).expect("store")
    }
}

/// A `sluice serve` of the fleet (killed on drop, so a failing test leaves none running).
struct Instance(SluiceServe);

impl Instance {
    fn pid(&self) -> u32 {
        self.0.pid()
    }

    /// Whether `instance` (a name from a lease or a run) is this process's: names carry the pid.
    fn is(&self, instance: Option<&str>) -> bool {
        instance.is_some_and(|i| i.contains(&format!("-{}-", self.pid())))
    }

    fn call(&self, method: &str, path: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
        let mut stream = TcpStream::connect(self.0.addr()).expect("connect");
        let body = body.map(Value::to_string).unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.0.addr(),
            body.len()
        )
        .expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    fn add_source(&self, token: &str, id: &str, port: u16, database: &str) {
        let form = json!({
            "id": id, "name": id, "network": "direct", "host": "127.0.0.1", "port": port,
            "database": database, "user": "reader", "password": PASSWORD, "sslmode": "disable",
        });
        let (status, body) = self.call("POST", "/api/v1/sources", token, Some(&form));
        assert_eq!(status, 201, "{body}");
    }

    /// Stops it with SIGTERM; the runs its log says it finished.
    fn stop(mut self) -> Vec<Logged> {
        let (status, log) = self.0.terminate().expect("SIGTERM");
        assert!(status.success(), "{status}: {log:?}");
        logged(&log)
    }
}

/// A finished run as an instance's log line tells it.
#[derive(Debug, Clone)]
struct Logged {
    source: String,
    run: i64,
    record: i64,
    reason: String,
    outcome: String,
    changed: bool,
    started_at: i64,
    finished_at: Option<i64>,
    instance: String,
    held: bool,
}

/// The run lines of a log (`… sluice::discovery_run: a discovery run finished source=… run=…`).
fn logged(log: &[String]) -> Vec<Logged> {
    let marker = format!("{}:", sluice_server::RUN_LOG_TARGET);
    log.iter()
        .filter(|line| line.contains(&marker))
        .map(|line| {
            let fields: std::collections::HashMap<&str, &str> = line
                .split_whitespace()
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k, v.trim_matches('"')))
                .collect();
            let text = |k: &str| fields.get(k).unwrap_or_else(|| panic!("no {k} in {line}")).to_string();
            let number = |k: &str| text(k).parse::<i64>().unwrap_or_else(|e| panic!("{k} in {line}: {e}"));
            Logged {
                source: text("source"),
                run: number("run"),
                record: number("record"),
                reason: text("reason"),
                outcome: text("outcome"),
                changed: text("changed") == "true",
                started_at: number("started_at"),
                finished_at: fields.contains_key("finished_at").then(|| number("finished_at")),
                instance: text("instance"),
                held: text("held") == "true",
            }
        })
        .collect()
}

impl Fleet {
    /// A source's runs, oldest first.
    fn runs(&self, store: &Store, id: &str) -> Vec<DiscoveryRun> {
        let mut runs = self.rt.block_on(store.discovery_runs(&id.parse().expect("id"), 1000)).expect("runs");
        runs.sort_by_key(|r| r.id);
        runs
    }
}

/// Polls `check` every 50 ms until it answers `Some`, or fails after `within`.
fn wait_for<T>(within: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_instances_discover_each_source_once_per_interval_and_none_is_missed() {
    let Some(fleet) = Fleet::new(&["north", "south", "east"]) else {
        return; // a store below PostgreSQL 12 is refused, as Fleet::new checked
    };
    let token = fleet.admin_token();
    let (a, b) = (fleet.serve(), fleet.serve());
    // Several sources on each database.
    let sources: Vec<(String, &str)> =
        ["north", "south", "east"].iter().flat_map(|db| (1..=2).map(move |i| (format!("{db}-{i}"), *db))).collect();
    for (i, (id, db)) in sources.iter().enumerate() {
        let on = if i % 2 == 0 { &a } else { &b };
        on.add_source(&token, id, fleet.cluster.port(), db);
    }
    // Stateless instances: what one saved, the other serves, to the same token.
    let (status, listed) = b.call("GET", "/api/v1/sources", &token, None);
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        listed.as_array().map(Vec::len).or_else(|| listed["sources"].as_array().map(Vec::len)),
        Some(6),
        "{listed}"
    );

    // Each source's first run (when saved) and five more, on the interval, as the store counts
    // them (its records of unchanged runs stand for several).
    let store = fleet.store();
    const RUNS: i64 = 6;
    let recorded = |id: &str| -> i64 {
        fleet.runs(&store, id).iter().filter(|r| r.outcome == Some(RunOutcome::Ok)).map(|r| r.runs).sum()
    };
    wait_for(INTERVAL * 10, "six finished runs of every source", || {
        sources.iter().all(|(id, _)| recorded(id) >= RUNS).then_some(())
    });
    let (pid_a, pid_b) = (a.pid(), b.pid());
    let (log_a, log_b) = (a.stop(), b.stop());

    // Every run from the instances' own logs, each attributed to the process that printed it.
    let interval = i64::try_from(INTERVAL.as_millis()).expect("ms");
    let (by_a, by_b) = (log_a.len(), log_b.len());
    for (log, pid) in [(&log_a, pid_a), (&log_b, pid_b)] {
        for r in log {
            assert!(r.instance.contains(&format!("-{pid}-")), "a run logged by {pid} names another instance: {r:?}");
            assert!(r.held, "a run completed after its lease: {r:?}");
            assert_eq!(r.reason, "schedule", "{r:?}");
        }
    }
    for (id, _) in &sources {
        let mut runs: Vec<&Logged> = log_a.iter().chain(&log_b).filter(|r| &r.source == id).collect();
        runs.sort_by_key(|r| r.started_at);
        // Runs still going when the instances stopped end cancelled: only the last one may.
        if runs.last().is_some_and(|r| r.outcome == "cancelled") {
            runs.pop();
        }
        assert!(
            runs.len() >= RUNS as usize,
            "{id}: {} runs logged, the store counted {RUNS} or more: {runs:?}",
            runs.len()
        );
        for r in &runs {
            assert_eq!(r.outcome, "ok", "{id}: {r:?}");
        }
        // Nothing changed after the first run: no snapshot stored again.
        for r in runs.iter().skip(1) {
            assert!(!r.changed, "{id}: an unchanged catalog stored again: {r:?}");
        }
        for pair in runs.windows(2) {
            let (before, after) = (pair[0], pair[1]);
            let gap = after.started_at - before.started_at;
            // Never two runs at once, nor two in one interval: a second claim of the same due
            // time would start within a poll or two (100 ms each) of the first one's end. (The
            // grid is fixed: a run that started late on a loaded machine may be followed by one
            // on time less than half an interval after it, which is no double.)
            assert!(after.started_at >= before.finished_at.expect("finished"), "{id}: overlapping runs {pair:?}");
            assert!(gap >= interval / 4, "{id}: discovered twice in one interval ({gap} ms apart): {pair:?}");
            // ...and no interval skipped (a missed due time would leave a gap of two).
            assert!(gap < interval * 3 / 2, "{id}: an interval was missed ({gap} ms apart): {pair:?}");
        }
        // The store's records account for every run logged: the first (it stored the catalog),
        // the second, and one record the later unchanged runs were folded into.
        let records: Vec<DiscoveryRun> =
            fleet.runs(&store, id).into_iter().filter(|r| r.outcome == Some(RunOutcome::Ok)).collect();
        let counted: i64 = records.iter().map(|r| r.runs).sum();
        assert_eq!(counted, runs.len() as i64, "{id}: the store's records {records:?} and the logged runs {runs:?}");
        assert_eq!(
            records.iter().map(|r| r.id.0).collect::<Vec<_>>(),
            [runs[0].run, runs[1].run],
            "{id}: unchanged runs not folded into one record: {records:?}"
        );
        assert!(runs.iter().skip(2).all(|r| r.record == runs[1].run), "{id}: {runs:?}");
    }
    // Both instances took part (each polls every 100 ms for some 30 claims).
    assert!(by_a > 0 && by_b > 0, "runs by the first instance: {by_a}, by the second: {by_b}");
}

#[test]
fn an_instance_killed_mid_run_loses_its_source_to_another_within_one_interval() {
    let Some(fleet) = Fleet::new(&["slow"]) else {
        return; // a store below PostgreSQL 12 is refused, as Fleet::new checked
    };
    let token = fleet.admin_token();
    let instances = [fleet.serve(), fleet.serve()];
    instances[0].add_source(&token, "slow", fleet.cluster.port(), "slow");
    let store = fleet.store();
    wait_for(INTERVAL * 3, "the first run", || {
        fleet.runs(&store, "slow").iter().any(|r| r.outcome == Some(RunOutcome::Ok)).then_some(())
    });

    // The next run waits: discovery reads pg_description, which the test now holds locked.
    let rt = &fleet.rt;
    let holder = rt.block_on(async {
        let url = fleet.cluster.superuser_url("slow");
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(conn);
        client
            .batch_execute("BEGIN; LOCK TABLE pg_catalog.pg_description IN ACCESS EXCLUSIVE MODE")
            .await
            .expect("lock");
        client
    });
    let waiting = |client: &tokio_postgres::Client| -> bool {
        let sql =
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'pg_catalog.pg_description'::regclass";
        let n: i64 = rt.block_on(client.query_one(sql, &[])).expect("pg_locks").get(0);
        n > 0
    };
    // Whichever instance claimed it is the victim, killed while its run waits on the lock.
    let (victim, run) = wait_for(INTERVAL * 3, "a run waiting on the lock", || {
        let schedule = rt.block_on(store.discovery_schedule(&"slow".parse().expect("id"))).expect("schedule");
        let holder_of = instances.iter().position(|i| i.is(schedule.leased_by.as_deref()))?;
        let running = fleet.runs(&store, "slow").into_iter().rev().find(|r| r.finished_at.is_none())?;
        waiting(&holder).then_some((holder_of, running))
    });
    let [first, second] = instances;
    let (mut victim, survivor) = if victim == 0 { (first, second) } else { (second, first) };
    let (status, victim_log) = victim.0.kill().expect("SIGKILL");
    let killed_at = Instant::now();
    assert_eq!(status.signal(), Some(9));

    // The survivor claims the source once the lease expires, and records the dead run as failed.
    let taken = wait_for(INTERVAL * 2, "the survivor's claim", || {
        let schedule = rt.block_on(store.discovery_schedule(&"slow".parse().expect("id"))).expect("schedule");
        survivor.is(schedule.leased_by.as_deref()).then(|| killed_at.elapsed())
    });
    assert!(taken <= INTERVAL, "taken over {taken:?} after the kill, more than one interval");
    let dead = fleet.runs(&store, "slow").into_iter().find(|r| r.id == run.id).expect("the dead run");
    assert_eq!(dead.outcome, Some(RunOutcome::Failed), "{dead:?}");
    assert_eq!(dead.stage.as_deref(), Some("scheduler"), "{dead:?}");
    assert!(victim.is(dead.instance.as_deref()), "{dead:?}");

    // With the lock released the survivor's discovery goes through.
    rt.block_on(holder.batch_execute("COMMIT")).expect("unlock");
    wait_for(INTERVAL * 4, "a successful run by the survivor", || {
        fleet
            .runs(&store, "slow")
            .iter()
            .any(|r| r.id > run.id && r.outcome == Some(RunOutcome::Ok) && survivor.is(r.instance.as_deref()))
            .then_some(())
    });
    // The logs agree: the victim never finished the dead run; the survivor recorded that run as
    // failed only (it logs the runs it ran) and finished one of its own after it.
    let survived = survivor.stop();
    assert!(logged(&victim_log).iter().all(|r| r.run != run.id.0), "{victim_log:?}");
    assert!(survived.iter().all(|r| r.run != run.id.0), "{survived:?}");
    assert!(
        survived.iter().any(|r| r.source == "slow" && r.run > run.id.0 && r.outcome == "ok" && r.held),
        "{survived:?}"
    );
}
