#!/bin/sh
# Initialise the cluster on first start (database $POSTGRES_DB, default "app"),
# then run the server in the foreground.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initdb --username=postgres --auth-local=trust --auth-host=scram-sha-256 -D "$PGDATA" >/dev/null
  printf "listen_addresses = '*'\n" >> "$PGDATA/postgresql.conf"
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
  createdb "${POSTGRES_DB:-app}"
  pg_ctl -D "$PGDATA" -w -m fast stop >/dev/null
fi
mkdir -p /run/postgresql
exec postgres -D "$PGDATA"
