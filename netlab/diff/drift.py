"""Drift: how the kernel read back differs from the plan, as pure comparisons.

:mod:`netlab.kernel.observe` reads each namespace once into a
:class:`NetnsSeen`; the functions here compare that with the plan's items of
the same namespace (links, addresses, routes, neighbours, FDB, sysctls,
IPVS; iptables in :mod:`netlab.diff.ruledrift`) and say each difference as
one :class:`Drift`. They go by the kinds of plan items, never by namespace
role, so a namespace a new feature adds to the plan is compared for free.
No kernel access here: unit tests build the read-back data by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netlab.plan.render import FwmarkService
from netlab.plan.types import (Address, FdbEntry, IpvsDest, IpvsService, Neighbour, NetnsItems,
                               Route, Vxlan)

#: What to do about any drift: ``up`` converges the lab back to its plan.
HINT = "netlab up SCENARIO --name LAB restores it"


@dataclass(frozen=True)
class Drift:
    """One difference between the plan and the kernel.

    ``netns`` is the kernel name and ``target`` the name users give it
    (``node1/ingress_sbox``); ``object`` the thing that differs
    (``link eth0 mtu``, ``filter DOCKER-USER rule 2``); ``plan`` what the
    plan says and ``kernel`` what the kernel has (``absent`` when there is
    none). ``detail`` says it all in one line. Kind ``user-rule`` is not
    drift but a rule the user put in DOCKER-USER, kept as Docker keeps it.
    """

    netns: str
    kind: str   # netns link address route sysctl fdb neigh iptables ipvs; user-rule: a note
    detail: str
    target: str = ""
    object: str = ""
    plan: str = ""
    kernel: str = ""
    hint: str = HINT


@dataclass(frozen=True)
class Allowance:
    """What the kernel may hold that the plan alone does not say.

    ``changing``: a scale or node change is under way (the state is not
    complete). Its plan is the one being converged to, and on the way
    libnetwork's weights hold: a destination of a task going away sits at
    weight 0 until it is removed, and a new task's at weight 0 until its app
    runs. So while changing, an IPVS destination at weight 0 is not drift,
    whether the plan has it (coming) or not (going), and neither are
    namespaces of the lab the plan no longer has (being removed).
    ``links_down``: (netns, ifname) the lab keeps down on purpose (the LAN
    port of a node that is down).
    """

    changing: bool = False
    links_down: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class LinkSeen:
    """A link as rtnetlink dumps it; ``vxlan`` holds (attribute, value) for a VXLAN."""

    name: str
    kind: str | None
    mtu: int
    up: bool
    mac: str | None = None
    master: str | None = None
    vxlan: tuple[tuple[str, int], ...] = ()
    index: int = 0                  # ifindex, and a veth's peer's (IFLA_LINK): pairs the
    peer_index: int | None = None   # ends of a veth across namespaces read together
    carrier: bool = False           # IFF_LOWER_UP: the far end (a veth's peer) is up too


@dataclass(frozen=True)
class NetnsSeen:
    """What one namespace holds, read in one netlink session, one iptables-save and
    one pass over the sysctl files. ``sysctls`` maps each planned key the kernel can have
    to its value (None when the file is absent); ``tables`` maps each table of
    the save output to its text; ``ipvs`` is None when IPVS was not read there."""

    links: tuple[LinkSeen, ...] = ()
    addresses: tuple[Address, ...] = ()
    routes: tuple[Route, ...] = ()
    neighbours: tuple[Neighbour, ...] = ()
    fdb: tuple[FdbEntry, ...] = ()
    sysctls: dict[str, str | None] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)
    ipvs: tuple[FwmarkService, ...] | None = None


@dataclass(frozen=True)
class LinkWant:
    """A planned interface: what its link must be."""

    name: str
    kind: str
    mtu: int | None
    up: bool = True
    mac: str | None = None
    master: str | None = None
    vxlan: tuple[tuple[str, int], ...] = ()


def vxlan_attrs(v: Vxlan) -> tuple[tuple[str, int], ...]:
    """The attributes a planned VXLAN must have, as the reader names them."""
    return (("vni", v.vni), ("port", v.port), ("learning", int(v.learning)),
            ("proxy", int(v.proxy)), ("l2miss", int(v.l2miss)), ("l3miss", int(v.l3miss)))


def planned_links(netns: str, items: NetnsItems, allow: Allowance) -> list[LinkWant]:
    """Every interface the plan puts in ``netns`` (``lo`` included: up brings it up)."""
    out = [LinkWant("lo", "loopback", None)]
    out += [LinkWant(b.name, "bridge", b.mtu) for b in items.bridges]
    out += [LinkWant(v.name, "vxlan", v.mtu, master=v.master, vxlan=vxlan_attrs(v))
            for v in items.vxlans]
    for veth in items.veths:
        for end in (veth.a, veth.b):
            if end.netns == netns:
                out.append(LinkWant(end.name, "veth", veth.mtu, mac=end.mac, master=end.master))
    return [LinkWant(w.name, w.kind, w.mtu, (netns, w.name) not in allow.links_down, w.mac,
                     w.master, w.vxlan) for w in out]


def link_drift(netns: str, target: str, wants: list[LinkWant],
               seen: tuple[LinkSeen, ...]) -> list[Drift]:
    """Missing interfaces, and MTU, up/down, MAC, bridge master and VXLAN attributes."""
    have = {link.name: link for link in seen}
    out: list[Drift] = []

    def add(name: str, what: str, want: object, got: object) -> None:
        obj = f"link {name}" + (f" {what}" if what else "")
        out.append(Drift(netns, "link", f"{obj} is {got}, the plan has {want}", target, obj,
                         str(want), str(got)))

    for w in wants:
        h = have.get(w.name)
        if h is None:
            out.append(Drift(netns, "link", f"{w.name} is missing", target, f"link {w.name}",
                             f"{w.kind} {w.name}", "absent"))
            continue
        if w.mtu is not None and h.mtu != w.mtu:
            add(w.name, "mtu", w.mtu, h.mtu)
        if h.up != w.up:
            add(w.name, "state", "up" if w.up else "down", "up" if h.up else "down")
        if w.mac and (h.mac or "").lower() != w.mac.lower():
            add(w.name, "address", w.mac, h.mac or "none")
        if w.kind != "loopback" and h.master != w.master:
            add(w.name, "master", w.master or "none", h.master or "none")
        got = dict(h.vxlan)
        for key, value in w.vxlan:
            if got.get(key) != value:
                add(w.name, key, value, got.get(key, "absent"))
    return out


def address_drift(netns: str, target: str, want: tuple[Address, ...],
                  have: tuple[Address, ...]) -> list[Drift]:
    """IPv4 addresses per interface: missing, not in the plan, another broadcast."""
    w = {(a.ifname, a.cidr): a.broadcast for a in want}
    h = {(a.ifname, a.cidr): a.broadcast for a in have}
    out: list[Drift] = []
    for key in w:
        obj = f"address {key[1]} dev {key[0]}"
        if key not in h:
            out.append(Drift(netns, "address", f"{obj} is missing", target, obj,
                             key[1] + (f" brd {w[key]}" if w[key] else ""), "absent"))
        elif h[key] != w[key]:
            out.append(Drift(netns, "address", f"{obj} has broadcast {h[key] or 'none'}, the plan "
                             f"has {w[key] or 'none'}", target, f"{obj} broadcast",
                             w[key] or "none", h[key] or "none"))
    for key in h:
        if key not in w:
            obj = f"address {key[1]} dev {key[0]}"
            out.append(Drift(netns, "address", f"{obj} is not in the plan", target, obj,
                             "absent", key[1] + (f" brd {h[key]}" if h[key] else "")))
    return out


def _route_text(r: Route) -> str:
    return r.dst + (f" via {r.gateway}" if r.gateway else "") + f" dev {r.ifname}"


def route_drift(netns: str, target: str, want: tuple[Route, ...],
                have: tuple[Route, ...]) -> list[Drift]:
    """Routes of the main table by destination (connected routes aside): missing,
    not in the plan, another gateway or device."""
    w = {r.dst: r for r in want}
    h = {r.dst: r for r in have}
    out: list[Drift] = []
    for dst, r in w.items():
        if dst not in h:
            out.append(Drift(netns, "route", f"route {_route_text(r)} is missing", target,
                             f"route {dst}", _route_text(r), "absent"))
        elif (h[dst].gateway, h[dst].ifname) != (r.gateway, r.ifname):
            out.append(Drift(netns, "route", f"route {dst} is {_route_text(h[dst])}, the plan has "
                             f"{_route_text(r)}", target, f"route {dst}", _route_text(r),
                             _route_text(h[dst])))
    for dst, r in h.items():
        if dst not in w:
            out.append(Drift(netns, "route", f"route {_route_text(r)} is not in the plan", target,
                             f"route {dst}", "absent", _route_text(r)))
    return out


def peer_drift(netns: str, target: str, items: NetnsItems, seen: NetnsSeen) -> list[Drift]:
    """Permanent neighbours (IP → MAC) and FDB entries (MAC → VTEP) per interface."""
    out: list[Drift] = []
    for kind, want, have, what, to in (
            ("neigh", {(n.ifname, n.ip): n.mac for n in items.neighbours},
             {(n.ifname, n.ip): n.mac for n in seen.neighbours}, "neighbour", "lladdr"),
            ("fdb", {(f.ifname, f.mac): f.dst for f in items.fdb},
             {(f.ifname, f.mac): f.dst for f in seen.fdb}, "fdb", "dst")):
        for (ifname, key), value in want.items():
            obj = f"{what} {key} dev {ifname}"
            got = have.get((ifname, key))
            if got is None:
                out.append(Drift(netns, kind, f"missing {key} {to} {value} dev {ifname}", target,
                                 obj, f"{to} {value}", "absent"))
            elif got.lower() != value.lower():
                out.append(Drift(netns, kind, f"{obj} has {to} {got}, the plan has {value}",
                                 target, obj, f"{to} {value}", f"{to} {got}"))
        for (ifname, key), got in have.items():
            if (ifname, key) not in want:
                out.append(Drift(netns, kind, f"unexpected {key} {to} {got} dev {ifname}", target,
                                 f"{what} {key} dev {ifname}", "absent", f"{to} {got}"))
    return out


def sysctl_drift(netns: str, target: str, want: dict[str, str],
                 have: dict[str, str | None]) -> list[Drift]:
    """Planned sysctls against the namespace's sysctl files (keys the kernel cannot
    have, such as IPv6 ones without IPv6, are left out by the reader)."""
    out: list[Drift] = []
    for key, value in want.items():
        if key not in have:
            continue
        got = have[key]
        if got is None or " ".join(got.split()) != " ".join(value.split()):
            shown = "absent" if got is None else " ".join(got.split())
            out.append(Drift(netns, "sysctl", f"{key} is {shown}, the plan has {value}", target,
                             f"sysctl {key}", value, shown))
    return out


def _dest_text(d: IpvsDest) -> str:
    return f"{d.addr}:{d.port} {d.forward} weight {d.weight}"


def ipvs_drift(netns: str, target: str, want: tuple[IpvsService, ...],
               have: tuple[FwmarkService, ...], allow: Allowance) -> list[Drift]:
    """fwmark services (scheduler) and their destinations (port, forwarding, weight).

    While a change is under way (``allow.changing``) a destination at weight 0
    is the change's own doing, not drift (see :class:`Allowance`).
    """
    out: list[Drift] = []
    h = {s.fwmark: s for s in have}
    for svc in want:
        obj = f"IPVS FWM {svc.fwmark}"
        got = h.pop(svc.fwmark, None)
        if got is None:
            out.append(Drift(netns, "ipvs", f"{obj} ({svc.service}) is missing", target, obj,
                             f"{svc.scheduler}, {len(svc.dests)} destinations", "absent"))
            continue
        if got.scheduler != svc.scheduler:
            out.append(Drift(netns, "ipvs", f"{obj} scheduler is {got.scheduler}, the plan has "
                             f"{svc.scheduler}", target, f"{obj} scheduler", svc.scheduler,
                             got.scheduler))
        dests = {d.addr: d for d in got.dests}
        for d in svc.dests:
            dobj = f"{obj} -> {d.addr}"
            g = dests.pop(d.addr, None)
            if g is None:
                out.append(Drift(netns, "ipvs", f"{dobj} is missing", target, dobj,
                                 _dest_text(d), "absent"))
            elif g != d and not (allow.changing and g.weight == 0
                                 and (g.port, g.forward) == (d.port, d.forward)):
                out.append(Drift(netns, "ipvs", f"{dobj} is {_dest_text(g)}, the plan has "
                                 f"{_dest_text(d)}", target, dobj, _dest_text(d), _dest_text(g)))
        for g in dests.values():
            if not (allow.changing and g.weight == 0):
                out.append(Drift(netns, "ipvs", f"{obj} -> {g.addr} is not in the plan", target,
                                 f"{obj} -> {g.addr}", "absent", _dest_text(g)))
    for fwmark, got in h.items():
        out.append(Drift(netns, "ipvs", f"IPVS FWM {fwmark} is not in the plan", target,
                         f"IPVS FWM {fwmark}", "absent",
                         f"{got.scheduler}, {len(got.dests)} destinations"))
    return out
