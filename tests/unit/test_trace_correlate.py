"""``netlab trace`` correlation, pure: rule text, evidence parsing, flow following, hops, verdicts.

Frames are built with scapy for the seed lab (scenarios/hello-a.yaml, named "vt"): a client
request to node2:5000 that IPVS in node2's ingress_sbox sends to hello-a.1 on node1 over VXLAN.
"""

from __future__ import annotations

import functools

from collections.abc import Mapping
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN

from netlab import ipam
from netlab.kernel.iptables import RuleCounter
from netlab.kernel.procfs import parse_ip_vs_conn
from netlab.plan import names
from netlab.plan.build import build_plan
from netlab.scenario import load_lab, load_lab_from_text
from netlab.trace import rules
from netlab.trace.capture import Frame
from netlab.trace.correlate import Observation, correlate
from netlab.trace.evidence import CtEntry, Flow, IpvsConn, NsSnapshot, counter_deltas
from netlab.trace.facts import lab_facts
from netlab.trace.flows import decode, follow
from netlab.trace.model import EVIDENCE_KINDS, Request
from netlab.trace.points import trace_path
from netlab.trace.probe import ProbeResult

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "hello-a.yaml"
C, N2, GW = "192.168.56.2:40000", "192.168.56.12:5000", "172.18.0.2:5000"
OV, T1, T1_APP, T2 = "10.0.0.3:40000", "10.0.0.5:5000", "10.0.0.5:3000", "10.0.0.6:5000"
MAC_SBOX2, MAC_T1, MAC_T2 = "02:42:0a:00:00:03", "02:42:0a:00:00:05", "02:42:0a:00:00:06"
NODE1_LAN, NODE2_LAN = "192.168.56.11", "192.168.56.12"
NS_N2, NS_SBOX, NS_OV2 = (names.node_ns("vt", "node2"), names.sandbox_ns("vt", "node2"),
                          names.overlay_ns("vt", "node2"))
NS_T1, NS_T2 = names.task_ns("vt", "hello-a.1"), names.task_ns("vt", "hello-a.2")

# Rule texts as the golden plan programs them (tests/unit/golden/hello-a.plan.txt).
JUMP = ('-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment '
        '"netlab:hello-a:node/node2:ingress" -j DOCKER-INGRESS')
DNAT = ('-A DOCKER-INGRESS -p tcp -m tcp --dport 5000 -m comment --comment '
        '"netlab:hello-a:svc/hello-a:publish/5000" -j DNAT --to-destination 172.18.0.2:5000')
RETURN = '-A DOCKER-INGRESS -m comment --comment "netlab:hello-a:node/node2:ingress" -j RETURN'
MARK = ('-A PREROUTING -p tcp -m tcp --dport 5000 -m comment --comment '
        '"netlab:hello-a:svc/hello-a:publish/5000" -j MARK --set-xmark 0x100/0xffffffff')
SNAT = ('-A POSTROUTING -d 10.0.0.0/24 -m ipvs --ipvs -m comment --comment '
        '"netlab:hello-a:node/node2:ingress_sbox" -j SNAT --to-source 10.0.0.3')
REDIRECT = ('-A PREROUTING -d {ip}/32 -p tcp -m tcp --dport 5000 -m comment --comment '
            '"netlab:hello-a:task/{task}:publish/5000" -j REDIRECT --to-ports 3000')
DROP_T1 = ('-A INPUT -d 10.0.0.5/32 -p tcp -m comment --comment '
           '"netlab:hello-a:task/hello-a.1:ingress" -j DROP')


# -- helpers ---------------------------------------------------------------------------------
def flow(src: str, dst: str, proto: str = "tcp") -> Flow:
    (sip, sp), (dip, dp) = src.rsplit(":", 1), dst.rsplit(":", 1)
    return Flow(proto, sip, int(sp), dip, int(dp))


def rc(table: str, chain: str, index: int, text: str, packets: int = 1) -> RuleCounter:
    target = text.split(" -j ")[1].split()[0]
    return RuleCounter(table, chain, index, text, target, packets, packets * 60)


def ct(orig: tuple[str, str], reply: tuple[str, str]) -> CtEntry:
    return CtEntry(flow(*orig), flow(*reply))


def tcp(src: str, dst: str, flags: str = "S", smac: str = "02:42:00:00:00:01",
        dmac: str = "02:42:00:00:00:02") -> Ether:   # PLACEHOLDER_DMAC: see addressed()
    """The request's SYN (ip id 1) or the reply's SYN-ACK/RST (ip id 2) as it is at one point."""
    (sip, sp), (dip, dp) = src.rsplit(":", 1), dst.rsplit(":", 1)
    seq, ipid = (1000, 1) if flags == "S" else (5000, 2)
    return (Ether(src=smac, dst=dmac) / IP(src=sip, dst=dip, id=ipid)
            / TCP(sport=int(sp), dport=int(dp), flags=flags, seq=seq))


def vxlan(outer_src: str, outer_dst: str, inner: Ether, sport: int = 44000, port: int = 4789):
    return (Ether(dst=PLACEHOLDER_DMAC) / IP(src=outer_src, dst=outer_dst) / UDP(sport=sport, dport=port)
            / VXLAN(vni=4096) / inner)


def along(pkt, *where: str) -> list[tuple[str, bool, Ether]]:
    """The same packet at several points: ">node2/eth0" outgoing, "<node2/eth0" incoming."""
    return [(w[1:], w[0] == ">", pkt) for w in where]


@pytest.fixture(scope="module")
def seed():
    lab = load_lab(SCENARIO, name_override="vt")
    plan = build_plan(lab)
    points = {p.label: p for p in trace_path(lab, plan, "node2", 5000, "tcp").points}
    return lab_facts(lab, ipam.allocate(lab), plan), points


PLACEHOLDER_DMAC = "02:42:00:00:00:02"


@functools.cache
def _peer_macs() -> dict[tuple[str, str], str]:
    lab = load_lab(SCENARIO, name_override="vt")
    return lab_facts(lab, ipam.allocate(lab), build_plan(lab)).peer_mac


def addressed(point, outgoing: bool, pkt: Ether) -> Ether:
    """The frame as the wire has it: one leaving a port towards an endpoint is addressed
    to that endpoint's MAC (tcp()'s placeholder destination is replaced)."""
    mac = _peer_macs().get((point.netns, point.iface))
    if outgoing and mac and pkt.dst == PLACEHOLDER_DMAC:
        pkt = pkt.copy()
        pkt.dst = mac
    return pkt


def observe(points, steps, grown: dict[str, list[RuleCounter]], outcome: str, *,
            conntrack: Mapping[str, tuple[CtEntry, ...]] = {},
            ipvs: Mapping[str, tuple[IpvsConn, ...]] = {},
            fdb: Mapping[str, tuple] = {}, body: dict | None = None, port: int = 5000,
            service: str | None = "hello-a") -> Observation:
    """An Observation: frames 1 ms apart; each ``grown`` counter goes from 0 to 1 packet."""
    frames = tuple(Frame(points[label], 100.0 + i / 1000, out, bytes(addressed(points[label], out, pkt)))
                   for i, (label, out, pkt) in enumerate(steps))
    names = set(grown) | set(conntrack) | set(ipvs) | set(fdb)
    before = {ns: NsSnapshot(tuple(rc(c.table, c.chain, c.index, c.text, 0) for c in grown.get(ns, [])))
              for ns in names}
    after = {ns: NsSnapshot(tuple(grown.get(ns, [])), conntrack.get(ns, ()), ipvs.get(ns, ()),
                            fdb.get(ns, ())) for ns in names}
    request = Request("vt", f"node2:{port}", "node2", f"192.168.56.12:{port}", "tcp", C,
                      "client", service)
    probe = ProbeResult(outcome, ("192.168.56.2", 40000), body, None if body else outcome, 12.5)
    return Observation(request, flow(C, f"192.168.56.12:{port}"), probe, frames, before, after,
                       tuple(points))


def seed_path(remote: bool = True, answered: bool = True, port: int = 4789, client: str = C):
    """Frames, counters, conntrack and IPVS of the seed request (hello-a.1 on node1, or hello-a.2)
    from ``client`` (ip:port)."""
    task, mac = (T1, MAC_T1) if remote else (T2, MAC_T2)
    ns_task = NS_T1 if remote else NS_T2
    name = "hello-a.1" if remote else "hello-a.2"
    inner = tcp(OV, task, smac=MAC_SBOX2, dmac=mac)
    back = tcp(task, OV, "SA", smac=mac, dmac=MAC_SBOX2)
    steps = along(tcp(client, N2), ">client/eth0", "<lan/veth-client", ">lan/veth-node2", "<node2/eth0")
    steps += along(tcp(client, GW), ">node2/vethac120002", "<node2/ingress_sbox/eth1")
    steps += along(inner, ">node2/ingress_sbox/eth0", "<node2/ov-ingress/veth0a000003")
    if remote:
        steps += along(inner, ">node2/ov-ingress/vxlan0")
        steps += along(vxlan(NODE2_LAN, NODE1_LAN, inner, port=port), ">node2/eth0", "<lan/veth-node2",
                       ">lan/veth-node1", "<node1/eth0")
        steps += along(inner, "<node1/ov-ingress/vxlan0", ">node1/ov-ingress/veth0a000005",
                       "<hello-a.1/eth0")
        reply = along(back, ">hello-a.1/eth0", "<node1/ov-ingress/veth0a000005",
                      ">node1/ov-ingress/vxlan0")
        reply += along(vxlan(NODE1_LAN, NODE2_LAN, back, 45000, port), ">node1/eth0",
                       "<lan/veth-node1", ">lan/veth-node2", "<node2/eth0")
        reply += along(back, "<node2/ov-ingress/vxlan0")
    else:
        steps += along(inner, ">node2/ov-ingress/veth0a000006", "<hello-a.2/eth0")
        reply = along(back, ">hello-a.2/eth0", "<node2/ov-ingress/veth0a000006")
    reply += along(back, ">node2/ov-ingress/veth0a000003", "<node2/ingress_sbox/eth0")
    reply += along(tcp(GW, client, "SA"), ">node2/ingress_sbox/eth1", "<node2/vethac120002")
    reply += along(tcp(N2, client, "SA"), ">node2/eth0", "<lan/veth-node2", ">lan/veth-client",
                   "<client/eth0")
    grown = {NS_N2: [rc("nat", "PREROUTING", 1, JUMP), rc("nat", "DOCKER-INGRESS", 1, DNAT)],
             NS_SBOX: [rc("mangle", "PREROUTING", 1, MARK), rc("nat", "POSTROUTING", 1, SNAT)],
             ns_task: [rc("nat", "PREROUTING", 1, REDIRECT.format(ip=task.split(":")[0], task=name))]}
    conntrack = {NS_N2: (ct((client, N2), (GW, client)),), NS_SBOX: (ct((client, GW), (task, OV)),),
                 ns_task: (ct((OV, task), (task.replace(":5000", ":3000"), OV)),)}
    ipvs = {NS_SBOX: (IpvsConn("tcp", client, GW, task, "SYN_RECV"),)}
    body = {"task": name, "node": "node1" if remote else "node2", "task_ip": task.split(":")[0],
            "client": "10.0.0.3"}
    return (steps + reply if answered else steps), grown, conntrack, ipvs, body


# -- 1. rule text ----------------------------------------------------------------------------
def test_fits_protocol_ports_and_addresses():
    assert rules.fits(DNAT, flow(C, N2))
    assert not rules.fits(DNAT, flow(C, "192.168.56.12:5001"))
    assert not rules.fits(DNAT, flow(C, N2, "udp"))
    assert rules.fits(SNAT, flow(C, T1)) and not rules.fits(SNAT, flow(C, GW))
    src_rule = "-A OUTPUT -s 10.0.0.5/32 -p tcp -m tcp --sport 3000 -j ACCEPT"
    assert rules.fits(src_rule, flow(T1_APP, OV))
    assert not rules.fits(src_rule, flow(T1, OV))              # wrong source port
    assert not rules.fits(src_rule, flow("10.0.0.6:3000", OV))  # wrong source address
    assert rules.fits(RETURN, flow(C, "192.168.56.12:5999", "udp"))  # no match: fits all


def test_option_and_obj():
    assert rules.option(DNAT, "--to-destination") == "172.18.0.2:5000"
    assert rules.option(DNAT, "--to-source") is None
    assert rules.option(MARK, "--set-xmark") == "0x100/0xffffffff"
    assert rules.obj(DNAT) == "svc/hello-a:publish/5000"
    assert rules.obj(SNAT) == "node/node2:ingress_sbox"
    assert rules.obj("-A INPUT -m comment --comment \"something else\" -j ACCEPT") is None
    assert rules.obj("-A INPUT -j ACCEPT") is None


def test_jump_path():
    dnat, jump = rc("nat", "DOCKER-INGRESS", 1, DNAT), rc("nat", "PREROUTING", 1, JUMP)
    assert rules.jump_path(dnat, [(jump, 1), (dnat, 1)]) == "PREROUTING DOCKER-INGRESS"
    assert rules.jump_path(dnat, [(dnat, 1)]) == "DOCKER-INGRESS"
    mark = rc("mangle", "PREROUTING", 1, MARK)
    assert rules.jump_path(mark, [(jump, 1), (mark, 1)]) == "PREROUTING"   # other table


# -- 2. evidence -----------------------------------------------------------------------------
def test_parse_ip_vs_conn():
    text = ("Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n"
            "TCP C0A83802 9C4B AC120002 1388 0A000005 1388 TIME_WAIT         119\n"
            "TCP 00000000000000000000000000000001 9C4B 00000000000000000000000000000001 1388 "
            "00000000000000000000000000000001 1388 ESTABLISHED 900\n")
    (conn,) = parse_ip_vs_conn(text)
    assert conn == IpvsConn("tcp", "192.168.56.2:40011", "172.18.0.2:5000", "10.0.0.5:5000",
                            "TIME_WAIT")
    assert parse_ip_vs_conn(text.splitlines()[0]) == ()


def test_counter_deltas_only_grown():
    idle = rc("filter", "DOCKER-INGRESS", 3, RETURN, 7)
    before = NsSnapshot((rc("nat", "DOCKER-INGRESS", 1, DNAT, 4), idle))
    after = NsSnapshot((rc("nat", "DOCKER-INGRESS", 1, DNAT, 6), idle,
                        rc("nat", "PREROUTING", 1, JUMP, 1)))    # a rule new since "before"
    assert [(c.chain, c.target, n) for c, n in counter_deltas(before, after)] == [
        ("DOCKER-INGRESS", "DNAT", 2), ("PREROUTING", "DOCKER-INGRESS", 1)]


# -- 3. following the request through NAT ----------------------------------------------------
def test_follow_conntrack_chain():
    snaps = {NS_T1: NsSnapshot((), (ct((OV, T1), (T1_APP, OV)),)),     # order does not matter
             NS_N2: NsSnapshot((), (ct(("192.168.56.9:1", N2), (GW, "192.168.56.9:1")),
                                    ct((C, N2), (GW, C)))),
             NS_SBOX: NsSnapshot((), (ct((C, GW), (T1, OV)),))}
    chain = follow(flow(C, N2), snaps)
    assert chain.forward == (flow(C, N2), flow(C, GW), flow(OV, T1), flow(OV, T1_APP))
    assert set(chain.conntrack) == {NS_N2, NS_SBOX, NS_T1}
    assert chain.leg(flow(T1_APP, OV)) == "reply"
    assert chain.leg(flow(GW, C)) == "reply"
    assert chain.leg(flow(OV, T1)) == "request"
    assert chain.leg(flow("192.168.56.9:1", N2)) is None


def test_follow_counted_dnat_without_conntrack():
    chain = follow(flow(C, N2), {NS_N2: NsSnapshot(())},
                   {NS_N2: [rc("nat", "PREROUTING", 1, JUMP), rc("nat", "DOCKER-INGRESS", 1, DNAT)]})
    assert chain.forward == (flow(C, N2), flow(C, GW))
    assert chain.conntrack == {}


def test_follow_ipvs_conn_alone():
    conn = IpvsConn("tcp", C, GW, T1, "SYN_RECV")
    chain = follow(flow(C, GW), {NS_SBOX: NsSnapshot((), ipvs=(conn,))})
    assert chain.forward == (flow(C, GW), flow(C, T1))
    assert chain.ipvs == {NS_SBOX: conn}


# -- 4. correlate end to end -----------------------------------------------------------------
def test_correlate_remote_backend(seed):
    facts, points = seed
    steps, grown, conntrack, ipvs, body = seed_path(remote=True)
    trace = correlate(observe(points, steps, grown, "answered", conntrack=conntrack, ipvs=ipvs,
                              body=body), facts)
    assert trace.verdict == "delivered"
    assert (trace.backend.task, trace.backend.node) == ("hello-a.1", "node1")
    assert "10.0.0.3" in trace.reason
    assert [h.seq for h in trace.hops] == list(range(1, len(trace.hops) + 1))
    for h in trace.hops:
        assert h.evidence and set(h.evidence) <= set(EVIDENCE_KINDS), h
    request = [h for h in trace.hops if h.leg == "request"]
    assert [h.event for h in request if h.event not in ("rx", "tx")] == [
        "dnat", "mark", "ipvs", "snat", "encap", "decap", "redirect", "deliver"]
    reply = [h.event for h in trace.hops if h.leg == "reply"]
    assert reply.count("un-nat") >= 2 and reply.count("encap") == 1 and reply.count("decap") == 1
    assert reply.index("encap") < reply.index("decap")
    assert trace.hops[-1].leg == "reply" and trace.hops[-1].netns == "client"

    dnat = next(h for h in request if h.event == "dnat")
    assert (dnat.netns, dnat.rule, dnat.object) == ("node2", DNAT, "svc/hello-a:publish/5000")
    assert "PREROUTING DOCKER-INGRESS" in dnat.detail and (dnat.src, dnat.dst) == (C, GW)
    assert set(dnat.evidence) == {"counter", "conntrack"}
    mark = next(h for h in request if h.event == "mark")
    assert mark.netns == "node2/ingress_sbox" and "0x100" in mark.detail
    ipvs_hop = next(h for h in request if h.event == "ipvs")
    assert "FWM 256 rr" in ipvs_hop.detail and "hello-a.1 on node1" in ipvs_hop.detail
    assert "ipvs-conn" in ipvs_hop.evidence
    snat = next(h for h in request if h.event == "snat")
    assert (snat.rule, snat.src, snat.dst) == (SNAT, OV, T1) and "client IP lost" in snat.detail
    encap = next(h for h in request if h.event == "encap")
    assert (encap.netns, encap.src, encap.dst, encap.proto) == (
        "node2", "192.168.56.12:44000", "192.168.56.11:4789", "udp")
    decap = next(h for h in request if h.event == "decap")
    assert decap.netns == "node1/ov-ingress" and (decap.src, decap.dst) == (OV, T1)
    redirect = next(h for h in request if h.event == "redirect")
    assert (redirect.netns, redirect.node, redirect.dst) == ("hello-a.1", "node1", T1_APP)
    assert trace.packets == len(steps)


def test_correlate_local_backend(seed):
    facts, points = seed
    steps, grown, conntrack, ipvs, body = seed_path(remote=False)
    trace = correlate(observe(points, steps, grown, "answered", conntrack=conntrack, ipvs=ipvs,
                              body=body), facts)
    assert trace.verdict == "delivered"
    assert (trace.backend.task, trace.backend.node) == ("hello-a.2", "node2")
    events = [h.event for h in trace.hops]
    assert "encap" not in events and "decap" not in events
    assert [e for h, e in zip(trace.hops, events, strict=True) if h.leg == "request" and e not in ("rx", "tx")] \
        == ["dnat", "mark", "ipvs", "snat", "redirect", "deliver"]
    assert "un-nat" in [h.event for h in trace.hops if h.leg == "reply"]


# scapy binds VXLAN to 4789 and a few other ports only; the trace decodes any data_path_port.
def test_correlate_custom_data_path_port(seed):
    _facts, points = seed
    text = SCENARIO.read_text() + "\nunderlay: {data_path_port: 7789}\n"
    lab = load_lab_from_text(text, "hello-a.yaml", name_override="vt")
    facts = lab_facts(lab, ipam.allocate(lab), build_plan(lab))
    assert facts.vxlan_port == 7789
    steps, grown, conntrack, ipvs, body = seed_path(remote=True, port=7789)
    obs = observe(points, steps, grown, "answered", conntrack=conntrack, ipvs=ipvs, body=body)
    seen = decode(obs.frames[9], follow(obs.orig, obs.after), 7789)   # node2/eth0, encapsulated
    assert seen is not None and seen.vni == 4096
    events = [h.event for h in correlate(obs, facts).hops]
    assert events.count("encap") == 2 and events.count("decap") == 2


# -- 5. diagnosis ----------------------------------------------------------------------------
def test_refused_unpublished_port(seed):
    facts, points = seed
    dst = "192.168.56.12:5999"
    steps = along(tcp(C, dst), ">client/eth0", "<lan/veth-client", ">lan/veth-node2", "<node2/eth0")
    steps += along(tcp(dst, C, "RA"), ">node2/eth0", "<lan/veth-node2", ">lan/veth-client",
                   "<client/eth0")
    grown = {NS_N2: [rc("nat", "PREROUTING", 1, JUMP), rc("nat", "DOCKER-INGRESS", 2, RETURN)]}
    trace = correlate(observe(points, steps, grown, "refused", port=5999, service=None), facts)
    assert trace.verdict == "refused" and trace.backend is None
    rst = [h for h in trace.hops if h.event == "rst"]
    assert len(rst) == 1 and rst[0].netns == "node2" and rst[0].leg == "reply"
    assert "nothing publishes tcp/5999" in rst[0].detail
    assert rst[0].rule == RETURN and rst[0].object == "node/node2:ingress"
    assert set(rst[0].evidence) == {"capture", "counter"}
    assert "nothing publishes tcp/5999" in trace.reason


def test_dropped_at_vxlan_without_fdb(seed):
    facts, points = seed
    steps, grown, conntrack, ipvs, _ = seed_path(remote=True, answered=False)
    steps = steps[:next(i for i, s in enumerate(steps) if s[0] == "node2/ov-ingress/vxlan0") + 1]
    fdb = {NS_OV2: (("vxlan0", "02:42:0a:00:00:02", NODE1_LAN),)}
    conntrack = {ns: conntrack[ns] for ns in (NS_N2, NS_SBOX)}
    trace = correlate(observe(points, steps, grown, "timeout", conntrack=conntrack, ipvs=ipvs,
                              fdb=fdb), facts)
    assert trace.verdict == "dropped"
    assert (trace.backend.task, trace.backend.node) == ("hello-a.1", "node1")  # IPVS's choice
    last = trace.hops[-1]
    assert (last.event, last.netns, last.iface, last.dir) == ("drop", "node2/ov-ingress", "vxlan0", "out")
    assert "fdb" in last.evidence
    assert MAC_T1 in last.detail and "hello-a.1 on node1" in last.detail
    assert "192.168.56.11" in last.detail          # what the plan says the entry should be
    assert trace.reason == last.detail


def test_dropped_by_rule(seed):
    facts, points = seed
    steps, grown, conntrack, ipvs, _ = seed_path(remote=True, answered=False)
    grown[NS_T1] = grown[NS_T1] + [rc("filter", "INPUT", 4, DROP_T1)]
    conntrack = {ns: conntrack[ns] for ns in (NS_N2, NS_SBOX)}   # unconfirmed in the task
    trace = correlate(observe(points, steps, grown, "timeout", conntrack=conntrack, ipvs=ipvs),
                      facts)
    assert trace.verdict == "dropped"
    last = trace.hops[-1]
    assert (last.event, last.netns, last.node, last.rule) == ("drop", "hello-a.1", "node1", DROP_T1)
    assert "filter INPUT rule 4 (DROP)" in last.detail and last.evidence == ("counter",)
    assert last.object == "task/hello-a.1:ingress"
    assert "deliver" not in [h.event for h in trace.hops]


def test_icmp_error_quoting_the_request_is_its_reply():
    from scapy.layers.inet import ICMP, IP, UDP, UDPerror, IPerror
    from scapy.layers.l2 import Ether

    from netlab.trace.capture import Frame
    from netlab.trace.evidence import Flow
    from netlab.trace.flows import FlowChain, decode
    from netlab.trace.points import CapturePoint

    sent = Flow("udp", "192.168.56.2", 40000, "192.168.56.12", 5999)
    chain = FlowChain((sent,), {}, {})
    err = (Ether() / IP(src="192.168.56.12", dst="192.168.56.2") / ICMP(type=3, code=3)
           / IPerror(src="192.168.56.2", dst="192.168.56.12") / UDPerror(sport=40000, dport=5999))
    point = CapturePoint("nl-x.node2", "node2", "node2", "host", "eth0")
    seen = decode(Frame(point, 1.0, True, bytes(err)), chain, 4789)
    assert seen is not None and seen.leg == "reply" and seen.flags == "ICMP 3/3"
    assert seen.flow == sent.reversed()
    other = (Ether() / IP(src="192.168.56.12", dst="192.168.56.2") / ICMP(type=3, code=3)
             / IPerror(src="192.168.56.2", dst="192.168.56.12") / UDPerror(sport=40001, dport=5999))
    assert decode(Frame(point, 1.0, True, bytes(other)), chain, 4789) is None
    plain = Ether() / IP(src="192.168.56.2", dst="192.168.56.12") / UDP(sport=40000, dport=5999)
    assert decode(Frame(point, 1.0, False, bytes(plain)), chain, 4789).leg == "request"


def test_a_copy_flooded_by_a_bridge_that_has_not_learned_the_mac_is_no_hop(seed):
    """br0 on node1 has not yet seen hello-a.1's MAC (tasks send nothing until asked, as
    with Docker's IPv6-less containers): the SYN goes out of every port, the copy to
    node1's ingress_sbox included. The trace still ends in the task."""
    facts, points = seed
    steps, grown, conntrack, ipvs, body = seed_path(remote=True)
    inner = tcp(OV, T1, smac=MAC_SBOX2, dmac=MAC_T1)
    at = next(i for i, (label, out, _p) in enumerate(steps) if label == "hello-a.1/eth0")
    steps = steps[:at + 1] + along(inner, ">node1/ov-ingress/veth0a000002") + steps[at + 1:]
    trace = correlate(observe(points, steps, grown, "answered", conntrack=conntrack, ipvs=ipvs,
                              body=body), facts)
    request = [h for h in trace.hops if h.leg == "request"]
    assert [h.event for h in request if h.event not in ("rx", "tx")][-2:] == ["redirect", "deliver"]
    assert not any(h.iface == "veth0a000002" for h in trace.hops)
