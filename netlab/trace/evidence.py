"""Kernel evidence read around a traced request: rule counters, conntrack, IPVS connections.

One forked child visits every namespace of the path in turn
(:func:`netlab.kernel.netns.run_in_each`), so a snapshot costs one fork, not
one per namespace. Counters are read before and after the request; their
deltas name the rules that matched. Conntrack entries (pyroute2's conntrack
socket) and the IPVS connection table (``/proc/thread-self/net/ip_vs_conn``,
the namespace's own) are read after it.
"""

from __future__ import annotations

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
class NsSnapshot:
    """What one namespace holds at one moment."""

    counters: tuple[RuleCounter, ...]
    conntrack: tuple[CtEntry, ...] = ()
    ipvs: tuple[IpvsConn, ...] = ()
    fdb: tuple[tuple[str, str, str], ...] = ()     # (device, mac, dst) with a remote dst
    notes: tuple[str, ...] = ()


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
# IPVS in sandboxes; remote forwarding entries on overlay VXLAN devices.
CONNTRACK_ROLES = frozenset({"host", "sandbox", "task"})
RULE_ROLES = CONNTRACK_ROLES


def _read(with_flows: bool, role: str) -> NsSnapshot:
    """What the namespace this process is in holds, but its counters."""
    if not with_flows:
        return NsSnapshot(())
    entries, notes = _conntrack() if role in CONNTRACK_ROLES else ((), ())
    return NsSnapshot((), entries,
                      _ipvs_conns() if role == "sandbox" else (),
                      _fdb() if role == "overlay" else (), notes)


def snapshot(roles: dict[str, str], with_flows: bool, backend: Backend) -> dict[str, NsSnapshot]:
    """Counters (read from ``backend``; hosts, sandboxes and tasks) of each namespace of
    ``roles`` (netns -> role) and, with ``with_flows``, what its role holds:
    conntrack (host, sandbox, task), IPVS connections (sandbox), FDB (overlay).

    The counters are read by one iptables-save per namespace, all at once,
    while one forked child visits the namespaces for the rest. Raises
    NetnsError when a namespace is missing or cannot be read, IptablesError
    when iptables-save fails.
    """
    from pyroute2 import Conntrack, IPRoute  # noqa: F401  (imported once here, inherited by the child)
    counting = CounterRead({n: netns.path(n) for n, role in roles.items() if role in RULE_ROLES},
                           backend)
    if with_flows:
        rest = netns.run_in_each(list(roles), lambda name: _read(True, roles[name]))
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
