"""ruff (the `ruff` stage of testbed/test) sees every Python file of the repository.

A Python file is one named *.py or one whose first line names a Python
interpreter; a program without a .py name is added to ruff.toml's
extend-include, or ruff would never look at it. Jinja templates that render
to Python are not Python (the backup role's test renders and compiles its
entry point).
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _tracked_files():
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         capture_output=True, check=True).stdout
    return [ROOT / p for p in out.decode().split("\0") if p]


def _is_python(path):
    if path.suffix == ".j2" or not path.is_file():
        return False
    if path.suffix == ".py":
        return True
    with open(path, "rb") as handle:
        first = handle.readline()
    return first.startswith(b"#!") and b"python" in first


@pytest.mark.skipif(shutil.which("ruff") is None or shutil.which("git") is None or not (ROOT / ".git").exists(),
                    reason="needs ruff (requirements.txt) and a git checkout")
def test_ruff_sees_every_python_file():
    python = {p.relative_to(ROOT).as_posix() for p in _tracked_files() if _is_python(p)}
    assert len(python) > 50
    shown = subprocess.run(["ruff", "check", "--show-files", "."], cwd=ROOT, capture_output=True, text=True, check=True)
    seen = {pathlib.Path(line.strip()).relative_to(ROOT).as_posix() for line in shown.stdout.splitlines()
            if line.strip().startswith(str(ROOT))}
    missing = sorted(python - seen)
    assert not missing, "ruff does not check these Python files (add them to extend-include in ruff.toml): %s" % missing
