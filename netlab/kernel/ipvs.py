"""IPVS firewall-mark services over generic netlink (pyroute2), per namespace.

As libnetwork's ``addLBBackend``: a fwmark service (no address, no port),
scheduler ``rr``, destinations in masquerade mode at port 0 with weight 1.
pyroute2's defaults (``wlc``, direct routing) are never relied on, and a
fwmark service needs an explicit netmask or the kernel answers EINVAL.
"""

from __future__ import annotations

import errno
import platform
import socket
from dataclasses import dataclass

from netlab.errors import MissingFeature
from netlab.kernel.netns import patient_pyroute2
from netlab.plan.types import IpvsDest, IpvsService

FWD = {"Masq": 0, "Local": 1, "Tunnel": 2, "Route": 3}
FWD_NAMES = {v: k for k, v in FWD.items()}
FWD_MASK = 0x0007   # IP_VS_CONN_F_FWD_MASK


@dataclass(frozen=True)
class ObservedService:
    fwmark: int
    scheduler: str
    dests: tuple[IpvsDest, ...]


def _ipvs(netns: str | None):
    """A generic-netlink IPVS session in ``netns``; None: the caller's own namespace
    (a thread that entered one, see :func:`netlab.kernel.netns.in_thread`). Raises
    MissingFeature (exit 3) on a kernel without IPVS, NetlinkError otherwise."""
    from pyroute2 import IPVS
    from pyroute2.netlink.exceptions import NetlinkError
    try:
        if netns is None:
            return IPVS()
        patient_pyroute2()
        return IPVS(netns=netns, flags=0)
    except NetlinkError as err:
        if err.code != errno.ENOENT:    # no IPVS generic-netlink family: no ip_vs here
            raise
        from netlab.kernel.features import VM_HINT
        raise MissingFeature(f"this kernel ({platform.release()}) has no IPVS (ip_vs); "
                             f"{VM_HINT}") from None


def _svc(fwmark: int, scheduler: str | None = None):
    from pyroute2 import IPVSService
    kw: dict[str, int | str] = {"fwmark": fwmark, "af": socket.AF_INET}
    if scheduler:
        kw.update(sched_name=scheduler, netmask="255.255.255.255")
    return IPVSService(**kw)


def _dest(d: IpvsDest):
    from pyroute2 import IPVSDest
    return IPVSDest(addr=d.addr, port=d.port, fwd_method=FWD[d.forward], weight=d.weight)


def read(netns: str | None) -> list[ObservedService]:
    """The fwmark services in ``netns`` (None: the calling thread's) and their destinations."""
    from pyroute2 import IPVSDest, IPVSService
    out = []
    with _ipvs(netns) as ipvs:
        for msg in ipvs.service("dump"):
            svc = IPVSService.from_message(msg)
            fwmark = svc.get("fwmark") or 0
            dests = []
            for dmsg in ipvs.dest("dump", service=_svc(fwmark)):
                d = IPVSDest.from_message(dmsg)
                # pyroute2 0.9.7 does not map the kernel's FWD_METHOD attribute back
                # to "fwd_method" (which keeps its default, 3): read it raw.
                fwd = d.get("IPVS_DEST_ATTR_FWD_METHOD", d.get("fwd_method")) & FWD_MASK
                # The kernel may hold a method netlab never plans ("Local", "fwd5"):
                # it is kept as read, so drift shows it.
                dests.append(IpvsDest(d.get("addr"), d.get("port") or 0, d.get("weight"),
                                      FWD_NAMES.get(fwd, f"fwd{fwd}")))  # type: ignore[arg-type]
            out.append(ObservedService(fwmark, svc.get("sched_name"),
                                       tuple(sorted(dests, key=lambda x: x.addr))))
    return out


def read_here() -> list[ObservedService]:
    """The fwmark services of the calling thread's namespace and their destinations,
    from ``/proc/net/ip_vs`` (the one parser, :mod:`netlab.kernel.procfs`): one file
    read, where :func:`read` makes a dump per service that pyroute2 parses in Python
    (most of a status's time in an emulated VM). The kernel prints every forward
    method it does not name otherwise as ``Masq``. Raises MissingFeature (exit 3) on
    a kernel without IPVS."""
    from netlab.kernel.features import VM_HINT
    from netlab.kernel.procfs import IP_VS, parse_ip_vs
    try:
        with open(IP_VS) as f:
            table = parse_ip_vs(f.read())
    except FileNotFoundError:
        raise MissingFeature(f"this kernel ({platform.release()}) has no IPVS (ip_vs); "
                             f"{VM_HINT}") from None
    dests: dict[int, list[IpvsDest]] = {fwmark: [] for fwmark in table.schedulers}
    for d in table.destinations:
        dests.setdefault(d.fwmark, []).append(
            IpvsDest(d.addr, d.port, d.weight, d.forward))  # type: ignore[arg-type]
    return [ObservedService(fwmark, table.schedulers.get(fwmark, ""),
                            tuple(sorted(ds, key=lambda x: x.addr)))
            for fwmark, ds in dests.items()]


def sync(netns: str, wanted: list[IpvsService],
         holds: list[IpvsService] | None = None) -> int:
    """Make ``netns`` hold exactly ``wanted``; returns the number of netlink requests.

    ``holds``: what the namespace holds now when the caller knows it (a change's
    plan before): nothing is read, only the differences are written. None: the
    services are read first (a dump per service; pyroute2 parses them in Python,
    most of a change's time in an emulated VM). Runs in a short-lived thread
    inside the namespace (one generic-netlink session there, no helper process
    forked per namespace). Raises NetnsError when the namespace is missing,
    NetlinkError when the kernel refuses."""
    from netlab.kernel import netns as kernel_netns
    return kernel_netns.in_thread(netns, lambda: _sync_here(wanted, holds))


def _sync_here(wanted: list[IpvsService], holds: list[IpvsService] | None = None) -> int:
    """:func:`sync` in the calling thread's namespace."""
    requests = 0 if holds is not None else 1
    have: dict[int, ObservedService | IpvsService] = (
        {s.fwmark: s for s in holds} if holds is not None else
        {s.fwmark: s for s in read(None)})
    with _ipvs(None) as ipvs:
        for svc in wanted:
            cur = have.pop(svc.fwmark, None)
            if cur is None or cur.scheduler != svc.scheduler:
                if cur is not None:
                    ipvs.service("del", service=_svc(svc.fwmark))
                    requests += 1
                ipvs.service("add", service=_svc(svc.fwmark, svc.scheduler))
                requests += 1
                cur_dests: dict[str, IpvsDest] = {}
            else:
                cur_dests = {d.addr: d for d in cur.dests}
            for d in svc.dests:
                old = cur_dests.pop(d.addr, None)
                if old == d:
                    continue
                ipvs.dest("set" if old else "add", service=_svc(svc.fwmark), dest=_dest(d))
                requests += 1
            for d in cur_dests.values():
                ipvs.dest("del", service=_svc(svc.fwmark), dest=_dest(d))
                requests += 1
        for fwmark in have:
            ipvs.service("del", service=_svc(fwmark))
            requests += 1
    return requests


def set_weights(netns: str, fwmark: int, dests: list[IpvsDest], weight: int) -> int:
    """Set the weight of ``dests`` of the fwmark service ``fwmark`` in ``netns``.

    Weight 0 is libnetwork's deweighting (``rmLBBackend`` with
    ``fullRemove`` false: ``i.SetDestination(s, d)`` with ``Weight: 0``): the
    scheduler sends no new connection to the destination while established
    ones keep flowing, until the destination is removed. Returns the number
    of netlink requests; raises NetlinkError when the kernel refuses (no
    such service or destination).
    """
    return set_weights_in(netns, [(fwmark, dests)], weight)


def set_weights_in(netns: str, services: list[tuple[int, list[IpvsDest]]], weight: int) -> int:
    """:func:`set_weights` for several fwmark services of one namespace, through one
    session opened by a thread inside it (no helper process forked). Raises
    NetnsError when the namespace is missing, NetlinkError when the kernel refuses."""
    from netlab.kernel import netns as kernel_netns

    def here() -> int:
        with _ipvs(None) as ipvs:
            for fwmark, dests in services:
                for d in dests:
                    ipvs.dest("set", service=_svc(fwmark),
                              dest=_dest(IpvsDest(d.addr, d.port, weight, d.forward)))
        return sum(len(d) for _, d in services)
    return kernel_netns.in_thread(netns, here)
