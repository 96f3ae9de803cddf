"""A fake `systemctl show UNIT`: the properties come from $STUB_SYSTEMCTL_SHOW."""
import os
import sys

if sys.argv[1:2] == ["show"]:
    print(os.environ.get("STUB_SYSTEMCTL_SHOW", "").replace(";", "\n"))
