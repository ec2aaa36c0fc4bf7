"""The state file is the lab's memory: read back strictly, and enough on its own (no root).

A lab's state is made as ``up`` makes it (``lifecycle.state_for``, no
kernel) in a scratch store; its scenario file is then deleted or edited, and
``status --json``, ``graph`` and the plan must not change: they rebuild
everything from the state.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from netlab import codec, ipam, lifecycle, state
from netlab.cli import common
from netlab.cli import status as status_cli
from netlab.cli.main import cli
from netlab.client import parse_target
from netlab.plan.build import build_plan
from netlab.model import TaskRecord
from netlab.scenario import load_lab
from netlab.trace.run import Tracer, parse

from tests.unit.fakes import FakeHost, FakeKernel

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "scenarios"


@pytest.fixture
def lab_dir(tmp_path, monkeypatch):
    """A scratch store holding lab ``x`` made from a copy of three-nodes.yaml; the
    status readers and the host are fakes that see every namespace of the lab."""
    scenario = tmp_path / "three-nodes.yaml"
    shutil.copy(SCENARIOS / "three-nodes.yaml", scenario)
    store = state.StateStore(tmp_path / "store")
    model = load_lab(scenario, name_override="x")
    st = lifecycle.state_for(model, ipam.allocate(model), str(scenario))
    st.complete, st.iptables = True, "nft"
    store.save(st)
    kernel = FakeKernel(namespaces=set(st.netns))
    monkeypatch.setattr(common, "store", lambda: store)
    monkeypatch.setattr(status_cli, "readers", lambda: status_cli.Readers(
        kernel=kernel, netns_exists=lambda n: n in kernel.namespaces,
        process=lambda _pid: None))
    monkeypatch.chdir(tmp_path)
    return scenario, store


def _views(store) -> dict:
    """Everything the read-only commands derive from the state."""
    runner = CliRunner()
    status = runner.invoke(cli, ["status", "--json", "x"])
    graph = runner.invoke(cli, ["graph", "x"])
    text = runner.invoke(cli, ["status", "x"])
    assert status.exit_code == 0 and graph.exit_code == 0 and text.exit_code == 0, status.output
    st = store.load("x")
    plan = common.plan_from_state(st)
    tracer = Tracer(st.model, st.allocations, plan, parse(st, "node3:9000", "web.2", FakeKernel()), st.iptables)
    return {"status": json.loads(status.output), "status_text": text.output,
            "graph": graph.output, "plan": plan,
            "trace_path": [p.label for p in tracer.path.points],
            "trace_facts": tracer.facts, "curl": parse_target(st, "node3:9000")}


def test_status_graph_and_plan_come_from_the_state_not_the_scenario(lab_dir):
    scenario, store = lab_dir
    before = _views(store)
    assert before["status"]["drift"] == []
    assert [t["name"] for t in before["status"]["tasks"]] == ["web.1", "web.2", "web.3", "api.1"]
    assert before["plan"] == build_plan(load_lab(SCENARIOS / "three-nodes.yaml", name_override="x"))
    # Edited: another replica count, another subnet. Nothing read back changes.
    scenario.write_text(scenario.read_text().replace("replicas: 3", "replicas: 5")
                        + "ingress: {subnet: 10.7.0.0/24}\n")
    assert _views(store) == before
    scenario.unlink()                                   # deleted
    assert _views(store) == before
    r = CliRunner().invoke(cli, ["exec", "x", "nowhere", "--", "true"])
    assert r.exit_code == 2 and "api.1" in r.output     # exec's targets: from the state too


def test_status_reports_drift_from_the_kernel_it_is_given(lab_dir):
    _, store = lab_dir
    kernel = status_cli.readers().kernel
    kernel.namespaces.discard("nl-x.web.2")
    doc = json.loads(CliRunner().invoke(cli, ["status", "--json", "x"]).output)
    # Fields are only ever added to a drift item (status --json stays compatible).
    assert [{k: d[k] for k in ("netns", "kind", "detail", "target")} for d in doc["drift"]] \
        == [{"netns": "nl-x.web.2", "kind": "netns", "detail": "namespace is missing",
             "target": "web.2"}]
    assert {"object", "plan", "kernel", "hint"} <= set(doc["drift"][0])
    assert [n["exists"] for n in doc["namespaces"] if n["target"] == "web.2"] == [False]



def test_status_tells_the_kernel_what_the_lab_allows(lab_dir):
    """A finished lab allows nothing; a change under way allows libnetwork's weight-0
    steps, and a node that is down keeps its LAN port down."""
    from dataclasses import replace

    from netlab.diff.drift import Allowance
    _, store = lab_dir
    kernel = status_cli.readers().kernel
    assert CliRunner().invoke(cli, ["status", "--json", "x"]).exit_code == 0
    assert kernel.allowed[-1] == Allowance()
    st = store.load("x")
    st.complete = False
    st.model = replace(st.model, nodes=tuple(replace(n, state="down") if n.name == "node2" else n
                                             for n in st.model.nodes))
    store.save(st)
    assert CliRunner().invoke(cli, ["status", "--json", "x"]).exit_code == 0
    assert kernel.allowed[-1] == Allowance(changing=True,
                                           links_down=frozenset({("nl-x.lan", "veth-node2")}))

# -- the file ---------------------------------------------------------------------------------

def _state(scenario: str = "three-nodes", lab: str = "x") -> state.LabState:
    model = load_lab(SCENARIOS / f"{scenario}.yaml", name_override=lab)
    return lifecycle.state_for(model, ipam.allocate(model), f"/s/{scenario}.yaml")


@pytest.mark.parametrize("scenario", ["hello-a", "three-nodes"])
def test_model_allocations_and_tasks_round_trip(tmp_path, scenario):
    st = _state(scenario)
    st.actual_tasks = lifecycle.running(st.model)
    store = state.StateStore(tmp_path)
    store.save(st)
    back = store.load("x")
    assert back == st
    assert back.model == st.model and back.allocations == st.allocations
    assert codec.lab_from_json(codec.lab_to_json(st.model)) == st.model
    doc = json.loads((tmp_path / "x.json").read_text())
    assert doc["version"] == state.VERSION
    assert doc["desired_tasks"][0] == {"service": st.model.tasks[0].service, "slot": 1,
                                       "node": st.model.tasks[0].node, "state": "running"}


def test_an_ended_task_keeps_its_address_and_when_and_why_it_ended(tmp_path):
    st = _state()
    t = st.model.tasks[0]
    ended = TaskRecord(t.service, t.slot, t.node, "shutdown", "10.0.0.9", "2026-11-29T19:00:00Z",
                       "scale web=2")
    st.desired_tasks = st.actual_tasks = (ended, *st.desired_tasks[1:])
    store = state.StateStore(tmp_path)
    store.save(st)
    assert store.load("x").desired_tasks[0] == ended
    doc = json.loads((tmp_path / "x.json").read_text())
    assert doc["desired_tasks"][0] == {"service": t.service, "slot": t.slot, "node": t.node,
                                       "state": "shutdown", "address": "10.0.0.9",
                                       "ended_at": "2026-11-29T19:00:00Z", "ended_by": "scale web=2"}


def _set(doc: dict, path: tuple, value) -> None:
    for key in path[:-1]:
        doc = doc[key]
    if value is _DELETE:
        del doc[path[-1]]
    else:
        doc[path[-1]] = value


_DELETE = object()

# (where, the value put there, what the report says)
BAD = [
    (("model", "nodes", 0, "name"), "Node_1", "model.nodes[0].name is 'Node_1', not a name"),
    (("model", "nodes", 0, "extra"), 1, "model.nodes[0] has an unknown key 'extra'"),
    (("model", "nodes", 1, "availability"), "gone", "model.nodes[1].availability must be one of"),
    (("model", "services", 0, "replicas"), "3", "model.services[0].replicas must be an integer"),
    (("model", "services", 0, "ports", 0, "published"), 0, "ports[0].published must be an integer"),
    (("model", "ingress", "subnet"), "10.0.0.0/33", "model.ingress.subnet is '10.0.0.0/33', not"),
    (("model", "ingress", "vni"), 1 << 24, "model.ingress.vni must be an integer"),
    (("model", "tasks", 0, "node"), "node9", "model.tasks[0].node is 'node9', not a node of the lab"),
    # Slots may have gaps after a scale-down, but web.7 has no addresses.
    (("model", "tasks", 0, "slot"), 7, "allocations.tasks has no addresses for task web.7"),
    (("model", "tasks", 1, "slot"), 1, "model.tasks names 'web.1' twice"),
    (("model", "services", 0, "replicas"), 1, "model.tasks holds 3 slots of web, more than its 1 replicas"),
    (("model", "name"), "y", "model.name is 'y', not 'x'"),
    (("model", "iptables"), "ebtables", "model.iptables must be one of"),
    (("allocations", "tasks", "web.1", "ingress_ip"), "10.0.0.300",
     "allocations.tasks['web.1'].ingress_ip is '10.0.0.300', not an IPv4 address"),
    (("allocations", "tasks", "web.1", "node"), "node2",
     "allocations.tasks has no addresses for task web.1 on node1"),
    (("allocations", "tasks", "web.1"), _DELETE, "allocations.tasks has no addresses for task web.1"),
    (("allocations", "tasks", "../x"), {}, "allocations.tasks has a key '../x' that is not a task name"),
    (("allocations", "services", "api"), _DELETE, "allocations.services has no VIP for service api"),
    (("allocations", "nodes", "node3"), _DELETE, "allocations.nodes has no addresses for node node3"),
    (("allocations", "tasks", "web.2", "ingress_ip"), "10.0.0.6",
     "allocations.tasks['web.2'].ingress_ip is 10.0.0.6, as is allocations.tasks['web.1'].ingress_ip"),
    (("allocations", "services", "web", "vip"), "10.1.0.5",
     "allocations.services['web'].vip is 10.1.0.5, not a host of 10.0.0.0/24"),
    (("allocations", "nodes", "node2", "lan_ip"), "192.168.56.255",
     "allocations.nodes['node2'].lan_ip is 192.168.56.255, not a host of 192.168.56.0/24"),
    (("allocations", "tasks", "web.1", "gw_ip"), "172.18.0.2",
     "allocations.tasks['web.1'].gw_ip is 172.18.0.2, as is allocations.nodes['node1'].sandbox_gw_ip"),
    (("allocations", "ingress", "next"), -1, "allocations.ingress.next must be an integer"),
    (("allocations", "vnis"), {}, "allocations.vnis has no VNI for network ingress"),
    (("allocations", "next_fwmark"), True, "allocations.next_fwmark must be an integer"),
    (("allocations", "client_ip"), None, "allocations.client_ip is 'None', not an IPv4 address"),
    (("desired_tasks", 0, "state"), "sleeping", "desired_tasks[0].state must be one of"),
    (("desired_tasks", 0, "address"), "10.0.0.999",
     "desired_tasks[0].address is '10.0.0.999', not an IPv4 address"),
    (("desired_tasks", 0, "ended_by"), "\x1b[2J", "desired_tasks[0].ended_by must be a short line"),
    (("desired_tasks", 1, "ended_at"), 5, "desired_tasks[1].ended_at must be a short line"),
    (("desired_tasks", 0, "service"), "nope", "desired_tasks[0] is nope.1 on node1, not a service"),
    (("actual_tasks",), {}, "actual_tasks must be a list"),
    (("allocations",), _DELETE, "'allocations' is missing"),
]


@pytest.mark.parametrize("where, value, reason", BAD, ids=[".".join(map(str, b[0])) for b in BAD])
def test_a_damaged_memory_is_corrupt_and_moved_aside(tmp_path, where, value, reason):
    store = state.StateStore(tmp_path)
    store.save(_state())
    doc = json.loads((tmp_path / "x.json").read_text())
    damaged = copy.deepcopy(doc)
    _set(damaged, where, value)
    (tmp_path / "x.json").write_text(json.dumps(damaged))
    with pytest.raises(state.CorruptState) as err:
        store.load("x")
    assert reason in str(err.value) and "hint: netlab down x" in str(err.value)
    assert err.value.moved_to and not (tmp_path / "x.json").exists()


def test_an_old_state_file_is_corrupt_with_a_hint_and_down_still_sweeps(tmp_path, monkeypatch):
    store = state.StateStore(tmp_path / "store")
    st = _state(lab="x")
    old = {"lab": "x", "scenario": st.scenario, "netns": st.netns, "targets": st.targets,
           "supervisor_pid": None, "complete": True, "lan": st.lan, "client_ip": st.client_ip,
           "iptables": "legacy"}
    store.root.mkdir(mode=0o700)
    (store.root / "x.json").write_text(json.dumps(old))
    fake = FakeHost()
    fake.namespaces |= set(st.netns)
    monkeypatch.setattr(common, "store", lambda: store)
    monkeypatch.setattr(common, "host", fake.host)
    r = CliRunner().invoke(cli, ["status", "x"])
    assert r.exit_code == 2 and "from another netlab (no 'version'" in r.output
    assert "netlab down x" in r.output
    r = CliRunner().invoke(cli, ["down", "x"])
    assert r.exit_code == 0 and "lab x is down" in r.output, r.output
    assert sorted(fake.torn_down) == sorted(st.netns) and not fake.namespaces


# -- up converges, through the kernel interface ---------------------------------------------

def test_up_twice_converges_incrementally_through_the_kernel_interface(tmp_path):
    scenario = tmp_path / "three-nodes.yaml"
    shutil.copy(SCENARIOS / "three-nodes.yaml", scenario)
    store, fake = state.StateStore(tmp_path / "store"), FakeHost()
    first = lifecycle.up(load_lab(scenario), str(scenario), store, "legacy", host=fake.host())
    assert len(fake.kernel.applied) == 1 and fake.kernel.applied[0][2] == []
    assert fake.kernel.applied[0][0] == build_plan(load_lab(SCENARIOS / "three-nodes.yaml"))
    assert len(fake.started) == 1 and fake.updated == []
    st = store.load("three-nodes")
    assert st.complete and st.model == first.lab and st.allocations == first.allocations
    assert st.actual_tasks == st.desired_tasks == lifecycle.running(first.lab)

    # Scale web 3 -> 4, then 4 -> 2: each up applies the next plan, from the state.
    scenario.write_text(scenario.read_text().replace("replicas: 3", "replicas: 4"))
    second = lifecycle.up(load_lab(scenario), str(scenario), store, "legacy", host=fake.host())
    plan2, _, stale2 = fake.kernel.applied[1]
    assert stale2 == [] and plan2 == second.plan
    assert second.allocations.services == first.allocations.services
    assert second.allocations.tasks["api.1"] == first.allocations.tasks["api.1"]
    assert str(second.allocations.tasks["web.4"].ingress_ip) == "10.0.0.11"
    assert len(fake.started) == 1 and len(fake.updated) == 1      # the same supervisor, updated
    pid, apps = fake.updated[0]
    assert pid == first.supervisor_pid and {a.task for a in apps} >= {"web.4", "api.1"}
    assert "nl-three-nodes.web.4" in fake.namespaces

    scenario.write_text(scenario.read_text().replace("replicas: 4", "replicas: 2"))
    third = lifecycle.up(load_lab(scenario), str(scenario), store, "legacy", host=fake.host())
    _, _, stale3 = fake.kernel.applied[2]
    assert sorted(stale3) == ["nl-three-nodes.web.3", "nl-three-nodes.web.4"]
    assert not {"nl-three-nodes.web.3", "nl-three-nodes.web.4"} & fake.namespaces
    st = store.load("three-nodes")
    assert [t.name for t in st.actual_tasks] == ["web.1", "web.2", "api.1"]
    assert st.allocations.ingress.next == 12 and third.allocations.tasks["web.1"] == \
        first.allocations.tasks["web.1"]
    assert store.load("three-nodes").netns == [ns.name for ns in third.plan.netns]
