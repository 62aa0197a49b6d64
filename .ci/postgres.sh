#!/usr/bin/env bash
# A throwaway PostgreSQL server for the checkpointer tests (tests/test_graph_postgres.py).
#   .ci/postgres.sh start [--install]   start one; print "URI DIR" (--install: apt-get Debian's postgresql if absent)
#   .ci/postgres.sh stop DIR            stop it and remove DIR
# The cluster lives in a fresh temp folder, owned by a non-root user (initdb refuses root), trusts
# local connections and listens on 127.0.0.1 on a free port only.
set -euo pipefail

server_bin() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$bin" ] && command -v pg_ctl >/dev/null; then bin=$(dirname "$(readlink -f "$(command -v pg_ctl)")"); fi
  if [ -n "$bin" ] && [ -x "$bin/initdb" ]; then echo "$bin"; fi
}

as_owner() {  # run "$@" as the cluster's owner (postgres when we are root)
  if [ "$(id -u)" = 0 ]; then runuser -u "$OWNER" -- "$@"; else "$@"; fi
}

case "${1:-}" in
  start)
    bin=$(server_bin)
    if [ -z "$bin" ] && [ "${2:-}" = --install ]; then
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2 || true
      fi
      bin=$(server_bin)
    fi
    [ -n "$bin" ] || { echo "no PostgreSQL server (initdb/pg_ctl): apt-get install postgresql" >&2; exit 1; }
    dir=$(mktemp -d "${TMPDIR:-/tmp}/agentwm-pg.XXXXXX")
    OWNER=$(id -un)
    if [ "$(id -u)" = 0 ]; then
      OWNER=postgres
      id -u postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
      chown "$OWNER" "$dir"
    fi
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    if ! as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1; then
      cat "$dir/initdb.log" >&2; exit 1
    fi
    if ! as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null; then
      cat "$dir/server.log" >&2; exit 1
    fi
    echo "postgresql://postgres@127.0.0.1:$port/postgres $dir"
    ;;
  stop)
    dir=${2:?usage: .ci/postgres.sh stop DIR}
    bin=$(server_bin)
    OWNER=$(stat -c %U "$dir")
    [ -z "$bin" ] || as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  *)
    echo "usage: .ci/postgres.sh start [--install] | stop DIR" >&2; exit 2
    ;;
esac
