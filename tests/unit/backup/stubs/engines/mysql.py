"""A fake mysql client loading a dump into $STUB_MYSQL_DB. With the file $STUB_MYSQL_FAIL_ONCE
present it writes half of the dump and fails (removing the file): a load that breaks midway."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import check_mysql_password, log_argv  # noqa: E402

log_argv()
check_mysql_password()
data = sys.stdin.buffer.read().replace(b"\n-- Dump completed on 2026-12-02 17:00:00\n", b"")
flag = os.environ.get("STUB_MYSQL_FAIL_ONCE", "")
with open(os.environ["STUB_MYSQL_DB"], "wb") as handle:
    if flag and os.path.exists(flag):
        os.unlink(flag)
        handle.write(data[: len(data) // 2])
        print("ERROR 1114 (HY000) at line 42: The table 'invoices' is full", file=sys.stderr)
        sys.exit(1)
    handle.write(data)
