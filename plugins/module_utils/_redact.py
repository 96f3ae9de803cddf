# -*- coding: utf-8 -*-
# Copyright (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private helper of armstack.deploy.release_command: takes secret values out of
text that a program printed before it is shown to anyone.

A program's output is never trusted to be clean (an ORM that prints its
connection URL, a stack trace with a settings dump). Two layers:

1. The values themselves: every secret file the program was given (env files,
   mounted secret files and directories) is read, and each value in it (the
   VALUE of a KEY=VALUE line, a one-line file's content, every long line of a
   multi-line file such as a PEM key, every long string of a JSON document) is
   replaced by [REDACTED] wherever it appears, longest first.
2. Shapes that carry a secret whatever its value: the password of a URL
   (scheme://user:PASSWORD@host) and the value after a key that names a
   secret (password=, token:, secret=, api_key=, authorization: ...).
"""

from __future__ import annotations

import json
import os
import re

MASK = "[REDACTED]"
MIN_SECRET_LENGTH = 6
MAX_FILE_BYTES = 1024 * 1024
ENV_LINE = re.compile(r"^\s*(?:export\s+)?[A-Za-z_][A-Za-z0-9_.]*\s*=\s*(.*?)\s*$")
URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/@\s]+:)(?P<secret>[^@\s/]+)(?P<tail>@)", re.I)
KEYED_SECRET = re.compile(
    r"(?P<head>\b[\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|authorization)"
    r"[\w.-]*[\"']?\s*[:=]\s*[\"']?)(?P<secret>(?:bearer\s+|basic\s+)?[^\s\"',;}]+)", re.I)


def _values_of_text(text):
    values = set()
    stripped = text.strip()
    if "\n" not in stripped:
        values.add(stripped)
    for line in text.splitlines():
        match = ENV_LINE.match(line)
        if match:
            values.add(match.group(1).strip("'\""))
        if len(line.strip()) >= 16:
            values.add(line.strip())
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str):
            values.add(node)
            values.update(part.strip() for part in node.splitlines() if len(part.strip()) >= 16)
    return values


def secret_values(paths):
    """The secret values found in the files (and files of the directories) at paths."""
    values = set()
    for path in paths:
        files = []
        if os.path.isdir(path):
            for root, _dirs, names in os.walk(path):
                files.extend(os.path.join(root, name) for name in names)
        elif os.path.isfile(path):
            files.append(path)
        for name in files:
            try:
                if os.path.getsize(name) > MAX_FILE_BYTES:
                    continue
                with open(name, "rb") as handle:
                    data = handle.read()
            except OSError:
                continue
            try:
                values |= _values_of_text(data.decode("utf-8"))
            except UnicodeDecodeError:
                continue
    return {v for v in values if len(v) >= MIN_SECRET_LENGTH}


def redact(text, values):
    """(text with every value and secret-shaped span replaced by MASK, number of replacements)."""
    count = 0
    for value in sorted(values, key=len, reverse=True):
        if value in text:
            count += text.count(value)
            text = text.replace(value, MASK)

    for pattern in (URL_PASSWORD, KEYED_SECRET):
        text, found = _substitute(pattern, text)
        count += found
    return text, count


def _substitute(pattern, text):
    found = [0]

    def replace(match):
        if match.group("secret").startswith(MASK):
            return match.group(0)
        found[0] += 1
        tail = match.group("tail") if "tail" in pattern.groupindex else ""
        return match.group("head") + MASK + tail

    return pattern.sub(replace, text), found[0]
