#!/usr/bin/env bash
# Fails, naming each one, when something Sluice's build or tests need cannot be found where it is
# used. CI runs it right after install-deps.sh, so a machine that happens to have a package
# installed by hand cannot hide a missing install step.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/deps.sh
. "$here/deps.sh"

missing=()
for dep in "${SLUICE_DEPS[@]}"; do
  name=${dep%%:*}
  package=${dep#*:}
  if path=$(dep_path "$name"); then
    [[ -n ${VERBOSE:-} ]] && printf 'check-deps: %-14s %s\n' "$name" "$path" >&2
  else
    missing+=("$name (Debian package $package$(dep_note "$name"))")
  fi
done
py=$(botocore_python)
if "$py" -c 'import botocore' >/dev/null 2>&1; then
  [[ -n ${VERBOSE:-} ]] && printf 'check-deps: %-14s %s\n' botocore "$py" >&2
else
  missing+=("botocore in $py (scripts/install-deps.sh installs it)")
fi
st=$(schemathesis_bin)
if "$st" --version 2>/dev/null | grep -q 'version 4\.'; then
  [[ -n ${VERBOSE:-} ]] && printf 'check-deps: %-14s %s\n' schemathesis "$st" >&2
else
  missing+=("schemathesis 4 at $st (scripts/install-deps.sh installs it)")
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  missing+=("cargo-nextest (cargo install --locked cargo-nextest)")
fi
root=$(cd "$here/.." && pwd)
for module in $(web_modules_missing "$root"); do
  missing+=("$module in web/node_modules (cd web && npm ci)")
done

if ((${#missing[@]})); then
  echo "check-deps: not found:" >&2
  printf '  %s\n' "${missing[@]}" >&2
  echo "check-deps: run scripts/install-deps.sh as root" >&2
  exit 1
fi
echo "check-deps: every build and test need is present" >&2
