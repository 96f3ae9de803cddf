#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: memory_headroom
short_description: Check that a container stack fits the memory of a host and size the backend's workers
version_added: 0.1.0
description:
  - Answers two questions before a deployment. Does this stack fit this VM? How many Gunicorn/Uvicorn workers can the
    backend run?
  - Reads C(MemTotal), C(MemAvailable), C(SwapTotal) and C(SwapFree) from C(/proc/meminfo), and the memory limit of the
    cgroup the module runs in, if it has one (cgroup v2 C(memory.max), cgroup v1 C(memory.limit_in_bytes); the smallest
    limit of the cgroup and its ancestors counts).
  - The basis of the computation is the usable memory, the smaller of C(MemTotal) and the cgroup limit. Swap is
    reported, never counted as headroom.
  - The planned stack comes from O(services), O(compose_files) and O(compose_config), merged by service name in this
    order - O(compose_files), then O(compose_config), then O(services); a later source overrides the fields it sets.
  - Each service counts with its memory limit, or its reservation when it has no limit, or O(default_service_mb) when it
    has neither (then a warning names it), multiplied by its replicas.
  - When O(backend_service) is set, that service's own limit is not counted. The module computes the largest number of
    workers in O(min_workers)..O(max_workers) that leaves enough headroom, and the memory limit the backend container
    needs for it.
  - Headroom is the basis minus O(os_reserve_mb) minus the committed memory of all services. It is enough when it is at
    least O(min_headroom_mb) and at least O(min_headroom_percent) percent of the basis.
  - "Memory sizes are read with these rules: a number, decimals allowed, with an optional unit V(b), V(k), V(m), V(g)
    or V(t), case-insensitive and optionally followed by V(b) or V(ib) - V(256m), V(256M), V(1g), V(1.5G), V(512MiB),
    V(2gb) and V(268435456b) are all valid. A value without a unit (an integer, or a string of digits) is MiB in
    O(services) and bytes in Compose files, as Docker Compose reads them."
  - "All units are binary (V(1k) is 1024 bytes), as in Docker. V(0) and V(-1) mean no
    limit."
  - The module only reads; it never changes the host and runs the same in check mode.
options:
  services:
    description:
      - The planned services.
      - Fields given here override the same fields read from O(compose_files) and O(compose_config).
    type: list
    elements: dict
    suboptions:
      name:
        description:
          - Name of the service, as in the Compose file.
        type: str
        required: true
      memory_limit:
        description:
          - The memory limit of one container of the service (Compose C(mem_limit) or
            C(deploy.resources.limits.memory)).
          - An integer is MiB; a string may carry a unit, see the description of the module.
        type: raw
      memory_reservation:
        description:
          - The memory reservation of one container of the service (Compose C(mem_reservation) or
            C(deploy.resources.reservations.memory)). Counted only when the service has no limit.
          - An integer is MiB; a string may carry a unit, see the description of the module.
        type: raw
      replicas:
        description:
          - How many containers of the service run.
          - When not set, the value from the Compose data (C(deploy.replicas) or C(scale)) is used, otherwise V(1).
        type: int
  compose_files:
    description:
      - Paths on the target of Compose files to read the services from, merged in order like C(docker compose -f a -f b).
      - Reads C(mem_limit), C(mem_reservation), C(deploy.resources.limits.memory),
        C(deploy.resources.reservations.memory), C(deploy.replicas) and C(scale). When a service has both forms, the
        smaller value counts.
      - Variables of the form C(${VAR:-default}) resolve to their default, with a warning; any other interpolation
        fails, use O(compose_config) then.
      - Services with C(profiles) are counted as if all profiles were active.
      - Needs PyYAML (C(python3-yaml)) on the target.
    type: list
    elements: path
  compose_config:
    description:
      - A Compose project as a dictionary, for example the parsed output of C(docker compose config --format json).
      - Read with the same rules as O(compose_files), after them.
    type: dict
  default_service_mb:
    description:
      - MiB counted for a service that has neither a memory limit nor a reservation.
    type: int
    default: 128
  os_reserve_mb:
    description:
      - MiB kept for the operating system, sshd, dockerd, containerd and journald, outside of any container.
    type: int
    default: 256
  backend_service:
    description:
      - Name of the backend service whose workers are sized.
      - Its own limit is not counted; it is computed as O(backend_base_mb) + workers x O(worker_mb) (times its
        replicas).
      - When the service is not part of the planned stack, it is added, with a warning.
      - When not set, the module only checks that the stack fits.
    type: str
  backend_base_mb:
    description:
      - MiB the backend needs with no worker, the Gunicorn master and the imported application.
    type: int
    default: 120
  worker_mb:
    description:
      - MiB each Uvicorn worker of the backend needs.
    type: int
    default: 90
  min_workers:
    description:
      - The smallest number of workers the backend may run. When even this many do not fit, the stack does not fit.
    type: int
    default: 1
  max_workers:
    description:
      - The largest number of workers to recommend.
      - V(0) means 2 x CPU count + 1, the Gunicorn rule of thumb, with the CPU count from O(cpu_count).
    type: int
    default: 0
  workers:
    description:
      - A fixed number of workers. The module does not search for the largest count, it only checks that this one fits.
      - Requires O(backend_service).
    type: int
  cpu_count:
    description:
      - The CPU count used when O(max_workers=0).
      - When not set, the CPUs the module may run on (C(os.sched_getaffinity)), or C(os.cpu_count()).
    type: int
  min_headroom_mb:
    description:
      - The headroom must be at least this many MiB.
    type: int
    default: 64
  min_headroom_percent:
    description:
      - The headroom must be at least this percentage of the basis (the usable memory).
    type: float
    default: 5
  fail_on_insufficient:
    description:
      - When V(true), fail when the stack does not fit, with a message saying what is short, by how much, which services
        use most and what to change.
      - When V(false), return RV(fits=false) and do not fail.
    type: bool
    default: true
  meminfo_path:
    description:
      - The meminfo file to read. Exists so tests can use fixture files; leave the default on real hosts.
    type: path
    default: /proc/meminfo
  cgroup_root:
    description:
      - Where the cgroup file systems are mounted. Exists so tests can use fixture directories; leave the default on real
        hosts.
    type: path
    default: /sys/fs/cgroup
  proc_self_cgroup_path:
    description:
      - The file that names the cgroup of the module's process. Exists so tests can use fixture files; leave the default
        on real hosts.
    type: path
    default: /proc/self/cgroup
extends_documentation_fragment:
  - armstack.deploy.attributes
notes:
  - Linux only; it reads C(/proc) and C(/sys/fs/cgroup).
  - Ansible reserves the result key C(warnings); the warnings of this module are returned as RV(stack_warnings) and are
    also shown as regular task warnings.
seealso:
  - name: Docker Compose - resource constraints
    description: The deploy.resources reference of the Compose specification.
    link: https://docs.docker.com/reference/compose-file/deploy/#resources
author:
  - armstack.deploy contributors (!UNKNOWN)
"""

EXAMPLES = r"""
---
- name: Check that the stack fits and size the backend
  armstack.deploy.memory_headroom:
    compose_files:
      - /opt/app/compose.yaml
    backend_service: backend
  register: headroom

- name: Show the sizing
  ansible.builtin.debug:
    msg: >-
      {{ headroom.recommended_workers }} workers, backend limit {{ headroom.backend_memory_limit_mb }}m,
      headroom {{ headroom.headroom_mb }} MiB ({{ headroom.headroom_percent }} %)

- name: Plan a stack given inline on a 1 GB VM, without failing
  armstack.deploy.memory_headroom:
    services:
      - name: caddy
        memory_limit: 64m
      - name: postgres
        memory_limit: 256m
      - name: redis
        memory_reservation: 32
      - name: backend
    backend_service: backend
    max_workers: 3
    fail_on_insufficient: false
  register: plan

- name: Check a fixed worker count with the interpolated Compose project
  block:
    - name: Render the Compose project
      ansible.builtin.command:
        cmd: docker compose --project-directory /opt/app config --format json
      register: compose
      changed_when: false

    - name: Check that 4 workers fit
      armstack.deploy.memory_headroom:
        compose_config: "{{ compose.stdout | from_json }}"
        backend_service: backend
        workers: 4
"""

RETURN = r"""
---
memory:
  description: The memory of the host, in MiB rounded down.
  returned: success
  type: dict
  sample:
    total_mb: 983
    available_mb: 612
    cgroup_limit_mb: null
    cgroup_version: v2
    basis_mb: 983
    swap_total_mb: 1023
    swap_free_mb: 1000
  contains:
    total_mb:
      description: C(MemTotal).
      returned: success
      type: int
      sample: 983
    available_mb:
      description: C(MemAvailable), or C(MemFree) on kernels without it. For information only.
      returned: success
      type: int
      sample: 612
    cgroup_limit_mb:
      description: The memory limit of the module's cgroup, V(null) when there is none.
      returned: success
      type: int
      sample: null
    cgroup_version:
      description: V(v1) or V(v2), the cgroup hierarchy the limit was looked for in; V(null) when none was found.
      returned: success
      type: str
      sample: v2
    basis_mb:
      description: The usable memory, the smaller of RV(memory.total_mb) and RV(memory.cgroup_limit_mb).
      returned: success
      type: int
      sample: 983
    swap_total_mb:
      description: C(SwapTotal). Never counted as headroom.
      returned: success
      type: int
      sample: 1023
    swap_free_mb:
      description: C(SwapFree). Never counted as headroom.
      returned: success
      type: int
      sample: 1000
os_reserve_mb:
  description: The memory kept for the operating system, O(os_reserve_mb).
  returned: success
  type: int
  sample: 256
committed_mb:
  description: The memory of all services, the computed backend included.
  returned: success
  type: int
  sample: 636
headroom_mb:
  description: The basis minus RV(os_reserve_mb) minus RV(committed_mb). Negative when the stack does not fit at all.
  returned: success
  type: int
  sample: 91
headroom_percent:
  description: RV(headroom_mb) as a percentage of the basis, rounded down to one decimal.
  returned: success
  type: float
  sample: 9.3
required_headroom_mb:
  description: The headroom needed, the larger of O(min_headroom_mb) and O(min_headroom_percent) of the basis.
  returned: success
  type: int
  sample: 64
recommended_workers:
  description:
    - The worker count to configure in the backend.
    - The largest count in O(min_workers)..O(max_workers) that fits; O(workers) when it is set; O(min_workers) when
      nothing fits (then RV(fits) is V(false)).
    - V(null) without O(backend_service).
  returned: success
  type: int
  sample: 3
backend_memory_limit_mb:
  description:
    - The memory limit for one backend container, O(backend_base_mb) + RV(recommended_workers) x O(worker_mb).
    - V(null) without O(backend_service).
  returned: success
  type: int
  sample: 390
backend:
  description: Details of the backend sizing; V(null) without O(backend_service).
  returned: success
  type: dict
  sample:
    service: backend
    workers: 3
    min_workers: 1
    max_workers: 5
    max_fitting_workers: 3
    cpu_count: 2
    replicas: 1
    memory_limit_mb: 390
  contains:
    service:
      description: O(backend_service).
      returned: success
      type: str
      sample: backend
    workers:
      description: Same as RV(recommended_workers).
      returned: success
      type: int
      sample: 3
    min_workers:
      description: O(min_workers).
      returned: success
      type: int
      sample: 1
    max_workers:
      description: The upper bound used, O(max_workers) or 2 x RV(backend.cpu_count) + 1.
      returned: success
      type: int
      sample: 5
    max_fitting_workers:
      description: The largest count in O(min_workers)..RV(backend.max_workers) that fits, V(null) when none does.
      returned: success
      type: int
      sample: 3
    cpu_count:
      description: The CPU count used for the default of O(max_workers).
      returned: success
      type: int
      sample: 2
    replicas:
      description: How many backend containers run.
      returned: success
      type: int
      sample: 1
    memory_limit_mb:
      description: Same as RV(backend_memory_limit_mb).
      returned: success
      type: int
      sample: 390
services:
  description: Every service of the planned stack and how it was counted.
  returned: success
  type: list
  elements: dict
  sample:
    - name: backend
      limit_mb: 390
      reservation_mb: null
      replicas: 1
      counted_mb: 390
      source: computed
    - name: redis
      limit_mb: null
      reservation_mb: null
      replicas: 1
      counted_mb: 128
      source: default
  contains:
    name:
      description: Name of the service.
      returned: success
      type: str
      sample: postgres
    limit_mb:
      description: The memory limit of one container, V(null) when none is set. For the backend, the computed limit.
      returned: success
      type: int
      sample: 256
    reservation_mb:
      description: The memory reservation of one container, V(null) when none is set.
      returned: success
      type: int
      sample: null
    replicas:
      description: How many containers of the service run.
      returned: success
      type: int
      sample: 1
    counted_mb:
      description: What the service adds to RV(committed_mb), all replicas included.
      returned: success
      type: int
      sample: 256
    source:
      description: Which figure was counted.
      returned: success
      type: str
      choices: [limit, reservation, default, computed]
      sample: limit
fits:
  description: Whether the stack leaves at least RV(required_headroom_mb) of headroom.
  returned: success
  type: bool
  sample: true
stack_warnings:
  description:
    - Warnings about the plan, for example services counted at O(default_service_mb). They are also emitted as task
      warnings.
    - Named so because Ansible reserves the result key C(warnings).
  returned: success
  type: list
  elements: str
  sample:
    - "service redis has no memory limit or reservation; counted at default_service_mb=128 MiB"
"""

import math
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.armstack.deploy.plugins.module_utils._memory import (
    MIB,
    MemoryConfigError,
    backend_bytes,
    bytes_to_mib,
    headroom_required,
    largest_fitting_workers,
    load_compose_yaml,
    merge_compose,
    merge_entries,
    parse_memory,
    read_cgroup_limit,
    read_meminfo,
    services_from_compose,
)


def _detect_cpu_count():
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _fmt_mib(value):
    """Bytes as a MiB figure for messages; shortfalls round up."""
    return '%d MiB' % bytes_to_mib(value)


def _collect_services(params, warnings):
    groups = []
    if params['compose_files']:
        documents = [(path, load_compose_yaml(path)) for path in params['compose_files']]
        merged = merge_compose(documents)
        groups.append(services_from_compose(merged, ', '.join(params['compose_files']), warnings))
    if params['compose_config'] is not None:
        merged = merge_compose([('compose_config', params['compose_config'])])
        groups.append(services_from_compose(merged, 'compose_config', warnings))
    if params['services']:
        entries = []
        for index, service in enumerate(params['services']):
            what = 'services[%d] (%s)' % (index, service['name'])
            replicas = service.get('replicas')
            if replicas is not None and replicas < 0:
                raise MemoryConfigError('%s: replicas must be 0 or more, got %d' % (what, replicas))
            entries.append({
                'name': service['name'],
                'limit': parse_memory(service.get('memory_limit'), 'm', what + ' memory_limit'),
                'reservation': parse_memory(service.get('memory_reservation'), 'm', what + ' memory_reservation'),
                'replicas': replicas,
            })
        groups.append(entries)
    return merge_entries(*groups)


def _validate(params):
    for key in ('default_service_mb', 'os_reserve_mb', 'backend_base_mb', 'worker_mb', 'min_headroom_mb',
                'max_workers'):
        if params[key] < 0:
            raise MemoryConfigError('%s must be 0 or more, got %d' % (key, params[key]))
    if not 0 <= params['min_headroom_percent'] < 100:
        raise MemoryConfigError(
            'min_headroom_percent must be between 0 and 100 (exclusive), got %s' % params['min_headroom_percent'])
    if params['min_workers'] < 1:
        raise MemoryConfigError('min_workers must be 1 or more, got %d' % params['min_workers'])
    if params['workers'] is not None and params['workers'] < 1:
        raise MemoryConfigError('workers must be 1 or more, got %d' % params['workers'])
    if params['cpu_count'] is not None and params['cpu_count'] < 1:
        raise MemoryConfigError('cpu_count must be 1 or more, got %d' % params['cpu_count'])


class Plan(object):
    def __init__(self, params, warn):
        self.params = params
        self.warn = warn
        self.meminfo = None
        self.cgroup = None
        self.basis = None
        self.services = []
        self.backend = None

    def load(self):
        params = self.params
        self.meminfo = read_meminfo(params['meminfo_path'])
        self.cgroup = read_cgroup_limit(params['cgroup_root'], params['proc_self_cgroup_path'])
        total = self.meminfo['MemTotal']
        limit = self.cgroup['limit']
        self.basis = total if limit is None else min(total, limit)

        warnings = []
        self.services = _collect_services(params, warnings)
        for message in warnings:
            self.warn(message)

        name = params['backend_service']
        if name is not None and name not in [s['name'] for s in self.services]:
            self.warn('backend_service %s is not among the services of the planned stack (%s); it is added as a '
                      'computed service. Check the name if the stack does define the backend'
                      % (name, ', '.join(s['name'] for s in self.services) or 'none'))
            self.services.append({'name': name, 'limit': None, 'reservation': None, 'replicas': 1})

        default = params['default_service_mb'] * MIB
        for service in self.services:
            if service['replicas'] is None:
                service['replicas'] = 1
            if service['name'] == name:
                service['source'] = 'computed'
                self.backend = service
                continue
            if service['limit'] is not None:
                service['source'] = 'limit'
                per_container = service['limit']
            elif service['reservation'] is not None:
                service['source'] = 'reservation'
                per_container = service['reservation']
            else:
                service['source'] = 'default'
                per_container = default
                self.warn('service %s has no memory limit or reservation; counted at default_service_mb=%d MiB. '
                          'Set mem_limit (or deploy.resources.limits.memory) on it to count it exactly'
                          % (service['name'], params['default_service_mb']))
            service['counted'] = per_container * service['replicas']

    def size(self):
        params = self.params
        basis = self.basis
        os_reserve = params['os_reserve_mb'] * MIB
        others = sum(s['counted'] for s in self.services if s is not self.backend)
        required = headroom_required(basis, params['min_headroom_mb'] * MIB, params['min_headroom_percent'])
        result = {'required': required, 'others': others, 'os_reserve': os_reserve}

        if self.backend is None:
            result['committed'] = others
            result['headroom'] = basis - os_reserve - others
            result['fits'] = result['headroom'] >= required
            return result

        base = params['backend_base_mb'] * MIB
        worker = params['worker_mb'] * MIB
        replicas = self.backend['replicas']
        cpu_count = params['cpu_count'] or _detect_cpu_count()
        max_workers = params['max_workers'] or 2 * cpu_count + 1
        min_workers = params['min_workers']
        if max_workers < min_workers:
            raise MemoryConfigError(
                'max_workers (%d%s) is smaller than min_workers (%d); raise max_workers or lower min_workers'
                % (max_workers, ', from 2 x %d CPUs + 1' % cpu_count if not params['max_workers'] else '',
                   min_workers))

        available = basis - os_reserve - others - required
        per_replica = available // replicas if replicas else available
        if replicas:
            max_fitting = largest_fitting_workers(per_replica, base, worker, min_workers, max_workers)
        else:
            max_fitting = max_workers

        if params['workers'] is not None:
            workers = params['workers']
        elif max_fitting is not None:
            workers = max_fitting
        else:
            workers = min_workers

        limit = backend_bytes(base, worker, workers)
        self.backend['limit'] = limit
        self.backend['counted'] = limit * replicas
        committed = others + limit * replicas
        headroom = basis - os_reserve - committed
        result.update(
            committed=committed,
            headroom=headroom,
            fits=headroom >= required,
            workers=workers,
            min_workers=min_workers,
            max_workers=max_workers,
            max_fitting=max_fitting,
            cpu_count=cpu_count,
            replicas=replicas,
            backend_limit=limit,
            base=base,
            worker=worker,
            # The largest count that fits at all, ignoring max_workers; for the failure message.
            any_fitting=(largest_fitting_workers(per_replica, base, worker, 1, workers - 1)
                         if replicas and workers > 1 else None),
        )
        return result

    def shortage_message(self, sizing):
        params = self.params
        basis = self.basis
        shortfall = sizing['required'] - sizing['headroom']
        short_mib = int(math.ceil(shortfall / float(MIB)))
        total = self.meminfo['MemTotal']
        cgroup_limit = self.cgroup['limit']

        if cgroup_limit is not None and cgroup_limit < total:
            basis_text = '%s (the cgroup limit; MemTotal %s)' % (_fmt_mib(basis), _fmt_mib(total))
        else:
            basis_text = '%s (MemTotal%s)' % (
                _fmt_mib(basis), '' if cgroup_limit is None else '; cgroup limit %s' % _fmt_mib(cgroup_limit))

        parts = ['The planned stack does not fit in memory: usable %s - OS reserve %s - services %s'
                 % (basis_text, _fmt_mib(sizing['os_reserve']), _fmt_mib(sizing['others']))]
        if self.backend is not None:
            one = '%d MiB base + %d workers x %d MiB' % (params['backend_base_mb'], sizing['workers'], params['worker_mb'])
            if sizing['replicas'] != 1:
                one = '%d replicas x (%s)' % (sizing['replicas'], one)
            parts.append(' - backend %s (%s)' % (_fmt_mib(self.backend['counted']), one))
        headroom_mib = int(math.floor(sizing['headroom'] / float(MIB)))
        parts.append(' leaves %d MiB of headroom, but at least %s is required (the larger of min_headroom_mb=%d '
                     'and min_headroom_percent=%s%% of the usable memory): short by %d MiB.'
                     % (headroom_mib, _fmt_mib(sizing['required']), params['min_headroom_mb'],
                        params['min_headroom_percent'], short_mib))

        consumers = sorted(self.services, key=lambda s: s['counted'], reverse=True)[:3]
        if consumers:
            parts.append(' Biggest consumers: %s.' % ', '.join(
                '%s %s (%s%s)' % (s['name'], _fmt_mib(s['counted']), s['source'],
                                  ', %d replicas' % s['replicas'] if s['replicas'] != 1 else '')
                for s in consumers))

        fixes = []
        if self.backend is not None:
            if params['workers'] is not None and sizing['any_fitting'] is not None:
                fixes.append('run fewer workers (workers=%d fits; each worker needs %d MiB)'
                             % (sizing['any_fitting'], params['worker_mb']))
            elif sizing['workers'] > 1:
                fixes.append('run fewer workers (each needs %d MiB; min_workers=%d)'
                             % (params['worker_mb'], params['min_workers']))
            else:
                fixes.append('lower backend_base_mb or worker_mb if the backend really needs less')
        fixes.append('lower the memory limits of the biggest services by %d MiB in total' % short_mib)
        fixes.append('drop services from this host')
        need = self._basis_needed(sizing)
        if cgroup_limit is not None and cgroup_limit < total:
            fixes.append('raise the cgroup memory limit to at least %d MiB' % need)
        else:
            fixes.append('use a bigger VM shape (at least %d MiB of memory)' % need)
        parts.append(' To fix it: %s.' % '; or '.join(fixes))
        return ''.join(parts)

    def _basis_needed(self, sizing):
        """Smallest usable memory (MiB, rounded up) that fits the plan as it is."""
        params = self.params
        fixed = sizing['os_reserve'] + sizing['committed']
        by_mb = fixed + params['min_headroom_mb'] * MIB
        by_percent = fixed / (1 - params['min_headroom_percent'] / 100.0)
        return int(math.ceil(max(by_mb, by_percent) / float(MIB)))


def main():
    argument_spec = dict(
        services=dict(type='list', elements='dict', options=dict(
            name=dict(type='str', required=True),
            memory_limit=dict(type='raw'),
            memory_reservation=dict(type='raw'),
            replicas=dict(type='int'),
        )),
        compose_files=dict(type='list', elements='path'),
        compose_config=dict(type='dict'),
        default_service_mb=dict(type='int', default=128),
        os_reserve_mb=dict(type='int', default=256),
        backend_service=dict(type='str'),
        backend_base_mb=dict(type='int', default=120),
        worker_mb=dict(type='int', default=90),
        min_workers=dict(type='int', default=1),
        max_workers=dict(type='int', default=0),
        workers=dict(type='int'),
        cpu_count=dict(type='int'),
        min_headroom_mb=dict(type='int', default=64),
        min_headroom_percent=dict(type='float', default=5),
        fail_on_insufficient=dict(type='bool', default=True),
        meminfo_path=dict(type='path', default='/proc/meminfo'),
        cgroup_root=dict(type='path', default='/sys/fs/cgroup'),
        proc_self_cgroup_path=dict(type='path', default='/proc/self/cgroup'),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_by=dict(workers='backend_service'),
        supports_check_mode=True,
    )

    stack_warnings = []

    def warn(message):
        stack_warnings.append(message)
        module.warn(message)

    plan = Plan(module.params, warn)
    try:
        _validate(module.params)
        plan.load()
        sizing = plan.size()
    except MemoryConfigError as exc:
        module.fail_json(msg=str(exc), stack_warnings=stack_warnings)

    meminfo = plan.meminfo
    basis = plan.basis
    available = meminfo.get('MemAvailable', meminfo.get('MemFree'))
    result = dict(
        changed=False,
        memory=dict(
            total_mb=bytes_to_mib(meminfo['MemTotal']),
            available_mb=bytes_to_mib(available),
            cgroup_limit_mb=bytes_to_mib(plan.cgroup['limit']),
            cgroup_version=plan.cgroup['version'],
            basis_mb=bytes_to_mib(basis),
            swap_total_mb=bytes_to_mib(meminfo.get('SwapTotal', 0)),
            swap_free_mb=bytes_to_mib(meminfo.get('SwapFree', 0)),
        ),
        os_reserve_mb=module.params['os_reserve_mb'],
        committed_mb=bytes_to_mib(sizing['committed']),
        headroom_mb=bytes_to_mib(sizing['headroom']),
        headroom_percent=(math.floor(sizing['headroom'] * 1000.0 / basis) / 10.0) if basis else 0.0,
        required_headroom_mb=int(math.ceil(sizing['required'] / float(MIB))),
        recommended_workers=None,
        backend_memory_limit_mb=None,
        backend=None,
        services=[dict(
            name=s['name'],
            limit_mb=bytes_to_mib(s['limit']),
            reservation_mb=bytes_to_mib(s['reservation']),
            replicas=s['replicas'],
            counted_mb=bytes_to_mib(s['counted']),
            source=s['source'],
        ) for s in plan.services],
        fits=sizing['fits'],
        stack_warnings=stack_warnings,
    )
    if plan.backend is not None:
        result['recommended_workers'] = sizing['workers']
        result['backend_memory_limit_mb'] = bytes_to_mib(sizing['backend_limit'])
        result['backend'] = dict(
            service=plan.backend['name'],
            workers=sizing['workers'],
            min_workers=sizing['min_workers'],
            max_workers=sizing['max_workers'],
            max_fitting_workers=sizing['max_fitting'],
            cpu_count=sizing['cpu_count'],
            replicas=sizing['replicas'],
            memory_limit_mb=bytes_to_mib(sizing['backend_limit']),
        )

    if not sizing['fits'] and module.params['fail_on_insufficient']:
        module.fail_json(msg=plan.shortage_message(sizing), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
