"""``netlab trace`` of a host-mode port, pure: the path, the DNAT hop, the verdicts.

scenarios/host-mode.yaml (named "hm"): cache.1 runs on node1 and publishes 6379 in host
mode; node1 DNATs 192.168.56.11:6379 to cache.1's gwbridge address 172.18.0.4:6379.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from netlab import ipam
from netlab.kernel.iptables import RuleCounter
from netlab.plan import names
from netlab.plan.build import build_plan
from netlab.scenario import load_lab
from netlab.trace.capture import Frame
from netlab.trace.correlate import Observation, correlate
from netlab.trace.evidence import CtEntry, Flow, NsSnapshot
from netlab.trace.facts import lab_facts
from netlab.trace.model import Request
from netlab.trace.points import trace_path
from netlab.trace.probe import ProbeResult

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "host-mode.yaml"
C, N1, TASK = "192.168.56.2:40000", "192.168.56.11:6379", "172.18.0.4:6379"
NS_N1, NS_N2 = names.node_ns("hm", "node1"), names.node_ns("hm", "node2")
NS_CACHE = names.task_ns("hm", "cache.1")
HOST_DNAT = ('-A DOCKER ! -i docker_gwbridge -p tcp -m tcp --dport 6379 -m comment --comment '
             '"netlab:hm:task/cache.1:host/6379" -j DNAT --to-destination 172.18.0.4:6379')
HOST_ACCEPT = ('-A DOCKER -d 172.18.0.4/32 ! -i docker_gwbridge -o docker_gwbridge -p tcp -m tcp '
               '--dport 6379 -m comment --comment "netlab:hm:task/cache.1:host/6379" -j ACCEPT')
RETURN = '-A DOCKER-INGRESS -m comment --comment "netlab:hm:node/node2:ingress" -j RETURN'


@pytest.fixture(scope="module")
def hm():
    lab = load_lab(SCENARIO, name_override="hm")
    plan = build_plan(lab)
    return lab, plan, lab_facts(lab, ipam.allocate(lab), plan)


def flow(src: str, dst: str) -> Flow:
    (sip, sp), (dip, dp) = src.rsplit(":", 1), dst.rsplit(":", 1)
    return Flow("tcp", sip, int(sp), dip, int(dp))


def rc(table: str, chain: str, index: int, text: str, packets: int = 1) -> RuleCounter:
    return RuleCounter(table, chain, index, text, text.split(" -j ")[1].split()[0], packets, 60)


def observe(facts, points, steps, grown, outcome, node, conntrack=None, body=None,
            service="cache") -> Observation:
    """Frames 1 ms apart, each outgoing one addressed to the far end's MAC."""
    frames = []
    for i, (label, out, src, dst, flags) in enumerate(steps):
        p = points[label]
        (sip, sp), (dip, dp) = src.rsplit(":", 1), dst.rsplit(":", 1)
        mac = facts.peer_mac.get((p.netns, p.iface), "02:42:00:00:00:02") if out else "02:42:00:00:00:02"
        pkt = (Ether(src="02:42:00:00:00:01", dst=mac) / IP(src=sip, dst=dip, id=1 if flags == "S" else 2)
               / TCP(sport=int(sp), dport=int(dp), flags=flags, seq=1000 if flags == "S" else 5000))
        frames.append(Frame(p, 100.0 + i / 1000, out, bytes(pkt)))
    conntrack = conntrack or {}
    nss = set(grown) | set(conntrack)
    before = {ns: NsSnapshot(tuple(rc(c.table, c.chain, c.index, c.text, 0) for c in grown.get(ns, [])))
              for ns in nss}
    after = {ns: NsSnapshot(tuple(grown.get(ns, [])), conntrack.get(ns, ()), (), ()) for ns in nss}
    ip = "192.168.56.11" if node == "node1" else "192.168.56.12"
    request = Request("hm", f"{node}:6379", node, f"{ip}:6379", "tcp", C, "client", service)
    probe = ProbeResult(outcome, ("192.168.56.2", 40000), body, None if body else outcome, 3.0)
    return Observation(request, flow(C, f"{ip}:6379"), probe, tuple(frames), before, after,
                       tuple(points))


def test_host_mode_path_is_the_node_and_its_task_not_the_mesh(hm):
    lab, plan, _ = hm
    path = trace_path(lab, plan, "node1", 6379, "tcp")
    assert path.service is not None and path.service.name == "cache"
    assert path.port is not None and path.port.mode == "host"
    targets = {p.target for p in path.points}
    assert targets == {"client", "lan", "node1", "cache.1"}
    # On the node without the task, nothing publishes 6379: the path is the ingress one.
    other = trace_path(lab, plan, "node2", 6379, "tcp")
    assert other.service is None and "cache.1" not in {p.target for p in other.points}


def test_host_mode_request_is_dnated_on_the_node_and_keeps_the_client(hm):
    lab, plan, facts = hm
    points = {p.label: p for p in trace_path(lab, plan, "node1", 6379, "tcp").points}
    veth = next(label for label, p in points.items()
                if p.target == "node1" and facts.peer.get((p.netns, p.iface)) == "cache.1/eth1")
    steps = [(lbl, out, C, N1, "S") for lbl, out in
             (("client/eth0", True), ("lan/veth-client", False), ("lan/veth-node1", True),
              ("node1/eth0", False))]
    steps += [(veth, True, C, TASK, "S"), ("cache.1/eth1", False, C, TASK, "S")]
    steps += [("cache.1/eth1", True, TASK, C, "SA"), (veth, False, TASK, C, "SA")]
    steps += [(lbl, out, N1, C, "SA") for lbl, out in
              (("node1/eth0", True), ("lan/veth-node1", False), ("lan/veth-client", True),
               ("client/eth0", False))]
    grown = {NS_N1: [rc("nat", "DOCKER", 2, HOST_DNAT), rc("filter", "DOCKER", 1, HOST_ACCEPT)]}
    conntrack = {NS_N1: (CtEntry(flow(C, N1), flow(TASK, C)),),
                 NS_CACHE: (CtEntry(flow(C, TASK), flow(TASK, C)),)}
    body = {"task": "cache.1", "node": "node1", "task_ip": "10.0.0.8", "client": "192.168.56.2"}
    trace = correlate(observe(facts, points, steps, grown, "answered", "node1", conntrack, body),
                      facts)
    assert trace.verdict == "delivered"
    assert trace.reason == "cache.1 on node1 answered; it saw the client as 192.168.56.2"
    events = [h.event for h in trace.hops]
    assert "ipvs" not in events and "snat" not in events and "redirect" not in events
    dnat = [h for h in trace.hops if h.event == "dnat"]
    assert len(dnat) == 1 and dnat[0].netns == "node1" and dnat[0].rule == HOST_DNAT
    assert dnat[0].detail.endswith("DNAT → 172.18.0.4:6379")
    assert dnat[0].object == "task/cache.1:host/6379"
    assert "deliver" in events
    accept = [h for h in trace.hops if h.rule == HOST_ACCEPT]
    assert accept and accept[0].netns == "node1"


def test_node_without_the_task_refuses_and_says_where_the_port_is(hm):
    lab, plan, facts = hm
    points = {p.label: p for p in trace_path(lab, plan, "node2", 6379, "tcp").points}
    n2 = "192.168.56.12:6379"
    steps = [(lbl, out, C, n2, "S") for lbl, out in
             (("client/eth0", True), ("lan/veth-client", False), ("lan/veth-node2", True),
              ("node2/eth0", False))]
    steps += [(lbl, out, n2, C, "RA") for lbl, out in
              (("node2/eth0", True), ("lan/veth-node2", False), ("lan/veth-client", True),
               ("client/eth0", False))]
    grown = {NS_N2: [rc("nat", "DOCKER-INGRESS", 2, RETURN)]}
    trace = correlate(observe(facts, points, steps, grown, "refused", "node2", service=None), facts)
    assert trace.verdict == "refused"
    assert trace.reason.startswith("cache publishes tcp/6379 in host mode, only on the nodes "
                                   "running its tasks (node1); node2 runs none, so no DNAT matched")
    assert "nothing listens on 192.168.56.12:6379" in trace.reason
