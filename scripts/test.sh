#!/usr/bin/env bash
# Runs the whole test suite against real servers (PostgreSQL, sshd, PgBouncer started by the
# tests themselves on loopback). PG_BIN selects the PostgreSQL server binaries (default: the
# newest /usr/lib/postgresql/*/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) == 0 ]]; then
  scripts/install-deps.sh
else
  # Without root nothing can be installed: say what is missing before a long build fails on it.
  scripts/check-deps.sh
fi
exec cargo nextest run --workspace --no-fail-fast "$@"
