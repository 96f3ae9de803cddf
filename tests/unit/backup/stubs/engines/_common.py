# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared by the fake database tools the stub `docker exec` runs in the unit tests."""

import json
import os
import re
import sys


def log_argv():
    with open(os.environ.get("STUB_LOG", os.devnull), "a", encoding="utf-8") as log:
        log.write(json.dumps({"tool": os.path.basename(sys.argv[0]), "argv": sys.argv,
                              "env_keys": sorted(k for k in os.environ if k.startswith(("AWS_", "RESTIC_")))}) + "\n")


def mysql_password_from_option_file(argv):
    """Read --defaults-extra-file as MySQL does: [client] password="...", \\ escapes."""
    option = next((a for a in argv[1:2] if a.startswith("--defaults-extra-file=")), None)
    if option is None:
        return None
    with open(option.split("=", 1)[1], encoding="utf-8") as handle:
        text = handle.read()
    match = re.search(r'^password="(.*)"$', text, re.M)
    if not match:
        return None
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "s": " "}.get(m.group(1), m.group(1)), match.group(1))


def check_mysql_password():
    if any(a.startswith("--password") or re.match(r"^-p.", a) for a in sys.argv[1:]):
        print("password on the command line", file=sys.stderr)
        sys.exit(3)
    if mysql_password_from_option_file(sys.argv) != os.environ.get("STUB_MYSQL_PASSWORD"):
        print("ERROR 1045 (28000): Access denied for user 'root'@'localhost'", file=sys.stderr)
        sys.exit(1)
