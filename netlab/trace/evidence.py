"""Kernel evidence read around a traced request: rule counters, conntrack, IPVS connections.

One forked child visits every namespace of the path in turn
(:func:`netlab.kernel.netns.run_in_each`), so a snapshot costs one fork, not
one per namespace. Counters are read before and after the request; their
deltas name the rules that matched. Conntrack entries (pyroute2's conntrack
socket) and the IPVS connection table (``/proc/thread-self/net/ip_vs_conn``,
the namespace's own) are read after it.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, replace

from netlab.kernel import netns
from netlab.kernel.iptables import CounterRead, RuleCounter
from netlab.kernel.xtables import Backend

PROTOS = {6: "tcp", 17: "udp", 132: "sctp", 1: "icmp"}


@dataclass(frozen=True)
class Flow:
    """One direction of a connection: ``src:sport → dst:dport``."""

    proto: str
    src: str
    sport: int
    dst: str
    dport: int

    @property
    def text(self) -> str:
        return f"{self.src}:{self.sport} → {self.dst}:{self.dport}"

    def reversed(self) -> Flow:
        return Flow(self.proto, self.dst, self.dport, self.src, self.sport)


@dataclass(frozen=True)
class CtEntry:
    """A conntrack entry: the original direction and the reply it expects."""

    orig: Flow
    reply: Flow
    mark: int = 0

    @property
    def nat(self) -> bool:
        """True when the reply is not the mirror of the original (a translation)."""
        return self.reply != self.orig.reversed()

    @property
    def text(self) -> str:
        return f"conntrack {self.orig.text} reply {self.reply.text}" + (
            f" mark {self.mark:#x}" if self.mark else "")


@dataclass(frozen=True)
class IpvsConn:
    """A line of the IPVS connection table: client, virtual address, chosen destination."""

    proto: str
    client: str       # ip:port
    virtual: str      # ip:port the packet was addressed to
    dest: str         # ip:port IPVS sent it to
    state: str

    @property
    def text(self) -> str:
        return f"ip_vs_conn {self.proto.upper()} {self.client} → {self.virtual} dest {self.dest} {self.state}"


@dataclass(frozen=True)
class IpvsDestination:
    """A destination of a firewall-mark IPVS service, as ``ipvsadm -Ln`` lists it."""

    fwmark: int
    addr: str
    port: int
    forward: str      # Masq, Route, Tunnel, Local
    weight: int
    active: int = 0
    inactive: int = 0

    @property
    def text(self) -> str:
        return (f"ipvs FWM {self.fwmark} -> {self.addr}:{self.port} {self.forward} "
                f"weight {self.weight} (active {self.active}, inactive {self.inactive})")


@dataclass(frozen=True)
class LinkState:
    """An interface's administrative and carrier state (``ip link``: UP, NO-CARRIER)."""

    name: str
    up: bool          # IFF_UP: set up by its owner
    carrier: bool     # IFF_LOWER_UP: the far end (a veth's peer) is up too

    @property
    def text(self) -> str:
        state = "UP" if self.up and self.carrier else "NO-CARRIER" if self.up else "DOWN"
        return f"link {self.name} {state}"


@dataclass(frozen=True)
class NsSnapshot:
    """What one namespace holds at one moment."""

    counters: tuple[RuleCounter, ...]
    conntrack: tuple[CtEntry, ...] = ()
    ipvs: tuple[IpvsConn, ...] = ()
    fdb: tuple[tuple[str, str, str], ...] = ()     # (device, mac, dst) with a remote dst
    notes: tuple[str, ...] = ()
    ipvs_table: tuple[IpvsDestination, ...] = ()   # sandboxes: the services' destinations
    links: tuple[LinkState, ...] = ()              # hosts and the LAN: LAN-facing links
    neighbours: tuple[tuple[str, str, str], ...] = ()   # hosts, sandboxes, client: (device, ip, NUD state)


def _hex_addr(ip_hex: str, port_hex: str) -> str:
    ip = ".".join(str(int(ip_hex[i:i + 2], 16)) for i in range(0, 8, 2))
    return f"{ip}:{int(port_hex, 16)}"


def parse_ip_vs_conn(text: str) -> tuple[IpvsConn, ...]:
    """``/proc/net/ip_vs_conn`` as records (IPv4 lines; the header is skipped)."""
    out = []
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 8 or len(f[1]) != 8:
            continue
        out.append(IpvsConn(f[0].lower(), _hex_addr(f[1], f[2]), _hex_addr(f[3], f[4]),
                            _hex_addr(f[5], f[6]), f[7]))
    return tuple(out)


def parse_ip_vs(text: str) -> tuple[IpvsDestination, ...]:
    """``/proc/net/ip_vs`` (what ``ipvsadm -Ln`` prints, in hex): each firewall-mark
    service's destinations with their weights. Services by address are skipped."""
    out = []
    fwmark = None
    for line in text.splitlines():
        f = line.split()
        if not f:
            continue
        if f[0] == "FWM" and len(f) >= 2:
            fwmark = int(f[1], 16)
        elif f[0] in ("TCP", "UDP", "SCTP"):
            fwmark = None
        elif f[0] == "->" and fwmark is not None and len(f) >= 6 and ":" in f[1] \
                and len(f[1].split(":")[0]) == 8:
            ip_hex, port_hex = f[1].split(":")
            ip, _, port = _hex_addr(ip_hex, port_hex).rpartition(":")
            out.append(IpvsDestination(fwmark, ip, int(port), f[2], int(f[3]), int(f[4]),
                                       int(f[5])))
    return tuple(out)


def _flow(t) -> Flow:
    return Flow(PROTOS.get(t.proto, str(t.proto)), t.saddr, t.sport or 0, t.daddr, t.dport or 0)


def _conntrack() -> tuple[tuple[CtEntry, ...], tuple[str, ...]]:
    try:
        from pyroute2 import Conntrack
        ct = Conntrack()
        try:
            entries = tuple(CtEntry(_flow(e.tuple_orig), _flow(e.tuple_reply), e.mark or 0)
                            for e in ct.dump_entries())
        finally:
            ct.close()
        return entries, ()
    except Exception as exc:  # noqa: BLE001 - evidence that cannot be read is said, not fatal
        return (), (f"conntrack unreadable: {exc}",)


def _ipvs_conns() -> tuple[IpvsConn, ...]:
    try:
        with open("/proc/thread-self/net/ip_vs_conn") as f:
            return parse_ip_vs_conn(f.read())
    except FileNotFoundError:
        return ()


def _ipvs_table() -> tuple[IpvsDestination, ...]:
    try:
        with open("/proc/thread-self/net/ip_vs") as f:
            return parse_ip_vs(f.read())
    except FileNotFoundError:
        return ()


IFF_UP, IFF_LOWER_UP = 0x1, 0x10000


def _links_and_neighbours() -> tuple[tuple[LinkState, ...], tuple[tuple[str, str, str], ...]]:
    """Every link's state, and the IPv4 neighbours with their NUD state (REACHABLE, FAILED…)."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.rtnl import ndmsg
    states = {v: k[4:] for v, k in ndmsg.NUD_VALUES.items()}
    with IPRoute() as ipr:
        names, links = {}, []
        for link in ipr.get_links():
            name = link.get_attr("IFLA_IFNAME")
            names[link["index"]] = name
            links.append(LinkState(name, bool(link["flags"] & IFF_UP),
                                   bool(link["flags"] & IFF_LOWER_UP)))
        neigh = tuple((names.get(n["ifindex"], "?"), n.get_attr("NDA_DST"),
                       states.get(n["state"], str(n["state"])))
                      for n in ipr.get_neighbours(family=socket.AF_INET) if n.get_attr("NDA_DST"))
    return tuple(links), neigh


def _fdb() -> tuple[tuple[str, str, str], ...]:
    """Forwarding entries with a remote destination (a VXLAN device's peers)."""
    from pyroute2 import IPRoute
    with IPRoute() as ipr:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        return tuple((names.get(e["ifindex"], "?"), e.get_attr("NDA_LLADDR"), e.get_attr("NDA_DST"))
                     for e in ipr.fdb("dump") if e.get_attr("NDA_DST"))


# Which namespaces hold which evidence: rules and NAT live in node hosts,
# sandboxes and tasks (as on a Docker node: overlays, the LAN and the client
# hold none, so their counters are not read: each read runs iptables-save);
# IPVS in sandboxes; remote forwarding entries on overlay VXLAN devices; the
# links that join nodes in hosts and the LAN, and ARP entries where a request
# may wait for one (hosts, sandboxes, the client).
CONNTRACK_ROLES = frozenset({"host", "sandbox", "task"})
RULE_ROLES = CONNTRACK_ROLES
LINK_ROLES = frozenset({"host", "lan", "client", "sandbox"})


def _read(with_flows: bool, role: str) -> NsSnapshot:
    """What the namespace this process is in holds, but its counters."""
    if not with_flows:
        return NsSnapshot(())
    entries, notes = _conntrack() if role in CONNTRACK_ROLES else ((), ())
    links, neigh = _links_and_neighbours() if role in LINK_ROLES else ((), ())
    return NsSnapshot((), entries,
                      _ipvs_conns() if role == "sandbox" else (),
                      _fdb() if role == "overlay" else (), notes,
                      _ipvs_table() if role == "sandbox" else (),
                      links if role in ("host", "lan") else (), neigh if role != "lan" else ())


def snapshot(roles: dict[str, str], with_flows: bool, backend: Backend) -> dict[str, NsSnapshot]:
    """Counters (read from ``backend``; hosts, sandboxes and tasks) of each namespace of
    ``roles`` (netns -> role; a name or a real Docker namespace's path) and, with
    ``with_flows``, what its role holds: conntrack (host, sandbox, task), IPVS
    connections (sandbox), FDB (overlay).

    The counters are read by one iptables-save per namespace, all at once,
    while one forked child visits the namespaces for the rest. Raises
    NetnsError when a namespace is missing or cannot be read, IptablesError
    when iptables-save fails.
    """
    from pyroute2 import Conntrack, IPRoute  # noqa: F401  (imported once here, inherited by the child)
    counting = CounterRead({n: netns.locate(n) for n, role in roles.items() if role in RULE_ROLES},
                           backend)
    if with_flows:
        rest = netns.run_in_each_path({n: netns.locate(n) for n in roles},
                                       lambda name: _read(True, roles[name]))
    else:
        rest = {n: NsSnapshot(()) for n in roles}
    counters = counting.result()
    return {n: replace(snap, counters=tuple(counters.get(n, ()))) for n, snap in rest.items()}


def counter_deltas(before: NsSnapshot, after: NsSnapshot) -> list[tuple[RuleCounter, int]]:
    """Rules (and policies) whose packet counter grew, with by how much, in table order."""
    old = {(c.table, c.chain, c.index, c.text): c.packets for c in before.counters}
    out = []
    for c in after.counters:
        grew = c.packets - old.get((c.table, c.chain, c.index, c.text), 0)
        if grew > 0:
            out.append((c, grew))
    return out
