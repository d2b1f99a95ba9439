# shellcheck shell=bash
# What the bench scripts share about Sluice itself: the binary, and for those that run
# `sluice serve`, the service's start and stop, an administrator's token and the API with it.
# Sourced first: it sets `repo` (the checkout) and BENCH_DIR (the peer kit: $BENCH_KIT, by default
# ../shared/bench beside the checkout) and sources the kit's lib.sh (whose log, die and free_port
# the functions use); the functions also use `work` (the script's temporary directory).
#
#   sluice_binary          $SLUICE_BIN, or a release build of the checkout, copied to $work/sluice;
#                          sets SLUICE
#   admin_token ARGS...    an administrator's API token made offline (`sluice token create ARGS...`,
#                          e.g. --data-dir DIR or --store URL); sets TOKEN
#   serve_start ARGS...    one `sluice serve ARGS...` on a free loopback port, its output appended to
#                          $work/serve-PORT.log, once /api/v1/health answers; sets SERVE_PID,
#                          SERVE_PORT and API (http://127.0.0.1:PORT/api/v1), appends to SERVE_PIDS
#   serve_stop             SIGTERM to every instance started (and SIGCONT, for one a script
#                          stopped), and waits for them
#   api ARGS...            curl -sS -f with the token and a JSON content type
#   add_source ID DATABASE PORT [JSON]
#                          registers 127.0.0.1:PORT/DATABASE (login bench/bench, no TLS) as source ID
#                          through $API; JSON adds fields (`,"discovery_interval_secs":60`)

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_KIT=${BENCH_KIT:-$repo/../shared/bench}
[ -f "$BENCH_KIT/lib.sh" ] || { echo "peer kit not found at $BENCH_KIT (set BENCH_KIT)" >&2; exit 2; }
BENCH_DIR=$(cd "$BENCH_KIT" && pwd)
# shellcheck source=/dev/null
. "$BENCH_DIR/lib.sh"

SLUICE=
TOKEN=
SERVE_PID=
SERVE_PORT=
SERVE_PIDS=()
API=

sluice_binary() {
  if [ -n "${SLUICE_BIN:-}" ]; then
    cp "$SLUICE_BIN" "$work/sluice"
  else
    log "building the release binary"
    (cd "$repo" && cargo build --release -q --locked -p sluice-cli)
    # Copied at once: a shared target directory may be rebuilt by another checkout meanwhile.
    cp "${CARGO_TARGET_DIR:-$repo/target}/release/sluice" "$work/sluice"
  fi
  SLUICE="$work/sluice"
}

admin_token() {
  TOKEN=$("$SLUICE" token create "$@" --name bench --role admin 2>/dev/null | tail -1)
  [ -n "$TOKEN" ] || die "could not make an admin token (sluice token create $*)"
}

serve_start() {
  SERVE_PORT=$(free_port)
  local logfile="$work/serve-$SERVE_PORT.log"
  "$SLUICE" serve "$@" --listen "127.0.0.1:$SERVE_PORT" >>"$logfile" 2>&1 &
  SERVE_PID=$!
  SERVE_PIDS+=("$SERVE_PID")
  API="http://127.0.0.1:$SERVE_PORT/api/v1"
  for _ in $(seq 300); do
    curl -sf "$API/health" >/dev/null 2>&1 && return 0
    kill -0 "$SERVE_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$logfile" >&2
  die "sluice serve did not come up"
}

serve_stop() {
  local p
  for p in "${SERVE_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; kill -CONT "$p" 2>/dev/null || true; done
  for p in "${SERVE_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  SERVE_PIDS=()
  SERVE_PID=
}

api() { curl -sS -f -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"; }

add_source() {
  local id=$1 database=$2 port=$3 extra=${4:-}
  api -o /dev/null -d "{\"id\":\"$id\",\"name\":\"$id\",\"host\":\"127.0.0.1\",\"port\":$port,\"database\":\"$database\",\"user\":\"bench\",\"password\":\"bench\",\"sslmode\":\"disable\"$extra}" "$API/sources" \
    || die "could not register the source $id"
}
