#!/bin/sh
# A throw-away PostgreSQL cluster for tests and benches (issue 20): Debian's `postgresql` binaries,
# a data directory under DIR, listening on 127.0.0.1:PORT and on a Unix socket in DIR. Run as root
# (CI), the server runs as the `postgres` user, since initdb refuses root.
#
#   tools/pg-temp.sh start DIR PORT   # prints the LIVEHUB_DATABASE_URL of database `livehub`
#   tools/pg-temp.sh stop DIR
#   tools/pg-temp.sh createdb DIR PORT NAME   # one more empty database, prints its URL
set -eu
command="${1:?usage: pg-temp.sh start|stop|createdb DIR [PORT] [NAME]}"
dir="${2:?DIR}"
bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
[ -n "$bindir" ] && [ -x "$bindir/initdb" ] || { echo "pg-temp.sh: PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 2; }
as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case "$command" in
start)
    port="${3:?PORT}"
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_owner "$bindir/initdb" -D "$dir/data" -U livehub --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    # fsync stays on: the tests check what a committed write survives. Enough connections for
    # three nodes and the tests' own clients.
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=300 -c shared_buffers=64MB" \
        start </dev/null >"$dir/pg_ctl.log" 2>&1 || { cat "$dir/server.log" >&2; exit 1; }
    as_owner "$bindir/psql" -h "$dir" -p "$port" -U livehub -d postgres -qtAc "SELECT 1 FROM pg_database WHERE datname = 'livehub'" | grep -q 1 \
        || as_owner "$bindir/createdb" -h "$dir" -p "$port" -U livehub livehub
    echo "postgres://livehub@127.0.0.1:$port/livehub"
    ;;
createdb)
    port="${3:?PORT}"; name="${4:?NAME}"
    as_owner "$bindir/createdb" -h "$dir" -p "$port" -U livehub "$name"
    echo "postgres://livehub@127.0.0.1:$port/$name"
    ;;
stop)
    [ -f "$dir/data/postmaster.pid" ] && as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
    ;;
*)
    echo "pg-temp.sh: unknown command $command" >&2; exit 2 ;;
esac
