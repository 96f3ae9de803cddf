# -*- coding: utf-8 -*-
# Copyright (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private content checks of the armstack.deploy.secrets_check action.

Every function takes the decrypted content as bytes (or a mapping of relative
path to bytes, for a directory) and returns a list of problems. A problem
names the secret, the file, a line number or a key, NEVER a value: the list
is printed when the play fails.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

try:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
except ImportError:  # pragma: no cover - ansible-core depends on cryptography
    load_pem_private_key = None

VAULT_HEADER = b"$ANSIBLE_VAULT;"
SERVICE_ACCOUNT_KEYS = ("type", "project_id", "private_key_id", "private_key", "client_email", "client_id", "token_uri")
PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)\r?\n-----END \1-----", re.S)
ENV_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
TNS_ENTRY = re.compile(r"(?im)^\s*([A-Za-z0-9_.\-,]+)\s*=\s*\(\s*description\s*=")
VALIDATORS = ("json_service_account", "pem_private_key", "env_file", "oracle_wallet", "none")


def is_vault_encrypted(raw):
    """Whether raw file bytes are an ansible-vault document."""
    return raw.lstrip().startswith(VAULT_HEADER)


def _text(data):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def check_pem_private_key(text, where):
    """Problems with a PEM private key (text), described without its content."""
    if text is None:
        return ["%s: not text (a PEM private key is ASCII)" % where]
    blocks = PEM_BLOCK.findall(text)
    if not blocks:
        return ["%s: no PEM block (expected -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)" % where]
    labels = [label for label, _body in blocks]
    keys = [(label, body) for label, body in blocks if label.endswith("PRIVATE KEY")]
    if not keys:
        return ["%s: holds %s, not a private key" % (where, ", ".join(labels))]
    if len(keys) > 1:
        return ["%s: holds %d private keys; one is expected" % (where, len(keys))]
    label, body = keys[0]
    if label == "OPENSSH PRIVATE KEY":
        return ["%s: OpenSSH key format; the OCI SDK needs PEM (convert: ssh-keygen -p -m PEM -f KEY)" % where]
    try:
        base64.b64decode("".join(line for line in body.splitlines() if ":" not in line), validate=True)
    except (ValueError, binascii.Error):
        return ["%s: the %s block is not valid base64" % (where, label)]
    if label == "ENCRYPTED PRIVATE KEY" or "Proc-Type: 4,ENCRYPTED" in body:
        return []  # passphrase-protected: structure checked, the passphrase is the app's
    if load_pem_private_key is not None:
        try:
            load_pem_private_key(("-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, body, label)).encode(), password=None)
        except Exception as exc:  # pylint: disable=broad-except  # unsupported algorithms raise their own types
            return ["%s: the %s does not load (%s)" % (where, label, type(exc).__name__)]
    return []


def check_service_account(data, where):
    text = _text(data)
    if text is None:
        return ["%s: not UTF-8 text" % where]
    try:
        doc = json.loads(text)
    except ValueError as exc:
        if hasattr(exc, "lineno"):
            return ["%s: not valid JSON (line %d, column %d)" % (where, exc.lineno, exc.colno)]
        return ["%s: not valid JSON" % where]  # pragma: no cover - json always gives a position
    if not isinstance(doc, dict):
        return ["%s: the JSON is not an object" % where]
    problems = []
    missing = [k for k in SERVICE_ACCOUNT_KEYS if not isinstance(doc.get(k), str) or not doc.get(k)]
    if missing:
        problems.append("%s: service-account keys missing or empty: %s" % (where, ", ".join(missing)))
    if doc.get("type") not in (None, "service_account"):
        problems.append('%s: "type" is not "service_account"' % where)
    if isinstance(doc.get("client_email"), str) and doc["client_email"] and "@" not in doc["client_email"]:
        problems.append("%s: client_email is not an e-mail address" % where)
    if isinstance(doc.get("token_uri"), str) and doc["token_uri"] and not doc["token_uri"].startswith("https://"):
        problems.append("%s: token_uri is not an https:// URL" % where)
    if isinstance(doc.get("private_key"), str) and doc["private_key"]:
        problems += check_pem_private_key(doc["private_key"], "%s private_key" % where)
    return problems


def check_env_file(data, where):
    text = _text(data)
    if text is None:
        return ["%s: not UTF-8 text" % where]
    problems, seen = [], {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = ENV_LINE.match(line)
        if not match:
            problems.append("%s: line %d is not KEY=VALUE (KEY: letters, digits, _; no spaces, no 'export')" % (where, number))
            continue
        key = match.group(1)
        if key in seen:
            problems.append("%s: line %d: %s is already set on line %d" % (where, number, key, seen[key]))
        else:
            seen[key] = number
    if not seen and not problems:
        problems.append("%s: no KEY=VALUE line" % where)
    return problems


def _balanced(text):
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def check_oracle_wallet(files, where, required):
    """files: {relative path: bytes} of the wallet directory."""
    problems = []
    for name in required:
        if name not in files:
            problems.append("%s: %s is missing (the DB driver needs %s)" % (where, name, ", ".join(required)))
        elif not files[name]:
            problems.append("%s: %s is empty" % (where, name))
    p12 = files.get("ewallet.p12")
    if p12 and p12[:1] != b"\x30":
        problems.append("%s: ewallet.p12 is not a PKCS#12 (ASN.1 DER) file" % where)
    if "tnsnames.ora" in files:
        text = _text(files["tnsnames.ora"])
        if text is None or not TNS_ENTRY.search(text):
            problems.append("%s: tnsnames.ora has no 'alias = (DESCRIPTION = ...)' entry" % where)
        elif not _balanced(text):
            problems.append("%s: tnsnames.ora has unbalanced parentheses" % where)
    if "sqlnet.ora" in files:
        text = _text(files["sqlnet.ora"])
        if text is None or not _balanced(text):
            problems.append("%s: sqlnet.ora is not text with balanced parentheses" % where)
    return problems


def check_file(data, validate, where):
    """Problems of one secret file's decrypted content."""
    if not data:
        return ["%s: the source is empty" % where]
    if validate == "json_service_account":
        return check_service_account(data, where)
    if validate == "pem_private_key":
        return check_pem_private_key(_text(data), where)
    if validate == "env_file":
        return check_env_file(data, where)
    return []


def check_directory(files, validate, where, required=()):
    """Problems of a secret directory, given {relative path: decrypted bytes}."""
    if not files:
        return ["%s: the source directory is empty" % where]
    if validate == "oracle_wallet":
        return check_oracle_wallet(files, where, list(required))
    return []
