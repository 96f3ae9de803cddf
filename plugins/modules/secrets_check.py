#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
---
module: secrets_check
short_description: Check secret sources on the controller, in memory, before they are written anywhere
version_added: 0.1.0
description:
  - An action plugin that runs on the controller only and never contacts the host.
  - Reads every source file of the given secrets as it is on the controller's disk, reports the ones that are not
    vault-encrypted, decrypts the others in memory with the run's vault secrets, and checks the content (a Google
    service-account JSON, a PEM private key, an env file, an Oracle wallet directory).
  - Nothing decrypted is written to disk, and no value is returned or printed. Problems name the secret, a file, a line
    number or a key only.
  - Used by the C(armstack.deploy.secrets) role before it writes anything to the host.
options:
  items:
    description: The secrets to check.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Name of the secret, used in problems.
        type: str
        required: true
      kind:
        description: C(file) and C(env_file) are one file; C(directory) is a directory of files.
        type: str
        choices: [file, env_file, directory]
        default: file
      validate:
        description: The content check.
        type: str
        choices: [json_service_account, pem_private_key, env_file, oracle_wallet, none]
        default: none
      src_path:
        description: Absolute path of the source on the controller (a file, or a directory for C(kind=directory)).
        type: str
        default: ""
      content:
        description: An inline value instead of O(items[].src_path); should come from a C(!vault) scalar.
        type: raw
      required_files:
        description: Files an C(oracle_wallet) directory must hold.
        type: list
        elements: str
        default: []
  require_vault:
    description:
      - Whether a source that is not vault-encrypted (a file without the C($ANSIBLE_VAULT) header, an inline value
        not from a C(!vault) scalar) is a problem.
      - When V(false), such sources only cause a warning.
    type: bool
    default: true
attributes:
  action:
    description: The work is done by an action plugin on the controller.
    support: full
  async:
    description: Cannot run asynchronously.
    support: none
  check_mode:
    description: Reads only; runs the same in check mode.
    support: full
  diff_mode:
    description: Reads only; nothing to show a difference for.
    support: none
  platform:
    description: Runs on the controller.
    support: full
    platforms: all
notes:
  - Set C(no_log=true) on the task, since its arguments carry the inline values.
author:
  - armstack.deploy contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Check the secret sources before anything is written
  armstack.deploy.secrets_check:
    items:
      - name: firebase
        src_path: "{{ inventory_dir }}/files/secrets/firebase.json"
        validate: json_service_account
      - name: wallet
        kind: directory
        src_path: "{{ inventory_dir }}/files/secrets/wallet"
        validate: oracle_wallet
        required_files: [cwallet.sso, ewallet.p12, tnsnames.ora, sqlnet.ora]
  register: checked
  no_log: true

- name: Fail with the problems (names only, never values)
  ansible.builtin.assert:
    that: checked.problems | length == 0
    fail_msg: "{{ checked.problems | join('; ') }}"
"""

RETURN = r"""
problems:
  description: What is wrong, one entry per problem; names, files, line numbers and keys only.
  returned: always
  type: list
  elements: str
  sample: ["firebase: service-account keys missing or empty: private_key"]
files:
  description: For each secret, the files its source directory holds (relative paths); empty for files.
  returned: always
  type: dict
  sample: {"wallet": ["cwallet.sso", "ewallet.p12", "sqlnet.ora", "tnsnames.ora"], "firebase": []}
plain:
  description: The sources that are not vault-encrypted (item name and path, or "(inline content)").
  returned: always
  type: list
  elements: str
  sample: ["firebase: /srv/inventory/files/secrets/firebase.json"]
"""
