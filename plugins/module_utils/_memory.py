# -*- coding: utf-8 -*-
# Copyright (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private helpers of the armstack.deploy.memory_headroom module.

Everything here works in bytes; the module converts to MiB (rounded down)
only when it reports. Nothing here talks to AnsibleModule: errors are raised
as MemoryConfigError with a message meant for the operator.
"""

from __future__ import annotations

import os
import re

MIB = 1024 * 1024

# cgroup v1 reports "no limit" as PAGE_COUNTER_MAX * page size
# (9223372036854771712 with 4 KiB pages); anything this large is unlimited.
CGROUP_V1_UNLIMITED = 1 << 60

_UNIT_FACTORS = {
    'b': 1,
    'k': 1024,
    'm': 1024 ** 2,
    'g': 1024 ** 3,
    't': 1024 ** 4,
}

_MEMORY_RE = re.compile(
    r'^\s*(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*'
    r'(?:(?P<unit>[kmgt])(?:i?b)?|(?P<bytes>b))?\s*$',
    re.IGNORECASE,
)

_INTERPOLATION_DEFAULT_RE = re.compile(
    r'^\$\{(?P<var>[A-Za-z_][A-Za-z0-9_]*)(?::?-)(?P<default>[^}]*)\}$'
)


class MemoryConfigError(Exception):
    """A value of the planned stack or of the host that cannot be used."""


def parse_memory(value, bare_unit='m', what='memory value'):
    """Convert a memory size to bytes.

    :arg value: an int/float, or a string made of a number and an optional
        unit: ``b``, ``k``, ``m``, ``g`` or ``t``, case-insensitive,
        optionally followed by ``b`` or ``ib`` (``256m``, ``1.5G``,
        ``512MiB``, ``268435456b``, ``2gb``). All units are binary
        (1k = 1024 bytes), as in Docker.
    :arg bare_unit: the unit of a number without a unit: ``m`` (MiB) for the
        module's ``services`` option, ``b`` (bytes) for Compose files, as
        Docker Compose reads them.
    :arg what: names the value in error messages.
    :returns: the size in bytes (int), or None when the value is unset
        (None, empty string, 0, or -1 which Docker uses for "unlimited").
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise MemoryConfigError(
            '%s: expected a memory size such as 256m, 1g or 512MiB, got the boolean %r' % (what, value))
    if isinstance(value, (int, float)):
        if value in (0, -1):
            return None
        if value < 0:
            raise MemoryConfigError(
                '%s: expected a positive memory size, got %r' % (what, value))
        return int(value * _UNIT_FACTORS[bare_unit])
    if not isinstance(value, str):
        raise MemoryConfigError(
            '%s: expected a memory size such as 256m, 1g or 512MiB, got %s %r'
            % (what, type(value).__name__, value))
    text = value.strip()
    if text in ('', '0', '-1'):
        return None
    match = _MEMORY_RE.match(text)
    if not match:
        raise MemoryConfigError(
            "%s: cannot read %r as a memory size; expected a number with an optional unit "
            "b, k, m, g or t (for example 256m, 1.5G, 512MiB or 268435456b)" % (what, value))
    number = float(match.group('number'))
    if match.group('bytes'):
        unit = 'b'
    else:
        unit = (match.group('unit') or bare_unit).lower()
    result = int(number * _UNIT_FACTORS[unit])
    return result or None


def bytes_to_mib(value):
    """Integer MiB, rounded down; None stays None."""
    if value is None:
        return None
    return int(value // MIB)


def read_meminfo(path):
    """Read /proc/meminfo style content; returns a dict of field -> bytes."""
    try:
        with open(path, 'r') as f:
            content = f.read()
    except (IOError, OSError) as exc:
        raise MemoryConfigError(
            'cannot read %s (%s); expected the Linux /proc/meminfo of the target. '
            'Run the module on a Linux host, or point meminfo_path at a readable file' % (path, exc)) from exc
    result = {}
    for line in content.splitlines():
        if ':' not in line:
            continue
        key, rest = line.split(':', 1)
        parts = rest.split()
        if not parts:
            continue
        try:
            number = int(parts[0])
        except ValueError:
            continue
        factor = 1024 if len(parts) > 1 and parts[1].lower() == 'kb' else 1
        result[key.strip()] = number * factor
    if 'MemTotal' not in result:
        raise MemoryConfigError(
            '%s has no MemTotal line; expected the format of the Linux /proc/meminfo' % path)
    return result


def _read_first_line(path):
    try:
        with open(path, 'r') as f:
            return f.readline().strip()
    except (IOError, OSError):
        return None


def _parse_proc_self_cgroup(path):
    """Returns (v2_path or None, v1_memory_path or None)."""
    v2_path = None
    v1_path = None
    try:
        with open(path, 'r') as f:
            lines = f.read().splitlines()
    except (IOError, OSError):
        return None, None
    for line in lines:
        parts = line.split(':', 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, cgroup_path = parts
        if hierarchy == '0' and controllers == '':
            v2_path = cgroup_path
        elif 'memory' in controllers.split(','):
            v1_path = cgroup_path
    return v2_path, v1_path


def _candidate_dirs(root, cgroup_path):
    """The cgroup's directory under root and all its ancestors up to root.

    When the path from /proc/self/cgroup does not exist below root (a cgroup
    namespace or a container that mounts only its own subtree), only root
    itself is used.
    """
    root = os.path.normpath(root)
    rel = (cgroup_path or '/').strip('/')
    start = os.path.normpath(os.path.join(root, rel)) if rel else root
    if not (start == root or start.startswith(root + os.sep)) or not os.path.isdir(start):
        return [root]
    dirs = []
    current = start
    while True:
        dirs.append(current)
        if current == root:
            break
        current = os.path.dirname(current)
    return dirs


def _min_limit(dirs, filename, unlimited_check):
    best = None
    best_path = None
    for directory in dirs:
        path = os.path.join(directory, filename)
        raw = _read_first_line(path)
        if raw is None or unlimited_check(raw):
            continue
        try:
            value = int(raw)
        except ValueError:
            continue
        if best is None or value < best:
            best = value
            best_path = path
    return best, best_path


def read_cgroup_limit(cgroup_root, proc_self_cgroup_path):
    """The memory limit of the cgroup this process runs in.

    Returns a dict with ``limit`` (bytes or None when unlimited or not
    found), ``version`` (``v1``, ``v2`` or None) and ``path`` (the file the
    limit was read from, or None). The effective limit is the smallest one
    of the cgroup and its ancestors.
    """
    v2_path, v1_path = _parse_proc_self_cgroup(proc_self_cgroup_path)
    result = {'limit': None, 'version': None, 'path': None}

    if v1_path is not None:
        memory_root = os.path.join(cgroup_root, 'memory')
        if os.path.isdir(memory_root):
            result['version'] = 'v1'
            limit, path = _min_limit(
                _candidate_dirs(memory_root, v1_path),
                'memory.limit_in_bytes',
                lambda raw: not raw.isdigit() or int(raw) >= CGROUP_V1_UNLIMITED,
            )
            if limit is not None:
                result.update(limit=limit, path=path)
            return result

    if v2_path is not None or os.path.exists(os.path.join(cgroup_root, 'cgroup.controllers')):
        result['version'] = 'v2'
        limit, path = _min_limit(
            _candidate_dirs(cgroup_root, v2_path),
            'memory.max',
            lambda raw: raw == 'max',
        )
        if limit is not None:
            result.update(limit=limit, path=path)
    return result


# ---------------------------------------------------------------------------
# Compose files

def load_compose_yaml(path):
    """Parse a Compose YAML file (PyYAML is imported only here)."""
    try:
        import yaml
    except ImportError:
        raise MemoryConfigError(
            'reading compose_files needs the Python library PyYAML on the target: install '
            'python3-yaml (apt-get install python3-yaml) or pass the stack as compose_config '
            '(the output of docker compose config --format json) instead') from None

    class _ComposeLoader(yaml.SafeLoader):  # pylint: disable=too-many-ancestors
        pass

    def _construct_tagged(loader, tag_suffix, node):
        # Compose's !reset and !override tags: keep the plain value.
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node, deep=True)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_scalar(node)

    _ComposeLoader.add_multi_constructor('!', _construct_tagged)

    try:
        with open(path, 'r') as f:
            data = yaml.load(f, Loader=_ComposeLoader)  # nosec B506 - a SafeLoader subclass
    except (IOError, OSError) as exc:
        raise MemoryConfigError(
            'cannot read the compose file %s (%s); expected a readable file on the target. '
            'Copy the file first or fix the path in compose_files' % (path, exc)) from exc
    except yaml.YAMLError as exc:
        raise MemoryConfigError('the compose file %s is not valid YAML: %s' % (path, exc)) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MemoryConfigError(
            'the compose file %s must contain a mapping with a services key, found %s'
            % (path, type(data).__name__))
    return data


def _deep_merge(base, override):
    result = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _deep_merge(result[key], value)
        else:
            result[key] = value
    return result


def merge_compose(documents):
    """Merge the services of several Compose documents, later ones win."""
    merged = {}
    for source, document in documents:
        services = document.get('services') or {}
        if not isinstance(services, dict):
            raise MemoryConfigError(
                '%s: services must be a mapping of service name to definition, found %s'
                % (source, type(services).__name__))
        for name, definition in services.items():
            if definition is None:
                definition = {}
            if not isinstance(definition, dict):
                raise MemoryConfigError(
                    '%s: service %s must be a mapping, found %s' % (source, name, type(definition).__name__))
            merged[str(name)] = _deep_merge(merged.get(str(name), {}), definition)
    return merged


def _dig(data, *keys):
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _compose_value(value, what, warnings):
    """Resolve ${VAR:-default} to its default; reject other interpolation."""
    if isinstance(value, str) and '$' in value:
        match = _INTERPOLATION_DEFAULT_RE.match(value.strip())
        if match:
            warnings.append(
                '%s is %r; the module cannot see the Compose environment and used the default %r. '
                'Pass compose_config (docker compose config --format json) for exact figures'
                % (what, value, match.group('default')))
            value = match.group('default')
        else:
            raise MemoryConfigError(
                '%s is %r, which needs variable interpolation the module cannot do. Pass the '
                'interpolated stack as compose_config (the output of docker compose config '
                '--format json), or set the value in services' % (what, value))
    return parse_memory(value, bare_unit='b', what=what)


def _smallest(*values):
    present = [v for v in values if v is not None]
    return min(present) if present else None


def services_from_compose(services, source, warnings):
    """Turn merged Compose services into the module's service entries."""
    entries = []
    for name in sorted(services):
        definition = services[name]
        prefix = '%s: service %s' % (source, name)
        limit = _smallest(
            _compose_value(definition.get('mem_limit'), prefix + ' mem_limit', warnings),
            _compose_value(_dig(definition, 'deploy', 'resources', 'limits', 'memory'),
                           prefix + ' deploy.resources.limits.memory', warnings),
        )
        reservation = _smallest(
            _compose_value(definition.get('mem_reservation'), prefix + ' mem_reservation', warnings),
            _compose_value(_dig(definition, 'deploy', 'resources', 'reservations', 'memory'),
                           prefix + ' deploy.resources.reservations.memory', warnings),
        )
        replicas = _dig(definition, 'deploy', 'replicas')
        if replicas is None:
            replicas = definition.get('scale')
        if replicas is None:
            replicas = 1
        try:
            replicas = int(replicas)
        except (TypeError, ValueError):
            raise MemoryConfigError(
                '%s: expected an integer for deploy.replicas or scale, got %r' % (prefix, replicas)) from None
        entries.append({
            'name': name,
            'limit': limit,
            'reservation': reservation,
            'replicas': replicas,
        })
    return entries


def merge_entries(*groups):
    """Merge service entries by name; later groups override set fields."""
    merged = {}
    order = []
    for group in groups:
        for entry in group:
            name = entry['name']
            if name not in merged:
                merged[name] = {'name': name, 'limit': None, 'reservation': None, 'replicas': 1}
                order.append(name)
            for key in ('limit', 'reservation', 'replicas'):
                if entry.get(key) is not None:
                    merged[name][key] = entry[key]
    return [merged[name] for name in order]


# ---------------------------------------------------------------------------
# Sizing

def headroom_required(basis, min_headroom, min_headroom_percent):
    """Bytes of headroom the plan must leave: the larger of both minimums."""
    return max(min_headroom, int(basis * min_headroom_percent / 100.0))


def backend_bytes(base, worker, workers):
    return base + workers * worker


def largest_fitting_workers(available_for_backend, base, worker, low, high):
    """Largest w in [low, high] with base + w * worker <= available, or None."""
    if high < low:
        return None
    room = available_for_backend - base
    if room < low * worker:
        return None
    if worker <= 0:
        return high
    return min(high, room // worker)
