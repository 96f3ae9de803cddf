# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only callback: kills ansible-playbook, and everything in its process
group, with SIGKILL when the task named by ARMSTACK_KILL_AT_TASK starts.

It stands for the operator's lost SSH session, a CI job cancelled, a killed
terminal: the play stops between two tasks without a chance to clean up.
Enabled by the backend verifier with ANSIBLE_CALLBACKS_ENABLED; never shipped
in a role.
"""

from __future__ import annotations

import os
import signal

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: kill_at_task
type: aggregate
short_description: Kill the play when a named task starts (tests only)
description:
  - Sends SIGKILL to the process group of ansible-playbook when a task whose name ends with
    the value of the environment variable E(ARMSTACK_KILL_AT_TASK) starts.
requirements:
  - enabled in callbacks_enabled
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "kill_at_task"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_task_start(self, task, is_conditional):
        target = os.environ.get("ARMSTACK_KILL_AT_TASK", "")
        if target and task.get_name().endswith(target):
            self._display.display(f"KILLED AT TASK: {task.get_name()}")
            os.killpg(os.getpgid(0), signal.SIGKILL)
