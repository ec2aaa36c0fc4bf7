"""The lab's change log: each up, scale and node change recorded in the state file with
when it started and converged; older state files (no log) still read."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from netlab import changelog, converge, state

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def ticks(*times: float):
    it = iter(times)
    return lambda: next(it)


def test_begin_then_converged_stamps_the_last_change_only():
    log = changelog.begin((), "up", "hello-a.yaml", ticks(10.0))
    log = changelog.converged(log, ticks(12.5))
    log = changelog.begin(log, "scale", "hello-a=5", ticks(20.0))
    assert log == (changelog.Change("up", "hello-a.yaml", 10.0, 12.5),
                   changelog.Change("scale", "hello-a=5", 20.0, None))
    assert changelog.converged(log, ticks(21.0))[-1].converged == 21.0
    assert changelog.converged(log, ticks(21.0))[0].converged == 12.5


def test_the_log_keeps_the_last_changes():
    log: tuple[changelog.Change, ...] = ()
    for i in range(changelog.KEEP + 5):
        log = changelog.begin(log, "scale", f"web={i}", ticks(float(i)))
    assert len(log) == changelog.KEEP and log[0].what == "web=5"


@pytest.mark.parametrize("bad, field", [
    ({"kind": "reboot", "what": "", "started": 1, "converged": None}, "kind"),
    ({"kind": "up", "what": 3, "started": 1, "converged": None}, "what"),
    ({"kind": "up", "what": "", "started": -1, "converged": None}, "started"),
    ({"kind": "up", "what": "", "started": True, "converged": None}, "started"),
    ({"kind": "up", "what": "", "started": 5, "converged": 4}, "converged"),
    ({"kind": "up", "what": "", "started": 5}, r"changes\[0\] must be"),
])
def test_a_bad_log_is_refused_naming_the_field(bad, field):
    with pytest.raises(changelog.Invalid, match=field):
        changelog.from_json([bad])


def test_up_scale_and_node_are_logged_started_then_converged(seed):
    store, fake = seed
    converge.scale("hello-a", {"hello-a": 5}, store, host=fake.host())
    converge.node("hello-a", "node2", "down", store, host=fake.host())
    converge.node("hello-a", "node2", "up", store, host=fake.host())
    converge.scale("hello-a", {"hello-a": 5}, store, host=fake.host())   # nothing moves
    log = store.load("hello-a").changes
    assert [c.label for c in log] == ["up " + str(store.load("hello-a").scenario),
                                      "scale hello-a=5", "node node2 down", "node node2 up",
                                      "scale hello-a=5"]
    for c in log:
        assert c.converged is not None and c.started <= c.converged
    for earlier, later in itertools.pairwise(log):
        assert earlier.converged <= later.started


def test_a_change_is_recorded_unconverged_before_the_kernel_is_touched(seed):
    store, fake = seed
    seen = []
    apply = fake.kernel.apply

    def spy(*args, **kw):
        seen.append(store.load("hello-a").changes[-1])
        return apply(*args, **kw)

    fake.kernel.apply = spy
    converge.scale("hello-a", {"hello-a": 3}, store, host=fake.host())
    assert seen and seen[0].label == "scale hello-a=3" and seen[0].converged is None


def test_a_state_file_without_a_log_still_reads(seed):
    store, _ = seed
    doc = json.loads(store.path("hello-a").read_text())
    del doc["changes"]
    store.path("hello-a").write_text(json.dumps(doc))
    assert store.load("hello-a").changes == ()


def test_a_corrupt_log_makes_the_state_file_corrupt(seed):
    store, _ = seed
    doc = json.loads(store.path("hello-a").read_text())
    doc["changes"][0]["started"] = "yesterday"
    store.path("hello-a").write_text(json.dumps(doc))
    with pytest.raises(state.CorruptState, match=r"changes\[0\]\.started"):
        store.load("hello-a")
