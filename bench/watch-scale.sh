#!/usr/bin/env bash
# The discovery scheduler at scale, against real databases:
#
#  1. one `sluice serve` on a PostgreSQL store with SOURCES sources at a 1-minute interval
#     (DATABASES databases of TABLES tables each, so several sources per database), watched for
#     INTERVALS intervals once every source had its first run: whether every source was
#     discovered once per interval (no double, no miss), the service's CPU share and peak RSS,
#     and the store's growth while nothing changes (new snapshots, bytes of run records);
#  2. two instances on the same store and load, for INTERVALS2 intervals: no double, no miss,
#     and how the runs split between them;
#  3. the second instance killed (SIGKILL) in the middle of runs, then the survivor alone for
#     KILL_INTERVALS intervals: how soon it finished a run of each source the dead instance held
#     under a lease with its run in flight, and for every source the gap between its last run
#     before the kill and the survivor's first after it, against one interval + the lease + two
#     polls (122 s; why in the results); no double, no miss. The kill comes once the store shows
#     the victim holding a source with its run in flight: the victim is stopped (SIGSTOP), the
#     store read again (continued and waited for again if its runs ended meanwhile), then killed,
#     so "at the kill" is one instant of the store. The script ends with a FAIL line and exit
#     status 1 (after writing the results) if a source was not run by the survivor within that
#     bound;
#  4. with the survivor alone, the time from a CREATE TABLE on a source to the table in the API:
#     through the refresh hook (POST …/refresh, then GET …/catalog polled), and on schedule (from
#     the run records: the first run that stored the change, for each source of that database).
#
# The store keeps consecutive unchanged runs of a source as one record, so the runs are counted
# from the instances' logs instead: each prints one line per finished run
# (SLUICE_LOG=sluice::discovery_run=debug), loaded into a table of the store's cluster beside
# (not in) the store's database.
#
#   bench/watch-scale.sh
#
# Uses the peer kit in ../shared/bench (or $BENCH_KIT): two throwaway clusters (pg-up.sh), one
# for the sources (the catalog from make-catalog.sql in each database) and one for the store
# (the service refuses sources on its store's server).
#
# Environment (all optional):
#   SOURCES=500 DATABASES=10 TABLES=200   the load
#   INTERVALS=10 INTERVALS2=10            minutes watched with one, then two instances
#   KILL_INTERVALS=2                      minutes watched with the survivor alone after the kill
#   HOOK_RUNS=5                           CREATE TABLE + refresh measurements
#   SETTLE=1                              intervals waited after the first runs before watching
#                                         (each source's first unchanged run keeps a record of its own)
#   SLUICE_BIN=...   a prebuilt binary (default: cargo build --release -p sluice-cli)
#   OUT_DIR=...      results directory (default bench/results)
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/serve-lib.sh"
command -v curl >/dev/null || die "curl is needed"

SOURCES=${SOURCES:-500}
DATABASES=${DATABASES:-10}
TABLES=${TABLES:-200}
INTERVALS=${INTERVALS:-10}
INTERVALS2=${INTERVALS2:-10}
KILL_INTERVALS=${KILL_INTERVALS:-2}
SETTLE=${SETTLE:-1}
HOOK_RUNS=${HOOK_RUNS:-5}
OUT_DIR=${OUT_DIR:-$repo/bench/results}
INTERVAL_MS=60000
# DiscoveryConfig's defaults (crates/sluice-server/src/scheduler.rs), which `sluice serve` keeps:
# a claimed source stays leased 20 s unless renewed (every third of it while its run lasts), and
# each instance asks the store for due sources every second.
LEASE_MS=20000
POLL_MS=1000
# A source's runs are one interval apart, each started up to a poll after it is due. The one an
# instance dies in leaves its source leased until one lease after the run started (or after its
# last renewal, at most the kill), and the survivor claims it up to a poll after that: so the
# gap from a source's last run before the kill to its next stays within this (runs here end long
# before their first renewal, a third of the lease in).
TAKEOVER_BOUND_MS=$(( INTERVAL_MS + LEASE_MS + 2 * POLL_MS ))
bindir=$(pg_bindir)
PSQL="$bindir/psql"

work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-watch.XXXXXX")
chmod 755 "$work"
cleanup() {
  serve_stop
  "$BENCH_DIR/pg-down.sh" "$work/src" --rm >/dev/null 2>&1 || true
  "$BENCH_DIR/pg-down.sh" "$work/store" --rm >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sluice_binary

ttl=$(( (INTERVALS + INTERVALS2 + KILL_INTERVALS + SETTLE + 20) * 60 + 600 ))
src_url=$(BENCH_PG_TTL=$ttl "$BENCH_DIR/pg-up.sh" "$work/src")
store_url=$(BENCH_PG_TTL=$ttl "$BENCH_DIR/pg-up.sh" "$work/store")
src_port=${src_url##*:}; src_port=${src_port%%/*}
sq() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$src_url" "$@"; }
# Each instance keeps one idle session per source it discovered: 2 x SOURCES on one server here.
sq -c "ALTER SYSTEM SET max_connections = $(( 2 * SOURCES + 100 ))" >/dev/null
as_pg "$bindir/pg_ctl" -D "$work/src" -w -t 60 restart -l "$work/src/server.log" >/dev/null
SRC_PID=$(head -1 "$work/src/postmaster.pid")
STORE_PID=$(head -1 "$work/store/postmaster.pid")
db_url() { printf '%s' "${src_url%/*}/$1"; }
log "creating $DATABASES databases of $TABLES tables"
for d in $(seq 1 "$DATABASES"); do
  name=$(printf 'src_%02d' "$d")
  sq -c "CREATE DATABASE $name" >/dev/null
  "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$(db_url "$name")" -v schemas=1 -v tables="$TABLES" -v views=0 \
    -f "$BENCH_DIR/make-catalog.sql" >/dev/null
done
"$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$store_url" -c "CREATE DATABASE sluice_store" >/dev/null
# The kit's clusters run without autovacuum; a store is a live server, where it runs: without it
# every folded run's old row version would stay, and the store's size would count them.
"$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$store_url" \
  -c "ALTER SYSTEM SET autovacuum = on" -c "SELECT pg_catalog.pg_reload_conf()" >/dev/null
STORE="${store_url%/*}/sluice_store"
st() { "$PSQL" -X -qtA -v ON_ERROR_STOP=1 -d "$STORE" "$@"; }
# The runs the instances logged, in the store cluster's `postgres` database.
lg() { "$PSQL" -X -qtA -v ON_ERROR_STOP=1 -d "$store_url" "$@"; }
lg -c "CREATE TABLE logged_runs (source_id text, run bigint, record bigint, reason text, outcome text,
         changed boolean, started_at bigint, finished_at bigint, instance text, held boolean)"
# Reloads logged_runs from every instance's log so far.
load_runs() {
  cat "$work"/serve-*.log | awk '/sluice::discovery_run:/ {
      delete f
      for (i = 1; i <= NF; i++) { k = index($i, "="); if (k) f[substr($i, 1, k - 1)] = substr($i, k + 1) }
      fin = ("finished_at" in f) ? f["finished_at"] : "\\N"
      printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f["source"], f["run"], f["record"], f["reason"],
        f["outcome"], f["changed"], f["started_at"], fin, f["instance"], f["held"]
    }' >"$work/runs.tsv"
  lg -c "TRUNCATE logged_runs" -c "\\copy logged_runs FROM '$work/runs.tsv'"
}
export SLUICE_LOG=sluice::discovery_run=debug

export SLUICE_MASTER_KEY
SLUICE_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
admin_token --store "$STORE"
now_ms() { date +%s%3N; }
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12+$13}'; }
hwm_mib() { awk '/VmHWM/{printf "%.0f", $2/1024}' "/proc/$1/status"; }
runs_bytes() { st -c "SELECT pg_total_relation_size('discovery_runs')"; }
snapshots() { st -c "SELECT count(*) FROM catalog_snapshots"; }

serve_start --store "$STORE"
API1=$API
log "registering $SOURCES sources (interval 60 s)"
for i in $(seq 1 "$SOURCES"); do
  db=$(printf 'src_%02d' $(( (i - 1) % DATABASES + 1 )))
  id=$(printf 's%03d' "$i")
  add_source "$id" "$db" "$src_port" ',"discovery_interval_secs":60'
done
log "waiting for every source's first run"
for _ in $(seq 600); do
  done_n=$(st -c "SELECT count(DISTINCT source_id) FROM discovery_runs WHERE state = 'finished'")
  [ "$done_n" -ge "$SOURCES" ] && break
  sleep 1
done
[ "$done_n" -ge "$SOURCES" ] || die "only $done_n of $SOURCES sources were discovered"
failed_first=$(st -c "SELECT count(*) FROM discovery_runs WHERE outcome <> 'ok'")

# What the logged runs of [t0, t1) say: runs, failures, doubles (two runs of a source under half
# an interval apart), misses (a gap of 1.5 intervals or more, or a window edge left uncovered),
# the per-source counts and the mean run time.
analyze() {
  local t0=$1 t1=$2
  load_runs
  lg -F ' ' -c "
    WITH r AS (
      SELECT source_id, started_at, finished_at, outcome, instance,
             started_at - lag(started_at) OVER (PARTITION BY source_id ORDER BY started_at) AS gap
      FROM logged_runs
      WHERE reason = 'schedule' AND started_at >= $t0 AND started_at < $t1),
    s AS (
      SELECT source_id, count(*) AS n, min(started_at) AS first, max(started_at) AS last FROM r GROUP BY 1)
    SELECT (SELECT count(*) FROM r),
           (SELECT count(*) FROM r WHERE outcome <> 'ok'),
           (SELECT count(*) FROM r WHERE gap < $INTERVAL_MS / 2),
           (SELECT count(*) FROM r WHERE gap >= $INTERVAL_MS * 3 / 2)
             + (SELECT count(*) FROM s WHERE first >= $t0 + $INTERVAL_MS * 3 / 2 OR last < $t1 - $INTERVAL_MS * 3 / 2)
             + ($SOURCES - (SELECT count(*) FROM s)),
           (SELECT min(n) FROM s), (SELECT max(n) FROM s),
           (SELECT round(avg(finished_at - started_at)) FROM r),
           (SELECT max(finished_at - started_at) FROM r)"
}
split() {
  lg -c "SELECT count(*) FROM logged_runs WHERE reason = 'schedule'
         AND started_at >= $1 AND started_at < $2 GROUP BY instance ORDER BY 1 DESC" | paste -sd/
}

# ---- 1. one instance -------------------------------------------------------------------------
log "settling for $SETTLE intervals"
sleep $(( SETTLE * 60 ))
log "watching one instance for $INTERVALS intervals"
uptime1=$(uptime)
t0=$(now_ms); c0=$(cpu_ticks "${SERVE_PIDS[0]}"); b0=$(runs_bytes); n0=$(snapshots)
r0=$(st -c "SELECT count(*) FROM discovery_runs")
sleep $(( INTERVALS * 60 ))
t1=$(now_ms); c1=$(cpu_ticks "${SERVE_PIDS[0]}"); b1=$(runs_bytes); n1=$(snapshots)
r1=$(st -c "SELECT count(*) FROM discovery_runs")
rss1=$(hwm_mib "${SERVE_PIDS[0]}")
sleep 10 # the runs started before t1 finish
read -r runs1 failed1 doubles1 misses1 minper1 maxper1 avgrun1 maxrun1 <<<"$(analyze "$t0" "$t1")"
wall1=$(( t1 - t0 ))
cpu1=$(awk -v c="$(( c1 - c0 ))" -v hz="$CLK_TCK" -v w="$wall1" 'BEGIN{printf "%.1f", 100 * c / hz / (w / 1000)}')
growth1=$(awk -v b="$(( b1 - b0 ))" -v w="$wall1" 'BEGIN{printf "%.2f", b / 1048576 * 3600000 / w}')
rows_h1=$(awk -v r="$(( r1 - r0 ))" -v w="$wall1" 'BEGIN{printf "%.0f", r * 3600000 / w}')
runs_h1=$(awk -v r="$runs1" -v w="$wall1" 'BEGIN{printf "%.0f", r * 3600000 / w}')
row_bytes=$(st -c "SELECT round(avg(pg_column_size(r.*))) FROM discovery_runs r")
conns1=$(sq -tAc "SELECT count(*) FROM pg_stat_activity WHERE datname LIKE 'src_%'")

# ---- 2. two instances ------------------------------------------------------------------------
log "watching two instances for $INTERVALS2 intervals"
serve_start --store "$STORE"
sleep 60 # the second instance joins the schedule
uptime2=$(uptime)
u0=$(now_ms)
sleep $(( INTERVALS2 * 60 ))
u1=$(now_ms)
sleep 10
read -r runs2 failed2 doubles2 misses2 minper2 maxper2 avgrun2 maxrun2 <<<"$(analyze "$u0" "$u1")"
split2=$(split "$u0" "$u1")
rss2a=$(hwm_mib "${SERVE_PIDS[0]}"); rss2b=$(hwm_mib "${SERVE_PIDS[1]}")
conns2=$(sq -tAc "SELECT count(*) FROM pg_stat_activity WHERE datname LIKE 'src_%'")

# ---- 3. one of two instances killed mid-run -------------------------------------------------
victim=${SERVE_PIDS[1]}
survivor=${SERVE_PIDS[0]}
# The condition that a lease or run is (column $1) the instance of pid $2: names carry the pid.
named() { printf "%s ~ '-%s-[0-9a-f]+\$'" "$1" "$2"; }
# The sources the victim holds with their run in flight (space-separated, sorted; empty if none).
held_mid_run() {
  st -c "SELECT coalesce(string_agg(s.source_id, ' ' ORDER BY s.source_id), '')
         FROM discovery_schedule s JOIN discovery_runs r ON r.id = s.run_id
         WHERE $(named s.leased_by "$victim") AND r.state = 'running'"
}
log "waiting for the second instance to be mid-run, then killing it (SIGKILL)"
held=
deadline=$(( $(now_ms) + 5 * INTERVAL_MS ))
while [ -z "$held" ] && [ "$(now_ms)" -lt "$deadline" ]; do
  # Waits in the store's server (a fresh snapshot per check) until it sees one, 10 s at most.
  st -c "DO \$\$ BEGIN
           FOR i IN 1..2000 LOOP
             EXIT WHEN EXISTS (SELECT FROM discovery_schedule s JOIN discovery_runs r ON r.id = s.run_id
                               WHERE $(named s.leased_by "$victim") AND r.state = 'running');
             PERFORM pg_sleep(0.005);
           END LOOP;
         END \$\$"
  k0=$(now_ms)
  kill -STOP "$victim"
  held=$(held_mid_run)
  [ -n "$held" ] || kill -CONT "$victim"
done
[ -n "$held" ] || die "the second instance held no source mid-run in 5 intervals"
kill -KILL "$victim"
wait "$victim" 2>/dev/null || true
SERVE_PIDS=("$survivor")
# What the store leaves leased to the dead instance is what it held at the kill.
held=$(held_mid_run)
held_n=$(wc -w <<<"$held")
log "killed; it held $held_n source(s) mid-run: ${held:--}"
log "watching the survivor alone for $KILL_INTERVALS intervals"
uptime3=$(uptime)
sleep $(( KILL_INTERVALS * 60 ))
k1=$(now_ms)
sleep 10
read -r runs3 failed3 doubles3 misses3 minper3 maxper3 avgrun3 maxrun3 <<<"$(analyze "$k0" "$k1")"
held_sql="string_to_array('$held', ' ')"
survivor_runs3=$(lg -c "SELECT count(*) FROM logged_runs WHERE reason = 'schedule' AND $(named instance "$survivor")
                        AND started_at >= $k0 AND started_at < $k1")
# The survivor's first finished run of each held source, in ms from the kill.
read -r took_n took_median took_max <<<"$(lg -F ' ' -c "
  SELECT count(*), coalesce(percentile_disc(0.5) WITHIN GROUP (ORDER BY t)::text, '-'), coalesce(max(t)::text, '-')
  FROM (SELECT min(finished_at) - $k0 AS t FROM logged_runs
        WHERE $(named instance "$survivor") AND started_at >= $k0 AND source_id = ANY ($held_sql)
        GROUP BY source_id) x")"
# Per source: its last run before the kill (any instance) and the survivor's first run after it.
gaps_sql="
  WITH b AS (SELECT source_id, max(started_at) AS last FROM logged_runs WHERE started_at < $k0 GROUP BY 1),
       a AS (SELECT source_id, min(started_at) AS first, min(finished_at) AS done FROM logged_runs
             WHERE started_at >= $k0 AND $(named instance "$survivor") GROUP BY 1)
  SELECT b.source_id, b.last, a.first, a.done, a.first - b.last AS gap, b.source_id = ANY ($held_sql) AS held
  FROM b LEFT JOIN a USING (source_id)"
read -r gap_max_held gap_max_other gap_over gap_none <<<"$(lg -F ' ' -c "
  SELECT coalesce(max(gap) FILTER (WHERE held)::text, '-'), coalesce(max(gap) FILTER (WHERE NOT held)::text, '-'),
         count(*) FILTER (WHERE gap > $TAKEOVER_BOUND_MS), count(*) FILTER (WHERE gap IS NULL)
  FROM ($gaps_sql) g")"
# The sources the victim finished last (as many as it runs at once).
victim_last=$(lg -c "SELECT coalesce(string_agg(source_id, ' '), '') FROM (
  SELECT source_id FROM logged_runs WHERE $(named instance "$victim") ORDER BY finished_at DESC LIMIT 4) x")
# Those, the held ones, and the 10 longest gaps over the bound, one table row each.
takeover_rows=$(lg -c "
  SELECT format('| %s | %s | %s | %s | %s | %s |', source_id,
                concat_ws(', ', CASE WHEN held THEN 'held, run in flight' END,
                          CASE WHEN ran_last THEN 'run last by the victim' END, CASE WHEN over THEN 'over the bound' END),
                $k0 - last, coalesce((first - $k0)::text, 'none'), coalesce((done - $k0)::text, 'none'),
                coalesce(gap::text, '-'))
  FROM (SELECT g.*, source_id = ANY (string_to_array('$victim_last', ' ')) AS ran_last,
               gap IS NULL OR gap > $TAKEOVER_BOUND_MS AS over,
               row_number() OVER (ORDER BY gap DESC NULLS FIRST) AS worst
        FROM ($gaps_sql) g) x
  WHERE held OR ran_last OR (over AND worst <= 10)
  ORDER BY held DESC, ran_last DESC, gap DESC NULLS FIRST, last DESC")
abandoned=$(st -c "SELECT coalesce(string_agg(source_id, ' ' ORDER BY source_id), '') FROM discovery_runs
                   WHERE $(named instance "$victim") AND outcome = 'failed' AND stage = 'scheduler'")
fails=()
[ "$held_n" -gt 0 ] || fails+=("the victim held no source mid-run at the kill")
[ "$took_n" -eq "$held_n" ] || fails+=("the survivor finished a run of $took_n of the $held_n sources the victim held")
[ "$gap_over" -eq 0 ] || fails+=("$gap_over source(s) waited more than $TAKEOVER_BOUND_MS ms from their last run before the kill to the survivor's first")
[ "$gap_none" -eq 0 ] || fails+=("$gap_none source(s) had no run by the survivor after the kill")

# ---- 4. CREATE TABLE to the API --------------------------------------------------------------
log "CREATE TABLE, then the refresh hook ($HOOK_RUNS times)"
hook=()
for k in $(seq 1 "$HOOK_RUNS"); do
  "$PSQL" -X -q -d "$(db_url src_01)" -c "CREATE TABLE public.hook_$k (id int)"
  h0=$(now_ms)
  api -o /dev/null -X POST "$API1/sources/s001/refresh"
  until api "$API1/sources/s001/catalog" | grep -q "\"hook_$k\""; do sleep 0.02; done
  hook+=($(( $(now_ms) - h0 )))
done
hook_sorted=$(printf '%s\n' "${hook[@]}" | sort -n | paste -sd' ')
hook_median=$(printf '%s\n' "${hook[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')

log "CREATE TABLE, then the schedule (one interval)"
"$PSQL" -X -q -d "$(db_url src_02)" -c "CREATE TABLE public.scheduled_probe (id int)"
p0=$(now_ms)
sleep 75
on_db2=$(( (SOURCES + DATABASES - 2) / DATABASES ))
read -r seen_n sched_avg sched_max <<<"$(st -F ' ' -c "
  SELECT count(*), round(avg(t)), max(t) FROM (
    SELECT source_id, min(finished_at) - $p0 AS t FROM discovery_runs
    WHERE changed AND finished_at > $p0 AND source_id IN (
      SELECT id FROM sources WHERE settings->>'database' = 'src_02')
    GROUP BY 1) x")"
serve_stop
# With every instance stopped: the store's records account for every successful run logged
# (their `runs` summed), or the summary shows the difference.
load_runs
logged_ok=$(lg -c "SELECT count(*) FROM logged_runs WHERE outcome = 'ok' AND held")
recorded_ok=$(st -c "SELECT coalesce(sum(runs), 0) FROM discovery_runs WHERE outcome = 'ok'")

mkdir -p "$OUT_DIR"
stamp=$(date +%Y%m%d-%H%M%S)
SUMMARY="$OUT_DIR/sluice-watch-scale-$stamp.md"
{
  echo "# The discovery scheduler at scale ($stamp)"
  echo
  env_facts "$bindir"
  echo "- load: $SOURCES sources over $DATABASES databases of $TABLES tables (make-catalog.sql, one schema, no views), every source at a 60 s interval; store and sources on two clusters of this machine; release build"
  echo "- watched after $SETTLE settling interval(s) past every source's first run"
  echo "- uptime at the one-instance window: $uptime1"
  echo "- uptime at the two-instance window: $uptime2"
  echo "- uptime after the kill: $uptime3"
  echo "- first runs (when saved) that failed: $failed_first"
  echo
  echo "| window | intervals | scheduled runs | failed | doubles | misses | runs per source (min-max) | mean / max run ms |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  echo "| one instance | $INTERVALS | $runs1 | $failed1 | $doubles1 | $misses1 | $minper1-$maxper1 | $avgrun1 / $maxrun1 |"
  echo "| two instances | $INTERVALS2 | $runs2 | $failed2 | $doubles2 | $misses2 | $minper2-$maxper2 | $avgrun2 / $maxrun2 |"
  echo "| the survivor, after the other's kill -9 | $KILL_INTERVALS | $runs3 | $failed3 | $doubles3 | $misses3 | $minper3-$maxper3 | $avgrun3 / $maxrun3 |"
  echo
  echo "| figure | value | goal |"
  echo "|---|---:|---:|"
  echo "| one instance: service CPU (share of one core) | $cpu1 % | |"
  echo "| one instance: service peak RSS | $rss1 MiB | |"
  echo "| one instance: new snapshots while nothing changed | $(( n1 - n0 )) | 0 |"
  echo "| one instance: runs per hour (logged) | $runs_h1 | |"
  echo "| one instance: run records per hour | $rows_h1 rows, $growth1 MiB (table and indexes; $row_bytes bytes a row) | < 1 MiB |"
  echo "| successful runs of the whole bench: logged / counted by the store's records | $logged_ok / $recorded_ok | equal |"
  echo "| one instance: sessions open to the sources' server | $conns1 | |"
  echo "| two instances: runs by each | $split2 | |"
  echo "| two instances: peak RSS | $rss2a / $rss2b MiB | |"
  echo "| two instances: sessions open to the sources' server | $conns2 | |"
  echo "| kill -9 mid-run: sources the victim held with their run in flight | $held_n (${held:--}) | at least 1 |"
  echo "| kill -9 mid-run: its runs the survivor recorded as abandoned | ${abandoned:--} | the same |"
  echo "| kill -9 mid-run: the survivor's first finished run of each held source (ms after the kill) | median $took_median, max $took_max ($took_n of $held_n) | one interval ($INTERVAL_MS) |"
  echo "| kill -9 mid-run: last run before the kill to the survivor's first, per source (max ms) | held $gap_max_held, the others $gap_max_other | $TAKEOVER_BOUND_MS |"
  echo "| kill -9 mid-run: sources over $TAKEOVER_BOUND_MS ms / with no run by the survivor | $gap_over / $gap_none | 0 / 0 |"
  echo "| the survivor alone: scheduled runs by the survivor | $survivor_runs3 of $runs3 | all |"
  echo "| CREATE TABLE to the API, refresh hook (ms, sorted) | $hook_sorted (median $hook_median) | < 2000 |"
  echo "| CREATE TABLE to a run that stored it, 60 s interval ($seen_n of $on_db2 sources on that database) | mean $sched_avg ms, max $sched_max ms | |"
  echo
  echo "Runs are counted from the instances' logs (one line per finished run); the store keeps"
  echo "consecutive unchanged runs of a source as one record. Misses count gaps of 1.5 intervals"
  echo "or more between a source's runs, window edges left uncovered and sources with no run;"
  echo "doubles count runs under half an interval apart."
  echo
  echo "The kill: the sources the second instance held with their run in flight, the last it"
  echo "finished before, and the sources over the bound (the 10 longest gaps); times from the kill,"
  echo "a gap runs from a source's last run before the kill, by either instance, to the survivor's"
  echo "first, start to start:"
  echo
  echo "| source | at the kill | last run began (ms before) | survivor's first run began (ms after) | and finished (ms after) | gap ms |"
  echo "|---|---|---:|---:|---:|---:|"
  printf '%s\n' "$takeover_rows"
  echo
  echo "The bound on a gap is one interval ($(( INTERVAL_MS / 1000 )) s) + the lease ($(( LEASE_MS / 1000 )) s, DiscoveryConfig's default) +"
  echo "two polls ($(( POLL_MS / 1000 )) s each): the run the victim died in began an interval after the source's run"
  echo "before it, its lease ran out one lease after that run began (runs here end long before the"
  echo "first renewal, a third of the lease in), and each of the two claims may come up to a poll"
  echo "after the source is due or free. A held source's next run begins within the lease and a"
  echo "poll of the kill, well within one interval."
  for f in "${fails[@]}"; do echo; echo "FAIL: $f"; done
} >"$SUMMARY"
cat "$SUMMARY"
log "results: $SUMMARY"
for f in "${fails[@]}"; do log "FAIL: $f"; done
[ "${#fails[@]}" -eq 0 ] || exit 1
