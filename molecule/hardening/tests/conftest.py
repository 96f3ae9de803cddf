"""Collects the verifier's "SKIPPED HERE:" notes and prints them after the
test summary, where testbed/test picks them up (pytest captures print())."""

from __future__ import annotations

import pytest

NOTES: list[str] = []


@pytest.fixture
def skipped_here():
    def note(text: str) -> None:
        NOTES.append(f"SKIPPED HERE: {text}")
    return note


def pytest_terminal_summary(terminalreporter):
    for line in dict.fromkeys(NOTES):
        terminalreporter.write_line(line)
