"""Model → plan: what Docker would program on each node, rule by rule.

The rules follow libnetwork's ``service_linux.go`` (see
``shared/reference/swarm-ingress-and-kube-proxy.md`` §1): the host's
``DOCKER-INGRESS`` chains, the ingress sandbox's marks, SNAT and IPVS
fwmark services, the overlay's bridge, VXLAN and static peer entries, and
each task's REDIRECT and port filter. Where Docker inserts (``-I``), the plan
lists the rules in the order the kernel ends up holding them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from netlab import ipam
from netlab.ipam import Allocations
from netlab.model import Lab, PublishedPort, Service, Task
from netlab.plan import dns, names, overlay
from netlab.plan.types import (
    Address, Bridge, ChainPolicy, FdbEntry, IpvsDest, IpvsService, Match, Neighbour,
    Netns, Plan, Route, Rule, Sysctl, Table, Target, Veth, VethEnd, Vxlan,
)

from netlab.plan.sysctls import HOST_SYSCTLS, LB_SYSCTLS, NO_IPV6  # noqa: F401 (re-exported)


def _mark(fwmark: int) -> Target:
    return Target("MARK", (("set-xmark", f"{fwmark:#x}/0xffffffff"),))


def _port_match(proto: str, key: str, port: int) -> Match:
    return Match(proto, ((key, str(port)),))


def _publish_tag(port: PublishedPort) -> str:
    return f"publish/{port.published}" + ("" if port.protocol == "tcp" else f"/{port.protocol}")


@dataclass
class _Builder:
    """Collects plan items; one instance per build, thrown away after."""

    lab: Lab
    addr: Allocations
    items: dict[str, list[Any]] = field(default_factory=lambda: {
        k: [] for k in ("netns", "bridges", "veths", "vxlans", "addresses", "routes",
                        "neighbours", "fdb", "sysctls", "user_chains", "policies",
                        "rules", "ipvs", "etc_files")})
    # Only the items in these namespaces (None: all); see build_plan.
    scope: frozenset[str] | None = None
    # (overlay netns, peer IP, MAC, VTEP) -> its neighbour and FDB entry: shared by
    # the builds of one change, so an entry both plans hold is one object in both.
    memo: dict[tuple[str, str, str, str], tuple[Neighbour, FdbEntry]] | None = None
    # Computed once per build, read by every node (a 1,000-task lab has 32 of them).
    _peers: list[tuple[str, str, str, str]] | None = None
    _dests: dict[str, tuple[IpvsDest, ...]] = field(default_factory=dict)

    def tag(self, obj: str) -> str:
        return f"netlab:{self.lab.name}:{obj}"

    def add(self, kind: str, *objs: object) -> None:
        self.items[kind].extend(objs)

    def rule(self, netns: str, table: Table, chain: str, target: Target, obj: str, **kw: Any) -> None:
        self.add("rules", Rule(netns=netns, table=table, chain=chain, target=target,
                               comment=self.tag(obj), **kw))

    # -- the physical side -------------------------------------------------
    def lan(self) -> None:
        lab = self.lab.name
        lan, client = names.lan_ns(lab), names.client_ns(lab)
        self.add("netns", Netns(lan, "lan", "lan"), Netns(client, "client", "client"))
        self.add("bridges", Bridge(lan, names.LAN_BRIDGE, self.lab.underlay.lan_mtu))
        self.add("veths", Veth(VethEnd(lan, names.lan_port("client"), master=names.LAN_BRIDGE),
                               VethEnd(client, "eth0", ipam.mac_for(self.addr.client_ip)),
                               self.lab.underlay.lan_mtu))
        self.address(client, "eth0", self.addr.client_ip, self.lab.underlay.lan)

    def node(self, node: str) -> None:
        lab, a = self.lab.name, self.addr.nodes[node]
        host, lan = names.node_ns(lab, node), names.lan_ns(lab)
        self.add("netns", Netns(host, node, "host", node))
        self.add("veths", Veth(VethEnd(lan, names.lan_port(node), master=names.LAN_BRIDGE),
                               VethEnd(host, "eth0", ipam.mac_for(a.lan_ip)),
                               self.lab.underlay.lan_mtu))
        self.address(host, "eth0", a.lan_ip, self.lab.underlay.lan)
        self.address(host, names.GWBRIDGE, a.gateway_ip, self.lab.underlay.gwbridge)
        self.add("bridges", Bridge(host, names.GWBRIDGE))
        self.add("sysctls", *(Sysctl(host, k, v) for k, v in HOST_SYSCTLS))
        if self.scope is None or host in self.scope:
            self.host_rules(node)
        self.sandbox(node)
        self.overlay(node)
        overlay.networks_on_node(self, node)

    def address(self, ns: str, ifname: str, ip: IPv4Address, subnet: IPv4Network) -> None:
        """An address with its broadcast, as netlink's AddrAdd gives Docker's."""
        plen = subnet.prefixlen
        brd = str(subnet.broadcast_address) if plen < 31 else None
        self.add("addresses", Address(ns, ifname, f"{ip}/{plen}", brd))

    def host_rules(self, node: str) -> None:
        """What a Docker 20.10 node holds after ``swarm init`` and the services.

        The bridge driver's chains for docker_gwbridge (``enable_icc=false``,
        masquerade on), ``DOCKER-USER``, and ``initIngressConfiguration`` +
        ``generateIngressRules``, in the order the kernel ends up holding
        them. docker0 and its rules are left out: no task uses it.
        """
        ns = names.node_ns(self.lab.name, node)
        gw, subnet = names.GWBRIDGE, str(self.lab.underlay.gwbridge)
        sbox_gw = self.addr.nodes[node].sandbox_gw_ip
        ingress, docker, bridge = (f"node/{node}:ingress", f"node/{node}:docker",
                                   f"node/{node}:gwbridge")
        user = f"node/{node}:docker-user"
        self.add("user_chains", *((ns, "nat", c) for c in ("DOCKER", "DOCKER-INGRESS")),
                 *((ns, "filter", c) for c in ("DOCKER", "DOCKER-INGRESS", "DOCKER-ISOLATION-STAGE-1",
                                               "DOCKER-ISOLATION-STAGE-2", "DOCKER-USER")))
        self.add("policies", ChainPolicy(ns, "filter", "FORWARD", "DROP"))
        local_dst = (Match("addrtype", (("dst-type", "LOCAL"),)),)
        jump = Target
        # nat
        self.rule(ns, "nat", "PREROUTING", jump("DOCKER-INGRESS"), ingress, matches=local_dst)
        self.rule(ns, "nat", "PREROUTING", jump("DOCKER"), docker, matches=local_dst)
        self.rule(ns, "nat", "OUTPUT", jump("DOCKER-INGRESS"), ingress, matches=local_dst)
        self.rule(ns, "nat", "OUTPUT", jump("DOCKER"), docker, dst="!127.0.0.0/8",
                  matches=local_dst)
        self.rule(ns, "nat", "POSTROUTING", Target("MASQUERADE"), ingress, out_iface=gw,
                  matches=(Match("addrtype", (("src-type", "LOCAL"),)),))
        self.rule(ns, "nat", "POSTROUTING", Target("MASQUERADE"), bridge, src=subnet,
                  out_iface=f"!{gw}")
        self.rule(ns, "nat", "DOCKER", Target("RETURN"), bridge, in_iface=gw)
        # filter: FORWARD's jumps, then docker_gwbridge's own rules (icc=false last)
        self.rule(ns, "filter", "FORWARD", jump("DOCKER-USER"), user)
        self.rule(ns, "filter", "FORWARD", jump("DOCKER-INGRESS"), ingress)
        self.rule(ns, "filter", "FORWARD", jump("DOCKER-ISOLATION-STAGE-1"), docker)
        self.rule(ns, "filter", "FORWARD", Target("ACCEPT"), bridge, out_iface=gw,
                  matches=(Match("conntrack", (("ctstate", "RELATED,ESTABLISHED"),)),))
        self.rule(ns, "filter", "FORWARD", jump("DOCKER"), bridge, out_iface=gw)
        self.rule(ns, "filter", "FORWARD", Target("ACCEPT"), bridge, in_iface=gw,
                  out_iface=f"!{gw}")
        self.rule(ns, "filter", "FORWARD", Target("DROP"), bridge, in_iface=gw, out_iface=gw)
        # Docker inserts each port's rules at the top: the last published is first.
        for service, port in reversed(self.published()):
            pobj = f"svc/{service.name}:{_publish_tag(port)}"
            p = port.protocol
            self.rule(ns, "nat", "DOCKER-INGRESS",
                      Target("DNAT", (("to-destination", f"{sbox_gw}:{port.published}"),)),
                      pobj, proto=p, matches=(_port_match(p, "dport", port.published),))
            self.rule(ns, "filter", "DOCKER-INGRESS", Target("ACCEPT"), pobj, proto=p,
                      matches=(_port_match(p, "dport", port.published),))
            # "-m state -p P --sport N --state ESTABLISHED,RELATED", as 20.10 writes it
            self.rule(ns, "filter", "DOCKER-INGRESS", Target("ACCEPT"), pobj, proto=p,
                      matches=(Match("state", (("state", "RELATED,ESTABLISHED"),)),
                               _port_match(p, "sport", port.published)))
        self.rule(ns, "nat", "DOCKER-INGRESS", Target("RETURN"), ingress)
        self.rule(ns, "filter", "DOCKER-INGRESS", Target("RETURN"), ingress)
        self.rule(ns, "filter", "DOCKER-ISOLATION-STAGE-1", jump("DOCKER-ISOLATION-STAGE-2"),
                  bridge, in_iface=gw, out_iface=f"!{gw}")
        self.rule(ns, "filter", "DOCKER-ISOLATION-STAGE-1", Target("RETURN"), docker)
        self.rule(ns, "filter", "DOCKER-ISOLATION-STAGE-2", Target("DROP"), bridge, out_iface=gw)
        self.rule(ns, "filter", "DOCKER-ISOLATION-STAGE-2", Target("RETURN"), docker)
        self.rule(ns, "filter", "DOCKER-USER", Target("RETURN"), user)

    def published(self) -> list[tuple[Service, PublishedPort]]:
        return [(s, p) for s in self.lab.services for p in s.ingress_ports]

    # -- the ingress sandbox ------------------------------------------------
    def sandbox(self, node: str) -> None:
        lab, a = self.lab.name, self.addr.nodes[node]
        ns, host = names.sandbox_ns(lab, node), names.node_ns(lab, node)
        ov = names.overlay_ns(lab, node)
        ing = self.lab.ingress
        self.add("netns", Netns(ns, f"{node}/{names.SANDBOX}", "sandbox", node))
        self.add("veths",
                 Veth(VethEnd(ov, names.veth_for(a.sandbox_ip), master="br0"),
                      VethEnd(ns, "eth0", ipam.mac_for(a.sandbox_ip)), ing.mtu),
                 Veth(VethEnd(host, names.veth_for(a.sandbox_gw_ip), master=names.GWBRIDGE),
                      VethEnd(ns, "eth1", ipam.mac_for(a.sandbox_gw_ip))))
        self.address(ns, "eth0", a.sandbox_ip, ing.subnet)
        for service in self.lab.services:
            if service.name in self.addr.services:
                self.add("addresses", Address(ns, "eth0", f"{self.addr.services[service.name].vip}/32"))
        self.address(ns, "eth1", a.sandbox_gw_ip, self.lab.underlay.gwbridge)
        self.add("routes", Route(ns, "default", str(a.gateway_ip), "eth1"))
        self.add("sysctls", *(Sysctl(ns, k, v) for k, v in NO_IPV6 + LB_SYSCTLS))
        obj = f"node/{node}:{names.SANDBOX}"
        for service in self.lab.services:
            if service.name not in self.addr.services:
                continue
            sa = self.addr.services[service.name]
            for port in service.ingress_ports:
                self.rule(ns, "mangle", "PREROUTING", _mark(sa.fwmark),
                          f"svc/{service.name}:{_publish_tag(port)}", proto=port.protocol,
                          matches=(_port_match(port.protocol, "dport", port.published),))
            self.rule(ns, "mangle", "INPUT", _mark(sa.fwmark), f"svc/{service.name}:vip",
                      dst=f"{sa.vip}/32")
            self.add("ipvs", IpvsService(ns, sa.fwmark, "rr", self.ipvs_dests(service.name),
                                         service.name))
        self.rule(ns, "nat", "POSTROUTING",
                  Target("SNAT", (("to-source", str(a.sandbox_ip)),)), obj,
                  dst=str(ing.subnet), matches=(Match("ipvs", (("ipvs", ""),)),))

    def ipvs_dests(self, service: str) -> tuple[IpvsDest, ...]:
        """The ingress address of each task of ``service``: the same on every node."""
        if service not in self._dests:
            self._dests[service] = tuple(IpvsDest(str(self.addr.tasks[t.name].ingress_ip))
                                         for t in self.lab.tasks_of(service))
        return self._dests[service]

    # -- the ingress overlay ------------------------------------------------
    def endpoints(self) -> list[tuple[str, str]]:
        """(node, ingress IP) of every endpoint on the overlay: sandboxes, then tasks."""
        eps = [(n.name, str(self.addr.nodes[n.name].sandbox_ip)) for n in self.lab.nodes]
        eps += [(t.node, str(self.addr.tasks[t.name].ingress_ip)) for t in self.lab.tasks
                if self.addr.tasks[t.name].ingress_ip is not None]
        return eps

    def overlay(self, node: str) -> None:
        lab, ing = self.lab.name, self.lab.ingress
        ov, host = names.overlay_ns(lab, node), names.node_ns(lab, node)
        self.add("netns", Netns(ov, f"{node}/ov-{ing.name}", "overlay", node))
        self.add("bridges", Bridge(ov, "br0", ing.mtu))
        self.address(ov, "br0", ing.gateway, ing.subnet)
        self.add("sysctls", *(Sysctl(ov, k, v) for k, v in NO_IPV6))
        self.add("vxlans", Vxlan(ov, host, "vxlan0", self.addr.vnis[ing.name],
                                 self.lab.underlay.data_path_port, ing.mtu, "br0"))
        peers = [p for p in self.overlay_peers() if p[0] != node]
        if self.memo is None:
            self.add("neighbours", *(Neighbour(ov, "vxlan0", ip, mac) for _n, ip, mac, _v in peers))
            self.add("fdb", *(FdbEntry(ov, "vxlan0", mac, vtep) for _n, _ip, mac, vtep in peers))
            return
        memo, entries = self.memo, []
        for _n, ip, mac, vtep in peers:
            key = (ov, ip, mac, vtep)
            pair = memo.get(key)
            if pair is None:
                pair = memo[key] = (Neighbour(ov, "vxlan0", ip, mac), FdbEntry(ov, "vxlan0", mac, vtep))
            entries.append(pair)
        self.items["neighbours"].extend([n for n, _f in entries])
        self.items["fdb"].extend([f for _n, f in entries])

    def overlay_peers(self) -> list[tuple[str, str, str, str]]:
        """(node, ingress IP, MAC, VTEP) of every endpoint on the ingress overlay."""
        if self._peers is None:     # endpoints()'s order, its addresses not parsed back
            nodes, tasks = self.addr.nodes, self.addr.tasks
            vtep = {n: str(a.lan_ip) for n, a in nodes.items()}
            ips = [(n.name, nodes[n.name].sandbox_ip) for n in self.lab.nodes]
            ips += [(t.node, ip) for t in self.lab.tasks
                    if (ip := tasks[t.name].ingress_ip) is not None]
            self._peers = [(n, str(ip), ipam.mac_for(ip), vtep[n]) for n, ip in ips]
        return self._peers

    # -- tasks --------------------------------------------------------------
    def task(self, task: Task) -> None:
        """A task's namespace: its networks in libnetwork's join order (eth0 the first,
        ingress when the service is on it; eth1 docker_gwbridge; eth2… the others)."""
        lab, ing = self.lab.name, self.lab.ingress
        ta, na = self.addr.tasks[task.name], self.addr.nodes[task.node]
        service = self.lab.service(task.service)
        ns = names.task_ns(lab, task.name)
        self.add("netns", Netns(ns, task.name, "task", task.node))
        gw = Veth(VethEnd(names.node_ns(lab, task.node), names.veth_for(ta.gw_ip),
                          master=names.GWBRIDGE),
                  VethEnd(ns, "eth1", ipam.mac_for(ta.gw_ip)))
        first, *others = service.attachments
        if first == ing.name and ta.ingress_ip is not None:
            self.add("veths",
                     Veth(VethEnd(names.overlay_ns(lab, task.node), names.veth_for(ta.ingress_ip),
                                  master="br0"),
                          VethEnd(ns, "eth0", ipam.mac_for(ta.ingress_ip)), ing.mtu), gw)
            self.address(ns, "eth0", ta.ingress_ip, ing.subnet)
            self.address(ns, "eth1", ta.gw_ip, self.lab.underlay.gwbridge)
        else:
            overlay.attach_task(self, task, first, "eth0")
            self.add("veths", gw)
            self.address(ns, "eth1", ta.gw_ip, self.lab.underlay.gwbridge)
        for i, network in enumerate(others, start=2):
            overlay.attach_task(self, task, network, f"eth{i}")
        self.add("sysctls", *(Sysctl(ns, k, v) for k, v in NO_IPV6))
        self.add("routes", Route(ns, "default", str(na.gateway_ip), "eth1"))
        if ta.ingress_ip is not None:
            self.redirect_rules(task, ns, f"{ta.ingress_ip}/32")
        self.embedded_dns(task, ns, self.hosts_address(task))
        if service.host_ports:
            self.host_port_mappings(task)

    def hosts_address(self, task: Task) -> str:
        """The address a task's /etc/hosts gives its own name: on its first user
        network (Docker keeps ingress endpoints out of /etc/hosts), else ingress."""
        service = self.lab.service(task.service)
        for network in service.networks:
            return str(self.addr.networks[network].tasks[task.name])
        return str(self.addr.tasks[task.name].ingress_ip)

    def embedded_dns(self, task: Task, ns: str, ip: str) -> None:
        """The resolver's NAT rules (``setupIptablesNAT``) and the task's resolv.conf and hosts."""
        chains, rules = dns.nat_rules(ns, dns.task_dns_port(self.lab, task),
                                      self.tag(f"task/{task.name}:dns"))
        self.add("user_chains", *((ns, "nat", c) for c in chains))
        self.add("rules", *rules)
        self.add("etc_files", *dns.etc_files(ns, ip, task.name))

    def redirect_rules(self, task: Task, ns: str, ip: str) -> None:
        """``addRedirectRules``: REDIRECT published→target, accept target, drop the rest."""
        service = self.lab.service(task.service)
        accept_in, accept_out = [], []
        for port in service.ingress_ports:
            p, obj = port.protocol, f"task/{task.name}:{_publish_tag(port)}"
            self.rule(ns, "nat", "PREROUTING", Target("REDIRECT", (("to-ports", str(port.target)),)),
                      obj, dst=ip, proto=p, matches=(_port_match(p, "dport", port.published),))
            accept_in.append((p, port.target, obj))
            accept_out.append((p, port.target, obj))
        # Docker inserts the accepts (-I), so the last port's rule ends up first.
        for p, target, obj in reversed(accept_in):
            self.rule(ns, "filter", "INPUT", Target("ACCEPT"), obj, dst=ip, proto=p,
                      matches=(_port_match(p, "dport", target),
                               Match("conntrack", (("ctstate", "NEW,ESTABLISHED"),))))
        for p, target, obj in reversed(accept_out):
            self.rule(ns, "filter", "OUTPUT", Target("ACCEPT"), obj, src=ip, proto=p,
                      matches=(_port_match(p, "sport", target),
                               Match("conntrack", (("ctstate", "ESTABLISHED"),))))
        obj = f"task/{task.name}:ingress"
        for proto in ("sctp", "udp", "tcp"):
            self.rule(ns, "filter", "INPUT", Target("DROP"), obj, dst=ip, proto=proto)
            self.rule(ns, "filter", "OUTPUT", Target("DROP"), obj, src=ip, proto=proto)

    def host_port_mappings(self, task: Task) -> None:
        """The bridge driver's port mapping for each host-mode port of ``task``, on its node only.

        swarmkit hands host-mode ports to the task's docker_gwbridge endpoint
        (``setupDefaultGW`` → ``CreateOptionPortMapping``), so they become the
        bridge driver's ordinary mappings to the task's gwbridge address. The
        rules are the 20.10 form: libnetwork ``iptables.ChainInfo.Forward``
        (``Append``, userland proxy on so no hairpin mode, host IP 0.0.0.0 so
        ``-d 0/0``, which iptables-save omits), called by the portmapper per
        binding in the binding's order:

        * nat ``-A DOCKER ! -i docker_gwbridge -p P --dport PUBLISHED -j DNAT
          --to-destination IP:TARGET`` (after the chain's ``-i docker_gwbridge
          -j RETURN``),
        * filter ``-A DOCKER -d IP/32 ! -i docker_gwbridge -o docker_gwbridge -p P
          --dport TARGET -j ACCEPT`` (20.10's filter DOCKER holds only these),
        * nat ``-A POSTROUTING -s IP/32 -d IP/32 -p P --dport TARGET -j
          MASQUERADE`` (the hairpin: the task reaching itself through the node).

        No SNAT on the way in: the task sees the client's own address. The
        task's own filter drops tcp/udp only to its ingress address, so its
        gwbridge address is open. A node without the task gets nothing, and
        its kernel refuses the port.
        """
        ns = names.node_ns(self.lab.name, task.node)
        gw, ip = names.GWBRIDGE, str(self.addr.tasks[task.name].gw_ip)
        for port in self.lab.service(task.service).host_ports:
            p = port.protocol
            obj = f"task/{task.name}:host/{port.published}" + ("" if p == "tcp" else f"/{p}")
            self.rule(ns, "nat", "DOCKER",
                      Target("DNAT", (("to-destination", f"{ip}:{port.target}"),)), obj,
                      in_iface=f"!{gw}", proto=p, matches=(_port_match(p, "dport", port.published),))
            self.rule(ns, "filter", "DOCKER", Target("ACCEPT"), obj, dst=f"{ip}/32",
                      in_iface=f"!{gw}", out_iface=gw, proto=p,
                      matches=(_port_match(p, "dport", port.target),))
            self.rule(ns, "nat", "POSTROUTING", Target("MASQUERADE"), obj, src=f"{ip}/32",
                      dst=f"{ip}/32", proto=p, matches=(_port_match(p, "dport", port.target),))

    def build(self) -> Plan:
        scope, lab = self.scope, self.lab.name
        if scope is None or not scope.isdisjoint((names.lan_ns(lab), names.client_ns(lab))):
            self.lan()
        # A node writes in its own namespaces and the LAN; a task in its own and its node's.
        hit = {n.name for n in self.lab.nodes
               if scope is None or not scope.isdisjoint(node_namespaces(self.lab, n.name))}
        for node in self.lab.nodes:
            if node.name in hit or (scope is not None and names.lan_ns(lab) in scope):
                self.node(node.name)
        # In a scope, a task is built when its namespace is in it, or its node's host
        # namespace and it has host-mode ports there (rules in the host's tables): in
        # other namespaces (its node's host and overlays) it holds only its veths' ends.
        hosts = {n.name for n in self.lab.nodes
                 if scope is None or names.node_ns(lab, n.name) in scope}
        for task in self.lab.tasks:
            if scope is None or names.task_ns(lab, task.name) in scope or (
                    task.node in hosts and self.lab.service(task.service).host_ports):
                self.task(task)
        if scope is not None:
            self.items = {k: _within(k, v, scope) for k, v in self.items.items()}
        rules = sorted(self.items["rules"], key=_chain_order_key(self.items["rules"]))
        self.items["rules"] = rules
        return Plan(lab=self.lab.name, **{k: tuple(v) for k, v in self.items.items()})


def node_namespaces(lab: Lab, node: str) -> tuple[str, ...]:
    """The namespaces of ``node`` (host, ingress_sbox, ingress overlay, and the overlay
    and LB sandbox of each user network a task on it is attached to, see
    :func:`netlab.plan.overlay.networks_on`): what building the node or a task on it writes."""
    name = lab.name
    return (names.node_ns(name, node), names.sandbox_ns(name, node), names.overlay_ns(name, node),
            *(ns for net in overlay.networks_on(lab, node)
              for ns in (names.overlay_ns(name, node, net.name), names.lb_ns(name, node, net.name))))


def _within(kind: str, items: list[Any], scope: frozenset[str]) -> list[Any]:
    """The plan items of ``kind`` that live in ``scope`` (a veth: either end), in order."""
    if kind == "veths":
        return [i for i in items if i.a.netns in scope or i.b.netns in scope]
    if kind == "user_chains":
        return [i for i in items if i[0] in scope]
    if kind == "netns":
        return [i for i in items if i.name in scope]
    return [i for i in items if i.netns in scope]


def _chain_order_key(rules: list[Rule]) -> Callable[[Rule], tuple[int, int]]:
    """Stable sort key that keeps each chain's rules in order but groups by chain."""
    first_seen: dict[tuple[str, str, str], int] = {}
    for r in rules:
        first_seen.setdefault((r.netns, r.table, r.chain), len(first_seen))
    index = {id(r): i for i, r in enumerate(rules)}
    return lambda r: (first_seen[(r.netns, r.table, r.chain)], index[id(r)])


def build_plan(lab: Lab, allocations: Allocations | None = None,
               scope: frozenset[str] | None = None,
               memo: dict[tuple[str, str, str, str], tuple[Neighbour, FdbEntry]] | None = None,
               ) -> Plan:
    """The desired state of ``lab`` with its ``allocations``.

    Without allocations, a fresh lab's are made (what ``netlab plan SCENARIO``
    shows); raises ipam.AddressSpaceExhausted when they do not fit. The same
    lab and allocations always give the same plan.

    With ``scope`` (namespace names, as :func:`netlab.plan.scope.change_scope`
    gives), only what lives there is built, for the cost of the nodes and tasks
    that write there, each kind in the whole plan's order: the whole plan cut down
    to ``scope`` (a veth stays when either end is in it), but for the veths of the
    tasks whose own namespace is outside it and that have no host-mode port on a
    host namespace in it (their veths' ends on their node's host and overlays are
    all they hold in the scope, the same before and after a change that keeps
    them). A change (scale, node) builds its two plans so. ``memo``,
    shared by two builds, makes the overlay entries both hold the same objects
    (a diff then finds them by identity; see :func:`netlab.kernel.apply.diff`).
    """
    return _Builder(lab, allocations if allocations is not None else ipam.allocate(lab),
                    scope=scope, memo=memo).build()


def netns_of(lab: Lab) -> tuple[Netns, ...]:
    """The namespaces of ``lab``'s plan, in plan order (``build_plan(lab).netns``),
    without building the rest: a change's state lists every namespace the lab owns."""
    name, ing = lab.name, lab.ingress
    out = [Netns(names.lan_ns(name), "lan", "lan"), Netns(names.client_ns(name), "client", "client")]
    for n in lab.nodes:
        node = n.name
        out += [Netns(names.node_ns(name, node), node, "host", node),
                Netns(names.sandbox_ns(name, node), f"{node}/{names.SANDBOX}", "sandbox", node),
                Netns(names.overlay_ns(name, node), f"{node}/ov-{ing.name}", "overlay", node)]
        for net in overlay.networks_on(lab, node):
            out += [Netns(names.overlay_ns(name, node, net.name), f"{node}/ov-{net.name}",
                          "overlay", node),
                    Netns(names.lb_ns(name, node, net.name), f"{node}/lb-{net.name}", "sandbox", node)]
    out += [Netns(names.task_ns(name, t.name), t.name, "task", t.node) for t in lab.tasks]
    return tuple(out)
