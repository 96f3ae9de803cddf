"""A fake mysqldump: checks the password in the option file on fd 3; dumps $STUB_MYSQL_DB."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import check_mysql_password, log_argv  # noqa: E402

log_argv()
check_mysql_password()
with open(os.environ["STUB_MYSQL_DB"], "rb") as handle:
    sys.stdout.buffer.write(handle.read() + b"\n-- Dump completed on 2026-12-02 17:00:00\n")
