# -*- coding: utf-8 -*-
# Copyright (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The content checks of the secrets role, on bytes in memory."""

from __future__ import annotations

import json

import pytest

from ansible_collections.armstack.deploy.plugins.module_utils import _secrets_check as checks

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
except ImportError:  # pragma: no cover
    pytest.skip("cryptography is needed", allow_module_level=True)


def pem_key():
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def service_account(**overrides):
    doc = {"type": "service_account", "project_id": "demo", "private_key_id": "k1", "private_key": pem_key(),
           "client_email": "svc@demo.iam.gserviceaccount.com", "client_id": "123", "token_uri": "https://oauth2.googleapis.com/token"}
    doc.update(overrides)
    return json.dumps(doc).encode()


def test_vault_header_is_recognised():
    assert checks.is_vault_encrypted(b"$ANSIBLE_VAULT;1.1;AES256\n3031")
    assert checks.is_vault_encrypted(b"\n$ANSIBLE_VAULT;1.2;AES256;prod\n")
    assert not checks.is_vault_encrypted(b"API_TOKEN=plain\n")
    assert not checks.is_vault_encrypted(b"")


def test_a_good_service_account_passes():
    assert checks.check_file(service_account(), "json_service_account", "sa") == []


@pytest.mark.parametrize(("data", "expected"), [
    (b"{not json", "sa: not valid JSON (line 1, column 2)"),
    (b"[1, 2]", "sa: the JSON is not an object"),
    (service_account(private_key_id="", token_uri=""), "sa: service-account keys missing or empty: private_key_id, token_uri"),
    (service_account(type="authorized_user"), 'sa: "type" is not "service_account"'),
    (service_account(client_email="nobody"), "sa: client_email is not an e-mail address"),
    (service_account(token_uri="http://plain"), "sa: token_uri is not an https:// URL"),
    (service_account(private_key="-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"), "sa private_key: holds PUBLIC KEY, not a private key"),
    (b"\xff\xfe", "sa: not UTF-8 text"),
])
def test_service_account_problems(data, expected):
    assert expected in checks.check_file(data, "json_service_account", "sa")


def test_pem_problems_never_quote_the_key():
    key = pem_key()
    broken = key.replace(key.splitlines()[2], "!!!!" + key.splitlines()[2][4:])
    problems = checks.check_file(broken.encode(), "pem_private_key", "oci")
    assert problems == ["oci: the PRIVATE KEY block is not valid base64"]
    assert all(line not in " ".join(problems) for line in key.splitlines()[1:-1])
    assert checks.check_file(key.encode(), "pem_private_key", "oci") == []
    two = (key + key).encode()
    assert checks.check_file(two, "pem_private_key", "oci") == ["oci: holds 2 private keys; one is expected"]
    openssh = b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaA==\n-----END OPENSSH PRIVATE KEY-----\n"
    assert "OpenSSH key format" in checks.check_file(openssh, "pem_private_key", "oci")[0]
    assert checks.check_file(b"hello", "pem_private_key", "oci")[0].startswith("oci: no PEM block")


def test_env_file_problems_name_lines_and_keys_only():
    data = b"# comment\nAPI_TOKEN=s3cret-value\nAPI_TOKEN=again\nexport X=1\n\n"
    problems = checks.check_file(data, "env_file", "env")
    assert problems == ["env: line 3: API_TOKEN is already set on line 2",
                        "env: line 4 is not KEY=VALUE (KEY: letters, digits, _; no spaces, no 'export')"]
    assert "s3cret" not in " ".join(problems)
    assert checks.check_file(b"# only a comment\n", "env_file", "env") == ["env: no KEY=VALUE line"]
    assert checks.check_file(b"A=1\nB=\n", "env_file", "env") == []


def test_empty_and_unchecked_files():
    assert checks.check_file(b"", "none", "x") == ["x: the source is empty"]
    assert checks.check_file(b"anything", "none", "x") == []


WALLET = {
    "cwallet.sso": b"\xa1\xf8\x4e\x36" + b"\x00" * 20,
    "ewallet.p12": b"\x30\x82\x0b" + b"\x00" * 20,
    "tnsnames.ora": b"db_high = (description = (address = (protocol = tcps)(host = h)(port = 1522)))\n",
    "sqlnet.ora": b"WALLET_LOCATION = (SOURCE = (METHOD = file))\n",
}
REQUIRED = ["cwallet.sso", "ewallet.p12", "tnsnames.ora", "sqlnet.ora"]


def test_a_complete_wallet_passes():
    assert checks.check_directory(WALLET, "oracle_wallet", "wallet", REQUIRED) == []


@pytest.mark.parametrize(("change", "expected"), [
    ({"cwallet.sso": None}, "wallet: cwallet.sso is missing"),
    ({"ewallet.p12": b""}, "wallet: ewallet.p12 is empty"),
    ({"ewallet.p12": b"PK\x03"}, "wallet: ewallet.p12 is not a PKCS#12 (ASN.1 DER) file"),
    ({"tnsnames.ora": b"nothing here\n"}, "wallet: tnsnames.ora has no 'alias = (DESCRIPTION = ...)' entry"),
    ({"tnsnames.ora": b"db = (description = ((\n"}, "wallet: tnsnames.ora has unbalanced parentheses"),
    ({"sqlnet.ora": b"X = ((\n"}, "wallet: sqlnet.ora is not text with balanced parentheses"),
])
def test_wallet_problems(change, expected):
    files = dict(WALLET)
    for name, value in change.items():
        if value is None:
            del files[name]
        else:
            files[name] = value
    assert any(p.startswith(expected) for p in checks.check_directory(files, "oracle_wallet", "wallet", REQUIRED)), expected


def test_an_empty_directory_is_a_problem():
    assert checks.check_directory({}, "none", "d") == ["d: the source directory is empty"]
