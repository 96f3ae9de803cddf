#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deploy_log
short_description: Record a deploy event on the host, as one JSON line in a log file and in the journal
version_added: 0.1.0
description:
  - Appends one JSON object on one line to O(path) for a rollout, a failed rollout, a rollback, a maintenance switch
    or a release command, with C(time) (UTC, ISO 8601), C(event), C(result) and the O(fields) given, and sends the same
    line to the journal (C(journalctl -t armstack-deploy)) through C(logger).
  - The line is written with one C(write) on a file opened for appending, so concurrent writers never interleave
    within a line, and a killed run leaves no half line.
  - Only what identifies a release belongs in a deploy log (images, digests, slots, who, how long); the module refuses
    field names that look like secrets (C(password), C(token), C(secret), C(key)) so that a careless caller cannot
    write one.
options:
  path:
    description: The log file. Its directory is created (0750) if missing; the file is created 0640.
    type: path
    default: /var/log/armstack/deploy.log
  event:
    description: What happened.
    type: str
    required: true
    choices: [rollout, rollback, maintenance, release_command]
  result:
    description: How it ended.
    type: str
    required: true
    choices: [ok, failed]
  fields:
    description:
      - More of the entry, for example C(image), C(digest), C(from_slot), C(to_slot), C(user), C(duration_s).
      - Names are lower-case letters, digits and C(_); values are strings, numbers, booleans or null.
    type: dict
    default: {}
  journal:
    description: Whether to send the line to the journal (syslog) too, with the identifier O(identifier).
    type: bool
    default: true
  identifier:
    description: The journal's identifier (C(SYSLOG_IDENTIFIER)) of the entries.
    type: str
    default: armstack-deploy
attributes:
  check_mode:
    description: In check mode nothing is written; the module returns the entry it would write, changed.
    support: full
  diff_mode:
    description: An appended line has nothing to compare.
    support: none
  platform:
    description: Any POSIX host; the journal needs C(logger) (util-linux).
    support: full
    platforms: posix
author:
  - armstack.deploy contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Record the rollout
  armstack.deploy.deploy_log:
    event: rollout
    result: ok
    fields:
      image: registry.example.com/app:1.4.2
      digest: sha256:0123abcd...
      from_slot: blue
      to_slot: green
      user: "{{ lookup('ansible.builtin.env', 'USER') }}"
      duration_s: 41.2
"""

RETURN = r"""
entry:
  description: The entry written (or, in check mode, that would be written).
  returned: always
  type: dict
  sample: {"time": "2026-12-06T21:40:02Z", "event": "rollout", "result": "ok", "image": "registry.example.com/app:1.4.2"}
path:
  description: The log file.
  returned: always
  type: str
  sample: /var/log/armstack/deploy.log
"""

import datetime
import json
import os
import re

from ansible.module_utils.basic import AnsibleModule

FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}\Z")
SECRET_LIKE = re.compile(r"(passw|token|secret|key|credential)")
RESERVED = ("time", "event", "result")


def check_fields(fields):
    """The reason the fields cannot be written, or None."""
    for name, value in fields.items():
        if not isinstance(name, str) or not FIELD_NAME.match(name):
            return "field names are lower-case letters, digits and _ (got %r)" % (name,)
        if name in RESERVED:
            return "field %s is set by the module" % name
        if SECRET_LIKE.search(name):
            return "field %s looks like a secret; a deploy log records releases, never credentials" % name
        if value is not None and not isinstance(value, (str, int, float, bool)):
            return "field %s: expected a string, a number, a boolean or null (got %s)" % (name, type(value).__name__)
    return None


def make_entry(event, result, fields, now=None):
    now = now or datetime.datetime.now(datetime.timezone.utc)
    entry = {"time": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "event": event, "result": result}
    entry.update(fields)
    return entry


def line_of(entry):
    # ensure_ascii: no raw control character or line separator can end the line early.
    return json.dumps(entry, ensure_ascii=True, separators=(",", ":")) + "\n"


def append(path, line):
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, mode=0o750)
        os.chmod(directory, 0o750)
    created = not os.path.exists(path)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        if created:
            # Whatever the umask: an existing file keeps the mode logrotate gave it.
            os.fchmod(fd, 0o640)
        data = line.encode("ascii")
        written = os.write(fd, data)
        if written != len(data):
            raise OSError("short write to %s (%d of %d bytes)" % (path, written, len(data)))
    finally:
        os.close(fd)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default="/var/log/armstack/deploy.log"),
            event=dict(type="str", required=True, choices=["rollout", "rollback", "maintenance", "release_command"]),
            result=dict(type="str", required=True, choices=["ok", "failed"]),
            fields=dict(type="dict", default={}),
            journal=dict(type="bool", default=True),
            identifier=dict(type="str", default="armstack-deploy"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    problem = check_fields(params["fields"])
    if problem:
        module.fail_json(msg="deploy_log: " + problem)
    if not FIELD_NAME.match(params["identifier"].replace("-", "_")):
        module.fail_json(msg="deploy_log: identifier must be letters, digits, - and _ (got %r)" % params["identifier"])
    entry = make_entry(params["event"], params["result"], params["fields"])
    result = dict(changed=True, entry=entry, path=params["path"])
    if module.check_mode:
        module.exit_json(**result)
    line = line_of(entry)
    try:
        append(params["path"], line)
    except OSError as exc:
        module.fail_json(msg="deploy_log: cannot append to %s: %s" % (params["path"], exc), **result)
    if params["journal"]:
        logger = module.get_bin_path("logger")
        if logger is None:
            module.warn("logger (util-linux) is not installed: the entry is in %s only, not in the journal" % params["path"])
        else:
            priority = "user.info" if params["result"] == "ok" else "user.err"
            # The line on stdin, not in the argument list.
            rc, dummy, err = module.run_command([logger, "--tag", params["identifier"], "--priority", priority], data=line.rstrip("\n"))
            if rc != 0:
                module.warn("logger failed (%d): the entry is in %s only: %s" % (rc, params["path"], err.strip()))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
