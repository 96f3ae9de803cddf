#!/bin/sh
# Initialise the cluster on first start, as the official image does: the
# superuser $POSTGRES_USER (default postgres) with the password read from
# $POSTGRES_PASSWORD_FILE (if set), and the database $POSTGRES_DB (default
# "app"), owned by it. Then run the server in the foreground.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
user="${POSTGRES_USER:-postgres}"
# A first start that did not finish (killed, or the server could not start)
# is done again from scratch, as if the volume were new.
if [ -s "$PGDATA/PG_VERSION" ] && [ ! -e "$PGDATA/.armstack-initialised" ]; then
  find "$PGDATA" -mindepth 1 -delete
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
    initdb --username="$user" --pwfile="$POSTGRES_PASSWORD_FILE" --auth-local=trust --auth-host=scram-sha-256 -D "$PGDATA" >/dev/null
  else
    initdb --username="$user" --auth-local=trust --auth-host=scram-sha-256 -D "$PGDATA" >/dev/null
  fi
  printf "listen_addresses = '*'\n" >> "$PGDATA/postgresql.conf"
  # As the official image: password authentication from any address.
  printf "host all all all scram-sha-256\n" >> "$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
  createdb --username="$user" --owner="$user" "${POSTGRES_DB:-app}"
  pg_ctl -D "$PGDATA" -w -m fast stop >/dev/null
  touch "$PGDATA/.armstack-initialised"
fi
mkdir -p /run/postgresql
exec postgres -D "$PGDATA"
