"""kube-proxy's per-service chain names: a prefix and 16 characters of a hash.

From ``pkg/proxy/iptables/proxier.go``: ``portProtoHash`` is the first 16 characters
of the standard (padded, upper-case) base32 encoding of the SHA-256 of the service
port name (``ServicePortName.String()``, e.g. ``ns1/svc1:p80``) followed by the
lower-case protocol; ``servicePortEndpointChainName`` hashes the endpoint
(``ip:port``) on the end as well. The prefixes are the ``...ChainNamePrefix``
constants beside them.
"""

from __future__ import annotations

import base64
import hashlib

SVC = "KUBE-SVC-"
"""``servicePortPolicyClusterChainNamePrefix``: the Cluster-policy endpoint dispatch chain."""
SVL = "KUBE-SVL-"
"""``servicePortPolicyLocalChainNamePrefix``: the Local-policy endpoint dispatch chain."""
FW = "KUBE-FW-"
"""``serviceFirewallChainNamePrefix``: loadBalancerSourceRanges filtering."""
EXT = "KUBE-EXT-"
"""``serviceExternalChainNamePrefix``: external (NodePort/LB/external IP) traffic."""
SEP = "KUBE-SEP-"
"""``servicePortEndpointChainNamePrefix``: one chain per endpoint (DNAT)."""

SERVICE_CHAIN_PREFIXES = (SVC, SVL, SEP, FW, EXT)
"""The prefixes ``isServiceChainName`` recognises: chains kube-proxy deletes when stale."""


def _hash16(text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return base64.b32encode(digest).decode("ascii")[:16]


def port_proto_hash(service_port_name: str, protocol: str) -> str:
    """``portProtoHash``: 16 base32 characters of sha256(name + protocol). Raises nothing."""
    return _hash16(service_port_name + protocol)


def service_chain(prefix: str, service_port_name: str, protocol: str) -> str:
    """A per-service-port chain (``servicePortPolicyClusterChain``,
    ``servicePortPolicyLocalChainName``, ``serviceFirewallChainName``,
    ``serviceExternalChainName``): ``prefix`` + :func:`port_proto_hash`.

    ``protocol`` is lower-case (``tcp``), as kube-proxy passes it. Raises nothing.
    """
    return prefix + port_proto_hash(service_port_name, protocol)


def endpoint_chain(service_port_name: str, protocol: str, endpoint: str) -> str:
    """``servicePortEndpointChainName``: ``KUBE-SEP-`` + sha256(name + protocol + ``ip:port``).

    Raises nothing.
    """
    return SEP + _hash16(service_port_name + protocol + endpoint)


def is_service_chain(name: str) -> bool:
    """``isServiceChainName``: whether ``name`` is a per-service chain kube-proxy owns."""
    return name.startswith(SERVICE_CHAIN_PREFIXES)
