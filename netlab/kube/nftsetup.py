"""The fixed part of kube-proxy's ``kube-proxy`` nftables table (its full-sync prologue).

``setupNFTables`` of ``pkg/proxy/nftables/proxier.go`` (v1.32), with the lists it reads
(``nftablesBaseChains``, ``nftablesJumpChains``) and ``ensureChain``: the table, its
base chains and their hooks and priorities, the jumps from them into kube-proxy's own
chains, the masquerade chains, the ``cluster-ips`` and ``nodeport-ips`` sets, the
``no-endpoint-*``, ``firewall-ips`` and ``service-*`` maps and the rules that look them
up. kube-proxy queues these operations at the start of every full sync (IPv4 only here).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from netlab.kube.nftobjects import Chain, Element, Map, Operation, Rule, Set, Table, concat

FILTER_PREROUTING = "filter-prerouting"
FILTER_INPUT = "filter-input"
FILTER_FORWARD = "filter-forward"
FILTER_OUTPUT = "filter-output"
FILTER_OUTPUT_POST_DNAT = "filter-output-post-dnat"
NAT_PREROUTING = "nat-prerouting"
NAT_OUTPUT = "nat-output"
NAT_POSTROUTING = "nat-postrouting"

SERVICES = "services"
SERVICE_IPS = "service-ips"
SERVICE_NODEPORTS = "service-nodeports"
NODEPORT_IPS = "nodeport-ips"
CLUSTER_IPS = "cluster-ips"
SERVICE_ENDPOINTS_CHECK = "service-endpoints-check"
NODEPORT_ENDPOINTS_CHECK = "nodeport-endpoints-check"
NO_ENDPOINT_SERVICES = "no-endpoint-services"
NO_ENDPOINT_NODEPORTS = "no-endpoint-nodeports"
REJECT_CHAIN = "reject-chain"
CLUSTER_IPS_CHECK = "cluster-ips-check"
FIREWALL_IPS = "firewall-ips"
FIREWALL_CHECK = "firewall-check"
MARK_MASQ = "mark-for-masquerade"
MASQUERADING = "masquerading"

ADDR_PROTO_PORT_VERDICT = "ipv4_addr . inet_proto . inet_service : verdict"
"""The type of the maps keyed by destination address, protocol and port."""

ELEMENT_CONTAINERS: tuple[tuple[Literal["set", "map"], str], ...] = (
    ("set", CLUSTER_IPS), ("map", SERVICE_IPS), ("map", FIREWALL_IPS),
    ("map", NO_ENDPOINT_SERVICES), ("map", NO_ENDPOINT_NODEPORTS), ("map", SERVICE_NODEPORTS))
"""The sets and maps kube-proxy keeps an ``nftElementStorage`` for, in its reset order."""


@dataclass(frozen=True)
class BaseChain:
    """``nftablesBaseChain``: a chain on a netfilter hook, named ``${type}-${hook}``."""

    name: str
    type: str
    hook: str
    priority: str


BASE_CHAINS = (
    BaseChain(FILTER_PREROUTING, "filter", "prerouting", "dstnat-10"),
    BaseChain(FILTER_INPUT, "filter", "input", "dstnat-10"),
    BaseChain(FILTER_FORWARD, "filter", "forward", "dstnat-10"),
    BaseChain(FILTER_OUTPUT, "filter", "output", "dstnat-10"),
    BaseChain(FILTER_OUTPUT_POST_DNAT, "filter", "output", "dstnat+10"),
    BaseChain(NAT_PREROUTING, "nat", "prerouting", "dstnat"),
    BaseChain(NAT_OUTPUT, "nat", "output", "dstnat"),
    BaseChain(NAT_POSTROUTING, "nat", "postrouting", "srcnat"),
)
"""``nftablesBaseChains``: filter chains run before DNAT (``DNATPriority-10``), except
the one that must see DNAT's result (``+10``)."""

JUMP_CHAINS = (
    (NODEPORT_ENDPOINTS_CHECK, FILTER_INPUT, "ct state new"),
    (SERVICE_ENDPOINTS_CHECK, FILTER_INPUT, "ct state new"),
    (SERVICE_ENDPOINTS_CHECK, FILTER_FORWARD, "ct state new"),
    (SERVICE_ENDPOINTS_CHECK, FILTER_OUTPUT, "ct state new"),
    (FIREWALL_CHECK, FILTER_PREROUTING, "ct state new"),
    (FIREWALL_CHECK, FILTER_OUTPUT, "ct state new"),
    (SERVICES, NAT_OUTPUT, ""),
    (SERVICES, NAT_PREROUTING, ""),
    (MASQUERADING, NAT_POSTROUTING, ""),
    (CLUSTER_IPS_CHECK, FILTER_FORWARD, "ct state new"),
    (CLUSTER_IPS_CHECK, FILTER_OUTPUT_POST_DNAT, "ct state new"),
)
"""``nftablesJumpChains``: (destination chain, base chain, match before the jump)."""


def ensure_chain(chain: str, ops: list[Operation], created: set[str], skip_creation: bool = False) -> None:
    """``ensureChain``: add and flush ``chain`` once per sync (only note it when
    ``skip_creation``, for a partial sync that leaves the chain as it is)."""
    if chain in created:
        return
    created.add(chain)
    if not skip_creation:
        ops.append(Operation("add", Chain(chain)))
        ops.append(Operation("flush", Chain(chain)))


def setup_operations(*, masquerade_mark: str, service_cidrs: str, nodeport_ips: Iterable[str] | None,
                     first_sync: bool) -> list[Operation]:
    """``setupNFTables`` up to (not including) the resets of the element storages.

    ``service_cidrs`` is the comma-separated ServiceCIDR list (``""``: no drop rule for
    unallocated ClusterIPs); ``nodeport_ips`` the node IPs that accept NodePorts, or
    ``None`` when NodePorts are served on every local address (``MatchAll``); loopback
    addresses among them are skipped, as kube-proxy skips (and logs) them.
    ``first_sync`` adds the one-off add+delete of the base chains (``!proxier.flushed``).
    Raises nothing.
    """
    ops: list[Operation] = [Operation("add", Table(comment="rules for kube-proxy"))]
    if first_sync:
        for bc in BASE_CHAINS:
            ops += [Operation("add", Chain(bc.name)), Operation("delete", Chain(bc.name))]
    for bc in BASE_CHAINS:
        chain = Chain(bc.name, type=bc.type, hook=bc.hook, priority=bc.priority)
        ops += [Operation("add", chain), Operation("flush", chain)]

    created: set[str] = set()
    for dst, src, extra in JUMP_CHAINS:
        ensure_chain(dst, ops, created)
        ops.append(Operation("add", Rule(src, concat(extra, "jump", dst))))
    for name in (SERVICES, CLUSTER_IPS_CHECK, MASQUERADING, MARK_MASQ):
        ensure_chain(name, ops, created)

    mark = masquerade_mark
    ops.append(Operation("add", Rule(MARK_MASQ, concat("mark", "set", "mark", "or", mark))))
    ops.append(Operation("add", Rule(MASQUERADING, concat("mark", "and", mark, "==", "0", "return"))))
    ops.append(Operation("add", Rule(MASQUERADING, concat("mark", "set", "mark", "xor", mark))))
    ops.append(Operation("add", Rule(MASQUERADING, "masquerade fully-random")))

    ops.append(Operation("add", Set(CLUSTER_IPS, type="ipv4_addr", comment="Active ClusterIPs")))
    ops.append(Operation("add", Rule(CLUSTER_IPS_CHECK, concat("ip", "daddr", "@", CLUSTER_IPS, "reject"),
                                     comment="Reject traffic to invalid ports of ClusterIPs")))
    if service_cidrs:
        ops.append(Operation("add", Rule(CLUSTER_IPS_CHECK,
                                         concat("ip", "daddr", "{", service_cidrs, "}", "drop"),
                                         comment="Drop traffic to unallocated ClusterIPs")))

    nodeport_set = Set(NODEPORT_IPS, type="ipv4_addr", comment="IPs that accept NodePort traffic")
    ops.append(Operation("add", nodeport_set))
    if nodeport_ips is None:
        ops.append(Operation("delete", Set(NODEPORT_IPS)))
    else:
        ops.append(Operation("flush", Set(NODEPORT_IPS)))
        for ip in nodeport_ips:
            if not ip.startswith("127."):
                ops.append(Operation("add", Element((ip,), set=NODEPORT_IPS)))

    ops.append(Operation("add", Map(NO_ENDPOINT_SERVICES, type=ADDR_PROTO_PORT_VERDICT,
                                    comment="vmap to drop or reject packets to services with no endpoints")))
    ops.append(Operation("add", Map(NO_ENDPOINT_NODEPORTS, type="inet_proto . inet_service : verdict",
                                    comment="vmap to drop or reject packets to service nodeports with no "
                                            "endpoints")))
    reject = Chain(REJECT_CHAIN, comment="helper for @no-endpoint-services / @no-endpoint-nodeports")
    ops += [Operation("add", reject), Operation("flush", Chain(REJECT_CHAIN)),
            Operation("add", Rule(REJECT_CHAIN, "reject"))]
    ops.append(Operation("add", Rule(SERVICE_ENDPOINTS_CHECK, concat(
        "ip", "daddr", ".", "meta l4proto", ".", "th dport", "vmap", "@", NO_ENDPOINT_SERVICES))))
    if nodeport_ips is None:
        check = concat("ip daddr != 127.0.0.0/8", "meta l4proto . th dport", "vmap", "@",
                       NO_ENDPOINT_NODEPORTS)
    else:
        check = concat("ip", "daddr", "@", NODEPORT_IPS, "meta l4proto . th dport", "vmap", "@",
                       NO_ENDPOINT_NODEPORTS)
    ops.append(Operation("add", Rule(NODEPORT_ENDPOINTS_CHECK, check)))

    ops.append(Operation("add", Map(FIREWALL_IPS, type=ADDR_PROTO_PORT_VERDICT,
                                    comment="destinations that are subject to LoadBalancerSourceRanges")))
    ensure_chain(FIREWALL_CHECK, ops, created)
    ops.append(Operation("add", Rule(FIREWALL_CHECK, concat(
        "ip", "daddr", ".", "meta l4proto", ".", "th dport", "vmap", "@", FIREWALL_IPS))))

    ops.append(Operation("add", Map(SERVICE_IPS, type=ADDR_PROTO_PORT_VERDICT,
                                    comment="ClusterIP, ExternalIP and LoadBalancer IP traffic")))
    ops.append(Operation("add", Map(SERVICE_NODEPORTS, type="inet_proto . inet_service : verdict",
                                    comment="NodePort traffic")))
    ops.append(Operation("add", Rule(SERVICES, concat(
        "ip", "daddr", ".", "meta l4proto", ".", "th dport", "vmap", "@", SERVICE_IPS))))
    if nodeport_ips is None:
        dispatch = concat("fib daddr type local", "ip daddr != 127.0.0.0/8", "meta l4proto . th dport",
                          "vmap", "@", SERVICE_NODEPORTS)
    else:
        dispatch = concat("ip", "daddr @nodeport-ips", "meta l4proto . th dport", "vmap", "@",
                          SERVICE_NODEPORTS)
    ops.append(Operation("add", Rule(SERVICES, dispatch)))
    return ops
