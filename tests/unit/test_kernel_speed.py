"""The pure parts of applying at kernel speed (issue 17), without root: rtnetlink
messages packed and read back, acks matched to requests, and which namespaces a
change touches, layer by layer."""

from __future__ import annotations

import dataclasses
import errno
import shutil
import struct
from pathlib import Path

import pytest
from pyroute2.netlink.exceptions import NetlinkError

from netlab import converge, ipam, lifecycle, state
from netlab.kernel import apply as kernel_apply
from netlab.kernel import rtnl
from netlab.diff.drift import vxlan_attrs
from netlab.model import scale
from netlab.plan import names
from netlab.plan.build import build_plan
from netlab.plan.types import Vxlan
from netlab.scenario import load_lab
from tests.unit.fakes import FakeHost

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


# -- packing and reading messages --------------------------------------------

def test_attr_is_padded_to_four_bytes_and_reads_back():
    a = rtnl.attr(rtnl.IFLA_IFNAME, rtnl.strz("eth0"))
    assert len(a) == 12 and struct.unpack_from("=HH", a) == (9, rtnl.IFLA_IFNAME)
    both = a + rtnl.attr(rtnl.IFLA_MTU, rtnl.u32(1450))
    assert rtnl.parse_attrs(both) == {rtnl.IFLA_IFNAME: b"eth0\0", rtnl.IFLA_MTU: rtnl.u32(1450)}


def test_veth_request_carries_its_peer_born_in_another_namespace():
    peer = rtnl.link_body(name="eth1", mtu=1500, address="02:42:ac:12:00:03", netns_fd=7)
    body = rtnl.link_body(name="veth5d3c", kind="veth", mtu=1500, master=4, up=True,
                          data=rtnl.veth_data(peer))
    fam, _type, index, flags, change = rtnl.IFINFO.unpack_from(body)
    assert (index, flags, change) == (0, rtnl.IFF_UP, rtnl.IFF_UP)
    top = rtnl.parse_attrs(body, rtnl.IFINFO.size)
    assert top[rtnl.IFLA_IFNAME] == b"veth5d3c\0" and top[rtnl.IFLA_MASTER] == rtnl.u32(4)
    info = rtnl.parse_attrs(top[rtnl.IFLA_LINKINFO])
    assert info[rtnl.IFLA_INFO_KIND] == b"veth\0"
    inner = rtnl.parse_attrs(info[rtnl.IFLA_INFO_DATA])[rtnl.VETH_INFO_PEER]
    _f, _t, _i, pflags, pchange = rtnl.IFINFO.unpack_from(inner)
    assert (pflags, pchange) == (0, 0)       # a peer cannot come up before the pair is whole
    pattrs = rtnl.parse_attrs(inner, rtnl.IFINFO.size)
    assert pattrs[rtnl.IFLA_NET_NS_FD] == rtnl.u32(7)
    assert pattrs[rtnl.IFLA_ADDRESS] == bytes([2, 0x42, 0xac, 0x12, 0, 3])


def test_link_down_clears_up_and_says_it_changes():
    _f, _t, _i, flags, change = rtnl.IFINFO.unpack_from(rtnl.link_body(name="veth-node2", up=False))
    assert (flags, change) == (0, rtnl.IFF_UP)
    _f, _t, _i, flags, change = rtnl.IFINFO.unpack_from(rtnl.link_body(3, mtu=1450))
    assert (flags, change) == (0, 0)


def test_a_vxlan_read_back_compares_with_the_plans_attributes():
    vx = Vxlan("nl-x.node1.ov-ingress", "nl-x.node1", "vxlan0", 4096, 4789, 1450, "br0",
               learning=False)
    data = rtnl.vxlan_data(vx.vni, vx.port, vx.learning, vx.proxy, vx.l2miss, vx.l3miss)
    body = rtnl.link_body(9, "vxlan0", kind="vxlan", data=data, master=2)
    info = rtnl.link_info(rtnl.Msg(body[:rtnl.IFINFO.size], rtnl.parse_attrs(body, rtnl.IFINFO.size)))
    assert (info.index, info.name, info.kind, info.master) == (9, "vxlan0", "vxlan", 2)
    assert info.vxlan == vxlan_attrs(vx)
    assert dict(info.vxlan)["port"] == 4789 and dict(info.vxlan)["learning"] == 0


def test_route_address_neighbour_and_fdb_requests():
    r = rtnl.route_body("0.0.0.0/0", "172.18.0.1", 3)
    fields = rtnl.RTMSG.unpack_from(r)
    assert fields[1] == 0 and fields[4] == rtnl.RT_TABLE_MAIN and fields[6] == rtnl.RT_SCOPE_UNIVERSE
    attrs = rtnl.parse_attrs(r, rtnl.RTMSG.size)
    assert rtnl.RTA_DST not in attrs and attrs[rtnl.RTA_GATEWAY] == bytes([172, 18, 0, 1])
    link_scope = rtnl.RTMSG.unpack_from(rtnl.route_body("10.0.1.0/24", None, 3))[6]
    assert link_scope == rtnl.RT_SCOPE_LINK
    a = rtnl.addr_body(2, "10.0.0.5/24", "10.0.0.255")
    assert rtnl.IFADDR.unpack_from(a) == (2, 24, 0, 0, 2)
    assert rtnl.parse_attrs(a, rtnl.IFADDR.size)[rtnl.IFA_BROADCAST] == bytes([10, 0, 0, 255])
    f = rtnl.fdb_body(5, "02:42:0a:00:00:07", "192.168.56.12")
    assert rtnl.NDMSG.unpack_from(f) == (rtnl.AF_BRIDGE, 5, rtnl.NUD_PERMANENT, rtnl.NTF_SELF, 0)
    n = rtnl.neigh_body(5, "10.0.0.7", "02:42:0a:00:00:07")
    assert rtnl.parse_attrs(n, rtnl.NDMSG.size)[rtnl.NDA_DST] == bytes([10, 0, 0, 7])


class AckingSocket:
    """A socket that answers as rtnetlink does: a refusal always (errno by sequence
    number), an ack only when asked for, and a GET's object before its ack."""

    def __init__(self, errors: dict[int, int]):
        self.errors, self.sent, self.pending = errors, [], []

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        off = 0
        while off < len(data):
            n, mtype, flags, seq, _p = struct.unpack_from("=IHHII", data, off)
            if mtype == rtnl.RTM_GETLINK:
                self.pending.append(struct.pack("=IHHII", 32, rtnl.RTM_NEWLINK, 0, seq, 0)
                                    + rtnl.IFINFO.pack(0, 0, 1, 0, 0))
            if flags & rtnl.NLM_F_ACK or self.errors.get(seq):
                self.pending.append(struct.pack("=IHHII", 36, rtnl.NLMSG_ERROR, 0, seq, 0)
                                    + struct.pack("=i", -self.errors.get(seq, 0))
                                    + data[off:off + 16])
            off += n
        return len(data)

    def recv(self, _size: int) -> bytes:
        out, self.pending = b"".join(self.pending[:3]), self.pending[3:]
        return out


def test_a_batch_goes_in_one_send_and_every_ack_is_read():
    sock = AckingSocket({})
    r = rtnl.Rtnl("nl-x.node1", sock)
    for i in range(7):
        r.queue(rtnl.RTM_NEWADDR, 0, rtnl.addr_body(2, f"10.0.0.{i + 2}/24"), f"address {i}")
    r.flush()
    assert len(sock.sent) == 1 and not sock.pending and r.requests == 7
    flags = []
    off, data = 0, sock.sent[0]
    while off < len(data):
        n, mtype, f, _seq, _p = struct.unpack_from("=IHHII", data, off)
        flags.append((mtype, f & rtnl.NLM_F_ACK))
        off += n
    # no ack asked for but by the last request, which closes the batch
    assert flags == [(rtnl.RTM_NEWADDR, 0)] * 7 + [(rtnl.RTM_GETLINK, rtnl.NLM_F_ACK)]


def test_a_refusal_names_the_request_and_the_namespace_and_fine_errnos_pass():
    r = rtnl.Rtnl("nl-x.node1", AckingSocket({2: errno.EEXIST, 3: errno.ENOENT}))
    r.queue(rtnl.RTM_NEWLINK, 0, rtnl.link_body(1, up=True), "lo up")
    r.queue(rtnl.RTM_NEWLINK, 0, rtnl.link_body(name="br0", kind="bridge"), "bridge br0")
    r.queue(rtnl.RTM_DELNEIGH, 0, rtnl.neigh_body(5, "10.0.0.9", None), "del neighbour",
            fine=(errno.ENOENT,))
    with pytest.raises(NetlinkError) as err:
        r.flush()
    assert err.value.code == errno.EEXIST and "bridge br0 in nl-x.node1" in str(err.value)


# -- which namespaces a change touches ------------------------------------------

@pytest.fixture
def seed_plans():
    lab = load_lab(SCENARIOS / "hello-a.yaml")
    a = ipam.allocate(lab)
    after = scale(lab, {"hello-a": 3})
    return lab, build_plan(lab, a), after, build_plan(after, ipam.allocate(after, a))


def test_scaling_up_touches_the_new_task_its_node_every_overlay_and_sandbox(seed_plans):
    lab, before, after_lab, after = seed_plans
    t = kernel_apply.touched(before, after)
    new = names.task_ns(lab.name, "hello-a.3")
    node = next(x.node for x in after_lab.tasks if x.name == "hello-a.3")
    assert new in t.links and new in t.tables and new in t.ipvs
    assert names.node_ns(lab.name, node) in t.links          # the veth on docker_gwbridge
    for n in lab.nodes:
        assert names.overlay_ns(lab.name, n.name) in t.links   # br0 port or peer entries
        assert names.overlay_ns(lab.name, n.name) not in t.tables
    sandboxes = {ns.name for ns in after.netns if ns.role == "sandbox"}
    assert sandboxes <= t.ipvs and not (sandboxes & t.tables)
    untouched = {names.task_ns(lab.name, "hello-a.1"), names.task_ns(lab.name, "hello-a.2"),
                 names.lan_ns(lab.name)}
    assert not (untouched & t.any)


def test_nothing_is_touched_when_nothing_changes(seed_plans):
    _lab, before, _after_lab, _after = seed_plans
    assert kernel_apply.touched(before, before).any == frozenset()


def test_restrict_keeps_a_veth_by_either_end_and_added_is_a_difference(seed_plans):
    lab, before, _after_lab, after = seed_plans
    new = names.task_ns(lab.name, "hello-a.3")
    cut = kernel_apply.restrict(after, {new})
    assert [ns.name for ns in cut.netns] == [new]
    assert cut.veths and all(new in (v.a.netns, v.b.netns) for v in cut.veths)
    assert all(x.netns == new for x in cut.addresses + cut.routes + cut.rules)
    more = kernel_apply.added(before, after)
    assert set(more.veths) == set(after.veths) - set(before.veths)
    assert {f.mac for f in more.fdb} <= {f.mac for f in after.fdb} and more.fdb
    assert kernel_apply.added(after, after) == dataclasses.replace(
        after, **{f.name: () for f in dataclasses.fields(after) if f.name != "lab"})


def test_a_change_tells_the_kernel_the_plan_it_holds_and_up_does_not(tmp_path):
    scenario = tmp_path / "hello-a.yaml"
    shutil.copy(SCENARIOS / "hello-a.yaml", scenario)
    store, fake = state.StateStore(tmp_path / "store"), FakeHost()
    lifecycle.up(load_lab(scenario), str(scenario), store, "legacy", host=fake.host())
    assert fake.kernel.before == [None]
    converge.scale("hello-a", {"hello-a": 3}, store, host=fake.host())
    held = fake.kernel.before[-1]
    assert held is not None
    assert names.task_ns("hello-a", "hello-a.3") not in {ns.name for ns in held.netns}
    assert names.task_ns("hello-a", "hello-a.3") in {ns.name for ns in fake.kernel.applied[-1][0].netns}


def test_a_task_restarted_on_another_node_is_touched_in_every_layer(tmp_path):
    scenario = tmp_path / "hello-a.yaml"
    shutil.copy(SCENARIOS / "hello-a.yaml", scenario)
    store, fake = state.StateStore(tmp_path / "store"), FakeHost()
    lifecycle.up(load_lab(scenario), str(scenario), store, "legacy", host=fake.host())
    converge.node("hello-a", "node2", "down", store, host=fake.host())
    held, applied = fake.kernel.before[-1], fake.kernel.applied[-1][0]
    moved = names.task_ns("hello-a", "hello-a.2")        # same name, now on node1
    assert moved in {ns.name for ns in held.netns} and moved in {ns.name for ns in applied.netns}
    t, more, less = kernel_apply.diff(held, applied)
    assert moved in t.links and moved in t.tables and moved in t.ipvs
    assert names.lan_ns("hello-a") in t.links               # node2's LAN port left the plan
    # what the move adds and drops: its veth now hangs off node1's bridges
    assert any(moved in (v.a.netns, v.b.netns) for v in more.veths)
    assert any(moved in (v.a.netns, v.b.netns) for v in less.veths)
    both = kernel_apply.merged(more, applied)
    assert set(both.routes) == set(applied.routes) and len(both.routes) == len(applied.routes)


class _DumpSocket:
    """A netlink socket that answers one dump with ``replies`` (neighbour messages)."""

    def __init__(self, replies: list[bytes]):
        self.replies, self.sent = replies, []

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def recv(self, _size: int) -> bytes:
        seq = struct.unpack_from("=IHHII", self.sent[-1])[3]
        out = b""
        for body in self.replies:
            out += struct.pack("=IHHII", 16 + len(body), rtnl.RTM_NEWNEIGH, 2, seq, 0) + body
        return out + struct.pack("=IHHII", 20, rtnl.NLMSG_DONE, 2, seq, 0) + b"\0" * 4


def test_a_dump_keeps_only_what_its_filter_accepts_and_parses_only_those():
    def neigh(state: int, ip: str) -> bytes:
        return rtnl.NDMSG.pack(2, 3, state, 0, 0) + rtnl.attr(rtnl.NDA_DST, rtnl.ip4(ip))
    sock = _DumpSocket([neigh(rtnl.NUD_PERMANENT, "10.0.0.5"), neigh(0x02, "10.0.0.6"),
                        neigh(rtnl.NUD_PERMANENT, "10.0.0.7")])
    s = rtnl.Rtnl("nl-x.node1", sock)  # type: ignore[arg-type]
    fixed = rtnl.NDMSG.pack(2, 0, 0, 0, 0)
    assert [m.ip(rtnl.NDA_DST) for m in s.dump(rtnl.RTM_GETNEIGH, fixed)] == \
        ["10.0.0.5", "10.0.0.6", "10.0.0.7"]
    kept = s.dump(rtnl.RTM_GETNEIGH, fixed,
                  lambda h: bool(rtnl.NDMSG.unpack(h)[2] & rtnl.NUD_PERMANENT))
    assert [m.ip(rtnl.NDA_DST) for m in kept] == ["10.0.0.5", "10.0.0.7"]
