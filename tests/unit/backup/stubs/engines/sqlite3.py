"""A fake sqlite3 command line (Python's sqlite3): FILE .dump | FILE "SQL" | [-bail] FILE < SQL.
As the real one, a script whose transaction never commits is rolled back at the end of input."""
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import log_argv  # noqa: E402

log_argv()
args = [a for a in sys.argv[1:] if a != "-bail"]
conn = sqlite3.connect(args[0], isolation_level=None)
if len(args) == 1:
    try:
        conn.executescript(sys.stdin.read())
    except sqlite3.Error as exc:
        print(f"Parse error: {exc}", file=sys.stderr)
        sys.exit(1)
    conn.close()  # an open transaction is rolled back
elif args[1] == ".dump":
    for line in conn.iterdump():
        print(line)
else:
    for row in conn.execute(args[1]):
        print("|".join(str(v) for v in row))
