"""What a trace reads from inside one namespace: conntrack, IPVS, FDB, links, neighbours.

Runs in the namespace it reads (a thread or a forked child that entered it,
see :meth:`netlab.kernel.reader.LinuxReader.read`). Links and the FDB come
from the one rtnetlink reader (:func:`netlab.kernel.observe.read_netlink`),
the IPVS tables from :mod:`netlab.kernel.procfs`, conntrack from
:mod:`netlab.kernel.conntrack`. Rule counters are read from outside (one
``iptables-save -c`` per namespace), not here.
"""

from __future__ import annotations

import socket

from netlab.kernel.conntrack import read_conntrack
from netlab.kernel.procfs import read_ip_vs, read_ip_vs_conn
from netlab.kernel.records import LinkState, NsReading, NsWants


def read_neighbour_states(names: dict[int, str]) -> tuple[tuple[str, str, str], ...]:
    """The IPv4 neighbours of this thread's namespace with their NUD state
    (REACHABLE, FAILED…) as (device, ip, state); ``names`` maps ifindex to name."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.rtnl import ndmsg
    states = {v: k[4:] for v, k in ndmsg.NUD_VALUES.items()}
    with IPRoute() as ipr:
        return tuple((names.get(n["ifindex"], "?"), n.get_attr("NDA_DST"),
                      states.get(n["state"], str(n["state"])))
                     for n in ipr.get_neighbours(family=socket.AF_INET) if n.get_attr("NDA_DST"))


def read_here(label: str, wants: NsWants) -> NsReading:
    """What ``wants`` asks for (but the counters) in the namespace this thread is in;
    ``label`` names it in what is read. Conntrack that cannot be read is said in
    ``notes``; raises what pyroute2 raises for the rest."""
    from netlab.kernel.observe import read_netlink
    entries, notes = read_conntrack() if wants.conntrack else ((), ())
    links: tuple[LinkState, ...] = ()
    fdb: tuple[tuple[str, str, str], ...] = ()
    neigh: tuple[tuple[str, str, str], ...] = ()
    if wants.links or wants.fdb or wants.neighbours:
        seen = read_netlink(label)
        if wants.links:
            links = tuple(LinkState(lk.name, lk.up, lk.carrier) for lk in seen.links)
        if wants.fdb:
            fdb = tuple((f.ifname, f.mac, f.dst) for f in seen.fdb)
        if wants.neighbours:
            neigh = read_neighbour_states({lk.index: lk.name for lk in seen.links})
    return NsReading((), entries, read_ip_vs_conn() if wants.ipvs_conns else (),
                     read_ip_vs().destinations if wants.ipvs_table else (), fdb, links, neigh,
                     notes)
