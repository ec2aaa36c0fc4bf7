"""``netlab trace --docker``, pure: a real node's path, points and facts, and a request through
real Docker's rules (their text as iptables-save prints it: no netlab comments) correlated into
the same hops and verdicts as a lab's, named in Swarm's words.

The node: node1 (192.168.77.1) of a two-node Swarm; hello-a publishes 5000:3000, hello-a.1
runs here (container 3f2a1b9c0d1e), hello-a.2 on node2 (192.168.77.2).
"""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN

from netlab.docker.snapshot import (RealNode, RealPort, RealSandbox, RealService, RealTask,
                                   Snapshot)
from netlab.docker.trace import check_local, named, parse_target
from netlab.docker.tracepath import capture_points, real_facts, real_path
from netlab.errors import BadInput
from netlab.kernel.clientns import ClientNs
from netlab.kernel.iptables import RuleCounter
from netlab.kernel.netns import ROOT_NETNS
from netlab.kernel.realns import RealLink, RealNs, parse_schedulers
from netlab.trace.capture import Frame
from netlab.trace.correlate import Observation, correlate
from netlab.trace.evidence import CtEntry, Flow, IpvsConn, NsSnapshot
from netlab.trace.model import Request
from netlab.trace.probe import ProbeResult

D = "/var/run/docker/netns/"
SBOX, OV, T1NS = D + "ingress_sbox", D + "1-abcdef0123", D + "8c6a3b1f2d4e"
CLIENT = ClientNs("nl-dtrace-4242", "nldt4242", "eth0", "169.254.16.1", "169.254.16.2")
N1_ADDR, N2_ADDR = "192.168.77.1", "192.168.77.2"
C, N1, GW = "169.254.16.2:40000", f"{N1_ADDR}:5000", "172.18.0.2:5000"
OVS, T1, T1_APP, T2 = "10.0.0.2:40000", "10.0.0.5:5000", "10.0.0.5:3000", "10.0.0.6:5000"
MAC = {"sbox0": "02:42:0a:00:00:02", "sbox1": "02:42:ac:12:00:02", "t1": "02:42:0a:00:00:05",
       "t2": "02:42:0a:00:00:06", "gw": "02:42:ac:12:00:01", "client": "aa:00:00:00:00:02",
       "root": "aa:00:00:00:00:01"}

# Docker 20.10's own rules, as iptables-save -c prints them.
JUMP = "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER-INGRESS"
DNAT = "-A DOCKER-INGRESS -p tcp -m tcp --dport 5000 -j DNAT --to-destination 172.18.0.2:5000"
MARK = "-A PREROUTING -p tcp -m tcp --dport 5000 -j MARK --set-xmark 0x100/0xffffffff"
SNAT = "-A POSTROUTING -d 10.0.0.0/24 -m ipvs --ipvs -j SNAT --to-source 10.0.0.2"
REDIRECT = "-A PREROUTING -d 10.0.0.5/32 -p tcp -m tcp --dport 5000 -j REDIRECT --to-ports 3000"


def snapshot(local_sandbox: bool = True, mode: str = "ingress") -> Snapshot:
    nodes = (RealNode("n1id", "node1", "node1", "manager", N1_ADDR, "active", "ready"),
             RealNode("n2id", "node2", "node2", "worker", N2_ADDR, "active", "ready"))
    svc = RealService("s1", "hello-a", "replicated", 2, "vip", (RealPort(5000, 3000, "tcp", mode),),
                      (), {"ingress": "10.0.0.4/24"})
    tasks = (RealTask("t1id", "hello-a", 1, "node1", "running", "running", "3f2a1b9c0d1e" + "0" * 52,
                      {"ingress": "10.0.0.5/24"}, "hello-a.1"),
             RealTask("t2id", "hello-a", 2, "node2", "running", "running", "9d8e7f6a5b4c" + "0" * 52,
                      {"ingress": "10.0.0.6/24"}, "hello-a.2"))
    boxes = [RealSandbox(ROOT_NETNS, "node1", "the node's own network namespace"),
             RealSandbox(SBOX, "node1/ingress_sbox", "Docker's ingress sandbox"),
             RealSandbox(OV, "node1/ov-ingress", "overlay network ingress (id abcdef012345)")]
    if local_sandbox:
        boxes.append(RealSandbox(T1NS, "hello-a.1", "container 3f2a1b9c0d1e (hello-a.1.t1id)"))
    return Snapshot("node1", nodes, (), (svc,), tasks, tuple(boxes))


def link(name, index, kind=None, peer=None, master=None, mac=None, addrs=(), port=None):
    return RealLink(name, index, kind, peer, master, mac, tuple(addrs), port)


SEEN = {
    ROOT_NETNS: RealNs((link("lo", 1, addrs=["127.0.0.1/8"]),
                        link("eth0", 2, mac="52:54:00:00:00:01", addrs=[f"{N1_ADDR}/24"]),
                        link("docker_gwbridge", 3, "bridge", mac=MAC["gw"], addrs=["172.18.0.1/16"]),
                        link("veth1234", 11, "veth", 10, "docker_gwbridge", "ee:00:00:00:00:11"),
                        link("docker0", 4, "bridge", addrs=["172.17.0.1/16"]),
                        link("vethother", 30, "veth", 7, "docker0"),
                        link("nldt4242", 20, "veth", 2, mac=MAC["root"], addrs=["169.254.16.1/30"]))),
    SBOX: RealNs((link("lo", 1), link("eth0", 8, "veth", 9, mac=MAC["sbox0"], addrs=["10.0.0.2/24"]),
                  link("eth1", 10, "veth", 11, mac=MAC["sbox1"], addrs=["172.18.0.2/16"])),
                 parse_schedulers("IP Virtual Server version 1.2.1 (size=4096)\n"
                                  "Prot LocalAddress:Port Scheduler Flags\n"
                                  "FWM  00000100 rr\n  -> 0A000005:0000      Masq    1      0          0\n")),
    OV: RealNs((link("lo", 1), link("br0", 2, "bridge", addrs=["10.0.0.1/24"]),
                link("vxlan0", 3, "vxlan", master="br0", port=4789),
                link("veth0", 9, "veth", 8, "br0", "ee:00:00:00:00:09"),
                link("veth1", 13, "veth", 12, "br0", "ee:00:00:00:00:13"))),
    T1NS: RealNs((link("lo", 1), link("eth0", 12, "veth", 13, mac=MAC["t1"], addrs=["10.0.0.5/24"]),
                  link("eth1", 14, "veth", 15, mac="02:42:ac:12:00:03", addrs=["172.18.0.3/16"]))),
}


def setup(snap: Snapshot | None = None):
    snap = snap or snapshot()
    path = real_path(snap, CLIENT, 5000, "tcp")
    seen = {k: v for k, v in SEEN.items() if k in path.roles}
    points = capture_points(path, seen, {N1_ADDR}, CLIENT, "node1")
    return snap, path, {p.label: p for p in points}, real_facts(snap, path, seen)


def flow(src: str, dst: str) -> Flow:
    (sip, sp), (dip, dp) = src.rsplit(":", 1), dst.rsplit(":", 1)
    return Flow("tcp", sip, int(sp), dip, int(dp))


def rc(table: str, chain: str, text: str, packets: int = 1) -> RuleCounter:
    return RuleCounter(table, chain, 1, text, text.split(" -j ")[1].split()[0], packets, packets * 60)


def tcp(src: str, dst: str, smac: str, dmac: str, flags: str = "S") -> Ether:
    (sip, sp), (dip, dp) = src.rsplit(":", 1), dst.rsplit(":", 1)
    seq, ipid = (1000, 1) if flags == "S" else (5000, 2)
    return (Ether(src=smac, dst=dmac) / IP(src=sip, dst=dip, id=ipid)
            / TCP(sport=int(sp), dport=int(dp), flags=flags, seq=seq))


def vxlan(src: str, dst: str, inner: Ether) -> Ether:
    return (Ether(src="52:54:00:00:00:01", dst="52:54:00:00:00:02") / IP(src=src, dst=dst)
            / UDP(sport=44000, dport=4789) / VXLAN(vni=4096) / inner)


def along(pkt, *where):
    return [(w[1:], w[0] == ">", pkt) for w in where]


def request_steps(remote: bool):
    """The SYN and its SYN-ACK at every point of node1, hello-a.1 here or hello-a.2 on node2."""
    task, tmac = (T2, MAC["t2"]) if remote else (T1, MAC["t1"])
    inner = tcp(OVS, task, MAC["sbox0"], tmac)
    back = tcp(task, OVS, tmac, MAC["sbox0"], "SA")
    steps = along(tcp(C, N1, MAC["client"], MAC["root"]), ">client/eth0", "<node1/nldt4242")
    steps += along(tcp(C, GW, MAC["gw"], MAC["sbox1"]), ">node1/veth1234", "<node1/ingress_sbox/eth1")
    steps += along(inner, ">node1/ingress_sbox/eth0", "<node1/ov-ingress/veth0")
    if remote:
        steps += along(inner, ">node1/ov-ingress/vxlan0")
        steps += along(vxlan(N1_ADDR, N2_ADDR, inner), ">node1/eth0")
        reply = along(vxlan(N2_ADDR, N1_ADDR, back), "<node1/eth0")
        reply += along(back, "<node1/ov-ingress/vxlan0")
    else:
        steps += along(inner, ">node1/ov-ingress/veth1", "<hello-a.1/eth0")
        reply = along(back, ">hello-a.1/eth0", "<node1/ov-ingress/veth1")
    reply += along(back, ">node1/ov-ingress/veth0", "<node1/ingress_sbox/eth0")
    reply += along(tcp(GW, C, MAC["sbox1"], MAC["gw"], "SA"), ">node1/ingress_sbox/eth1",
                   "<node1/veth1234")
    reply += along(tcp(N1, C, MAC["root"], MAC["client"], "SA"), ">node1/nldt4242", "<client/eth0")
    return steps, reply, task


def observe(points, remote: bool, answered: bool = True) -> Observation:
    steps, reply, task = request_steps(remote)
    if answered:
        steps += reply
    frames = tuple(Frame(points[label], 100.0 + i / 1000, out, bytes(pkt))
                   for i, (label, out, pkt) in enumerate(steps))
    grown = {ROOT_NETNS: [rc("nat", "PREROUTING", JUMP), rc("nat", "DOCKER-INGRESS", DNAT)],
             SBOX: [rc("mangle", "PREROUTING", MARK), rc("nat", "POSTROUTING", SNAT)]}
    conntrack = {ROOT_NETNS: (CtEntry(flow(C, N1), flow(GW, C)),),
                 SBOX: (CtEntry(flow(C, GW), flow(task, OVS)),)}
    if not remote:
        grown[T1NS] = [rc("nat", "PREROUTING", REDIRECT)]
        conntrack[T1NS] = (CtEntry(flow(OVS, T1), flow(T1_APP, OVS)),)
    before = {ns: NsSnapshot(tuple(rc(c.table, c.chain, c.text, 0) for c in cs))
              for ns, cs in grown.items()}
    after = {ns: NsSnapshot(tuple(grown[ns]), conntrack[ns],
                            (IpvsConn("tcp", C, GW, task, "SYN_RECV"),) if ns == SBOX else ())
             for ns in grown}
    name = "hello-a.2.t2id" if remote else "hello-a.1.t1id"
    body = {"task": name, "node": "", "port": 3000, "path": "/"} if answered else None
    probe = ProbeResult("answered" if answered else "timeout", ("169.254.16.2", 40000), body,
                        None if answered else "no answer within 2.0 s", 3.0)
    request = Request("unix:///var/run/docker.sock", "192.168.77.1:5000", "node1", N1, "tcp", C,
                      "client", "hello-a")
    return Observation(request, flow(C, N1), probe, frames, before, after, tuple(points))


# -- the path --------------------------------------------------------------------------------
def test_path_roles_and_points():
    _snap, path, points, _facts = setup()
    assert path.roles == {CLIENT.name: "client", ROOT_NETNS: "host", SBOX: "sandbox",
                          OV: "overlay", T1NS: "task"}
    assert sorted(points) == [
        "client/eth0", "hello-a.1/eth0", "hello-a.1/eth1", "node1/eth0",
        "node1/ingress_sbox/eth0", "node1/ingress_sbox/eth1", "node1/nldt4242",
        "node1/ov-ingress/veth0", "node1/ov-ingress/veth1", "node1/ov-ingress/vxlan0",
        "node1/veth1234"]    # no bridge, no lo, nothing of docker0
    assert [t.name for t in path.remote_tasks] == ["hello-a.2"]


def test_path_says_a_sandbox_it_cannot_find():
    _snap, path, points, _facts = setup(snapshot(local_sandbox=False))
    assert T1NS not in path.roles and not any(p.startswith("hello-a.1/") for p in points)
    assert path.notes == ("hello-a.1: no namespace found on this node, so nothing there was captured",)


def test_underlay_bridge_ports_are_capture_points():
    """The node's address on a bridge (a LAN bridge, as netlab vm's two-node Swarm has):
    VXLAN leaves through its ports, so they are watched, the bridge itself is not."""
    snap = snapshot()
    root = RealNs((link("rs-lan", 2, "bridge", addrs=[f"{N1_ADDR}/24"]),
                   link("rs-node2", 5, "veth", 2, "rs-lan"), link("nldt4242", 20, "veth", 2),
                   link("vethx", 6, "veth", 3, "docker0")))
    path = real_path(snap, CLIENT, 5000, "tcp")
    points = capture_points(path, {ROOT_NETNS: root}, {N1_ADDR}, CLIENT, "node1")
    assert sorted(p.label for p in points) == ["client/eth0", "node1/nldt4242", "node1/rs-node2"]


def test_host_mode_skips_the_ingress_sandbox():
    _snap, path, _points, _facts = setup(snapshot(mode="host"))
    assert sorted(path.roles.values()) == ["client", "host", "task"]


def test_facts_name_real_objects():
    _snap, _path, _points, facts = setup()
    assert facts.tasks_by_ip["10.0.0.6"] == ("hello-a.2", "node2")
    assert facts.scheduler == {(SBOX, 256): "rr"}
    assert facts.peer[(SBOX, "eth1")] == "node1/veth1234"
    assert facts.peer[(OV, "veth1")] == "hello-a.1/eth0"
    assert facts.peer_mac[(ROOT_NETNS, "veth1234")] == MAC["sbox1"]
    assert (SBOX, "eth0") not in facts.peer_mac      # its peer is a bridge port: no endpoint MAC
    assert facts.owner_of_mac[MAC["t2"]] == "hello-a.2 on node2"
    assert facts.node_of_lan_ip == {N1_ADDR: "node1", N2_ADDR: "node2"}
    assert facts.target[ROOT_NETNS] == "node1" and facts.role[CLIENT.name] == "client"


# -- a request through it --------------------------------------------------------------------
def test_local_task_same_hops_as_a_lab():
    snap, path, points, facts = setup()
    trace = named(correlate(observe(points, remote=False), facts), snap, path, facts)
    assert trace.verdict == "delivered"
    events = [h.event for h in trace.hops if h.event not in ("rx", "tx")]
    assert events == ["dnat", "mark", "ipvs", "snat", "redirect", "deliver", "un-nat", "un-nat",
                      "un-nat"]
    by = {h.event: h for h in trace.hops}
    assert by["dnat"].netns == "node1" and by["dnat"].rule == DNAT and by["dnat"].object is None
    assert by["dnat"].detail == "nat PREROUTING DOCKER-INGRESS: DNAT → 172.18.0.2:5000"
    assert by["mark"].netns == "node1/ingress_sbox" and "MARK 0x100 (256)" in by["mark"].detail
    assert by["ipvs"].detail == "IPVS FWM 256 rr → 10.0.0.5:5000 (hello-a.1 on node1)"
    assert by["snat"].detail.startswith("nat POSTROUTING: SNAT → 10.0.0.2")
    assert by["redirect"].netns == "hello-a.1"
    assert by["deliver"].detail == ("delivered to hello-a.1: its app on :3000 accepted it "
                                    "(container 3f2a1b9c0d1e)")
    assert (trace.backend.task, trace.backend.node, trace.backend.ip) == ("hello-a.1", "node1",
                                                                          "10.0.0.5")
    assert trace.reason == "hello-a.1 (container 3f2a1b9c0d1e) on node1 answered"
    assert f"hello-a.1 is container 3f2a1b9c0d1e (hello-a.1.t1id): {T1NS}" in trace.notes
    assert trace.hops[0].netns == "client" and trace.hops[0].iface == "eth0"


def test_remote_task_stops_at_vxlan_and_says_so():
    snap, path, points, facts = setup()
    trace = named(correlate(observe(points, remote=True), facts), snap, path, facts)
    assert trace.verdict == "delivered"
    assert (trace.backend.task, trace.backend.node) == ("hello-a.2", "node2")
    encap = next(h for h in trace.hops if h.event == "encap" and h.leg == "request")
    assert encap.netns == "node1" and encap.iface == "eth0"
    assert encap.detail.endswith("sent over VXLAN to 192.168.77.2 (node2, where hello-a.2 runs), "
                                 "not observable here: netlab trace --docker on that node sees "
                                 "the rest")
    assert not any(h.event in ("redirect", "deliver") for h in trace.hops)
    back = next(h for h in trace.hops if h.leg == "reply")
    assert (back.event, back.netns, back.iface, back.dir) == ("encap", "node1", "eth0", "in")
    assert back.detail == ("the reply over VXLAN VNI 4096 from 192.168.77.2 (node2, where "
                           "hello-a.2 runs), encapsulated there, not observable here")


def test_remote_task_unanswered_is_dropped_with_what_cannot_be_seen():
    snap, path, points, facts = setup()
    trace = named(correlate(observe(points, remote=True, answered=False), facts), snap, path, facts)
    assert trace.verdict == "dropped"
    assert trace.reason.endswith("what happened on the other node is not observable from this one")


# -- the target ------------------------------------------------------------------------------
def test_parse_target():
    t = parse_target("192.168.77.1:5000/udp")
    assert (t.addr, t.port, t.proto) == ("192.168.77.1", 5000, "udp")
    for bad in ("node1:5000", "192.168.77.1", "192.168.77.1:0", "192.168.77.1:5000/sctp"):
        with pytest.raises(BadInput, match="NODE_ADDRESS:PORT"):
            parse_target(bad)


def test_check_local_names_this_nodes_addresses():
    check_local(parse_target("192.168.77.1:5000"), SEEN[ROOT_NETNS])
    with pytest.raises(BadInput, match=r"192.168.77.2 is not an address of this node \(hint: one "
                                       r"of 169.254.16.1, 172.17.0.1, 172.18.0.1, 192.168.77.1;"):
        check_local(parse_target("192.168.77.2:5000"), SEEN[ROOT_NETNS])
