# -*- coding: utf-8 -*-
# Copyright (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os
import sys

import pytest

from ansible_collections.armstack.deploy.plugins.module_utils._memory import (
    MIB,
    MemoryConfigError,
    largest_fitting_workers,
    load_compose_yaml,
    merge_compose,
    merge_entries,
    parse_memory,
    read_cgroup_limit,
    read_meminfo,
    services_from_compose,
)

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'fixtures')


def fixture(*parts):
    return os.path.join(FIXTURES, *parts)


@pytest.mark.parametrize('value, bare_unit, expected', [
    # services option: bare numbers are MiB
    (256, 'm', 256 * MIB),
    ('256', 'm', 256 * MIB),
    (0.5, 'm', 512 * 1024),
    ('256m', 'm', 256 * MIB),
    ('256M', 'm', 256 * MIB),
    ('256mb', 'm', 256 * MIB),
    ('256 MB', 'm', 256 * MIB),
    ('512MiB', 'm', 512 * MIB),
    ('512mib', 'm', 512 * MIB),
    ('1g', 'm', 1024 * MIB),
    ('1G', 'm', 1024 * MIB),
    ('1.5G', 'm', 1536 * MIB),
    ('1.5GiB', 'm', 1536 * MIB),
    ('.5g', 'm', 512 * MIB),
    ('2gb', 'm', 2048 * MIB),
    ('1t', 'm', 1024 * 1024 * MIB),
    ('65536k', 'm', 64 * MIB),
    ('65536KiB', 'm', 64 * MIB),
    ('268435456b', 'm', 256 * MIB),
    ('268435456B', 'm', 256 * MIB),
    (' 64m ', 'm', 64 * MIB),
    # Compose: bare numbers are bytes
    (268435456, 'b', 256 * MIB),
    ('268435456', 'b', 256 * MIB),
    ('256m', 'b', 256 * MIB),
    # unset / unlimited
    (None, 'm', None),
    ('', 'm', None),
    (0, 'm', None),
    ('0', 'b', None),
    (-1, 'b', None),
    ('-1', 'm', None),
])
def test_parse_memory(value, bare_unit, expected):
    assert parse_memory(value, bare_unit) == expected


@pytest.mark.parametrize('value', ['lots', '256x', '1.2.3g', 'm', '256 m b', '-5m', -5, True, [256], {'m': 1}, '512ib'])
def test_parse_memory_rejects(value):
    with pytest.raises(MemoryConfigError) as exc:
        parse_memory(value, 'm', what='services[0] (db) memory_limit')
    assert 'services[0] (db) memory_limit' in str(exc.value)


def test_read_meminfo_amd_micro():
    info = read_meminfo(fixture('meminfo', 'amd_micro_1g'))
    assert info['MemTotal'] == 1006956 * 1024
    assert info['MemAvailable'] == 598024 * 1024
    assert info['SwapTotal'] == 1048572 * 1024
    assert info['SwapFree'] == 1023996 * 1024
    assert info['HugePages_Total'] == 0  # no unit: a count, not kB


def test_read_meminfo_missing(tmp_path):
    with pytest.raises(MemoryConfigError) as exc:
        read_meminfo(str(tmp_path / 'nope'))
    assert 'meminfo_path' in str(exc.value)


def test_read_meminfo_without_memtotal(tmp_path):
    path = tmp_path / 'meminfo'
    path.write_text('MemFree: 12 kB\n')
    with pytest.raises(MemoryConfigError) as exc:
        read_meminfo(str(path))
    assert 'MemTotal' in str(exc.value)


@pytest.mark.parametrize('root, proc, limit, version', [
    ('v2_limited', 'v2_docker_scope', 512 * MIB, 'v2'),
    ('v2_unlimited', 'v2_session', None, 'v2'),
    ('v2_parent_limit', 'v2_app_service', 768 * MIB, 'v2'),
    ('v2_namespaced', 'v2_root', 384 * MIB, 'v2'),
    # /proc/self/cgroup names a path that is not below the mount (cgroup namespace): the mount root counts
    ('v2_namespaced', 'v2_docker_scope', 384 * MIB, 'v2'),
    ('v1_limited', 'v1_docker', 768 * MIB, 'v1'),
    ('v1_unlimited', 'v1_hybrid_session', None, 'v1'),
])
def test_read_cgroup_limit(root, proc, limit, version):
    result = read_cgroup_limit(fixture('cgroup', root), fixture('proc_self_cgroup', proc))
    assert result['limit'] == limit
    assert result['version'] == version
    if limit is not None:
        assert result['path'].startswith(fixture('cgroup', root))


def test_read_cgroup_limit_no_cgroup(tmp_path):
    result = read_cgroup_limit(str(tmp_path / 'none'), str(tmp_path / 'missing'))
    assert result == {'limit': None, 'version': None, 'path': None}


def test_compose_files_merge(compose_override):
    warnings = []
    documents = [(p, load_compose_yaml(p)) for p in (fixture('compose', 'compose.yaml'), compose_override)]
    entries = services_from_compose(merge_compose(documents), 'compose', warnings)
    by_name = dict((e['name'], e) for e in entries)
    assert by_name['caddy'] == {'name': 'caddy', 'limit': 64 * MIB, 'reservation': None, 'replicas': 1}
    assert by_name['postgres'] == {'name': 'postgres', 'limit': 256 * MIB, 'reservation': 128 * MIB, 'replicas': 1}
    assert by_name['redis']['limit'] == 48 * MIB  # ${REDIS_MEM:-48m}
    assert by_name['backend']['limit'] == 1024 * MIB
    assert by_name['worker'] == {'name': 'worker', 'limit': None, 'reservation': 96 * MIB, 'replicas': 2}
    assert len(warnings) == 1 and 'REDIS_MEM' in warnings[0] and 'compose_config' in warnings[0]


def test_compose_config_dict():
    with open(fixture('compose', 'compose_config.json')) as f:
        config = json.load(f)
    entries = services_from_compose(merge_compose([('compose_config', config)]), 'compose_config', [])
    by_name = dict((e['name'], e) for e in entries)
    assert by_name['backend']['limit'] == 1024 * MIB
    assert by_name['caddy']['limit'] == 64 * MIB
    assert by_name['postgres']['limit'] == 256 * MIB
    assert by_name['postgres']['reservation'] == 128 * MIB
    assert by_name['redis']['limit'] is None and by_name['redis']['reservation'] is None


def test_compose_both_forms_smallest_counts():
    config = {'services': {'db': {'mem_limit': '512m', 'deploy': {'resources': {'limits': {'memory': '384m'}}}}}}
    entries = services_from_compose(merge_compose([('c', config)]), 'c', [])
    assert entries[0]['limit'] == 384 * MIB


def test_compose_scale_counts_replicas():
    config = {'services': {'w': {'mem_limit': 100 * MIB, 'scale': 3}}}
    entries = services_from_compose(merge_compose([('c', config)]), 'c', [])
    assert entries[0]['replicas'] == 3


def test_compose_interpolation_without_default_fails():
    config = {'services': {'db': {'mem_limit': '${DB_MEM}'}}}
    with pytest.raises(MemoryConfigError) as exc:
        services_from_compose(merge_compose([('c', config)]), 'c', [])
    assert 'docker compose config' in str(exc.value)


def test_compose_bad_yaml(tmp_path):
    path = tmp_path / 'compose.yaml'
    path.write_text('services: [a\n')
    with pytest.raises(MemoryConfigError) as exc:
        load_compose_yaml(str(path))
    assert 'not valid YAML' in str(exc.value)


def test_compose_services_not_a_mapping():
    with pytest.raises(MemoryConfigError):
        merge_compose([('c', {'services': ['a', 'b']})])


def test_merge_entries_later_wins_only_for_set_fields():
    merged = merge_entries(
        [{'name': 'db', 'limit': 256, 'reservation': 128, 'replicas': 1}],
        [{'name': 'db', 'limit': 512, 'reservation': None, 'replicas': None},
         {'name': 'new', 'limit': None, 'reservation': None, 'replicas': None}],
    )
    assert merged == [
        {'name': 'db', 'limit': 512, 'reservation': 128, 'replicas': 1},
        {'name': 'new', 'limit': None, 'reservation': None, 'replicas': 1},
    ]


@pytest.mark.parametrize('available, low, high, expected', [
    (1000, 1, 9, 9),      # everything fits: capped at high
    (400, 1, 9, 3),       # 100 + 3 * 100 = 400
    (399, 1, 9, 2),
    (200, 1, 9, 1),
    (199, 1, 9, None),    # not even low fits
    (400, 3, 9, 3),
    (399, 3, 9, None),
    (-50, 1, 9, None),
    (1000, 5, 4, None),   # empty range
])
def test_largest_fitting_workers(available, low, high, expected):
    assert largest_fitting_workers(available, 100, 100, low, high) == expected


def test_compose_without_pyyaml(monkeypatch):
    monkeypatch.setitem(sys.modules, 'yaml', None)  # makes "import yaml" raise ImportError
    with pytest.raises(MemoryConfigError) as exc:
        load_compose_yaml(fixture('compose', 'compose.yaml'))
    assert 'python3-yaml' in str(exc.value) and 'compose_config' in str(exc.value)
