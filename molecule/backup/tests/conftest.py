"""Prints the figures the verifier measures (lines starting TIMING, LEAK CHECK,
ARGV, CHECK MODE) and every test's duration after the test summary, where the
log keeps them (pytest captures print()). Figures are printed, never asserted."""

from __future__ import annotations

FIGURES: list[str] = []
PREFIXES = ("TIMING", "LEAK CHECK", "ARGV", "CHECK MODE")


def pytest_runtest_logreport(report):
    if report.when == "call":
        name = report.nodeid.split("::")[-1].split("[")[0]
        FIGURES.append(f"TIMING {name}: {report.duration:.1f} s ({report.outcome})")
        FIGURES.extend(line for line in report.capstdout.splitlines() if line.startswith(PREFIXES))


def pytest_terminal_summary(terminalreporter):
    for line in FIGURES:
        terminalreporter.write_line(line)
