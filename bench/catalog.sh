#!/usr/bin/env bash
# `sluice catalog --format json > /dev/null` against the peer kit's schema-discovery baselines, on
# the same server and catalog, round-robin (one run of every peer, then one of sluice, repeated),
# so a slow spell of a shared machine hits everyone alike.
#
#   bench/catalog.sh                       # 20 schemas x 500 tables + 1,000 views, 3 rounds
#   SCHEMAS=20 TABLES=5000 VIEWS=1000 PEERS=bulk_sql bench/catalog.sh     # 100,000 tables
#   SLUICE_BINS="old=/tmp/sluice-old new=target/release/sluice" SERVE=1 PEERS=bulk_sql bench/catalog.sh
#
# With SERVE=1 each binary also runs as `sluice serve` (SQLite store in a temporary directory,
# the database registered as a source through the API) under /usr/bin/time -v, and each round
# times three discoveries of that source: its first (the scheduler runs a new source at once),
# an unchanged one (POST …/refresh; the snapshot is not stored again), and one after a table was
# added (the snapshot stored, and compared with the previous one read back). A run's time is its
# record's finished_at - started_at; the service's peak RSS is its VmHWM, reset before each
# discovery (/proc/PID/clear_refs), and /usr/bin/time's maximum for the whole service.
#
# Environment (all optional):
#   BENCH_KIT=...   the peer kit (default: ../shared/bench next to this repository)
#   SCHEMAS TABLES VIEWS   catalog size (TABLES is per schema), as the kit's make-catalog.sql
#   RUNS=3          rounds
#   PEERS="bulk_sql pg_dump_schema sqlalchemy_bulk"   the kit's peers to run each round
#                   (pg_dump needs max_locks_per_transaction x max_connections > tables: drop it
#                   beyond ~50,000 tables)
#   BENCH_URL=...   use an existing database (the catalog is generated there only if cat_001 is
#                   missing); default: a throwaway cluster from the kit's pg-up.sh
#   SLUICE_BIN=...  the binary to time (default: cargo build --release -p sluice-cli)
#   SLUICE_BINS="label=path ..."   several binaries, each timed in every round (labels: [a-z0-9_])
#   SERVE=1         also time discoveries in `sluice serve` (needs curl)
#   OUT_DIR=...     results (default bench/results); one .md summary and one .raw.tsv per run
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
KIT=$(cd "${BENCH_KIT:-$REPO/../shared/bench}" && pwd) || {
  echo "no peer kit: set BENCH_KIT to the directory holding peers-catalog.sh" >&2
  exit 2
}
# shellcheck source=/dev/null
. "$KIT/lib.sh" # log, die, pg_bindir, bench_once, raw_median, fmt_div, env_facts

SCHEMAS=${SCHEMAS:-20}
TABLES=${TABLES:-500}
VIEWS=${VIEWS:-1000}
RUNS=${RUNS:-3}
PEERS=${PEERS:-"bulk_sql pg_dump_schema sqlalchemy_bulk"}
OUT_DIR=${OUT_DIR:-$REPO/bench/results}
bindir=$(pg_bindir)
PSQL="$bindir/psql"

if [ -z "${SLUICE_BINS:-}" ]; then
  if [ -z "${SLUICE_BIN:-}" ]; then
    log "building sluice (release)"
    (cd "$REPO" && cargo build --release --locked -p sluice-cli >&2)
    SLUICE_BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/sluice"
  fi
  SLUICE_BINS="sluice=$SLUICE_BIN"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench-catalog.XXXXXX")
chmod 755 "$work" # the server user must traverse it when we are root
# Private copies: a build in the same target directory must not swap a binary mid-run.
LABELS=()
for lb in $SLUICE_BINS; do
  label=${lb%%=*}
  bin=${lb#*=}
  [ -x "$bin" ] || die "no sluice binary at $bin"
  cp "$bin" "$work/sluice-$label"
  LABELS+=("$label")
done
if [ -z "${BENCH_URL:-}" ]; then
  cleanup() { "$KIT/pg-down.sh" "$work/data" --rm || true; rm -rf "$work"; }
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  url=$(BENCH_PG_TTL=${BENCH_PG_TTL:-3600} "$KIT/pg-up.sh" "$work/data" | tail -1)
  SERVER_PID=$(head -1 "$work/data/postmaster.pid")
  export SERVER_PID # the kit then reports server CPU for every peer too
else
  trap 'rm -rf "$work"' EXIT
  url=$BENCH_URL
fi
q() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$url" "$@"; }

gen_s=NA
if [ "$(q -tAc "select count(*) from pg_namespace where nspname = 'cat_001'")" != 1 ]; then
  log "generating catalog: $SCHEMAS schemas x $TABLES tables + $VIEWS views"
  t0=$(date +%s%N)
  q -v schemas="$SCHEMAS" -v tables="$TABLES" -v views="$VIEWS" -f "$KIT/make-catalog.sql" >/dev/null
  gen_s=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN{printf "%.1f", (b-a)/1e9}')
  log "generated in ${gen_s}s"
fi
n_tables=$(q -tAc "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
                   where c.relkind in ('r','p') and n.nspname !~ '^pg_' and n.nspname <> 'information_schema'")

case $url in *\?*) sluice_url="$url&sslmode=disable" ;; *) sluice_url="$url?sslmode=disable" ;; esac
for label in "${LABELS[@]}"; do
  "$work/sluice-$label" catalog --url "$sluice_url" --format json >"$work/catalog.json" # warm-up and check
done
relations=$(grep -o '"kind":"[a-z_]*"' "$work/catalog.json" | wc -l)
json_bytes=$(wc -c <"$work/catalog.json")
log "sluice lists $relations relations ($json_bytes bytes of JSON)"
rm -f "$work/catalog.json"

# ---- the service ---------------------------------------------------------------------------
# serve_round LABEL ROUND: a fresh service of that binary, three discoveries, one TSV line each
# into $SERVE_TSV (label round phase run_s peak_mib changed), then the service stopped and its
# /usr/bin/time maximum recorded as phase "whole".
SERVE_TSV=$work/serve.tsv
: >"$SERVE_TSV"
api_port=
serve_pid=
time_pid=
api() { curl -sS -f -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$@"; }
# The newest run's JSON once it is no longer running (the store answers runs newest first).
wait_run() {
  local newer_than=$1 runs
  for _ in $(seq 3000); do
    runs=$(api "http://127.0.0.1:$api_port/api/v1/sources/bench/discoveries" 2>/dev/null || true)
    if python3 - "$newer_than" "$runs" <<'PY'
import json, sys
newer, body = int(sys.argv[1]), sys.argv[2]
try:
    runs = json.loads(body)["runs"]
except Exception:
    sys.exit(1)
done = [r for r in runs if r["id"] > newer and r.get("finished_at")]
if not done:
    sys.exit(1)
r = max(done, key=lambda r: r["id"])
print(r["id"], (r["finished_at"] - r["started_at"]) / 1000, r["state"], r.get("changed"))
PY
    then return 0; fi
    sleep 0.1
  done
  die "no discovery finished"
}
hwm_mib() { awk '/VmHWM/{printf "%.0f", $2/1024}' "/proc/$serve_pid/status"; }
serve_round() {
  local label=$1 i=$2 bin="$work/sluice-$1" store="$work/store-$1-$2" out run_id run_s state changed
  unset SLUICE_MASTER_KEY
  token=$("$bin" token create --data-dir "$store" --name bench --role admin 2>/dev/null | tail -1)
  api_port=$(free_port)
  /usr/bin/time -v -o "$work/serve-time" "$bin" serve --data-dir "$store" --listen "127.0.0.1:$api_port" \
    >>"$work/serve.log" 2>&1 &
  time_pid=$!
  for _ in $(seq 100); do
    serve_pid=$(ps --ppid "$time_pid" -o pid= | tr -d ' ' || true) # none until time has forked
    [ -n "$serve_pid" ] && curl -sf "http://127.0.0.1:$api_port/api/v1/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
  [ -n "$serve_pid" ] || die "sluice serve did not come up (see $work/serve.log)"
  # postgresql://user:password@host:port/database, as the kit's pg-up.sh prints it.
  local rest=${url#*://} userinfo hostport db
  userinfo=${rest%%@*}
  hostport=${rest#*@}
  db=${hostport#*/}
  db=${db%%\?*}
  hostport=${hostport%%/*}
  echo 5 >"/proc/$serve_pid/clear_refs"
  api -o /dev/null -d "{\"id\":\"bench\",\"name\":\"bench\",\"host\":\"${hostport%:*}\",\"port\":${hostport##*:},\"database\":\"$db\",\"user\":\"${userinfo%%:*}\",\"password\":\"${userinfo#*:}\",\"sslmode\":\"disable\"}" \
    "http://127.0.0.1:$api_port/api/v1/sources" || die "could not register the source"
  local last=0
  for phase in first unchanged changed; do
    if [ "$phase" != first ]; then
      [ "$phase" = changed ] && q -c "CREATE TABLE cat_001.bench_added_$label$i (id int)"
      echo 5 >"/proc/$serve_pid/clear_refs"
      api -o /dev/null -X POST "http://127.0.0.1:$api_port/api/v1/sources/bench/refresh"
    fi
    read -r run_id run_s state changed < <(wait_run "$last")
    [ "$state" = ok ] || log "$label $phase: the run ended $state"
    last=$run_id
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$i" "$phase" "$run_s" "$(hwm_mib)" "$changed" >>"$SERVE_TSV"
  done
  q -c "DROP TABLE cat_001.bench_added_$label$i"
  kill -TERM "$serve_pid"
  wait "$time_pid" || true
  out=$(awk -F': ' '/Maximum resident set size/{printf "%.0f", $2/1024}' "$work/serve-time")
  printf '%s\t%s\twhole\tNA\t%s\tNA\n' "$label" "$i" "$out" >>"$SERVE_TSV"
  serve_pid=
  rm -rf "$store"
}
stop_serve() { [ -z "$serve_pid" ] || kill -TERM "$serve_pid" 2>/dev/null || true; }
trap 'stop_serve' ERR

mkdir -p "$OUT_DIR" "$work/kit"
stamp=$(date +%Y%m%d-%H%M%S)
RAW_TSV="$OUT_DIR/catalog-sluice-$stamp.raw.tsv"
SUMMARY="$OUT_DIR/catalog-sluice-$stamp.md"
printf '%s\n' "$RAW_HEADER" >"$RAW_TSV"

for i in $(seq 1 "$RUNS"); do
  log "round $i/$RUNS: kit peers ($PEERS)"
  BENCH_URL=$url RUNS=1 PEERS="$PEERS" OUT_DIR="$work/kit" "$KIT/peers-catalog.sh" >/dev/null
  for f in "$work"/kit/catalog-*.raw.tsv; do
    tail -n +2 "$f" | awk -F'\t' -v OFS='\t' -v r="$i" '{$2 = r; print}' >>"$RAW_TSV"
    rm -f "$f"
  done
  rm -f "$work"/kit/*.md
  for label in "${LABELS[@]}"; do
    bench_once "catalog_$label" "$i" -- "$work/sluice-$label" catalog --url "$sluice_url" --format json
  done
  if [ "${SERVE:-0}" = 1 ]; then
    for label in "${LABELS[@]}"; do
      log "round $i/$RUNS: sluice serve ($label)"
      serve_round "$label" "$i"
    done
  fi
done

base=$(raw_median bulk_sql 3)
ours=$(raw_median "catalog_${LABELS[0]}" 3)
# Median (or max) of column $3 of $SERVE_TSV for label $1 and phase $2.
serve_col() {
  awk -F'\t' -v l="$1" -v p="$2" -v c="$3" '$1==l && $3==p {print $c}' "$SERVE_TSV" | sort -g |
    awk '{v[NR]=$1} END{if (!NR) print "NA"; else if (NR%2) print v[(NR+1)/2]; else printf "%.3f\n", (v[NR/2]+v[NR/2+1])/2}'
}
serve_max() { awk -F'\t' -v l="$1" -v p="$2" '$1==l && $3==p {print $5}' "$SERVE_TSV" | sort -g | tail -1; }
{
  echo "# sluice catalog vs the peer kit ($stamp)"
  echo
  env_facts "$bindir"
  echo "- sluice: $(for l in "${LABELS[@]}"; do printf '%s ' "$l=$("$work/sluice-$l" --version)"; done)"
  echo "- catalog: $n_tables tables (generator: $SCHEMAS schemas x $TABLES tables + $VIEWS views; generated in ${gen_s}s); sluice lists $relations relations, $json_bytes bytes of JSON"
  echo "- rounds: $RUNS (each: one run of every kit peer, then one of each sluice binary); medians of successful runs"
  echo "- command: bench/catalog.sh with SCHEMAS=$SCHEMAS TABLES=$TABLES VIEWS=$VIEWS RUNS=$RUNS PEERS=\"$PEERS\" SLUICE_BINS=\"$SLUICE_BINS\" SERVE=${SERVE:-0}"
  echo
  echo "| peer | wall s | x bulk_sql | x ${LABELS[0]} | client CPU s | server CPU s | other CPU s | peak RSS MB | ok runs |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for p in "${LABELS[@]/#/catalog_}" $PEERS; do
    w=$(raw_median "$p" 3)
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$p" "$w" \
      "$(fmt_div "$w" "${base:-NA}" '%.2f')" "$(fmt_div "$w" "${ours:-NA}" '%.2f')" \
      "$(raw_median "$p" 7)" "$(raw_median "$p" 9)" "$(raw_median "$p" 10)" \
      "$(fmt_div "$(raw_max "$p" 4)" 1024 '%.0f')" "$(raw_ok "$p")"
  done
  echo
  echo "catalog_X = \`sluice catalog --url … --format json > /dev/null\` with binary X. \`x bulk_sql\` = wall / bulk_sql's"
  echo "wall; \`x ${LABELS[0]}\` = wall / ${LABELS[0]}'s wall. Peak RSS from /usr/bin/time -v. Raw per-run data: $(basename "$RAW_TSV")."
  if [ "${SERVE:-0}" = 1 ]; then
    echo
    echo "Discoveries in \`sluice serve\` (run record's time, median; the service's peak RSS while it ran, max):"
    echo
    echo "| binary | phase | run s | x bulk_sql | peak RSS MiB |"
    echo "|---|---|---:|---:|---:|"
    for l in "${LABELS[@]}"; do
      for ph in first unchanged changed; do
        r=$(serve_col "$l" "$ph" 4)
        printf '| %s | %s | %s | %s | %s |\n' "$l" "$ph" "$r" "$(fmt_div "$r" "${base:-NA}" '%.2f')" "$(serve_max "$l" "$ph")"
      done
      printf '| %s | whole service (/usr/bin/time -v) | | | %s |\n' "$l" "$(serve_max "$l" whole)"
    done
    echo
    echo "Per run (label, round, phase, run s, peak MiB, changed):"
    echo
    echo '```'
    cat "$SERVE_TSV"
    echo '```'
  fi
} >"$SUMMARY"
cat "$SUMMARY"
log "results: $SUMMARY"
