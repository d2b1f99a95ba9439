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
#  3. the time from a CREATE TABLE on a source to the table in the API: through the refresh
#     hook (POST …/refresh, then GET …/catalog polled), and on schedule (from the run records:
#     the first run that stored the change, for each source of that database).
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
SETTLE=${SETTLE:-1}
HOOK_RUNS=${HOOK_RUNS:-5}
OUT_DIR=${OUT_DIR:-$repo/bench/results}
INTERVAL_MS=60000
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

ttl=$(( (INTERVALS + INTERVALS2 + SETTLE + 15) * 60 + 600 ))
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

# ---- 3. CREATE TABLE to the API --------------------------------------------------------------
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
  echo "- first runs (when saved) that failed: $failed_first"
  echo
  echo "| window | intervals | scheduled runs | failed | doubles | misses | runs per source (min-max) | mean / max run ms |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  echo "| one instance | $INTERVALS | $runs1 | $failed1 | $doubles1 | $misses1 | $minper1-$maxper1 | $avgrun1 / $maxrun1 |"
  echo "| two instances | $INTERVALS2 | $runs2 | $failed2 | $doubles2 | $misses2 | $minper2-$maxper2 | $avgrun2 / $maxrun2 |"
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
  echo "| CREATE TABLE to the API, refresh hook (ms, sorted) | $hook_sorted (median $hook_median) | < 2000 |"
  echo "| CREATE TABLE to a run that stored it, 60 s interval ($seen_n of $on_db2 sources on that database) | mean $sched_avg ms, max $sched_max ms | |"
  echo
  echo "Runs are counted from the instances' logs (one line per finished run); the store keeps"
  echo "consecutive unchanged runs of a source as one record. Misses count gaps of 1.5 intervals"
  echo "or more between a source's runs, window edges left uncovered and sources with no run;"
  echo "doubles count runs under half an interval apart."
} >"$SUMMARY"
cat "$SUMMARY"
log "results: $SUMMARY"
