# -*- coding: utf-8 -*-
# Copyright (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The secrets_check action plugin with a real DataLoader and vault secret:
plain sources refused, vaulted ones decrypted in memory (nothing written),
no value in its result."""

from __future__ import annotations

import json
import os
import types

import pytest

from ansible.parsing.dataloader import DataLoader
from ansible.parsing.vault import VaultLib, VaultSecret
from ansible.playbook.task import Task
from ansible.plugins.loader import init_plugin_loader

from ansible_collections.armstack.deploy.plugins.action.secrets_check import ActionModule

SECRET = VaultSecret(b"unit-test-vault-password")
VAULT = VaultLib([("default", SECRET)])
VALUE = "API_TOKEN=unit-secret-value-7c1d"


@pytest.fixture(scope="module", autouse=True)
def _plugins():
    init_plugin_loader()


def vaulted(data: bytes) -> bytes:
    return VAULT.encrypt(data)


def run(items, require_vault=True):
    loader = DataLoader()
    loader.set_vault_secrets([("default", SECRET)])
    task = Task()
    task.args = {"items": items, "require_vault": require_vault}
    # The action never uses the connection (it runs on the controller only);
    # ActionBase.run only looks at the shell's temporary directory.
    connection = types.SimpleNamespace(_shell=types.SimpleNamespace(tmpdir="/nonexistent"))
    action = ActionModule(task, connection=connection, play_context=None, loader=loader, templar=None, shared_loader_obj=None)
    return action.run(task_vars={})


@pytest.fixture
def sources(tmp_path):
    (tmp_path / "good.env").write_bytes(vaulted(VALUE.encode() + b"\n"))
    (tmp_path / "plain.env").write_bytes(VALUE.encode() + b"\n")
    (tmp_path / "bad.env").write_bytes(vaulted(b"export NOPE=1\n"))
    wallet = tmp_path / "wallet"
    wallet.mkdir()
    (wallet / "tnsnames.ora").write_bytes(vaulted(b"db = (description = (x = y))\n"))
    (wallet / "sqlnet.ora").write_bytes(vaulted(b"A = (B = c)\n"))
    return tmp_path


def test_vaulted_sources_pass_and_nothing_decrypted_is_written(sources):
    before = sorted(os.listdir(sources))
    result = run([{"name": "env", "src_path": str(sources / "good.env"), "validate": "env_file"},
                  {"name": "wallet", "kind": "directory", "src_path": str(sources / "wallet"), "validate": "oracle_wallet",
                   "required_files": ["tnsnames.ora", "sqlnet.ora"]}])
    assert result["problems"] == [] and result["plain"] == []
    assert result["files"] == {"env": [], "wallet": ["sqlnet.ora", "tnsnames.ora"]}
    assert sorted(os.listdir(sources)) == before
    assert "unit-secret-value" not in json.dumps(result)


def test_a_plain_text_source_is_refused_by_default(sources):
    result = run([{"name": "env", "src_path": str(sources / "plain.env"), "validate": "env_file"}])
    assert len(result["problems"]) == 1
    assert "not vault-encrypted" in result["problems"][0] and "plain.env" in result["problems"][0]
    assert "ansible-vault encrypt" in result["problems"][0]
    assert "unit-secret-value" not in json.dumps(result)


def test_plain_text_only_warns_when_allowed(sources):
    result = run([{"name": "env", "src_path": str(sources / "plain.env"), "validate": "env_file"}], require_vault=False)
    assert result["problems"] == []
    assert result["plain"] == ["env: " + str(sources / "plain.env")]


def test_plain_inline_content_is_refused_and_not_returned(sources):
    result = run([{"name": "inline", "content": VALUE, "validate": "env_file"}])
    assert result["plain"] == ["inline (inline content)"]
    assert "unit-secret-value" not in json.dumps(result)


def test_content_problems_of_a_vaulted_file(sources):
    result = run([{"name": "bad", "src_path": str(sources / "bad.env"), "validate": "env_file"}])
    assert result["problems"] == ["bad: line 1 is not KEY=VALUE (KEY: letters, digits, _; no spaces, no 'export')"]


def test_a_symlink_in_a_secret_directory_is_refused(sources):
    os.symlink("/etc/passwd", sources / "wallet" / "link")
    result = run([{"name": "wallet", "kind": "directory", "src_path": str(sources / "wallet")}])
    assert result["problems"] == ["wallet: link is a symlink; copy the file itself"]


def test_missing_sources(sources):
    result = run([{"name": "a", "src_path": str(sources / "none.env")},
                  {"name": "b", "kind": "directory", "src_path": str(sources / "good.env")}])
    assert result["problems"] == ["a: the source is not a file", "b: the source is not a directory"]
