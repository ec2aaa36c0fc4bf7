"""The ipsets kube-proxy's IPVS mode keeps, and the entries it puts in them.

From ``pkg/proxy/ipvs/ipset.go`` (the set names and comments, ``IPSet.getComment``)
and ``pkg/proxy/ipvs/ipset/ipset.go`` (``Entry`` and ``Entry.String``, the set types):
an entry prints as ``ipset add`` takes it (``10.0.0.1,tcp:80``,
``10.0.0.1,tcp:80,10.0.0.1``, ``1.2.3.4,tcp:80,10.0.0.0/8``, ``3001``, ``10.0.0.1``).
Names are those of an IPv4 proxier (IPv6 ones would read ``KUBE-6-``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SetType = Literal["hash:ip", "hash:ip,port", "hash:ip,port,ip", "hash:ip,port,net", "bitmap:port"]
"""``ipset.Type``: ``HashIP``, ``HashIPPort``, ``HashIPPortIP``, ``HashIPPortNet``, ``BitmapPort``."""

HASH_IP: SetType = "hash:ip"
HASH_IP_PORT: SetType = "hash:ip,port"
HASH_IP_PORT_IP: SetType = "hash:ip,port,ip"
HASH_IP_PORT_NET: SetType = "hash:ip,port,net"
BITMAP_PORT: SetType = "bitmap:port"

LOOP_BACK = "KUBE-LOOP-BACK"
CLUSTER_IP = "KUBE-CLUSTER-IP"
EXTERNAL_IP = "KUBE-EXTERNAL-IP"
EXTERNAL_IP_LOCAL = "KUBE-EXTERNAL-IP-LOCAL"
LOAD_BALANCER = "KUBE-LOAD-BALANCER"
LOAD_BALANCER_LOCAL = "KUBE-LOAD-BALANCER-LOCAL"
LOAD_BALANCER_FW = "KUBE-LOAD-BALANCER-FW"
LOAD_BALANCER_SOURCE_IP = "KUBE-LOAD-BALANCER-SOURCE-IP"
LOAD_BALANCER_SOURCE_CIDR = "KUBE-LOAD-BALANCER-SOURCE-CIDR"
NODE_PORT_TCP = "KUBE-NODE-PORT-TCP"
NODE_PORT_LOCAL_TCP = "KUBE-NODE-PORT-LOCAL-TCP"
NODE_PORT_UDP = "KUBE-NODE-PORT-UDP"
NODE_PORT_LOCAL_UDP = "KUBE-NODE-PORT-LOCAL-UDP"
NODE_PORT_SCTP = "KUBE-NODE-PORT-SCTP-HASH"
NODE_PORT_LOCAL_SCTP = "KUBE-NODE-PORT-LOCAL-SCTP-HASH"
HEALTH_CHECK_NODE_PORT = "KUBE-HEALTH-CHECK-NODE-PORT"
IPVS_IPS = "KUBE-IPVS-IPS"


@dataclass(frozen=True)
class SetSpec:
    """One set of ``ipsetInfo`` (``proxier.go``): its name, type and ``--comment`` text."""

    name: str
    type: SetType
    comment: str

    def quoted_comment(self) -> str:
        """``IPSet.getComment``: the comment in double quotes, as written into rules."""
        return f'"{self.comment}"'


SETS: tuple[SetSpec, ...] = (
    SetSpec(LOOP_BACK, HASH_IP_PORT_IP,
            "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose"),
    SetSpec(CLUSTER_IP, HASH_IP_PORT, "Kubernetes service cluster ip + port for masquerade purpose"),
    SetSpec(EXTERNAL_IP, HASH_IP_PORT,
            "Kubernetes service external ip + port for masquerade and filter purpose"),
    SetSpec(EXTERNAL_IP_LOCAL, HASH_IP_PORT,
            "Kubernetes service external ip + port with externalTrafficPolicy=local"),
    SetSpec(LOAD_BALANCER, HASH_IP_PORT, "Kubernetes service lb portal"),
    SetSpec(LOAD_BALANCER_FW, HASH_IP_PORT,
            "Kubernetes service load balancer ip + port for load balancer with sourceRange"),
    SetSpec(LOAD_BALANCER_LOCAL, HASH_IP_PORT,
            "Kubernetes service load balancer ip + port with externalTrafficPolicy=local"),
    SetSpec(LOAD_BALANCER_SOURCE_IP, HASH_IP_PORT_IP,
            "Kubernetes service load balancer ip + port + source IP for packet filter purpose"),
    SetSpec(LOAD_BALANCER_SOURCE_CIDR, HASH_IP_PORT_NET,
            "Kubernetes service load balancer ip + port + source cidr for packet filter purpose"),
    SetSpec(NODE_PORT_TCP, BITMAP_PORT, "Kubernetes nodeport TCP port for masquerade purpose"),
    SetSpec(NODE_PORT_LOCAL_TCP, BITMAP_PORT,
            "Kubernetes nodeport TCP port with externalTrafficPolicy=local"),
    SetSpec(NODE_PORT_UDP, BITMAP_PORT, "Kubernetes nodeport UDP port for masquerade purpose"),
    SetSpec(NODE_PORT_LOCAL_UDP, BITMAP_PORT,
            "Kubernetes nodeport UDP port with externalTrafficPolicy=local"),
    SetSpec(NODE_PORT_SCTP, HASH_IP_PORT,
            "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'"),
    SetSpec(NODE_PORT_LOCAL_SCTP, HASH_IP_PORT,
            "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'"),
    SetSpec(HEALTH_CHECK_NODE_PORT, BITMAP_PORT, "Kubernetes health check node port"),
    SetSpec(IPVS_IPS, HASH_IP, "Addresses on the ipvs interface"),
)
"""``ipsetInfo``: every set the IPVS proxier creates, in its order."""


def spec(name: str) -> SetSpec:
    """The :class:`SetSpec` called ``name``. Raises KeyError for a set kube-proxy has not."""
    for s in SETS:
        if s.name == name:
            return s
    raise KeyError(name)


@dataclass(frozen=True)
class Entry:
    """``ipset.Entry``: the fields an entry of ``set_type`` uses (others stay empty)."""

    set_type: SetType
    ip: str = ""
    port: int = 0
    protocol: str = ""
    net: str = ""
    ip2: str = ""

    def string(self) -> str:
        """``Entry.String()``: the entry as ``ipset add`` / ``ipset list`` write it."""
        if self.set_type == HASH_IP:
            return self.ip
        if self.set_type == HASH_IP_PORT:
            return f"{self.ip},{self.protocol}:{self.port}"
        if self.set_type == HASH_IP_PORT_IP:
            return f"{self.ip},{self.protocol}:{self.port},{self.ip2}"
        if self.set_type == HASH_IP_PORT_NET:
            return f"{self.ip},{self.protocol}:{self.port},{self.net}"
        return str(self.port)


@dataclass(frozen=True)
class SetMatch:
    """One row of ``ipsetWithIptablesChain``: a rule written only when the set is non-empty."""

    name: str
    table: Literal["nat", "filter"]
    from_chain: str
    to: str
    match_type: str
    protocol: str = ""


SET_MATCHES: tuple[SetMatch, ...] = (
    SetMatch(LOOP_BACK, "nat", "KUBE-POSTROUTING", "MASQUERADE", "dst,dst,src"),
    SetMatch(LOAD_BALANCER, "nat", "KUBE-SERVICES", "KUBE-LOAD-BALANCER", "dst,dst"),
    SetMatch(LOAD_BALANCER_LOCAL, "nat", "KUBE-LOAD-BALANCER", "RETURN", "dst,dst"),
    SetMatch(NODE_PORT_LOCAL_TCP, "nat", "KUBE-NODE-PORT", "RETURN", "dst", "tcp"),
    SetMatch(NODE_PORT_TCP, "nat", "KUBE-NODE-PORT", "KUBE-MARK-MASQ", "dst", "tcp"),
    SetMatch(NODE_PORT_LOCAL_UDP, "nat", "KUBE-NODE-PORT", "RETURN", "dst", "udp"),
    SetMatch(NODE_PORT_UDP, "nat", "KUBE-NODE-PORT", "KUBE-MARK-MASQ", "dst", "udp"),
    SetMatch(NODE_PORT_LOCAL_SCTP, "nat", "KUBE-NODE-PORT", "RETURN", "dst,dst", "sctp"),
    SetMatch(NODE_PORT_SCTP, "nat", "KUBE-NODE-PORT", "KUBE-MARK-MASQ", "dst,dst", "sctp"),
    SetMatch(LOAD_BALANCER_FW, "filter", "KUBE-PROXY-FIREWALL", "KUBE-SOURCE-RANGES-FIREWALL", "dst,dst"),
    SetMatch(LOAD_BALANCER_SOURCE_CIDR, "filter", "KUBE-SOURCE-RANGES-FIREWALL", "RETURN", "dst,dst,src"),
    SetMatch(LOAD_BALANCER_SOURCE_IP, "filter", "KUBE-SOURCE-RANGES-FIREWALL", "RETURN", "dst,dst,src"),
)
"""``ipsetWithIptablesChain``, in its order (the ``-LOCAL-`` NodePort sets before the others)."""
