"""East-west traces, pure: parsing SERVICE:PORT and VIP:PORT from a task, the capture
path, the resolution hop, and a synthetic request from web.1 to api:80 through
node1's lb-backend (scenarios/east-west.yaml, lab "x": api's VIP 10.0.1.7, fwmark
258, node1's LB endpoint 10.0.1.2, api.1 at 10.0.1.8 on node1).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from netlab import ipam, lifecycle
from netlab.errors import BadInput
from netlab.kernel.iptables import RuleCounter
from netlab.plan import names
from netlab.plan.build import build_plan
from netlab.scenario import load_lab
from netlab.trace import eastwest, render, run
from netlab.trace.capture import Frame
from netlab.trace.correlate import Observation, correlate
from netlab.trace.evidence import CtEntry, Flow, IpvsConn, NsSnapshot
from netlab.trace.facts import lab_facts
from netlab.trace.model import Request
from netlab.trace.probe import ProbeResult
from tests.unit.fakes import FakeKernel

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "east-west.yaml"
WEB, VIP, LB, API = "10.0.1.5:40000", "10.0.1.7:80", "10.0.1.2:40000", "10.0.1.8:80"
LB_NS, API_NS, WEB_NS = (names.lb_ns("x", "node1", "backend"), names.task_ns("x", "api.1"),
                         names.task_ns("x", "web.1"))
MARK = ('-A INPUT -d 10.0.1.7/32 -m comment --comment "netlab:x:svc/api:vip/backend" '
        '-j MARK --set-xmark 0x102/0xffffffff')
SNAT = ('-A POSTROUTING -d 10.0.1.0/24 -m ipvs --ipvs -m comment --comment '
        '"netlab:x:node/node1:lb-backend" -j SNAT --to-source 10.0.1.2')


#: resolve_in is replaced below, so no socket is made: any reader will do.
READER = FakeKernel()


@pytest.fixture(autouse=True)
def dns_answers_from_the_records(monkeypatch, lab):
    """The embedded DNS's transport (a UDP query from inside the task's namespace)
    needs root and a lab; here the same records the DNS server is handed answer."""
    from netlab import client
    from netlab.plan.discovery import records_for_task

    def resolve_in(_reader, netns: str, name: str, timeout: float = 3.0) -> tuple[str, ...]:
        state, _ = lab
        task = next(t for t, ns in state.targets.items() if ns == netns)
        return records_for_task(state.model, state.allocations, task).get(name.lower(), ())
    monkeypatch.setattr(client, "resolve_in", resolve_in)


@pytest.fixture(scope="module")
def lab():
    model = load_lab(SCENARIO, name_override="x")
    addr = ipam.allocate(model)
    plan = build_plan(model, addr)
    state = lifecycle.state_for(model, addr, str(SCENARIO), plan)
    state.targets = {ns.target: ns.name for ns in plan.netns}
    return state, plan


def test_a_name_resolves_to_the_vip_and_the_sender_uses_its_address_on_that_network(lab):
    state, _ = lab
    t = run.parse(state, "api:80", "web.1", READER)
    assert (t.node, t.node_ip, t.port, t.sender_ip, t.sender_ns) == (
        "node1", "10.0.1.7", 80, "10.0.1.5", WEB_NS)
    r = t.east_west.resolution
    assert (r.name, r.addresses, r.kind, r.network, r.service) == (
        "api", ("10.0.1.7",), "vip", "backend", "api")
    hop = eastwest.resolve_hop(t.east_west, "web.1", "node1", WEB)
    assert (hop.event, hop.netns, hop.evidence) == ("resolve", "web.1", ("dns",))
    assert hop.detail.startswith("api → 10.0.1.7 (the VIP of api on backend, endpoint_mode vip)")


def test_dnsrr_tasks_and_addresses_resolve_as_docker_answers(lab):
    state, _ = lab
    cache = run.parse(state, "cache:6379", "web.1", READER).east_west
    assert (cache.ip, cache.resolution.kind) == ("10.0.1.11", "dnsrr")
    assert "cache → 10.0.1.11, 10.0.1.12" in eastwest.resolve_hop(cache, "web.1", "node1", WEB).detail
    tasks = run.parse(state, "tasks.api:80", "web.1", READER).east_west
    assert tasks.resolution.kind == "tasks" and tasks.resolution.addresses == (
        "10.0.1.8", "10.0.1.9", "10.0.1.10")
    vip = run.parse(state, "10.0.1.7:80", "web.1", READER).east_west
    assert (vip.resolution.kind, vip.resolution.service) == ("address", "api")
    assert "no name to resolve" in eastwest.resolve_hop(vip, "web.1", "node1", WEB).detail
    # A node's published port from a task is still the ingress path.
    assert run.parse(state, "node2:8080", "web.1", READER).east_west is None


@pytest.mark.parametrize("target, sender, message", [
    ("nope:80", "web.1", "web.1 cannot resolve 'nope'"),
    ("10.9.9.9:80", "web.1", "10.9.9.9 is no VIP or task address"),
    ("api:80", "client", "no node 'api'"),
])
def test_bad_east_west_targets_are_bad_input(lab, target, sender, message):
    state, _ = lab
    with pytest.raises(BadInput) as err:
        run.parse(state, target, sender, READER)
    assert message in str(err.value)


def test_the_path_is_the_senders_lb_sandbox_and_every_task_of_the_service(lab):
    state, plan = lab
    t = run.parse(state, "api:80", "web.1", READER)
    path = eastwest.path(state.model, plan, "web.1", t.east_west)
    targets = {state.targets[k]: k for k in state.targets}
    seen = [targets[n] for n in path.namespaces]
    assert seen[:4] == ["web.1", "node1", "node1/ov-backend", "node1/lb-backend"]
    assert {"api.1", "api.2", "api.3", "node2", "node2/ov-backend", "lan"} <= set(seen)
    assert "node2/lb-backend" not in seen and "web.2" not in seen
    assert "node1/ov-backend/vxlan0" in {p.label for p in path.points}


def _frame(point, t: float, out: bool, src: str, dst: str, flags: str = "S") -> Frame:
    (sip, sp), (dip, dp) = src.rsplit(":", 1), dst.rsplit(":", 1)
    ipid, seq = (1, 1000) if flags == "S" else (2, 5000)
    pkt = Ether() / IP(src=sip, dst=dip, id=ipid) / TCP(sport=int(sp), dport=int(dp),
                                                         flags=flags, seq=seq)
    return Frame(point, t, out, bytes(pkt))


def _flow(src: str, dst: str) -> Flow:
    (sip, sp), (dip, dp) = src.rsplit(":", 1), dst.rsplit(":", 1)
    return Flow("tcp", sip, int(sp), dip, int(dp))


def test_a_request_to_the_vip_is_marked_balanced_and_snatted_in_the_local_lb_sandbox(lab):
    state, plan = lab
    t = run.parse(state, "api:80", "web.1", READER)
    path = eastwest.path(state.model, plan, "web.1", t.east_west)
    pts = {p.label: p for p in path.points}
    steps = [("web.1/eth2", True, WEB, VIP), ("node1/ov-backend/veth0a000105", False, WEB, VIP),
             ("node1/ov-backend/veth0a000102", True, WEB, VIP), ("node1/lb-backend/eth0", False, WEB, VIP),
             ("node1/lb-backend/eth0", True, LB, API), ("node1/ov-backend/veth0a000102", False, LB, API),
             ("node1/ov-backend/veth0a000108", True, LB, API), ("api.1/eth0", False, LB, API)]
    back = [("api.1/eth0", True, API, LB), ("node1/lb-backend/eth0", False, API, LB),
            ("node1/lb-backend/eth0", True, VIP, WEB), ("web.1/eth2", False, VIP, WEB)]
    frames = tuple(_frame(pts[w], 100 + i / 1000, o, s, d) for i, (w, o, s, d) in enumerate(steps))
    frames += tuple(_frame(pts[w], 101 + i / 1000, o, s, d, "SA") for i, (w, o, s, d) in enumerate(back))
    grown = (RuleCounter("mangle", "INPUT", 1, MARK, "MARK", 1, 60),
             RuleCounter("nat", "POSTROUTING", 1, SNAT, "SNAT", 1, 60))
    before = {LB_NS: NsSnapshot(tuple(RuleCounter(c.table, c.chain, c.index, c.text, c.target, 0, 0)
                                      for c in grown))}
    after = {LB_NS: NsSnapshot(grown, (CtEntry(_flow(WEB, VIP), _flow(API, LB)),),
                               (IpvsConn("tcp", WEB, VIP, API, "ESTABLISHED"),)),
             API_NS: NsSnapshot((), (CtEntry(_flow(LB, API), _flow(API, LB)),))}
    request = Request("x", "api:80", "node1", VIP, "tcp", WEB, "web.1", "api")
    probe = ProbeResult("answered", ("10.0.1.5", 40000), {"task": "api.1", "node": "node1",
                                                         "task_ip": "10.0.1.8", "client": "10.0.1.2"})
    obs = Observation(request, _flow(WEB, VIP), probe, frames, before, after,
                      tuple(pts), ())
    facts = lab_facts(state.model, state.allocations, plan)
    trace = eastwest.with_resolution(correlate(obs, facts), eastwest.resolve_hop(
        t.east_west, "web.1", "node1", WEB))
    assert trace.verdict == "delivered" and trace.backend.task == "api.1"
    events = [h.event for h in trace.hops if h.leg == "request" and h.event not in ("rx", "tx")]
    assert events == ["resolve", "mark", "ipvs", "snat", "deliver"]
    assert [h.seq for h in trace.hops] == list(range(1, len(trace.hops) + 1))
    by = {h.event: h for h in trace.hops if h.leg == "request"}
    assert by["mark"].netns == "node1/lb-backend" and "mangle INPUT: MARK 0x102 (258)" in by["mark"].detail
    assert by["mark"].object == "svc/api:vip/backend"
    assert by["ipvs"].detail.startswith("IPVS FWM 258 rr → 10.0.1.8:80 (api.1 on node1)")
    assert "SNAT → 10.0.1.2" in by["snat"].detail and by["snat"].src == LB
    assert by["deliver"].netns == "api.1"
    assert not [h for h in trace.hops if h.event == "encap"]      # api.1 is local: no VXLAN
    diagram = render.mermaid(trace)
    assert "Note over P1: resolve: api → 10.0.1.7 (the VIP of api on backend" in diagram
