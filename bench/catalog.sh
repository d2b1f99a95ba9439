#!/usr/bin/env bash
# `sluice catalog --format json > /dev/null` against the peer kit's schema-discovery baselines, on
# the same server and catalog, round-robin (one run of every peer, then one of sluice, repeated),
# so a slow spell of a shared machine hits everyone alike.
#
#   bench/catalog.sh                       # 20 schemas x 500 tables + 1,000 views, 3 rounds
#   SCHEMAS=20 TABLES=5000 VIEWS=1000 PEERS=bulk_sql bench/catalog.sh     # 100,000 tables
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

if [ -z "${SLUICE_BIN:-}" ]; then
  log "building sluice (release)"
  (cd "$REPO" && cargo build --release --locked -p sluice-cli >&2)
  SLUICE_BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/sluice"
fi
[ -x "$SLUICE_BIN" ] || die "no sluice binary at $SLUICE_BIN"

work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench-catalog.XXXXXX")
chmod 755 "$work" # the server user must traverse it when we are root
# A private copy: a build in the same target directory must not swap the binary mid-run.
cp "$SLUICE_BIN" "$work/sluice"
SLUICE_BIN="$work/sluice"
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
SLUICE_ARGV=("$SLUICE_BIN" catalog --url "$sluice_url" --format json)
"${SLUICE_ARGV[@]}" >"$work/catalog.json" # warm-up, and a check that it works
relations=$(grep -o '"kind":"[a-z_]*"' "$work/catalog.json" | wc -l)
log "sluice lists $relations relations ($(wc -c <"$work/catalog.json") bytes of JSON)"

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
  bench_once sluice_catalog "$i" -- "${SLUICE_ARGV[@]}"
done

base=$(raw_median bulk_sql 3)
ours=$(raw_median sluice_catalog 3)
{
  echo "# sluice catalog vs the peer kit ($stamp)"
  echo
  env_facts "$bindir"
  echo "- sluice: $("$SLUICE_BIN" --version)"
  echo "- catalog: $n_tables tables (generator: $SCHEMAS schemas x $TABLES tables + $VIEWS views; generated in ${gen_s}s); sluice lists $relations relations"
  echo "- rounds: $RUNS (each: one run of every kit peer, then one of sluice); medians of successful runs"
  echo "- command: bench/catalog.sh with SCHEMAS=$SCHEMAS TABLES=$TABLES VIEWS=$VIEWS RUNS=$RUNS PEERS=\"$PEERS\""
  echo
  echo "| peer | wall s | x bulk_sql | x sluice | client CPU s | server CPU s | other CPU s | peak RSS MB | ok runs |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for p in sluice_catalog $PEERS; do
    w=$(raw_median "$p" 3)
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$p" "$w" \
      "$(fmt_div "$w" "${base:-NA}" '%.2f')" "$(fmt_div "$w" "${ours:-NA}" '%.1f')" \
      "$(raw_median "$p" 7)" "$(raw_median "$p" 9)" "$(raw_median "$p" 10)" \
      "$(fmt_div "$(raw_max "$p" 4)" 1024 '%.0f')" "$(raw_ok "$p")"
  done
  echo
  echo "sluice_catalog = \`sluice catalog --url … --format json > /dev/null\`. \`x bulk_sql\` = wall / bulk_sql's"
  echo "wall (sluice's target: <= 1.0); \`x sluice\` = wall / sluice's wall, i.e. how many times faster sluice"
  echo "is (targets: >= 5 for pg_dump_schema, >= 9 for sqlalchemy_bulk). Raw per-run data: $(basename "$RAW_TSV")."
} >"$SUMMARY"
cat "$SUMMARY"
log "results: $SUMMARY"
