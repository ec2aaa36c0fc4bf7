"""Links, addresses, routes, neighbours and FDB entries over rtnetlink, in batches.

:func:`apply_links` converges: it creates what is missing, fixes what
differs and, for entries netlab owns (addresses on its interfaces, permanent
neighbours and FDB entries on ``vxlan0``), removes what the plan no longer
has. It talks to the kernel through :class:`Sockets` (one
:class:`netlab.kernel.rtnl.Rtnl` per namespace, requests sent many at a
time) in three rounds: loopbacks and bridges; veth pairs (each made whole
from its master's side, the peer born in its own namespace) and VXLANs (born
in the overlay namespace, their UDP socket in the underlay one); then
masters, addresses, routes, neighbours and FDB entries. A namespace made
just now (``fresh``) holds nothing, so it is written without being read
first; others are read with one dump per table.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

import errno
import os
import socket

from pyroute2.netlink.exceptions import NetlinkError

from netlab.kernel import netns as kernel_netns
from netlab.kernel import rtnl
from netlab.diff.drift import vxlan_attrs as planned_vxlan_attrs
from netlab.kernel.rtnl import LinkInfo, Rtnl
from netlab.plan.types import Plan

NUD_PERMANENT = rtnl.NUD_PERMANENT
NTF_SELF = rtnl.NTF_SELF


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


RTPROT_KERNEL = 2
RT_TABLE_MAIN = 254
LO_INDEX = 1          # the loopback is the first device of every namespace


@dataclass
class Sockets:
    """One :class:`Rtnl` per namespace, and an open file of each namespace (for
    IFLA_NET_NS_FD: a veth's peer or a VXLAN born in another namespace).

    :meth:`open` opens many in one thread that enters them in turn. Raises
    NetnsError when a namespace is missing or cannot be entered.
    """

    socks: dict[str, Rtnl] = field(default_factory=dict)
    fds: dict[str, int] = field(default_factory=dict)
    closed_requests: int = 0

    def open(self, names) -> None:
        todo = [n for n in dict.fromkeys(names) if n not in self.socks]
        for name, sock in kernel_netns.open_in_each(todo, rtnl.open_socket).items():
            self.socks[name] = Rtnl(name, sock)

    def __call__(self, netns: str) -> Rtnl:
        if netns not in self.socks:
            self.open([netns])
        return self.socks[netns]

    def fd(self, netns: str) -> int:
        if netns not in self.fds:
            self.fds[netns] = os.open(kernel_netns.path(netns), os.O_RDONLY | os.O_CLOEXEC)
        return self.fds[netns]

    def flush(self) -> None:
        """Send every namespace's queued requests; raises NetlinkError for a refusal."""
        for sock in self.socks.values():
            sock.flush()

    @property
    def requests(self) -> int:
        return self.closed_requests + sum(s.requests for s in self.socks.values())

    def close(self) -> None:
        for sock in self.socks.values():
            self.closed_requests += sock.requests
            sock.close()
        self.socks.clear()
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


def read_links(sk: Sockets, netns: str) -> dict[str, LinkInfo]:
    """The links of ``netns`` by name (one dump)."""
    return {li.name: li for li in map(rtnl.link_info,
                                      sk(netns).dump(rtnl.RTM_GETLINK, rtnl.IFINFO.pack(0, 0, 0, 0, 0)))}


def _index(links: dict[str, dict[str, LinkInfo]], netns: str, ifname: str) -> int:
    li = links.get(netns, {}).get(ifname)
    if li is None:
        raise NetlinkError(19, f"{ifname} missing in {netns}")
    return li.index


def apply_links(sk: Sockets, plan: Plan, fresh: AbstractSet[str] = frozenset(),
                known: AbstractSet[str] = frozenset()) -> None:
    """Everything of ``plan`` that lives in rtnetlink, in dependency order; namespaces
    in ``fresh`` were made just now and are not read before being written; in
    ``known`` ones (a change's: ``plan`` is then what the change adds) only the
    links are read, for their indexes, and nothing is removed.
    Raises NetlinkError when the kernel refuses a request."""
    involved = {ns.name for ns in plan.netns}
    involved |= {v.a.netns for v in plan.veths} | {v.b.netns for v in plan.veths}
    involved |= {v.underlay_netns for v in plan.vxlans} | {v.netns for v in plan.vxlans}
    involved |= {x.netns for kind in (plan.bridges, plan.addresses, plan.routes, plan.neighbours,
                                      plan.fdb) for x in kind}
    sk.open(sorted(involved))
    links: dict[str, dict[str, LinkInfo]] = {
        n: ({} if n in fresh else read_links(sk, n)) for n in sorted(involved)}
    changed: set[str] = set()
    # 1. loopbacks and bridges
    for ns in plan.netns:
        sk(ns.name).queue(rtnl.RTM_NEWLINK, 0, rtnl.link_body(LO_INDEX, up=True), "lo up")
    for b in plan.bridges:
        have = links[b.netns].get(b.name)
        if have is None:
            sk(b.netns).queue(rtnl.RTM_NEWLINK, rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL,
                              rtnl.link_body(name=b.name, kind="bridge", mtu=b.mtu, up=True),
                              f"bridge {b.name}")
            changed.add(b.netns)
        else:
            sk(b.netns).queue(rtnl.RTM_NEWLINK, 0, rtnl.link_body(have.index, mtu=b.mtu, up=True),
                              f"{b.name} up")
    sk.flush()
    for n in changed:
        links[n] = read_links(sk, n)
    changed = set()
    # 2. veth pairs and VXLANs; half pairs and VXLANs with other attributes go first
    for v in plan.veths:
        ha, hb = links[v.a.netns].get(v.a.name), links[v.b.netns].get(v.b.name)
        if (ha is None) != (hb is None):        # half a pair left by an interrupted run
            end, have = (v.a, ha) if ha is not None else (v.b, hb)
            assert have is not None
            sk(end.netns).queue(rtnl.RTM_DELLINK, 0, rtnl.link_body(have.index), f"del {end.name}")
            links[end.netns].pop(end.name)
    for vx in plan.vxlans:
        have = links[vx.netns].get(vx.name)
        if have is not None and have.vxlan != planned_vxlan_attrs(vx):
            sk(vx.netns).queue(rtnl.RTM_DELLINK, 0, rtnl.link_body(have.index), f"del {vx.name}")
            links[vx.netns].pop(vx.name)
    sk.flush()
    made: set[tuple[str, str]] = set()       # (netns, name) of veth ends made whole just now
    for v in plan.veths:
        pa, pb = v.a, v.b
        if pa.name in links[pa.netns]:
            continue
        # The peer cannot come up before the pair is whole (ENOTCONN): round 3 does it.
        peer = rtnl.link_body(name=pb.name, mtu=v.mtu, address=pb.mac,
                              netns_fd=None if pb.netns == pa.netns else sk.fd(pb.netns))
        master = _index(links, pa.netns, pa.master) if pa.master else None
        sk(pa.netns).queue(rtnl.RTM_NEWLINK, rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL,
                          rtnl.link_body(name=pa.name, kind="veth", mtu=v.mtu, address=pa.mac,
                                         master=master, up=True, data=rtnl.veth_data(peer)),
                          f"veth {pa.name}/{pb.name}")
        changed |= {pa.netns, pb.netns}
        made.add((pa.netns, pa.name))
    for vx in plan.vxlans:
        if vx.name in links[vx.netns]:
            continue
        data = rtnl.vxlan_data(vx.vni, vx.port, vx.learning, vx.proxy, vx.l2miss, vx.l3miss)
        sk(vx.underlay_netns).queue(
            rtnl.RTM_NEWLINK, rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL,
            rtnl.link_body(name=vx.name, kind="vxlan", mtu=vx.mtu, up=True, data=data,
                           master=_index(links, vx.netns, vx.master), netns_fd=sk.fd(vx.netns)),
            f"vxlan {vx.name} in {vx.netns}")
        changed.add(vx.netns)
    sk.flush()
    for n in changed:
        links[n] = read_links(sk, n)
    # 3. links that existed, masters, addresses, routes, neighbours and FDB entries
    for v in plan.veths:
        for end in (v.a, v.b):
            if (end.netns, end.name) in made:
                continue
            master = _index(links, end.netns, end.master) if end.master else None
            sk(end.netns).queue(rtnl.RTM_NEWLINK, 0, rtnl.link_body(
                _index(links, end.netns, end.name), mtu=v.mtu, address=end.mac, master=master,
                up=True), f"{end.name} up")
    for vx in plan.vxlans:
        sk(vx.netns).queue(rtnl.RTM_NEWLINK, 0, rtnl.link_body(
            _index(links, vx.netns, vx.name), mtu=vx.mtu, up=True,
            master=_index(links, vx.netns, vx.master)), f"{vx.name} up")
    by_ns: dict[str, list[tuple[str, str, str | None]]] = defaultdict(list)
    for ad in plan.addresses:
        by_ns[ad.netns].append((ad.ifname, ad.cidr, ad.broadcast))
    for netns, wanted in by_ns.items():
        sync_addresses(sk, links, netns, wanted, netns in fresh or netns in known)
    routed: dict[str, set[str]] = {ns.name: set() for ns in plan.netns}
    for r in plan.routes:
        routed.setdefault(r.netns, set()).add(r.dst)
    for netns, dsts in routed.items():
        if netns not in fresh and netns not in known:
            drop_stray_routes(sk, links, netns, dsts)
    for r in plan.routes:
        dst = "0.0.0.0/0" if r.dst == "default" else r.dst
        sk(r.netns).queue(rtnl.RTM_NEWROUTE, rtnl.NLM_F_CREATE | rtnl.NLM_F_REPLACE,
                          rtnl.route_body(dst, r.gateway, _index(links, r.netns, r.ifname)),
                          f"route {r.dst}")
    peers: dict[tuple[str, str], tuple[list, list]] = defaultdict(lambda: ([], []))
    for vx in plan.vxlans:
        peers[(vx.netns, vx.name)]
    for nb in plan.neighbours:
        peers[(nb.netns, nb.ifname)][0].append((nb.ip, nb.mac))
    for f in plan.fdb:
        peers[(f.netns, f.ifname)][1].append((f.mac, f.dst))
    for (netns, ifname), (neigh, fdb) in peers.items():
        sync_peers(sk, netns, _index(links, netns, ifname), neigh, fdb,
                   netns in fresh or netns in known)
    sk.flush()


def remove_entries(sk: Sockets, gone: Plan) -> None:
    """Delete ``gone``'s addresses, routes, neighbours and FDB entries (what a change
    removes from namespaces that stay); ones already absent are no refusal."""
    names = sorted({x.netns for kind in (gone.addresses, gone.routes, gone.neighbours, gone.fdb)
                    for x in kind})
    sk.open(names)
    links = {n: read_links(sk, n) for n in names}

    def index(netns: str, ifname: str) -> int | None:
        li = links[netns].get(ifname)
        return li.index if li is not None else None
    for a in gone.addresses:
        if (idx := index(a.netns, a.ifname)) is not None:
            sk(a.netns).queue(rtnl.RTM_DELADDR, 0, rtnl.addr_body(idx, a.cidr), f"del address {a.cidr}",
                              fine=(errno.EADDRNOTAVAIL, errno.ENOENT))
    for r in gone.routes:
        sk(r.netns).queue(rtnl.RTM_DELROUTE, 0, rtnl.route_body(
            "0.0.0.0/0" if r.dst == "default" else r.dst, r.gateway, index(r.netns, r.ifname) or 0),
            f"del route {r.dst}", fine=(errno.ESRCH, errno.ENOENT))
    for n in gone.neighbours:
        if (idx := index(n.netns, n.ifname)) is not None:
            sk(n.netns).queue(rtnl.RTM_DELNEIGH, 0, rtnl.neigh_body(idx, n.ip, n.mac),
                              f"del neighbour {n.ip}", fine=(errno.ENOENT,))
    for f in gone.fdb:
        if (idx := index(f.netns, f.ifname)) is not None:
            sk(f.netns).queue(rtnl.RTM_DELNEIGH, 0, rtnl.fdb_body(idx, f.mac, f.dst),
                              f"del fdb {f.mac}", fine=(errno.ENOENT,))
    sk.flush()


def sync_addresses(sk: Sockets, links: dict[str, dict[str, LinkInfo]], netns: str,
                   wanted: list[tuple[str, str, str | None]], fresh: bool) -> None:
    """Make the IPv4 addresses on the named interfaces exactly ``wanted``
    (ifname, cidr, broadcast); one with another broadcast is replaced."""
    by_if: dict[str, dict[str, str | None]] = defaultdict(dict)
    for ifname, cidr, brd in wanted:
        by_if[ifname][cidr] = brd
    dumped: dict[int, dict[str, str | None]] = defaultdict(dict)
    if not fresh:
        for m in sk(netns).dump(rtnl.RTM_GETADDR, rtnl.IFADDR.pack(socket.AF_INET, 0, 0, 0, 0)):
            _fam, plen, _fl, _scope, idx = rtnl.IFADDR.unpack(m.fixed)
            ip = m.ip(rtnl.IFA_LOCAL) or m.ip(rtnl.IFA_ADDRESS)
            dumped[idx][f"{ip}/{plen}"] = m.ip(rtnl.IFA_BROADCAST)
    for ifname, cidrs in by_if.items():
        idx = _index(links, netns, ifname)
        have = dumped.get(idx, {})
        for cidr in sorted(c for c in have if cidrs.get(c, "-") != have[c]):
            sk(netns).queue(rtnl.RTM_DELADDR, 0, rtnl.addr_body(idx, cidr), f"del address {cidr}")
        for cidr in sorted(c for c in cidrs if have.get(c, "-") != cidrs[c]):
            sk(netns).queue(rtnl.RTM_NEWADDR, rtnl.NLM_F_CREATE | rtnl.NLM_F_REPLACE,
                            rtnl.addr_body(idx, cidr, cidrs[cidr]), f"address {cidr} on {ifname}")


def drop_stray_routes(sk: Sockets, links: dict[str, dict[str, LinkInfo]], netns: str,
                      planned: set[str]) -> None:
    """Delete the main table's IPv4 routes of ``netns`` whose destination (``default``
    or a CIDR) the plan does not have; connected routes (the kernel's) stay."""
    for m in sk(netns).dump(rtnl.RTM_GETROUTE, rtnl.RTMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)):
        _f, dst_len, _s, _t, table, proto, scope, rtype, _fl = rtnl.RTMSG.unpack(m.fixed)
        if (m.u32(rtnl.RTA_TABLE) or table) != RT_TABLE_MAIN or proto == RTPROT_KERNEL:
            continue
        dst = "default" if dst_len == 0 else f"{m.ip(rtnl.RTA_DST)}/{dst_len}"
        if dst not in planned:
            # The kernel deletes only a route whose protocol and scope match the
            # request's: pass the route's own.
            sk(netns).queue(rtnl.RTM_DELROUTE, 0, rtnl.route_body(
                "0.0.0.0/0" if dst == "default" else dst, m.ip(rtnl.RTA_GATEWAY),
                m.u32(rtnl.RTA_OIF) or 0, proto=proto, scope=scope, rtype=rtype), f"del route {dst}")


def sync_peers(sk: Sockets, netns: str, idx: int, neighbours: list[tuple[str, str]],
               fdb: list[tuple[str, str]], fresh: bool = False) -> None:
    """Static peer entries on the VXLAN at ``idx``: neighbours (ip, mac) and FDB (mac,
    vtep), as libnetwork's peerdb programs them; stale permanent entries are removed."""
    have_neigh: dict[str, str | None] = {}
    have_fdb: dict[str, str | None] = {}
    if not fresh:
        for m in sk(netns).dump(rtnl.RTM_GETNEIGH, rtnl.NDMSG.pack(socket.AF_INET, 0, 0, 0, 0)):
            _f, ifindex, state, _fl, _t = rtnl.NDMSG.unpack(m.fixed)
            if ifindex == idx and state & NUD_PERMANENT:
                have_neigh[m.ip(rtnl.NDA_DST) or ""] = m.mac(rtnl.NDA_LLADDR)
        for m in sk(netns).dump(rtnl.RTM_GETNEIGH, rtnl.NDMSG.pack(rtnl.AF_BRIDGE, 0, 0, 0, 0)):
            _f, ifindex, _state, _fl, _t = rtnl.NDMSG.unpack(m.fixed)
            if ifindex == idx and m.ip(rtnl.NDA_DST):
                have_fdb[m.mac(rtnl.NDA_LLADDR) or ""] = m.ip(rtnl.NDA_DST)
    rep = rtnl.NLM_F_CREATE | rtnl.NLM_F_REPLACE
    for ip, lladdr in neighbours:
        if have_neigh.get(ip) != lladdr:
            sk(netns).queue(rtnl.RTM_NEWNEIGH, rep, rtnl.neigh_body(idx, ip, lladdr), f"neighbour {ip}")
    for ip in set(have_neigh) - {ip for ip, _ in neighbours}:
        sk(netns).queue(rtnl.RTM_DELNEIGH, 0, rtnl.neigh_body(idx, ip, have_neigh[ip]),
                        f"del neighbour {ip}")
    for lladdr, vtep in fdb:
        if have_fdb.get(lladdr) != vtep:
            if lladdr in have_fdb:
                sk(netns).queue(rtnl.RTM_DELNEIGH, 0, rtnl.fdb_body(idx, lladdr, have_fdb[lladdr] or ""),
                                f"del fdb {lladdr}")
            sk(netns).queue(rtnl.RTM_NEWNEIGH, rep, rtnl.fdb_body(idx, lladdr, vtep),
                            f"fdb {lladdr}")
    for lladdr in set(have_fdb) - {m for m, _ in fdb}:
        sk(netns).queue(rtnl.RTM_DELNEIGH, 0, rtnl.fdb_body(idx, lladdr, have_fdb[lladdr] or ""),
                        f"del fdb {lladdr}")


def set_link_state(netns: str, ifname: str, up: bool) -> None:
    """Set ``ifname`` in ``netns`` administratively up or down (``ip link set … up|down``);
    raises NetlinkError when it does not exist, NetnsError when ``netns`` does not."""
    sk = Sockets()
    try:
        sk(netns).queue(rtnl.RTM_NEWLINK, 0, rtnl.link_body(name=ifname, up=up),
                        f"{ifname} {'up' if up else 'down'}")
        sk.flush()
    finally:
        sk.close()
