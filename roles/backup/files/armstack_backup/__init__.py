# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""armstack-backup: the restic runner the `backup` role installs.

Installed under /usr/local/lib/armstack-backup; /usr/local/sbin/armstack-backup
is the thin entry point the systemd units, the playbooks and an operator call.
Standard library only. One module per concern:

  util        errors, the redacting log, atomic writes, checksums
  config      the configuration file and its checks (runner side)
  restic      restic: environment, exit codes, lock retries, bounded probes
  state       state.json, the textfile metrics, the history log
  containers  docker: quiesce (stop, always start again), volumes
  engines     dump / restore / check commands per database engine
  jobs        backups of jobs, checksum manifests, empty-backup checks
  maintenance forget --prune and check
  restore     restores: staging, verification, safety snapshot, swap
  drill       restore drills
  hashpipe    the dump wrapper restic runs (stdlib only, run as a script)
  cli         the command line
"""

__version__ = "2.0.0"
