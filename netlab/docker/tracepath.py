"""Where a trace looks on a real Swarm node, and the facts that name what it sees.

The real counterpart of :mod:`netlab.trace.points` and
:mod:`netlab.trace.facts`: from a :class:`Snapshot` of the node (its
services, tasks and sandboxes, by path) and what its namespaces hold
(:class:`~netlab.kernel.realns.RealNs`), the capture points and the lookup
tables the correlator needs, in Swarm's words (``node1/ingress_sbox``,
``hello-a.1``). Pure: no kernel access.

The namespaces of a request to this node's published port: the client
namespace netlab made, the root namespace (its veth end, the ports of
``docker_gwbridge``, the interface holding the node's address, where VXLAN
leaves), ``ingress_sbox``, the ingress network's overlay namespace
``1-<id>`` and the sandbox of every task of the service that runs here.
Tasks on other nodes cannot be sniffed from here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from netlab.docker.snapshot import RealSandbox, RealService, RealTask, Snapshot
from netlab.ipam import mac_for
from netlab.kernel.clientns import ClientNs
from netlab.kernel.netns import ROOT_NETNS
from netlab.kernel.realns import RealNs
from netlab.trace.facts import LabFacts
from netlab.trace.points import CapturePoint

GWBRIDGE = "docker_gwbridge"
DEFAULT_VXLAN_PORT = 4789


@dataclass(frozen=True)
class RealPath:
    """The namespaces (by key: a name or a path) and capture points of one real trace."""

    service: RealService | None
    published: int
    proto: str
    roles: dict[str, str]                 # key -> host, sandbox, overlay, task, client
    targets: dict[str, str]               # key -> "node1/ingress_sbox", "hello-a.1", "client"
    remote_tasks: tuple[RealTask, ...] = ()   # the service's tasks on other nodes
    local_tasks: tuple[RealTask, ...] = ()
    sandboxes: tuple[RealSandbox, ...] = ()   # those of the path, for the notes
    notes: tuple[str, ...] = field(default=())


def publisher(snap: Snapshot, port: int, proto: str) -> RealService | None:
    """The service that publishes ``proto/port`` (ingress mode first, then host mode)."""
    for mode in ("ingress", "host"):
        for svc in snap.services:
            if any(p.published == port and p.protocol == proto and p.mode == mode
                   for p in svc.ports):
                return svc
    return None


def real_path(snap: Snapshot, client: ClientNs, port: int, proto: str) -> RealPath:
    """The namespaces a request from ``client`` to this node's ``proto/port`` may cross."""
    node = snap.this_node
    svc = publisher(snap, port, proto)
    by_target = {s.target: s for s in snap.sandboxes}
    roles = {client.name: "client", ROOT_NETNS: "host"}
    targets = {client.name: "client", ROOT_NETNS: node}
    used: list[RealSandbox] = []
    host_mode = svc is not None and not any(
        p.published == port and p.protocol == proto and p.mode == "ingress" for p in svc.ports)
    wanted = [] if host_mode else [(f"{node}/ingress_sbox", "sandbox"), (f"{node}/ov-ingress", "overlay")]
    tasks = tuple(t for t in snap.tasks if svc is not None and t.service == svc.name)
    local = tuple(t for t in tasks if t.node == node)
    wanted += [(t.name, "task") for t in local]
    notes = []
    for target, role in wanted:
        sb = by_target.get(target)
        if sb is None:
            notes.append(f"{target}: no namespace found on this node, so nothing there was captured")
            continue
        roles[sb.path] = role
        targets[sb.path] = target
        used.append(sb)
    remote = tuple(t for t in tasks if t.node != node)
    return RealPath(svc, port, proto, roles, targets, remote, local, tuple(used), tuple(notes))


def _root_ifaces(links, node_addrs: set[str], client: ClientNs) -> set[str]:
    """The capture points of the root namespace: the client's veth end, the ports of
    docker_gwbridge, and the underlay: the interface holding the node's address, or
    when that is a bridge, its ports (where VXLAN leaves and arrives)."""
    underlay = {lk.name for lk in links if any(a.split("/")[0] in node_addrs for a in lk.addrs)}
    return ({client.root_if} | underlay
            | {lk.name for lk in links if lk.master == GWBRIDGE or lk.master in underlay})


def capture_points(path: RealPath, seen: dict[str, RealNs], node_addrs: set[str],
                   client: ClientNs, node: str) -> tuple[CapturePoint, ...]:
    """Every interface of the path's namespaces but bridges and lo (in the root
    namespace only those :func:`_root_ifaces` names; in the client's, its veth
    end), as capture points."""
    points = []
    for key, role in path.roles.items():
        if role == "client":
            points.append(CapturePoint(key, "client", "client", role, client.ns_if))
            continue
        if key not in seen:
            continue
        owner = "client" if role == "client" else node
        root = _root_ifaces(seen[key].links, node_addrs, client) if role == "host" else set()
        for link in sorted(seen[key].links, key=lambda lk: lk.name):
            if link.kind == "bridge" or link.name == "lo":
                continue
            if role == "host" and link.name not in root:
                continue
            points.append(CapturePoint(key, path.targets[key], owner, role, link.name))
    return tuple(points)


def _peers(path: RealPath, seen: dict[str, RealNs]) -> tuple[dict, dict]:
    """(netns, iface) -> the veth peer's label, and its MAC when it is an endpoint (not a
    bridge port: a frame a bridge forwards is addressed beyond it), matched by the
    pair's ifindexes."""
    veths = [(key, lk) for key, ns in seen.items() if key in path.targets
             for lk in ns.links if lk.kind == "veth" and lk.peer_index]
    peer, peer_mac = {}, {}
    for key, lk in veths:
        far = [(k, o) for k, o in veths if k != key and o.index == lk.peer_index
               and o.peer_index == lk.index]
        if len(far) == 1:
            k, o = far[0]
            peer[(key, lk.name)] = f"{path.targets[k]}/{o.name}"
            if o.mac and o.master is None:
                peer_mac[(key, lk.name)] = o.mac
    return peer, peer_mac


def real_facts(snap: Snapshot, path: RealPath, seen: dict[str, RealNs]) -> LabFacts:
    """The correlator's lookup tables for a real node, in Swarm's names."""
    node = snap.this_node
    tasks_by_ip: dict[str, tuple[str, str]] = {}
    owner: dict[str, str] = {}
    for t in snap.tasks:
        for cidr in t.addresses.values():
            ip = ipaddress.ip_interface(cidr).ip
            tasks_by_ip[str(ip)] = (t.name, t.node)
            if isinstance(ip, ipaddress.IPv4Address):   # Docker derives MACs from IPv4 only
                owner[mac_for(ip)] = f"{t.name} on {t.node}"
    scheduler = {}
    vxlan_port = DEFAULT_VXLAN_PORT
    for key, ns in seen.items():
        if path.roles.get(key) == "sandbox":
            scheduler.update({(key, mark): s for mark, s in ns.schedulers.items()})
            for lk in ns.links:
                for a in lk.addrs:
                    if isinstance(lb_ip := ipaddress.ip_interface(a).ip, ipaddress.IPv4Address):
                        owner[mac_for(lb_ip)] = path.targets[key]
        if path.roles.get(key) == "overlay":
            vxlan_port = next((lk.vxlan_port for lk in ns.links if lk.vxlan_port), vxlan_port)
    peer, peer_mac = _peers(path, seen)
    host_published = {}
    for svc in snap.services:
        for p in svc.ports:
            if p.mode == "host":
                host_published[(p.protocol, p.published)] = (svc.name, tuple(dict.fromkeys(
                    t.node for t in snap.tasks if t.service == svc.name)))
    return LabFacts(
        tasks_by_ip=tasks_by_ip, owner_of_mac=owner, scheduler=scheduler, peer=peer,
        peer_mac=peer_mac, target=dict(path.targets), role=dict(path.roles),
        node={k: ("client" if r == "client" else node) for k, r in path.roles.items()},
        node_of_lan_ip={n.addr: n.name for n in snap.nodes if n.addr},
        vxlan_port=vxlan_port, host_published=host_published,
        netns_of={t: k for k, t in path.targets.items()},
        lan_ip={n.name: n.addr for n in snap.nodes if n.addr})
