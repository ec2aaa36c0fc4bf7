"""User overlay networks in the plan: ``ov-<net>`` and ``lb-<net>`` where a task runs.

As Docker 20.10 programs them (``ov_network.go``, ``sandbox.go``,
``service_linux.go``; see ``shared/reference/swarm-ingress-and-kube-proxy.md``
§1.3-1.4), on each node that runs a task attached to the network (see
:func:`networks_on`):

* the overlay namespace ``<node>/ov-<net>``: ``br0`` holding the gateway
  (``.1``), ``vxlan0`` made in the node's host namespace with the network's
  VNI, static neighbour and FDB entries for every remote endpoint on the
  network (the LB endpoints of the other nodes that have the network, and
  their tasks; never a VIP: only the node-local LB sandbox answers ARP for
  it, and ``vxlan0``'s ARP proxy drops what it does not know);
* the LB sandbox ``<node>/lb-<net>`` (``createLoadBalancerSandbox``): ``eth0``
  on ``br0`` with the node's LB endpoint address, each vip-mode service's VIP
  as a /32 alias, ``mangle INPUT -d VIP/32 -j MARK``, the fwmark IPVS service
  (rr, the service's tasks on this network, Masq, port 0) and ``nat
  POSTROUTING -m ipvs --ipvs -d SUBNET -j SNAT --to-source LB-IP``, the LB
  sysctls, and no default route (only ingress_sbox gets a gateway).

A task reaches a VIP on-link through its interface on the network: the
ARP request goes over ``br0`` to the local LB sandbox, which owns the VIP.
A node with no task on the network has neither namespace, and nothing there
reaches the VIP: unlike ingress, which every node of a Swarm has.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netlab import ipam
from netlab.model import Lab, OverlayNetwork, Task
from netlab.plan import names
from netlab.plan.sysctls import LB_SYSCTLS, NO_IPV6
from netlab.plan.types import (
    Address, Bridge, FdbEntry, IpvsDest, IpvsService, Match, Neighbour, Netns, Sysctl,
    Target, Veth, VethEnd, Vxlan,
)

if TYPE_CHECKING:
    from netlab.plan.build import _Builder


def networks_on(lab: Lab, node: str) -> tuple[OverlayNetwork, ...]:
    """The user networks ``node`` has, in file order: those a task on it is attached to.

    Swarm brings a user overlay network to a node with the first task that
    needs it and takes it away with the last (moby v20.10.24): the task's
    executor creates the task's networks before it starts
    (daemon/cluster/executor/container/controller.go ``Prepare`` →
    adapter.go ``createNetworks`` → ``CreateManagedNetwork``) and tries to
    delete them once it has stopped (``Shutdown`` → ``removeNetworks``, which
    skips a network still holding other endpoints: ``ActiveEndpointsError``).
    Creating the network makes its load balancer sandbox ``lb-<net>``
    (vendored libnetwork controller.go ``NewNetwork`` → network.go
    ``createLoadBalancerSandbox``: the sandbox, the LB endpoint and its Join),
    and deleting it removes the sandbox (network.go ``delete`` →
    ``deleteLoadBalancerSandbox``). That endpoint's Join is the network's
    first on the node, which makes the overlay driver's namespace, ``br0``
    and ``vxlan0`` (drivers/overlay/joinleave.go ``Join`` → ov_network.go
    ``joinSandbox`` → ``initSandbox``); the last Leave destroys them
    (``leaveSandbox`` → ``destroySandbox``), and peers arriving before are
    kept out of the kernel (peerdb.go ``peerAddOp``: no sandbox, no entry).
    Ingress is not such a network: every node has it.
    """
    attached = {n for t in lab.tasks_on(node) for n in lab.service(t.service).networks}
    return tuple(net for net in lab.networks if net.name in attached)


def nodes_on(lab: Lab, network: str) -> frozenset[str]:
    """The nodes that have the user network ``network`` (see :func:`networks_on`)."""
    return frozenset(t.node for s in lab.services_on(network) for t in lab.tasks_of(s.name))


def endpoints(b: _Builder, net: OverlayNetwork) -> list[tuple[str, str]]:
    """(node, address) of every endpoint on ``net``: the LB sandboxes of the nodes
    that have it, then the tasks."""
    na = b.addr.networks[net.name]
    tasks = [(t.node, str(na.tasks[t.name])) for s in b.lab.services_on(net.name)
             for t in b.lab.tasks_of(s.name)]
    having = {node for node, _ip in tasks}
    return [(n.name, str(na.lb[n.name])) for n in b.lab.nodes if n.name in having] + tasks


def networks_on_node(b: _Builder, node: str) -> None:
    """The overlay namespace and LB sandbox on ``node`` of each user network it has."""
    for net in networks_on(b.lab, node):
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
