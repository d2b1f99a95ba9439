#!/usr/bin/env bash
# Peak RSS of `sluice query` exporting one huge text cell, per format, and one huge bytea cell.
#
#   bench/huge-cell.sh
#
# Starts a throwaway cluster with the peer kit in ../shared/bench (or $BENCH_KIT: pg-up.sh,
# pg-down.sh), runs `SELECT repeat('x', CELL) AS big` once per format with --output to a file
# under /usr/bin/time -v, checks the file's size, and prints the peak RSS next to the cell size
# (the goal: at most 2x the cell plus the baseline, the RSS of the same export of `SELECT 1`).
# Then the same for `SELECT decode(repeat('ab', BYTEA_CELL), 'hex') AS big` (bytea, written as
# hex text in CSV, JSON and NDJSON, each piece by piece from the wire bytes), in BYTEA_FORMATS.
#
# Environment (all optional):
#   CELL=200000000   bytes in the cell
#   FORMATS="csv json ndjson arrow parquet"
#   BYTEA_CELL=100000000   bytes in the bytea cell
#   BYTEA_FORMATS="csv json ndjson"   formats for the bytea case ("" skips it)
#   BENCH_URL=...    reuse a server
#   SLUICE_BIN=...   a prebuilt binary (default: cargo build --release -p sluice-cli)
#   EXTRA="--max-cell-bytes 1000"   more flags for every run
#   OUT_DIR=...      results directory (default bench/results)
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/serve-lib.sh"

CELL=${CELL:-200000000}
FORMATS=${FORMATS:-"csv json ndjson arrow parquet"}
BYTEA_CELL=${BYTEA_CELL:-100000000}
BYTEA_FORMATS=${BYTEA_FORMATS-csv json ndjson}
OUT_DIR=${OUT_DIR:-$repo/bench/results}

work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-huge.XXXXXX")
chmod 755 "$work"
cleanup() {
  [ -z "${BENCH_URL:-}" ] && "$BENCH_DIR/pg-down.sh" "$work/data" --rm >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sluice_binary

if [ -z "${BENCH_URL:-}" ]; then
  url=$(BENCH_PG_TTL=${BENCH_PG_TTL:-1800} "$BENCH_DIR/pg-up.sh" "$work/data")
else
  url=$BENCH_URL
fi
sep='?'; case $url in *\?*) sep='&' ;; esac
surl="$url${sep}sslmode=disable"

# Peak RSS in KiB of one export; the output file's size goes to $work/size.
peak() {
  local sql=$1 format=$2
  rm -f "$work/out"
  # shellcheck disable=SC2086
  /usr/bin/time -v -o "$work/time" "$SLUICE" query --url "$surl" --sql "$sql" --format "$format" \
    --output "$work/out" ${EXTRA:-} 2>"$work/stderr" >/dev/null || { cat "$work/stderr" "$work/time" >&2; die "$format failed"; }
  stat -c %s "$work/out" >"$work/size"
  awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time"
}

mkdir -p "$OUT_DIR"
stamp=$(date +%Y%m%d-%H%M%S)
SUMMARY="$OUT_DIR/sluice-huge-cell-$stamp.md"
{
  echo "# sluice query: one ${CELL}-byte text cell, one ${BYTEA_CELL}-byte bytea cell ($stamp)"
  echo
  echo "- binary: ${SLUICE_BIN:-release build of $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')}; extra flags: ${EXTRA:-none}"
  echo "- command: sluice query --sql \"SELECT repeat('x', $CELL) AS big\" (and \"SELECT decode(repeat('ab', $BYTEA_CELL), 'hex') AS big\") --format F --output FILE, under /usr/bin/time -v"
  echo
  echo "| cell | format | baseline MiB | peak RSS MiB | peak - baseline / cell | output bytes | seconds |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  row() {
    local label=$1 sql=$2 cell=$3 f=$4 base rss size secs
    base=$(peak "SELECT 1 AS big" "$f")
    rss=$(peak "$sql" "$f")
    size=$(cat "$work/size")
    secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$work/time")
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$f" "$((base / 1024))" "$((rss / 1024))" \
      "$(awk -v r="$rss" -v b="$base" -v c="$cell" 'BEGIN{printf "%.2f", (r-b)*1024/c}')" "$size" "$secs"
  }
  for f in $FORMATS; do
    row "text $CELL" "SELECT repeat('x', $CELL) AS big" "$CELL" "$f"
  done
  for f in $BYTEA_FORMATS; do
    row "bytea $BYTEA_CELL" "SELECT decode(repeat('ab', $BYTEA_CELL), 'hex') AS big" "$BYTEA_CELL" "$f"
  done
} >"$SUMMARY"
cat "$SUMMARY"
log "results: $SUMMARY"
