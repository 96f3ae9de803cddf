# -*- coding: utf-8 -*-
# Copyright (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The backend role's release history: what a rollout, a rollback and a
reconciled run record, and which release a rollback returns to.

The history is the list of releases in the order they were rolled out, each
``{image, color, deployed_at}``. A rollout appends its release (a rollout of
the serving image, for a configuration change, replaces its entry) and keeps
``keep`` entries, giving up releases rolled back from before the others. A rollback appends nothing and trims nothing: it marks
the releases after the one it returns to with ``rolled_back_at`` and clears
that mark on the release it returns to (``restored_at``). The serving release
is the last entry without the mark, and a rollback from it returns to the
unmarked entry before it, so two rollbacks in a row go back two releases and
no kept release's image is given up by a rollback.

Docs: release_history.yml and previous_release.yml beside this file.
"""

from __future__ import annotations

import copy

from ansible.errors import AnsibleFilterError

EVENTS = ('rollout', 'rollback', 'serve')


def _entries(history):
    if not isinstance(history, list) or not all(isinstance(e, dict) and isinstance(e.get('image'), str) for e in history):
        raise AnsibleFilterError('release history: expected a list of {image, color, deployed_at}, got %r' % (history,))
    return copy.deepcopy(history)


def _unmarked(history):
    return [i for i, entry in enumerate(history) if not entry.get('rolled_back_at')]


def _current_index(history, image=None):
    """Index of the serving entry: the last unmarked one (of `image`, when given)."""
    for i in reversed(_unmarked(history)):
        if image is None or history[i]['image'] == image:
            return i
    return None


def previous_release(history, current_image):
    """The image a rollback from `current_image` returns to, '' if none is kept."""
    history = _entries(history)
    current = _current_index(history, current_image)
    end = len(history) if current is None else current
    for i in reversed(_unmarked(history)):
        if i < end and history[i]['image'] != current_image:
            return history[i]['image']
    return ''


def _rollback(history, image, color, at):
    last = max(i for i, entry in enumerate(history) if entry['image'] == image)
    for entry in history[last + 1:]:
        entry.setdefault('rolled_back_at', at)
    target = history[last]
    target.pop('rolled_back_at', None)
    target['color'] = color
    target['restored_at'] = at
    return history


def release_history(history, event, image, color, at, keep):
    """The history after `event` put `image` in slot `color` at time `at`.

    rollout: appended (replacing the last entry when it is the same image),
    `keep` entries kept, releases rolled back from given up first.
    rollback: `image` must be kept; nothing appended or trimmed.
    serve: what a run finds serving (an earlier run stopped after its switch):
    nothing when it is the serving entry, a rollback when it is an unmarked
    earlier entry, otherwise a rollout.
    """
    history = _entries(history)
    if event not in EVENTS:
        raise AnsibleFilterError('release_history: event must be one of %s, got %r' % (', '.join(EVENTS), event))
    try:
        keep = int(keep)
    except (TypeError, ValueError):
        raise AnsibleFilterError('release_history: keep must be a number, got %r' % (keep,)) from None
    if keep < 1:
        raise AnsibleFilterError('release_history: keep must be at least 1, got %d' % keep)
    kept = [entry['image'] for entry in history]
    if event == 'serve':
        current = _current_index(history)
        if current is not None and history[current]['image'] == image:
            return history
        earlier = [i for i in _unmarked(history) if history[i]['image'] == image]
        event = 'rollback' if earlier else 'rollout'
    if event == 'rollback':
        if image not in kept:
            raise AnsibleFilterError('release_history: %s is not a kept release (kept: %s)' % (image, ', '.join(kept) or 'none'))
        return _rollback(history, image, color, at)
    entry = {'image': image, 'color': color, 'deployed_at': at}
    if history and history[-1]['image'] == image and not history[-1].get('rolled_back_at'):
        # The same release again (its configuration changed): one release,
        # not a second entry that would push an older one out.
        history[-1] = entry
    else:
        history.append(entry)
    return _trim(history, keep)


def _trim(history, keep):
    """The last `keep` entries; releases rolled back from are given up first
    (the oldest of them), then the oldest release."""
    while len(history) > keep:
        marked = [i for i, entry in enumerate(history[:-1]) if entry.get('rolled_back_at')]
        del history[marked[0] if marked else 0]
    return history


class FilterModule:
    """The backend's release history."""

    def filters(self):
        return {
            'release_history': release_history,
            'previous_release': previous_release,
        }
