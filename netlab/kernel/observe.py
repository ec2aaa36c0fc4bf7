"""Read the kernel back for one lab and compare it with the plan: what ``status`` calls drift.

Few round trips: every planned namespace is read in one short-lived thread
that enters it (:func:`netlab.kernel.netns.in_thread`): one rtnetlink
session dumps its links, addresses, routes, neighbours and FDB, the planned
sysctls are read from /proc/sys (which follows the reading thread's
namespace), and, where the plan has IPVS services or the namespace is a
sandbox, one generic-netlink session dumps IPVS. Meanwhile one
``iptables-<backend>-save`` per namespace runs in the background, a few side
by side. The comparison itself is pure: :mod:`netlab.diff.compare`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from netlab.diff.compare import KernelView, plan_drift
from netlab.diff.drift import Allowance, Drift, LinkSeen, NetnsSeen
from netlab.errors import MissingFeature, NetlabError
from netlab.kernel import etcnetns, ipvs, netns, nftgen
from netlab.kernel.iptables import IptablesError, SaveRead, split_tables
from netlab.kernel import rtnl
from netlab.kernel.nftgen import SaveMemory
from netlab.kernel.links import NUD_PERMANENT, RT_TABLE_MAIN, RTPROT_KERNEL
from netlab.kernel.xtables import Backend
from netlab.plan import names
from netlab.plan.render import normalize_save
from netlab.plan.types import Address, FdbEntry, Neighbour, Plan, Route

IFF_UP, IFF_LOWER_UP = 0x1, 0x10000
#: Threads reading namespaces side by side (the kernel answers dumps without the GIL).
READERS = 4

def read_netlink(name: str, neighbours: bool = True) -> NetnsSeen:
    """Links, IPv4 addresses, main-table routes (connected ones aside), permanent
    neighbours and remote FDB entries of the namespace this thread is in: one
    plain rtnetlink socket, one dump per table (see :mod:`netlab.kernel.rtnl`).

    ``neighbours=False`` leaves the neighbour table unread (none seen): the
    kernel keeps one neighbour table for the whole machine and walks all of it
    for every namespace's dump, about 1.3 ms a namespace in a 1,000-task lab
    whose overlays hold 32,000 peers (see :func:`reads_neighbours`)."""
    sock = rtnl.Rtnl(name, rtnl.open_socket())
    try:
        link_msgs = sock.dump(rtnl.RTM_GETLINK, rtnl.IFINFO.pack(0, 0, 0, 0, 0))
        addr_msgs = sock.dump(rtnl.RTM_GETADDR, rtnl.IFADDR.pack(socket.AF_INET, 0, 0, 0, 0))
        route_msgs = sock.dump(rtnl.RTM_GETROUTE,
                               rtnl.RTMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0))
        neigh_msgs = (sock.dump(rtnl.RTM_GETNEIGH, rtnl.NDMSG.pack(socket.AF_INET, 0, 0, 0, 0),
                                _permanent) if neighbours else [])
        infos = [rtnl.link_info(m) for m in link_msgs]
        # Remote FDB entries (with a VTEP) live only on VXLAN devices.
        fdb_msgs = (sock.dump(rtnl.RTM_GETNEIGH, rtnl.NDMSG.pack(rtnl.AF_BRIDGE, 0, 0, 0, 0))
                    if any(li.kind == "vxlan" for li in infos) else [])
    finally:
        sock.close()
    by_index = {li.index: li.name for li in infos}
    links = []
    for m, li in zip(link_msgs, infos, strict=True):
        flags = rtnl.IFINFO.unpack(m.fixed)[3]
        links.append(LinkSeen(li.name, li.kind, m.u32(rtnl.IFLA_MTU) or 0, bool(flags & IFF_UP),
                              m.mac(rtnl.IFLA_ADDRESS), by_index.get(li.master) if li.master else None,
                              li.vxlan, li.index, m.u32(rtnl.IFLA_LINK),
                              bool(flags & IFF_LOWER_UP)))
    addrs = []
    for a in addr_msgs:
        _f, plen, _fl, _scope, idx = rtnl.IFADDR.unpack(a.fixed)
        if by_index.get(idx) != "lo":
            addrs.append(Address(name, by_index.get(idx, "?"), f"{a.ip(rtnl.IFA_ADDRESS)}/{plen}",
                                 a.ip(rtnl.IFA_BROADCAST)))
    routes = []
    for r in route_msgs:
        _f, dst_len, _s, _t, table, proto, _scope, _type, _fl = rtnl.RTMSG.unpack(r.fixed)
        if (r.u32(rtnl.RTA_TABLE) or table) != RT_TABLE_MAIN or proto == RTPROT_KERNEL:
            continue
        dst = "default" if dst_len == 0 else f"{r.ip(rtnl.RTA_DST)}/{dst_len}"
        routes.append(Route(name, dst, r.ip(rtnl.RTA_GATEWAY),
                            by_index.get(r.u32(rtnl.RTA_OIF) or 0, "?")))
    neigh = []
    for n in neigh_msgs:
        idx = rtnl.NDMSG.unpack(n.fixed)[1]
        neigh.append(Neighbour(name, by_index.get(idx, "?"), n.ip(rtnl.NDA_DST) or "?",
                               n.mac(rtnl.NDA_LLADDR) or "none"))
    fdb = []
    for f in fdb_msgs:
        vtep = f.ip(rtnl.NDA_DST)
        if vtep:
            idx = rtnl.NDMSG.unpack(f.fixed)[1]
            fdb.append(FdbEntry(name, by_index.get(idx, "?"), f.mac(rtnl.NDA_LLADDR) or "none",
                                vtep))
    return NetnsSeen(tuple(links), tuple(addrs), tuple(routes), tuple(neigh), tuple(fdb))


def reads_neighbours(plan: Plan, netns: str, role: str) -> bool:
    """Whether ``status`` reads the permanent neighbours of ``netns``: wherever the
    plan puts some (the overlays' peers) and in every namespace but a task's.
    A task's table is never written by netlab or by Docker (a task learns its
    neighbours by ARP), and reading it would walk the machine-wide table once
    more per task: 1.4 of a 1,000-task lab's 3.4 CPU seconds of status."""
    return role != "task" or bool(plan.items_in(netns).neighbours)


def _permanent(fixed: memoryview) -> bool:
    """Whether a neighbour message's header says NUD_PERMANENT (what a plan holds)."""
    return bool(rtnl.NDMSG.unpack(fixed)[2] & NUD_PERMANENT)


def kernel_has_ipv6() -> bool:
    """Whether this kernel has IPv6 at all (a kernel-wide fact: ``ipv6.disable=1``
    or no module leaves /proc/sys/net/ipv6 absent in every namespace). Asked
    once per read, not once per namespace: a /proc/sys lookup costs about a
    millisecond where a thousand namespaces each have their own entries."""
    return os.path.isdir("/proc/sys/net/ipv6")


def read_sysctls(keys: list[str], ipv6: bool | None = None) -> dict[str, str | None]:
    """/proc/sys values of ``keys`` in this thread's namespace; None for an absent
    file; IPv6 keys are left out where the kernel has no IPv6 (as apply skips
    them; ``ipv6``: :func:`kernel_has_ipv6` when known, else asked here)."""
    out: dict[str, str | None] = {}
    for key in keys:
        if key.startswith("net.ipv6."):
            if ipv6 is None:
                ipv6 = kernel_has_ipv6()
            if not ipv6:
                continue
        try:
            with open("/proc/sys/" + key.replace(".", "/")) as f:
                out[key] = f.read().strip()
        except FileNotFoundError:
            out[key] = None
    return out


def _reader(label: str, sysctls: list[str], with_ipvs: bool,
            ipv6: bool | None = None, neighbours: bool = True) -> Callable[[], NetnsSeen]:
    """What one thread inside a namespace reads: everything but iptables
    (``ipv6``: see :func:`read_sysctls`; ``neighbours``: see :func:`read_netlink`)."""
    def inside() -> NetnsSeen:
        seen = read_netlink(label, neighbours)
        return NetnsSeen(seen.links, seen.addresses, seen.routes, seen.neighbours, seen.fdb,
                         read_sysctls(sysctls, ipv6), {},
                         tuple(ipvs.read_here()) if with_ipvs else None)
    return inside


def read_netns(name: str, sysctls: list[str], with_ipvs: bool) -> NetnsSeen:
    """Everything but iptables of namespace ``name``, read by one thread inside it.

    Raises NetnsError when the namespace is gone or cannot be entered.
    """
    return netns.in_thread(name, _reader(name, sysctls, with_ipvs))


def read_at(file: str, sysctls: list[str], with_ipvs: bool) -> NetnsSeen:
    """Everything but iptables of a real Docker namespace (``file`` under
    /var/run/docker/netns, or /proc/1/ns/net), read by one thread inside it.

    Raises NetnsError when it is refused, gone or cannot be entered.
    """
    return netns.in_thread_at(file, _reader(file, sysctls, with_ipvs))


def read_saves(files: dict[str, str], backend: Backend) -> dict[str, dict[str, str]]:
    """``iptables-<backend>-save`` of each namespace file (key -> path), split into
    tables with counters and comments lines dropped. Raises MissingFeature (exit 3)
    when the tool or nsenter is missing, NetlabError when it fails in one."""
    try:
        saves = SaveRead(files, backend)
    except IptablesError as err:
        raise MissingFeature(str(err)) from None
    out: dict[str, dict[str, str]] = {}
    for key, text in saves.result().items():
        if isinstance(text, IptablesError):
            if not os.path.exists(files[key]):
                continue     # gone while reading: the caller finds it missing
            raise NetlabError(f"iptables-save: {text}")
        out[key] = {t: normalize_save(body) for t, body in split_tables(text).items()}
    return out


def read_real(files: dict[str, str], sysctls: dict[str, list[str]], backend: Backend,
              ) -> dict[str, NetnsSeen]:
    """A real Docker node's namespaces (key -> file under /var/run/docker/netns, or
    /proc/1/ns/net): links, addresses, routes, neighbours, FDB, the ``sysctls``
    asked for each key, iptables from ``backend``'s save tool and IPVS. A
    namespace that vanished while being read is left out. Raises MissingFeature
    (exit 3) when a tool is missing, NetlabError when iptables-save fails."""
    tables = read_saves(files, backend)
    out: dict[str, NetnsSeen] = {}
    for key, file in files.items():
        if key not in tables:
            continue
        try:
            s = read_at(file, sysctls.get(key, []), True)
        except netns.NetnsError:
            continue
        out[key] = NetnsSeen(s.links, s.addresses, s.routes, s.neighbours, s.fdb, s.sysctls,
                             tables.get(key, {}), s.ipvs)
    return out


def read_view(plan: Plan, backend: Backend, memory: SaveMemory | None = None) -> KernelView:
    """The kernel as it is for ``plan``'s lab: its namespaces and what each planned
    one holds. With ``memory`` and the nft backend, a namespace whose rules are
    at the key of the text kept there (:mod:`netlab.kernel.nftgen`: the same
    namespace, no nf_tables transaction since) is not read again with
    ``iptables-nft-save``, and what was read is kept for the next time. Raises
    MissingFeature (exit 3) when the save tool or nsenter is missing,
    NetlabError when it fails in a namespace that exists."""
    listed = tuple(netns.listed(names.lab_prefix(plan.lab)))
    present = [ns for ns in plan.netns if ns.name in listed]
    keys: dict[str, nftgen.Key | None] = {}
    known: dict[str, str] = {}
    if memory is not None and backend == "nft":
        # Keys first, texts after: a change in between is read under the older key,
        # so the next read finds the key moved and reads again (never the reverse).
        keys = nftgen.generations([ns.name for ns in present])
        known = nftgen.still_valid(memory.recall(), keys)
    try:
        saves = SaveRead({ns.name: netns.path(ns.name) for ns in present
                          if ns.name not in known}, backend)
    except IptablesError as err:
        raise MissingFeature(str(err)) from None
    seen: dict[str, NetnsSeen] = {}
    ipv6 = kernel_has_ipv6()
    readers = {ns.name: _reader(ns.name, [s.key for s in plan.items_in(ns.name).sysctls],
                                bool(plan.items_in(ns.name).ipvs) or ns.role == "sandbox", ipv6,
                                reads_neighbours(plan, ns.name, ns.role))
               for ns in present}
    try:
        # A few threads, each entering one namespace after another (no thread each).
        for name, got in netns.in_threads_lenient(list(readers), lambda n: readers[n](),
                                                  READERS).items():
            if not isinstance(got, netns.NetnsError):
                seen[name] = got     # a NetnsError: gone while reading, reported missing
    finally:
        texts: dict[str, str | IptablesError] = {**saves.result(), **known}
    for name, s in list(seen.items()):
        text = texts[name]
        if isinstance(text, IptablesError):
            if netns.exists(name):
                raise NetlabError(f"status: {text}")
            del seen[name]   # gone while reading: reported missing
            continue
        tables = {t: normalize_save(body) for t, body in split_tables(text).items()}
        seen[name] = NetnsSeen(s.links, s.addresses, s.routes, s.neighbours, s.fdb, s.sysctls,
                               tables, s.ipvs)
    if memory is not None and keys and len(known) < len(seen):
        memory.keep({name: nftgen.SavedRules(key, text) for name, key in keys.items()
                     if key is not None and name in seen
                     and isinstance(text := texts[name], str)})
    return KernelView(listed, seen)


def drift(plan: Plan, backend: Backend, allow: Allowance = Allowance(),
          memory: SaveMemory | None = None) -> list[Drift]:
    """Every difference between ``plan`` and the kernel (rules read from ``backend``,
    ``memory`` as for :func:`read_view`); empty when they agree. See
    :func:`netlab.diff.compare.plan_drift`."""
    view = read_view(plan, backend, memory)
    return plan_drift(plan, view, allow) + etc_drift(plan, view)


def etc_drift(plan: Plan, view: KernelView, root=etcnetns.ETC_NETNS) -> list[Drift]:
    """The files ``ip netns exec`` mounts over /etc (a task's resolv.conf and
    hosts, see :mod:`netlab.kernel.etcnetns`) that are missing or differ, for
    the namespaces that exist."""
    out = []
    for ns in plan.netns:
        files = plan.items_in(ns.name).etc_files
        if not files or ns.name not in view.seen:
            continue
        have = etcnetns.read(ns.name, root)
        for f in files:
            if have.get(f.name) == f.content:
                continue
            path = f"/etc/netns/{ns.name}/{f.name}"
            state = "absent" if f.name not in have else "other content"
            out.append(Drift(ns.name, "etc", f"{path} is {'missing' if state == 'absent' else 'changed'}",
                             target=ns.target, object=f"file {path}", plan="netlab's content",
                             kernel=state))
    return out
