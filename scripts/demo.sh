#!/usr/bin/env bash
# A tour of Sluice's command line on a fresh machine, with nothing to prepare (README's first
# command, `sluice demo`, runs the whole service instead):
#
#   scripts/demo.sh
#
# 1. installs the build's system needs when run as root (scripts/install-deps.sh, the same
#    script the test command uses) and builds the release `sluice` binary;
# 2. starts a throwaway PostgreSQL cluster on a free loopback port, in a temporary directory,
#    with TLS (a CA and a server certificate made with openssl for 127.0.0.1);
# 3. seeds a small shop (customers, orders, order items, a partitioned events table, an
#    `analytics` schema owned by an ELT role, and a table kept from the read-only user);
# 4. creates the read-only user with `sluice setup-sql`, then runs `sluice doctor` (verify-full),
#    `sluice catalog`, a `sluice query`, and shows a write being refused;
# 5. stops the cluster and removes every file it made, also on failure or Ctrl-C.
#
# PG_BIN selects the PostgreSQL server binaries (default: the newest /usr/lib/postgresql/*/bin).
# SLUICE_DEMO_KEEP=1 leaves the cluster running and prints how to reach and stop it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
# Prints a command, then runs it.
show() { printf '$ %s\n' "$*" | sed "s|$work|\$DEMO|g; s|$root/||g" >&2; "$@"; }

if [[ $(id -u) == 0 ]]; then
  scripts/install-deps.sh
fi
. scripts/deps.sh
for need in initdb pg_ctl psql openssl; do
  if ! dep_present "$need"; then
    echo "demo: $need not found; run scripts/install-deps.sh as root, or set PG_BIN to PostgreSQL's bin directory" >&2
    exit 2
  fi
done
pg_bin=$(pg_bin_dir)

say "building sluice (release)"
cargo build --release --locked -p sluice-cli
sluice=${CARGO_TARGET_DIR:-$root/target}/release/sluice

# Everything the demo makes lives here and goes away at exit.
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-demo.XXXXXX")
data=$work/data
run_as=()
if [[ $(id -u) == 0 ]]; then
  # PostgreSQL refuses to run as root.
  chown postgres: "$work"
  run_as=(runuser -u postgres --)
fi
pg() { "${run_as[@]}" "$@"; }

cleanup() {
  local status=$?
  if [[ -n ${SLUICE_DEMO_KEEP:-} && $status == 0 ]]; then
    echo "demo: the cluster keeps running: psql 'host=127.0.0.1 port=$port user=postgres dbname=shop'" >&2
    echo "demo: stop it with: ${run_as[*]} $pg_bin/pg_ctl -D $data stop -m fast && rm -rf $work" >&2
    return
  fi
  if [[ -f $data/postmaster.pid ]]; then
    pg "$pg_bin/pg_ctl" -D "$data" stop -m immediate >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "starting a throwaway PostgreSQL ($("$pg_bin/postgres" --version)) in $work"
superuser_pw=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
printf '%s\n' "$superuser_pw" > "$work/superuser.pw"
chmod 0600 "$work/superuser.pw"
[[ ${#run_as[@]} == 0 ]] || chown postgres: "$work/superuser.pw"
pg "$pg_bin/initdb" -D "$data" -U postgres -A scram-sha-256 --auth-local=trust -E UTF8 --locale=C \
  --no-sync "--pwfile=$work/superuser.pw" >"$work/initdb.log" 2>&1 || {
  cat "$work/initdb.log" >&2
  exit 1
}

# TLS: a CA of the demo's own and a certificate for 127.0.0.1, so the doctor can verify-full.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=Sluice demo CA" \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$data/server.key" -out "$work/server.csr" 2>/dev/null
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -days 2 -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n') -out "$data/server.crt" 2>/dev/null
chmod 0600 "$data/server.key"
[[ ${#run_as[@]} == 0 ]] || chown postgres: "$data/server.key" "$data/server.crt"

cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work'
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
fsync = off
EOF
cat >"$data/pg_hba.conf" <<'EOF'
local   all all                  trust
hostssl all all 127.0.0.1/32     scram-sha-256
EOF

# A free loopback port: try random ones until the server starts on one.
started=
for _ in 1 2 3 4 5 6 7 8 9 10; do
  port=$((20000 + RANDOM % 40000))
  if pg "$pg_bin/pg_ctl" -D "$data" -o "-p $port" -l "$work/server.log" -w -t 30 start >/dev/null 2>&1; then
    started=1
    break
  fi
done
if [[ -z $started ]]; then
  echo "demo: PostgreSQL did not start; its log:" >&2
  cat "$work/server.log" >&2
  exit 1
fi
admin() { pg psql -X -q -v ON_ERROR_STOP=1 -h "$work" -p "$port" -U postgres "$@"; }

say "seeding a small shop"
admin -d postgres -c "CREATE DATABASE shop"
# The same shop `sluice demo` seeds (read by this shell, so the server's user needs no access).
admin -d shop <crates/sluice-cli/src/demo/shop.sql

say "creating the read-only user with sluice setup-sql"
od -An -N18 -tx1 /dev/urandom | tr -d ' \n' > "$work/sluice_ro.pw"
show "$sluice" setup-sql --user sluice_ro --database shop --schema public --schema analytics \
  --elt-owner etl --password-file "$work/sluice_ro.pw" > "$work/setup.sql"
echo "(the script holds the password's SCRAM verifier only: $(wc -l < "$work/setup.sql") lines)" >&2
[[ ${#run_as[@]} == 0 ]] || chown postgres: "$work/setup.sql"
admin -d shop -f "$work/setup.sql"
# One table stays the owner's alone; the doctor and the catalog say so.
admin -d shop -c "REVOKE SELECT ON staff_salaries FROM sluice_ro"

url="postgresql://sluice_ro@127.0.0.1:$port/shop?sslmode=verify-full&sslrootcert=$work/ca.pem"
conn=(--url "$url" --password-file "$work/sluice_ro.pw")

say "sluice doctor: every stage, then the user's privileges"
show "$sluice" doctor "${conn[@]}"

say "sluice catalog: what sluice_ro can see"
show "$sluice" catalog "${conn[@]}"

say "sluice query: revenue per country, as CSV"
show "$sluice" query "${conn[@]}" --sql "
  SELECT c.country, count(DISTINCT o.id) AS orders, sum(i.quantity * i.unit_price) AS revenue
  FROM customers c JOIN orders o ON o.customer_id = c.id JOIN order_items i ON i.order_id = o.id
  WHERE o.status <> 'refunded'
  GROUP BY c.country ORDER BY revenue DESC"

say "sluice query: the events table exported as Parquet"
show "$sluice" query "${conn[@]}" --sql "SELECT * FROM events" --format parquet --output "$work/events.parquet"
echo "events.parquet: $(wc -c < "$work/events.parquet") bytes" >&2

say "sluice query: a write never reaches the server"
if show "$sluice" query "${conn[@]}" --sql "DELETE FROM orders"; then
  echo "demo: the DELETE was not refused" >&2
  exit 1
fi

say "done: the cluster is stopped and $work removed"
