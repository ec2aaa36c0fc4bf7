"""``netlab trace`` to a task that went away, pure: synthetic frames and kernel facts.

The seed lab's request (see test_trace_correlate) with what a living swarm
leaves behind: a destination drained to weight 0, a destination whose task a
scale-down shut down, a task namespace removed by hand, a node cut off the
LAN or taken down by ``netlab node``.
"""

from __future__ import annotations

from dataclasses import replace

from netlab import ipam
from netlab.kernel.procfs import parse_ip_vs
from netlab.model import TaskRecord
from netlab.plan import names
from netlab.plan.build import build_plan
from netlab.scenario import load_lab
from netlab.trace import render
from netlab.trace.correlate import correlate
from netlab.trace.evidence import IpvsConn, IpvsDestination, LinkState, NsSnapshot
from netlab.trace.facts import lab_facts
from netlab.trace.model import EVIDENCE_KINDS, RepeatSummary
from netlab.trace.points import trace_path
from tests.unit.test_trace_correlate import (C, GW, NS_N2, NS_OV2, NS_SBOX, NS_T1,
                                             SCENARIO, along, observe, seed_path, tcp)

NS_LAN, NS_N1 = names.lan_ns("vt"), names.node_ns("vt", "node1")
ENDED = TaskRecord("hello-a", 3, "node1", "shutdown", "10.0.0.7", "2026-11-29T19:20:01Z",
                   "scale hello-a=2")


def facts_for(history=(), node2_down=False):
    lab = load_lab(SCENARIO, name_override="vt")
    if node2_down:
        lab = replace(lab, nodes=tuple(replace(n, state="down") if n.name == "node2" else n
                                       for n in lab.nodes))
    plan = build_plan(lab)
    points = {p.label: p for p in trace_path(lab, plan, "node2", 5000, "tcp").points}
    return lab_facts(lab, ipam.allocate(lab), plan, history, "/s/hello-a.yaml"), points


def with_after(obs, missing=(), **extra: NsSnapshot):
    """``obs`` with more read back after the request: IPVS tables, links, neighbours."""
    after = dict(obs.after)
    for ns, snap in extra.items():
        old = after.get(ns, NsSnapshot(()))
        after[ns] = replace(old, ipvs_table=snap.ipvs_table or old.ipvs_table,
                            links=snap.links or old.links,
                            neighbours=snap.neighbours or old.neighbours)
    return replace(obs, after=after, missing=tuple(missing))


def table(*dests: tuple[str, int]) -> NsSnapshot:
    return NsSnapshot((), ipvs_table=tuple(IpvsDestination(256, ip, 0, "Masq", w)
                                           for ip, w in dests))


def test_parse_ip_vs_reads_fwmark_services_and_weights():
    text = ("IP Virtual Server version 1.2.1 (size=4096)\n"
            "Prot LocalAddress:Port Scheduler Flags\n"
            "  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n"
            "FWM  00000100 rr \n"
            "  -> 0A000005:0000      Masq    0      1          2         \n"
            "  -> 0A000006:0000      Masq    1      0          0         \n"
            "TCP  0A000004:1388 rr\n"
            "  -> 0A000009:1388      Masq    1      0          0         \n")
    table = parse_ip_vs(text)
    assert table.destinations == (IpvsDestination(256, "10.0.0.5", 0, "Masq", 0, 1, 2),
                                  IpvsDestination(256, "10.0.0.6", 0, "Masq", 1, 0, 0))
    assert table.schedulers == {256: "rr"}    # the address service (TCP) is not a fwmark one


def test_a_weight_0_destination_is_skipped_and_said_not_a_failure():
    facts, points = facts_for()
    steps, grown, conntrack, ipvs, body = seed_path(remote=False)
    obs = with_after(observe(points, steps, grown, "answered", conntrack=conntrack, ipvs=ipvs,
                             body=body), **{NS_SBOX: table(("10.0.0.5", 0), ("10.0.0.6", 1))})
    trace = correlate(obs, facts)
    assert trace.verdict == "delivered" and trace.cause is None
    hop = next(h for h in trace.hops if h.event == "ipvs")
    assert hop.detail.startswith("IPVS FWM 256 rr → 10.0.0.6:5000 (hello-a.2 on node2); ")
    assert "skipped 10.0.0.5:0 (hello-a.1 on node1)" in hop.detail and "not a failure" in hop.detail
    assert "ipvs-table" in hop.evidence and set(hop.evidence) <= set(EVIDENCE_KINDS)
    assert any("weight 0" in o for o in hop.observed)
    assert trace.notes == (hop.detail.split("; ", 1)[1],)
    assert "note: IPVS skipped 10.0.0.5:0" in render.text(trace)
    # All weights 1: nothing skipped, nothing noted.
    plain = correlate(with_after(obs, **{NS_SBOX: table(("10.0.0.5", 1), ("10.0.0.6", 1))}), facts)
    assert plain.notes == () and "skipped" not in render.text(plain)


def test_a_weight_0_task_still_starting_is_said_to_wait_for_its_health_check():
    facts, points = facts_for()
    facts = replace(facts, starting=frozenset({"10.0.0.5"}))   # the plan has it at weight 0
    steps, grown, conntrack, ipvs, body = seed_path(remote=False)
    obs = with_after(observe(points, steps, grown, "answered", conntrack=conntrack, ipvs=ipvs,
                             body=body), **{NS_SBOX: table(("10.0.0.5", 0), ("10.0.0.6", 1))})
    hop = next(h for h in correlate(obs, facts).hops if h.event == "ipvs")
    assert "skipped 10.0.0.5:0 (hello-a.1 on node1)" in hop.detail
    assert "a task starting whose health check has not passed yet" in hop.detail
    assert "drained" not in hop.detail


def _stuck_in_sandbox(dest: str):
    """The request up to node2's ingress_sbox, where IPVS chose ``dest`` and nothing left."""
    steps = along(tcp(C, "192.168.56.12:5000"), ">client/eth0", "<lan/veth-client",
                  ">lan/veth-node2", "<node2/eth0")
    steps += along(tcp(C, GW), ">node2/vethac120002", "<node2/ingress_sbox/eth1")
    _s, grown, conntrack, _i, _b = seed_path()
    grown = {NS_N2: grown[NS_N2], NS_SBOX: grown[NS_SBOX][:1]}
    return steps, grown, {NS_N2: conntrack[NS_N2]}, {NS_SBOX: (IpvsConn("tcp", C, GW, dest,
                                                                        "SYN_SENT"),)}


def test_ipvs_choosing_a_task_a_scale_down_shut_down_names_it_when_and_why():
    facts, points = facts_for(history=(ENDED,))
    steps, grown, conntrack, ipvs = _stuck_in_sandbox("10.0.0.7:5000")
    sbox = replace(table(("10.0.0.5", 1), ("10.0.0.6", 1), ("10.0.0.7", 1)),
                   neighbours=(("eth0", "10.0.0.7", "FAILED"),))
    obs = with_after(observe(points, steps, grown, "timeout", conntrack=conntrack, ipvs=ipvs),
                     **{NS_SBOX: sbox})
    trace = correlate(obs, facts)
    assert trace.verdict == "dropped"
    c = trace.cause
    assert (c.kind, c.task, c.node, c.ip, c.sandbox, c.fwmark, c.weight) == (
        "stale-backend", "hello-a.3", "node1", "10.0.0.7", "node2/ingress_sbox", 256, 1)
    assert (c.ended_at, c.ended_by) == ("2026-11-29T19:20:01Z", "scale hello-a=2")
    assert ("hello-a.3 on node1 is gone (shutdown at 2026-11-29T19:20:01Z by `netlab scale "
            "hello-a=2`), yet IPVS FWM 256 in node2/ingress_sbox still lists 10.0.0.7:0 weight 1"
            in c.summary)
    assert "netlab up /s/hello-a.yaml" in c.fix and "stale IPVS backends" in c.fix
    assert set(c.evidence) == {"ipvs-conn", "ipvs-table", "neigh", "history"}
    assert c.summary.endswith("node2/ingress_sbox's ARP entry for 10.0.0.7 is FAILED")
    assert trace.reason == c.summary
    assert (trace.backend.task, trace.backend.ip) == ("hello-a.3", "10.0.0.7")
    last = trace.hops[-1]
    assert (last.event, last.netns, last.iface) == ("drop", "node2/ingress_sbox", "eth1")
    doc = trace.to_json()
    assert doc["cause"]["kind"] == "stale-backend" and doc["cause"]["evidence"] == list(c.evidence)
    text = render.text(trace)
    assert "cause: stale-backend" in text and "fix: netlab up" in text


def test_a_destination_no_task_ever_had_is_stale_too():
    facts, points = facts_for()
    steps, grown, conntrack, ipvs = _stuck_in_sandbox("10.0.0.99:5000")
    trace = correlate(observe(points, steps, grown, "timeout", conntrack=conntrack, ipvs=ipvs),
                      facts)
    assert trace.cause.kind == "stale-backend" and trace.cause.task is None
    assert "no task of the lab has or had 10.0.0.99" in trace.reason


def test_a_task_whose_namespace_was_removed_by_hand_is_named():
    facts, points = facts_for()
    steps, grown, conntrack, ipvs, _ = seed_path(remote=True, answered=False)
    steps = [s for s in steps if not s[0].startswith("hello-a.1/")]
    steps = steps[:next(i for i, s in enumerate(steps) if s[0] == "node1/ov-ingress/vxlan0") + 1]
    grown.pop(NS_T1)
    conntrack.pop(NS_T1)
    obs = with_after(observe(points, steps, grown, "timeout", conntrack=conntrack, ipvs=ipvs),
                     missing=(NS_T1,), **{NS_SBOX: table(("10.0.0.5", 1), ("10.0.0.6", 1))})
    trace = correlate(obs, facts)
    c = trace.cause
    assert (c.kind, c.task, c.node, c.weight) == ("stale-backend", "hello-a.1", "node1", 1)
    assert f"its namespace {NS_T1} no longer exists" in c.summary
    assert "last seen at node1/ov-ingress/vxlan0 in" in c.summary
    assert trace.missing == ("hello-a.1",)
    assert "recreates hello-a.1" in c.fix


def test_a_backend_on_a_node_cut_off_the_lan_says_the_vxlan_packet_went_nowhere():
    facts, points = facts_for()
    steps, grown, conntrack, ipvs, _ = seed_path(remote=True, answered=False)
    steps = steps[:next(i for i, s in enumerate(steps) if s[0] == "node2/ov-ingress/vxlan0") + 1]
    conntrack = {ns: conntrack[ns] for ns in (NS_N2, NS_SBOX)}
    fdb = {NS_OV2: (("vxlan0", "02:42:0a:00:00:05", "192.168.56.11"),)}
    lan = NsSnapshot((), links=(LinkState("veth-node1", True, False),
                                LinkState("veth-node2", True, True)))
    node2 = NsSnapshot((), links=(LinkState("eth0", True, True),),
                       neighbours=(("eth0", "192.168.56.11", "FAILED"),))
    node1 = NsSnapshot((), links=(LinkState("eth0", False, False),))
    obs = with_after(observe(points, steps, grown, "timeout", conntrack=conntrack, ipvs=ipvs,
                             fdb=fdb), **{NS_LAN: lan, NS_N2: node2, NS_N1: node1})
    trace = correlate(obs, facts)
    c = trace.cause
    assert (c.kind, c.node, c.ip) == ("node-cut", "node1", "192.168.56.11")
    assert c.link == "lan/veth-node1 NO-CARRIER, node1/eth0 DOWN"
    assert c.summary.startswith("node1 is cut off the LAN, though the lab has it ready")
    assert "the VXLAN packet to 192.168.56.11 (node1) went nowhere" in c.summary
    assert "node2's ARP entry for 192.168.56.11 is FAILED" in c.summary
    assert set(c.evidence) == {"link", "neigh"}
    last = trace.hops[-1]
    assert (last.event, last.netns, last.iface, last.dir) == ("drop", "node2/ov-ingress", "vxlan0", "out")
    # netlab node … down sets the node's LAN port down: in the window before its peers'
    # NetworkDB and the manager notice, the trace says so and what comes next.
    netlab_cut = correlate(with_after(obs, **{NS_LAN: NsSnapshot((), links=(
        LinkState("veth-node1", False, False), LinkState("veth-node2", True, True))),
        NS_N1: NsSnapshot((), links=(LinkState("eth0", True, True),))}), facts).cause
    assert (netlab_cut.kind, netlab_cut.link) == ("node-cut", "lan/veth-node1 DOWN")
    assert netlab_cut.summary.startswith("node1 is cut off the LAN (netlab node … down) and not "
                                         "noticed yet: its tasks stay in the other nodes' load "
                                         "balancers until their NetworkDB holds it failed")
    assert netlab_cut.fix.startswith("wait for the other nodes and the manager to notice")
    # The same trace with every link up is no cut: the generic "last seen" verdict stays.
    up = NsSnapshot((), links=(LinkState("veth-node1", True, True),))
    plain = correlate(with_after(obs, **{NS_LAN: up, NS_N1: NsSnapshot((), links=(
        LinkState("eth0", True, True),))}), facts)
    assert plain.cause is None and plain.reason.startswith("last seen at node2/ov-ingress/vxlan0")


def test_a_request_to_a_node_netlab_took_down_names_the_node():
    facts, points = facts_for(node2_down=True)
    lan = NsSnapshot((), links=(LinkState("veth-node2", False, False),))
    client = NsSnapshot((), neighbours=(("eth0", "192.168.56.12", "FAILED"),))
    obs = with_after(observe(points, [], {}, "timeout"),
                     **{NS_LAN: lan, names.client_ns("vt"): client})
    trace = correlate(obs, facts)
    c = trace.cause
    assert (c.kind, c.node, c.link) == ("node-down", "node2", "lan/veth-node2 DOWN")
    assert "node2 is down (netlab node … down" in c.summary
    assert "the request to 192.168.56.12:5000 (node2) went nowhere" in c.summary
    assert "client's ARP entry for 192.168.56.12 is FAILED" in c.summary
    assert "netlab node vt node2 up" in c.fix
    assert trace.hops[-1].event == "drop" and trace.hops[-1].netns == "client"


def test_repeat_says_why_each_request_died():
    summary = RepeatSummary("node2:5000", ("hello-a.2", "hello-a.3"), ("delivered", "dropped"),
                            (None, "hello-a.3 on node1 is gone"))
    text = render.repeat_text(summary)
    assert "request 2: dropped: hello-a.3 on node1 is gone" in text
    assert "request 1" not in text
    # Without causes (an older summary), the verdict alone, as before.
    assert "request 2: dropped\n" in render.repeat_text(replace(summary, causes=()))

