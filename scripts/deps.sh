# Sourced by install-deps.sh and check-deps.sh: what Sluice's build and tests need, and how to
# tell that each need is really met.
#
# SLUICE_DEPS holds `need:debian-package` pairs; dep_present NEED succeeds only when the thing
# that is used is there: the library bindgen loads, the binary a test runs.

SLUICE_DEPS=(
  libclang:libclang-dev
  clang-headers:libclang-dev
  psql:postgresql-client
  initdb:postgresql
  pg_ctl:postgresql
  sshd:openssh-server
  ssh-keygen:openssh-client
  pgbouncer:pgbouncer
  openssl:openssl
  time:time
  ps:procps
  setpriv:util-linux
  runuser:util-linux
  npm:npm
  node:nodejs
  chromium:chromium
  fonts:fonts-liberation
  python3:python3
  python3-venv:python3-venv
)

# The oldest Node.js major the front end's tools (Vite 8, vitest 4) run on.
NODE_MIN_MAJOR=20

# What to say besides the Debian package when NEED is missing.
dep_note() {
  case $1 in
    node) echo "; Node.js $NODE_MIN_MAJOR or newer is needed (Debian 13 ships 20; Debian 12 ships 18, there use NodeSource's nodejs $NODE_MIN_MAJOR)" ;;
    chromium) echo "; it must start headless: /usr/bin/chromium --headless=new --no-sandbox --dump-dom about:blank" ;;
  esac
}

# The interpreter with botocore that the RDS IAM token parity test runs (installed by
# install-deps.sh into a venv outside the repo).
botocore_python() {
  echo "${SLUICE_BOTOCORE_PYTHON:-/var/cache/sluice-py/bin/python3}"
}

# The schemathesis executable the API fuzzing test runs (installed by install-deps.sh into the
# same venv as botocore).
schemathesis_bin() {
  echo "${SLUICE_SCHEMATHESIS:-$(dirname "$(botocore_python)")/schemathesis}"
}

# The server binaries' directory: $PG_BIN when set, else the newest Debian major.
pg_bin_dir() {
  if [[ -n ${PG_BIN:-} ]]; then
    echo "$PG_BIN"
    return
  fi
  local newest
  newest=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [[ -n $newest ]] && echo "$newest"
}

# The libclang shared object that bindgen (clang-sys) loads: libclang.so, libclang-N.so,
# libclang.so.N or libclang-N.so.N in LLVM's or the multiarch library directory. libclang-cpp
# (the C++ API library, shipped by a neighbouring package) is not it.
libclang_path() {
  local dir file base
  for dir in ${LIBCLANG_PATH:-} /usr/lib/llvm-*/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/lib; do
    for file in "$dir"/libclang.so "$dir"/libclang.so.* "$dir"/libclang-*.so "$dir"/libclang-*.so.*; do
      [[ -e $file ]] || continue
      base=${file##*/}
      [[ $base =~ ^libclang(-[0-9.]+)?\.so(\.[0-9.]+)?$ ]] || continue
      echo "$file"
      return 0
    done
  done
  return 1
}

# clang's own headers (stddef.h, stdbool.h) that bindgen parses pg_query's header with.
clang_headers_path() {
  local file
  for file in /usr/lib/llvm-*/lib/clang/*/include/stddef.h; do
    [[ -e $file ]] && { echo "$file"; return 0; }
  done
  return 1
}

# Where NEED is found, printed; fails when it is not.
dep_path() {
  local bin
  case $1 in
    libclang) libclang_path ;;
    clang-headers) clang_headers_path ;;
    initdb | pg_ctl)
      bin=$(pg_bin_dir) || return 1
      [[ -x $bin/$1 ]] && echo "$bin/$1" ;;
    sshd) [[ -x /usr/sbin/sshd ]] && echo /usr/sbin/sshd ;;
    pgbouncer)
      bin=$(command -v pgbouncer 2>/dev/null || true)
      [[ -n $bin ]] || { [[ -x /usr/sbin/pgbouncer ]] && bin=/usr/sbin/pgbouncer; }
      [[ -n $bin ]] && echo "$bin" ;;
    time) [[ -x /usr/bin/time ]] && echo /usr/bin/time ;;
    python3-venv) python3 -c 'import venv, ensurepip' 2>/dev/null && echo "python3 venv" ;;
    node) node_path ;;
    chromium) chromium_path ;;
    # A sans-serif face for Chromium to render the pages' text with (its package recommends
    # these; without any font, text has no glyphs in screenshots).
    fonts)
      [[ -e /usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf ]] &&
        echo /usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf ;;
    *) command -v "$1" 2>/dev/null ;;
  esac
}

dep_present() {
  dep_path "$1" >/dev/null 2>&1
}

# node, when `node --version` says a major of at least NODE_MIN_MAJOR.
node_path() {
  local bin version major
  bin=$(command -v node 2>/dev/null) || return 1
  version=$("$bin" --version 2>/dev/null) || return 1
  major=${version#v}
  major=${major%%.*}
  [[ $major =~ ^[0-9]+$ ]] && ((major >= NODE_MIN_MAJOR)) && echo "$bin ($version)"
}

# Debian's /usr/bin/chromium, when it really starts headless and renders a page (the browser
# tests drive exactly this binary), in a throwaway profile.
chromium_path() {
  local bin=/usr/bin/chromium profile dom
  [[ -x $bin ]] || return 1
  profile=$(mktemp -d) || return 1
  dom=$(timeout 60 "$bin" --headless=new --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --user-data-dir="$profile" \
    --dump-dom about:blank 2>/dev/null)
  rm -rf "$profile"
  [[ $dom == *"<html"* ]] && echo "$bin"
}

# The front end's npm packages the browser tests load (once web/package.json names them):
# prints each one web/node_modules lacks.
web_modules_missing() {
  local root=$1 module
  [[ -f $root/web/package.json ]] || return 0
  for module in playwright-core axe-core; do
    grep -q "\"$module\"" "$root/web/package.json" || continue
    [[ -f $root/web/node_modules/$module/package.json ]] || echo "$module"
  done
}
