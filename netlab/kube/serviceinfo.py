"""A service port as kube-proxy's iptables proxier sees it once its trackers parsed it.

Mirrors ``pkg/proxy/serviceport.go`` (``newBaseServiceInfo`` and the
``BaseServicePortInfo`` methods), ``pkg/proxy/endpointslicecache.go``
(``addEndpoints``, ``byEndpoint``) and ``pkg/proxy/iptables/proxier.go``
(``newServiceInfo``, ``newEndpointInfo``): addresses parsed sloppily, external and
load-balancer IPs kept in the order given, source ranges trimmed and parsed, endpoints
de-duplicated on ``ip:port`` (the last one wins, as the cache's map does) and sorted by
that string, and the chain names computed once.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from netlab.kube import addr, chains
from netlab.kube.model import ServicePort


@dataclass(frozen=True)
class EndpointInfo:
    """An endpoint with its parsed IP, locality and ``KUBE-SEP-`` chain (``endpointInfo``)."""

    ip: ipaddress.IPv4Address
    port: int
    local: bool
    ready: bool
    serving: bool
    terminating: bool
    chain: str

    @property
    def string(self) -> str:
        """``BaseEndpointInfo.String()``: ``ip:port`` (``net.JoinHostPort``)."""
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class PortInfo:
    """What ``syncProxyRules`` reads of one service port (``servicePortInfo``)."""

    service: str
    name: str
    protocol: str
    cluster_ip: ipaddress.IPv4Address
    port: int
    node_port: int
    health_check_node_port: int
    external_ips: tuple[ipaddress.IPv4Address, ...]
    load_balancer_vips: tuple[ipaddress.IPv4Address, ...]
    source_ranges: tuple[ipaddress.IPv4Network, ...]
    sticky_seconds: int | None
    internal_policy_local: bool
    external_policy_local: bool
    endpoints: tuple[EndpointInfo, ...]
    cluster_chain: str
    local_chain: str
    firewall_chain: str
    external_chain: str

    def externally_accessible(self) -> bool:
        """``BaseServicePortInfo.ExternallyAccessible``: a NodePort, LB VIP or external IP."""
        return self.node_port != 0 or bool(self.load_balancer_vips) or bool(self.external_ips)

    def uses_cluster_endpoints(self) -> bool:
        """``UsesClusterEndpoints``: internal policy Cluster, or any external access at all
        (Local external policy still needs Cluster endpoints to short-circuit)."""
        return not self.internal_policy_local or self.externally_accessible()

    def uses_local_endpoints(self) -> bool:
        """``UsesLocalEndpoints``: internal policy Local, or external policy Local."""
        return self.internal_policy_local or (self.external_policy_local and self.externally_accessible())


def port_info(sp: ServicePort, node_name: str) -> PortInfo:
    """Parse ``sp`` as kube-proxy's change trackers do, for the proxy on ``node_name``.

    Raises ValueError when an address or CIDR cannot be parsed as IPv4 (kube-proxy
    would skip the Service, or drop the value, and log it), or when a port is outside
    1..65535.
    """
    opts = sp.options
    for number in (sp.port, *(ep.port for ep in sp.endpoints)):
        if not 0 < number < 65536:
            raise ValueError(f"{sp.port_name_string}: port {number} out of range")
    name = sp.port_name_string
    protocol = sp.protocol.lower()
    # apiservice.ExternallyAccessible / ExternalPolicyLocal / NeedsHealthCheck
    accessible = opts.type in ("LoadBalancer", "NodePort") or (
        opts.type == "ClusterIP" and bool(opts.external_ips))
    external_local = accessible and opts.external_traffic_policy == "Local"
    needs_health_check = opts.type == "LoadBalancer" and external_local
    by_string: dict[str, EndpointInfo] = {}
    for ep in sp.endpoints:
        ip = addr.parse_ip(ep.ip)
        info = EndpointInfo(
            ip=ip, port=ep.port, local=ep.is_local_to(node_name), ready=ep.ready,
            serving=ep.serving, terminating=ep.terminating,
            chain=chains.endpoint_chain(name, protocol, f"{ip}:{ep.port}"))
        by_string[info.string] = info
    return PortInfo(
        service=sp.service,
        name=name,
        protocol=protocol,
        cluster_ip=addr.parse_ip(sp.cluster_ip),
        port=sp.port,
        node_port=sp.node_port or 0,
        health_check_node_port=opts.health_check_node_port if needs_health_check else 0,
        external_ips=tuple(addr.parse_ip(ip) for ip in opts.external_ips),
        load_balancer_vips=tuple(addr.parse_ip(ing.ip) for ing in opts.load_balancer_ingress
                                 if ing.ip_mode in (None, "VIP")),
        source_ranges=tuple(addr.parse_cidr(r.strip()) for r in opts.load_balancer_source_ranges),
        sticky_seconds=opts.session_affinity.timeout_seconds if opts.session_affinity else None,
        internal_policy_local=opts.internal_traffic_policy == "Local",
        external_policy_local=external_local,
        endpoints=tuple(by_string[key] for key in sorted(by_string)),
        cluster_chain=chains.service_chain(chains.SVC, name, protocol),
        local_chain=chains.service_chain(chains.SVL, name, protocol),
        firewall_chain=chains.service_chain(chains.FW, name, protocol),
        external_chain=chains.service_chain(chains.EXT, name, protocol),
    )


def policy_targets(info: PortInfo, has_endpoints: bool, has_local: bool, cluster: str,
                   local: str) -> tuple[str, bool, str, bool]:
    """(internal chain, whether it has endpoints, external policy chain, whether it has
    endpoints): the cluster chain, or the local one for a Local traffic policy, which
    then has endpoints only when this node has local ones. Both proxiers choose so
    (``syncProxyRules`` in ``pkg/proxy/iptables/proxier.go`` and
    ``pkg/proxy/nftables/proxier.go``: ``internalPolicyChain``/``externalPolicyChain``)."""
    internal, has_internal = cluster, has_endpoints
    if info.internal_policy_local:
        internal, has_internal = local, has_endpoints and has_local
    external, has_external = cluster, has_endpoints
    if info.external_policy_local:
        external, has_external = local, has_endpoints and has_local
    return internal, has_internal, external, has_external
