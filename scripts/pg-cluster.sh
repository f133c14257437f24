#!/usr/bin/env bash
# A throwaway PostgreSQL cluster in a directory, for tests and benches (test/helpers/postgres.ts,
# src/bench/pg-spike.ts). Unix socket only (no TCP listener), socket in the cluster directory,
# trust authentication, superuser `sluice`, fsync on (commit costs are real).
#
#   scripts/pg-cluster.sh start <dir> [port] [-c name=value ...]   initdb (first time) + start
#   scripts/pg-cluster.sh stop <dir>                                fast shutdown
#   scripts/pg-cluster.sh url <dir> [port] [database]               a connection string for it
#   scripts/pg-cluster.sh bindir                                    where initdb/pg_ctl are
#
# `start` prints the connection string on its last line. The port only names the socket file
# (<dir>/.s.PGSQL.<port>): clusters in different directories never collide, default 5432.
#
# initdb refuses to run as root. As root the cluster belongs to an unprivileged user: `postgres`
# (created by Debian's postgresql package) or else `nobody`, and the commands run through
# runuser (or setpriv). The connecting process may stay root: trust authentication over the
# socket (mode 0777) accepts any local user. Binaries: `pg_config --bindir`, else the newest
# /usr/lib/postgresql/*/bin, else PATH. `.ci/run` installs Debian's `postgresql` when missing.
set -euo pipefail

die() { echo "pg-cluster: $*" >&2; exit 1; }

bindir() {
  local d
  if command -v pg_config >/dev/null 2>&1; then
    d=$(pg_config --bindir 2>/dev/null || true)
    if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return; fi
  fi
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return; fi
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v initdb)"; return
  fi
  return 1
}

# Runs a command as the cluster's owner (an unprivileged user when we are root).
as_owner() {
  local user="$1"; shift
  if [ "$(id -u)" -ne 0 ]; then "$@"; return; fi
  if command -v runuser >/dev/null 2>&1; then runuser -u "$user" -- "$@"
  else setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups -- "$@"; fi
}

owner_user() {
  if [ "$(id -u)" -ne 0 ]; then id -un; return; fi
  if id -u postgres >/dev/null 2>&1; then echo postgres; else echo nobody; fi
}

url() {
  local dir="$1" port="${2:-5432}" db="${3:-postgres}"
  # node-postgres and libpq both read the socket directory from `host`.
  local enc
  enc=$(printf '%s' "$dir" | sed -e 's/%/%25/g' -e 's/ /%20/g' -e 's/\//%2F/g')
  echo "postgresql://sluice@/${db}?host=${enc}&port=${port}"
}

cmd="${1:-}"
case "$cmd" in
  bindir)
    bindir || die "PostgreSQL server binaries (initdb, pg_ctl) not found; install Debian's postgresql"
    ;;
  start)
    dir="${2:?usage: pg-cluster.sh start <dir> [port] [-c name=value ...]}"
    port="${3:-5432}"
    shift $(( $# >= 3 ? 3 : 2 ))
    bin=$(bindir) || die "PostgreSQL server binaries (initdb, pg_ctl) not found; install Debian's postgresql"
    user=$(owner_user)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [ "$(id -u)" -eq 0 ] && chown "$user" "$dir"
    chmod 0700 "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      # --no-sync: initdb's own files need not survive a crash (a throwaway cluster); the server
      # itself runs with fsync=on below.
      as_owner "$user" "$bin/initdb" -D "$dir/data" --auth=trust -U sluice -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    fi
    opts="-k $dir -c listen_addresses='' -p $port -c fsync=on"
    for extra in "$@"; do opts="$opts $extra"; done
    as_owner "$user" "$bin/pg_ctl" -D "$dir/data" -o "$opts" -l "$dir/server.log" -w -t 60 start >/dev/null \
      || { tail -n 20 "$dir/server.log" >&2 || true; die "pg_ctl start failed"; }
    url "$dir" "$port"
    ;;
  stop)
    dir="${2:?usage: pg-cluster.sh stop <dir>}"
    [ -f "$dir/data/postmaster.pid" ] || exit 0
    bin=$(bindir) || die "PostgreSQL server binaries not found"
    as_owner "$(owner_user)" "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
    ;;
  url)
    url "${2:?usage: pg-cluster.sh url <dir> [port] [database]}" "${3:-5432}" "${4:-postgres}"
    ;;
  *)
    die "usage: pg-cluster.sh start|stop|url|bindir <dir> ..."
    ;;
esac
