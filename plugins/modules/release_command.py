#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_command
short_description: Run a release command (migrations) in a one-off Compose container, bounded, with its output redacted
version_added: 0.1.0
description:
  - Runs C(docker compose run --rm --no-deps -T) for one service of a Compose project, such as the backend role's
    C(release_<colour>) service that runs a new release's migrations with the release's environment, env files and
    secret mounts.
  - The run is bounded by O(timeout); a run that takes longer is stopped (its container removed) and counts as failed.
  - The output is never trusted to be clean. The whole output is kept on the host in O(log_file) (root only, 0600), and
    only its last O(output_lines) lines are returned, with every secret value replaced by C([REDACTED]) - the values
    found in the files and directories of O(redact_paths) (the VALUE of each KEY=VALUE line, a one-line file's
    content, the long lines of a PEM key, the strings of a JSON document) - and with URL passwords and the value after
    keys such as C(password=) or C(token:) masked whatever they are.
  - Fails when the command exits non-zero or times out, with the redacted tail in the message.
options:
  project_src:
    description: Directory of the Compose project (its C(compose.yaml)).
    type: path
    required: true
  service:
    description: The service to run once.
    type: str
    required: true
  timeout:
    description: Seconds the command may run.
    type: int
    default: 300
  output_lines:
    description: How many of the last lines of the output to return (and quote on failure).
    type: int
    default: 40
  redact_paths:
    description:
      - Files and directories on the host whose secret values are taken out of the returned output, for example the
        env files and the secret files the service mounts.
      - Files larger than 1 MiB and files that are not UTF-8 text are skipped.
    type: list
    elements: path
    default: []
  log_file:
    description: Where the whole (unredacted) output is written, mode 0600; its directory is created (0750) if missing.
    type: path
    default: /var/log/armstack/release-command.log
attributes:
  check_mode:
    description: In check mode nothing is run; the module reports that it would run the command.
    support: full
  diff_mode:
    description: Nothing to compare.
    support: none
  platform:
    description: Runs on the host that has the Compose project.
    support: full
    platforms: posix
requirements:
  - Docker with the Compose v2 plugin (C(docker compose)) on the host.
notes:
  - The command's argv is the Compose service's C(command); this module never takes one, so no value of it reaches the
    module's arguments or a process list beyond Compose's own.
seealso:
  - module: community.docker.docker_compose_v2_run
author:
  - armstack.deploy contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Run the new release's migrations before it takes traffic
  armstack.deploy.release_command:
    project_src: /opt/armstack
    service: release_green
    timeout: 300
    redact_paths:
      - /etc/armstack/secrets/backend.env
      - /opt/armstack/secrets/backend
  register: migration
"""

RETURN = r"""
rc:
  description: Exit code of the command; V(-1) when it was stopped at the timeout.
  returned: when the command ran
  type: int
  sample: 0
timed_out:
  description: Whether the command was stopped at O(timeout).
  returned: when the command ran
  type: bool
  sample: false
duration:
  description: Seconds the run took.
  returned: when the command ran
  type: float
  sample: 4.21
output_tail:
  description: The last O(output_lines) lines of the output, secret values replaced by C([REDACTED]).
  returned: when the command ran
  type: list
  elements: str
  sample: ["INFO  [alembic.runtime.migration] Running upgrade 1a2b -> 3c4d, add orders"]
redactions:
  description: How many secret values were replaced in the whole output.
  returned: when the command ran
  type: int
  sample: 0
log_file:
  description: Where the whole output is, root only.
  returned: when the command ran
  type: str
  sample: /var/log/armstack/release-command.log
"""

import os
import time
import uuid

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.armstack.deploy.plugins.module_utils._redact import redact, secret_values


def _write_log(path, data):
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, mode=0o750)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def run_once(module, params):
    """Run the service once; returns (rc, timed_out, output bytes, seconds)."""
    name = "armstack-release-%s" % uuid.uuid4().hex[:12]
    docker = module.get_bin_path("docker", required=True)
    # timeout(1) runs the command in its own process group and signals the whole
    # group at the deadline (KILL 10 s after TERM), so a timeout stops everything
    # the compose client started; sh merges stderr into stdout, in order, and
    # gives the command no stdin.
    argv = ["/bin/sh", "-c", 'exec "$@" 2>&1 </dev/null', "sh",
            module.get_bin_path("timeout", required=True), "--kill-after=10", str(params["timeout"]),
            docker, "compose", "--project-directory", params["project_src"],
            "run", "--rm", "--no-deps", "-T", "--name", name, params["service"]]
    started = time.monotonic()
    rc, output, dummy = module.run_command(argv, encoding=None)
    seconds = time.monotonic() - started
    # 124: stopped by TERM, 137: by KILL; a command that exits 124 itself is not timed out.
    if rc in (124, 137) and seconds >= params["timeout"]:
        # Stop the container itself, not only the compose client.
        module.run_command([docker, "rm", "--force", name])
        return -1, True, output, seconds
    return rc, False, output, seconds


def main():
    module = AnsibleModule(
        argument_spec=dict(
            project_src=dict(type="path", required=True),
            service=dict(type="str", required=True),
            timeout=dict(type="int", default=300),
            output_lines=dict(type="int", default=40),
            redact_paths=dict(type="list", elements="path", default=[]),
            log_file=dict(type="path", default="/var/log/armstack/release-command.log"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["timeout"] < 1 or params["output_lines"] < 1:
        module.fail_json(msg="timeout and output_lines must be at least 1 (got %d and %d)"
                         % (params["timeout"], params["output_lines"]))
    if not os.path.isdir(params["project_src"]):
        module.fail_json(msg="project_src %s is not a directory; write the Compose project first" % params["project_src"])
    if module.check_mode:
        module.exit_json(changed=True, msg="check mode: would run service %s once" % params["service"])

    rc, timed_out, output, seconds = run_once(module, params)
    _write_log(params["log_file"], output)
    text = output.decode("utf-8", errors="replace")
    clean, redactions = redact(text, secret_values(params["redact_paths"]))
    tail = clean.splitlines()[-params["output_lines"]:]
    result = dict(changed=True, rc=rc, timed_out=timed_out, duration=round(seconds, 2), output_tail=tail,
                  redactions=redactions, log_file=params["log_file"])
    if timed_out:
        module.fail_json(msg="%s did not finish within %d s and was stopped. Last lines (secrets redacted; the whole "
                         "output is in %s, root only): %s" % (params["service"], params["timeout"], params["log_file"],
                                                              " | ".join(tail)), **result)
    if rc != 0:
        module.fail_json(msg="%s exited with %d after %.1f s. Last lines (secrets redacted; the whole output is in %s, "
                         "root only): %s" % (params["service"], rc, seconds, params["log_file"], " | ".join(tail)), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
