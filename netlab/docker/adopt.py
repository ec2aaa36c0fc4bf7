"""The plan a real node is compared with: the scenario, placed and addressed as the Swarm is.

netlab's scheduler and IPAM make the same kinds of choices as Swarm's, but
not always the same ones: which node runs ``hello-a.2``, which address a
task got, which firewall mark a service has. Those are allocations, not
plumbing, so before comparing a real node with a scenario's plan,
:func:`adopt` gives the scenario the Swarm's choices wherever they exist:

- placement: each task of the scenario that runs in the Swarm (same service
  and slot) goes to the scenario node that plays its real node; the others
  keep netlab's placement;
- addresses: the real node's ingress sandbox and load balancer addresses
  (read from its namespaces), each service's VIPs, each task's overlay
  addresses (from the Engine) and its docker_gwbridge address (from its
  namespace), the firewall marks (from the real mangle rules). What the
  Swarm does not say is allocated by netlab as usual.

Every choice taken over is listed (``Adopted.notes``), so the report says
what was aligned and nothing is hidden. Pure: the real namespaces come in
already read.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace

from netlab import ipam
from netlab.diff.drift import NetnsSeen
from netlab.docker.snapshot import Snapshot
from netlab.model import Lab, Task, place_tasks

_MARK = re.compile(r"--set-xmark (0x[0-9a-f]+)/0xffffffff")
_DPORT = re.compile(r"-p (tcp|udp) -m \1 --dport (\d+) ")
_DST = re.compile(r"-d ([\d.]+)/32 ")


@dataclass(frozen=True)
class Adopted:
    """The scenario's lab placed as the Swarm, its allocations, and what was taken over."""

    lab: Lab
    allocations: ipam.Allocations
    notes: tuple[str, ...]
    extra_tasks: tuple[str, ...]     # real tasks the scenario has no slot for

    def owners(self) -> dict[str, str]:
        """Each overlay address of the plan -> the Swarm object that holds it, to name
        the object behind a difference (a neighbour, an FDB entry, a destination)."""
        a = self.allocations
        out = {str(n.sandbox_ip): f"the ingress_sbox of {name}" for name, n in a.nodes.items()}
        out.update({str(s.vip): f"the VIP of {name}" for name, s in a.services.items()})
        for name, net in a.networks.items():
            out.update({str(ip): f"the {name} load balancer of {node}" for node, ip in net.lb.items()})
            out.update({str(v.vip): f"the VIP of {svc} on {name}" for svc, v in net.vips.items()})
            out.update({str(ip): f"task {t} on {self.lab_task(t)}"
                        for t, ip in net.tasks.items()})
        out.update({str(t.ingress_ip): f"task {name} on {t.node}" for name, t in a.tasks.items()
                    if t.ingress_ip is not None})
        return out

    def lab_task(self, name: str) -> str:
        """The node of the task called ``name``."""
        return next(t.node for t in self.lab.tasks if t.name == name)


def _addr_on(seen: NetnsSeen | None, ifname: str,
             subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Address | None:
    """The address of ``ifname`` in ``seen`` that lies in ``subnet``, if any."""
    for a in seen.addresses if seen else ():
        iface = ipaddress.IPv4Interface(a.cidr)
        if a.ifname == ifname and iface.ip in subnet:
            return iface.ip
    return None


def _marks(seen: NetnsSeen | None) -> tuple[dict[tuple[str, int], int], dict[str, int]]:
    """The firewall marks of a real sandbox's mangle rules: by (protocol, published
    port) from PREROUTING, by VIP from INPUT."""
    by_port: dict[tuple[str, int], int] = {}
    by_vip: dict[str, int] = {}
    text = (seen.tables.get("mangle", "") if seen else "")
    for line in text.splitlines():
        mark = _MARK.search(line)
        if not mark:
            continue
        if line.startswith("-A PREROUTING") and (m := _DPORT.search(line + " ")):
            by_port[(m.group(1), int(m.group(2)))] = int(mark.group(1), 16)
        elif line.startswith(("-A INPUT", "-A OUTPUT")) and (m := _DST.search(line)):
            by_vip[m.group(1)] = int(mark.group(1), 16)
    return by_port, by_vip


def _ip_of_mac(mac: str) -> ipaddress.IPv4Address | None:
    """The address a libnetwork MAC was made from (``02:42:`` + the IPv4 bytes)."""
    parts = mac.lower().split(":")
    if len(parts) != 6 or parts[:2] != ["02", "42"]:
        return None
    return ipaddress.IPv4Address(bytes(int(x, 16) for x in parts[2:]))


def remote_endpoints(overlay: NetnsSeen | None, snap: Snapshot, taken: set[ipaddress.IPv4Address],
                     ) -> dict[str, ipaddress.IPv4Address]:
    """The address each other node's sandbox (or load balancer) has on a network, as
    the node's overlay namespace knows its peers: a permanent FDB entry on vxlan0
    sends a MAC (``02:42:`` + the endpoint's address) to a node's underlay address.
    Endpoints in ``taken`` (tasks, VIPs) are not sandboxes."""
    by_addr = {n.addr: n.name for n in snap.nodes}
    out: dict[str, ipaddress.IPv4Address] = {}
    for f in overlay.fdb if overlay else ():
        ip, node = _ip_of_mac(f.mac), by_addr.get(f.dst)
        if ip is not None and node is not None and ip not in taken:
            out.setdefault(node, ip)
    return out


def _lan(snap: Snapshot, host: NetnsSeen | None) -> ipaddress.IPv4Network | None:
    """The real underlay: the network of the host's address that is its node's ``Status.Addr``."""
    addr = snap.node(snap.this_node).addr
    for a in host.addresses if host else ():
        iface = ipaddress.IPv4Interface(a.cidr)
        if str(iface.ip) == addr:
            return iface.network
    return None


def placed(lab: Lab, snap: Snapshot, node_of: dict[str, str]) -> tuple[Lab, tuple[str, ...]]:
    """``lab`` with each task the Swarm runs (same service and slot) on the scenario
    node playing its real node (``node_of``: real scenario name -> scenario node);
    the rest placed by netlab around them. Also the real tasks the scenario has no
    place for."""
    real = {t.name: node_of.get(t.node) for t in snap.tasks}
    previous = tuple(Task(s.name, slot, on)
                     for s in lab.services for slot in range(1, s.replicas + 1)
                     if (on := real.get(f"{s.name}.{slot}")))
    tasks = place_tasks(lab.nodes, lab.services, previous)
    names = {t.name for t in tasks}
    extra = tuple(sorted(t.name for t in snap.tasks if t.name not in names))
    return replace(lab, tasks=tasks), extra


@dataclass(frozen=True)
class _Real:
    """What :func:`adopt` reads the Swarm's choices from."""

    snap: Snapshot
    seen: dict[str, NetnsSeen]
    node: str                       # the scenario node the real node plays
    plays: dict[str, str]           # scenario node -> real node's scenario name
    fresh: ipam.Allocations         # netlab's own choices, where the Swarm has none
    taken: set[ipaddress.IPv4Address]

    def ns(self, what: str) -> NetnsSeen | None:
        """The real node's namespace playing ``<node>/<what>``."""
        return self.seen.get(f"{self.snap.this_node}/{what}")


def _sandbox_addresses(lab: Lab, r: _Real) -> dict[str, ipam.NodeAddresses]:
    """The ingress sandbox addresses the Swarm shows: this node's, and the others' from
    this node's overlay FDB. Only these are kept; netlab allocates the others after
    every kept address (a VIP, a task), so they never take one of those."""
    nodes: dict[str, ipam.NodeAddresses] = {}
    if (ip := _addr_on(r.ns("ingress_sbox"), "eth0", lab.ingress.subnet)) is not None:
        nodes[r.node] = replace(r.fresh.nodes[r.node], sandbox_ip=ip)
    remote = remote_endpoints(r.ns("ov-ingress"), r.snap, r.taken)
    for n in lab.nodes:
        if n.name != r.node and r.plays.get(n.name) in remote:
            nodes[n.name] = replace(r.fresh.nodes[n.name], sandbox_ip=remote[r.plays[n.name]])
    return nodes


def _ingress_services(lab: Lab, r: _Real) -> dict[str, ipam.ServiceAddresses]:
    """Each published service's ingress VIP (the Engine's) and firewall mark (the real
    ingress_sbox's mangle rule for its first published port)."""
    by_port, _ = _marks(r.ns("ingress_sbox"))
    real = {s.name: s for s in r.snap.services}
    out: dict[str, ipam.ServiceAddresses] = {}
    for s in lab.services:
        vip = real[s.name].vips.get("ingress") if s.name in real else None
        if not (vip and s.ingress_ports):
            continue
        marks = [by_port[(p.protocol, p.published)] for p in s.ingress_ports
                 if (p.protocol, p.published) in by_port]
        out[s.name] = ipam.ServiceAddresses(ipaddress.IPv4Interface(vip).ip,
                                            marks[0] if marks else r.fresh.services[s.name].fwmark)
    return out


def _task_addresses(lab: Lab, r: _Real) -> dict[str, ipam.TaskAddresses]:
    """Each running task's ingress address (the Engine's) and, on this node, its
    docker_gwbridge address (its namespace's eth1)."""
    real = {t.name: t for t in r.snap.tasks}
    out: dict[str, ipam.TaskAddresses] = {}
    for t in lab.tasks:
        task = real.get(t.name)
        if task is None or ("ingress" not in task.addresses and lab.service(t.service).on_ingress):
            continue
        gw = r.fresh.tasks[t.name].gw_ip
        if t.node == r.node and (ip := _addr_on(r.seen.get(t.name), "eth1", lab.underlay.gwbridge)):
            gw = ip
        ing_ip = task.addresses.get("ingress")
        out[t.name] = ipam.TaskAddresses(t.node, ipaddress.IPv4Interface(ing_ip).ip
                                         if ing_ip else None, gw)
    return out


def _networks(lab: Lab, r: _Real) -> dict[str, ipam.NetworkAddresses]:
    """Each user network's VNI, load balancer addresses (this node's from its lb
    sandbox, the others' from the overlay FDB), VIPs with their marks (the lb
    sandbox's mangle INPUT rules) and task addresses, as the Swarm has them."""
    real_tasks = {t.name: t for t in r.snap.tasks}
    real_services = {s.name: s for s in r.snap.services}
    out: dict[str, ipam.NetworkAddresses] = {}
    for net in lab.networks:
        try:
            rnet = r.snap.network(net.name)
        except KeyError:
            continue
        lb = r.ns(f"lb-{net.name}")
        _, by_vip = _marks(lb)
        vips = {}
        for s in lab.services_on(net.name):
            vip = real_services[s.name].vips.get(net.name) if s.name in real_services else None
            if vip and s.endpoint_mode == "vip":
                ip = ipaddress.IPv4Interface(vip).ip
                vips[s.name] = ipam.ServiceAddresses(ip, by_vip.get(str(ip), r.fresh.next_fwmark))
        addrs = {t.name: ipaddress.IPv4Interface(real_tasks[t.name].addresses[net.name]).ip
                 for s in lab.services_on(net.name) for t in lab.tasks_of(s.name)
                 if t.name in real_tasks and net.name in real_tasks[t.name].addresses}
        remote = remote_endpoints(r.ns(f"ov-{net.name}"), r.snap, r.taken)
        lbs = {n.name: remote[r.plays[n.name]] for n in lab.nodes
               if n.name != r.node and r.plays.get(n.name) in remote}
        if (lb_ip := _addr_on(lb, "eth0", net.subnet)) is not None:
            lbs[r.node] = lb_ip
        out[net.name] = ipam.NetworkAddresses(
            rnet.vni or r.fresh.networks[net.name].vni, ipam.Pool(net.subnet, 2), lbs, vips, addrs)
    return out


def _underlay(lab: Lab, allocations: ipam.Allocations, r: _Real,
              ) -> tuple[Lab, ipam.Allocations, str | None]:
    """The nodes' real underlay addresses (VXLAN's FDB entries name them), and a note."""
    lan = _lan(r.snap, r.seen.get(r.snap.this_node))
    if lan is None:
        return lab, allocations, None
    real_addr = {n.name: n.addr for n in r.snap.nodes}
    absent = [n.name for n in lab.nodes if not real_addr.get(r.plays.get(n.name, ""))]
    nodes = {n: replace(a, lan_ip=ipaddress.IPv4Address(real_addr[r.plays[n]]))
             if n not in absent else a for n, a in allocations.nodes.items()}
    note = (f"the underlay as in the Swarm: {lan}, nodes at "
            + ", ".join(f"{n} {a.lan_ip}" for n, a in nodes.items() if n not in absent)
            + (f"; not in the Swarm: {', '.join(absent)}" if absent else ""))
    return (replace(lab, underlay=replace(lab.underlay, lan=lan)),
            replace(allocations, nodes=nodes), note)


def adopt(lab: Lab, snap: Snapshot, node: str, seen: dict[str, NetnsSeen]) -> Adopted:
    """``lab`` placed and addressed as the Swarm (see the module docstring); ``node`` is
    the scenario node the real node plays and ``seen`` its namespaces read back,
    by the targets they play in the real node's names."""
    node_of = {n.name: n.name for n in snap.nodes if any(m.name == n.name for m in lab.nodes)}
    node_of[snap.this_node] = node
    lab2, extra = placed(lab, snap, node_of)
    notes: list[str] = []
    if moved := sorted(t.name for t in lab2.tasks if t not in lab.tasks):
        notes.append(f"placement as in the Swarm: {', '.join(moved)}")
    gwbridge = next((n.subnet for n in snap.networks if n.name == "docker_gwbridge" and n.subnet),
                    None)
    real_gw = ipaddress.ip_network(gwbridge) if gwbridge else None
    if isinstance(real_gw, ipaddress.IPv4Network) and real_gw != lab2.underlay.gwbridge:
        lab2 = replace(lab2, underlay=replace(lab2.underlay, gwbridge=real_gw))
        notes.append(f"docker_gwbridge as in the Swarm: {gwbridge}")
    fresh = ipam.allocate(lab2)
    taken = {ipaddress.IPv4Interface(a).ip for t in snap.tasks for a in t.addresses.values()}
    taken |= {ipaddress.IPv4Interface(v).ip for x in snap.services for v in x.vips.values()}
    r = _Real(snap, seen, node, {n: m for m, n in node_of.items()}, fresh, taken)
    services, networks = _ingress_services(lab2, r), _networks(lab2, r)
    tasks = _task_addresses(lab2, r)
    marks = [s.fwmark for s in services.values()] + [
        v.fwmark for n in networks.values() for v in n.vips.values()]
    previous = replace(fresh, nodes=_sandbox_addresses(lab2, r), services=services, tasks=tasks,
                       networks=networks, next_fwmark=max(marks + [fresh.next_fwmark - 1]) + 1)
    allocations = ipam.allocate(lab2, previous)
    lab2, allocations, note = _underlay(lab2, allocations, r)
    if note:
        notes.append(note)
    if services or tasks or networks:
        notes.append("addresses, VIPs and firewall marks as in the Swarm where it has them")
    return Adopted(lab2, allocations, tuple(notes), extra)
