"""What kube-proxy reads: Service ports, their options, and their endpoints.

These are the fields of ``v1.Service`` / ``discovery/v1.EndpointSlice`` that
kube-proxy's iptables proxier (``pkg/proxy/iptables/proxier.go``) turns into rules,
as its change trackers hand them to it (``pkg/proxy/serviceport.go``
``newBaseServiceInfo``, ``pkg/proxy/endpointslicecache.go`` ``addEndpoints``).
Addresses stay strings, as the API holds them: kube-proxy parses them "sloppily"
(leading zeros allowed, see :mod:`netlab.kube.addr`) and so does the generator.

Everything here is a frozen value; validation happens when rules are generated
(:func:`netlab.kube.iptables.render`), which raises :class:`ValueError` for what
kube-proxy could not program.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Protocol = Literal["TCP", "UDP", "SCTP"]
"""``v1.Protocol``; rules use it lower-cased (``-p tcp -m tcp``)."""

ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer"]
"""``v1.ServiceType`` (ExternalName services are never proxied, so not modelled)."""

TrafficPolicy = Literal["Cluster", "Local"]
"""``externalTrafficPolicy`` / ``internalTrafficPolicy``."""

IPMode = Literal["VIP", "Proxy"]
"""``v1.LoadBalancerIPMode``: kube-proxy only captures ``VIP`` (or unset) ingress IPs."""

DEFAULT_CLIENT_IP_TIMEOUT = 10800
"""``v1.DefaultClientIPServiceAffinitySeconds``: the ClientIP affinity timeout when unset."""


@dataclass(frozen=True)
class Endpoint:
    """One backend of a service port, as an EndpointSlice endpoint gives it.

    ``ip``/``port`` are the address and the EndpointSlice port (kube-proxy DNATs to
    these, never to the Service's ``targetPort``). ``node_name`` is the endpoint's
    ``nodeName``: the endpoint is local when it equals the proxy node's name. The
    conditions are already defaulted the way kube-proxy defaults nil ones
    (``endpointslicecache.go``: ready and serving default to true, terminating to
    false); use :meth:`from_conditions` to apply those defaults to optional values.
    """

    ip: str
    port: int
    node_name: str | None = None
    ready: bool = True
    serving: bool = True
    terminating: bool = False

    @classmethod
    def from_conditions(cls, ip: str, port: int, node_name: str | None = None, *,
                        ready: bool | None = None, serving: bool | None = None,
                        terminating: bool | None = None) -> Endpoint:
        """An endpoint from EndpointSlice conditions that may be unset (``None``).

        Defaults as ``EndpointSliceCache.addEndpoints``: ``ready = Ready == nil || *Ready``,
        ``serving = Serving == nil || *Serving``, ``terminating = Terminating != nil &&
        *Terminating``. Raises nothing.
        """
        return cls(ip, port, node_name,
                   ready=True if ready is None else ready,
                   serving=True if serving is None else serving,
                   terminating=False if terminating is None else terminating)

    def is_local_to(self, node_name: str) -> bool:
        """Whether the endpoint runs on ``node_name`` (``BaseEndpointInfo.IsLocal``)."""
        return self.node_name is not None and self.node_name == node_name


@dataclass(frozen=True)
class ClientIPAffinity:
    """``sessionAffinity: ClientIP`` with its ``sessionAffinityConfig.clientIP.timeoutSeconds``."""

    timeout_seconds: int = DEFAULT_CLIENT_IP_TIMEOUT


@dataclass(frozen=True)
class LoadBalancerIngress:
    """One ``status.loadBalancer.ingress`` entry with an IP (hostname-only ones are never proxied)."""

    ip: str
    ip_mode: IPMode | None = None


@dataclass(frozen=True)
class ServiceOptions:
    """The Service-wide settings kube-proxy honours for every port of the Service.

    ``health_check_node_port`` only counts for a LoadBalancer with ``Local`` external
    traffic policy (``apiservice.NeedsHealthCheck``), as in kube-proxy.
    ``load_balancer_source_ranges`` may carry surrounding whitespace, which kube-proxy
    trims.
    """

    type: ServiceType = "ClusterIP"
    external_traffic_policy: TrafficPolicy = "Cluster"
    internal_traffic_policy: TrafficPolicy = "Cluster"
    session_affinity: ClientIPAffinity | None = None
    external_ips: tuple[str, ...] = ()
    load_balancer_ingress: tuple[LoadBalancerIngress, ...] = ()
    load_balancer_source_ranges: tuple[str, ...] = ()
    health_check_node_port: int = 0


@dataclass(frozen=True)
class ServicePort:
    """One port of one Service together with the endpoints kube-proxy has for it.

    ``port_name`` may be empty (a Service's single unnamed port); ``node_port`` is
    ``None`` when the port has none. ``target_port`` is recorded for completeness only:
    kube-proxy takes the port to DNAT to from the EndpointSlice (:class:`Endpoint`).
    """

    namespace: str
    name: str
    port_name: str
    protocol: Protocol
    cluster_ip: str
    port: int
    node_port: int | None = None
    target_port: int | str | None = None
    options: ServiceOptions = field(default_factory=ServiceOptions)
    endpoints: tuple[Endpoint, ...] = ()

    @property
    def service(self) -> str:
        """``namespace/name``: the Service this port belongs to (``types.NamespacedName``)."""
        return f"{self.namespace}/{self.name}"

    @property
    def port_name_string(self) -> str:
        """``ServicePortName.String()``: ``ns/name:port``, or ``ns/name`` for an unnamed port."""
        return self.service + (f":{self.port_name}" if self.port_name else "")


@dataclass(frozen=True)
class ProxyNode:
    """The node kube-proxy runs on and the settings it was started with.

    ``cluster_cidr`` feeds the local-traffic detector (``--cluster-cidr``, i.e.
    ``NewDetectLocalByCIDR``); ``None`` means no detector (``NewNoOpLocalDetector``).
    ``masquerade_mark`` is the mark string kube-proxy writes (its fake proxier in the
    unit tests uses ``0x4000``). The two ``nfacct_*`` flags say whether the nfacct
    counters ``ct_state_invalid_dropped_pkts`` and ``localhost_nps_accepted_pkts``
    exist (kube-proxy adds ``-m nfacct`` matches only then). ``random_fully`` is
    whether iptables supports ``--random-fully``. NodePorts are served on every local
    address (``--nodeport-addresses`` unset).
    """

    name: str
    ip: str
    cluster_cidr: str | None = None
    masquerade_mark: str = "0x4000"
    masquerade_all: bool = False
    localhost_node_ports: bool = True
    conntrack_tcp_liberal: bool = False
    nfacct_ct_state_invalid: bool = False
    nfacct_localhost_node_ports: bool = False
    random_fully: bool = False
