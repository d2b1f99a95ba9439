#!/usr/bin/env bash
# Runs the whole test suite against real servers (PostgreSQL, sshd, PgBouncer started by the
# tests themselves on loopback). PG_BIN selects the PostgreSQL server binaries (default: the
# newest /usr/lib/postgresql/*/bin). First the front end: web/dist is rebuilt from web/'s sources
# and must come out as committed (the binary embeds the committed files, so a source change
# without its rebuilt assets fails here), then its unit tests run.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) == 0 ]]; then
  scripts/install-deps.sh
else
  # Without root nothing can be installed: say what is missing before a long build fails on it.
  scripts/check-deps.sh
fi
if [[ -f web/package.json ]]; then
  (
    cd web
    if [[ ! -f node_modules/.package-lock.json ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
      npm ci --no-audit --no-fund
    fi
    npm run build
  )
  drift=$(git status --porcelain -- web/dist)
  if [[ -n $drift ]]; then
    echo "test: web/dist differs from what web/'s sources build; run \`npm run build\` in web/ and commit web/dist:" >&2
    echo "$drift" >&2
    exit 1
  fi
  (cd web && npm test)
fi
exec cargo nextest run --workspace --no-fail-fast "$@"
