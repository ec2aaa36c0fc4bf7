"""kube-proxy's nftables names: a readable service (and endpoint) name behind a hash.

From ``pkg/proxy/nftables/proxier.go``: ``hashAndTruncate`` puts the first 8 characters
of the standard (padded, upper-case) base32 encoding of the SHA-256 of a name in front
of the name (``ULMVA6XW-ns1/svc1/tcp/p80``) and cuts the result to
``chainNameBaseLengthMax`` characters; ``servicePortChainNameBase`` names a service
port ``namespace/name/protocol/port``; ``servicePortEndpointChainNameBase`` adds
``__ip/port`` of the endpoint (an IPv6 address with its colons turned into dots). The
prefixes are the ``...NamePrefix`` constants beside them; ``isServiceChainName`` and
``isAffinitySetName`` tell kube-proxy's own chains and sets from the fixed ones.
"""

from __future__ import annotations

import base64
import hashlib

NAME_LENGTH_MAX = 256
"""``knftables.NameLengthMax``: the longest table, chain, set or map name."""
CHAIN_NAME_PREFIX_LENGTH_MAX = 16
"""``chainNamePrefixLengthMax``: room kept for a prefix, its hyphen included."""
CHAIN_NAME_BASE_LENGTH_MAX = NAME_LENGTH_MAX - CHAIN_NAME_PREFIX_LENGTH_MAX
"""``chainNameBaseLengthMax``: 240."""

SERVICE = "service-"
"""``servicePortPolicyClusterChainNamePrefix``: the Cluster-policy endpoint dispatch chain."""
LOCAL = "local-"
"""``servicePortPolicyLocalChainNamePrefix``: the Local-policy endpoint dispatch chain."""
EXTERNAL = "external-"
"""``serviceExternalChainNamePrefix``: external (NodePort/LB/external IP) traffic."""
ENDPOINT = "endpoint-"
"""``servicePortEndpointChainNamePrefix``: one chain per endpoint (DNAT)."""
AFFINITY = "affinity-"
"""``servicePortEndpointAffinityNamePrefix``: one ClientIP-affinity set per endpoint."""
FIREWALL = "firewall-"
"""``servicePortFirewallChainNamePrefix``: loadBalancerSourceRanges filtering."""


def hash_and_truncate(name: str) -> str:
    """``hashAndTruncate``: ``HASH8-name``, cut to 240 characters ending in ``...``.

    Raises nothing.
    """
    digest = hashlib.sha256(name.encode()).digest()
    name = base64.b32encode(digest).decode("ascii")[:8] + "-" + name
    if len(name) > CHAIN_NAME_BASE_LENGTH_MAX:
        name = name[:CHAIN_NAME_BASE_LENGTH_MAX - 3] + "..."
    return name


def service_port_base(namespace: str, name: str, protocol: str, port_name: str) -> str:
    """``servicePortChainNameBase``: ``HASH-namespace/name/protocol/port``.

    ``protocol`` is lower-case (``tcp``), ``port_name`` may be empty. Raises nothing.
    """
    return hash_and_truncate(f"{namespace}/{name}/{protocol}/{port_name}")


def split_host_port(endpoint: str) -> tuple[str, str]:
    """``net.SplitHostPort`` for ``ip:port`` and ``[ipv6]:port``.

    Raises ValueError when ``endpoint`` has no port.
    """
    if endpoint.startswith("["):
        host, sep, rest = endpoint[1:].partition("]:")
        if not sep:
            raise ValueError(f"missing port in address {endpoint!r}")
        return host, rest
    host, sep, port = endpoint.rpartition(":")
    if not sep or ":" in host:
        raise ValueError(f"missing port in address {endpoint!r}")
    return host, port


def endpoint_base(namespace: str, name: str, protocol: str, port_name: str, endpoint: str) -> str:
    """``servicePortEndpointChainNameBase``: ``HASH-namespace/name/protocol/port__ip/port``.

    ``endpoint`` is ``BaseEndpointInfo.String()`` (``ip:port``, ``[ipv6]:port``); kube-proxy
    ignores a malformed one's split error, here it raises ValueError.
    """
    ip, port = split_host_port(endpoint)
    ip = ip.replace(":", ".")
    return hash_and_truncate(f"{namespace}/{name}/{protocol}/{port_name}__{ip}/{port}")


def is_service_chain(name: str) -> bool:
    """``isServiceChainName``: the per-service and per-endpoint chains all hold a ``/``."""
    return "/" in name


def is_affinity_set(name: str) -> bool:
    """``isAffinitySetName``: a per-endpoint ClientIP-affinity set."""
    return name.startswith(AFFINITY)
