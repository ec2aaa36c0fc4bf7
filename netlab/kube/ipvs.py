"""What kube-proxy's IPVS mode programs for a node: ``Proxier.syncProxyRules``, as data.

Ports ``syncProxyRules``, ``syncService`` and ``syncEndpoint`` of
``pkg/proxy/ipvs/proxier.go`` (Kubernetes v1.32) reduced to their result on a fresh
node: for every service port a virtual server on its ClusterIP, on each external IP, on
each load-balancer ingress IP (``ipMode`` ``VIP`` or unset) and, for a NodePort, on each
node address; each with the real servers ``CategorizeEndpoints`` leaves
(:mod:`netlab.kube.endpoints`), weight 1; the addresses bound to ``kube-ipvs0``; the
ipsets' entries (:mod:`netlab.kube.ipset`); and the iptables rules
(:mod:`netlab.kube.ipvsrules`). Side effects (netlink, conntrack cleanup, graceful
deletion of real servers, health-check servers, metrics) are not modelled; neither are
IPv6 and topology hints.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from netlab.kube import addr, ipset, ipvsrules
from netlab.kube.endpoints import categorize
from netlab.kube.ipset import Entry
from netlab.kube.ipvsobjects import (
    FLAG_PERSISTENT,
    FLAG_SOURCE_HASH,
    IPVSNode,
    IPVSState,
    RealServer,
    VirtualServer,
)
from netlab.kube.model import ServicePort
from netlab.kube.serviceinfo import EndpointInfo, PortInfo, port_info


def node_port_ips(node: IPVSNode) -> tuple[str, ...]:
    """The addresses NodePort virtual servers go on (``syncProxyRules``' ``nodeIPs``).

    With ``--nodeport-addresses`` unset or holding ``0.0.0.0/0`` (``MatchAll``), every
    node address outside ``kube-ipvs0``; otherwise the interface addresses inside those
    CIDRs, loopback excluded (``NodePortAddresses.GetNodeIPs``). Raises ValueError for an
    address or CIDR that does not parse.
    """
    cidrs = [addr.parse_cidr(c) for c in node.node_port_addresses]
    if not cidrs or any(c.prefixlen == 0 for c in cidrs):
        return tuple(str(addr.parse_ip(a)) for a in node.local_addresses
                     if not addr.parse_ip(a).is_loopback)
    found: list[str] = []
    for text in node.interface_addresses:
        ip = addr.parse_ip(text)
        if any(ip in c for c in cidrs) and not ip.is_loopback and str(ip) not in found:
            found.append(str(ip))
    return tuple(found)


def _real_servers(info: PortInfo, only_local: bool) -> tuple[RealServer, ...]:
    """``syncEndpoint``'s destinations: Local endpoints when asked and there are any, else
    Cluster ones; de-duplicated, in ``ip:port`` order (the order the fake keeps)."""
    cat = categorize(info)
    chosen: tuple[EndpointInfo, ...] = cat.cluster
    if only_local and cat.local:
        chosen = cat.local
    servers = {ep.string: RealServer(str(ep.ip), ep.port) for ep in chosen}
    return tuple(servers[k] for k in sorted(servers))


def _virtual_server(node: IPVSNode, info: PortInfo, sp: ServicePort, address: str, port: int,
                    only_local: bool) -> VirtualServer:
    flags, timeout = 0, 0
    if info.sticky_seconds is not None:
        flags |= FLAG_PERSISTENT
        timeout = info.sticky_seconds
    if node.scheduler == "mh":
        flags |= FLAG_SOURCE_HASH
    return VirtualServer(address, sp.protocol, port, node.scheduler, flags, timeout,
                         _real_servers(info, only_local))


def sync(node: IPVSNode, ports: Iterable[ServicePort]) -> IPVSState:
    """Everything ``syncProxyRules`` programs for ``ports`` on ``node``.

    Raises ValueError for an address, CIDR or port kube-proxy could not use (see
    :func:`netlab.kube.serviceinfo.port_info`).
    """
    ports = tuple(ports)
    active: dict[str, set[Entry]] = {s.name: set() for s in ipset.SETS}
    servers: list[VirtualServer] = []
    bound: set[str] = set()
    no_node_access: list[Entry] = []
    node_addresses = {str(addr.parse_ip(a)) for a in node.local_addresses}
    node_ip = addr.parse_ip(node.node_ip) if node.node_ip else None
    has_node_port = any(sp.node_port for sp in ports)
    nodeport_ips = node_port_ips(node) if has_node_port else ()

    for sp in ports:
        info = port_info(sp, node.hostname)
        proto = info.protocol
        # loop-back (hairpin) entries: every local endpoint, whatever its condition
        for ep in info.endpoints:
            if ep.local:
                active[ipset.LOOP_BACK].add(Entry(ipset.HASH_IP_PORT_IP, str(ep.ip), ep.port, proto,
                                                  ip2=str(ep.ip)))
        cluster_ip = str(info.cluster_ip)
        active[ipset.CLUSTER_IP].add(Entry(ipset.HASH_IP_PORT, cluster_ip, info.port, proto))
        servers.append(_virtual_server(node, info, sp, cluster_ip, info.port,
                                       info.internal_policy_local))
        bound.add(cluster_ip)

        for ext in info.external_ips:
            entry = Entry(ipset.HASH_IP_PORT, str(ext), info.port, proto)
            active[ipset.EXTERNAL_IP_LOCAL if info.external_policy_local else ipset.EXTERNAL_IP].add(entry)
            servers.append(_virtual_server(node, info, sp, str(ext), info.port,
                                           info.external_policy_local))
            if str(ext) not in node_addresses:
                bound.add(str(ext))

        for vip in info.load_balancer_vips:
            entry = Entry(ipset.HASH_IP_PORT, str(vip), info.port, proto)
            active[ipset.LOAD_BALANCER].add(entry)
            if info.external_policy_local:
                active[ipset.LOAD_BALANCER_LOCAL].add(entry)
            if info.source_ranges:
                active[ipset.LOAD_BALANCER_FW].add(entry)
                allow_from_node = False
                for cidr in info.source_ranges:
                    active[ipset.LOAD_BALANCER_SOURCE_CIDR].add(
                        Entry(ipset.HASH_IP_PORT_NET, str(vip), info.port, proto, net=str(cidr)))
                    if node_ip is not None and node_ip in cidr:
                        allow_from_node = True
                if allow_from_node:
                    active[ipset.LOAD_BALANCER_SOURCE_IP].add(
                        Entry(ipset.HASH_IP_PORT_IP, str(vip), info.port, proto, ip2=str(vip)))
                else:
                    # the last source-range entry, as kube-proxy appends ``entry`` itself
                    no_node_access.append(Entry(ipset.HASH_IP_PORT_NET, str(vip), info.port, proto,
                                                net=str(info.source_ranges[-1])))
            servers.append(_virtual_server(node, info, sp, str(vip), info.port,
                                           info.external_policy_local))
            if str(vip) not in node_addresses:
                bound.add(str(vip))

        if info.node_port:
            if not nodeport_ips:
                continue  # kube-proxy skips the rest of this service port, health check included
            if proto == "sctp":
                entries = [Entry(ipset.HASH_IP_PORT, ip, info.node_port, proto) for ip in nodeport_ips]
            else:
                entries = [Entry(ipset.BITMAP_PORT, port=info.node_port, protocol=proto)]
            np_set = {"tcp": ipset.NODE_PORT_TCP, "udp": ipset.NODE_PORT_UDP,
                      "sctp": ipset.NODE_PORT_SCTP}[proto]
            active[np_set].update(entries)
            if info.external_policy_local:
                local_set = {"tcp": ipset.NODE_PORT_LOCAL_TCP, "udp": ipset.NODE_PORT_LOCAL_UDP,
                             "sctp": ipset.NODE_PORT_LOCAL_SCTP}[proto]
                active[local_set].update(entries)
            for ip in nodeport_ips:
                servers.append(_virtual_server(node, info, sp, ip, info.node_port,
                                               info.external_policy_local))

        if info.health_check_node_port:
            active[ipset.HEALTH_CHECK_NODE_PORT].add(
                Entry(ipset.BITMAP_PORT, port=info.health_check_node_port, protocol="tcp"))

    active[ipset.IPVS_IPS] = {Entry(ipset.HASH_IP, a) for a in bound}
    # one virtual server per address:port/protocol (a later one replaces an earlier one)
    by_key = {vs.key: vs for vs in servers}
    sets = {name: tuple(sorted(entries, key=Entry.string)) for name, entries in active.items()}
    return IPVSState(
        virtual_servers=tuple(by_key.values()),
        bound_addresses=tuple(sorted(bound, key=ipaddress.IPv4Address)),
        ipsets=tuple(sets.items()),
        iptables=ipvsrules.render(node, sets, no_node_access),
        no_node_access=tuple(no_node_access),
    )
