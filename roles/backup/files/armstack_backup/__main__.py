# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""python3 -m armstack_backup: the same as /usr/local/sbin/armstack-backup."""

import sys

from armstack_backup.cli import main

sys.exit(main())
