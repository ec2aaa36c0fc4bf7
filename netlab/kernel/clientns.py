"""The client namespace of a trace on a real Docker node: made for one trace, then removed.

``netlab trace --docker`` sends its request from ``nl-dtrace-<pid>`` (under
/var/run/netns), joined to the root namespace by a veth pair with a
link-local /30 (169.254.x.y, picked so it overlaps no address and no route
the machine has) and a default route via the root end. This is the one
place netlab changes a machine's root namespace, and only on a real Docker
host the user asked to trace: one veth end with one address; removing the
namespace and that end leaves the machine as it was.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from netlab.errors import MissingFeature
from netlab.kernel import netns

PREFIX = "nl-dtrace-"
LINK_LOCAL = ipaddress.IPv4Network("169.254.0.0/16")
# RFC 3927 reserves the first and last /24; 169.254.169.0/24 holds clouds' metadata service.
RESERVED = tuple(ipaddress.IPv4Network(n) for n in
                 ("169.254.0.0/24", "169.254.255.0/24", "169.254.169.0/24"))


@dataclass(frozen=True)
class ClientNs:
    """The client namespace of one trace and its link to the root namespace."""

    name: str          # nl-dtrace-<pid>
    root_if: str       # the root end: nldt<pid>
    ns_if: str         # eth0, inside the namespace
    root_ip: str       # 169.254.x.1 (the client's default gateway)
    ip: str            # 169.254.x.2 (the client's address)
    prefixlen: int = 30


def names_for(pid: int) -> tuple[str, str]:
    """(namespace, root end's interface name) for process ``pid``."""
    return f"{PREFIX}{pid}", f"nldt{pid}"[:15]


def pick_subnet(taken: list[str], seed: int) -> ipaddress.IPv4Network:
    """A /30 of 169.254.0.0/16 overlapping none of ``taken`` (addresses and routes as
    CIDRs), starting from ``seed``; raises MissingFeature when none is free."""
    nets = [n for n in (ipaddress.ip_network(t, strict=False) for t in taken)
            if isinstance(n, ipaddress.IPv4Network) and n.prefixlen > 0] + list(RESERVED)
    subnets = list(LINK_LOCAL.subnets(new_prefix=30))
    for i in range(len(subnets)):
        cand = subnets[(seed + i) % len(subnets)]
        if not any(cand.overlaps(n) for n in nets):
            return cand
    raise MissingFeature("no free /30 in 169.254.0.0/16 for the trace's client "
                         "(hint: the machine's addresses or routes cover all of it)")


def _taken(ipr) -> list[str]:
    """Every IPv4 address (as its subnet) and route destination of the root namespace."""
    out = [f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in ipr.get_addr(family=2)]
    for r in ipr.get_routes(family=2):
        dst = r.get_attr("RTA_DST")
        if dst and r["dst_len"]:
            out.append(f"{dst}/{r['dst_len']}")
    return out


def in_root() -> bool:
    """True when this process runs in the machine's root network namespace."""
    return os.stat("/proc/self/ns/net").st_ino == os.stat(netns.ROOT_NETNS).st_ino


def create(pid: int) -> ClientNs:
    """Make ``nl-dtrace-<pid>`` and its veth to the root namespace, addressed and up.

    Undoes what it made and re-raises when a step fails. Raises
    MissingFeature when this process is not in the root namespace (the
    client's packets must enter where dockerd programs DOCKER-INGRESS).
    """
    from pyroute2 import IPRoute
    if not in_root():
        raise MissingFeature("netlab must run in the machine's root network namespace to trace "
                             "a real node (hint: run it on the host, not in a container)")
    name, root_if = names_for(pid)
    netns.create(name)
    try:
        with IPRoute() as ipr:
            net = pick_subnet(_taken(ipr), pid)
            hosts = list(net.hosts())
            c = ClientNs(name, root_if, "eth0", str(hosts[0]), str(hosts[1]))
            ipr.link("add", ifname=root_if, kind="veth", peer={"ifname": c.ns_if, "net_ns_fd": name})
            idx = ipr.link_lookup(ifname=root_if)[0]
            ipr.addr("add", index=idx, address=c.root_ip, prefixlen=c.prefixlen)
            ipr.link("set", index=idx, state="up")

        def inside() -> None:
            with IPRoute() as nsr:
                lo, eth = nsr.link_lookup(ifname="lo")[0], nsr.link_lookup(ifname=c.ns_if)[0]
                nsr.link("set", index=lo, state="up")
                nsr.addr("add", index=eth, address=c.ip, prefixlen=c.prefixlen)
                nsr.link("set", index=eth, state="up")
                nsr.route("add", dst="0.0.0.0/0", gateway=c.root_ip, oif=eth)
        netns.in_thread(name, inside)
        return c
    except BaseException:
        remove(name, root_if)
        raise


def remove(name: str, root_if: str) -> None:
    """Delete the root end (its peer goes with it) and the namespace; absent ones are fine."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError
    if not name.startswith(PREFIX):
        raise ValueError(f"not a trace client namespace: {name}")
    with IPRoute() as ipr:
        for idx in ipr.link_lookup(ifname=root_if):
            try:
                ipr.link("del", index=idx)
            except NetlinkError:
                pass
    netns.remove(name)


def leftovers() -> list[str]:
    """Client namespaces of traces whose process is gone (killed before it cleaned up)."""
    out = []
    for name in netns.listed(PREFIX):
        pid = name[len(PREFIX):]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            out.append(name)
    return out


def sweep() -> list[str]:
    """Remove :func:`leftovers` and their root ends; returns their names."""
    gone = leftovers()
    for name in gone:
        remove(name, names_for(int(name[len(PREFIX):]))[1])
    return gone
