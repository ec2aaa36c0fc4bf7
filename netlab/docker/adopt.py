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
from netlab.docker.snapshot import Snapshot
from netlab.kernel.drift import NetnsSeen
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


def _addr_on(seen: NetnsSeen | None, ifname: str, subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Address | None:
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
    previous = tuple(Task(s.name, slot, real[f"{s.name}.{slot}"])
                     for s in lab.services for slot in range(1, s.replicas + 1)
                     if real.get(f"{s.name}.{slot}"))
    tasks = place_tasks(lab.nodes, lab.services, previous)
    names = {t.name for t in tasks}
    extra = tuple(sorted(t.name for t in snap.tasks if t.name not in names))
    return replace(lab, tasks=tasks), extra


def adopt(lab: Lab, snap: Snapshot, node: str, seen: dict[str, NetnsSeen]) -> Adopted:
    """``lab`` placed and addressed as the Swarm (see the module docstring); ``node`` is
    the scenario node the real node plays and ``seen`` its namespaces read back,
    by the targets they play in the real node's names."""
    this = snap.this_node
    node_of = {n.name: n.name for n in snap.nodes if any(m.name == n.name for m in lab.nodes)}
    node_of[this] = node
    lab2, extra = placed(lab, snap, node_of)
    notes: list[str] = []
    gwbridge = next((n.subnet for n in snap.networks if n.name == "docker_gwbridge" and n.subnet),
                    None)
    if gwbridge and ipaddress.ip_network(gwbridge) != lab2.underlay.gwbridge:
        lab2 = replace(lab2, underlay=replace(lab2.underlay, gwbridge=ipaddress.ip_network(gwbridge)))
        notes.append(f"docker_gwbridge as in the Swarm: {gwbridge}")
    fresh = ipam.allocate(lab2)
    moved = [t.name for t in lab2.tasks if t not in lab.tasks]
    if moved:
        notes.append(f"placement as in the Swarm: {', '.join(sorted(moved))}")
    ing = lab2.ingress.subnet
    sbox = seen.get(f"{this}/ingress_sbox")
    # Only the sandbox addresses the Swarm shows are kept; netlab allocates the others
    # after every kept address (a VIP, a task), so they never take one of those.
    nodes: dict[str, ipam.NodeAddresses] = {}
    if (ip := _addr_on(sbox, "eth0", ing)) is not None:
        nodes[node] = replace(fresh.nodes[node], sandbox_ip=ip)
    taken = {ipaddress.IPv4Interface(a).ip for t in snap.tasks for a in t.addresses.values()}
    taken |= {ipaddress.IPv4Interface(v).ip for x in snap.services for v in x.vips.values()}
    plays = {n: m for m, n in node_of.items()}          # scenario node -> real node
    remote = remote_endpoints(seen.get(f"{this}/ov-ingress"), snap, taken)
    for n in lab2.nodes:
        if n.name != node and plays.get(n.name) in remote:
            nodes[n.name] = replace(fresh.nodes[n.name], sandbox_ip=remote[plays[n.name]])
    by_port, _ = _marks(sbox)
    services: dict[str, ipam.ServiceAddresses] = {}
    for s in lab2.services:
        try:
            real = snap.service(s.name)
        except KeyError:
            continue
        vip = real.vips.get("ingress")
        marks = [by_port[(p.protocol, p.published)] for p in s.ingress_ports
                 if (p.protocol, p.published) in by_port]
        if vip and s.ingress_ports:
            services[s.name] = ipam.ServiceAddresses(ipaddress.IPv4Interface(vip).ip,
                                                     marks[0] if marks else fresh.services[s.name].fwmark)
    tasks: dict[str, ipam.TaskAddresses] = {}
    real_tasks = {t.name: t for t in snap.tasks}
    for t in lab2.tasks:
        r = real_tasks.get(t.name)
        if r is None or "ingress" not in r.addresses and lab2.service(t.service).on_ingress:
            continue
        gw = fresh.tasks[t.name].gw_ip
        if t.node == node and (ip := _addr_on(seen.get(t.name), "eth1", lab2.underlay.gwbridge)):
            gw = ip
        ing_ip = r.addresses.get("ingress")
        tasks[t.name] = ipam.TaskAddresses(t.node, ipaddress.IPv4Interface(ing_ip).ip
                                           if ing_ip else None, gw)
    networks: dict[str, ipam.NetworkAddresses] = {}
    for net in lab2.networks:
        try:
            rnet = snap.network(net.name)
        except KeyError:
            continue
        lb = seen.get(f"{this}/lb-{net.name}")
        _, by_vip = _marks(lb)
        vips = {}
        for s in lab2.services_on(net.name):
            vip = snap.service(s.name).vips.get(net.name) if s.name in {x.name for x in snap.services} else None
            if vip and s.endpoint_mode == "vip":
                ip = ipaddress.IPv4Interface(vip).ip
                vips[s.name] = ipam.ServiceAddresses(ip, by_vip.get(str(ip), fresh.next_fwmark))
        addrs = {t.name: ipaddress.IPv4Interface(real_tasks[t.name].addresses[net.name]).ip
                 for s in lab2.services_on(net.name) for t in lab2.tasks_of(s.name)
                 if t.name in real_tasks and net.name in real_tasks[t.name].addresses}
        lbs = {n: remote[plays[n]] for n in (x.name for x in lab2.nodes)
               if n != node and plays.get(n) in (remote := remote_endpoints(
                   seen.get(f"{this}/ov-{net.name}"), snap, taken))}
        if (lb_ip := _addr_on(lb, "eth0", net.subnet)) is not None:
            lbs[node] = lb_ip
        networks[net.name] = ipam.NetworkAddresses(
            rnet.vni or fresh.networks[net.name].vni, ipam.Pool(net.subnet, 2), lbs, vips, addrs)
    marks = [s.fwmark for s in services.values()] + [
        v.fwmark for n in networks.values() for v in n.vips.values()]
    previous = replace(fresh, nodes=nodes, services=services, tasks=tasks, networks=networks,
                       next_fwmark=max(marks + [fresh.next_fwmark - 1]) + 1)
    allocations = ipam.allocate(lab2, previous)
    if (lan := _lan(snap, seen.get(this))) is not None:
        # The nodes' underlay addresses are the machines' own: VXLAN's FDB entries name them.
        real_addr = {n.name: n.addr for n in snap.nodes}
        lab2 = replace(lab2, underlay=replace(lab2.underlay, lan=lan))
        allocations = replace(allocations, nodes={
            n: replace(a, lan_ip=ipaddress.IPv4Address(real_addr[plays[n]]))
            if real_addr.get(plays.get(n, "")) else a for n, a in allocations.nodes.items()})
        absent = [n.name for n in lab2.nodes if not real_addr.get(plays.get(n.name, ""))]
        notes.append(f"the underlay as in the Swarm: {lan}, nodes at " + ", ".join(
            f"{n} {a.lan_ip}" for n, a in allocations.nodes.items() if n not in absent)
            + (f"; not in the Swarm: {', '.join(absent)}" if absent else ""))
    if services or tasks or networks:
        notes.append("addresses, VIPs and firewall marks as in the Swarm where it has them")
    return Adopted(lab2, allocations, tuple(notes), extra)
