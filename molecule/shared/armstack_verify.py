"""Helpers every molecule verifier shares: run on the VM, wait with a bound,
run a playbook as an operator does, and look for secret values anywhere.

Importable from every scenario's tests (the base molecule config puts this
directory on PYTHONPATH). Counts are asserted, never durations.
"""

from __future__ import annotations

import base64
import io
import json
import os
import pathlib
import re
import subprocess
import tarfile
import time

import yaml
from ansible.parsing.vault import VaultLib, VaultSecret

ROOT = pathlib.Path(os.environ.get("ARMSTACK_ROOT") or pathlib.Path(__file__).resolve().parents[2])
SCENARIO = os.environ.get("MOLECULE_SCENARIO_NAME", "default")
VM = f"armstack-{SCENARIO}"
VAULT_PASSWORD_FILE = ROOT / "inventories/local/vault-password"


# --- running things ---------------------------------------------------------------

def sh(host, cmd, ok=True):
    """Run a shell command on the VM; with ok, fail the test on a non-zero exit."""
    result = host.run(cmd)
    if ok:
        assert result.rc == 0, f"{cmd!r} exited {result.rc}:\n{result.stdout}\n{result.stderr}"
    return result


def output(host, cmd):
    """The stdout of a shell command on the VM that must succeed, stripped of surrounding whitespace."""
    return sh(host, cmd).stdout.strip()


def local(*argv, check=False, timeout=120):
    """Run argv on the controller (the test bed's docker, ssh from a client container); text out, bounded by timeout."""
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=timeout)


def wait_until(predicate, timeout, interval=1.0, message="condition", fail=True, attempts=None):
    """Poll predicate() until it is truthy; returns its value and the seconds waited.

    The bound is `timeout` seconds, or with attempts that many calls (for probes whose
    own duration varies; timeout may then be None). Past it: with fail, the test fails
    with `message`; without, the last (falsy) value is returned, for a caller that
    asserts with a message of its own."""
    start = time.monotonic()
    last = None
    tries = 0
    while True:
        tries += 1
        try:
            last = predicate()
        except Exception as exc:  # noqa: BLE001 - a probe that raises is a probe that says "not yet"
            last = None
            error = exc
        else:
            error = None
        if last:
            return last, round(time.monotonic() - start, 1)
        if (tries >= attempts) if attempts else (time.monotonic() - start > timeout):
            if not fail:
                return last, round(time.monotonic() - start, 1)
            bound = f"{attempts} tries" if attempts else f"{timeout} s"
            raise AssertionError(f"{message} not reached within {bound}" + (f" (last error: {error})" if error else ""))
        time.sleep(interval)


def playbook(path, *extra, extra_vars=None, verbosity=0, env=None, check=False, inventory=None, timeout=None,
             merge_stderr=True, operator_view=True):
    """Run ansible-playbook against this scenario's inventory (or `inventory`) as an operator would.

    Returns the CompletedProcess: stdout and stderr together in .stdout, or apart with
    merge_stderr=False. operator_view=False keeps molecule's own display (ok and skipped
    results hidden). A run longer than `timeout` seconds fails the test."""
    argv = ["ansible-playbook", "-i", str(inventory or os.environ["MOLECULE_INVENTORY_FILE"]), str(path)]
    if verbosity:
        argv.append("-" + "v" * verbosity)
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    argv += list(extra)
    full_env = dict(os.environ)
    full_env.setdefault("ANSIBLE_VAULT_PASSWORD_FILE", str(VAULT_PASSWORD_FILE))
    full_env["ANSIBLE_COLLECTIONS_PATH"] = str(ROOT / ".cache/collections")
    full_env["ANSIBLE_NOCOLOR"] = "1"
    if operator_view:
        # As an operator sees it (molecule's own config hides ok and skipped
        # results): every result is shown, so the leak searches read all of it.
        full_env["ANSIBLE_DISPLAY_OK_HOSTS"] = "true"
        full_env["ANSIBLE_DISPLAY_SKIPPED_HOSTS"] = "true"
    full_env.update(env or {})
    try:
        proc = subprocess.run(argv, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
                              text=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{pathlib.Path(path).name} {extra} did not finish within {timeout} s") from exc
    if check:
        assert proc.returncode == 0, proc.stdout[-4000:]
    return proc


def recap(output):
    """The PLAY RECAP counters of an ansible-playbook run, summed over hosts."""
    totals = {}
    for line in output.splitlines():
        match = re.match(r"^\S+\s+:\s+(.*)$", line)
        if match and "ok=" in line:
            for key, value in re.findall(r"(\w+)=(\d+)", match.group(1)):
                totals[key] = totals.get(key, 0) + int(value)
    return totals


# --- secret values ------------------------------------------------------------------

class _Vaulted(str):
    pass


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("!vault", lambda loader, node: _Vaulted(loader.construct_scalar(node)))
_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def _vault():
    return VaultLib([("default", VaultSecret(VAULT_PASSWORD_FILE.read_bytes().strip()))])


def _walk(value):
    if isinstance(value, _Vaulted):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


def _fragments(data: bytes):
    """Needles for one decrypted value: the value itself when short, its long
    lines when it is text, a few windows of it (hex and base64) when binary."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return {data[4:40].hex(), base64.b64encode(data[:60]).decode()[:40]}
    text = text.strip()
    if "\n" not in text:
        return {text} if len(text) >= 8 else set()
    needles = set()
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        # JSON documents (service accounts): the long string values that are not
        # public addresses (URLs, e-mail addresses, the project's name).
        for key, value in doc.items():
            if not isinstance(value, str) or len(value) < 16 or value.startswith("https://") or "@" in value:
                continue
            if key in ("type", "project_id", "universe_domain"):
                continue
            parts = [p for p in value.splitlines() if len(p) >= 24 and not p.startswith("-----")]
            needles |= set(parts) if "\n" in value else {value}
        return needles
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "(", ")")) or line.startswith("-----"):
            continue
        if "=" in line and re.match(r"^[A-Za-z_][A-Za-z0-9_.]*\s*=", line):
            value = line.split("=", 1)[1].strip().strip("'\"")
            if len(value) >= 8 and not value.startswith("("):
                needles.add(value)
        elif len(line) >= 24:
            needles.add(line)
    return needles


def vault_values(*extra):
    """Every decrypted vault value the test bed deploys: !vault scalars in the
    local inventory and in every molecule playbook, and every vault-encrypted
    file under inventories/local/files and molecule/*/files. `extra` adds
    values a test made up (rotated tokens, wrong passwords)."""
    vault = _vault()
    needles = set()
    sources = sorted((ROOT / "inventories/local/group_vars").rglob("*.yml")) + sorted(ROOT.glob("molecule/*/*.yml"))
    for path in sources:
        with path.open(encoding="utf-8") as handle:
            data = yaml.load(handle, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
        for scalar in _walk(data):
            needles |= _fragments(vault.decrypt(str(scalar).encode()))
    for base in (ROOT / "inventories/local/files", *ROOT.glob("molecule/*/files")):
        for path in sorted(p for p in base.rglob("*") if p.is_file()):
            raw = path.read_bytes()
            if raw.startswith(b"$ANSIBLE_VAULT;"):
                needles |= _fragments(vault.decrypt(raw))
    # A value that also stands in plain text in the inventory or the roles (a
    # TNS alias, a setting's name) is not a secret of its own.
    plain = "\n".join(p.read_text(encoding="utf-8", errors="replace")
                      for p in sorted((ROOT / "inventories/local/group_vars").rglob("*.yml")) + sorted(ROOT.glob("roles/**/*"))
                      if p.is_file() and not p.read_bytes().startswith(b"$ANSIBLE_VAULT;"))
    needles = {n for n in needles if n not in plain}
    needles |= {e for e in extra if e}
    return sorted(n for n in needles if len(n) >= 8)


def leaks(text, needles):
    """The needles found in text, each shown by its first characters only."""
    return [n[:4] + "..." for n in needles if n in text]


def assert_no_leak(label, text, needles):
    found = leaks(text, needles)
    print(f"LEAK CHECK {label}: {len(needles)} secret values in {len(text)} bytes: {len(found)} hits")
    assert not found, f"{label} holds {len(found)} secret value(s): {found}"


def vm_exec(*argv, input_bytes=None, check=True):
    """Run argv in the VM container directly (bytes out), for what testinfra would decode."""
    proc = subprocess.run(["docker", "exec", "-i", VM, *argv], input=input_bytes, capture_output=True, check=False)
    if check:
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc


def host_surfaces(project_dirs=("/opt",), world_readable_dirs=("/etc", "/var/log", "/var/lib/node_exporter", "/opt")):
    """Where a secret must never be, on the VM: {label: text}.

    - the whole journal;
    - `docker inspect` of every container and `docker compose config` of every project;
    - every file under the project directories, except their `secrets/` directories (root-only
      files Compose mounts as secrets);
    - every world-readable file under world_readable_dirs.
    """
    out = {}
    out["journal"] = vm_exec("journalctl", "--no-pager", "-o", "cat").stdout.decode(errors="replace")
    ids = vm_exec("sh", "-c", "docker ps -aq 2>/dev/null || true").stdout.decode().split()
    out["docker inspect"] = vm_exec("docker", "inspect", *ids).stdout.decode(errors="replace") if ids else ""
    projects = vm_exec("sh", "-c", "docker compose ls -a --format json 2>/dev/null || echo []").stdout.decode() or "[]"
    configs = []
    for project in json.loads(projects):
        for path in project.get("ConfigFiles", "").split(","):
            if path:
                configs.append(vm_exec("docker", "compose", "-f", path, "config", check=False).stdout.decode(errors="replace"))
    out["docker compose config"] = "\n".join(configs)
    listing = (
        "find {projects} -type f -not -path '*/secrets/*' -size -5M -print0 2>/dev/null; "
        "find {world} -xdev -type f -perm -o=r -size -5M -not -path '/etc/ssl/*' -not -path '/etc/ssh/moduli' -print0 2>/dev/null"
    ).format(projects=" ".join(project_dirs), world=" ".join(world_readable_dirs))
    tar = vm_exec("sh", "-c", f"({listing}) | sort -zu | tar --null -T - -cf - 2>/dev/null || true").stdout
    texts = []
    if tar:
        with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
            for member in archive.getmembers():
                if member.isfile():
                    texts.append(archive.extractfile(member).read().decode(errors="replace"))
    out["files"] = "\n".join(texts)
    return out


def assert_host_has_no_leak(needles, **kwargs):
    for label, text in host_surfaces(**kwargs).items():
        assert_no_leak(f"{VM} {label}", text, needles)
