"""Shared by the unit tests: a place to report measured (never asserted) times."""

from __future__ import annotations

import pytest

_TIMES = pytest.StashKey[list]()


@pytest.fixture(scope="session")
def timings(pytestconfig) -> list[tuple[float, str]]:
    """A list of (seconds, case) that the test run reports the slowest of, at the end."""
    return pytestconfig.stash.setdefault(_TIMES, [])


def pytest_terminal_summary(terminalreporter, config) -> None:
    times = config.stash.get(_TIMES, [])
    if times:
        slowest = sorted(times, reverse=True)[:5]
        terminalreporter.write_line(
            f"bad input: {len(times)} cases, slowest: "
            + ", ".join(f"{case} {seconds:.2f} s" for seconds, case in slowest))
