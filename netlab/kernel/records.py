"""What the kernel reader returns about one namespace: typed records, no kernel access.

These are the kernel's own objects as a trace reads them (a conntrack entry,
a line of the IPVS connection table, an IPVS destination, a link's state),
and :class:`NsWants` / :class:`NsReading`, the question and answer of
:meth:`netlab.kernel.reader.KernelReader.read`. Fakes build them by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netlab.kernel.iptables import RuleCounter

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
class IpvsTable:
    """``/proc/net/ip_vs`` of one namespace: the firewall-mark services' schedulers
    (fwmark -> "rr") and destinations."""

    schedulers: dict[int, str] = field(default_factory=dict)
    destinations: tuple[IpvsDestination, ...] = ()


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
class NsWants:
    """Which kinds of object to read in one namespace."""

    counters: bool = False      # every rule's and policy's packet counter (iptables-save -c)
    conntrack: bool = False     # the conntrack table
    ipvs_conns: bool = False    # the IPVS connection table
    ipvs_table: bool = False    # the IPVS services' destinations and weights
    fdb: bool = False           # forwarding entries with a remote destination (VXLAN peers)
    links: bool = False         # each link's state
    neighbours: bool = False    # IPv4 neighbours with their NUD state

    @property
    def inside(self) -> bool:
        """True when something but the counters is wanted (read from inside the namespace)."""
        return any((self.conntrack, self.ipvs_conns, self.ipvs_table, self.fdb, self.links,
                    self.neighbours))


@dataclass(frozen=True)
class NsReading:
    """What one namespace held at one moment, of the kinds :class:`NsWants` asked for."""

    counters: tuple[RuleCounter, ...] = ()
    conntrack: tuple[CtEntry, ...] = ()
    ipvs_conns: tuple[IpvsConn, ...] = ()
    ipvs_table: tuple[IpvsDestination, ...] = ()
    fdb: tuple[tuple[str, str, str], ...] = ()          # (device, mac, remote dst)
    links: tuple[LinkState, ...] = ()
    neighbours: tuple[tuple[str, str, str], ...] = ()   # (device, ip, NUD state)
    notes: tuple[str, ...] = ()                         # what could not be read, and why
