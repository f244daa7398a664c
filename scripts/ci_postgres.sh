#!/usr/bin/env bash
# A throwaway PostgreSQL server for the vote-storage tests (tests/test_votes.py, bench/bench_votes.py).
#
# Installs Debian's `postgresql` package when it is missing (apt-get; needs root), creates a fresh cluster in a
# new folder under /tmp, starts it on 127.0.0.1 only (a free port, trust auth: local and disposable), creates a
# database, and prints on stdout the lines to eval; everything else goes to stderr:
#
#     eval "$(scripts/ci_postgres.sh)"        # exports LLMLAB_TEST_POSTGRES_URL and LLMLAB_TEST_POSTGRES_DIR
#     python -m pytest -q tests/test_votes.py
#     scripts/ci_postgres.sh stop "$LLMLAB_TEST_POSTGRES_DIR"   # stops the server and deletes the cluster
#
# PostgreSQL refuses to run as root: as root the server runs as the `postgres` user the package creates.
set -euo pipefail

log() { echo "ci_postgres: $*" >&2; }

as_owner() {  # run a PostgreSQL binary as the cluster's owner
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_bin() {  # the newest installed server's bin folder
  local bins
  bins=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$bins" ] && [ -x "$bins/pg_ctl" ] && echo "$bins"
}

if [ "${1:-}" = "stop" ]; then
  dir=${2:?usage: ci_postgres.sh stop DIR}
  case "$dir" in /tmp/llmlab-pg.*) ;; *) log "refusing to delete $dir (not a cluster this script made)"; exit 2 ;; esac
  bin=$(pg_bin) || { log "no PostgreSQL installed"; exit 1; }
  as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || log "server in $dir was not running"
  rm -rf "$dir"
  log "stopped and removed $dir"
  exit 0
fi

if ! bin=$(pg_bin); then
  log "installing Debian's postgresql package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  # The package would start its own service on port 5432; a policy-rc.d shim (unless one exists) prevents that.
  shim=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    shim=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$shim" && chmod +x "$shim"
  fi
  apt-get install -y -qq postgresql >&2
  [ -n "$shim" ] && rm -f "$shim"
  bin=$(pg_bin) || { log "postgresql installed but no pg_ctl found"; exit 1; }
fi

dir=$(mktemp -d /tmp/llmlab-pg.XXXXXX)
chmod 755 "$dir"
[ "$(id -u)" = 0 ] && chown postgres: "$dir"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
user=llmlab
db=llmlab_test

as_owner "$bin/initdb" -D "$dir/data" -U "$user" -A trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; exit 1; }
as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c max_connections=200" start >&2 \
  || { cat "$dir/server.log" >&2; exit 1; }
as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U "$user" "$db"

log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port, cluster in $dir"
log "stop it with: scripts/ci_postgres.sh stop $dir"
echo "export LLMLAB_TEST_POSTGRES_URL=postgresql+psycopg://$user@127.0.0.1:$port/$db"
echo "export LLMLAB_TEST_POSTGRES_DIR=$dir"
