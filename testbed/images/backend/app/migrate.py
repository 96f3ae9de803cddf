"""The reference backend's release command: applies migrations/NNN_*.sql up to
MIGRATIONS_UPTO (default: all) to PostgreSQL, each in its own transaction,
recorded in schema_migrations. Exits non-zero on the first failing one
(that one is rolled back; the ones before stay, as with Alembic)."""

from __future__ import annotations

import glob
import os
import re
import sys

import psycopg

from settings import database_conninfo


def main():
    conninfo = database_conninfo()
    if conninfo is None:
        print("migrate: DB_HOST is not set; nothing to migrate")
        return 0
    upto = int(os.environ.get("MIGRATIONS_UPTO", "999"))
    here = os.path.dirname(os.path.abspath(__file__))
    files = sorted(glob.glob(os.path.join(here, "migrations", "*.sql")))
    with psycopg.connect(**conninfo) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at timestamptz DEFAULT now())")
        conn.commit()
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for path in files:
            version = int(re.match(r"(\d+)_", os.path.basename(path)).group(1))
            if version > upto or version in done:
                continue
            print("migrate: applying %s" % os.path.basename(path), flush=True)
            try:
                with conn.transaction():
                    with open(path, encoding="utf-8") as handle:
                        conn.execute(handle.read())
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            except psycopg.Error as exc:
                print("migrate: %s FAILED: %s" % (os.path.basename(path), exc), flush=True)
                return 1
    print("migrate: up to date (%d applied before)" % len(done), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
