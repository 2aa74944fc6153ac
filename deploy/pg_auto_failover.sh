#!/usr/bin/env bash
# PostgreSQL for taskapp with automatic failover (pg_auto_failover, Debian packages
# postgresql-15-auto-failover and pg-auto-failover-cli): one monitor, two data nodes,
# synchronous replication. docs/scaling.md says why; deploy/drill.py runs exactly this.
#
# Each subcommand prepares one role, on the host of that role:
#   pg_auto_failover.sh monitor PGDATA PORT          the monitor (its own small PostgreSQL)
#   pg_auto_failover.sh node PGDATA PORT NAME        a data node: the first one registered
#                                                    becomes the primary, the next one its
#                                                    synchronous standby (a base backup)
#   pg_auto_failover.sh run PGDATA                   the keeper (in production: the unit that
#                                                    `pg_autoctl show systemd --pgdata PGDATA` prints)
#   pg_auto_failover.sh stop PGDATA                  a clean stop of that role
#   pg_auto_failover.sh tune MONITOR_PORT           failover in about 10 s, not 50 s
#
# Environment: PGAF_HOSTNAME (how the other roles reach this host; 127.0.0.1), PGAF_MONITOR
# (the monitor's URI, for `node`: `pg_autoctl show uri --formation monitor` on the monitor),
# PGAF_AUTH (trust only on loopback; scram-sha-256 with a .pgpass elsewhere), PGAF_HOME (a
# private HOME/XDG base for pg_autoctl's state, as the drill uses; default: postgres's own),
# PG_BIN (/usr/lib/postgresql/15/bin), PGAF_SHARED_BUFFERS (128MB).
# PostgreSQL refuses to run as root: as root, every command runs as the postgres user.
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
HOSTNAME_=${PGAF_HOSTNAME:-127.0.0.1}
AUTH=${PGAF_AUTH:-trust}

as_postgres() {
  local env=(PATH="$PG_BIN:/usr/bin:/bin")
  if [ -n "${PGAF_HOME:-}" ]; then
    env+=(HOME="$PGAF_HOME" XDG_CONFIG_HOME="$PGAF_HOME/.config"
      XDG_DATA_HOME="$PGAF_HOME/.local/share" XDG_RUNTIME_DIR="$PGAF_HOME/run")
  fi
  if [ -n "${PGAF_SOCKETS:-}" ]; then env+=(PGHOST="$PGAF_SOCKETS"); fi
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- env "${env[@]}" "$@"
  else
    env "${env[@]}" "$@"
  fi
}

# pg_autoctl sizes memory as if it owned the host (25 % of RAM per instance) and puts the
# sockets in the distribution's directory: these lines, appended after its include line at
# the top of postgresql.conf, win.
overrides() {
  local pgdata=$1
  as_postgres "$PG_BIN/initdb" -D "$pgdata" --auth="$AUTH" -U postgres -E UTF8 --locale=C.UTF-8 >/dev/null
  {
    echo "listen_addresses = '$HOSTNAME_'"
    if [ -n "${PGAF_SOCKETS:-}" ]; then echo "unix_socket_directories = '$PGAF_SOCKETS'"; fi
    echo "shared_buffers = '${PGAF_SHARED_BUFFERS:-128MB}'"
    echo "maintenance_work_mem = '64MB'"
    echo "effective_cache_size = '1GB'"
    # A restarted primary's standby reconnects within a second, so commits waiting for
    # the synchronous standby resume within a second too (the default waits 5 s).
    echo "wal_retrieve_retry_interval = '1s'"
  } | as_postgres tee -a "$pgdata/postgresql.conf" >/dev/null
}

case "${1:-}" in
  monitor)
    pgdata=$2 port=$3
    overrides "$pgdata"
    as_postgres pg_autoctl create monitor --pgdata "$pgdata" --pgport "$port" \
      --hostname "$HOSTNAME_" --auth "$AUTH" --ssl-self-signed --pgctl "$PG_BIN/pg_ctl"
    as_postgres pg_autoctl config set --pgdata "$pgdata" postgresql.listen_addresses "$HOSTNAME_"
    ;;
  node)
    pgdata=$2 port=$3 name=$4
    # The first node is initialised here, with the overrides; a standby's data directory is
    # a base backup of the primary's, overrides included.
    if [ "${PGAF_FIRST:-}" = 1 ]; then overrides "$pgdata"; fi
    as_postgres pg_autoctl create postgres --pgdata "$pgdata" --pgport "$port" \
      --listen "$HOSTNAME_" --hostname "$HOSTNAME_" --name "$name" --auth "$AUTH" \
      --ssl-self-signed --monitor "${PGAF_MONITOR:?set PGAF_MONITOR to the monitor URI}" \
      --pgctl "$PG_BIN/pg_ctl"
    # A node lost is noticed by its peers (and demotes itself) after 3 s, not 20.
    as_postgres pg_autoctl config set --pgdata "$pgdata" timeout.network_partition_timeout 3
    ;;
  run)
    as_postgres pg_autoctl run --pgdata "$2"
    ;;
  stop)
    as_postgres pg_autoctl stop --pgdata "$2"
    ;;
  tune)
    port=$2
    # The monitor's defaults fail over a lost node after about 50 s. These, about 10 s.
    # primary_demote_timeout must stay above the keepers' network_partition_timeout (3 s,
    # set by `node`) plus a loop or two: the old primary must have demoted itself before the
    # standby is promoted, or a partition would have two primaries.
    as_postgres psql -q -h "$HOSTNAME_" -p "$port" -U postgres -d pg_auto_failover -v ON_ERROR_STOP=1 <<'SQL'
ALTER SYSTEM SET pgautofailover.health_check_period = 1000;
ALTER SYSTEM SET pgautofailover.health_check_timeout = 1000;
ALTER SYSTEM SET pgautofailover.health_check_retry_delay = 500;
ALTER SYSTEM SET pgautofailover.health_check_max_retries = 1;
ALTER SYSTEM SET pgautofailover.node_considered_unhealthy_timeout = 4000;
ALTER SYSTEM SET pgautofailover.primary_demote_timeout = 6000;
SELECT pg_reload_conf();
SQL
    ;;
  *)
    sed -n '2,25p' "$0" >&2
    exit 2
    ;;
esac
