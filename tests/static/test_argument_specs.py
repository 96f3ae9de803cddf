"""The argument specs reject a wrong shape before any task of a role runs.

ansible-core validates a role's input with ArgumentSpecValidator against
meta/argument_specs.yml (the implicit `Validating arguments against arg spec`
task). These tests run the same validator, without a host, so that a list or
dict option whose shape the spec now checks (instead of a hand-written assert)
keeps being checked: a missing required key, an unknown key, a wrong type.
"""

from __future__ import annotations

import pathlib

import pytest
import yaml
from ansible.errors import AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _spec(role: str) -> dict:
    with (ROOT / "roles" / role / "meta/argument_specs.yml").open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)["argument_specs"]["main"]["options"]


def _defaults(role: str) -> dict:
    """The role's defaults as the validator sees them: templated first (a default
    may name another, e.g. rotate: "{{ logrotate_retention_days }}"); one that
    needs a host's facts stays as written."""
    loader = DataLoader()
    # Loaded as Ansible loads a role's defaults: their templates trusted.
    raw = loader.load_from_file(str(ROOT / "roles" / role / "defaults/main.yml"), trusted_as_template=True) or {}
    templar = Templar(loader=loader, variables=raw)
    rendered = {}
    for key, value in raw.items():
        try:
            rendered[key] = templar.template(value)
        except AnsibleError:
            rendered[key] = value
    return rendered


# The least a role needs besides its defaults (its required options).
REQUIRED = {
    "backend": {"backend_image": "registry.example/app:1", "backend_domains": ["app.example"],
                "backend_secrets_restart_services": []},
    "backup": {},
}


def _errors(role: str, values: dict) -> list[str]:
    params = {**_defaults(role), **REQUIRED.get(role, {}), **values}
    result = ArgumentSpecValidator(_spec(role)).validate(params)
    return [str(e) for e in result.errors]


@pytest.mark.parametrize("role", ["backend", "backup", "logrotate", "observability"])
def test_the_defaults_validate(role):
    assert _errors(role, {}) == []


GOOD = [
    ("backend", {"backend_secret_mounts": [{"source": "/etc/armstack/secrets/a.json", "target": "/run/secrets/a.json"}]}),
    ("backend", {"backend_accessories": [{"name": "db", "preset": "postgres", "password": "x" * 20,
                                          "volumes": [{"name": "extra", "target": "/extra"}],
                                          "secret_mounts": [{"source": "/etc/a", "target": "/run/a"}]}]}),
    ("backup", {"backup_extra_jobs": [{"name": "armstack-db", "type": "database", "engine": "postgres",
                                       "container": "armstack-db-1", "database": "app", "user": "app"}]}),
    ("backup", {"backup_extra_jobs": [{"name": "armstack-redis", "type": "database", "engine": "redis",
                                       "container": "armstack-redis-1", "password_file": "/run/secrets/password"}]}),
    ("backup", {"backup_keep_extra": {"last": 3, "within": "2d"}}),
    ("logrotate", {"logrotate_rules": [{"name": "app", "paths": ["/var/log/app/*.log"], "maxsize": "10M",
                                        "create": "0640 root adm", "postrotate": "true"}]}),
    ("backend", {"backend_memory_other_services": [{"name": "db", "memory_limit": "512m", "replicas": 1}]}),
    ("observability", {"observability_memory_other_services": [{"name": "backend", "memory_limit": 300}]}),
]


@pytest.mark.parametrize(("role", "values"), GOOD, ids=[f"{r}-{next(iter(v))}" for r, v in GOOD])
def test_a_good_shape_validates(role, values):
    assert _errors(role, values) == []


BAD = [
    ("backend", {"backend_secret_mounts": [{"source": "/etc/a"}]}, ["target", "backend_secret_mounts"]),
    ("backend", {"backend_secret_mounts": [{"source": "/etc/a", "target": "/run/a", "mode": "0400"}]},
     ["backend_secret_mounts", "mode"]),
    ("backend", {"backend_secret_mounts": ["/etc/a:/run/a"]}, ["backend_secret_mounts"]),
    ("backend", {"backend_accessories": [{"name": "db", "volumes": [{"target": "/data"}]}]}, ["name", "volumes"]),
    ("backend", {"backend_accessories": [{"name": "db", "secret_mounts": [{"target": "/run/a"}]}]}, ["source", "secret_mounts"]),
    ("backup", {"backup_extra_jobs": [{"name": "x", "type": "tape"}]}, ["type", "tape"]),
    ("backup", {"backup_extra_jobs": [{"type": "volume", "volume": "v"}]}, ["name", "backup_extra_jobs"]),
    ("backup", {"backup_extra_jobs": [{"name": "x", "type": "volume"}]}, ["volume"]),
    ("backup", {"backup_extra_jobs": [{"name": "x", "type": "volume", "volume": "v", "paths": ["/a"]}]},
     ["backup_extra_jobs", "paths"]),
    ("backup", {"backup_keep_extra": {"daily": 3}}, ["backup_keep_extra", "daily"]),
    ("backup", {"backup_keep_extra": {"last": "many"}}, ["last"]),
    ("logrotate", {"logrotate_rules": [{"name": "app"}]}, ["paths", "logrotate_rules"]),
    ("logrotate", {"logrotate_rules": [{"paths": ["/var/log/a.log"]}]}, ["name", "logrotate_rules"]),
    ("logrotate", {"logrotate_rules": [{"name": "app", "paths": ["/a"], "olddir": "/tmp"}]}, ["olddir"]),
    ("logrotate", {"logrotate_rules": [{"name": "app", "paths": ["/a"], "frequency": "hourly"}]}, ["frequency", "hourly"]),
    ("logrotate", {"logrotate_rules": [{"name": "app", "paths": "/var/log/a.log", "rotate": "many"}]}, ["rotate"]),
    ("logrotate", {"logrotate_rule_defaults": {"frequency": "daily", "sharedscripts": True}}, ["sharedscripts"]),
    ("backend", {"backend_memory_other_services": [{"memory_limit": "64g"}]}, ["name", "backend_memory_other_services"]),
    ("backend", {"backend_memory_other_services": [{"name": "db", "limit": "64g"}]}, ["limit"]),
    ("observability", {"observability_memory_other_services": [{"name": "backend", "replicas": "two"}]}, ["replicas"]),
]


@pytest.mark.parametrize(("role", "values", "words"), BAD, ids=[f"{r}-{i}" for i, (r, _v, _w) in enumerate(BAD)])
def test_a_bad_shape_is_named(role, values, words):
    errors = _errors(role, values)
    assert errors, f"{role}: {values} validated"
    text = " ".join(errors)
    missing = [w for w in words if w not in text]
    assert not missing, f"{role}: the message {errors} does not name {missing}"
