#!/usr/bin/env bash
# `sluice query` export throughput and peak RSS against the peer baselines, in one run.
#
#   bench/export.sh
#
# Uses the peer kit in ../shared/bench (or $BENCH_KIT): a throwaway cluster (pg-up.sh),
# bench.wide from make-data.sql, its timing helper (/usr/bin/time -v, round-robin runs, medians)
# and its Python peers. Each round runs every peer and every sluice format once, so a slow spell of
# the machine hits them alike. Prints a table with the ratios the targets are stated in:
# csv / COPY csv, arrow / ADBC arrow, arrow / COPY binary, parquet / ADBC parquet, and peak RSS.
#
# Environment (all optional):
#   ROWS=2000000     rows in bench.wide
#   RUNS=3           timed runs per entry (median reported)
#   FORMATS="csv arrow parquet json ndjson"
#   PEERS="copy_csv copy_binary adbc_arrow adbc_parquet"   (peers need the kit's Python venv)
#   BENCH_URL=...    reuse a server (bench.wide is generated there only if missing)
#   SLUICE_BIN=...   a prebuilt binary (default: cargo build --release -p sluice-cli)
#   MAX_ROWS=N       pass --max-rows N to every sluice entry (a limit above the row count keeps
#                    every row but makes Arrow spool until truncation is known)
#   OUT_DIR=...      results directory (default bench/results)
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/serve-lib.sh"

ROWS=${ROWS:-2000000}
FORMATS=${FORMATS:-"csv arrow parquet json ndjson"}
PEERS=${PEERS:-"copy_csv copy_binary adbc_arrow adbc_parquet"}
OUT_DIR=${OUT_DIR:-$repo/bench/results}
QUERY="SELECT * FROM bench.wide"
bindir=$(pg_bindir)
PSQL="$bindir/psql"

work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
chmod 755 "$work"
cleanup() {
  [ -z "${BENCH_URL:-}" ] && "$BENCH_DIR/pg-down.sh" "$work/data" --rm >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sluice_binary

case " $PEERS " in *" adbc_"*) ensure_venv ;; esac
PY="$BENCH_VENV/bin/python"

if [ -z "${BENCH_URL:-}" ]; then
  url=$(BENCH_PG_TTL=${BENCH_PG_TTL:-1800} "$BENCH_DIR/pg-up.sh" "$work/data")
  SERVER_PID=$(head -1 "$work/data/postmaster.pid")
else
  url=$BENCH_URL
fi
q() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$url" "$@"; }
if [ "$(q -tAc "select to_regclass('bench.wide') is not null")" != t ]; then
  log "generating bench.wide with $ROWS rows"
  q -v rows="$ROWS" -f "$BENCH_DIR/make-data.sql" >/dev/null
fi
nrows=$(q -tAc "select count(*) from bench.wide")
# Warm the caches as the peer kit does.
q -c "COPY ($QUERY) TO STDOUT (FORMAT csv)" >/dev/null
q -c "COPY ($QUERY) TO STDOUT (FORMAT binary)" >/dev/null
sep='?'; case $url in *\?*) sep='&' ;; esac
surl="$url${sep}sslmode=disable"

argv_of() {
  case $1 in
    copy_csv)      ARGV=("$PSQL" -X -q -d "$url" -c "COPY ($QUERY) TO STDOUT (FORMAT csv)") ;;
    copy_binary)   ARGV=("$PSQL" -X -q -d "$url" -c "COPY ($QUERY) TO STDOUT (FORMAT binary)") ;;
    adbc_arrow)    ARGV=("$PY" "$BENCH_DIR/py/export_adbc.py" "$url" "$QUERY") ;;
    adbc_parquet)  ARGV=("$PY" "$BENCH_DIR/py/export_adbc.py" "$url" "$QUERY" parquet) ;;
    sluice_*)      ARGV=("$SLUICE" query --url "$surl" --sql "$QUERY" --format "${1#sluice_}" ${MAX_ROWS:+--max-rows "$MAX_ROWS"}) ;;
    *) die "unknown entry '$1'" ;;
  esac
}
entries="$PEERS"
for f in $FORMATS; do entries="$entries sluice_$f"; done

mkdir -p "$OUT_DIR"
stamp=$(date +%Y%m%d-%H%M%S)
RAW_TSV="$OUT_DIR/sluice-export-$stamp.raw.tsv"
SUMMARY="$OUT_DIR/sluice-export-$stamp.md"
printf '%s\n' "$RAW_HEADER" >"$RAW_TSV"
for i in $(seq 1 "$RUNS"); do
  for e in $entries; do
    argv_of "$e"
    bench_once "$e" "$i" -- "${ARGV[@]}"
  done
done

ratio() { fmt_div "$(raw_median "$1" 3)" "$(raw_median "$2" 3)" '%.2f'; }
{
  echo "# sluice query export ($stamp)"
  echo
  env_facts "$bindir"
  echo "- data: bench.wide, $nrows rows; $RUNS runs per entry, medians; client = the whole process"
  [ -z "${MAX_ROWS:-}" ] || echo "- sluice entries ran with --max-rows $MAX_ROWS"
  echo
  echo "| entry | wall s | client CPU s | server CPU s | other CPU s | peak RSS MiB | ok runs |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for e in $entries; do
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$e" "$(raw_median "$e" 3)" "$(raw_median "$e" 7)" \
      "$(raw_median "$e" 9)" "$(raw_median "$e" 10)" "$(fmt_div "$(raw_max "$e" 4)" 1024 '%.0f')" "$(raw_ok "$e")"
  done
  echo
  echo "| target | ratio | goal |"
  echo "|---|---:|---:|"
  echo "| sluice csv / COPY csv | $(ratio sluice_csv copy_csv) | <= 1.00 |"
  echo "| sluice arrow / ADBC arrow | $(ratio sluice_arrow adbc_arrow) | <= 0.90 |"
  echo "| sluice arrow / COPY binary | $(ratio sluice_arrow copy_binary) | <= 1.20 |"
  echo "| sluice parquet / ADBC parquet | $(ratio sluice_parquet adbc_parquet) | <= 0.90 |"
  echo "| sluice json / COPY csv | $(ratio sluice_json copy_csv) | (reported) |"
  echo "| sluice ndjson / COPY csv | $(ratio sluice_ndjson copy_csv) | (reported) |"
  echo
  echo "Peak RSS goal: <= 100 MiB for every format. Raw per-run data: $(basename "$RAW_TSV")."
} >"$SUMMARY"
cat "$SUMMARY"
log "results: $SUMMARY"
