"""User overlay networks in the plan: each node's ``ov-<net>`` and ``lb-<net>`` sandbox.

As Docker 20.10 programs them (``ov_network.go``, ``sandbox.go``,
``service_linux.go``; see ``shared/reference/swarm-ingress-and-kube-proxy.md``
§1.3-1.4), on every node and for every user network:

* the overlay namespace ``<node>/ov-<net>``: ``br0`` holding the gateway
  (``.1``), ``vxlan0`` made in the node's host namespace with the network's
  VNI, static neighbour and FDB entries for every remote endpoint on the
  network (LB endpoints and tasks; never a VIP: only the node-local LB
  sandbox answers ARP for it, and ``vxlan0``'s ARP proxy drops what it does
  not know);
* the LB sandbox ``<node>/lb-<net>`` (``createLoadBalancerSandbox``): ``eth0``
  on ``br0`` with the node's LB endpoint address, each vip-mode service's VIP
  as a /32 alias, ``mangle INPUT -d VIP/32 -j MARK``, the fwmark IPVS service
  (rr, the service's tasks on this network, Masq, port 0) and ``nat
  POSTROUTING -m ipvs --ipvs -d SUBNET -j SNAT --to-source LB-IP``, the LB
  sysctls, and no default route (only ingress_sbox gets a gateway).

A task reaches a VIP on-link through its interface on the network: the
ARP request goes over ``br0`` to the local LB sandbox, which owns the VIP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netlab import ipam
from netlab.model import OverlayNetwork, Task
from netlab.plan import names
from netlab.plan.sysctls import LB_SYSCTLS, NO_IPV6
from netlab.plan.types import (
    Address, Bridge, FdbEntry, IpvsDest, IpvsService, Match, Neighbour, Netns, Sysctl,
    Target, Veth, VethEnd, Vxlan,
)

if TYPE_CHECKING:
    from netlab.plan.build import _Builder


def endpoints(b: _Builder, net: OverlayNetwork) -> list[tuple[str, str]]:
    """(node, address) of every endpoint on ``net``: LB sandboxes, then tasks."""
    na = b.addr.networks[net.name]
    eps = [(n.name, str(na.lb[n.name])) for n in b.lab.nodes]
    eps += [(t.node, str(na.tasks[t.name])) for s in b.lab.services_on(net.name)
            for t in b.lab.tasks_of(s.name)]
    return eps


def networks_on_node(b: _Builder, node: str) -> None:
    """Every user network's overlay namespace and LB sandbox on ``node``."""
    for net in b.lab.networks:
        overlay(b, node, net)
        lb_sandbox(b, node, net)


def overlay(b: _Builder, node: str, net: OverlayNetwork) -> None:
    lab = b.lab.name
    ov, host = names.overlay_ns(lab, node, net.name), names.node_ns(lab, node)
    b.add("netns", Netns(ov, f"{node}/ov-{net.name}", "overlay", node))
    b.add("bridges", Bridge(ov, "br0", net.mtu))
    b.address(ov, "br0", net.gateway, net.subnet)
    b.add("sysctls", *(Sysctl(ov, k, v) for k, v in NO_IPV6))
    b.add("vxlans", Vxlan(ov, host, "vxlan0", b.addr.networks[net.name].vni,
                          b.lab.underlay.data_path_port, net.mtu, "br0"))
    for peer_node, ip in endpoints(b, net):
        if peer_node == node:
            continue
        mac = ipam.mac_for(ipam.IPv4(ip))
        b.add("neighbours", Neighbour(ov, "vxlan0", ip, mac))
        b.add("fdb", FdbEntry(ov, "vxlan0", mac, str(b.addr.nodes[peer_node].lan_ip)))


def lb_sandbox(b: _Builder, node: str, net: OverlayNetwork) -> None:
    lab, na = b.lab.name, b.addr.networks[net.name]
    ns = names.lb_ns(lab, node, net.name)
    lb_ip = na.lb[node]
    b.add("netns", Netns(ns, f"{node}/lb-{net.name}", "sandbox", node))
    b.add("veths", Veth(VethEnd(names.overlay_ns(lab, node, net.name), names.veth_for(lb_ip),
                                master="br0"),
                        VethEnd(ns, "eth0", ipam.mac_for(lb_ip)), net.mtu))
    b.address(ns, "eth0", lb_ip, net.subnet)
    services = [s for s in b.lab.services_on(net.name) if s.name in na.vips]
    for service in services:
        b.add("addresses", Address(ns, "eth0", f"{na.vips[service.name].vip}/32"))
    b.add("sysctls", *(Sysctl(ns, k, v) for k, v in NO_IPV6 + LB_SYSCTLS))
    for service in services:
        sa = na.vips[service.name]
        b.rule(ns, "mangle", "INPUT", Target("MARK", (("set-xmark", f"{sa.fwmark:#x}/0xffffffff"),)),
               f"svc/{service.name}:vip/{net.name}", dst=f"{sa.vip}/32")
        dests = tuple(IpvsDest(str(na.tasks[t.name])) for t in b.lab.tasks_of(service.name))
        b.add("ipvs", IpvsService(ns, sa.fwmark, "rr", dests, service.name))
    if services:
        b.rule(ns, "nat", "POSTROUTING", Target("SNAT", (("to-source", str(lb_ip)),)),
               f"node/{node}:lb-{net.name}", dst=str(net.subnet),
               matches=(Match("ipvs", (("ipvs", ""),)),))


def attach_task(b: _Builder, task: Task, network: str, ifname: str) -> None:
    """``task``'s interface ``ifname`` on the user network ``network`` (a veth to its
    node's ``br0`` there), with its address; no route: the subnet is on-link."""
    net, lab = b.lab.network(network), b.lab.name
    ip = b.addr.networks[network].tasks[task.name]
    ns = names.task_ns(lab, task.name)
    b.add("veths", Veth(VethEnd(names.overlay_ns(lab, task.node, network), names.veth_for(ip),
                                master="br0"),
                        VethEnd(ns, ifname, ipam.mac_for(ip)), net.mtu))
    b.address(ns, ifname, ip, net.subnet)
