"""``netlab scale`` through a fake kernel and host (no root): swarmkit's rules for which
tasks go and which slots come, libnetwork's addresses and its deweighting order."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from netlab import converge, lifecycle, state
from netlab.cli import common
from netlab.cli.main import cli
from netlab.model import Lab, Node, Service, Task, reschedule, scale
from netlab.scenario import load_lab
from tests.unit.fakes import FakeHost

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "scenarios"
NS = "nl-hello-a."


@pytest.fixture
def seed(tmp_path, monkeypatch):
    """The seed lab up through a fake host, its scenario file then deleted (scale
    must not need it); the CLI sees the same store and host."""
    scenario = tmp_path / "hello-a.yaml"
    shutil.copy(SCENARIOS / "hello-a.yaml", scenario)
    store, fake = state.StateStore(tmp_path / "store"), FakeHost()
    lifecycle.up(load_lab(scenario), str(scenario), store, "legacy", host=fake.host())
    scenario.unlink()
    monkeypatch.setattr(common, "store", lambda: store)
    monkeypatch.setattr(common, "host", fake.host)
    return store, fake


def tasks(st: state.LabState) -> dict[str, tuple[str, str]]:
    """task -> (node, ingress address) of the lab in ``st``."""
    return {t.name: (t.node, str(st.allocations.tasks[t.name].ingress_ip)) for t in st.model.tasks}


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def _events(store):
    from netlab.manager.events import parse_lines
    return parse_lines(store.read_file("hello-a", "hello-a.events") or b"")


def test_scale_2_3_1_2_keeps_nodes_and_addresses_and_does_not_reuse_at_once(seed):
    store, fake = seed
    assert tasks(store.load("hello-a")) == {"hello-a.1": ("node1", "10.0.0.5"),
                                            "hello-a.2": ("node2", "10.0.0.6")}
    r = run("scale", "hello-a", "hello-a=3")
    assert r.exit_code == 0, r.output
    assert "+ hello-a.3" in r.output and "node1" in r.output and "10.0.0.7" in r.output
    st = store.load("hello-a")
    assert tasks(st) == {"hello-a.1": ("node1", "10.0.0.5"), "hello-a.2": ("node2", "10.0.0.6"),
                         "hello-a.3": ("node1", "10.0.0.7")}
    assert NS + "hello-a.3" in fake.namespaces
    assert st.model.service("hello-a").replicas == 3 and st.complete

    # 3 -> 1: node1 holds two copies, so its second (hello-a.3) goes first; then of the
    # tied first copies, the highest slot (hello-a.2).
    r = run("scale", "hello-a", "hello-a=1")
    assert r.exit_code == 0, r.output
    assert "- hello-a.3" in r.output and "- hello-a.2" in r.output
    st = store.load("hello-a")
    assert tasks(st) == {"hello-a.1": ("node1", "10.0.0.5")}
    assert not {NS + "hello-a.2", NS + "hello-a.3"} & fake.namespaces
    assert [(t.name, t.node, t.state) for t in st.desired_tasks] == [
        ("hello-a.2", "node2", "shutdown"), ("hello-a.3", "node1", "shutdown"),
        ("hello-a.1", "node1", "running")]
    assert st.actual_tasks == st.desired_tasks
    # The history keeps what trace names when a request still reaches an ended task.
    ended = [t for t in st.desired_tasks if t.state == "shutdown"]
    assert [(t.address, t.ended_by) for t in ended] == [
        ("10.0.0.6", "scale hello-a=1"), ("10.0.0.7", "scale hello-a=1")]
    assert all(t.ended_at and t.ended_at.endswith("Z") for t in ended)
    assert [(t.address, t.ended_at) for t in st.desired_tasks if t.state == "running"] == [
        (None, None)]

    # 1 -> 2: the lowest free slot, on the emptier node, with the next address: the
    # freed 10.0.0.6 and .7 are not handed out again at once.
    r = run("scale", "hello-a", "hello-a=2")
    assert r.exit_code == 0, r.output
    st = store.load("hello-a")
    assert tasks(st) == {"hello-a.1": ("node1", "10.0.0.5"), "hello-a.2": ("node2", "10.0.0.8")}
    assert [(t.name, t.state) for t in st.desired_tasks].count(("hello-a.2", "shutdown")) == 1
    assert ("hello-a.2", "running") in [(t.name, t.state) for t in st.desired_tasks]


def test_scale_down_deweights_before_the_task_and_its_destination_go(seed):
    store, fake = seed
    assert run("scale", "hello-a", "hello-a=3").exit_code == 0
    fake.kernel.steps.clear()
    assert run("scale", "hello-a", "hello-a=2").exit_code == 0
    kinds = [s[0] for s in fake.kernel.steps]
    assert kinds == ["weight", "weight", "update", "teardown", "apply"], fake.kernel.steps
    sandboxes = {s[1] for s in fake.kernel.steps if s[0] == "weight"}
    assert sandboxes == {NS + "node1.ingress_sbox", NS + "node2.ingress_sbox"}
    assert {(s[3], s[4]) for s in fake.kernel.steps if s[0] == "weight"} == {("10.0.0.7", 0)}
    assert "hello-a.3" not in fake.kernel.steps[2][1]      # its app stopped before ...
    assert fake.kernel.steps[3][1] == [NS + "hello-a.3"]   # ... its namespace went ...
    plan, _, stale = fake.kernel.applied[-1]
    assert all(d.addr != "10.0.0.7" for s in plan.ipvs for d in s.dests)   # ... then its dest


def test_scale_up_weights_new_destinations_only_once_their_app_serves(seed):
    store, fake = seed
    fake.kernel.steps.clear()
    assert run("scale", "hello-a", "hello-a=3").exit_code == 0
    kinds = [s[0] for s in fake.kernel.steps]
    assert kinds == ["apply", "update", "weight", "weight"], fake.kernel.steps
    applied = fake.kernel.steps[0][1]
    assert {d.weight for s in applied.ipvs for d in s.dests if d.addr == "10.0.0.7"} == {0}
    assert "hello-a.3" in fake.kernel.steps[1][1]
    assert set(fake.kernel.weights.values()) == {1}


def test_scale_to_the_same_count_changes_nothing(seed):
    store, fake = seed
    before = len(fake.kernel.applied)
    r = run("scale", "hello-a", "hello-a=2")
    assert r.exit_code == 0 and "no task moved" in r.output
    assert len(fake.kernel.applied) == before


@pytest.mark.parametrize("args, field", [
    (["nope", "hello-a=3"], "LAB"),
    (["hello-a", "web=3"], "SERVICE"),
    (["hello-a", "hello-a=-1"], "SERVICE=N"),
    (["hello-a", "hello-a=three"], "SERVICE=N"),
    (["hello-a", "hello-a=1.5"], "SERVICE=N"),
    (["hello-a", "hello-a"], "SERVICE=N"),
    (["hello-a", "=3"], "SERVICE=N"),
    (["hello-a"], "SERVICE=N"),
    (["hello-a", "hello-a=1", "hello-a=2"], "SERVICE=N"),
    (["Bad/Name", "hello-a=1"], "LAB"),
])
def test_bad_input_exits_2_with_a_hint_and_changes_nothing(seed, args, field):
    store, fake = seed
    before = json.dumps(state.to_json(store.load("hello-a")), sort_keys=True)
    applied = len(fake.kernel.applied)
    r = run("scale", *args)
    assert r.exit_code == 2, r.output
    assert f"Error: {field}" in r.output and "hint" in r.output
    assert "Traceback" not in r.output
    assert json.dumps(state.to_json(store.load("hello-a")), sort_keys=True) == before
    assert len(fake.kernel.applied) == applied


def test_scale_needs_root(seed):
    store, fake = seed
    fake.root = False
    r = run("scale", "hello-a", "hello-a=3")
    assert r.exit_code == 2 and "root" in r.output


def test_a_service_with_no_ingress_port_scales(tmp_path, monkeypatch):
    # The scenario reader refuses such a service today; a model may hold one (host mode).
    seed = load_lab(SCENARIOS / "hello-a.yaml")
    lab = reschedule(dataclasses.replace(seed, services=seed.services + (Service("worker", 1),)), ())
    store, fake = state.StateStore(tmp_path / "store"), FakeHost()
    lifecycle.up(lab, str(tmp_path / "gone.yaml"), store, "legacy", host=fake.host())
    result = converge.scale("hello-a", {"worker": 3}, store, host=fake.host())
    assert [(c.task, c.node) for c in result.added] == [("worker.2", "node2"), ("worker.3", "node1")]
    assert store.load("hello-a").model.service("worker").replicas == 3
    result = converge.scale("hello-a", {"worker": 0}, store, host=fake.host())
    assert len(result.removed) == 3 and not store.load("hello-a").model.tasks_of("worker")


# -- swarmkit's rules, on the model alone ----------------------------------------------

def _lab(placed: list[tuple[int, str]], replicas: int | None = None) -> Lab:
    nodes = (Node("n1", "manager"), Node("n2"), Node("n3"))
    return Lab("x", nodes, (Service("web", replicas or len(placed)),),
               tasks=tuple(Task("web", slot, node) for slot, node in placed))


@pytest.mark.parametrize("placed, n, kept", [
    # the node with the most copies loses one first
    ([(1, "n1"), (2, "n2"), (3, "n1"), (4, "n1")], 2, [(1, "n1"), (2, "n2")]),
    ([(1, "n1"), (2, "n2"), (3, "n1"), (4, "n1")], 3, [(1, "n1"), (2, "n2"), (3, "n1")]),
    # ties: the highest slot goes
    ([(1, "n1"), (2, "n2"), (3, "n3")], 2, [(1, "n1"), (2, "n2")]),
    ([(1, "n3"), (2, "n3"), (3, "n1")], 2, [(1, "n3"), (3, "n1")]),
    ([(1, "n1"), (2, "n2")], 0, []),
])
def test_scale_down_removes_from_the_most_loaded_node_first(placed, n, kept):
    after = scale(_lab(placed), {"web": n})
    assert [(t.slot, t.node) for t in after.tasks] == kept
    assert after.service("web").replicas == n


def test_scale_up_fills_the_lowest_free_slots_on_the_emptiest_nodes():
    after = scale(_lab([(1, "n3"), (3, "n1")]), {"web": 4})
    assert [(t.slot, t.node) for t in after.tasks] == [(1, "n3"), (2, "n2"), (3, "n1"), (4, "n1")]


def test_scale_refuses_an_unknown_service_and_a_lab_with_no_eligible_node():
    with pytest.raises(KeyError):
        scale(_lab([(1, "n1")]), {"api": 1})
    lab = _lab([(1, "n1")])
    lab = Lab("x", tuple(Node(n.name, n.role, "drain") for n in lab.nodes), lab.services, tasks=())
    with pytest.raises(ValueError):
        scale(lab, {"web": 1})


# -- netlab node ---------------------------------------------------------------------

LAN_PORT2 = (NS + "lan", "veth-node2")


def _down_noticed(store, fake) -> None:
    """``netlab node hello-a node2 down``, then what the lab's manager does once it
    noticed node2's heartbeats stopped (netlab.manager: converge.noticed)."""
    r = run("node", "hello-a", "node2", "down")
    assert r.exit_code == 0 and "cut off the LAN (lan/veth-node2 down)" in r.output, r.output
    assert "13.5-16.5 s after its last" in r.output and "5 s later" in r.output
    # Only the cut: the node is down in the lab once the manager has noticed.
    assert store.load("hello-a").model.node("node2").state == "ready"
    assert fake.kernel.steps[-1] == ("link", *LAN_PORT2, False)
    converge.noticed("hello-a", "node2", "down", "heartbeat failure", store, host=fake.host())


def test_node_down_restarts_its_tasks_elsewhere_and_up_moves_none_back(seed, monkeypatch):
    store, fake = seed
    fake.kernel.steps.clear()
    _down_noticed(store, fake)
    assert fake.kernel.steps[0] == ("link", *LAN_PORT2, False)      # the crash comes first
    assert LAN_PORT2 in fake.kernel.links_down                     # and survives the apply
    assert "node2 cut" in [f"{e.subject} {e.action}" for e in _events(store)]
    st = store.load("hello-a")
    # Same slot, a new task on the live node, with a new address (not node2's 10.0.0.6).
    assert tasks(st) == {"hello-a.1": ("node1", "10.0.0.5"), "hello-a.2": ("node1", "10.0.0.7")}
    assert st.model.node("node2").state == "down"
    assert [(t.name, t.node, t.state) for t in st.desired_tasks] == [
        ("hello-a.2", "node2", "shutdown"), ("hello-a.1", "node1", "running"),
        ("hello-a.2", "node1", "running")]
    assert (st.desired_tasks[0].address, st.desired_tasks[0].ended_by) == (
        "10.0.0.6", "node node2 down: heartbeat failure")
    assert ("weight", NS + "node1.ingress_sbox", 0x100, "10.0.0.6", 0) in fake.kernel.steps
    # The old task's namespace went before the new task's (same name) was made.
    kinds = [s[0] for s in fake.kernel.steps]
    assert fake.kernel.steps[kinds.index("teardown")][1] == [NS + "hello-a.2"]
    assert kinds.index("teardown") < kinds.index("apply")
    assert NS + "hello-a.2" in fake.namespaces

    # A scale while node2 is down places nothing there and keeps its port down.
    assert run("scale", "hello-a", "hello-a=3").exit_code == 0
    assert tasks(store.load("hello-a"))["hello-a.3"][0] == "node1"
    assert LAN_PORT2 in fake.kernel.links_down

    r = run("node", "hello-a", "node2", "up")
    assert r.exit_code == 0 and "back on the LAN" in r.output and "none of its old" in r.output
    assert LAN_PORT2 not in fake.kernel.links_down
    assert store.load("hello-a").model.node("node2").state == "down"   # until noticed
    converge.noticed("hello-a", "node2", "up", "heartbeat received", store, host=fake.host())
    assert LAN_PORT2 not in fake.kernel.links_down
    st = store.load("hello-a")
    assert st.model.node("node2").state == "ready"
    assert {t.node for t in st.model.tasks} == {"node1"}

    monkeypatch.setattr("netlab.cli.status.readers", lambda: __import__(
        "netlab.cli.status", fromlist=["Readers"]).Readers(
            kernel=fake.kernel, netns_exists=lambda n: n in fake.namespaces,
            process=fake.process))
    doc = json.loads(run("status", "hello-a", "--json").output)
    assert [(n["name"], n["state"], n["availability"]) for n in doc["nodes"]] == [
        ("node1", "ready", "active"), ("node2", "ready", "active")]
    assert ("hello-a.2", 2, "node2", "shutdown", "10.0.0.6",
            "node node2 down: heartbeat failure") in [
        (h["name"], h["slot"], h["node"], h["state"], h["address"], h["ended_by"])
        for h in doc["history"]]
    assert doc["drift"] == []
    text = run("status", "hello-a").output
    assert "task history" in text and "shutdown" in text
    assert "10.0.0.6" in text and "by netlab node node2 down" in text


def test_drain_moves_tasks_off_a_node_that_stays_on_the_lan_and_active_moves_none(seed):
    store, fake = seed
    r = run("node", "hello-a", "node1", "drain")
    assert r.exit_code == 0, r.output
    st = store.load("hello-a")
    assert tasks(st) == {"hello-a.1": ("node2", "10.0.0.7"), "hello-a.2": ("node2", "10.0.0.6")}
    assert st.model.node("node1").availability == "drain" and not fake.kernel.links_down
    # Draining the last node leaves nowhere to go: refused, nothing changed (Swarm
    # would leave the tasks pending).
    r = run("node", "hello-a", "node2", "drain")
    assert r.exit_code == 2 and "Error: NODE" in r.output and "hint" in r.output
    assert store.load("hello-a").model == st.model
    assert run("node", "hello-a", "node1", "active").exit_code == 0
    assert {t.node for t in store.load("hello-a").model.tasks} == {"node2"}


@pytest.mark.parametrize("args, field", [
    (["nope", "node1", "down"], "LAB"),
    (["hello-a", "node9", "down"], "NODE"),
    (["hello-a", "node1", "crash"], "ACTION"),
])
def test_node_bad_input_exits_2(seed, args, field):
    store, fake = seed
    applied = len(fake.kernel.applied)
    r = run("node", *args)
    assert r.exit_code == 2 and f"Error: {field}" in r.output and "hint" in r.output, r.output
    assert len(fake.kernel.applied) == applied and not fake.kernel.links_down


def test_up_from_the_scenario_keeps_a_down_node_down(seed, tmp_path):
    store, fake = seed
    _down_noticed(store, fake)
    scenario = tmp_path / "hello-a.yaml"
    shutil.copy(SCENARIOS / "hello-a.yaml", scenario)
    text = scenario.read_text().replace("replicas: 2", "replicas: 3")
    scenario.write_text(text)
    result = lifecycle.up(load_lab(scenario), str(scenario), store, "legacy", host=fake.host())
    assert result.lab.node("node2").state == "down"
    assert {t.node for t in result.lab.tasks} == {"node1"}
    assert LAN_PORT2 in fake.kernel.links_down


def test_a_state_file_from_before_node_states_reads_its_nodes_as_ready(seed):
    store, fake = seed
    _down_noticed(store, fake)
    doc = state.to_json(store.load("hello-a"))
    assert [n["state"] for n in doc["model"]["nodes"]] == ["ready", "down"]
    for n in doc["model"]["nodes"]:
        del n["state"]
    store.path("hello-a").write_text(json.dumps(doc))
    assert {n.state for n in store.load("hello-a").model.nodes} == {"ready"}
    doc["model"]["nodes"][0]["state"] = "dead"
    store.path("hello-a").write_text(json.dumps(doc))
    with pytest.raises(state.CorruptState, match=r"model.nodes\[0\].state"):
        store.load("hello-a")
