"""``netlab graph``: the plumbing of a plan as Mermaid or dot (no root)."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from netlab.cli.main import cli
from netlab.plan.build import build_plan
from netlab.plan.graph import _id, dot, mermaid
from netlab.scenario import load_lab

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def _plan(name: str):
    return build_plan(load_lab(SCENARIOS / f"{name}.yaml"))


def test_mermaid_has_a_box_per_namespace_and_every_veth():
    plan = _plan("hello-a")
    text = mermaid(plan)
    assert text.startswith("flowchart LR\n")
    assert text.count("  subgraph ") == len(plan.netns) == 10
    assert text.count("|veth|") == len(plan.veths)
    assert '["node2/ingress_sbox (nl-hello-a.node2.ingress_sbox)"]' in text
    assert '["eth0 10.0.0.3/24 10.0.0.4/32"]' in text


def test_vxlan_joins_every_pair_of_nodes_over_the_lan():
    text = mermaid(_plan("three-nodes"))
    assert text.count("-.-|VXLAN 4096 udp/4789 over the LAN|") == 3   # 3 nodes: 3 pairs


def test_dot_is_one_graph_with_a_cluster_per_namespace():
    plan = _plan("three-nodes")
    text = dot(plan)
    assert text.startswith('graph "three-nodes" {') and text.rstrip().endswith("}")
    assert len(re.findall(r"subgraph cluster_\d+ ", text)) == len(plan.netns)
    assert text.count("style=dashed") == 3
    assert text.count("{") == text.count("}")


def test_graph_cli_of_a_scenario_and_of_an_unknown_lab(tmp_path, monkeypatch):
    r = CliRunner().invoke(cli, ["graph", str(SCENARIOS / "hello-a.yaml"), "--format", "dot"])
    assert r.exit_code == 0 and r.output.startswith('graph "hello-a"')
    from netlab import state
    from netlab.cli import common
    monkeypatch.setattr(common, "store", lambda: state.StateStore(tmp_path))
    r = CliRunner().invoke(cli, ["graph", "nolab"])
    assert r.exit_code == 2 and "LAB" in r.output


def test_objects_whose_names_sanitise_alike_stay_apart():
    # Node a-1's namespace and task a.1's both sanitised to n_nl_x_a_1__eth0.
    from netlab.scenario import load_lab_from_text
    plan = build_plan(load_lab_from_text(
        "name: x\nnodes: {a-1: {role: manager}}\nservices: {a: {ports: ['80:80']}}\n", "x.yaml"))
    ends = {(b.netns, b.name) for b in plan.bridges} | {(v.netns, v.name) for v in plan.vxlans}
    ends |= {(e.netns, e.name) for v in plan.veths for e in (v.a, v.b)}
    for text, defined in ((mermaid(plan), r'^    (\w+)\["'), (dot(plan), r"^    (\w+) \[label=")):
        ids = re.findall(defined, text, re.MULTILINE)
        assert len(ids) == len(set(ids)) == len(ends)
        edges = re.findall(r"^  (\w+) (?:---|-\.-|--) .*?(\w+)(?: \[.*\])?;?$", text, re.MULTILINE)
        assert {i for edge in edges for i in edge} <= set(ids)


def _vxlan_edges(text: str) -> list[tuple[str, str, str]]:
    """The dashed (VXLAN) edges of a Mermaid diagram: (from id, label, to id)."""
    return re.findall(r"^  (\w+) -\.-\|([^|]*)\| (\w+)$", text, re.MULTILINE)


def test_east_west_joins_each_vni_across_nodes_only():
    # Two nodes, two overlays (ingress VNI 4096, backend VNI 4097): one edge per VNI,
    # never 4096 to 4097, never two devices of one node.
    edges = _vxlan_edges(mermaid(_plan("east-west")))
    ids = {net: {node: _id(f"nl-east-west.{node}.ov-{net}", "vxlan0") for node in ("node1", "node2")}
           for net in ("ingress", "backend")}
    assert sorted(edges) == sorted([
        (ids["ingress"]["node1"], "VXLAN 4096 udp/4789 over the LAN", ids["ingress"]["node2"]),
        (ids["backend"]["node1"], "VXLAN 4097 udp/4789 over the LAN", ids["backend"]["node2"]),
    ])
    assert dot(_plan("east-west")).count("style=dashed") == 2


def _many_networks(nodes: int, networks: int, replicas: int = 1) -> str:
    """A scenario of ``nodes`` nodes and ``networks`` overlays, two per service of ``replicas``."""
    names = ", ".join(f"n{i}: {{role: {'manager' if i == 0 else 'worker'}}}" for i in range(nodes))
    nets = "\n".join(f"  net{i}: {{driver: overlay}}" for i in range(networks))
    services = "\n".join(f"  s{i}: {{deploy: {{replicas: {replicas}}}, "
                         f"networks: [net{2 * i}, net{2 * i + 1}]}}"
                         for i in range(networks // 2))
    return (f"name: big\ningress: {{subnet: 172.30.0.0/16}}\nnodes: {{{names}}}\n"
            f"networks:\n{nets}\nservices:\n{services}\n")


def test_twenty_nodes_and_three_hundred_networks_draw_one_clique_per_vni():
    from netlab.scenario import load_lab_from_text
    lab = load_lab_from_text(_many_networks(20, 300, replicas=3), "big.yaml")
    plan = build_plan(lab)
    assert len({v.vni for v in plan.vxlans}) == 301           # ingress + 300 overlays
    # A user network's vxlan0 is only on the nodes running a task on it (3 each here).
    node_of = {ns.name: ns.node for ns in plan.netns}
    for i in range(150):
        want = {t.node for t in lab.tasks_of(f"s{i}")}
        for net in (f"net{2 * i}", f"net{2 * i + 1}"):
            assert {node_of[v.netns] for v in plan.vxlans
                    if v.netns.endswith(f".ov-{net}")} == want, net
    edges = _vxlan_edges(mermaid(plan))
    # each VNI: every pair of the nodes having it once (ingress: all 20)
    assert len(edges) == 20 * 19 // 2 + 300 * (3 * 2 // 2)
    ns_of = {_id(v.netns, v.name): (v.vni, v.underlay_netns) for v in plan.vxlans}
    for a, label, b in edges:
        (vni_a, node_a), (vni_b, node_b) = ns_of[a], ns_of[b]
        assert vni_a == vni_b and node_a != node_b and label.startswith(f"VXLAN {vni_a} ")
