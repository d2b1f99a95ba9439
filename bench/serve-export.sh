#!/usr/bin/env bash
# Exports of bench.wide through the API (`curl -o /dev/null` against `sluice serve`) against the
# CLI's `sluice query` in the same run, and the service's peak RSS while 4 exports stream at once.
#
#   bench/serve-export.sh
#
# Uses the peer kit in ../shared/bench (or $BENCH_KIT): a throwaway cluster (pg-up.sh), bench.wide
# from make-data.sql and its timing helper (round-robin runs, medians). The service runs on a
# temporary SQLite store with the cluster registered as a source through the API.
#
# Environment (all optional):
#   ROWS=2000000     rows in bench.wide
#   RUNS=3           timed runs per entry (median reported)
#   FORMATS="csv arrow"
#   SLUICE_BIN=...   a prebuilt binary (default: cargo build --release -p sluice-cli)
#   OUT_DIR=...      results directory (default bench/results)
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/serve-lib.sh"
command -v curl >/dev/null || die "curl is needed"

ROWS=${ROWS:-2000000}
RUNS=${RUNS:-3}
FORMATS=${FORMATS:-"csv arrow"}
OUT_DIR=${OUT_DIR:-$repo/bench/results}
QUERY="SELECT * FROM bench.wide"
bindir=$(pg_bindir)
PSQL="$bindir/psql"

work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
chmod 755 "$work"
cleanup() {
  serve_stop
  "$BENCH_DIR/pg-down.sh" "$work/data" --rm >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sluice_binary

url=$(BENCH_PG_TTL=${BENCH_PG_TTL:-1800} "$BENCH_DIR/pg-up.sh" "$work/data")
SERVER_PID=$(head -1 "$work/data/postmaster.pid")
port=${url##*:}; port=${port%%/*}
q() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$url" "$@"; }
log "generating bench.wide with $ROWS rows"
q -v rows="$ROWS" -f "$BENCH_DIR/make-data.sql" >/dev/null
nrows=$(q -tAc "select count(*) from bench.wide")
q -c "COPY ($QUERY) TO STDOUT (FORMAT csv)" >/dev/null
surl="$url?sslmode=disable"

# The service: an admin token made offline, then the source registered through the API.
unset SLUICE_MASTER_KEY
admin_token --data-dir "$work/store"
serve_start --data-dir "$work/store"
add_source bench bench "$port"
body() { printf '{"sql":"%s","format":"%s"}' "$QUERY" "$1"; }

entries=
for f in $FORMATS; do entries="$entries cli_$f api_$f"; done
argv_of() {
  case $1 in
    cli_*) ARGV=("$SLUICE" query --url "$surl" --sql "$QUERY" --format "${1#cli_}") ;;
    api_*) ARGV=(curl -sS -f -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json'
                 -d "$(body "${1#api_}")" "$API/sources/bench/query") ;;
  esac
}

mkdir -p "$OUT_DIR"
stamp=$(date +%Y%m%d-%H%M%S)
RAW_TSV="$OUT_DIR/sluice-serve-export-$stamp.raw.tsv"
SUMMARY="$OUT_DIR/sluice-serve-export-$stamp.md"
printf '%s\n' "$RAW_HEADER" >"$RAW_TSV"
for i in $(seq 1 "$RUNS"); do
  for e in $entries; do
    argv_of "$e"
    bench_once "$e" "$i" -- "${ARGV[@]}"
  done
done

# Peak RSS (MiB, into PEAK) of a fresh service while 4 exports of one format stream at once. Not
# run in a command substitution: the service it starts must outlive it (and be stopped later).
PEAK=
peak_with_four() {
  local fmt=$1 pids=() rc=0
  serve_stop
  serve_start --data-dir "$work/store"
  for _ in 1 2 3 4; do
    api -o /dev/null -d "$(body "$fmt")" "$API/sources/bench/query" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  [ "$rc" = 0 ] || log "a concurrent $fmt export failed"
  PEAK=$(awk '/VmHWM/{printf "%.0f", $2/1024}' "/proc/$SERVE_PID/status")
}
declare -A peak
for f in $FORMATS; do
  peak_with_four "$f"
  peak[$f]=$PEAK
done
serve_stop
serve_start --data-dir "$work/store"
idle=$(awk '/VmHWM/{printf "%.0f", $2/1024}' "/proc/$SERVE_PID/status")
serve_stop

ratio() { fmt_div "$(raw_median "$1" 3)" "$(raw_median "$2" 3)" '%.2f'; }
{
  echo "# bench.wide through the API against the CLI ($stamp)"
  echo
  env_facts "$bindir"
  echo "- data: bench.wide, $nrows rows; $RUNS runs per entry, medians; the API entries are curl -o /dev/null"
  echo
  echo "| entry | wall s | client CPU s | server CPU s | client peak RSS MiB | ok runs |"
  echo "|---|---:|---:|---:|---:|---:|"
  for e in $entries; do
    printf '| %s | %s | %s | %s | %s | %s |\n' "$e" "$(raw_median "$e" 3)" "$(raw_median "$e" 7)" \
      "$(raw_median "$e" 9)" "$(fmt_div "$(raw_max "$e" 4)" 1024 '%.0f')" "$(raw_ok "$e")"
  done
  echo
  echo "| target | figure | goal |"
  echo "|---|---:|---:|"
  for f in $FORMATS; do
    echo "| API $f / CLI $f (wall) | $(ratio "api_$f" "cli_$f") | <= 1.10 |"
  done
  for f in $FORMATS; do
    echo "| service peak RSS, 4 $f exports at once | ${peak[$f]} MiB | <= 150 MiB |"
  done
  echo "| service peak RSS, started and idle | $idle MiB | |"
  echo
  echo "Raw per-run data: $(basename "$RAW_TSV")."
} >"$SUMMARY"
cat "$SUMMARY"
log "results: $SUMMARY"
