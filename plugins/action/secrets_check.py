# -*- coding: utf-8 -*-
# Copyright (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of armstack.deploy.secrets_check (documented in plugins/modules/secrets_check.py).

Runs on the controller only. Reads each source file as it is on disk (to see
whether it is vault-encrypted), decrypts it in memory with the play's vault
secrets, checks the content, and returns problems and file lists, never a
value. Nothing decrypted is written anywhere.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.armstack.deploy.plugins.module_utils import _secrets_check as checks

try:  # ansible-core 2.19 and later: vaulted values carry a tag
    from ansible.parsing.vault import VaultHelper
except ImportError:  # pragma: no cover - older cores
    VaultHelper = None

display = Display()

ARGUMENT_SPEC = {
    "items": {
        "type": "list", "elements": "dict", "required": True,
        "options": {
            "name": {"type": "str", "required": True},
            "kind": {"type": "str", "choices": ["file", "env_file", "directory"], "default": "file"},
            "validate": {"type": "str", "choices": list(checks.VALIDATORS), "default": "none"},
            "src_path": {"type": "str", "default": ""},
            "content": {"type": "raw", "no_log": True},
            "required_files": {"type": "list", "elements": "str", "default": []},
        },
    },
    "require_vault": {"type": "bool", "default": True},
}


def _is_vaulted_value(value):
    """Whether an inline value came from a !vault scalar (or is still encrypted)."""
    if VaultHelper is None:  # pragma: no cover - older cores
        return type(value).__name__ in ("AnsibleVaultEncryptedUnicode", "EncryptedString")
    return VaultHelper.get_ciphertext(value, with_tags=False) is not None


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def _read(self, path):
        """(decrypted bytes, was the file vault-encrypted on disk), both read from the controller's disk."""
        with open(path, "rb") as handle:
            raw = handle.read()
        if not checks.is_vault_encrypted(raw):
            return raw, False
        try:
            data, _show = self._loader._get_file_contents(path)  # pylint: disable=protected-access
        except Exception as exc:  # pylint: disable=broad-except
            raise AnsibleActionFail("%s is vault-encrypted but cannot be decrypted with the vault secrets of this run: %s"
                                    % (path, type(exc).__name__)) from None
        return data, True

    def _check_item(self, item):
        name, kind, validate = item["name"], item["kind"], item["validate"]
        problems, files, plain = [], [], []
        if item.get("content") is not None:
            content = item["content"]
            if not _is_vaulted_value(content):
                plain.append("%s (inline content)" % name)
            data = content if isinstance(content, bytes) else str(content).encode("utf-8")
            problems += checks.check_file(data, validate, name)
            return problems, files, plain
        path = item["src_path"]
        if kind == "directory":
            if not os.path.isdir(path):
                return ["%s: the source is not a directory" % name], [], []
            contents = {}
            for root, dirs, names in os.walk(path):
                dirs.sort()
                for entry in sorted(dirs + names):
                    full = os.path.join(root, entry)
                    if os.path.islink(full):
                        return ["%s: %s is a symlink; copy the file itself" % (name, os.path.relpath(full, path))], [], []
                for entry in sorted(names):
                    full = os.path.join(root, entry)
                    rel = os.path.relpath(full, path)
                    data, vaulted = self._read(full)
                    if not vaulted:
                        plain.append("%s: %s" % (name, full))
                    contents[rel] = data
            files = sorted(contents)
            problems += checks.check_directory(contents, validate, name, item["required_files"])
            return problems, files, plain
        if not os.path.isfile(path):
            return ["%s: the source is not a file" % name], [], []
        data, vaulted = self._read(path)
        if not vaulted:
            plain.append("%s: %s" % (name, path))
        problems += checks.check_file(data, validate, name)
        return problems, files, plain

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        validation = ArgumentSpecValidator(ARGUMENT_SPEC).validate(self._task.args)
        if validation.error_messages:
            raise AnsibleActionFail("secrets_check: %s" % "; ".join(validation.error_messages))
        params = validation.validated_parameters
        problems, files, plain = [], {}, []
        for item in params["items"]:
            item_problems, item_files, item_plain = self._check_item(item)
            problems += item_problems
            files[item["name"]] = item_files
            plain += item_plain
        if plain:
            advice = ("not vault-encrypted (a decrypted file committed by mistake?): %s. Encrypt each with "
                      "`ansible-vault encrypt FILE` (inline values: `ansible-vault encrypt_string`)" % ", ".join(plain))
            if params["require_vault"]:
                problems.insert(0, "sources " + advice + "; secrets_require_vault refuses plain text")
            else:
                display.warning("SECRETS IN PLAIN TEXT: " + advice + ". secrets_require_vault is false, so they are used anyway.")
        result.update(changed=False, problems=problems, files=files, plain=plain)
        return result
