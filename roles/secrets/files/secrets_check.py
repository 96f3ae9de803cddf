#!/usr/bin/env python3
# Copyright: armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validate decrypted secret sources on the controller, before anything is written.

Usage: secrets_check.py STAGING_DIR ITEMS_JSON
ITEMS_JSON is a list of {"index", "name", "kind", "validate", "required_files"};
STAGING_DIR/<index> is the staged, decrypted copy of each (a file, or a
directory for kind directory).

Prints one JSON object: {"problems": ["<name>: <what is wrong>", ...],
"files": {"<name>": ["relative/file", ...]}}. It NEVER prints a secret: problems
name the item, the file, the line number or the key, never a value.
"""

import base64
import json
import os
import re
import sys

try:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
except ImportError:  # pragma: no cover - ansible-core depends on cryptography
    load_pem_private_key = None

SERVICE_ACCOUNT_KEYS = ("type", "project_id", "private_key_id", "private_key", "client_email", "client_id", "token_uri")
PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)\r?\n-----END \1-----", re.S)
ENV_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
TNS_ENTRY = re.compile(r"(?im)^\s*([A-Za-z0-9_.\-,]+)\s*=\s*\(\s*description\s*=")


def read_text(path):
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def check_pem_private_key(text, where):
    """Problems with a PEM private key (text), described without its content."""
    if text is None:
        return [f"{where}: not text (a PEM private key is ASCII)"]
    blocks = PEM_BLOCK.findall(text)
    if not blocks:
        return [f"{where}: no PEM block (expected -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)"]
    labels = [label for label, _ in blocks]
    keys = [(label, body) for label, body in blocks if label.endswith("PRIVATE KEY")]
    if not keys:
        return [f"{where}: holds {', '.join(labels)}, not a private key"]
    if len(keys) > 1:
        return [f"{where}: holds {len(keys)} private keys; one is expected"]
    label, body = keys[0]
    if label == "OPENSSH PRIVATE KEY":
        return [f"{where}: OpenSSH key format; the OCI SDK needs PEM (convert: ssh-keygen -p -m PEM -f KEY)"]
    try:
        base64.b64decode("".join(line for line in body.splitlines() if ":" not in line), validate=True)
    except ValueError:
        return [f"{where}: the {label} block is not valid base64"]
    if label == "ENCRYPTED PRIVATE KEY" or "Proc-Type: 4,ENCRYPTED" in body:
        return []  # passphrase-protected: structure checked, the passphrase is the app's
    if load_pem_private_key is not None:
        try:
            load_pem_private_key(f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n".encode(), password=None)
        except (ValueError, TypeError) as exc:
            return [f"{where}: the {label} does not load ({type(exc).__name__})"]
        except Exception as exc:  # unsupported algorithm and the like
            return [f"{where}: the {label} does not load ({type(exc).__name__})"]
    return []


def check_service_account(path, where):
    text = read_text(path)
    if text is None:
        return [f"{where}: not UTF-8 text"]
    try:
        data = json.loads(text)
    except ValueError as exc:
        return [f"{where}: not valid JSON (line {exc.lineno}, column {exc.colno})"] if hasattr(exc, "lineno") else [f"{where}: not valid JSON"]
    if not isinstance(data, dict):
        return [f"{where}: the JSON is not an object"]
    problems = []
    missing = [k for k in SERVICE_ACCOUNT_KEYS if not isinstance(data.get(k), str) or not data.get(k)]
    if missing:
        problems.append(f"{where}: service-account keys missing or empty: {', '.join(missing)}")
    if data.get("type") not in (None, "service_account"):
        problems.append(f"{where}: \"type\" is not \"service_account\"")
    if isinstance(data.get("client_email"), str) and data["client_email"] and "@" not in data["client_email"]:
        problems.append(f"{where}: client_email is not an e-mail address")
    if isinstance(data.get("token_uri"), str) and data["token_uri"] and not data["token_uri"].startswith("https://"):
        problems.append(f"{where}: token_uri is not an https:// URL")
    if isinstance(data.get("private_key"), str) and data["private_key"]:
        problems += check_pem_private_key(data["private_key"], f"{where} private_key")
    return problems


def check_env_file(path, where):
    text = read_text(path)
    if text is None:
        return [f"{where}: not UTF-8 text"]
    problems, seen = [], {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = ENV_LINE.match(line)
        if not match:
            problems.append(f"{where}: line {number} is not KEY=VALUE (KEY: letters, digits, _; no spaces, no 'export')")
            continue
        key = match.group(1)
        if key in seen:
            problems.append(f"{where}: line {number}: {key} is already set on line {seen[key]}")
        else:
            seen[key] = number
    if not seen and not problems:
        problems.append(f"{where}: no KEY=VALUE line")
    return problems


def balanced(text):
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def check_oracle_wallet(path, where, required):
    problems = []
    for name in required:
        full = os.path.join(path, name)
        if not os.path.isfile(full):
            problems.append(f"{where}: {name} is missing (the DB driver needs {', '.join(required)})")
        elif os.path.getsize(full) == 0:
            problems.append(f"{where}: {name} is empty")
    p12 = os.path.join(path, "ewallet.p12")
    if os.path.isfile(p12) and os.path.getsize(p12) > 0:
        with open(p12, "rb") as handle:
            head = handle.read(2)
        if head[:1] != b"\x30":
            problems.append(f"{where}: ewallet.p12 is not a PKCS#12 (ASN.1 DER) file")
    tns = os.path.join(path, "tnsnames.ora")
    if os.path.isfile(tns):
        text = read_text(tns)
        if text is None or not TNS_ENTRY.search(text):
            problems.append(f"{where}: tnsnames.ora has no 'alias = (DESCRIPTION = ...)' entry")
        elif not balanced(text):
            problems.append(f"{where}: tnsnames.ora has unbalanced parentheses")
    sqlnet = os.path.join(path, "sqlnet.ora")
    if os.path.isfile(sqlnet):
        text = read_text(sqlnet)
        if text is None or not balanced(text):
            problems.append(f"{where}: sqlnet.ora is not text with balanced parentheses")
    return problems


def list_files(path):
    found = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            found.append(os.path.relpath(os.path.join(root, name), path))
    return found


def check_item(staging, item):
    name, kind, validate = item["name"], item["kind"], item["validate"]
    path = os.path.join(staging, str(item["index"]))
    where = f"{name}"
    if kind == "directory":
        if not os.path.isdir(path):
            return [f"{where}: the source is not a directory"], []
        for root, dirs, files in os.walk(path):
            for entry in dirs + files:
                if os.path.islink(os.path.join(root, entry)):
                    return [f"{where}: {os.path.relpath(os.path.join(root, entry), path)} is a symlink; copy the file itself"], []
        files = list_files(path)
        if not files:
            return [f"{where}: the source directory is empty"], []
        if validate == "oracle_wallet":
            return check_oracle_wallet(path, where, item.get("required_files") or []), files
        return [], files
    if not os.path.isfile(path):
        return [f"{where}: the source is not a file"], []
    if os.path.getsize(path) == 0:
        return [f"{where}: the source is empty"], []
    if validate == "json_service_account":
        return check_service_account(path, where), []
    if validate == "pem_private_key":
        return check_pem_private_key(read_text(path), where), []
    if validate == "env_file":
        return check_env_file(path, where), []
    return [], []


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    staging, items = argv[1], json.loads(argv[2])
    result = {"problems": [], "files": {}}
    for item in items:
        problems, files = check_item(staging, item)
        result["problems"] += problems
        result["files"][item["name"]] = files
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
