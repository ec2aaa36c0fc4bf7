"""Links, addresses, routes, neighbours and FDB entries over netlink (pyroute2).

:class:`Netlink` keeps one ``IPRoute`` per namespace (pyroute2 forks once to
open each) and counts the requests it makes, so benchmarks can report them.
Every function converges: it creates what is missing, fixes what differs and,
for entries netlab owns (addresses on its interfaces, permanent neighbours
and FDB entries on ``vxlan0``), removes what the plan no longer has.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import ndmsg

from netlab.diff.drift import vxlan_attrs as planned_vxlan_attrs
from netlab.kernel.netns import patient_pyroute2
from netlab.plan.types import Plan, Veth, Vxlan

NUD_PERMANENT = ndmsg.states["permanent"]
NTF_SELF = 0x02


@dataclass
class Netlink:
    """One pyroute2 socket per namespace, and a count of requests made."""

    sockets: dict[str, IPRoute] = field(default_factory=dict)
    requests: int = 0

    def __call__(self, netns: str) -> IPRoute:
        if netns not in self.sockets:
            # flags=0: never create a namespace by accident (a typo would).
            patient_pyroute2()
            self.sockets[netns] = IPRoute(netns=netns, flags=0)
        return self.sockets[netns]

    def do(self, netns: str, method: str, *args, **kwargs):
        """Call ``IPRoute.<method>`` in ``netns``, counting the request."""
        self.requests += 1
        return getattr(self(netns), method)(*args, **kwargs)

    def index(self, netns: str, ifname: str) -> int | None:
        self.requests += 1
        found = self(netns).link_lookup(ifname=ifname)
        return found[0] if found else None

    def forget(self, netns: str) -> None:
        sock = self.sockets.pop(netns, None)
        if sock is not None:
            sock.close()

    def close(self) -> None:
        for name in list(self.sockets):
            self.forget(name)


def _bring_up(nl: Netlink, netns: str, ifname: str, **attrs) -> int:
    idx = nl.index(netns, ifname)
    if idx is None:
        raise NetlinkError(19, f"{ifname} missing in {netns}")
    nl.do(netns, "link", "set", index=idx, state="up", **attrs)
    return idx


def ensure_bridge(nl: Netlink, netns: str, name: str, mtu: int) -> None:
    if nl.index(netns, name) is None:
        nl.do(netns, "link", "add", ifname=name, kind="bridge", mtu=mtu)
    _bring_up(nl, netns, name, mtu=mtu)


def ensure_veth(nl: Netlink, veth: Veth) -> None:
    """Create the pair with ``b`` born directly in its namespace, then configure both ends."""
    a, b = veth.a, veth.b
    have_a = nl.index(a.netns, a.name) is not None
    have_b = nl.index(b.netns, b.name) is not None
    if have_a != have_b:  # half a pair left by an interrupted run
        for end, present in ((a, have_a), (b, have_b)):
            if present:
                nl.do(end.netns, "link", "del", index=nl.index(end.netns, end.name))
        have_a = False
    if not have_a:
        nl.do(a.netns, "link", "add", ifname=a.name, kind="veth", mtu=veth.mtu,
              peer={"ifname": b.name, "net_ns_fd": b.netns, "mtu": veth.mtu})
    for end in (a, b):
        attrs: dict[str, object] = {"mtu": veth.mtu}
        if end.mac:
            attrs["address"] = end.mac
        if end.master:
            attrs["master"] = nl.index(end.netns, end.master)
        _bring_up(nl, end.netns, end.name, **attrs)


VXLAN_ATTRS = (("vni", "IFLA_VXLAN_ID"), ("port", "IFLA_VXLAN_PORT"),
               ("learning", "IFLA_VXLAN_LEARNING"), ("proxy", "IFLA_VXLAN_PROXY"),
               ("l2miss", "IFLA_VXLAN_L2MISS"), ("l3miss", "IFLA_VXLAN_L3MISS"))


def vxlan_attrs(msg) -> tuple[tuple[str, int], ...]:
    """(attribute, value) of a VXLAN link message, as :data:`VXLAN_ATTRS` names them;
    () for another kind of link."""
    info = msg.get_attr("IFLA_LINKINFO")
    if not info or info.get_attr("IFLA_INFO_KIND") != "vxlan":
        return ()
    data = info.get_attr("IFLA_INFO_DATA")
    return tuple((k, int(data.get_attr(a))) for k, a in VXLAN_ATTRS
                 if data is not None and data.get_attr(a) is not None)


def ensure_vxlan(nl: Netlink, vx: Vxlan) -> None:
    """Create the VXLAN in the node's host namespace (its UDP socket stays
    there, on the underlay), move it into the overlay namespace and rename it.
    One whose VXLAN attributes differ from ``vx`` (``ip link set … type vxlan
    nolearning``) is made again: the kernel cannot change most of them in place."""
    idx = nl.index(vx.netns, vx.name)
    if idx is not None and vxlan_attrs(nl.do(vx.netns, "link", "get", index=idx)[0]) != \
            planned_vxlan_attrs(vx):
        nl.do(vx.netns, "link", "del", index=idx)
        idx = None
    if idx is None:
        temp = f"vx-{vx.vni:06x}-ingre"[:15]
        old = nl.index(vx.underlay_netns, temp)
        if old is not None:
            nl.do(vx.underlay_netns, "link", "del", index=old)
        nl.do(vx.underlay_netns, "link", "add", ifname=temp, kind="vxlan", mtu=vx.mtu,
              vxlan_id=vx.vni, vxlan_port=vx.port, vxlan_learning=int(vx.learning),
              vxlan_proxy=int(vx.proxy), vxlan_l2miss=int(vx.l2miss),
              vxlan_l3miss=int(vx.l3miss))
        nl.do(vx.underlay_netns, "link", "set", index=nl.index(vx.underlay_netns, temp),
              net_ns_fd=vx.netns)
        nl.do(vx.netns, "link", "set", index=nl.index(vx.netns, temp), ifname=vx.name)
    _bring_up(nl, vx.netns, vx.name, mtu=vx.mtu, master=nl.index(vx.netns, vx.master))


def sync_addresses(nl: Netlink, netns: str, wanted: list[tuple[str, str, str | None]]) -> None:
    """Make the IPv4 addresses on the named interfaces exactly ``wanted``
    (ifname, cidr, broadcast); one with another broadcast is replaced."""
    by_if: dict[str, dict[str, str | None]] = defaultdict(dict)
    for ifname, cidr, brd in wanted:
        by_if[ifname][cidr] = brd
    for ifname, cidrs in by_if.items():
        idx = nl.index(netns, ifname)
        nl.requests += 1
        have = {f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}": a.get_attr("IFA_BROADCAST")
                for a in nl(netns).get_addr(index=idx, family=2)}
        for cidr in sorted(cidr for cidr in have if cidrs.get(cidr, "-") != have[cidr]):
            ip, plen = cidr.split("/")
            nl.do(netns, "addr", "del", index=idx, address=ip, prefixlen=int(plen))
        for cidr in sorted(cidr for cidr in cidrs if have.get(cidr, "-") != cidrs[cidr]):
            ip, plen = cidr.split("/")
            extra = {"broadcast": cidrs[cidr]} if cidrs[cidr] else {}
            nl.do(netns, "addr", "add", index=idx, address=ip, prefixlen=int(plen), **extra)


def ensure_route(nl: Netlink, netns: str, dst: str, gateway: str | None, ifname: str) -> None:
    kw: dict[str, object] = {"oif": nl.index(netns, ifname)}
    if gateway:
        kw["gateway"] = gateway
    kw["dst"] = "0.0.0.0/0" if dst == "default" else dst
    nl.do(netns, "route", "replace", **kw)


RTPROT_KERNEL = 2
RT_TABLE_MAIN = 254


def drop_stray_routes(nl: Netlink, netns: str, planned: set[str]) -> None:
    """Delete the main table's IPv4 routes of ``netns`` whose destination (``default``
    or a CIDR) the plan does not have; connected routes (the kernel's) stay."""
    nl.requests += 1
    for r in nl(netns).get_routes(family=2):
        if r.get_attr("RTA_TABLE", r["table"]) != RT_TABLE_MAIN or r["proto"] == RTPROT_KERNEL:
            continue
        dst = "default" if r["dst_len"] == 0 else f"{r.get_attr('RTA_DST')}/{r['dst_len']}"
        if dst not in planned:
            # The kernel deletes only a route whose protocol and scope match the
            # request's: pass the route's own, not pyroute2's defaults.
            kw = {"dst": "0.0.0.0/0" if dst == "default" else dst, "table": RT_TABLE_MAIN,
                  "proto": r["proto"], "scope": r["scope"], "type": r["type"]}
            for key, attr in (("oif", "RTA_OIF"), ("gateway", "RTA_GATEWAY")):
                if r.get_attr(attr):
                    kw[key] = r.get_attr(attr)
            nl.do(netns, "route", "del", **kw)


def sync_peers(nl: Netlink, netns: str, ifname: str,
               neighbours: list[tuple[str, str]], fdb: list[tuple[str, str]]) -> None:
    """Static peer entries on ``ifname``: neighbours (ip, mac) and FDB (mac, vtep),
    as libnetwork's peerdb programs them; stale permanent entries are removed."""
    idx = nl.index(netns, ifname)
    nl.requests += 1
    have_neigh = {}
    for n in nl(netns).get_neighbours(ifindex=idx, family=2):
        if n["state"] & NUD_PERMANENT:
            have_neigh[n.get_attr("NDA_DST")] = n.get_attr("NDA_LLADDR")
    for ip, mac in neighbours:
        if have_neigh.get(ip) != mac:
            nl.do(netns, "neigh", "replace", dst=ip, lladdr=mac, ifindex=idx, state=NUD_PERMANENT)
    for ip in set(have_neigh) - {ip for ip, _ in neighbours}:
        nl.do(netns, "neigh", "del", dst=ip, lladdr=have_neigh[ip], ifindex=idx)
    nl.requests += 1
    have_fdb = {}
    for f in nl(netns).fdb("dump", ifindex=idx):
        if f["ifindex"] == idx and f.get_attr("NDA_DST"):
            have_fdb[f.get_attr("NDA_LLADDR")] = f.get_attr("NDA_DST")
    for mac, vtep in fdb:
        if have_fdb.get(mac) != vtep:
            if mac in have_fdb:
                nl.do(netns, "fdb", "del", ifindex=idx, lladdr=mac, dst=have_fdb[mac])
            nl.do(netns, "fdb", "add", ifindex=idx, lladdr=mac, dst=vtep)
    for mac in set(have_fdb) - {m for m, _ in fdb}:
        nl.do(netns, "fdb", "del", ifindex=idx, lladdr=mac, dst=have_fdb[mac])


def apply_links(nl: Netlink, plan: Plan) -> None:
    """Everything of ``plan`` that lives in rtnetlink, in dependency order."""
    for ns in plan.netns:
        _bring_up(nl, ns.name, "lo")
    for b in plan.bridges:
        ensure_bridge(nl, b.netns, b.name, b.mtu)
    for veth in plan.veths:
        ensure_veth(nl, veth)
    for vx in plan.vxlans:
        ensure_vxlan(nl, vx)
    by_ns: dict[str, list[tuple[str, str, str | None]]] = defaultdict(list)
    for a in plan.addresses:
        by_ns[a.netns].append((a.ifname, a.cidr, a.broadcast))
    for netns, wanted in by_ns.items():
        sync_addresses(nl, netns, wanted)
    routed: dict[str, set[str]] = {ns.name: set() for ns in plan.netns}
    for r in plan.routes:
        routed.setdefault(r.netns, set()).add(r.dst)
    for netns, dsts in routed.items():
        drop_stray_routes(nl, netns, dsts)
    for r in plan.routes:
        ensure_route(nl, r.netns, r.dst, r.gateway, r.ifname)
    peers: dict[tuple[str, str], tuple[list, list]] = defaultdict(lambda: ([], []))
    for vx in plan.vxlans:
        peers[(vx.netns, vx.name)]
    for n in plan.neighbours:
        peers[(n.netns, n.ifname)][0].append((n.ip, n.mac))
    for f in plan.fdb:
        peers[(f.netns, f.ifname)][1].append((f.mac, f.dst))
    for (netns, ifname), (neigh, fdb) in peers.items():
        sync_peers(nl, netns, ifname, neigh, fdb)


def set_link_state(netns: str, ifname: str, up: bool) -> None:
    """Set ``ifname`` in ``netns`` administratively up or down (``ip link set … up|down``);
    raises NetlinkError when it does not exist."""
    nl = Netlink()
    try:
        idx = nl.index(netns, ifname)
        if idx is None:
            raise NetlinkError(19, f"{ifname} missing in {netns}")
        nl.do(netns, "link", "set", index=idx, state="up" if up else "down")
    finally:
        nl.close()
