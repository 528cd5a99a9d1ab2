#!/bin/sh
# What the official postgres image's entrypoint does, in short: on an empty
# data directory run initdb (superuser "postgres", password POSTGRES_PASSWORD),
# then the /docker-entrypoint-initdb.d/*.sql and *.sh files against a
# socket-only server; then run the command as the postgres user.
set -eu

as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

if [ "${1:-}" = postgres ] && [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set (the superuser's password)}"
        pwfile=$(mktemp)
        printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
        chown postgres "$pwfile"
        as_postgres initdb -D "$PGDATA" --username=postgres --pwfile="$pwfile" \
            --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 >/dev/null
        rm -f "$pwfile"
        printf "listen_addresses = '*'\n" >> "$PGDATA/postgresql.conf"
        printf 'host all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
        # socket only while the init files run, so a healthcheck over TCP
        # passes only once they are done
        as_postgres pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
        for f in /docker-entrypoint-initdb.d/*; do
            case "$f" in
                *.sql) echo "entrypoint: running $f"
                       as_postgres psql -v ON_ERROR_STOP=1 --no-psqlrc -U postgres -d postgres -f "$f" ;;
                *.sh)  echo "entrypoint: running $f"; . "$f" ;;
                *) ;;
            esac
        done
        as_postgres pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
        echo "entrypoint: database initialised"
    fi
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$@"
fi
exec "$@"
