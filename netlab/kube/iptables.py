"""The ``iptables-restore`` input kube-proxy's iptables mode writes for a node.

:func:`render` is ``Proxier.syncProxyRules`` of ``pkg/proxy/iptables/proxier.go``
(with ``writeServiceToEndpointRules``, ``computeProbability`` and
``appendServiceCommentLocked``) reduced to its output: the ``filter`` and ``nat``
tables, rule for rule and word for word as kube-proxy puts them in the buffer it hands
to ``iptables-restore --noflush``. Its side effects (the jump rules from the built-in
chains, nfacct counters, health-check servers, conntrack cleanup) are not modelled.

What it covers: IPv4, ``--nodeport-addresses`` unset (NodePorts on every local
address), the local-traffic detector by cluster CIDR or none, ``--masquerade-all``,
``--iptables-localhost-nodeports``, ClusterIP / NodePort / LoadBalancer services with
external IPs, load-balancer ingress IPs and source ranges, health-check node ports,
external and internal traffic policy, ClientIP session affinity, ready / serving /
terminating endpoints, the large-cluster comment elision (over 1000 endpoints), stale
chain deletion (given the ``nat`` chains iptables holds) and partial syncs (given the
Services that changed). Services are processed in the order given; kube-proxy walks a
map, and its tests sort the result (:mod:`netlab.kube.dump`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from netlab.kube import addr, chains
from netlab.kube.endpoints import categorize
from netlab.kube.model import ProxyNode, ServicePort
from netlab.kube.serviceinfo import EndpointInfo, PortInfo, policy_targets, port_info

KUBE_SERVICES = "KUBE-SERVICES"
KUBE_EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
KUBE_NODEPORTS = "KUBE-NODEPORTS"
KUBE_POSTROUTING = "KUBE-POSTROUTING"
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"
KUBE_FORWARD = "KUBE-FORWARD"
KUBE_PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
KUBE_FIREWALL = "KUBE-FIREWALL"
"""``kubeletFirewallChain``: kube-proxy's copy of kubelet's anti-martian chain."""

LARGE_CLUSTER_ENDPOINTS = 1000
"""``largeClusterEndpointsThreshold``: above it, per-endpoint comments are left out."""

NFACCT_CT_STATE_INVALID = "ct_state_invalid_dropped_pkts"
"""``metrics.IPTablesCTStateInvalidDroppedNFAcctCounter``."""
NFACCT_LOCALHOST_NODE_PORTS = "localhost_nps_accepted_pkts"
"""``metrics.LocalhostNodePortAcceptedNFAcctCounter``."""

Words = str | Sequence[str]


def chain_line(chain: str) -> str:
    """``utiliptables.MakeChainLine``: the ``:CHAIN - [0:0]`` declaration."""
    return f":{chain} - [0:0]"


def probability(n: int) -> str:
    """``computeProbability``: 1/n printed as Go's ``%0.10f`` (Python's ``.10f`` rounds alike).

    Raises ZeroDivisionError for 0, as 1.0/0 has no decimal form.
    """
    return f"{1.0 / n:.10f}"


@dataclass
class _Buffer:
    """``proxyutil.LineBuffer``: each write is one line of space-joined words."""

    lines: list[str] = field(default_factory=list)

    def write(self, *args: Words) -> None:
        self.lines.append(" ".join(a if isinstance(a, str) else " ".join(a) for a in args))


@dataclass(frozen=True)
class RestoreText:
    """The two tables of one sync, each ``*table`` ... ``COMMIT`` with a newline per line."""

    filter: str
    nat: str

    @property
    def text(self) -> str:
        """Both tables as kube-proxy passes them to ``RestoreAll``: filter, then nat."""
        return self.filter + self.nat


@dataclass
class _Sync:
    """The buffers and settings of one ``syncProxyRules`` run."""

    node: ProxyNode
    full: bool
    changed: frozenset[str]
    large_cluster: bool
    node_ip: ipaddress.IPv4Address
    filter_chains: _Buffer = field(default_factory=_Buffer)
    filter_rules: _Buffer = field(default_factory=_Buffer)
    nat_chains: _Buffer = field(default_factory=_Buffer)
    nat_rules: _Buffer = field(default_factory=_Buffer)
    active_nat_chains: set[str] = field(default_factory=set)

    def comment(self, args: list[str], text: str) -> list[str]:
        """``appendServiceCommentLocked``: no per-endpoint comments in large clusters."""
        return args if self.large_cluster else [*args, "-m", "comment", "--comment", text]

    def if_local(self) -> list[str]:
        """``LocalTrafficDetector.IfLocal`` of the CIDR detector."""
        return ["-s", self.node.cluster_cidr or ""]

    def if_not_local(self) -> list[str]:
        """``LocalTrafficDetector.IfNotLocal`` of the CIDR detector."""
        return ["!", "-s", self.node.cluster_cidr or ""]


def render(node: ProxyNode, ports: Iterable[ServicePort], *,
           existing_nat_chains: Collection[str] = (),
           changed_services: Collection[str] | None = None) -> RestoreText:
    """The ``filter`` and ``nat`` input of one ``syncProxyRules`` on ``node``.

    ``ports`` are all the service ports kube-proxy knows, each with its endpoints.
    ``existing_nat_chains`` are the ``nat`` chains ``iptables-save`` reports before the
    sync: stale per-service chains among them are flushed and deleted (``-X``).
    ``changed_services`` (``namespace/name``) makes it a partial sync: only those
    Services get their ``KUBE-SVC-``/``SVL``/``EXT``/``FW``/``SEP`` chains rewritten;
    ``None`` is a full sync. (In large-cluster mode kube-proxy looks for stale chains
    only once per sync period; pass no ``existing_nat_chains`` for the syncs between.)

    Raises ValueError for an address, CIDR or port kube-proxy could not program, and
    for two service ports with the same name and protocol.
    """
    node_ip = addr.parse_ip(node.ip)
    if node.cluster_cidr is not None:
        addr.parse_cidr(node.cluster_cidr)
    infos = [port_info(p, node.name) for p in ports]
    seen: set[tuple[str, str]] = set()
    for info in infos:
        if (info.name, info.protocol) in seen:
            raise ValueError(f"service port {info.name}/{info.protocol} given twice")
        seen.add((info.name, info.protocol))
    total_endpoints = sum(len(info.endpoints) for info in infos)
    sync = _Sync(node=node, full=changed_services is None,
                 changed=frozenset(changed_services or ()),
                 large_cluster=total_endpoints > LARGE_CLUSTER_ENDPOINTS,
                 node_ip=node_ip)
    _write_prologue(sync)
    for info in infos:
        _write_service(sync, info)
    # Delete chains no longer in use (iterated as a sorted set; kube-proxy's is random).
    for chain in sorted(set(existing_nat_chains) - sync.active_nat_chains):
        if chains.is_service_chain(chain):
            sync.nat_chains.write(chain_line(chain))
            sync.nat_rules.write("-X", chain)
    _write_epilogue(sync)
    return RestoreText(
        filter=_table("filter", sync.filter_chains, sync.filter_rules),
        nat=_table("nat", sync.nat_chains, sync.nat_rules))


def _table(name: str, chain_lines: _Buffer, rule_lines: _Buffer) -> str:
    return "".join(f"{line}\n" for line in [f"*{name}", *chain_lines.lines, *rule_lines.lines, "COMMIT"])


def _write_prologue(sync: _Sync) -> None:
    """The top-level chains, KUBE-POSTROUTING, KUBE-MARK-MASQ and KUBE-FIREWALL."""
    for chain in (KUBE_SERVICES, KUBE_EXTERNAL_SERVICES, KUBE_FORWARD, KUBE_NODEPORTS, KUBE_PROXY_FIREWALL):
        sync.filter_chains.write(chain_line(chain))
    for chain in (KUBE_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_MARK_MASQ):
        sync.nat_chains.write(chain_line(chain))
    mark = sync.node.masquerade_mark
    nat = sync.nat_rules
    nat.write("-A", KUBE_POSTROUTING, "-m", "mark", "!", "--mark", f"{mark}/{mark}", "-j", "RETURN")
    nat.write("-A", KUBE_POSTROUTING, "-j", "MARK", "--xor-mark", mark)
    masq_rule = ["-A", KUBE_POSTROUTING, "-m", "comment", "--comment",
                 '"kubernetes service traffic requiring SNAT"', "-j", "MASQUERADE"]
    if sync.node.random_fully:
        masq_rule.append("--random-fully")
    nat.write(masq_rule)
    nat.write("-A", KUBE_MARK_MASQ, "-j", "MARK", "--or-mark", mark)
    if sync.node.localhost_node_ports:
        sync.filter_chains.write(chain_line(KUBE_FIREWALL))
        sync.filter_rules.write(
            "-A", KUBE_FIREWALL, "-m", "comment", "--comment", '"block incoming localnet connections"',
            "-d", "127.0.0.0/8", "!", "-s", "127.0.0.0/8",
            "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT", "-j", "DROP")


def _write_epilogue(sync: _Sync) -> None:
    """The NodePort tail call of KUBE-SERVICES and the KUBE-FORWARD rules."""
    destinations = ["-m", "addrtype", "--dst-type", "LOCAL"]
    if not sync.node.localhost_node_ports:
        destinations += ["!", "-d", "127.0.0.0/8"]
    sync.nat_rules.write(
        "-A", KUBE_SERVICES, "-m", "comment", "--comment",
        '"kubernetes service nodeports; NOTE: this must be the last rule in this chain"',
        destinations, "-j", KUBE_NODEPORTS)
    mark = sync.node.masquerade_mark
    if not sync.node.conntrack_tcp_liberal:
        rule = ["-A", KUBE_FORWARD, "-m", "conntrack", "--ctstate", "INVALID"]
        if sync.node.nfacct_ct_state_invalid:
            rule += ["-m", "nfacct", "--nfacct-name", NFACCT_CT_STATE_INVALID]
        sync.filter_rules.write(rule, "-j", "DROP")
    sync.filter_rules.write(
        "-A", KUBE_FORWARD, "-m", "comment", "--comment", '"kubernetes forwarding rules"',
        "-m", "mark", "--mark", f"{mark}/{mark}", "-j", "ACCEPT")
    sync.filter_rules.write(
        "-A", KUBE_FORWARD, "-m", "comment", "--comment", '"kubernetes forwarding conntrack rule"',
        "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")


def _write_service(sync: _Sync, svc: PortInfo) -> None:
    """The rules of one service port: the body of syncProxyRules' per-service loop."""
    cats = categorize(svc)
    has_endpoints = cats.has_any
    proto = svc.protocol
    name = svc.name
    port = str(svc.port)
    cluster_ip = str(svc.cluster_ip)
    uses_cluster_chain = bool(cats.cluster) and svc.uses_cluster_endpoints()
    uses_local_chain = bool(cats.local) and svc.uses_local_endpoints()

    internal_chain, has_internal, external_policy_chain, has_external = policy_targets(
        svc, has_endpoints, bool(cats.local), svc.cluster_chain, svc.local_chain)
    external_chain = svc.external_chain
    uses_external_chain = has_endpoints and svc.externally_accessible()
    lb_chain = external_chain
    uses_fw_chain = has_endpoints and bool(svc.load_balancer_vips) and bool(svc.source_ranges)
    if uses_fw_chain:
        lb_chain = svc.firewall_chain

    if not has_endpoints:
        internal_target = external_target = "REJECT"
        internal_comment = external_comment = f'"{name} has no endpoints"'
    else:
        internal_target = external_target = ""
        internal_comment = external_comment = ""
        if not has_internal:
            internal_target, internal_comment = "DROP", f'"{name} has no local endpoints"'
        if not has_external:
            external_target, external_comment = "DROP", f'"{name} has no local endpoints"'

    filter_rules = sync.filter_rules
    nat_rules = sync.nat_rules
    match = ["-m", proto, "-p", proto]

    # Capture the clusterIP.
    if has_internal:
        nat_rules.write("-A", KUBE_SERVICES, "-m", "comment", "--comment", f'"{name} cluster IP"',
                        match, "-d", cluster_ip, "--dport", port, "-j", internal_chain)
    else:
        filter_rules.write("-A", KUBE_SERVICES, "-m", "comment", "--comment", internal_comment,
                           match, "-d", cluster_ip, "--dport", port, "-j", internal_target)

    # Capture externalIPs.
    for ip in svc.external_ips:
        if has_endpoints:
            nat_rules.write("-A", KUBE_SERVICES, "-m", "comment", "--comment", f'"{name} external IP"',
                            match, "-d", str(ip), "--dport", port, "-j", external_chain)
        if not has_external:
            filter_rules.write("-A", KUBE_EXTERNAL_SERVICES, "-m", "comment", "--comment", external_comment,
                               match, "-d", str(ip), "--dport", port, "-j", external_target)

    # Capture load-balancer ingress.
    for ip in svc.load_balancer_vips:
        if has_endpoints:
            nat_rules.write("-A", KUBE_SERVICES, "-m", "comment", "--comment", f'"{name} loadbalancer IP"',
                            match, "-d", str(ip), "--dport", port, "-j", lb_chain)
        if uses_fw_chain:
            filter_rules.write("-A", KUBE_PROXY_FIREWALL, "-m", "comment", "--comment",
                               f'"{name} traffic not accepted by {svc.firewall_chain}"',
                               match, "-d", str(ip), "--dport", port, "-j", "DROP")
    if not has_external:
        for ip in svc.load_balancer_vips:
            filter_rules.write("-A", KUBE_EXTERNAL_SERVICES, "-m", "comment", "--comment", external_comment,
                               match, "-d", str(ip), "--dport", port, "-j", external_target)

    # Capture nodeports.
    if svc.node_port:
        node_port = str(svc.node_port)
        if has_endpoints:
            if sync.node.localhost_node_ports and sync.node.nfacct_localhost_node_ports:
                nat_rules.write("-A", KUBE_NODEPORTS, "-m", "comment", "--comment", name, match,
                                "-d", "127.0.0.0/8", "--dport", node_port,
                                "-m", "nfacct", "--nfacct-name", NFACCT_LOCALHOST_NODE_PORTS,
                                "-j", external_chain)
            nat_rules.write("-A", KUBE_NODEPORTS, "-m", "comment", "--comment", name, match,
                            "--dport", node_port, "-j", external_chain)
        if not has_external:
            filter_rules.write("-A", KUBE_EXTERNAL_SERVICES, "-m", "comment", "--comment", external_comment,
                               "-m", "addrtype", "--dst-type", "LOCAL", match,
                               "--dport", node_port, "-j", external_target)

    # Capture healthCheckNodePorts.
    if svc.health_check_node_port:
        filter_rules.write("-A", KUBE_NODEPORTS, "-m", "comment", "--comment",
                           f'"{name} health check node port"', "-m", "tcp", "-p", "tcp",
                           "--dport", str(svc.health_check_node_port), "-j", "ACCEPT")

    # A partial sync leaves the chains of unchanged Services as they are.
    nat_chains = sync.nat_chains
    if not sync.full and svc.service not in sync.changed:
        nat_chains, nat_rules = _Buffer(), _Buffer()

    # Set up internal traffic handling.
    if has_internal:
        args = ["-m", "comment", "--comment", f'"{name} cluster IP"', *match,
                "-d", cluster_ip, "--dport", port]
        if sync.node.masquerade_all:
            nat_rules.write("-A", internal_chain, args, "-j", KUBE_MARK_MASQ)
        elif sync.node.cluster_cidr is not None:
            nat_rules.write("-A", internal_chain, args, sync.if_not_local(), "-j", KUBE_MARK_MASQ)

    # Set up external traffic handling.
    if uses_external_chain:
        nat_chains.write(chain_line(external_chain))
        sync.active_nat_chains.add(external_chain)
        if not svc.external_policy_local:
            nat_rules.write("-A", external_chain, "-m", "comment", "--comment",
                            f'"masquerade traffic for {name} external destinations"', "-j", KUBE_MARK_MASQ)
        else:
            if sync.node.cluster_cidr is not None:
                nat_rules.write("-A", external_chain, "-m", "comment", "--comment",
                                f'"pod traffic for {name} external destinations"',
                                sync.if_local(), "-j", svc.cluster_chain)
            nat_rules.write("-A", external_chain, "-m", "comment", "--comment",
                            f'"masquerade LOCAL traffic for {name} external destinations"',
                            "-m", "addrtype", "--src-type", "LOCAL", "-j", KUBE_MARK_MASQ)
            nat_rules.write("-A", external_chain, "-m", "comment", "--comment",
                            f'"route LOCAL traffic for {name} external destinations"',
                            "-m", "addrtype", "--src-type", "LOCAL", "-j", svc.cluster_chain)
        if has_external:
            nat_rules.write("-A", external_chain, "-j", external_policy_chain)

    # Set up firewall chain, if needed.
    if uses_fw_chain:
        fw = svc.firewall_chain
        nat_chains.write(chain_line(fw))
        sync.active_nat_chains.add(fw)
        head = ["-A", fw, "-m", "comment", "--comment", f'"{name} loadbalancer IP"']
        allow_from_node = False
        for cidr in svc.source_ranges:
            nat_rules.write(head, "-s", str(cidr), "-j", external_chain)
            allow_from_node = allow_from_node or sync.node_ip in cidr
        if allow_from_node:
            for ip in svc.load_balancer_vips:
                nat_rules.write(head, "-s", str(ip), "-j", external_chain)
        nat_rules.write("-A", fw, "-m", "comment", "--comment",
                        f'"other traffic to {name} will be dropped by KUBE-PROXY-FIREWALL"')

    if uses_cluster_chain:
        nat_chains.write(chain_line(svc.cluster_chain))
        sync.active_nat_chains.add(svc.cluster_chain)
        _write_service_to_endpoint_rules(sync, nat_rules, svc, svc.cluster_chain, cats.cluster)
    if uses_local_chain:
        nat_chains.write(chain_line(svc.local_chain))
        sync.active_nat_chains.add(svc.local_chain)
        _write_service_to_endpoint_rules(sync, nat_rules, svc, svc.local_chain, cats.local)

    # Generate the per-endpoint chains.
    for ep in cats.reachable:
        nat_chains.write(chain_line(ep.chain))
        sync.active_nat_chains.add(ep.chain)
        args = sync.comment(["-A", ep.chain], name)
        nat_rules.write(args, "-s", str(ep.ip), "-j", KUBE_MARK_MASQ)
        if svc.sticky_seconds is not None:
            args = [*args, "-m", "recent", "--name", ep.chain, "--set"]
        nat_rules.write(args, match, "-j", "DNAT", "--to-destination", ep.string)


def _write_service_to_endpoint_rules(sync: _Sync, nat_rules: _Buffer, svc: PortInfo, chain: str,
                                     endpoints: Sequence[EndpointInfo]) -> None:
    """``writeServiceToEndpointRules``: affinity checks, then the ``--probability`` cascade."""
    if svc.sticky_seconds is not None:
        for ep in endpoints:
            args = sync.comment(["-A", chain], f'"{svc.name} -> {ep.string}"')
            nat_rules.write(args, "-m", "recent", "--name", ep.chain, "--rcheck",
                            "--seconds", str(svc.sticky_seconds), "--reap", "-j", ep.chain)
    count = len(endpoints)
    for i, ep in enumerate(endpoints):
        args = sync.comment(["-A", chain], f'"{svc.name} -> {ep.string}"')
        if i < count - 1:
            args += ["-m", "statistic", "--mode", "random", "--probability", probability(count - i)]
        nat_rules.write(args, "-j", ep.chain)
