"""Read a real Docker node's namespaces for a trace: links, addresses, IPVS schedulers.

Read only. Each namespace (the root one, ``ingress_sbox``, ``1-<id>``, a
container's sandbox: :func:`netlab.kernel.netns.real_path`) is read by one
short-lived thread inside it with the one rtnetlink reader
(:func:`netlab.kernel.observe.read_netlink`); IPVS schedulers come from
``/proc/thread-self/net/ip_vs``, the reading thread's own
(:mod:`netlab.kernel.procfs`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netlab.kernel import netns
from netlab.kernel.procfs import parse_ip_vs, read_ip_vs


@dataclass(frozen=True)
class RealLink:
    """One interface of a real namespace, as ``ip -d addr`` shows it."""

    name: str
    index: int
    kind: str | None                 # veth, bridge, vxlan, dummy… (None: physical, lo)
    peer_index: int | None           # a veth's peer's ifindex (in the peer's namespace)
    master: str | None               # the bridge it is a port of
    mac: str | None
    addrs: tuple[str, ...] = ()      # "10.0.0.5/24"
    vxlan_port: int | None = None    # a VXLAN device's UDP port


@dataclass(frozen=True)
class RealNs:
    """What a trace needs to know of one real namespace."""

    links: tuple[RealLink, ...]
    schedulers: dict[int, str] = field(default_factory=dict)   # IPVS fwmark -> "rr"


def parse_schedulers(text: str) -> dict[int, str]:
    """``/proc/net/ip_vs``: firewall-mark services' schedulers (``FWM 00000100 rr``),
    by the one parser of :mod:`netlab.kernel.procfs`."""
    return parse_ip_vs(text).schedulers


def _read_here(label: str) -> RealNs:
    """The namespace this thread is in (runs inside it): its links from the one
    rtnetlink reader (:func:`netlab.kernel.observe.read_netlink`), its IPVS
    schedulers from ``/proc/thread-self/net/ip_vs``."""
    from netlab.kernel.observe import read_netlink
    seen = read_netlink(label)
    addrs: dict[str, list[str]] = {}
    for a in seen.addresses:
        addrs.setdefault(a.ifname, []).append(a.cidr)
    links = []
    for lk in seen.links:
        port = dict(lk.vxlan).get("port") if lk.kind == "vxlan" else None
        links.append(RealLink(lk.name, lk.index, lk.kind,
                              lk.peer_index if lk.kind == "veth" else None, lk.master, lk.mac,
                              tuple(addrs.get(lk.name, ())), int(port) if port else None))
    try:
        schedulers = read_ip_vs().schedulers
    except OSError:
        schedulers = {}
    return RealNs(tuple(links), schedulers)


def read(ns_file: str) -> RealNs:
    """The links, addresses and IPVS schedulers of the real namespace at ``ns_file``
    (confined to Docker's namespaces and the root one). Raises NetnsError when it is
    gone or cannot be entered."""
    return netns.in_thread_path(netns.real_path(ns_file), lambda: _read_here(ns_file))
