"""Golden plans: scenario → the exact iptables-save and ipvsadm text (no root).

Regenerate after an intended change with ``NETLAB_REGEN_GOLDEN=1 pytest tests/unit``
and review the diff: it is the change in what the kernel will hold.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from netlab.plan.build import build_plan
from netlab.plan.render import plan_text
from netlab.scenario import load_lab

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("scenario", ["hello-a", "three-nodes"])
def test_plan_matches_golden_file(scenario):
    text = plan_text(build_plan(load_lab(REPO / "scenarios" / f"{scenario}.yaml")))
    golden = GOLDEN / f"{scenario}.plan.txt"
    if os.environ.get("NETLAB_REGEN_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_seed_plan_holds_swarms_rules():
    plan = build_plan(load_lab(REPO / "scenarios" / "hello-a.yaml"))
    text = plan_text(plan)
    for line in (
        "-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment \"netlab:hello-a:node/node2:ingress\" -j DOCKER-INGRESS",
        "-A DOCKER-INGRESS -p tcp -m tcp --dport 5000 -m comment --comment \"netlab:hello-a:svc/hello-a:publish/5000\" -j DNAT --to-destination 172.18.0.2:5000",
        "-A POSTROUTING -o docker_gwbridge -m addrtype --src-type LOCAL -m comment --comment \"netlab:hello-a:node/node1:gwbridge\" -j MASQUERADE",
        "-A PREROUTING -p tcp -m tcp --dport 5000 -m comment --comment \"netlab:hello-a:svc/hello-a:publish/5000\" -j MARK --set-xmark 0x100/0xffffffff",
        "-A INPUT -d 10.0.0.4/32 -m comment --comment \"netlab:hello-a:svc/hello-a:vip\" -j MARK --set-xmark 0x100/0xffffffff",
        "-A POSTROUTING -d 10.0.0.0/24 -m ipvs --ipvs -m comment --comment \"netlab:hello-a:node/node2:ingress_sbox\" -j SNAT --to-source 10.0.0.3",
        "-A PREROUTING -d 10.0.0.5/32 -p tcp -m tcp --dport 5000 -m comment --comment \"netlab:hello-a:task/hello-a.1:publish/5000\" -j REDIRECT --to-ports 3000",
        "-A INPUT -d 10.0.0.5/32 -p tcp -m tcp --dport 3000 -m conntrack --ctstate NEW,ESTABLISHED -m comment --comment \"netlab:hello-a:task/hello-a.1:publish/5000\" -j ACCEPT",
        "FWM  256 rr",
        "  -> 10.0.0.5:0                   Masq    1      0          0",
        "link vxlan0 type vxlan id 4096 dstport 4789 mtu 1450 master br0",
        "fdb 02:42:0a:00:00:06 dev vxlan0 dst 192.168.56.12 self permanent",
    ):
        assert line in text, line
    # Every rule names the scenario object behind it.
    assert all(r.comment.startswith("netlab:hello-a:") for r in plan.rules)
    # Nothing is planned outside the lab's namespaces.
    owned = {ns.name for ns in plan.netns}
    assert {r.netns for r in plan.rules} <= owned
    assert {v.a.netns for v in plan.veths} | {v.b.netns for v in plan.veths} <= owned
    assert all(ns.startswith("nl-hello-a-") for ns in owned)


def test_three_nodes_every_node_publishes_every_port():
    plan = build_plan(load_lab(REPO / "scenarios" / "three-nodes.yaml"))
    for node in ("node1", "node2", "node3"):
        host = plan.namespace(node).name
        dnat = [r for r in plan.rules_in(host, "nat") if r.target.name == "DNAT"]
        assert sorted(r.matches[0].options[0][1] for r in dnat) == ["8080", "9000", "9053"]
        sbox = plan.namespace(f"{node}/ingress_sbox").name
        marks = {s.fwmark: len(s.dests) for s in plan.ipvs if s.netns == sbox}
        assert marks == {0x100: 3, 0x101: 1}


class _Counted(tuple):
    """A tuple that counts how often it is walked."""

    walks = 0

    def __iter__(self):
        self.walks += 1
        return super().__iter__()


def test_rendering_walks_each_kind_of_item_once_not_once_per_namespace():
    # plan_text filtered every kind by netns for each netns: 10,000 replicas took 446 s.
    plan = build_plan(load_lab(REPO / "scenarios" / "three-nodes.yaml"))
    kinds = ("bridges", "veths", "vxlans", "addresses", "routes", "neighbours", "fdb", "sysctls",
             "user_chains", "policies", "rules", "ipvs")
    counted = dataclasses.replace(plan, **{k: _Counted(getattr(plan, k)) for k in kinds})
    assert plan_text(counted) == plan_text(plan)
    assert len(plan.netns) == 15
    assert {k: getattr(counted, k).walks for k in kinds} == {k: 1 for k in kinds}


def test_items_in_holds_what_filtering_by_netns_finds():
    plan = build_plan(load_lab(REPO / "scenarios" / "three-nodes.yaml"))
    for ns in plan.netns:
        items = plan.items_in(ns.name)
        assert items.rules == tuple(r for r in plan.rules if r.netns == ns.name)
        assert items.addresses == tuple(a for a in plan.addresses if a.netns == ns.name)
        assert items.veths == tuple(v for v in plan.veths if ns.name in (v.a.netns, v.b.netns))
        assert items.user_chains == tuple(c for c in plan.user_chains if c[0] == ns.name)
    assert plan.items_in("nl-no-such-netns").rules == ()
