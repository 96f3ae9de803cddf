"""A fake pg_restore: --file=/dev/null reads and checks the archive; --dbname loads it in one
transaction into $STUB_PG_DB (STUB_PG_RESTORE_FAIL: fails, nothing written, as a rollback)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import log_argv  # noqa: E402

log_argv()
data = sys.stdin.buffer.read()
if not (data.startswith(b"PGDMP\n") and data.endswith(b"\nPGDMP-END\n")):
    print("pg_restore: error: could not read input file: end of file", file=sys.stderr)
    sys.exit(1)
if "--file=/dev/null" in sys.argv:
    sys.exit(0)
if os.environ.get("STUB_PG_RESTORE_FAIL"):
    print("pg_restore: error: could not execute query: ERROR:  disk full", file=sys.stderr)
    sys.exit(1)
with open(os.environ["STUB_PG_DB"], "wb") as handle:
    handle.write(data[len(b"PGDMP\n"):-len(b"\nPGDMP-END\n")])
