"""A fake pg_dump: the "database" is the file $STUB_PG_DB; the archive is PGDMP + it + an end marker."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import log_argv  # noqa: E402

log_argv()
if os.environ.get("STUB_PG_DUMP_FAIL"):
    print('pg_dump: error: database "app" does not exist', file=sys.stderr)
    sys.exit(1)
with open(os.environ["STUB_PG_DB"], "rb") as handle:
    sys.stdout.buffer.write(b"PGDMP\n" + handle.read() + b"\nPGDMP-END\n")
