"""``swarm export`` and ``swarm diff`` against a RECORDED real Swarm (no root, no Docker).

tests/fixtures/real-swarm-one-node is a one-node Swarm (Debian's Docker
20.10 in `netlab vm`, hostname node1) running the seed, `docker service
create --name hello-a --replicas 2 -p 5000:3000`: the Engine's JSON and every
namespace of the node as the standard tools print it. So the known
differences are checked against what Docker really leaves, not guessed:
diffing the node against its own export must find nothing but the known
ones, and against hello-a.yaml (two nodes) exactly what a second node adds.

Regenerate the golden reports after an intended change with
``NETLAB_REGEN_GOLDEN=1 pytest tests/unit`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netlab.cli.swarm import render
from netlab.docker.adopt import adopt
from netlab.docker.export import export
from netlab.docker.nodediff import compare_node
from netlab.docker.snapshot import HOST_NETNS, read_snapshot
from netlab.plan.build import build_plan
from netlab.scenario import load_lab, load_lab_from_text
from tests.unit.recorded import RecordedEngine, netns_files, recorded_seen

REPO = Path(__file__).resolve().parents[2]
ONE_NODE = REPO / "tests" / "fixtures" / "real-swarm-one-node"
GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(scope="module")
def snap():
    return read_snapshot(RecordedEngine(ONE_NODE), lambda: netns_files(ONE_NODE))


@pytest.fixture(scope="module")
def seen(snap):
    out = {}
    for sb in snap.sandboxes:
        if sb.target:
            file = "_root" if sb.path == HOST_NETNS else Path(sb.path).name
            out[sb.target] = recorded_seen(ONE_NODE, file, sb.target)
    return out


def _diff(lab, snap, seen):
    adopted = adopt(lab, snap, "node1", seen)
    return compare_node(build_plan(adopted.lab, adopted.allocations), "node1", snap, seen,
                        adopted.notes, adopted.owners())


def test_the_recorded_node_reads_as_the_seed(snap):
    assert [(n.name, n.role, n.state) for n in snap.nodes] == [("node1", "manager", "ready")]
    (svc,) = snap.services
    assert (svc.name, svc.mode, svc.replicas, svc.endpoint_mode) == ("hello-a", "replicated", 2, "vip")
    assert [(p.published, p.target, p.protocol, p.mode) for p in svc.ports] == [
        (5000, 3000, "tcp", "ingress")]
    assert [t.name for t in snap.tasks] == ["hello-a.1", "hello-a.2"]
    assert {t.node for t in snap.tasks} == {"node1"}
    targets = sorted(sb.target for sb in snap.sandboxes)
    assert targets == ["hello-a.1", "hello-a.2", "node1", "node1/ingress_sbox", "node1/ov-ingress"]
    ingress = snap.network("ingress")
    assert (ingress.subnet, ingress.vni, ingress.ingress) == ("10.0.0.0/24", 4096, True)


def test_export_of_the_recorded_swarm_is_the_seed_on_one_node(snap):
    out = export(snap)
    seed = load_lab(REPO / "scenarios" / "hello-a.yaml")
    lab = load_lab_from_text(out.text, "export", name_override=seed.name)
    assert lab.services == seed.services
    assert lab.nodes == seed.nodes[:1]
    assert (lab.ingress, lab.underlay, lab.networks) == (seed.ingress, seed.underlay, seed.networks)


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("NETLAB_REGEN_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


def test_the_real_node_equals_its_export_but_for_the_known(snap, seen):
    result = _diff(export(snap).lab, snap, seen)
    assert result.differences == (), render(result, "export")
    whys = {k.why for k in result.known}
    assert len(whys) == 3, whys      # LAN, docker0, the sandbox's DNS rules: each said why
    assert {c.target for c in result.namespaces} == {
        "node1", "node1/ingress_sbox", "node1/ov-ingress", "hello-a.1", "hello-a.2"}
    _golden("swarm-diff-one-node-export.txt", render(result, "its export") + "\n")


def test_the_real_node_against_the_two_node_seed_differs_by_node2(snap, seen):
    """hello-a.yaml has a node2 the recorded Swarm lacks: node1's overlay misses the
    neighbour and FDB entries of node2's ingress_sbox, nothing else."""
    result = _diff(load_lab(REPO / "scenarios" / "hello-a.yaml"), snap, seen)
    assert {(x.target, x.kind) for x in result.differences} == {
        ("node1/ov-ingress", "neigh"), ("node1/ov-ingress", "fdb")}
    assert all(x.real == "absent" for x in result.differences)
    _golden("swarm-diff-one-node-seed.txt", render(result, "scenarios/hello-a.yaml") + "\n")


# -- the two-node Swarm of scripts/capture-real-swarm.py (tests/fixtures/real-swarm) -----------

@pytest.fixture(scope="module")
def two():
    from tests.unit.recorded import TWO_NODES, CapturedEngine, captured_netns_files, captured_seen
    snap = read_snapshot(CapturedEngine(TWO_NODES), lambda: captured_netns_files(TWO_NODES))
    seen = {sb.target: captured_seen(TWO_NODES, "host" if sb.path == HOST_NETNS
                                     else Path(sb.path).name, sb.target)
            for sb in snap.sandboxes if sb.target}
    return snap, seen


def test_export_of_the_two_node_swarm_equals_hello_a_in_meaning(two):
    """In meaning: the models are equal once the lab's name is the same; comments and the
    name are all that is ignored (nodes, roles, services, ports, networks, ingress,
    underlay and netlab's placement of the tasks are compared)."""
    snap, _ = two
    out = export(snap)
    seed = load_lab(REPO / "scenarios" / "hello-a.yaml")
    assert load_lab_from_text(out.text, "export", name_override=seed.name) == seed
    assert out.warnings == ()


def test_node1_of_the_real_two_node_swarm_equals_the_seeds_plan(two):
    """The real node1, VXLAN peers towards the real node2 included, against node1 of
    hello-a.yaml: no difference; only the three known kinds are set aside."""
    snap, seen = two
    result = _diff(load_lab(REPO / "scenarios" / "hello-a.yaml"), snap, seen)
    assert result.differences == (), render(result, "hello-a")
    assert {c.target for c in result.namespaces} == {
        "node1", "node1/ingress_sbox", "node1/ov-ingress", "hello-a.1"}
    ov = seen["node1/ov-ingress"]
    assert {(f.mac, f.dst) for f in ov.fdb} >= {("02:42:0a:00:00:06", "192.168.77.2")}
    _golden("swarm-diff-two-node-seed.txt", render(result, "scenarios/hello-a.yaml") + "\n")
