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
        "-A POSTROUTING -o docker_gwbridge -m addrtype --src-type LOCAL -m comment --comment \"netlab:hello-a:node/node1:ingress\" -j MASQUERADE",
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
    assert all(ns.startswith("nl-hello-a.") for ns in owned)


def test_three_nodes_every_node_publishes_every_port():
    plan = build_plan(load_lab(REPO / "scenarios" / "three-nodes.yaml"))
    for node in ("node1", "node2", "node3"):
        host = plan.namespace(node).name
        dnat = [r for r in plan.rules_in(host, "nat") if r.target.name == "DNAT"]
        assert sorted(r.matches[0].options[0][1] for r in dnat) == ["8080", "9000", "9053"]
        sbox = plan.namespace(f"{node}/ingress_sbox").name
        marks = {s.fwmark: len(s.dests) for s in plan.ipvs if s.netns == sbox}
        assert marks == {0x100: 3, 0x101: 1}


# A Docker 20.10 node after `docker swarm init` and
# `docker service create --replicas 2 -p 5000:3000 …`, as `iptables-save`
# prints it there, with docker0's lines left out (netlab has no docker0).
# Written by hand from moby's bridge driver and service_linux.go (see
# shared/reference/swarm-ingress-and-kube-proxy.md §1.1), not from netlab.
DOCKER_20_10_NODE = {
    "nat": """*nat
:PREROUTING ACCEPT
:INPUT ACCEPT
:OUTPUT ACCEPT
:POSTROUTING ACCEPT
:DOCKER -
:DOCKER-INGRESS -
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER-INGRESS
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT -m addrtype --dst-type LOCAL -j DOCKER-INGRESS
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -o docker_gwbridge -m addrtype --src-type LOCAL -j MASQUERADE
-A POSTROUTING -s 172.18.0.0/16 ! -o docker_gwbridge -j MASQUERADE
-A DOCKER -i docker_gwbridge -j RETURN
-A DOCKER-INGRESS -p tcp -m tcp --dport 5000 -j DNAT --to-destination 172.18.0.2:5000
-A DOCKER-INGRESS -j RETURN
COMMIT""",
    "filter": """*filter
:INPUT ACCEPT
:FORWARD DROP
:OUTPUT ACCEPT
:DOCKER -
:DOCKER-INGRESS -
:DOCKER-ISOLATION-STAGE-1 -
:DOCKER-ISOLATION-STAGE-2 -
:DOCKER-USER -
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-INGRESS
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o docker_gwbridge -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker_gwbridge -j DOCKER
-A FORWARD -i docker_gwbridge ! -o docker_gwbridge -j ACCEPT
-A FORWARD -i docker_gwbridge -o docker_gwbridge -j DROP
-A DOCKER-INGRESS -p tcp -m tcp --dport 5000 -j ACCEPT
-A DOCKER-INGRESS -p tcp -m state --state RELATED,ESTABLISHED -m tcp --sport 5000 -j ACCEPT
-A DOCKER-INGRESS -j RETURN
-A DOCKER-ISOLATION-STAGE-1 -i docker_gwbridge ! -o docker_gwbridge -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o docker_gwbridge -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -j RETURN
COMMIT""",
}


def without_comments(save_text: str) -> str:
    """Save text with netlab's ``-m comment --comment "…"`` taken out, as a comparison
    with a real Swarm does."""
    import re
    return re.sub(r' -m comment --comment "(?:[^"\\]|\\.)*"', "", save_text)


@pytest.mark.parametrize("node", ["node1", "node2"])
def test_seed_node_holds_what_docker_20_10_holds_in_its_order(node):
    from netlab.plan.render import iptables_save
    plan = build_plan(load_lab(REPO / "scenarios" / "hello-a.yaml"))
    host = plan.namespace(node).name
    assert plan.tables_in(host) == ("nat", "filter")
    for table, expected in DOCKER_20_10_NODE.items():
        assert without_comments(iptables_save(plan, host, table)) == expected, table


def test_seed_sysctls_and_addresses_are_dockers():
    plan = build_plan(load_lab(REPO / "scenarios" / "hello-a.yaml"))
    by_target = {ns.target: ns.name for ns in plan.netns}
    sysctls = {(s.netns, s.key): s.value for s in plan.sysctls}
    for target in ("node1/ingress_sbox", "node1/ov-ingress", "hello-a.1"):
        assert sysctls[(by_target[target], "net.ipv6.conf.all.disable_ipv6")] == "1", target
        assert sysctls[(by_target[target], "net.ipv6.conf.default.disable_ipv6")] == "1", target
    host = by_target["node1"]
    assert sysctls[(host, "net.bridge.bridge-nf-call-iptables")] == "1"
    assert sysctls[(host, "net.ipv4.conf.docker_gwbridge.route_localnet")] == "1"
    sbox = by_target["node1/ingress_sbox"]
    for key, value in (("net.ipv4.vs.conntrack", "1"), ("net.ipv4.vs.conn_reuse_mode", "0"),
                       ("net.ipv4.vs.expire_nodest_conn", "1"),
                       ("net.ipv4.vs.expire_quiescent_template", "1")):
        assert sysctls[(sbox, key)] == value, key
    brd = {(a.netns, a.cidr): a.broadcast for a in plan.addresses}
    assert brd[(sbox, "10.0.0.2/24")] == "10.0.0.255"
    assert brd[(sbox, "172.18.0.2/16")] == "172.18.255.255"
    assert brd[(sbox, "10.0.0.4/32")] is None      # the VIP, a /32 alias


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
    assert {k: getattr(counted, k).walks for k in kinds} == dict.fromkeys(kinds, 1)


def test_items_in_holds_what_filtering_by_netns_finds():
    plan = build_plan(load_lab(REPO / "scenarios" / "three-nodes.yaml"))
    for ns in plan.netns:
        items = plan.items_in(ns.name)
        assert items.rules == tuple(r for r in plan.rules if r.netns == ns.name)
        assert items.addresses == tuple(a for a in plan.addresses if a.netns == ns.name)
        assert items.veths == tuple(v for v in plan.veths if ns.name in (v.a.netns, v.b.netns))
        assert items.user_chains == tuple(c for c in plan.user_chains if c[0] == ns.name)
    assert plan.items_in("nl-no-such-netns").rules == ()


# The same node after also `docker service create --name cache --publish
# mode=host,published=6379,target=6379 …` put cache.1 on it (gwbridge address
# 172.18.0.4, after hello-a.1's .3): the bridge driver's port mapping, written by
# hand from libnetwork 20.10 iptables.ChainInfo.Forward (DNAT and the filter
# ACCEPT appended to DOCKER, the hairpin MASQUERADE appended to POSTROUTING).
HOST_MODE_NAT = DOCKER_20_10_NODE["nat"].replace(
    "-A POSTROUTING -s 172.18.0.0/16 ! -o docker_gwbridge -j MASQUERADE\n",
    "-A POSTROUTING -s 172.18.0.0/16 ! -o docker_gwbridge -j MASQUERADE\n"
    "-A POSTROUTING -s 172.18.0.4/32 -d 172.18.0.4/32 -p tcp -m tcp --dport 6379 -j MASQUERADE\n",
).replace(
    "-A DOCKER -i docker_gwbridge -j RETURN\n",
    "-A DOCKER -i docker_gwbridge -j RETURN\n"
    "-A DOCKER ! -i docker_gwbridge -p tcp -m tcp --dport 6379 -j DNAT --to-destination 172.18.0.4:6379\n",
)
HOST_MODE_FILTER = DOCKER_20_10_NODE["filter"].replace(
    "-A DOCKER-INGRESS -p tcp -m tcp --dport 5000 -j ACCEPT\n",
    "-A DOCKER -d 172.18.0.4/32 ! -i docker_gwbridge -o docker_gwbridge -p tcp -m tcp --dport 6379 -j ACCEPT\n"
    "-A DOCKER-INGRESS -p tcp -m tcp --dport 5000 -j ACCEPT\n",
)


def test_host_mode_port_is_the_bridge_drivers_mapping_on_the_tasks_node_only():
    from netlab.plan.render import iptables_save
    plan = build_plan(load_lab(REPO / "scenarios" / "host-mode.yaml"))
    lab = load_lab(REPO / "scenarios" / "host-mode.yaml")
    assert [(t.name, t.node) for t in lab.tasks] == [
        ("hello-a.1", "node1"), ("hello-a.2", "node2"), ("cache.1", "node1")]
    assert DOCKER_20_10_NODE["nat"] != HOST_MODE_NAT and DOCKER_20_10_NODE["filter"] != HOST_MODE_FILTER
    node1, node2 = plan.namespace("node1").name, plan.namespace("node2").name
    assert without_comments(iptables_save(plan, node1, "nat")) == HOST_MODE_NAT
    assert without_comments(iptables_save(plan, node1, "filter")) == HOST_MODE_FILTER
    # node2 runs no cache task: exactly the ingress-only node, nothing on 6379.
    for table, expected in DOCKER_20_10_NODE.items():
        assert without_comments(iptables_save(plan, node2, table)) == expected, table
    # Host mode needs no VIP, no IPVS service and no REDIRECT for cache.
    assert "cache" not in {s.service for s in plan.ipvs}
    cache = plan.namespace("cache.1").name
    assert not [r for r in plan.rules_in(cache) if r.target.name in ("REDIRECT", "ACCEPT")]
    assert {r.comment for r in plan.rules if "6379" in str(r.matches)} == {
        "netlab:host-mode:task/cache.1:host/6379"}


def test_host_mode_udp_maps_published_to_target_in_the_dnat():
    from netlab.model import Lab, Node, PublishedPort, Service, place_tasks
    nodes = (Node("node1", "manager"),)
    services = (Service("dns", 1, (PublishedPort(53, 5353, "udp", "host"),)),)
    plan = build_plan(Lab("u", nodes, services, tasks=place_tasks(nodes, services)))
    from netlab.plan.render import iptables_save
    nat = without_comments(iptables_save(plan, plan.namespace("node1").name, "nat"))
    assert ("-A DOCKER ! -i docker_gwbridge -p udp -m udp --dport 53 -j DNAT "
            "--to-destination 172.18.0.3:5353") in nat
    assert "-A POSTROUTING -s 172.18.0.3/32 -d 172.18.0.3/32 -p udp -m udp --dport 5353 -j MASQUERADE" in nat


IPV6_OFF = ("net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6")


@pytest.mark.parametrize("scenario", ["hello-a", "east-west"])
def test_ipv6_is_off_in_exactly_the_namespaces_docker_makes(scenario):
    # libnetwork 20.10's osl NewSandbox / GetSandboxForExternalKey write
    # all.disable_ipv6=1 in every sandbox, overlay and container namespace it makes
    # (the kernel copies it to default); a node's own namespace keeps the kernel's 0.
    plan = build_plan(load_lab(REPO / "scenarios" / f"{scenario}.yaml"))
    sysctls = {(s.netns, s.key): s.value for s in plan.sysctls}
    for ns in plan.netns:
        off = {k: sysctls.get((ns.name, k)) for k in IPV6_OFF}
        if ns.role in ("sandbox", "overlay", "task"):
            assert off == dict.fromkeys(IPV6_OFF, "1"), ns.target
        else:
            assert off == dict.fromkeys(IPV6_OFF), ns.target
    # all before default: the write to all is Docker's, default follows it
    keys = [s.key for s in plan.sysctls if s.key in IPV6_OFF]
    assert keys[:2] == list(IPV6_OFF)


def test_ipv6_sysctls_match_a_recorded_real_node():
    # tests/fixtures/real-swarm: node1 of a real two-node Swarm running the seed
    import json
    real = REPO / "tests" / "fixtures" / "real-swarm" / "netns"
    plan = build_plan(load_lab(REPO / "scenarios" / "hello-a.yaml"))
    sysctls = {(s.netns, s.key): s.value for s in plan.sysctls}
    for target, recorded in (("node1/ingress_sbox", "ingress_sbox"),
                             ("node1/ov-ingress", "1-jerclax3m4"),
                             ("hello-a.1", "f0a0b60cc188")):
        seen = json.loads((real / recorded / "sysctls.json").read_text())
        ns = plan.namespace(target).name
        assert {k: sysctls[(ns, k)] for k in IPV6_OFF} == {k: seen[k] for k in IPV6_OFF}, target
    host = json.loads((real / "host" / "sysctls.json").read_text())
    assert {host[k] for k in IPV6_OFF} == {"0"}
    assert not any((plan.namespace("node1").name, k) in sysctls for k in IPV6_OFF)
