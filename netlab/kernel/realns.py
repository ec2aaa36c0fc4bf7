"""Read a real Docker node's namespaces for a trace: links, addresses, IPVS schedulers.

Read only. Each namespace (the root one, ``ingress_sbox``, ``1-<id>``, a
container's sandbox: :func:`netlab.kernel.netns.real_path`) is read by one
short-lived thread inside it with one rtnetlink session; IPVS schedulers
come from ``/proc/thread-self/net/ip_vs``, the reading thread's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netlab.kernel import netns


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
    """``/proc/net/ip_vs``: firewall-mark services' schedulers (``FWM 00000100 rr``)."""
    out = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 3 and f[0] == "FWM":
            out[int(f[1], 16)] = f[2]
    return out


def _read_here() -> RealNs:
    """The namespace this thread is in (runs inside it)."""
    from pyroute2 import IPRoute
    with IPRoute() as ipr:
        msgs = list(ipr.get_links())
        names = {m["index"]: m.get_attr("IFLA_IFNAME") for m in msgs}
        addrs: dict[int, list[str]] = {}
        for a in ipr.get_addr(family=2):
            addrs.setdefault(a["index"], []).append(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
    links = []
    for m in msgs:
        info = m.get_attr("IFLA_LINKINFO")
        kind = info.get_attr("IFLA_INFO_KIND") if info else None
        data = info.get_attr("IFLA_INFO_DATA") if info else None
        port = data.get_attr("IFLA_VXLAN_PORT") if kind == "vxlan" and data is not None else None
        master = m.get_attr("IFLA_MASTER")
        links.append(RealLink(m.get_attr("IFLA_IFNAME"), m["index"], kind,
                              m.get_attr("IFLA_LINK") if kind == "veth" else None,
                              names.get(master) if master else None, m.get_attr("IFLA_ADDRESS"),
                              tuple(addrs.get(m["index"], ())), int(port) if port else None))
    try:
        with open("/proc/thread-self/net/ip_vs") as f:
            schedulers = parse_schedulers(f.read())
    except OSError:
        schedulers = {}
    return RealNs(tuple(links), schedulers)


def read(ns_file: str) -> RealNs:
    """The links, addresses and IPVS schedulers of the real namespace at ``ns_file``
    (confined to Docker's namespaces and the root one). Raises NetnsError when it is
    gone or cannot be entered."""
    return netns.in_thread_path(netns.real_path(ns_file), _read_here)
