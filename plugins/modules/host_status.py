#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_status
short_description: Read what a host deployed by armstack.deploy runs, and whether each part is in its healthy range
version_added: 0.1.0
description:
  - Reads, in one call and without changing anything, the serving release (image, digest, since when) and the idle
    slot from the backend's C(release.json), maintenance mode, the backend's readiness through Caddy, the containers
    of the Compose projects with their health, memory (used and available, against an optional budget), free disk on
    C(/) and on Docker's data root, the last successful backup per job and the last restore drill (from the backup
    role's node-exporter textfile metrics), the expiry of each domain's certificate as Caddy serves it, pending
    security updates, whether the firewall and fail2ban are active, whether a reboot is required, and the last lines
    of the deploy log.
  - Each finding is a check with C(ok) V(true), V(false) (outside its healthy range) or V(null) (not configured, not
    judged). RV(healthy) is false when any check is false. The module itself fails only on bad arguments.
extends_documentation_fragment:
  - armstack.deploy.attributes
options:
  project_dir:
    description: The backend's Compose project directory (its C(release.json), C(caddy/serving/)).
    type: path
    default: /opt/armstack
  projects:
    description: Compose project names whose containers are listed with their health.
    type: list
    elements: str
    default: [armstack]
  domains:
    description: The backend's domains; the first is asked for the readiness check, each for its certificate.
    type: list
    elements: str
    default: []
  https_port:
    description: The host port of Caddy's HTTPS.
    type: int
    default: 443
  ready_path:
    description: The backend's readiness path, asked through Caddy.
    type: str
    default: /ready
  metrics_dir:
    description: node-exporter's textfile directory, where the backup role writes C(backup_<job>.prom).
    type: path
    default: /var/lib/node_exporter/textfile
  backup_max_age_hours:
    description: A job's last successful backup older than this is stale.
    type: float
    default: 26
  drill_max_age_hours:
    description: A restore drill older than this is stale.
    type: float
    default: 192
  deploy_log:
    description: The deploy log (one JSON object per line).
    type: path
    default: /var/log/armstack/deploy.log
  deploy_log_lines:
    description: How many of its last entries to return.
    type: int
    default: 5
  docker_root:
    description: Docker's data root, for its free disk.
    type: path
    default: /var/lib/docker
  min_free_disk_percent:
    description: Less free disk than this, on C(/) or Docker's data root, is unhealthy.
    type: float
    default: 10
  memory_budget_mb:
    description: The memory the stack's limits commit (from M(armstack.deploy.memory_headroom)), shown beside the use.
    type: int
  min_available_memory_mb:
    description: Less available memory than this is unhealthy.
    type: int
    default: 100
  cert_min_days:
    description: A certificate that expires in fewer days is unhealthy.
    type: int
    default: 14
  max_security_updates:
    description:
      - How many pending security updates are still healthy. V(0) marks any; a host that installs them daily with
        unattended-upgrades has none for long.
    type: int
    default: 0
  units:
    description: systemd units that must be active, for example the firewall and fail2ban.
    type: list
    elements: str
    default: [nftables.service, fail2ban.service, docker.service]
  timeout:
    description: Seconds each network probe and command may take.
    type: int
    default: 10
  meminfo_path:
    description: The meminfo file (tests point it elsewhere).
    type: path
    default: /proc/meminfo
  reboot_required_path:
    description: The file that says a reboot is required.
    type: path
    default: /var/run/reboot-required
requirements:
  - Docker's CLI for the container and image checks; C(openssl) for the certificate expiry; C(apt-get) for pending
    updates. A missing one makes its checks V(null), not a failure.
notes:
  - Reads no secret and returns none - no environment of a container, no response body.
author:
  - armstack.deploy contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Read the host's status
  armstack.deploy.host_status:
    domains: [api.example.com]
  register: status

- name: Fail when something is outside its healthy range
  ansible.builtin.assert:
    that: status.healthy
"""

RETURN = r"""
healthy:
  description: Whether no check is outside its healthy range.
  returned: always
  type: bool
  sample: true
checks:
  description: Every finding, in display order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: What was checked.
      type: str
      sample: backup uploads
    ok:
      description: V(true) healthy, V(false) outside its healthy range, V(null) not judged.
      type: bool
      sample: true
    value:
      description: What was found, one line.
      type: str
      sample: last success 3.2 h ago
  sample: [{"name": "release", "ok": true, "value": "registry/app:1.4.2 (sha256:0123...) on green since 2026-12-06T21:40:02Z"}]
release:
  description: The serving release, as C(release.json) records it.
  returned: always
  type: dict
  sample: {"active": "green", "idle": "blue", "image": "registry/app:1.4.2", "digest": "sha256:...", "since": "2026-12-06T21:40:02Z"}
lines:
  description: The checks as a screen, one line each, marked C([ ok ]), C([FAIL]) or C([ -- ]), then the last deploys.
  returned: always
  type: list
  elements: str
  sample: ["[ ok ] release            registry/app:1.4.2 (sha256:0123...) on green since 2026-12-06T21:40:02Z"]
deploy_log:
  description: The last O(deploy_log_lines) entries of the deploy log, oldest first.
  returned: always
  type: list
  elements: dict
  sample: [{"time": "2026-12-06T21:40:02Z", "event": "rollout", "result": "ok", "image": "registry/app:1.4.2"}]
"""

import json
import os
import re
import socket
import ssl
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.armstack.deploy.plugins.module_utils import _http
from ansible_collections.armstack.deploy.plugins.module_utils._memory import MemoryConfigError, read_meminfo

MIB = 1024 * 1024
METRIC = re.compile(r'^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\}\s+(?P<value>[-+0-9.eE]+)\s*$')
LABEL = re.compile(r'([a-z_]+)="([^"]*)"')


def check(name, ok, value):
    return {'name': name, 'ok': ok, 'value': value}


MARKS = {True: '[ ok ]', False: '[FAIL]', None: '[ -- ]'}


def table(checks, entries):
    """The screen: one line per check, marked, then the last deploys."""
    width = max([len(c['name']) for c in checks] + [10])
    lines = ['%s %s  %s' % (MARKS[c['ok']], c['name'].ljust(width), c['value']) for c in checks]
    lines.append('last deploys:' if entries else 'last deploys: none recorded')
    for entry in entries:
        extra = ' '.join('%s=%s' % (k, entry[k]) for k in ('image', 'mode', 'from_slot', 'to_slot', 'user', 'duration_s', 'reason')
                         if entry.get(k) not in (None, ''))
        lines.append('  %s %s %s %s' % (entry.get('time', '?'), entry.get('event', '?'), entry.get('result', '?'), extra))
    return lines


def _age(seconds):
    hours = seconds / 3600.0
    return '%.1f h' % hours if hours < 48 else '%.1f d' % (hours / 24)


class Probe:
    def __init__(self, module, params, now=None):
        self.module = module
        self.p = params
        self.now = now or time.time()
        self.checks = []

    def add(self, name, ok, value):
        self.checks.append(check(name, ok, value))

    def run(self, argv, data=None):
        """(rc, stdout) of argv, or (None, '') when the program is not installed."""
        binary = self.module.get_bin_path(argv[0])
        if binary is None:
            return None, ''
        rc, out, dummy = self.module.run_command(
            [self.module.get_bin_path('timeout') or 'timeout', str(self.p['timeout']), binary] + argv[1:], data=data,
            binary_data=data is not None)
        return rc, out

    # -- the backend's release ------------------------------------------------
    def release(self):
        path = os.path.join(self.p['project_dir'], 'release.json')
        try:
            with open(path) as handle:
                state = json.load(handle)
        except (OSError, ValueError) as exc:
            self.add('release', False, 'no readable %s (%s)' % (path, exc.__class__.__name__))
            return {}
        active = state.get('active') or ''
        image = (state.get('images') or {}).get(active, '')
        entries = [e for e in state.get('history') or [] if isinstance(e, dict)]
        current = [e for e in entries if e.get('image') == image and not e.get('rolled_back_at')]
        since = (current[-1].get('restored_at') or current[-1].get('deployed_at')) if current else ''
        serving_dir = os.path.join(self.p['project_dir'], 'caddy', 'serving')
        caddy_slot = [c for c in ('blue', 'green') if os.path.exists(os.path.join(serving_dir, c))]
        release = {'active': active, 'idle': 'green' if active == 'blue' else 'blue', 'image': image,
                   'digest': self.digest(image), 'since': since, 'caddy_serves': caddy_slot[0] if caddy_slot else '',
                   'maintenance': os.path.exists(os.path.join(serving_dir, 'maintenance.html'))}
        agrees = bool(active) and release['caddy_serves'] == active
        self.add('release', agrees, '%s (%s) on %s since %s%s' % (
            image or '?', release['digest'] or 'no digest', active or '?', since or '?',
            '' if agrees else '; Caddy serves %s' % (release['caddy_serves'] or 'no slot')))
        self.add('idle slot', None, release['idle'])
        self.add('maintenance mode', None, 'ON (503 for all but the allow-list)' if release['maintenance'] else 'off')
        return release

    def digest(self, image):
        if not image:
            return ''
        rc, out = self.run(['docker', 'image', 'inspect', '--format', '{{json .RepoDigests}}', image])
        if rc != 0:
            return ''
        try:
            digests = json.loads(out or '[]') or []
        except ValueError:
            return ''
        return digests[0].split('@', 1)[-1] if digests else ''

    # -- through Caddy --------------------------------------------------------
    def through_caddy(self):
        if not self.p['domains']:
            self.add('backend through Caddy', None, 'no domain given')
            return
        url = 'https://127.0.0.1:%d%s' % (self.p['https_port'], self.p['ready_path'])
        try:
            response = _http.request(url, headers={'Host': self.p['domains'][0]}, timeout=self.p['timeout'],
                                     validate_certs=False, max_body=0)
            self.add('backend through Caddy', response['status'] == 200,
                     'HTTP %d on %s in %.0f ms' % (response['status'], self.p['ready_path'], response['latency'] * 1000))
        except (_http.HTTPRequestError, _http.URLError) as exc:
            self.add('backend through Caddy', False, str(exc))

    def certificates(self):
        for domain in self.p['domains']:
            name = 'certificate %s' % domain
            if domain.startswith('*.'):
                domain = 'www' + domain[1:]
            try:
                der = self.peer_certificate(domain)
            except (OSError, ssl.SSLError) as exc:
                self.add(name, False, 'no certificate served (%s)' % exc)
                continue
            rc, out = self.run(['openssl', 'x509', '-inform', 'DER', '-noout', '-enddate'], data=der)
            if rc is None:
                self.add(name, None, 'openssl is not installed')
                continue
            try:
                expires = ssl.cert_time_to_seconds(out.strip().split('=', 1)[1])
            except (IndexError, ValueError):
                self.add(name, None, 'cannot read its expiry')
                continue
            days = (expires - self.now) / 86400.0
            left = '%.0f days' % days if days >= 2 else '%.1f hours' % (days * 24)
            self.add(name, days >= self.p['cert_min_days'], 'expires in %s (%s)' % (left, time.strftime(
                '%Y-%m-%d %H:%M UTC', time.gmtime(expires))))

    def peer_certificate(self, domain):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with socket.create_connection(('127.0.0.1', self.p['https_port']), timeout=self.p['timeout']) as sock:
            with context.wrap_socket(sock, server_hostname=domain) as tls:
                return tls.getpeercert(binary_form=True)

    # -- containers -----------------------------------------------------------
    def containers(self):
        for project in self.p['projects']:
            rc, out = self.run(['docker', 'ps', '--all', '--filter', 'label=com.docker.compose.project=%s' % project,
                                '--format', '{{.Names}}\t{{.State}}\t{{.Status}}'])
            if rc is None:
                self.add('containers %s' % project, None, 'docker is not installed')
                return
            if rc != 0:
                self.add('containers %s' % project, False, 'docker ps failed (%d)' % rc)
                continue
            lines = [line.split('\t') for line in out.splitlines() if line.count('\t') == 2]
            if not lines:
                self.add('containers %s' % project, None, 'none')
            for name, state, status in sorted(lines):
                healthy = state == 'running' and '(unhealthy)' not in status and '(health: starting)' not in status
                self.add('container %s' % name, healthy, status)

    # -- memory and disk --------------------------------------------------------
    def memory(self):
        try:
            info = read_meminfo(self.p['meminfo_path'])
        except MemoryConfigError as exc:
            self.add('memory', None, str(exc))
            return
        total = info['MemTotal'] // MIB
        available = info.get('MemAvailable', info.get('MemFree', 0)) // MIB
        budget = self.p['memory_budget_mb']
        self.add('memory', available >= self.p['min_available_memory_mb'], '%d MiB used, %d available of %d%s' % (
            total - available, available, total, '' if budget is None else '; budget (limits) %d MiB' % budget))
        swap_total = info.get('SwapTotal', 0) // MIB
        if swap_total:
            self.add('swap', None, '%d MiB used of %d' % (swap_total - info.get('SwapFree', 0) // MIB, swap_total))

    def disk(self):
        seen = set()
        for label, path in (('/', '/'), ('docker data root', self.p['docker_root'])):
            if not os.path.isdir(path):
                self.add('disk %s' % label, None, '%s does not exist' % path)
                continue
            stat = os.statvfs(path)
            if stat.f_fsid in seen and label != '/':
                self.add('disk %s' % label, None, 'on /')
                continue
            seen.add(stat.f_fsid)
            total = stat.f_blocks * stat.f_frsize
            free = stat.f_bavail * stat.f_frsize
            percent = 100.0 * free / total if total else 0.0
            self.add('disk %s' % label, percent >= self.p['min_free_disk_percent'],
                     '%.1f GiB free of %.1f (%.0f %%)' % (free / 1024.0 ** 3, total / 1024.0 ** 3, percent))

    # -- backups ----------------------------------------------------------------
    def read_metrics(self):
        found = {}
        directory = self.p['metrics_dir']
        try:
            names = sorted(n for n in os.listdir(directory) if n.startswith('backup_') and n.endswith('.prom'))
        except OSError:
            return None
        for name in names:
            try:
                with open(os.path.join(directory, name)) as handle:
                    text = handle.read()
            except OSError:
                continue
            for line in text.splitlines():
                match = METRIC.match(line)
                if match:
                    labels = dict(LABEL.findall(match.group('labels')))
                    found.setdefault(match.group('name'), []).append((labels, float(match.group('value'))))
        return found

    def backups(self):
        metrics = self.read_metrics()
        if metrics is None:
            self.add('backups', None, 'no backup metrics in %s (backup role not deployed)' % self.p['metrics_dir'])
            return
        codes = dict((labels.get('job'), value) for labels, value in metrics.get('armstack_backup_last_exit_code', []))
        max_age = self.p['backup_max_age_hours'] * 3600
        for labels, value in metrics.get('armstack_backup_last_success_timestamp_seconds', []):
            job = labels.get('job', '?')
            if job in ('restore_drill', 'check', 'forget', 'prune'):
                continue
            code = int(codes.get(job, 0))
            if value <= 0:
                self.add('backup %s' % job, False, 'never succeeded (last exit %d)' % code)
                continue
            age = self.now - value
            self.add('backup %s' % job, age <= max_age and code == 0, 'last success %s ago%s' % (
                _age(age), '' if code == 0 else ', last run exited %d' % code))
        drill_max = self.p['drill_max_age_hours'] * 3600
        mismatched = dict((labels.get('job'), value) for labels, value in metrics.get('armstack_restore_drill_files_mismatched', []))
        for labels, value in metrics.get('armstack_restore_drill_last_success_timestamp_seconds', []):
            job = labels.get('job', '?')
            bad = int(mismatched.get(job, 0))
            if value <= 0:
                self.add('restore drill %s' % job, False, 'never passed (%d files mismatched)' % bad)
                continue
            age = self.now - value
            self.add('restore drill %s' % job, age <= drill_max and bad == 0, 'last pass %s ago, %d files mismatched'
                     % (_age(age), bad))

    # -- the operating system ---------------------------------------------------
    def units(self):
        for unit in self.p['units']:
            rc, out = self.run(['systemctl', 'is-active', unit])
            if rc is None:
                self.add('unit %s' % unit, None, 'no systemctl')
                continue
            self.add('unit %s' % unit, out.strip() == 'active', out.strip() or 'unknown')

    def updates(self):
        rc, out = self.run(['apt-get', '--simulate', '--quiet', '-o', 'Debug::NoLocking=true', 'dist-upgrade'])
        if rc is None:
            self.add('security updates', None, 'no apt-get')
            return
        if rc != 0:
            self.add('security updates', None, 'apt-get --simulate failed (%d)' % rc)
            return
        installs = [line for line in out.splitlines() if line.startswith('Inst ')]
        security = [line for line in installs if '-security' in line or 'Debian-Security' in line]
        self.add('security updates', len(security) <= self.p['max_security_updates'],
                 '%d pending (%d in all)' % (len(security), len(installs)))

    def reboot(self):
        required = os.path.exists(self.p['reboot_required_path'])
        self.add('reboot', not required, 'required' if required else 'not required')

    def deploy_log(self):
        entries = []
        try:
            with open(self.p['deploy_log'], 'rb') as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                handle.seek(max(0, size - 65536))
                lines = handle.read().decode('utf-8', errors='replace').splitlines()
        except OSError:
            return entries
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                entries.append(entry)
        return entries[-self.p['deploy_log_lines']:] if self.p['deploy_log_lines'] else []


def main():
    module = AnsibleModule(
        argument_spec=dict(
            project_dir=dict(type='path', default='/opt/armstack'),
            projects=dict(type='list', elements='str', default=['armstack']),
            domains=dict(type='list', elements='str', default=[]),
            https_port=dict(type='int', default=443),
            ready_path=dict(type='str', default='/ready'),
            metrics_dir=dict(type='path', default='/var/lib/node_exporter/textfile'),
            backup_max_age_hours=dict(type='float', default=26),
            drill_max_age_hours=dict(type='float', default=192),
            deploy_log=dict(type='path', default='/var/log/armstack/deploy.log'),
            deploy_log_lines=dict(type='int', default=5),
            docker_root=dict(type='path', default='/var/lib/docker'),
            min_free_disk_percent=dict(type='float', default=10),
            memory_budget_mb=dict(type='int'),
            min_available_memory_mb=dict(type='int', default=100),
            cert_min_days=dict(type='int', default=14),
            max_security_updates=dict(type='int', default=0),
            units=dict(type='list', elements='str', default=['nftables.service', 'fail2ban.service', 'docker.service']),
            timeout=dict(type='int', default=10),
            meminfo_path=dict(type='path', default='/proc/meminfo'),
            reboot_required_path=dict(type='path', default='/var/run/reboot-required'),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params['timeout'] < 1 or params['deploy_log_lines'] < 0:
        module.fail_json(msg='timeout must be at least 1 and deploy_log_lines at least 0')
    if not params['ready_path'].startswith('/'):
        module.fail_json(msg='ready_path must start with / (got %r)' % params['ready_path'])
    probe = Probe(module, params)
    release = probe.release()
    probe.through_caddy()
    probe.containers()
    probe.memory()
    probe.disk()
    probe.backups()
    probe.certificates()
    probe.updates()
    probe.units()
    probe.reboot()
    entries = probe.deploy_log()
    module.exit_json(changed=False, healthy=all(c['ok'] is not False for c in probe.checks), checks=probe.checks,
                     release=release, deploy_log=entries, lines=table(probe.checks, entries))


if __name__ == '__main__':
    main()
