"""Kernel evidence read around a traced request: rule counters, conntrack, IPVS connections.

Which namespace holds which evidence is decided here, by role; the reading
is the kernel reader's (:class:`netlab.kernel.reader.KernelReader`: one
forked child visits every namespace of the path in turn, while one
iptables-save per namespace reads the counters). Counters are read before
and after the request; their deltas name the rules that matched.
Conntrack entries, the IPVS tables, FDB entries, links and neighbours are
read after it. The records themselves live in :mod:`netlab.kernel.records`.
"""

from __future__ import annotations

from dataclasses import dataclass

from netlab.kernel.iptables import RuleCounter
from netlab.kernel.reader import KernelReader
from netlab.kernel.records import (CtEntry, Flow, IpvsConn, IpvsDestination, LinkState,
                                   NsReading, NsWants)
from netlab.kernel.xtables import Backend

__all__ = ["CtEntry", "Flow", "IpvsConn", "IpvsDestination", "LinkState", "NsSnapshot",
           "counter_deltas", "snapshot", "wants"]


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


# Which namespaces hold which evidence: rules and NAT live in node hosts,
# sandboxes and tasks (as on a Docker node: overlays, the LAN and the client
# hold none, so their counters are not read: each read runs iptables-save);
# IPVS in sandboxes; remote forwarding entries on overlay VXLAN devices; the
# links that join nodes in hosts and the LAN, and ARP entries where a request
# may wait for one (hosts, sandboxes, the client).
CONNTRACK_ROLES = frozenset({"host", "sandbox", "task"})
RULE_ROLES = CONNTRACK_ROLES
LINK_ROLES = frozenset({"host", "lan", "client", "sandbox"})


def wants(role: str, with_flows: bool) -> NsWants:
    """What to read in a namespace of ``role``: its counters (hosts, sandboxes and tasks)
    and, ``with_flows``, what its role holds."""
    counters = role in RULE_ROLES
    if not with_flows:
        return NsWants(counters=counters)
    return NsWants(counters=counters, conntrack=role in CONNTRACK_ROLES,
                   ipvs_conns=role == "sandbox", ipvs_table=role == "sandbox",
                   fdb=role == "overlay", links=role in ("host", "lan"),
                   neighbours=role in LINK_ROLES and role != "lan")


def snapshot(roles: dict[str, str], with_flows: bool, backend: Backend,
             reader: KernelReader) -> dict[str, NsSnapshot]:
    """Counters (read from ``backend``; hosts, sandboxes and tasks) of each namespace of
    ``roles`` (netns -> role; a name or a real Docker namespace's path) and, with
    ``with_flows``, what its role holds: conntrack (host, sandbox, task), IPVS
    connections and destinations (sandbox), FDB (overlay), links (host, LAN),
    neighbours (host, sandbox, client), all read through ``reader``.

    Raises NetnsError when a namespace is missing or cannot be read,
    IptablesError when iptables-save fails.
    """
    if not with_flows:
        asked = {n: wants(r, False) for n, r in roles.items() if r in RULE_ROLES}
    else:
        asked = {n: wants(r, True) for n, r in roles.items()}
    got = reader.read(asked, backend) if asked else {}
    out = {}
    for n in roles:
        r = got.get(n, NsReading())
        out[n] = NsSnapshot(r.counters, r.conntrack, r.ipvs_conns, r.fdb, r.notes, r.ipvs_table,
                            r.links, r.neighbours)
    return out


def counter_deltas(before: NsSnapshot, after: NsSnapshot) -> list[tuple[RuleCounter, int]]:
    """Rules (and policies) whose packet counter grew, with by how much, in table order."""
    old = {(c.table, c.chain, c.index, c.text): c.packets for c in before.counters}
    out = []
    for c in after.counters:
        grew = c.packets - old.get((c.table, c.chain, c.index, c.text), 0)
        if grew > 0:
            out.append((c, grew))
    return out
