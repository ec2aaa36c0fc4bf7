"""The ``kube-proxy`` nftables table kube-proxy's nftables mode keeps for a node.

:func:`sync` is ``Proxier.syncProxyRules`` of ``pkg/proxy/nftables/proxier.go``
(Kubernetes v1.32, with ``writeServiceToEndpointRules``), run against knftables' fake
(:mod:`netlab.kube.nftfake`) the way kube-proxy's unit tests run it: the stale-chain
cleanup transaction, then the sync transaction (``setupNFTables`` on a full sync,
:mod:`netlab.kube.nftsetup`), with the state kube-proxy carries between syncs (the
element storages of :mod:`netlab.kube.nftstorage`, the stale chains and their times,
whether the next sync must be full). :func:`render` is the common case: the table after
kube-proxy's first sync, as ``knftables.Fake.Dump()`` prints it.

What it covers: IPv4; ClusterIP, NodePort and LoadBalancer services with external IPs,
load-balancer ingress IPs (``ipMode: Proxy`` ones skipped) and source ranges; external
and internal traffic policy; ClientIP session affinity (per-endpoint affinity sets);
ready, serving and terminating endpoints (:mod:`netlab.kube.endpoints`); services with
no (local) endpoints (``reject``/``drop`` verdicts); ``numgen random mod N vmap`` load
balancing; the mark-and-masquerade chains, ``--masquerade-all`` and the local-traffic
detector by cluster CIDR or none; ``--nodeport-addresses`` as a list of node IPs or
unset (every local address); the ServiceCIDRs drop rule; partial syncs (only the
Services that changed get their chains rewritten) and stale chain and affinity set
removal. Health-check servers, metrics and conntrack cleanup are side effects, not
rules, and are not modelled.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from netlab.kube import addr, nftnames
from netlab.kube.endpoints import categorize
from netlab.kube.model import ProxyNode, ServicePort
from netlab.kube.nftfake import FakeTable, NFTablesError, dump, run
from netlab.kube.nftobjects import Chain, Element, Operation, Rule, Set, Transaction, concat
from netlab.kube.nftsetup import (
    CLUSTER_IPS,
    ELEMENT_CONTAINERS,
    FIREWALL_IPS,
    MARK_MASQ,
    NO_ENDPOINT_NODEPORTS,
    NO_ENDPOINT_SERVICES,
    REJECT_CHAIN,
    SERVICE_IPS,
    SERVICE_NODEPORTS,
    ensure_chain,
    setup_operations,
)
from netlab.kube.nftstorage import ElementStorage, StorageSync
from netlab.kube.serviceinfo import EndpointInfo, PortInfo, policy_targets, port_info

STALE_CHAIN_AGE = 1.0
"""Seconds a flushed chain stays before kube-proxy deletes it (``oneSecondAgo``)."""


@dataclass(frozen=True)
class NFTablesConfig:
    """The nftables-mode settings :class:`~netlab.kube.model.ProxyNode` does not hold.

    ``service_cidrs``: the cluster's ServiceCIDRs (``OnServiceCIDRsChanged``; only the
    IPv4 ones are used, see :func:`ipv4_service_cidrs`). ``nodeport_ips``: the node IPs
    ``--nodeport-addresses`` selects (what ``NodePortAddresses.GetNodeIPs`` returns), or
    ``None`` when it matches every address (``MatchAll``).
    """

    service_cidrs: tuple[str, ...] = ()
    nodeport_ips: tuple[str, ...] | None = None


def ipv4_service_cidrs(cidrs: Iterable[str]) -> str:
    """``OnServiceCIDRsChanged`` for an IPv4 proxier: the IPv4 CIDRs, comma-joined.

    A CIDR counts as IPv4 when it parses as one (``netutils.IsIPv4CIDRString``); it is
    kept as written. Raises nothing.
    """
    kept = []
    for cidr in cidrs:
        try:
            addr.parse_cidr(cidr)
        except ValueError:
            continue
        kept.append(cidr)
    return ",".join(kept)


def _fresh_storages() -> Mapping[str, ElementStorage]:
    return {name: ElementStorage(kind, name) for kind, name in ELEMENT_CONTAINERS}


@dataclass(frozen=True)
class ProxierState:
    """What a kube-proxy ``Proxier`` keeps from one sync to the next.

    ``stale_chains`` maps a flushed service chain to the time it went stale;
    ``flushed`` says the one-off recreation of the base chains was done.
    """

    need_full_sync: bool = True
    flushed: bool = False
    stale_chains: Mapping[str, float] = field(default_factory=dict)
    storages: Mapping[str, ElementStorage] = field(default_factory=_fresh_storages)


@dataclass(frozen=True)
class SyncResult:
    """One ``syncProxyRules``: the transactions kube-proxy ran and where they left things.

    ``cleanup`` is the stale-chain deletion run first (``None`` when nothing was old
    enough); ``error`` is the fake's refusal of ``transaction`` (then ``table`` is the
    table as it was and the next sync will be full).
    """

    state: ProxierState
    table: FakeTable | None
    cleanup: Transaction | None
    transaction: Transaction
    error: str | None = None


@dataclass
class _Sync:
    """The working data of one sync (kube-proxy's locals)."""

    node: ProxyNode
    ops: list[Operation]
    storages: dict[str, StorageSync]
    active_chains: set[str] = field(default_factory=set)
    active_affinity_sets: set[str] = field(default_factory=set)

    def ensure(self, container: str, element: Element) -> None:
        self.storages[container].ensure(element)

    def add_rule(self, chain: str, *words: str | int | Sequence[str], comment: str | None = None) -> None:
        self.ops.append(Operation("add", Rule(chain, concat(*words), comment)))


@dataclass(frozen=True)
class _Names:
    """``servicePortInfo``'s nftables chain names for one service port."""

    cluster: str
    local: str
    external: str
    firewall: str


def sync(node: ProxyNode, ports: Iterable[ServicePort], *, config: NFTablesConfig = NFTablesConfig(),
         state: ProxierState = ProxierState(), table: FakeTable | None = None,
         changed: Collection[str] = (), now: float = 0.0) -> SyncResult:
    """One ``syncProxyRules`` on ``node`` against the fake nftables ``table``.

    ``ports`` are all the service ports kube-proxy knows, with their endpoints;
    ``changed`` names (``namespace/name``) the Services whose Service or EndpointSlices
    changed since the last sync (what the change trackers report; only used for a
    partial sync, i.e. when ``state.need_full_sync`` is false); ``now`` is the sync's
    start time in seconds (stale chains are deleted once older than one second).

    Raises ValueError for an address, CIDR or port kube-proxy could not program, and
    for two service ports with the same name and protocol.
    """
    addr.parse_ip(node.ip)
    if node.cluster_cidr is not None:
        addr.parse_cidr(node.cluster_cidr)
    nodeport_ips = (None if config.nodeport_ips is None
                    else tuple(str(addr.parse_ip(ip)) for ip in config.nodeport_ips))
    infos = [(sp, port_info(sp, node.name)) for sp in ports]
    seen: set[tuple[str, str]] = set()
    for _, info in infos:
        if (info.name, info.protocol) in seen:
            raise ValueError(f"service port {info.name}/{info.protocol} given twice")
        seen.add((info.name, info.protocol))

    # Delete chains that have been stale for long enough (a transaction of its own).
    stale = dict(state.stale_chains)
    cleanup: Transaction | None = None
    old = sorted(c for c, t in stale.items() if t < now - STALE_CHAIN_AGE)
    if old:
        cleanup = Transaction(tuple(Operation("delete", Chain(c)) for c in old))
        for chain in old:
            del stale[chain]
        try:
            table = run(table, cleanup)
        except NFTablesError:
            pass  # logged by kube-proxy; the chains come back as stale below

    partial = not state.need_full_sync
    work = _Sync(node=node, ops=[], storages={})
    flushed = state.flushed
    if not partial:
        work.ops += setup_operations(masquerade_mark=node.masquerade_mark,
                                     service_cidrs=ipv4_service_cidrs(config.service_cidrs),
                                     nodeport_ips=nodeport_ips, first_sync=not flushed)
        flushed = True
    for kind, name in ELEMENT_CONTAINERS:
        work.storages[name] = StorageSync(state.storages.get(name, ElementStorage(kind, name)), work.ops)
        if not partial:
            work.storages[name].reset()

    changed_set = frozenset(changed)
    for sp, info in infos:
        skip = partial and info.service not in changed_set
        _write_service(work, sp, info, skip)

    # Flush the service chains no longer in use; they are deleted in a later sync.
    existing_chains = sorted(table.chains) if table else []
    for chain in existing_chains:
        if nftnames.is_service_chain(chain):
            if chain not in work.active_chains:
                work.ops.append(Operation("flush", Chain(chain)))
                stale[chain] = now
            else:
                stale.pop(chain, None)
    # Stale affinity sets go at once.
    for name in sorted(table.sets) if table else []:
        if nftnames.is_affinity_set(name) and name not in work.active_affinity_sets:
            work.ops.append(Operation("delete", Set(name)))
    for storage in work.storages.values():
        storage.cleanup()

    tx = Transaction(tuple(work.ops))
    storages = {name: s.freeze() for name, s in work.storages.items()}
    try:
        new_table = run(table, tx)
    except NFTablesError as err:
        failed = ProxierState(need_full_sync=True, flushed=flushed, stale_chains={}, storages=storages)
        return SyncResult(failed, table, cleanup, tx, str(err))
    done = ProxierState(need_full_sync=False, flushed=flushed, stale_chains=stale, storages=storages)
    return SyncResult(done, new_table, cleanup, tx)


def render(node: ProxyNode, ports: Iterable[ServicePort], config: NFTablesConfig = NFTablesConfig()) -> str:
    """The ``kube-proxy`` table after kube-proxy's first sync on ``node``, as
    ``knftables.Fake.Dump()`` prints it (compare with :func:`netlab.kube.nftdump.diff_transaction`).

    Raises ValueError as :func:`sync` does, and RuntimeError if the fake refused the
    transaction (a generator fault).
    """
    result = sync(node, ports, config=config)
    if result.error is not None:
        raise RuntimeError(f"nftables transaction refused: {result.error}")
    return dump(result.table)


def _names(sp: ServicePort, protocol: str) -> _Names:
    base = nftnames.service_port_base(sp.namespace, sp.name, protocol, sp.port_name)
    return _Names(cluster=nftnames.SERVICE + base, local=nftnames.LOCAL + base,
                  external=nftnames.EXTERNAL + base, firewall=nftnames.FIREWALL + base)


def _endpoint_base(sp: ServicePort, protocol: str, ep: EndpointInfo) -> str:
    return nftnames.endpoint_base(sp.namespace, sp.name, protocol, sp.port_name, ep.string)


def _write_service(work: _Sync, sp: ServicePort, svc: PortInfo, skip: bool) -> None:
    """The body of ``syncProxyRules``' per-service-port loop."""
    proto = svc.protocol
    names = _names(sp, proto)
    cats = categorize(svc)
    has_endpoints = cats.has_any
    sticky = svc.sticky_seconds is not None

    for ep in cats.reachable:
        base = _endpoint_base(sp, proto, ep)
        ensure_chain(nftnames.ENDPOINT + base, work.ops, work.active_chains, skip)
        if sticky:
            work.active_affinity_sets.add(nftnames.AFFINITY + base)

    uses_cluster_chain = bool(cats.cluster) and svc.uses_cluster_endpoints()
    if uses_cluster_chain:
        ensure_chain(names.cluster, work.ops, work.active_chains, skip)
    uses_local_chain = bool(cats.local) and svc.uses_local_endpoints()
    if uses_local_chain:
        ensure_chain(names.local, work.ops, work.active_chains, skip)

    internal_chain, has_internal, external_policy_chain, has_external = policy_targets(
        svc, has_endpoints, bool(cats.local), names.cluster, names.local)
    external_chain = names.external
    uses_external_chain = has_endpoints and svc.externally_accessible()
    if uses_external_chain:
        ensure_chain(external_chain, work.ops, work.active_chains, skip)

    if not has_endpoints:
        internal_verdict = external_verdict = f"goto {REJECT_CHAIN}"
    else:
        internal_verdict = "" if has_internal else "drop"
        external_verdict = "" if has_external else "drop"

    cluster_ip, port = str(svc.cluster_ip), str(svc.port)
    # Capture the clusterIP.
    work.ensure(CLUSTER_IPS, Element((cluster_ip,), set=CLUSTER_IPS))
    if has_internal:
        work.ensure(SERVICE_IPS, Element((cluster_ip, proto, port), map=SERVICE_IPS,
                                         value=(f"goto {internal_chain}",)))
    else:
        work.ensure(NO_ENDPOINT_SERVICES, Element((cluster_ip, proto, port), map=NO_ENDPOINT_SERVICES,
                                                  value=(internal_verdict,), comment=svc.name))

    # Capture externalIPs.
    for ip in svc.external_ips:
        if has_endpoints:
            work.ensure(SERVICE_IPS, Element((str(ip), proto, port), map=SERVICE_IPS,
                                             value=(f"goto {external_chain}",)))
        if not has_external:
            work.ensure(NO_ENDPOINT_SERVICES, Element((str(ip), proto, port), map=NO_ENDPOINT_SERVICES,
                                                      value=(external_verdict,), comment=svc.name))

    uses_fw_chain = bool(svc.load_balancer_vips) and bool(svc.source_ranges)
    if uses_fw_chain:
        ensure_chain(names.firewall, work.ops, work.active_chains, skip)

    # Capture load-balancer ingress.
    for ip in svc.load_balancer_vips:
        if has_endpoints:
            work.ensure(SERVICE_IPS, Element((str(ip), proto, port), map=SERVICE_IPS,
                                             value=(f"goto {external_chain}",)))
        if uses_fw_chain:
            work.ensure(FIREWALL_IPS, Element((str(ip), proto, port), map=FIREWALL_IPS,
                                              value=(f"goto {names.firewall}",)))
    if not has_external:
        for ip in svc.load_balancer_vips:
            work.ensure(NO_ENDPOINT_SERVICES, Element((str(ip), proto, port), map=NO_ENDPOINT_SERVICES,
                                                      value=(external_verdict,), comment=svc.name))

    # Capture nodeports.
    if svc.node_port:
        node_port = str(svc.node_port)
        if has_endpoints:
            work.ensure(SERVICE_NODEPORTS, Element((proto, node_port), map=SERVICE_NODEPORTS,
                                                   value=(f"goto {external_chain}",)))
        if not has_external:
            work.ensure(NO_ENDPOINT_NODEPORTS, Element((proto, node_port), map=NO_ENDPOINT_NODEPORTS,
                                                       value=(external_verdict,), comment=svc.name))

    # Everything below rewrites the service's own chains: a partial sync skips it.
    if skip:
        return
    node = work.node

    # Set up internal traffic handling.
    if has_internal:
        if node.masquerade_all:
            work.add_rule(internal_chain, "ip", "daddr", cluster_ip, proto, "dport", svc.port,
                          "jump", MARK_MASQ)
        elif node.cluster_cidr is not None:
            work.add_rule(internal_chain, "ip", "daddr", cluster_ip, proto, "dport", svc.port,
                          ["ip", "saddr", "!=", node.cluster_cidr], "jump", MARK_MASQ)

    # Set up external traffic handling.
    if uses_external_chain:
        if not svc.external_policy_local:
            work.add_rule(external_chain, "jump", MARK_MASQ)
        else:
            if node.cluster_cidr is not None:
                work.add_rule(external_chain, ["ip", "saddr", node.cluster_cidr], "goto", names.cluster,
                              comment="short-circuit pod traffic")
            work.add_rule(external_chain, "fib", "saddr", "type", "local", "jump", MARK_MASQ,
                          comment="masquerade local traffic")
            work.add_rule(external_chain, "fib", "saddr", "type", "local", "goto", names.cluster,
                          comment="short-circuit local traffic")
        if has_external:
            work.add_rule(external_chain, "goto", external_policy_chain)

    if uses_fw_chain:
        sources: list[str] = []
        allow_from_node = False
        node_ip = addr.parse_ip(node.ip)
        for cidr in svc.source_ranges:
            if sources:
                sources.append(",")
            sources.append(str(cidr))
            allow_from_node = allow_from_node or node_ip in cidr
        if allow_from_node:
            for ip in svc.load_balancer_vips:
                sources += [",", str(ip)]
        work.add_rule(names.firewall, "ip", "saddr", "!=", "{", sources, "}", "drop")

    if sticky:
        for ep in cats.reachable:
            work.ops.append(Operation("add", Set(
                nftnames.AFFINITY + _endpoint_base(sp, proto, ep), type="ipv4_addr",
                flags=("dynamic", "timeout"), timeout_seconds=svc.sticky_seconds)))

    if uses_cluster_chain:
        _write_service_to_endpoint_rules(work, sp, svc, names.cluster, cats.cluster)
    if uses_local_chain:
        _write_service_to_endpoint_rules(work, sp, svc, names.local, cats.local)

    # Generate the per-endpoint chains.
    for ep in cats.reachable:
        base = _endpoint_base(sp, proto, ep)
        chain = nftnames.ENDPOINT + base
        work.add_rule(chain, "ip", "saddr", str(ep.ip), "jump", MARK_MASQ)
        if sticky:
            work.add_rule(chain, "update", "@", nftnames.AFFINITY + base, "{", "ip", "saddr", "}")
        work.add_rule(chain, "meta l4proto", proto, "dnat to", ep.string)


def _write_service_to_endpoint_rules(work: _Sync, sp: ServicePort, svc: PortInfo, chain: str,
                                     endpoints: Sequence[EndpointInfo]) -> None:
    """``writeServiceToEndpointRules``: affinity lookups, then the ``numgen`` dispatch."""
    proto = svc.protocol
    if svc.sticky_seconds is not None:
        for ep in endpoints:
            base = _endpoint_base(sp, proto, ep)
            work.add_rule(chain, "ip", "saddr", "@", nftnames.AFFINITY + base,
                          "goto", nftnames.ENDPOINT + base)
    elements: list[str] = []
    for i, ep in enumerate(endpoints):
        elements += [str(i), ":", "goto", nftnames.ENDPOINT + _endpoint_base(sp, proto, ep)]
        if i != len(endpoints) - 1:
            elements.append(",")
    work.add_rule(chain, "numgen random mod", len(endpoints), "vmap", "{", elements, "}")
