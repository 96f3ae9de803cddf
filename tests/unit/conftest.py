# -*- coding: utf-8 -*-
# Copyright (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Shared pytest set-up for the unit tests of armstack.deploy.

Makes ``ansible_collections.armstack.deploy`` importable from this checkout
(the same link testbed/lib.sh creates: .cache/collections/ansible_collections/
armstack/deploy -> the checkout) and offers ``run_module`` to run a module's
main() with arguments and catch its exit_json/fail_json.
"""

from __future__ import annotations

import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# ansible-test units runs on a tree that already is ansible_collections/armstack/deploy.
IN_COLLECTION_TREE = REPO_ROOT.split(os.sep)[-3:] == ['ansible_collections', 'armstack', 'deploy']
if IN_COLLECTION_TREE:
    COLLECTIONS_PATH = os.path.dirname(os.path.dirname(os.path.dirname(REPO_ROOT)))
else:
    COLLECTIONS_PATH = os.path.join(REPO_ROOT, '.cache', 'collections')
FIXTURES = os.path.join(REPO_ROOT, 'tests', 'unit', 'fixtures')


def _ensure_collection_link():
    namespace_dir = os.path.join(COLLECTIONS_PATH, 'ansible_collections', 'armstack')
    link = os.path.join(namespace_dir, 'deploy')
    if os.path.lexists(link):
        return
    os.makedirs(namespace_dir, exist_ok=True)
    try:
        os.symlink(REPO_ROOT, link)
    except FileExistsError:  # another test process was quicker
        pass


if not IN_COLLECTION_TREE:
    _ensure_collection_link()
if COLLECTIONS_PATH not in sys.path:
    sys.path.insert(0, COLLECTIONS_PATH)

from ansible.module_utils import basic  # noqa: E402  pylint: disable=wrong-import-position
from ansible.module_utils.testing import patch_module_args  # noqa: E402  pylint: disable=wrong-import-position


class ModuleExit(Exception):
    """Raised instead of AnsibleModule.exit_json."""

    def __init__(self, result):
        super(ModuleExit, self).__init__(result)
        self.result = result


class ModuleFail(Exception):
    """Raised instead of AnsibleModule.fail_json."""

    def __init__(self, result):
        super(ModuleFail, self).__init__(result.get('msg'))
        self.result = result


class ModuleRun(object):
    def __init__(self, monkeypatch):
        self.warnings = []
        runner = self

        def exit_json(self, **kwargs):  # pylint: disable=unused-argument
            kwargs.setdefault('changed', False)
            raise ModuleExit(kwargs)

        def fail_json(self, msg, **kwargs):  # pylint: disable=unused-argument
            kwargs['failed'] = True
            kwargs['msg'] = msg
            raise ModuleFail(kwargs)

        def warn(self, warning):  # pylint: disable=unused-argument
            runner.warnings.append(warning)

        monkeypatch.setattr(basic.AnsibleModule, 'exit_json', exit_json)
        monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail_json)
        monkeypatch.setattr(basic.AnsibleModule, 'warn', warn)

    def __call__(self, module, args, check_mode=False, expect_failure=False):
        """Run module.main() with args; return the result dict.

        With expect_failure=True the run must end in fail_json, otherwise in
        exit_json; the other outcome fails the test with the module's result.
        """
        args = dict(args)
        if check_mode:
            args['_ansible_check_mode'] = True
        with patch_module_args(args):
            try:
                module.main()
            except ModuleExit as exc:
                if expect_failure:
                    pytest.fail('expected the module to fail, it returned %r' % (exc.result,))
                return exc.result
            except ModuleFail as exc:
                if not expect_failure:
                    pytest.fail('the module failed: %s\n%r' % (exc.result.get('msg'), exc.result))
                return exc.result
        pytest.fail('the module returned without exit_json or fail_json')
        return None


@pytest.fixture
def run_module(monkeypatch):
    """``run_module(module, args, check_mode=False, expect_failure=False)``; ``run_module.warnings``."""
    return ModuleRun(monkeypatch)


def put_on_path(monkeypatch, bin_dir, stubs):
    """Write each {name: shell script} of `stubs` as an executable in bin_dir and put bin_dir first on PATH."""
    os.makedirs(str(bin_dir), exist_ok=True)
    for name, source in stubs.items():
        path = os.path.join(str(bin_dir), name)
        with open(path, 'w') as handle:
            handle.write(source)
        os.chmod(path, 0o755)
    monkeypatch.setenv('PATH', '%s:%s' % (bin_dir, os.environ['PATH']))


@pytest.fixture
def fixtures_dir():
    return FIXTURES


# A Compose override file with Compose's own YAML tag `!override`. It lives here,
# not in fixtures/, because it is not plain YAML: yamllint (ansible-test sanity)
# cannot construct the tag, while Compose and memory_headroom read it.
COMPOSE_OVERRIDE = """\
---
services:
  redis:
    mem_limit: ${REDIS_MEM:-48m}
  caddy:
    ports: !override
      - "443:443"
  worker:
    deploy:
      replicas: 2
"""


@pytest.fixture
def compose_override(tmp_path):
    """The path of a compose.override.yaml (see COMPOSE_OVERRIDE)."""
    path = tmp_path / 'compose.override.yaml'
    path.write_text(COMPOSE_OVERRIDE, encoding='utf-8')
    return str(path)
