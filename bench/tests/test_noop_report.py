# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bench/lib/noop_report.py reads the recap and the profile_roles table."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REPORT = os.path.join(ROOT, "bench", "lib", "noop_report.py")

LOG = """\
TASK [armstack.deploy.logrotate : Install logrotate] ***************************
ok: [armstack-local]

PLAY RECAP *********************************************************************
armstack-local             : ok=180  changed=0    unreachable=0    failed=0    skipped=34   rescued=0    ignored=0
localhost                  : ok=3    changed=1    unreachable=0    failed=0    skipped=1    rescued=0    ignored=0

Friday 04 December 2026  18:40:01 +0000 (0:00:00.512)       0:02:35.000 ******
===============================================================================
hardening -------------------------------------------------------------- 61.20s
backend ---------------------------------------------------------------- 40.05s
gather_facts ------------------------------------------------------------ 3.10s
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
total ----------------------------------------------------------------- 104.35s
"""


def test_one_line_per_run(tmp_path):
    log = tmp_path / "run.log"
    log.write_text(LOG, encoding="utf-8")
    out = subprocess.run([sys.executable, REPORT, str(log), "155.04", "run-1"], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[:4] == ["run-1", "155.0", "218", "1"]
    assert " ".join(out[4:]) == "hardening 61.2, backend 40.0, gather_facts 3.1"
