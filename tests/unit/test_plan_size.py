"""One estimate of a plan's size, checked before building, for every way a lab grows.

A scenario (nodes, replicas, published ports, networks) and ``scale`` are
refused with the same message, naming the field and the limit, before any
task is placed or any plan built (here: placing or planning fails the test).
Times are never asserted: the refusals are checked to come before the work.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from netlab import converge, lifecycle, state
from netlab.cli import common
from netlab.cli.main import cli
from netlab.errors import BadInput
from netlab.model import PublishedPort, Service
from netlab.plan import size
from netlab.scenario import ScenarioError, load_lab, load_lab_from_text
from tests.unit.fakes import FakeHost

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
LIMIT = (f"netlab plans at most {size.MAX_PLAN_ITEMS:,} objects and "
         f"{size.MAX_PLAN_RULES:,} rules")


def _nodes(n: int) -> str:
    return "nodes: {" + ", ".join(f"n{i}: {{role: manager}}" for i in range(n)) + "}\n"


def _ports(nodes: int, ports: int) -> str:
    listed = ", ".join(f"'{p}:80'" for p in range(10000, 10000 + ports))
    return f"name: p\n{_nodes(nodes)}services:\n  web: {{ports: [{listed}]}}\n"


def _networks(nodes: int, networks: int, used: int | None = None) -> str:
    """``networks`` overlays, the first ``used`` (all) attached to web, a task per node:
    a node has a network's two namespaces only where a task on it runs."""
    nets = ", ".join(f"u{i}: {{driver: overlay}}" for i in range(networks))
    on = ", ".join(f"u{i}" for i in range(networks if used is None else used))
    return (f"name: n\n{_nodes(nodes)}networks: {{{nets}}}\n"
            f"services: {{web: {{deploy: {{replicas: {nodes}}}, networks: [{on}]}}}}\n")


@pytest.fixture
def nothing_placed_or_planned(monkeypatch):
    def forbidden(*_a, **_k):
        raise AssertionError("a task was placed or a plan built for a lab too big")
    monkeypatch.setattr("netlab.scenario.checks.place_tasks", forbidden)
    monkeypatch.setattr("netlab.plan.build.build_plan", forbidden)
    monkeypatch.setattr(converge, "model_scale", forbidden)
    monkeypatch.setattr(converge, "build_plan", forbidden)


@pytest.mark.parametrize("case, text, paths", [
    ("10 nodes, 10,000 published ports", _ports(10, 10_000), {"services"}),
    ("60 nodes, 5,000 ports", _ports(60, 5_000), {"services", "nodes"}),
    ("500 nodes", _nodes(500) + "services: {web: {ports: ['80:80']}}\n", {"nodes"}),
    ("20 nodes, 800 networks", _networks(20, 800), {"networks", "nodes"}),
    ("two services of 10,000 replicas", _nodes(2) + "ingress: {subnet: 10.128.0.0/9}\n"
     "services: {a: {deploy: {replicas: 10000}, ports: ['80:80']},\n"
     "           b: {deploy: {replicas: 10000}, ports: ['81:80']}}\n", {"services"}),
])
def test_a_scenario_too_big_is_refused_before_placing(nothing_placed_or_planned, case, text, paths):
    with pytest.raises(ScenarioError) as err:
        load_lab_from_text(text, "big.yaml")
    issues = [i for i in err.value.issues if LIMIT in i.message]
    assert len(issues) == 1 and issues[0].path in paths, err.value.issues
    assert "kernel objects" in issues[0].message and "use fewer" in issues[0].hint


def test_networks_no_task_is_on_plan_nothing_and_are_not_refused():
    # 800 networks, one of them used: only that one has namespaces, on the nodes of its tasks.
    lab = load_lab_from_text(_networks(20, 800, used=1), "n.yaml")
    assert len(lab.networks) == 800
    assert size.estimate(20, lab.services, [n.name for n in lab.networks]) == \
        size.estimate(20, lab.services, ["u0"])


def test_plan_json_of_a_scenario_too_big_is_one_json_error(tmp_path, nothing_placed_or_planned):
    scenario = tmp_path / "ports.yaml"
    scenario.write_text(_ports(10, 10_000))
    r = CliRunner().invoke(cli, ["plan", "--json", str(scenario)])
    assert r.exit_code == 2, r.output[-300:]
    doc = json.loads(r.stdout)
    assert doc["exit_code"] == 2 and LIMIT in doc["error"]


def test_the_largest_scenario_allowed_still_loads():
    # REPLICAS_MAX on two nodes is the design point of the limit (see size.MAX_PLAN_ITEMS).
    lab = load_lab_from_text(_nodes(2) + "ingress: {subnet: 10.1.0.0/16}\n"
                             "services: {web: {deploy: {replicas: 10000}, ports: ['80:80']}}\n",
                             "x.yaml")
    assert len(lab.tasks) == 10_000


def test_most_replicas_is_the_boundary():
    web = Service("web", 1, (PublishedPort(80, 80),))
    api = Service("api", 1, (PublishedPort(81, 80),))
    most = size.most_replicas(3, [web, api], [], {"api": 3000}, "web", 10_000)
    assert 0 < most < 10_000
    assert size.estimate(3, [web, api], [], {"web": most, "api": 3000}).fits
    assert not size.estimate(3, [web, api], [], {"web": most + 1, "api": 3000}).fits
    assert size.most_replicas(500, [web], [], {}, "web", 10_000) == 0


@pytest.fixture
def lab(tmp_path, monkeypatch):
    store, fake = state.StateStore(tmp_path / "store"), FakeHost()
    lifecycle.up(load_lab(SCENARIOS / "three-nodes.yaml"), "three-nodes.yaml", store, "legacy",
                 host=fake.host())
    monkeypatch.setattr(common, "store", lambda: store)
    monkeypatch.setattr(common, "host", fake.host)
    return store, fake


@pytest.mark.parametrize("args, most", [
    (["web=10000", "api=3000"], "at most web=VALUE "),
    (["web=9000", "api=9000"], "at most api=VALUE "),   # web: none fits beside api=9000
    (["api=10000", "web=3"], "at most api=VALUE "),
])
def test_scale_past_the_limit_is_refused_before_placing(lab, nothing_placed_or_planned, args, most):
    store, fake = lab
    before, steps = store.load("three-nodes"), list(fake.kernel.steps)
    if "VALUE" in most:   # the boundary itself is test_most_replicas_is_the_boundary's
        wanted = {a.split("=")[0]: int(a.split("=")[1]) for a in args}
        named = most.split("at most ")[1].split("=")[0]
        most = most.replace("VALUE", str(size.most_replicas(
            3, before.model.services, [], wanted, named, 10_000)))
    r = CliRunner().invoke(cli, ["scale", "three-nodes", *args])
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("Error: SERVICE=N: this lab would plan about ")
    assert r.stderr.count("\n") == 1 and LIMIT in r.stderr and most in r.stderr, r.stderr
    assert store.load("three-nodes").model == before.model and fake.kernel.steps == steps


def test_scale_within_the_limit_still_converges(lab):
    store, _ = lab
    r = CliRunner().invoke(cli, ["scale", "three-nodes", "web=5"])
    assert r.exit_code == 0, r.output
    assert store.load("three-nodes").model.service("web").replicas == 5


def test_a_node_operation_on_a_lab_past_the_limit_is_refused():
    big = load_lab_from_text(_nodes(2) + "ingress: {subnet: 10.1.0.0/16}\n"
                             "services: {web: {deploy: {replicas: 10000}, ports: ['80:80']}}\n",
                             "x.yaml")
    converge.check_size(big, "NODE", {})            # fits: nothing raised, as it loaded
    node = type(big.nodes[0])
    bigger = type(big)(big.name, tuple(node(f"n{i}") for i in range(40)), big.services)
    with pytest.raises(BadInput, match=r"^NODE: this lab would plan about .* at most 400,000 objects"):
        converge.check_size(bigger, "NODE", {})


def test_scale_past_the_ingress_subnet_names_the_field_and_changes_nothing(lab):
    store, fake = lab
    before, steps = store.load("three-nodes"), list(fake.kernel.steps)
    r = CliRunner().invoke(cli, ["scale", "three-nodes", "web=300"])
    assert r.exit_code == 2 and r.stderr.startswith("Error: SERVICE=N: 10.0.0.0/24 has no address"), \
        r.output
    assert store.load("three-nodes").model == before.model and fake.kernel.steps == steps
