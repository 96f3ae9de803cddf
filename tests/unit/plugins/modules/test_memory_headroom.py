# -*- coding: utf-8 -*-
# Copyright (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.armstack.deploy.plugins.modules import memory_headroom

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'fixtures')

AMD_MICRO_BYTES = 1006956 * 1024  # 983.35 MiB
A1_BYTES = 24336680 * 1024


def fixture(*parts):
    return os.path.join(FIXTURES, *parts)


def host(meminfo='amd_micro_1g', cgroup='v2_unlimited', proc='v2_session'):
    return dict(
        meminfo_path=fixture('meminfo', meminfo),
        cgroup_root=fixture('cgroup', cgroup),
        proc_self_cgroup_path=fixture('proc_self_cgroup', proc),
    )


SMALL_STACK = [
    dict(name='caddy', memory_limit='64m'),
    dict(name='postgres', memory_limit=256),
    dict(name='redis'),  # no limit: counted at default_service_mb (128)
    dict(name='backend', memory_limit='2g'),  # ignored: computed
]


def by_name(result):
    return dict((s['name'], s) for s in result['services'])


def test_memory_report_amd_micro(run_module):
    result = run_module(memory_headroom, host())
    assert result['changed'] is False
    assert result['memory'] == dict(
        total_mb=983, available_mb=584, cgroup_limit_mb=None, cgroup_version='v2', basis_mb=983,
        swap_total_mb=1023, swap_free_mb=999,
    )
    assert result['os_reserve_mb'] == 256
    assert result['committed_mb'] == 0
    assert result['headroom_mb'] == 727
    assert result['headroom_percent'] == 73.9
    assert result['required_headroom_mb'] == 64
    assert result['fits'] is True
    assert result['recommended_workers'] is None
    assert result['backend_memory_limit_mb'] is None
    assert result['backend'] is None
    assert result['stack_warnings'] == []


def test_cgroup_v2_limit_is_the_basis(run_module):
    result = run_module(memory_headroom, host('a1_24g', 'v2_limited', 'v2_docker_scope'))
    assert result['memory']['total_mb'] == 23766
    assert result['memory']['cgroup_limit_mb'] == 512
    assert result['memory']['basis_mb'] == 512
    assert result['memory']['swap_total_mb'] == 0


def test_cgroup_v2_max_is_unlimited(run_module):
    result = run_module(memory_headroom, host('a1_24g', 'v2_unlimited', 'v2_session'))
    assert result['memory']['cgroup_limit_mb'] is None
    assert result['memory']['basis_mb'] == 23766


def test_cgroup_v1_limit(run_module):
    result = run_module(memory_headroom, host('a1_24g', 'v1_limited', 'v1_docker'))
    assert result['memory']['cgroup_limit_mb'] == 768
    assert result['memory']['cgroup_version'] == 'v1'
    assert result['memory']['basis_mb'] == 768


def test_cgroup_v1_huge_value_is_unlimited(run_module):
    result = run_module(memory_headroom, host('amd_micro_1g', 'v1_unlimited', 'v1_hybrid_session'))
    assert result['memory']['cgroup_limit_mb'] is None
    assert result['memory']['basis_mb'] == 983


def test_cgroup_limit_above_memtotal_keeps_memtotal(run_module):
    # 1 GiB leaf / 768 MiB parent limit on a 983 MiB host: the parent's 768 MiB counts
    result = run_module(memory_headroom, host('amd_micro_1g', 'v2_parent_limit', 'v2_app_service'))
    assert result['memory']['cgroup_limit_mb'] == 768
    assert result['memory']['basis_mb'] == 768
    result = run_module(memory_headroom, host('amd_micro_1g', 'v1_limited', 'v1_docker'))
    assert result['memory']['basis_mb'] == 768
    # limit larger than MemTotal
    result = run_module(memory_headroom, host('amd_micro_1g', 'v2_limited', 'v2_docker_scope'))
    assert result['memory']['basis_mb'] == 512


def test_small_stack_clamps_at_one_worker(run_module):
    # 983.35 - 256 (OS) - 448 (caddy 64 + postgres 256 + redis 128 default) - 64 (headroom) = 215.35 MiB
    # for the backend: 120 + 1 x 90 = 210 fits, 2 workers (300) do not.
    result = run_module(memory_headroom, dict(host(), services=SMALL_STACK, backend_service='backend', cpu_count=2))
    assert result['fits'] is True
    assert result['recommended_workers'] == 1
    assert result['backend_memory_limit_mb'] == 210
    assert result['committed_mb'] == 448 + 210
    assert result['headroom_mb'] == 69
    assert result['headroom_percent'] == 7.0
    assert result['backend'] == dict(
        service='backend', workers=1, min_workers=1, max_workers=5, max_fitting_workers=1, cpu_count=2,
        replicas=1, memory_limit_mb=210,
    )
    services = by_name(result)
    assert services['caddy'] == dict(name='caddy', limit_mb=64, reservation_mb=None, replicas=1, counted_mb=64,
                                     source='limit')
    assert services['redis']['source'] == 'default' and services['redis']['counted_mb'] == 128
    assert services['backend'] == dict(name='backend', limit_mb=210, reservation_mb=None, replicas=1,
                                       counted_mb=210, source='computed')
    assert len(result['stack_warnings']) == 1
    assert 'redis' in result['stack_warnings'][0] and 'default_service_mb=128' in result['stack_warnings'][0]
    assert run_module.warnings == result['stack_warnings']


def test_fits_at_max_workers(run_module):
    # 24 GB A1 with 4 CPUs: 2 x 4 + 1 = 9 workers, plenty of room
    result = run_module(memory_headroom, dict(host('a1_24g'), services=SMALL_STACK, backend_service='backend',
                                              cpu_count=4))
    assert result['recommended_workers'] == 9
    assert result['backend']['max_fitting_workers'] == 9
    assert result['backend_memory_limit_mb'] == 120 + 9 * 90
    assert result['fits'] is True


def test_explicit_max_workers_and_cpu_detection(run_module, monkeypatch):
    monkeypatch.setattr(memory_headroom, '_detect_cpu_count', lambda: 3)
    result = run_module(memory_headroom, dict(host('a1_24g'), backend_service='backend'))
    assert result['backend']['cpu_count'] == 3
    assert result['recommended_workers'] == 7
    result = run_module(memory_headroom, dict(host('a1_24g'), backend_service='backend', max_workers=4))
    assert result['recommended_workers'] == 4


def test_largest_count_in_range_below_max(run_module):
    # basis 512 MiB (cgroup): 512 - 256 - 64 - 64 (caddy) = 128 left... use a smaller OS reserve:
    # 512 - 100 - 64 (caddy) - 64 (headroom, 5 % = 25.6) = 284 -> 120 + 1 x 90 = 210, 2 x 90 = 300 > 284
    result = run_module(memory_headroom, dict(
        host('a1_24g', 'v2_limited', 'v2_docker_scope'),
        services=[dict(name='caddy', memory_limit='64m')], os_reserve_mb=100, backend_service='api',
        worker_mb=40, max_workers=8,
    ))
    # 284 - 120 = 164 -> 4 workers x 40 = 160
    assert result['recommended_workers'] == 4
    assert result['backend_memory_limit_mb'] == 280
    assert result['headroom_mb'] == 512 - 100 - 64 - 280
    assert any('api is not among the services' in w for w in result['stack_warnings'])
    assert by_name(result)['api']['source'] == 'computed'


def test_min_workers_that_do_not_fit_fail(run_module):
    result = run_module(memory_headroom, dict(host(), services=SMALL_STACK, backend_service='backend', min_workers=2),
                        expect_failure=True)
    msg = result['msg']
    assert 'does not fit' in msg
    assert 'short by 85 MiB' in msg  # needs 64 MiB headroom, 300 MiB backend leaves -20.65
    assert result['fits'] is False
    assert result['recommended_workers'] == 2
    assert result['backend']['max_fitting_workers'] is None


def test_fixed_workers_that_do_not_fit_fail_with_advice(run_module):
    result = run_module(memory_headroom, dict(host(), services=SMALL_STACK, backend_service='backend', workers=3),
                        expect_failure=True)
    msg = result['msg']
    # backend 120 + 3 x 90 = 390: 983.35 - 256 - 448 - 390 = -110.65 MiB headroom; needs 64 -> short by 175 MiB
    assert 'short by 175 MiB' in msg
    assert 'leaves -111 MiB of headroom' in msg
    assert 'at least 64 MiB is required' in msg
    assert 'backend 390 MiB (120 MiB base + 3 workers x 90 MiB)' in msg
    assert 'Biggest consumers: backend 390 MiB (computed), postgres 256 MiB (limit), redis 128 MiB (default)' in msg
    assert 'workers=1 fits' in msg
    assert 'lower the memory limits' in msg
    assert 'drop services' in msg
    assert 'bigger VM shape (at least 1158 MiB' in msg
    assert result['backend_memory_limit_mb'] == 390
    assert result['recommended_workers'] == 3
    assert result['changed'] is False


def test_fixed_workers_that_fit(run_module):
    result = run_module(memory_headroom, dict(host('a1_24g'), services=SMALL_STACK, backend_service='backend',
                                              workers=4, cpu_count=4))
    assert result['fits'] is True
    assert result['recommended_workers'] == 4
    assert result['backend']['max_fitting_workers'] == 9
    assert result['backend_memory_limit_mb'] == 480


def test_fail_on_insufficient_false_returns_fits_false(run_module):
    result = run_module(memory_headroom, dict(host(), services=SMALL_STACK, backend_service='backend', workers=3,
                                              fail_on_insufficient=False))
    assert result['fits'] is False
    assert result['headroom_mb'] == -111
    assert result['headroom_percent'] == -11.3
    assert result['recommended_workers'] == 3
    assert 'failed' not in result


def test_nothing_fits_without_backend(run_module):
    result = run_module(memory_headroom, dict(host(), services=[dict(name='db', memory_limit='1g')]),
                        expect_failure=True)
    assert 'short by' in result['msg']
    assert 'db 1024 MiB (limit)' in result['msg']
    assert 'bigger VM shape' in result['msg']
    assert 'workers' not in result['msg']


def test_cgroup_limited_failure_suggests_raising_the_limit(run_module):
    result = run_module(memory_headroom, dict(host('a1_24g', 'v2_limited', 'v2_docker_scope'),
                                              services=[dict(name='db', memory_limit='300m')]),
                        expect_failure=True)
    assert 'the cgroup limit; MemTotal 23766 MiB' in result['msg']
    assert 'raise the cgroup memory limit' in result['msg']


def test_headroom_percent_can_dominate(run_module):
    # 24 GB: 5 % of 23766.3 MiB = 1188 MiB required, more than min_headroom_mb
    result = run_module(memory_headroom, dict(host('a1_24g'), min_headroom_percent=50))
    assert result['required_headroom_mb'] == 11884
    result = run_module(memory_headroom, dict(host('a1_24g'), min_headroom_percent=5))
    assert result['required_headroom_mb'] == 1189


def test_compose_files_and_overrides(run_module, compose_override):
    result = run_module(memory_headroom, dict(
        host('a1_24g'),
        compose_files=[fixture('compose', 'compose.yaml'), compose_override],
        services=[dict(name='postgres', memory_limit='512m')],
        backend_service='backend', cpu_count=1,
    ))
    services = by_name(result)
    assert services['postgres']['limit_mb'] == 512  # the services option overrides the file
    assert services['postgres']['reservation_mb'] == 128
    assert services['redis']['limit_mb'] == 48
    assert services['worker'] == dict(name='worker', limit_mb=None, reservation_mb=96, replicas=2, counted_mb=192,
                                      source='reservation')
    assert services['backend']['limit_mb'] == 120 + 3 * 90  # its 1g in the file is replaced
    assert result['committed_mb'] == 64 + 512 + 48 + 192 + 390
    assert any('REDIS_MEM' in w for w in result['stack_warnings'])


def test_compose_config_dict(run_module):
    with open(fixture('compose', 'compose_config.json')) as f:
        config = json.load(f)
    result = run_module(memory_headroom, dict(host(), compose_config=config, backend_service='backend', cpu_count=2))
    services = by_name(result)
    assert services['caddy']['counted_mb'] == 64
    assert services['postgres']['counted_mb'] == 256
    assert services['redis']['source'] == 'default'
    assert result['recommended_workers'] == 1
    assert result['fits'] is True


def test_backend_replicas(run_module):
    result = run_module(memory_headroom, dict(
        host('a1_24g', 'v2_limited', 'v2_docker_scope'),
        services=[dict(name='backend', replicas=2)], os_reserve_mb=0, backend_base_mb=100, worker_mb=50,
        max_workers=10, backend_service='backend',
    ))
    # 512 - 64 = 448 for two replicas: 224 each -> 100 + 2 x 50 = 200
    assert result['recommended_workers'] == 2
    assert result['backend_memory_limit_mb'] == 200
    assert by_name(result)['backend']['counted_mb'] == 400


def test_bad_memory_value_fails(run_module):
    result = run_module(memory_headroom, dict(host(), services=[dict(name='db', memory_limit='lots')]),
                        expect_failure=True)
    assert 'services[0] (db) memory_limit' in result['msg']
    assert '256m' in result['msg']


def test_missing_compose_file_fails(run_module, tmp_path):
    result = run_module(memory_headroom, dict(host(), compose_files=[str(tmp_path / 'compose.yaml')]),
                        expect_failure=True)
    assert 'cannot read the compose file' in result['msg']


def test_missing_meminfo_fails(run_module, tmp_path):
    result = run_module(memory_headroom, dict(host(), meminfo_path=str(tmp_path / 'meminfo')), expect_failure=True)
    assert 'cannot read' in result['msg'] and 'meminfo_path' in result['msg']


@pytest.mark.parametrize('args, text', [
    (dict(min_workers=0), 'min_workers must be 1 or more'),
    (dict(min_workers=6, max_workers=4), 'max_workers (4) is smaller than min_workers (6)'),
    (dict(min_workers=6, cpu_count=2), '2 x 2 CPUs + 1'),
    (dict(min_headroom_percent=120), 'min_headroom_percent must be between 0 and 100'),
    (dict(os_reserve_mb=-1), 'os_reserve_mb must be 0 or more'),
])
def test_invalid_sizing_options(run_module, args, text):
    result = run_module(memory_headroom, dict(host(), backend_service='backend', **args), expect_failure=True)
    assert text in result['msg']


def test_workers_requires_backend_service(run_module):
    result = run_module(memory_headroom, dict(host(), workers=2), expect_failure=True)
    assert 'backend_service' in result['msg']


def test_check_mode_same_result(run_module):
    args = dict(host(), services=SMALL_STACK, backend_service='backend', cpu_count=2)
    normal = run_module(memory_headroom, args)
    checked = run_module(memory_headroom, args, check_mode=True)
    assert checked == normal
    assert checked['changed'] is False
