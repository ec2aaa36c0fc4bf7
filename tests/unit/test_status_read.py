"""``status`` of a large lab (issue 17), without root: the save texts kept between
two reads (keyed by each namespace's nf_tables generation), the file they are
kept in, and how the reader decides which namespaces to read again."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from netlab import ipam, lifecycle, savecache
from netlab.cli.status import Readers, status_of
from netlab.diff.compare import planned_tables
from netlab.diff.drift import NetnsSeen
from netlab.errors import BadInput
from netlab.kernel import observe
from netlab.kernel.iptables import IptablesError
from netlab.kernel.nftgen import SavedRules, still_valid
from netlab.plan.build import build_plan
from netlab.plan.types import Neighbour, Plan
from netlab.scenario import load_lab
from netlab.state import StateStore

SEED = Path(__file__).resolve().parents[2] / "scenarios" / "hello-a.yaml"


@pytest.fixture
def store(tmp_path) -> StateStore:
    root = tmp_path / "netlab"
    root.mkdir(mode=0o700)
    return StateStore(root)


def _up(store: StateStore, lab: str = "hello"):
    model = load_lab(SEED, name_override=lab)
    st = lifecycle.state_for(model, ipam.allocate(model), str(SEED))
    store.save(st)
    return st


# -- which kept texts still hold ---------------------------------------------

def test_a_kept_text_holds_only_while_its_namespace_is_at_the_same_key():
    kept = {"a": SavedRules((7, 3), "A"), "b": SavedRules((8, 3), "B"),
            "c": SavedRules((9, 3), "C"), "d": SavedRules((10, 1), "D")}
    keys = {"a": (7, 3),        # unchanged: kept
            "b": (8, 4),        # a transaction since: read again
            "c": (99, 3),       # another namespace under the same name: read again
            "d": None}          # the kernel cannot say: read again
    assert still_valid(kept, keys) == {"a": "A"}


# -- the file they are kept in ------------------------------------------------

def test_the_kept_texts_round_trip_through_a_private_file_of_the_lab(store):
    _up(store)
    memory = savecache.SaveFile(store, "hello")
    assert memory.recall() == {}
    saved = {"nl-hello.node1": SavedRules((11, 5), "*filter\nCOMMIT\n")}
    memory.keep(saved)
    path = store.root / "hello.iptables-saves"
    assert path.stat().st_mode & 0o777 == 0o600
    assert savecache.SaveFile(store, "hello").recall() == saved
    assert "hello.iptables-saves" not in [f"{lab}.json" for lab in store.labs()]
    assert store.labs() == ["hello"]      # the file is not taken for a lab


@pytest.mark.parametrize("content", [b"not json", b"[]", b'{"version": 99, "netns": {}}',
                                     b'{"version": 1, "netns": {"x": {"cookie": 1}}}'])
def test_a_kept_file_that_is_not_this_shape_is_ignored(store, content):
    _up(store)
    (store.root / "hello.iptables-saves").write_bytes(content)
    assert savecache.SaveFile(store, "hello").recall() == {}


def test_nothing_is_kept_for_a_lab_the_store_does_not_hold(store):
    savecache.SaveFile(store, "ghost").keep({"nl-ghost.node1": SavedRules((1, 1), "x")})
    assert list(store.root.iterdir()) == []


@pytest.mark.parametrize("name", ["hello.json", "other.iptables-saves", "hello./x", "../x"])
def test_the_store_touches_no_file_but_the_labs_own(store, name):
    _up(store)
    with pytest.raises(BadInput, match="not a file of lab hello"):
        store.write_file("hello", name, b"x")
    with pytest.raises(BadInput, match="not a file of lab hello"):
        store.read_file("hello", name)


# -- the reader: what it reads again ------------------------------------------

@pytest.fixture
def plan() -> Plan:
    lab = load_lab(SEED)
    return build_plan(lab, ipam.allocate(lab))


class Memory:
    def __init__(self, kept: dict[str, SavedRules]):
        self.kept, self.writes = dict(kept), 0

    def recall(self) -> dict[str, SavedRules]:
        return dict(self.kept)

    def keep(self, saved: dict[str, SavedRules]) -> None:
        self.kept, self.writes = dict(saved), self.writes + 1


def _save_text(plan: Plan, netns: str) -> str:
    return "\n".join(planned_tables(plan, netns).values()) + "\n"


@pytest.fixture
def kernel(monkeypatch, plan):
    """A kernel whose namespaces hold ``plan``'s rules, but ``changed`` ones; records
    which namespaces iptables-save was run in."""
    @dataclasses.dataclass
    class Kernel:
        keys: dict[str, tuple[int, int]]
        texts: dict[str, str]
        saved_in: list[str]

    World = Kernel({ns.name: (100 + i, 1) for i, ns in enumerate(plan.netns)},
                   {ns.name: _save_text(plan, ns.name) for ns in plan.netns}, [])

    class FakeSaves:
        def __init__(self, paths, backend):
            World.saved_in.extend(paths)
            self.paths = paths

        def result(self):
            return {n: World.texts[n] for n in self.paths}

    names = [ns.name for ns in plan.netns]
    monkeypatch.setattr(observe.netns, "listed", lambda prefix: names)
    monkeypatch.setattr(observe.nftgen, "generations", lambda ns: {n: World.keys[n] for n in ns})
    monkeypatch.setattr(observe, "SaveRead", FakeSaves)
    monkeypatch.setattr(observe.netns, "in_threads_lenient",
                        lambda ns, fn, workers=4: {n: NetnsSeen() for n in ns})
    return World


def test_the_first_read_runs_the_tool_everywhere_and_keeps_every_text(plan, kernel):
    memory = Memory({})
    view = observe.read_view(plan, "nft", memory)
    assert sorted(kernel.saved_in) == sorted(ns.name for ns in plan.netns)
    assert memory.writes == 1 and sorted(memory.kept) == sorted(kernel.saved_in)
    node1 = next(ns.name for ns in plan.netns if planned_tables(plan, ns.name))
    assert memory.kept[node1] == SavedRules(kernel.keys[node1], kernel.texts[node1])
    assert view.seen[node1].tables   # the tables were split from the text


def test_a_changed_rule_is_read_again_and_shows_as_drift(plan, kernel):
    memory = Memory({})
    observe.read_view(plan, "nft", memory)
    task = next(ns for ns in plan.netns if ns.role == "task").name
    # Someone deletes a rule: nf_tables counts one more transaction there.
    kernel.texts[task] = "\n".join(line for line in kernel.texts[task].splitlines()
                                   if "--dport 53" not in line) + "\n"
    kernel.keys[task] = (kernel.keys[task][0], kernel.keys[task][1] + 1)
    kernel.saved_in.clear()
    view = observe.read_view(plan, "nft", memory)
    assert kernel.saved_in == [task]                 # only there
    assert memory.kept[task].text == kernel.texts[task]
    found = observe.plan_drift(plan, view)
    assert {d.netns for d in found if d.kind == "iptables"} == {task}   # its two DNS rules


def test_an_unchanged_lab_runs_no_tool_and_rewrites_nothing(plan, kernel):
    memory = Memory({})
    observe.read_view(plan, "nft", memory)
    kernel.saved_in.clear()
    view = observe.read_view(plan, "nft", memory)
    assert kernel.saved_in == [] and memory.writes == 1
    assert not [d for d in observe.plan_drift(plan, view) if d.kind == "iptables"]


def test_the_legacy_backend_has_no_generation_so_it_is_always_read(plan, kernel):
    memory = Memory({ns.name: SavedRules(kernel.keys[ns.name], "stale") for ns in plan.netns})
    observe.read_view(plan, "legacy", memory)
    assert sorted(kernel.saved_in) == sorted(ns.name for ns in plan.netns)
    assert memory.writes == 0


def test_a_tool_failure_in_a_namespace_still_raises(plan, kernel, monkeypatch):
    class Failing:
        def __init__(self, paths, backend):
            self.paths = paths

        def result(self):
            return {n: IptablesError("iptables-save in x failed (exit 1): boom") for n in self.paths}

    monkeypatch.setattr(observe, "SaveRead", Failing)
    monkeypatch.setattr(observe.netns, "exists", lambda name: True)
    with pytest.raises(observe.NetlabError, match="boom"):
        observe.read_view(plan, "nft", Memory({}))


# -- status hands the lab's file to the kernel --------------------------------

def test_status_reads_with_the_labs_own_file_in_its_store(store):
    st = _up(store)
    seen = []

    class Kernel:
        def drift(self, plan, backend, allow=None, memory=None):
            seen.append(memory)
            return []

    doc = status_of(store.load("hello"), dataclasses.replace(
        Readers(), kernel=Kernel(), netns_exists=lambda name: True,
        process=lambda pid: None), store)
    assert doc["drift"] == [] and doc["lab"] == st.lab
    assert seen == [savecache.SaveFile(store, "hello")]
    json.dumps(doc)


@pytest.mark.parametrize("enabled", [True, False])
def test_the_cycle_collector_is_paused_while_status_reads_and_restored_after(store, enabled):
    import gc
    _up(store)
    during = []

    class Kernel:
        def drift(self, plan, backend, allow=None, memory=None):
            during.append(gc.isenabled())
            raise RuntimeError("a read failed")

    (gc.enable if enabled else gc.disable)()
    try:
        with pytest.raises(RuntimeError, match="a read failed"):
            status_of(store.load("hello"), dataclasses.replace(
                Readers(), kernel=Kernel(), process=lambda pid: None), store)
        assert during == [False] and gc.isenabled() is enabled
    finally:
        gc.enable()


def test_a_store_that_refuses_the_write_costs_no_status(store, monkeypatch):
    _up(store)

    def refuse(self, lab, name, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(StateStore, "write_file", refuse)
    savecache.SaveFile(store, "hello").keep({"nl-hello.node1": SavedRules((1, 1), "x")})
    assert savecache.SaveFile(store, "hello").recall() == {}


def test_a_table_the_kernel_prints_as_planned_has_no_drift_and_one_rule_less_has(plan):
    from netlab.diff.ruledrift import table_drift
    for ns in plan.netns:
        for table, text in planned_tables(plan, ns.name).items():
            assert table_drift(ns.name, ns.target, table, text, text) == []
            lines = text.splitlines()
            if any(line.startswith("-A ") for line in lines):
                at = next(i for i, line in enumerate(lines) if line.startswith("-A "))
                fewer = "\n".join(lines[:at] + lines[at + 1:])
                found = table_drift(ns.name, ns.target, table, text, fewer)
                assert [d.kernel for d in found][:1] == ["absent"], found


# -- neighbours: read where they can be planned or put --------------------------

def test_neighbours_are_read_everywhere_but_in_a_task_without_planned_ones(plan, monkeypatch):
    """A task's table is the one netlab never writes: reading it walks the
    machine-wide table once more per task, so it is left unread; every other
    namespace (and any task the plan puts a neighbour in) is read."""
    asked: dict[str, bool] = {}

    def reader(label, sysctls, with_ipvs, ipv6=None, neighbours=True):
        asked[label] = neighbours
        return lambda: NetnsSeen()

    names = [ns.name for ns in plan.netns]
    monkeypatch.setattr(observe.netns, "listed", lambda prefix: names)
    monkeypatch.setattr(observe, "_reader", reader)
    monkeypatch.setattr(observe, "SaveRead", lambda paths, backend: type(
        "S", (), {"result": lambda self: dict.fromkeys(paths, "")})())
    monkeypatch.setattr(observe.netns, "in_threads_lenient",
                        lambda ns, fn, workers=4: {n: fn(n) for n in ns})
    observe.read_view(plan, "nft")
    roles = {ns.name: ns.role for ns in plan.netns}
    assert {r for n, r in roles.items() if not asked[n]} == {"task"}
    assert all(asked[n] for n, r in roles.items() if r != "task")
    overlays = [n for n, r in roles.items() if r == "overlay"]
    assert overlays and all(plan.items_in(n).neighbours for n in overlays)
    # A task the plan gave a neighbour to is read.
    task = next(n for n, r in roles.items() if r == "task")
    assert not observe.reads_neighbours(plan, task, "task")
    with_one = dataclasses.replace(plan, neighbours=plan.neighbours + (
        Neighbour(task, "eth0", "10.0.0.250", "02:42:0a:00:00:fa"),))
    assert observe.reads_neighbours(with_one, task, "task")
