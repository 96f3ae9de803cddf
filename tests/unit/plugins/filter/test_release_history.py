# -*- coding: utf-8 -*-
# Copyright (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The release history a rollout, a rollback and a reconciled run record."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.armstack.deploy.plugins.filter.release_history import FilterModule, previous_release, release_history

A = 'registry:5000/app:1.0.0'
B = 'registry:5000/app:1.1.0'
C = 'registry:5000/app:1.2.0'
D = 'registry:5000/app:1.3.0'


def rollout(history, image, color, at='t', keep=3):
    return release_history(history, 'rollout', image, color, at, keep)


def rollback(history, at='t'):
    """A default rollback from the serving release, as rollback.yml does it."""
    current = [e for e in history if not e.get('rolled_back_at')][-1]
    to = previous_release(history, current['image'])
    assert to, 'nothing to return to'
    color = 'green' if current['color'] == 'blue' else 'blue'
    return to, release_history(history, 'rollback', to, color, at, 3)


def images(history):
    return [e['image'] + ('(rolled back)' if e.get('rolled_back_at') else '') for e in history]


def three_releases():
    history = rollout([], A, 'blue', 't1')
    history = rollout(history, B, 'green', 't2')
    return rollout(history, C, 'blue', 't3')


def test_a_rollout_appends_and_keeps_the_last_releases():
    history = rollout(three_releases(), D, 'green', 't4')
    assert images(history) == [B, C, D]
    assert history[-1] == {'image': D, 'color': 'green', 'deployed_at': 't4'}


def test_a_rollout_of_the_serving_image_replaces_its_entry():
    """A configuration change rolls out the same image: one release, which
    must not push the oldest kept one out."""
    history = rollout(three_releases(), C, 'green', 't4')
    assert images(history) == [A, B, C]
    assert history[-1] == {'image': C, 'color': 'green', 'deployed_at': 't4'}
    assert previous_release(history, C) == B


def test_two_rollbacks_go_back_two_releases():
    history = three_releases()
    to, history = rollback(history, 'r1')
    assert to == B
    to, history = rollback(history, 'r2')
    assert to == A
    assert images(history) == [A, B + '(rolled back)', C + '(rolled back)']
    assert history[0]['restored_at'] == 'r2' and history[2]['rolled_back_at'] == 'r1'
    # Nothing left to go back to.
    assert previous_release(history, A) == ''


def test_a_rollback_gives_up_no_kept_release():
    """Appending the release returned to trimmed the oldest kept one (its image
    was then removed from the host): a rollback keeps every entry."""
    before = three_releases()
    dummy, after = rollback(before)
    assert [e['image'] for e in after] == [e['image'] for e in before]


def test_a_rollout_after_a_rollback_returns_past_the_rolled_back_release():
    dummy, history = rollback(three_releases())
    history = rollout(history, D, 'blue', 't4')
    # The release rolled back from is given up before the oldest good one.
    assert images(history) == [A, B, D]
    assert previous_release(history, D) == B


def test_releases_rolled_back_from_are_given_up_first():
    dummy, history = rollback(three_releases())
    dummy, history = rollback(history)
    history = rollout(history, D, 'green', 't4')
    assert images(history) == [A, C + '(rolled back)', D]
    history = rollout(history, B, 'blue', 't5')
    assert images(history) == [A, D, B]
    assert previous_release(history, B) == D


def test_a_named_rollback_to_a_rolled_back_release_clears_its_mark():
    dummy, history = rollback(three_releases())
    dummy, history = rollback(history)
    history = release_history(history, 'rollback', C, 'green', 'r3', 3)
    assert images(history) == [A, B + '(rolled back)', C]
    assert previous_release(history, C) == A


def test_the_input_is_not_changed():
    history = three_releases()
    copy = [dict(e) for e in history]
    rollback(history)
    assert history == copy


def test_the_same_image_twice_returns_to_the_one_between():
    history = rollout(rollout(rollout([], A, 'blue'), B, 'green'), A, 'blue')
    assert previous_release(history, A) == B


def test_serve_records_nothing_when_the_record_already_names_the_release():
    history = three_releases()
    assert release_history(history, 'serve', C, 'blue', 't9', 3) == history


def test_serve_after_a_killed_rollout_appends():
    history = release_history(three_releases(), 'serve', D, 'green', 't9', 3)
    assert images(history) == [B, C, D]


def test_serve_after_a_killed_rollback_records_the_rollback():
    history = release_history(three_releases(), 'serve', B, 'green', 't9', 3)
    assert images(history) == [A, B, C + '(rolled back)']
    assert previous_release(history, B) == A


def test_serve_of_a_rolled_back_release_is_a_new_rollout():
    dummy, history = rollback(three_releases())
    history = release_history(history, 'serve', C, 'blue', 't9', 3)
    assert images(history) == [A, B, C]
    assert previous_release(history, C) == B


@pytest.mark.parametrize('args, message', [
    (([], 'deploy', A, 'blue', 't', 3), 'event must be one of'),
    (([], 'rollout', A, 'blue', 't', 0), 'keep must be at least 1'),
    (([], 'rollout', A, 'blue', 't', 'x'), 'keep must be a number'),
    (([{'image': A}], 'rollback', B, 'blue', 't', 3), 'is not a kept release'),
    (('nope', 'rollout', A, 'blue', 't', 3), 'expected a list'),
])
def test_bad_arguments_fail_clearly(args, message):
    with pytest.raises(AnsibleFilterError, match=message):
        release_history(*args)


def test_the_filters_are_registered():
    assert set(FilterModule().filters()) == {'release_history', 'previous_release'}
