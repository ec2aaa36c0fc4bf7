"""scripts/lint.sh, run against stand-in ruff and mypy: what it runs, how it counts
their findings, and its exit code (0 clean, 1 findings or a tool failing, 3 a tool missing)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

RUFF_FINDINGS = """\
netlab/a.py:3:9: B006 Do not use mutable data structures for argument defaults
netlab/b.py:4:12: B905 `zip()` without an explicit `strict=` parameter
Found 2 errors.
[*] 1 fixable with the `--fix` option.
"""
MYPY_ERRORS = """\
netlab/a.py:1: error: Incompatible types in assignment (expression has type "str", variable has type "int")  [assignment]
netlab/a.py:2: note: See https://mypy.readthedocs.io
netlab/c.py:9: error: Item "None" of "Flow | None" has no attribute "dst"  [union-attr]
netlab/c.py:12: error: Name "x" is not defined  [name-defined]
Found 3 errors in 2 files (checked 115 source files)
"""


def _fake(bin_dir: Path, name: str, out: str, rc: int) -> None:
    """A stand-in tool that records its arguments, prints ``out`` and exits ``rc``."""
    (bin_dir / f"{name}.out").write_text(out)
    tool = bin_dir / name
    tool.write_text(f'#!/bin/sh\necho "$@" > "$0.args"\ncat "$0.out"\nexit {rc}\n')
    tool.chmod(0o755)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of lint.sh in a tree whose .venv/bin is ours to fill."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "lint.sh", tmp_path / "scripts" / "lint.sh")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    return tmp_path


def _run(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(repo / "scripts" / "lint.sh")], capture_output=True,
                          text=True, timeout=60, check=False)


def _summary(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("lint: ")]


def test_clean_tools_pass_and_run_over_the_whole_project(repo: Path) -> None:
    bin_dir = repo / ".venv" / "bin"
    _fake(bin_dir, "ruff", "All checks passed!\n", 0)
    _fake(bin_dir, "mypy", "Success: no issues found in 115 source files\n", 0)
    r = _run(repo)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _summary(r.stdout) == ["lint: ruff passed (0 finding(s))",
                                  "lint: mypy passed (0 error(s))"]
    ruff_args = (bin_dir / "ruff.args").read_text().split()
    assert ruff_args[0] == "check" and ruff_args[-4:] == ["netlab", "tests", "bench", "scripts"]
    assert "--no-fix" in ruff_args
    # mypy takes its files and strictness from pyproject.toml: no arguments.
    assert (bin_dir / "mypy.args").read_text().strip() == ""


def test_findings_are_printed_counted_and_fail(repo: Path) -> None:
    bin_dir = repo / ".venv" / "bin"
    _fake(bin_dir, "ruff", RUFF_FINDINGS, 1)
    _fake(bin_dir, "mypy", MYPY_ERRORS, 1)
    r = _run(repo)
    assert r.returncode == 1
    assert _summary(r.stdout) == ["lint: ruff FAILED (2 finding(s))",
                                  "lint: mypy FAILED (3 error(s))"]
    assert "netlab/b.py:4:12: B905" in r.stdout and "netlab/c.py:12: error" in r.stdout
    assert "Found 2 errors." not in r.stdout and "Found 3 errors" not in r.stdout


def test_one_tool_failing_fails_the_lint(repo: Path) -> None:
    bin_dir = repo / ".venv" / "bin"
    _fake(bin_dir, "ruff", "All checks passed!\n", 0)
    _fake(bin_dir, "mypy", MYPY_ERRORS, 1)
    r = _run(repo)
    assert r.returncode == 1
    assert _summary(r.stdout) == ["lint: ruff passed (0 finding(s))",
                                  "lint: mypy FAILED (3 error(s))"]


def test_a_tool_that_crashes_fails_with_its_exit_code(repo: Path) -> None:
    bin_dir = repo / ".venv" / "bin"
    _fake(bin_dir, "ruff", "ruff failed\n  Cause: unknown rule selector: `XYZ1`\n", 2)
    _fake(bin_dir, "mypy", "Success: no issues found in 115 source files\n", 0)
    r = _run(repo)
    assert r.returncode == 1
    assert _summary(r.stdout)[0] == "lint: ruff FAILED (exit 2, see above)"
    assert "unknown rule selector" in r.stdout


def test_a_missing_tool_exits_3_with_a_hint(repo: Path) -> None:
    _fake(repo / ".venv" / "bin", "ruff", "All checks passed!\n", 0)
    r = _run(repo)
    assert r.returncode == 3
    assert "mypy is missing" in r.stderr and "scripts/setup.sh" in r.stderr
    assert _summary(r.stdout) == []
