"""Shared by the unit tests: a place to report measured (never asserted) times, and the
seed lab brought up on a fake host."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from netlab import lifecycle, state
from netlab.scenario import load_lab
from tests.unit.fakes import FakeHost

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

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


@pytest.fixture
def seed(tmp_path):
    """The seed lab (scenarios/hello-a.yaml) up in a temporary store on a fake host:
    (store, FakeHost). A test module's own ``seed`` takes its place there."""
    scenario = tmp_path / "hello-a.yaml"
    shutil.copy(SCENARIOS / "hello-a.yaml", scenario)
    store, fake = state.StateStore(tmp_path / "store"), FakeHost()
    lifecycle.up(load_lab(scenario), str(scenario), store, "legacy", host=fake.host())
    return store, fake
