# -*- coding: utf-8 -*-
# Copyright (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Secret values out of program output: from the secret files, and by shape."""

from __future__ import annotations

import json

from ansible_collections.armstack.deploy.plugins.module_utils._redact import MASK, redact, secret_values

PEM = ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n"
       "VJTUt9Us8cKjMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n-----END PRIVATE KEY-----\n")


def test_values_from_env_files_plain_files_directories_and_json(tmp_path):
    (tmp_path / "backend.env").write_text("# comment\nDB_PASSWORD=hunter2-but-longer\nexport API_TOKEN='tok-123456'\nSHORT=abc\n")
    (tmp_path / "token").write_text("single-line-token-value\n")
    wallet = tmp_path / "wallet"
    wallet.mkdir()
    (wallet / "key.pem").write_text(PEM)
    (tmp_path / "sa.json").write_text(json.dumps({"private_key_id": "0123456789abcdef", "nested": {"k": "deep-secret-value"}}))
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00secret")
    values = secret_values([str(tmp_path / "backend.env"), str(tmp_path / "token"), str(wallet), str(tmp_path / "sa.json"),
                            str(tmp_path / "binary"), str(tmp_path / "missing")])
    for expected in ("hunter2-but-longer", "tok-123456", "single-line-token-value", "0123456789abcdef", "deep-secret-value",
                     PEM.splitlines()[1]):
        assert expected in values, expected
    assert "abc" not in values, "values shorter than 6 characters would mask ordinary words"


def test_redact_replaces_values_longest_first_and_counts():
    text = "connecting with hunter2-but-longer and hunter2 (again hunter2-but-longer)"
    out, count = redact(text, {"hunter2-but-longer", "hunter2"})
    assert "hunter2" not in out
    assert out == "connecting with %s and %s (again %s)" % (MASK, MASK, MASK)
    assert count == 3


def test_secret_shapes_are_masked_whatever_the_value():
    lines = [
        "sqlalchemy: postgresql://app:NotInAnyFile1@db:5432/app",
        "redis://default:AlsoUnknown2@redis:6379/0",
        "settings {'password': 'p4ss-w0rd', 'api_key': 'k-999'}",
        "Authorization: Bearer eyJhbGciOi.payload.sig",
        "SECRET_KEY=django-insecure-xyz",
        "token: abc.def",
    ]
    out, count = redact("\n".join(lines), set())
    for leaked in ("NotInAnyFile1", "AlsoUnknown2", "p4ss-w0rd", "k-999", "eyJhbGciOi", "django-insecure-xyz", "abc.def"):
        assert leaked not in out, (leaked, out)
    assert "postgresql://app:%s@db:5432/app" % MASK in out
    assert count >= 7


def test_ordinary_output_is_left_alone():
    text = "INFO  [alembic.runtime.migration] Running upgrade 1a2b -> 3c4d, add orders\nmigrate: up to date (2 applied before)"
    assert redact(text, {"unrelated-secret"}) == (text, 0)


def test_already_masked_values_are_not_counted_twice():
    out, count = redact("password=s3cret-value", {"s3cret-value"})
    assert out == "password=" + MASK
    assert count == 1
