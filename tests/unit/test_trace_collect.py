"""Trace collection against a fake kernel: Tracer.once, collect, snapshot and Capture.

The fake (:class:`tests.unit.fakes.FakeKernel`, the reader's half) plays the
seed request (scenarios/hello-a.yaml, lab "vt": client -> node2:5000, IPVS in
node2's ingress_sbox picks hello-a.1 on node1 over VXLAN) as the kernel would
have recorded it for whatever source port the probe picks: the frames at every
capture point, the rule counters before and after, conntrack and the IPVS
connection table after. Nothing here touches the real kernel.
"""

from __future__ import annotations

import json
import socket

import pytest

from netlab import ipam
from netlab.kernel.capture import RawFrame
from netlab.kernel.records import NsReading
from netlab.plan import names
from netlab.plan.build import build_plan
from netlab.scenario import load_lab
from netlab.trace.evidence import RULE_ROLES
from netlab.trace.model import EVIDENCE_KINDS
from netlab.trace.run import Tracer, TraceTarget
from netlab.workload.http import http_response
from tests.unit.fakes import FakeKernel, Recorded
from tests.unit.test_trace_correlate import (DNAT, GW, MARK, NS_N2, NS_SBOX, NS_T1, OV, SCENARIO,
                                           SNAT, T1, T1_APP, addressed, rc, seed_path)

CLIENT_IP, NODE2_IP = "192.168.56.2", "192.168.56.12"


@pytest.fixture(scope="module")
def seed():
    lab = load_lab(SCENARIO, name_override="vt")
    return lab, ipam.allocate(lab), build_plan(lab)


def recording(points: dict, refused: bool = False):
    """``port -> Recorded``: the seed request from CLIENT_IP:port as the kernel saw it."""
    def recorded(port: int) -> Recorded:
        steps, grown, conntrack, ipvs, body = seed_path(remote=True, client=f"{CLIENT_IP}:{port}")
        frames = tuple(RawFrame(points[label].netns, points[label].iface, 100.0 + i / 1000, out,
                                bytes(addressed(points[label], out, pkt)))
                       for i, (label, out, pkt) in enumerate(steps))
        before = {ns: NsReading(tuple(rc(c.table, c.chain, c.index, c.text, 0) for c in rules))
                  for ns, rules in grown.items()}
        after = {ns: NsReading(tuple(grown.get(ns, ())), conntrack.get(ns, ()), ipvs.get(ns, ()))
                 for ns in set(grown) | set(conntrack) | set(ipvs)}
        return Recorded(frames, before, after, http_response(json.dumps(body).encode()), refused)
    return recorded


def tracer_for(seed, kernel: FakeKernel) -> Tracer:
    lab, allocations, plan = seed
    target = TraceTarget("node2", NODE2_IP, 5000, "tcp", "client", names.client_ns("vt"),
                         CLIENT_IP, "node2:5000")
    tracer = Tracer(lab, allocations, plan, target, "legacy", reader=kernel)
    kernel.namespaces = set(tracer.path.namespaces)
    kernel.recorded = recording({p.label: p for p in tracer.path.points})
    return tracer


def test_once_reads_the_kernel_through_the_reader_and_finds_every_hop_in_order(seed):
    kernel = FakeKernel()
    tracer = tracer_for(seed, kernel)
    trace, frames = tracer.once(timeout=1.0)

    # The request: one socket in the client's namespace, bound to the client's address
    # on the port the probe picked, connected to node2:5000, sent a GET, closed.
    (sock,) = kernel.sockets
    assert sock.netns == names.client_ns("vt") and sock.kind == socket.SOCK_STREAM
    assert sock.bound[0] == CLIENT_IP and sock.peer == (NODE2_IP, 5000)
    assert sock.sent.startswith(b"GET / HTTP/1.1\r\nHost: node2:5000") and sock.closed
    sport = sock.bound[1]

    # Counters before (rule namespaces only), capture open on every point of the path,
    # then counters and what each role holds after.
    before, after = kernel.reads
    roles = tracer.snap_roles
    assert set(before) == {n for n, r in roles.items() if r in RULE_ROLES}
    assert all(w.counters and not w.inside for w in before.values())
    assert set(after) == set(roles)
    assert after[NS_SBOX].ipvs_conns and after[NS_SBOX].conntrack
    assert after[names.overlay_ns("vt", "node2")].fdb
    assert after[names.lan_ns("vt")].links and not after[names.lan_ns("vt")].counters
    (cap,) = kernel.captures
    assert cap.entered and cap.closed
    assert cap.ifaces == {ns: frozenset(p.iface for p in tracer.path.points if p.netns == ns)
                          for ns in {p.netns for p in tracer.path.points}}
    assert [s[0] for s in kernel.steps] == ["read", "read"]

    # What came back: every recorded frame, tied to its capture point, in time order.
    assert len(frames) == len(kernel.recorded(sport).frames)
    assert [f.time for f in frames] == sorted(f.time for f in frames)
    assert frames[0].point.label == "client/eth0" and frames[0].outgoing

    # The hops, from the fake's evidence alone.
    client = f"{CLIENT_IP}:{sport}"
    assert trace.request.src == client and trace.verdict == "delivered"
    assert (trace.backend.task, trace.backend.node) == ("hello-a.1", "node1")
    assert [h.seq for h in trace.hops] == list(range(1, len(trace.hops) + 1))
    for h in trace.hops:
        assert h.evidence and set(h.evidence) <= set(EVIDENCE_KINDS), h
    request = [h for h in trace.hops if h.leg == "request"]
    assert [h.event for h in request if h.event not in ("rx", "tx")] == [
        "dnat", "mark", "ipvs", "snat", "encap", "decap", "redirect", "deliver"]
    dnat = next(h for h in request if h.event == "dnat")
    assert (dnat.netns, dnat.rule, dnat.src, dnat.dst) == ("node2", DNAT, client, GW)
    assert set(dnat.evidence) == {"counter", "conntrack"}
    mark = next(h for h in request if h.event == "mark")
    assert (mark.netns, mark.rule) == ("node2/ingress_sbox", MARK) and "counter" in mark.evidence
    ipvs = next(h for h in request if h.event == "ipvs")
    assert "ipvs-conn" in ipvs.evidence and "hello-a.1 on node1" in ipvs.detail
    snat = next(h for h in request if h.event == "snat")
    assert (snat.rule, snat.src, snat.dst) == (SNAT, OV, T1) and "counter" in snat.evidence
    redirect = next(h for h in request if h.event == "redirect")
    assert (redirect.netns, redirect.dst) == ("hello-a.1", T1_APP)
    deliver = next(h for h in request if h.event == "deliver")
    assert deliver.netns == "hello-a.1"
    assert trace.hops[-1].leg == "reply" and trace.hops[-1].netns == "client"
    assert set(tracer.phases) >= {"counters before", "open capture", "request", "stop capture",
                                  "counters, conntrack, IPVS after", "correlate"}


def test_a_task_gone_behind_netlabs_back_is_missing_not_read_nor_captured(seed):
    kernel = FakeKernel()
    tracer = tracer_for(seed, kernel)
    kernel.namespaces.discard(NS_T1)
    trace, frames = tracer.once(timeout=1.0)
    assert all(NS_T1 not in asked for asked in kernel.reads)
    assert NS_T1 not in kernel.captures[0].ifaces
    assert all(f.point.netns != NS_T1 for f in frames) and frames
    assert trace.hops and NS_N2 in kernel.reads[0]


def test_a_refused_request_is_a_result_and_the_capture_still_closes(seed):
    kernel = FakeKernel()
    tracer = tracer_for(seed, kernel)
    recorded = kernel.recorded
    kernel.recorded = lambda port: Recorded(recorded(port).frames[:4], recorded(port).before,
                                            {}, refused=True)
    trace, frames = tracer.once(timeout=1.0)
    assert kernel.sockets[0].closed and kernel.captures[0].closed
    assert len(frames) == 4 and trace.verdict == "refused" and "refused" in trace.reason
    assert len(kernel.reads) == 2
