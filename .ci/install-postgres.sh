#!/usr/bin/env bash
# Make PostgreSQL server binaries (initdb, pg_ctl, postgres) available for the
# local test cluster started by owlclaw.backends.hatchet.local.postgres.LocalPostgres.
# Debian/Ubuntu only; idempotent: does nothing when a server is installed.
set -euo pipefail

shopt -s nullglob
found=(/usr/lib/postgresql/*/bin/initdb)
shopt -u nullglob

if (( ${#found[@]} > 0 )); then
    echo "postgres already installed: ${found[*]}"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-postgres: no /usr/lib/postgresql/*/bin/initdb and no apt-get; install a PostgreSQL server (>= 14) by hand" >&2
    exit 1
fi

sudo_cmd=()
if [[ "$(id -u)" != 0 ]]; then
    sudo_cmd=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update
# Only the server binaries are used (LocalPostgres runs its own throw-away
# cluster on a free port); a system cluster the package may create is unused.
"${sudo_cmd[@]}" apt-get install -y --no-install-recommends postgresql

shopt -s nullglob
found=(/usr/lib/postgresql/*/bin/initdb)
shopt -u nullglob
if (( ${#found[@]} == 0 )); then
    echo "install-postgres: apt-get install postgresql did not provide /usr/lib/postgresql/*/bin/initdb" >&2
    exit 1
fi
echo "postgres installed: ${found[*]}"
