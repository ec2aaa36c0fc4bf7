"""Which captured frames belong to the traced request, followed across NAT by conntrack.

The request's original tuple is known (its source port was chosen). Each
namespace's conntrack entry whose *original* tuple is a tuple the request
already had says what the request looks like after that namespace's
translation (the mirror of the entry's *reply* tuple). Following that chain
gives every tuple the request takes, and the reply's are their mirrors: a
frame is the request's when its (inner, for VXLAN) tuple is one of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from netlab.kernel.iptables import RuleCounter
from netlab.trace import rules
from netlab.trace.capture import Frame
from netlab.trace.evidence import CtEntry, Flow, IpvsConn, NsSnapshot
from netlab.trace.model import Leg

if TYPE_CHECKING:
    from scapy.packet import Packet


@dataclass(frozen=True)
class FlowChain:
    """Every tuple of the request, and the conntrack/IPVS entries that produced them."""

    forward: tuple[Flow, ...]                   # request tuples, in the order they arise
    conntrack: dict[str, CtEntry]               # netns -> the entry of this request there
    ipvs: dict[str, IpvsConn]                   # netns -> the IPVS connection of this request

    def leg(self, flow: Flow) -> Leg | None:
        if flow in self.forward:
            return "request"
        if flow.reversed() in self.forward:
            return "reply"
        return None


def _by_rules(flow: Flow, counted: list[RuleCounter]) -> Flow | None:
    """The flow after a DNAT/REDIRECT rule whose counter moved and that fits it."""
    for c in counted:
        if c.table != "nat" or not rules.fits(c.text, flow):
            continue
        if c.target == "DNAT":
            to = rules.option(c.text, "--to-destination") or ""
            ip, _, port = to.partition(":")
            return Flow(flow.proto, flow.src, flow.sport, ip, int(port) if port else flow.dport)
        if c.target == "REDIRECT":
            port = rules.option(c.text, "--to-ports") or ""
            if port.isdigit():
                return Flow(flow.proto, flow.src, flow.sport, flow.dst, int(port))
    return None


def follow(orig: Flow, snaps: dict[str, NsSnapshot],
           counted: dict[str, list[RuleCounter]] | None = None) -> FlowChain:
    """The request's tuples across every namespace's translations (see module doc).

    Conntrack first. Where a namespace has no entry for the request (the
    kernel deletes the entry of a connection refused by RST), a DNAT or
    REDIRECT rule whose counter moved, or the IPVS connection table, says
    what the destination became.
    """
    counted = counted or {}
    forward = [orig]
    found: dict[str, CtEntry] = {}
    ipvs: dict[str, IpvsConn] = {}

    def add(flow: Flow) -> bool:
        if flow in forward:
            return False
        forward.append(flow)
        return True
    changed = True
    while changed:
        changed = False
        for ns, snap in snaps.items():
            if ns not in found:
                entry = next((e for e in snap.conntrack if e.orig in forward), None)
                if entry is not None:
                    found[ns] = entry
                    add(entry.reply.reversed())
                    changed = True
                    continue
            if ns not in ipvs:
                for conn in snap.ipvs:
                    f = next((f for f in forward if conn.proto == f.proto and conn.client ==
                              f"{f.src}:{f.sport}" and conn.virtual == f"{f.dst}:{f.dport}"), None)
                    if f is not None:
                        ipvs[ns] = conn
                        ip, _, port = conn.dest.rpartition(":")
                        changed |= add(Flow(f.proto, f.src, f.sport, ip, int(port)))
            if ns not in found:
                for f in list(forward):
                    after = _by_rules(f, counted.get(ns, []))
                    if after is not None:
                        changed |= add(after)
    return FlowChain(tuple(forward), found, ipvs)


@dataclass(frozen=True)
class Seen:
    """A captured frame of the request or its reply, decoded."""

    frame: Frame
    leg: Leg
    flow: Flow               # the (inner) tuple
    key: tuple               # the same packet at every point: (leg, ip id, l4 seq, flags)
    flags: str               # TCP flags ("S", "SA", "R", "PA"...), "" for UDP
    outer: Flow | None = None    # VXLAN: the outer UDP tuple
    vni: int | None = None
    src_mac: str = ""
    dst_mac: str = ""
    summary: str = ""
    eth_dst: str = ""        # the destination MAC of the frame on the wire (outer, for VXLAN)

    @property
    def point(self):
        return self.frame.point


def _l4(ip) -> tuple[str, int, int, str, int] | None:
    from scapy.layers.inet import TCP, UDP
    if ip.haslayer(TCP):
        t = ip[TCP]
        return "tcp", t.sport, t.dport, str(t.flags), t.seq
    if ip.haslayer(UDP):
        u = ip[UDP]
        return "udp", u.sport, u.dport, "", 0
    return None


def _icmp_error(ip) -> tuple[Flow, str] | None:
    """An ICMP error about one of our packets: (the mirror of the quoted tuple, "ICMP t/c")."""
    from scapy.layers.inet import ICMP, IPerror, TCPerror, UDPerror
    if not ip.haslayer(ICMP) or ip[ICMP].type not in (3, 11) or not ip.haslayer(IPerror):
        return None
    quoted = ip[IPerror]
    inner = quoted.getlayer(TCPerror) or quoted.getlayer(UDPerror)
    if inner is None:
        return None
    proto = "tcp" if quoted.haslayer(TCPerror) else "udp"
    sent = Flow(proto, quoted.src, inner.sport, quoted.dst, inner.dport)
    return sent.reversed(), f"ICMP {ip[ICMP].type}/{ip[ICMP].code}"


def decode(frame: Frame, chain: FlowChain, vxlan_port: int) -> Seen | None:
    """The frame as a :class:`Seen` when it belongs to the request (or its reply), else None."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.layers.vxlan import VXLAN

    pkt = Ether(frame.data)
    if not pkt.haslayer(IP):
        return None
    outer = None
    vni = None
    inner_eth: Packet = pkt
    ip = pkt[IP]
    if ip.haslayer(UDP) and ip[UDP].dport == vxlan_port:
        # Decoded by hand: scapy binds VXLAN to 4789 and a few others, while
        # the scenario's data_path_port may be any port.
        vx = VXLAN(bytes(ip[UDP].payload))
        vni = vx.vni
        outer = Flow("udp", ip.src, ip[UDP].sport, ip.dst, ip[UDP].dport)
        inner_eth = vx.payload
        if not inner_eth.haslayer(IP):
            return None
        ip = inner_eth[IP]
    leg: Leg | None
    icmp = _icmp_error(ip)
    if icmp is not None:
        flow, flags = icmp
        if chain.leg(flow) != "reply":
            return None
        seq, leg = 0, "reply"
        proto, sport, dport = flow.proto, flow.sport, flow.dport
    else:
        l4 = _l4(ip)
        if l4 is None:
            return None
        proto, sport, dport, flags, seq = l4
        flow = Flow(proto, ip.src, sport, ip.dst, dport)
        leg = chain.leg(flow)
        if leg is None:
            return None
    summary = (f"{proto.upper()} {flags + ' ' if flags else ''}"
               f"{flow.src}:{sport} > {flow.dst}:{dport} id={ip.id}")
    if outer is not None:
        summary = f"VXLAN vni {vni} {outer.src}:{outer.sport} > {outer.dst}:{outer.dport} [{summary}]"
    return Seen(frame, leg, flow, (leg, ip.id, seq, flags), flags, outer, vni,
                getattr(inner_eth, "src", ""), getattr(inner_eth, "dst", ""), summary,
                pkt.dst)


def flooded(s: Seen, peer_mac: dict[tuple[str, str], str]) -> bool:
    """True for a copy a bridge flooded out a port whose far end will not take it.

    A learning bridge (br0, lan0) that has not yet seen a destination MAC
    sends the frame out of every port; the copy towards an endpoint whose
    MAC is another is dropped there and is no hop of the request.
    """
    if not s.frame.outgoing:
        return False
    mac = peer_mac.get((s.point.netns, s.point.iface))
    dst = s.eth_dst.lower()
    return bool(mac and dst and dst != mac.lower() and not int(dst[:2], 16) & 1)


def first_packet(seen: list[Seen], leg: str) -> list[Seen]:
    """Every sighting of the leg's first packet (the SYN, the SYN-ACK or RST), by time."""
    of_leg = [s for s in seen if s.leg == leg]
    if not of_leg:
        return []
    key = of_leg[0].key
    return [s for s in of_leg if s.key == key]
