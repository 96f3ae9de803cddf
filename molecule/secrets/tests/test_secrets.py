"""The secrets role, checked on the VM: files where and as they should be, seen
read-only by a non-root container, rotated with targeted restarts, bad input
refused with the host untouched, and no secret value anywhere in the output."""

import base64
import hashlib
import json
import os
import re
import tempfile

import pytest
import testinfra.utils.ansible_runner
import yaml
from ansible.parsing.vault import VaultLib, VaultSecret
from armstack_verify import playbook as av_playbook

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("all")

SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.environ.get("ARMSTACK_ROOT") or os.path.dirname(os.path.dirname(SCENARIO))
SOURCES = os.path.join(ROOT, "inventories/local/files/secrets")
GROUP_VARS = os.path.join(ROOT, "inventories/local/group_vars/armstack_hosts/secrets.yml")
BAD = os.path.join(SCENARIO, "files/bad")
SECRETS_DIR = "/etc/armstack/secrets"
COMPOSE = "docker compose -f /opt/secrets-check/compose.yaml"

with open(os.path.join(ROOT, "inventories/local/vault-password"), "rb") as _pw:
    VAULT = VaultLib([("default", VaultSecret(_pw.read().strip()))])


class Vaulted(str):
    """A !vault scalar, kept encrypted through a YAML round trip."""


class _Loader(yaml.SafeLoader):
    pass


class _Dumper(yaml.SafeDumper):
    pass


_Loader.add_constructor("!vault", lambda loader, node: Vaulted(loader.construct_scalar(node)))
_Dumper.add_representer(Vaulted, lambda dumper, data: dumper.represent_scalar("!vault", str(data), style="|"))


def decrypt_file(path):
    with open(path, "rb") as handle:
        return VAULT.decrypt(handle.read())


def vault(value):
    return Vaulted(VAULT.encrypt(value.encode()).decode())


def group_vars():
    with open(GROUP_VARS, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


def inline_token():
    item = next(i for i in group_vars()["secrets_items"] if i["name"] == "worker_webhook_token")
    return VAULT.decrypt(str(item["content"]).encode())


ROTATED_TOKEN = "rotated-demo-" + base64.b16encode(os.urandom(12)).decode().lower()
RETIRED_VALUE = "retired-demo-" + base64.b16encode(os.urandom(12)).decode().lower()


def secret_fragments():
    """Substrings that must never appear in any output: every line of every
    private key body, env values, the service account's key id, inline values,
    and base64 of the binary wallet files."""
    frags = set()
    for name in ("oci_api_key.pem",):
        frags |= {line for line in decrypt_file(os.path.join(SOURCES, name)).decode().splitlines() if len(line) >= 40}
    sa = json.loads(decrypt_file(os.path.join(SOURCES, "firebase-service-account.json")))
    frags.add(sa["private_key_id"])
    frags |= {line for line in sa["private_key"].splitlines() if len(line) >= 40}
    for line in decrypt_file(os.path.join(SOURCES, "backend.env")).decode().splitlines():
        if "=" in line and not line.startswith("#"):
            value = line.split("=", 1)[1]
            if len(value) >= 12:
                frags.add(value)
    for name in ("cwallet.sso", "ewallet.p12"):
        data = decrypt_file(os.path.join(SOURCES, "oracle-wallet", name))
        frags.add(base64.b64encode(data[:60]).decode()[:40])
        frags.add(data[4:40].hex())
    frags |= {inline_token().decode(), ROTATED_TOKEN, RETIRED_VALUE, "bad-demo-first", "bad-demo-second", "bar-inline-secret-value"}
    return sorted(frags)


def run_playbook(playbook, extra_vars_file=None, extra_json=None):
    """(rc, output) of the shared helper's run at -vvv, as an operator sees it."""
    extra = ["-e", f"@{extra_vars_file}"] if extra_vars_file else []
    run = av_playbook(os.path.join(SCENARIO, playbook), *extra, extra_vars=extra_json, verbosity=3)
    return run.returncode, run.stdout


def reported(output):
    match = re.findall(r"SECRETS_CHANGED=(\[.*?\]) SECRETS_RESTART=(\[.*?\])", output)
    assert match, "the stand-in play did not report secrets_changed"
    changed, restart = (m.replace('\\"', '"') for m in match[-1])
    return json.loads(changed), json.loads(restart)


def started(host):
    out = host.run(f"{COMPOSE} ps --format '{{{{.Service}}}} {{{{.ID}}}}'").stdout.split("\n")
    ids = dict(line.split() for line in out if line.strip())
    return {svc: host.run(f"docker inspect -f '{{{{.State.StartedAt}}}}' {cid}").stdout.strip() for svc, cid in ids.items()}


def snapshot(host):
    return host.run(f"find {os.path.dirname(SECRETS_DIR)} -printf '%p %m %U %G %s %T@\\n' | sort").stdout


# --- files on the host ---------------------------------------------------------

EXPECTED_FILES = {
    "oci/oci_api_key.pem": "oci_api_key.pem",
    "firebase-service-account.json": "firebase-service-account.json",
    "backend.env": "backend.env",
    **{f"oracle-wallet/{n}": f"oracle-wallet/{n}" for n in ("cwallet.sso", "ewallet.p12", "tnsnames.ora", "sqlnet.ora", "ojdbc.properties")},
}


def test_secrets_dir_is_root_owned_and_not_listable(host):
    d = host.file(SECRETS_DIR)
    assert (d.user, d.group, d.mode) == ("root", "root", 0o711)
    assert host.run(f"sudo -u debian ls {SECRETS_DIR}").rc != 0


@pytest.mark.parametrize("dest", sorted(EXPECTED_FILES))
def test_secret_file_owner_mode_and_checksum(host, dest):
    f = host.file(f"{SECRETS_DIR}/{dest}")
    assert (f.uid, f.gid, f.mode) == (10001, 10001, 0o400)
    assert f.sha256sum == hashlib.sha256(decrypt_file(os.path.join(SOURCES, EXPECTED_FILES[dest]))).hexdigest()


def test_inline_vaulted_secret(host):
    f = host.file(f"{SECRETS_DIR}/worker/webhook-token")
    assert (f.uid, f.mode) == (10001, 0o400)
    assert f.sha256sum == hashlib.sha256(inline_token()).hexdigest()


def test_wallet_directory_is_0500_and_holds_only_the_source_files(host):
    d = host.file(f"{SECRETS_DIR}/oracle-wallet")
    assert (d.uid, d.gid, d.mode) == (10001, 10001, 0o500)
    assert sorted(d.listdir()) == sorted(os.listdir(os.path.join(SOURCES, "oracle-wallet")))


def test_manifest_has_no_values(host):
    manifest = json.loads(host.file(f"{SECRETS_DIR}/.armstack-secrets.json").content_string)
    assert set(manifest["secrets"]) == {"oracle_wallet", "oci_api_key", "firebase_service_account", "backend_env", "worker_webhook_token"}
    assert host.file(f"{SECRETS_DIR}/.armstack-secrets.json").mode == 0o600


# --- what a container sees -----------------------------------------------------

@pytest.mark.parametrize(
    ("service", "paths"),
    [
        ("backend", ["/run/secrets/oracle-wallet/cwallet.sso", "/run/secrets/oracle-wallet/tnsnames.ora",
                     "/run/secrets/oci_api_key.pem", "/run/secrets/backend.env", "/run/secrets/firebase_service_account"]),
        ("worker", ["/run/secrets/worker/webhook-token", "/run/secrets/firebase_service_account"]),
    ],
)
def test_container_reads_secrets_read_only_as_non_root(host, service, paths):
    out = host.run(f"{COMPOSE} exec -T {service} /usr/local/bin/testbox read {' '.join(paths)}")
    print(out.stdout)
    assert out.rc == 0, out.stdout + out.stderr
    for line in out.stdout.strip().splitlines():
        assert "uid=10001 read" in line and "not writable" in line, line


# --- rotation, removal and the leak test -------------------------------------

@pytest.fixture(scope="module")
def rotation(host):
    """Run A: the worker's token rotated and an extra secret declared. Run B: the
    plain converge again (token back, the extra secret no longer declared).
    Both at -vvv, their output kept for the leak test."""
    data = group_vars()
    items = data["secrets_items"]
    for item in items:
        if item["name"] == "worker_webhook_token":
            item["content"] = vault(ROTATED_TOKEN)
    items.append({"name": "retired_demo", "kind": "file", "content": vault(RETIRED_VALUE), "dest": "retired/demo.txt", "services": []})
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as handle:
        yaml.dump({"secrets_items": items}, handle, Dumper=_Dumper)
        rotate_file = handle.name
    before = started(host)
    rc_a, out_a = run_playbook("secrets.yml", extra_vars_file=rotate_file)
    os.unlink(rotate_file)
    assert rc_a == 0, out_a[-3000:]
    after_a = started(host)
    token_a = host.run(f"{COMPOSE} exec -T worker cat /run/secrets/worker/webhook-token").stdout
    retired_a = host.file(f"{SECRETS_DIR}/retired/demo.txt").exists
    rc_b, out_b = run_playbook("secrets.yml")
    assert rc_b == 0, out_b[-3000:]
    return {"before": before, "after_a": after_a, "out_a": out_a, "out_b": out_b, "token_a": token_a, "retired_a": retired_a}


def test_rotation_restarts_only_the_services_that_mount_it(rotation):
    changed, restart = reported(rotation["out_a"])
    print(f"run A: secrets_changed={changed} secrets_restart_services={restart}")
    assert changed == ["retired_demo", "worker_webhook_token"]
    assert restart == ["worker"]
    assert rotation["after_a"]["worker"] != rotation["before"]["worker"], "worker was not restarted"
    assert rotation["after_a"]["backend"] == rotation["before"]["backend"], "backend was restarted for a secret it does not mount"
    assert rotation["token_a"] == ROTATED_TOKEN
    assert rotation["retired_a"]


def test_undeclared_secret_is_removed(host, rotation):
    changed, restart = reported(rotation["out_b"])
    print(f"run B: secrets_changed={changed} secrets_restart_services={restart}")
    assert changed == ["retired_demo", "worker_webhook_token"]
    assert not host.file(f"{SECRETS_DIR}/retired/demo.txt").exists
    manifest = json.loads(host.file(f"{SECRETS_DIR}/.armstack-secrets.json").content_string)
    assert "retired_demo" not in manifest["secrets"]


def test_no_secret_in_the_vvv_output(rotation):
    frags = secret_fragments()
    for label in ("out_a", "out_b"):
        hits = [f[:6] + "..." for f in frags if f in rotation[label]]
        print(f"LEAK CHECK {label}: {len(frags)} secret fragments in {len(rotation[label])} bytes of -vvv output: {len(hits)} hits")
        assert not hits


def test_no_secret_in_compose_config_or_docker_inspect(host, rotation):
    config = host.run(f"{COMPOSE} config").stdout
    ids = host.run(f"{COMPOSE} ps -q").stdout.split()
    inspect = host.run("docker inspect " + " ".join(ids)).stdout
    assert config and inspect
    frags = secret_fragments()
    for label, text in (("compose config", config), ("docker inspect", inspect)):
        hits = [f[:6] + "..." for f in frags if f in text]
        print(f"LEAK CHECK {label}: {len(frags)} fragments, {len(text)} bytes: {len(hits)} hits")
        assert not hits


# --- bad input -----------------------------------------------------------------

BAD_CONTENT = [
    {"name": "bad_json", "src": f"{BAD}/not-json.json", "dest": "bad/json.json", "validate": "json_service_account"},
    {"name": "bad_sa", "src": f"{BAD}/sa-missing-keys.json", "dest": "bad/sa.json", "validate": "json_service_account"},
    {"name": "bad_pem", "src": f"{BAD}/public.pem", "dest": "bad/key.pem", "validate": "pem_private_key"},
    {"name": "bad_wallet", "kind": "directory", "src": f"{BAD}/wallet-incomplete", "dest": "bad/wallet", "validate": "oracle_wallet"},
    {"name": "bad_env", "kind": "env_file", "src": f"{BAD}/duplicate.env", "dest": "bad/app.env"},
    {"name": "bad_inline_env", "kind": "env_file", "content": "export FOO=bar-inline-secret-value\n", "dest": "bad/inline.env"},
]


# A decrypted copy of a real secret, as when someone commits the output of
# `ansible-vault decrypt`: refused before anything is written, never printed.
PLAIN_COPY = os.path.join(tempfile.gettempdir(), "armstack-secrets-test-decrypted-backend.env")
with open(PLAIN_COPY, "wb") as _plain:
    _plain.write(decrypt_file(os.path.join(SOURCES, "backend.env")))


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ([{"name": "committed_by_mistake", "kind": "env_file", "src": PLAIN_COPY, "dest": "plain/backend.env"}],
         ["sources not vault-encrypted (a decrypted file committed by mistake?): committed_by_mistake: " + PLAIN_COPY,
          "secrets_require_vault refuses plain text"]),
        (BAD_CONTENT, [
            "bad_json: not valid JSON",
            "bad_sa: service-account keys missing or empty: private_key_id, private_key, client_email, client_id, token_uri",
            "bad_pem: holds PUBLIC KEY, not a private key",
            "bad_wallet: cwallet.sso is missing",
            "bad_wallet: ewallet.p12 is missing",
            "bad_env: line 2: API_TOKEN is already set on line 1",
            "bad_env: line 3 is not KEY=VALUE",
            "bad_inline_env: line 1 is not KEY=VALUE",
        ]),
        ([{"name": "missing", "src": f"{BAD}/no-such-file.pem", "dest": "missing.pem", "validate": "pem_private_key"}],
         ["secret missing: the source", "does not exist"]),
        ([{"name": "escape", "content": "x", "dest": "../escape"}],
         ["secrets_items entry 0 (escape) is not valid"]),
    ],
    ids=["plain-text-source", "content-of-each-kind", "missing-source", "unsafe-dest"],
)
def test_bad_input_fails_before_touching_the_host(host, items, expected):
    before = snapshot(host)
    rc, out = run_playbook("bad-input.yml", extra_json={"secrets_items": items})
    flat = " ".join(out.split())
    assert rc != 0, "the play accepted bad input"
    for message in expected:
        assert message in flat, f"{message!r} not in the output:\n{out[-4000:]}"
    assert snapshot(host) == before, "the host changed although the input was refused"
    leaked = [f[:6] + "..." for f in secret_fragments() if f in out]
    assert not leaked
