#!/bin/sh
# Runs as root first: make the data folder the postgres user's, initialise it once with
# POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB (default: the user's name, as the official image
# does), then run the server as postgres.
set -eu
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
mkdir -p "$PGDATA" /var/run/postgresql
chown -R postgres:postgres "$PGDATA" /var/run/postgresql
user="${POSTGRES_USER:-postgres}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  printf '%s\n' "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}" > /tmp/pwfile
  chown postgres /tmp/pwfile
  as_postgres initdb -D "$PGDATA" -U "$user" --pwfile=/tmp/pwfile -A scram-sha-256 --auth-local=trust > /dev/null
  rm -f /tmp/pwfile
  as_postgres pg_ctl -D "$PGDATA" -o "-c listen_addresses= -k /var/run/postgresql" -w start > /dev/null
  database="${POSTGRES_DB:-$user}"
  if [ "$database" != postgres ]; then
    as_postgres psql -h /var/run/postgresql -U "$user" -d postgres -q -c "CREATE DATABASE \"$database\""
  fi
  as_postgres pg_ctl -D "$PGDATA" -m fast -w stop > /dev/null
fi
if [ "$1" = postgres ]; then
  shift
  exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA" -k /var/run/postgresql "$@"
fi
exec "$@"
