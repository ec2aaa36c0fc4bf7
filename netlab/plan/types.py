"""The desired kernel state of a lab, as plain frozen data.

A :class:`Plan` is the single source of truth: ``netlab plan`` prints it, the
golden tests compare it, :mod:`netlab.kernel` applies it and reads the kernel
back into the same shapes to find drift. Everything is keyed by the network
namespace it lives in; nothing here touches the kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any, Literal

NetnsRole = Literal["lan", "client", "host", "sandbox", "overlay", "task"]
Table = Literal["filter", "nat", "mangle"]

BUILTIN_CHAINS: dict[str, tuple[str, ...]] = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
}
TABLE_ORDER: tuple[str, ...] = ("mangle", "nat", "filter")


@dataclass(frozen=True)
class Netns:
    """A network namespace the lab owns.

    ``target`` is how users name it on the command line (``node1``,
    ``node1/ingress_sbox``, ``node1/ov-ingress``, ``hello-a.1``, ``client``,
    ``lan``); ``name`` is what ``ip netns list`` shows.
    """

    name: str
    target: str
    role: NetnsRole
    node: str | None = None


@dataclass(frozen=True)
class Bridge:
    netns: str
    name: str
    mtu: int = 1500


@dataclass(frozen=True)
class VethEnd:
    netns: str
    name: str
    mac: str | None = None
    master: str | None = None


@dataclass(frozen=True)
class Veth:
    """A veth pair; ``a`` is created first and ``b`` moved to its netns."""

    a: VethEnd
    b: VethEnd
    mtu: int = 1500


@dataclass(frozen=True)
class Vxlan:
    """A VXLAN device made in ``underlay_netns`` (so its UDP socket lives on
    the node's underlay, as Docker does) and moved into ``netns``."""

    netns: str
    underlay_netns: str
    name: str
    vni: int
    port: int
    mtu: int
    master: str
    learning: bool = True
    proxy: bool = True
    l2miss: bool = True
    l3miss: bool = True


@dataclass(frozen=True)
class Address:
    """An IPv4 address on an interface; ``broadcast`` as ``ip addr`` shows it (``brd``)."""

    netns: str
    ifname: str
    cidr: str
    broadcast: str | None = None


@dataclass(frozen=True)
class Route:
    netns: str
    dst: str            # "default" or a CIDR
    gateway: str | None
    ifname: str


@dataclass(frozen=True)
class Neighbour:
    """A permanent ARP entry (``ip neigh add IP lladdr MAC dev IF nud permanent``)."""

    netns: str
    ifname: str
    ip: str
    mac: str


@dataclass(frozen=True)
class FdbEntry:
    """A permanent FDB entry (``bridge fdb add MAC dev IF dst IP self permanent``)."""

    netns: str
    ifname: str
    mac: str
    dst: str


@dataclass(frozen=True)
class Sysctl:
    netns: str
    key: str            # dotted, e.g. net.ipv4.vs.conntrack
    value: str


@dataclass(frozen=True)
class Match:
    """An iptables match and its options, named as ``iptables-save`` prints them."""

    name: str
    options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Target:
    name: str
    options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Rule:
    """One iptables rule, in the position it holds in its chain.

    ``comment`` names the scenario object behind the rule (``netlab:…``); it is
    rendered as the last match, as ``-m comment --comment``. A leading ``!`` on
    ``src``, ``dst``, ``in_iface`` or ``out_iface`` negates it (``! -o docker_gwbridge``).
    """

    netns: str
    table: Table
    chain: str
    target: Target
    comment: str
    src: str | None = None
    dst: str | None = None
    in_iface: str | None = None
    out_iface: str | None = None
    proto: str | None = None
    matches: tuple[Match, ...] = ()


@dataclass(frozen=True)
class ChainPolicy:
    netns: str
    table: Table
    chain: str
    policy: Literal["ACCEPT", "DROP"]


@dataclass(frozen=True)
class IpvsDest:
    addr: str
    port: int = 0
    weight: int = 1
    forward: Literal["Masq", "Route", "Tunnel"] = "Masq"


@dataclass(frozen=True)
class IpvsService:
    """A firewall-mark virtual service, as libnetwork's ``addLBBackend`` makes."""

    netns: str
    fwmark: int
    scheduler: str
    dests: tuple[IpvsDest, ...]
    service: str


@dataclass(frozen=True)
class EtcFile:
    """``/etc/netns/<netns>/<name>``: what ``ip netns exec`` bind-mounts over ``/etc/<name>``
    (a task's ``resolv.conf`` and ``hosts``, as Docker writes a container's)."""

    netns: str
    name: str
    content: str


@dataclass(frozen=True)
class NetnsItems:
    """What a plan holds in one namespace, each kind in plan order.

    ``veths`` are the pairs with at least one end here; ``user_chains`` are
    the plan's ``(netns, table, chain)`` triples.
    """

    bridges: tuple[Bridge, ...] = ()
    vxlans: tuple[Vxlan, ...] = ()
    veths: tuple[Veth, ...] = ()
    addresses: tuple[Address, ...] = ()
    routes: tuple[Route, ...] = ()
    neighbours: tuple[Neighbour, ...] = ()
    fdb: tuple[FdbEntry, ...] = ()
    sysctls: tuple[Sysctl, ...] = ()
    user_chains: tuple[tuple[str, str, str], ...] = ()
    policies: tuple[ChainPolicy, ...] = ()
    rules: tuple[Rule, ...] = ()
    ipvs: tuple[IpvsService, ...] = ()
    etc_files: tuple[EtcFile, ...] = ()


_NOTHING = NetnsItems()
_BY_NETNS_ATTR = ("bridges", "vxlans", "addresses", "routes", "neighbours", "fdb", "sysctls",
                  "policies", "rules", "ipvs", "etc_files")


@dataclass(frozen=True)
class Plan:
    """Everything the kernel must hold for one lab."""

    lab: str
    netns: tuple[Netns, ...] = ()
    bridges: tuple[Bridge, ...] = ()
    veths: tuple[Veth, ...] = ()
    vxlans: tuple[Vxlan, ...] = ()
    addresses: tuple[Address, ...] = ()
    routes: tuple[Route, ...] = ()
    neighbours: tuple[Neighbour, ...] = ()
    fdb: tuple[FdbEntry, ...] = ()
    sysctls: tuple[Sysctl, ...] = ()
    user_chains: tuple[tuple[str, str, str], ...] = ()   # (netns, table, chain)
    policies: tuple[ChainPolicy, ...] = ()
    rules: tuple[Rule, ...] = ()
    ipvs: tuple[IpvsService, ...] = ()
    etc_files: tuple[EtcFile, ...] = ()

    @cached_property
    def _by_netns(self) -> dict[str, NetnsItems]:
        """Every item grouped by namespace, built once (one pass over the plan)."""
        groups: dict[str, dict[str, list[Any]]] = {}

        def put(netns: str, kind: str, item: object) -> None:
            if netns not in groups:
                groups[netns] = {f.name: [] for f in fields(NetnsItems)}
            groups[netns][kind].append(item)

        for kind in _BY_NETNS_ATTR:
            for item in getattr(self, kind):
                put(item.netns, kind, item)
        for veth in self.veths:
            put(veth.a.netns, "veths", veth)
            if veth.b.netns != veth.a.netns:
                put(veth.b.netns, "veths", veth)
        for triple in self.user_chains:
            put(triple[0], "user_chains", triple)
        return {ns: NetnsItems(**{k: tuple(v) for k, v in kinds.items()})
                for ns, kinds in groups.items()}

    def items_in(self, netns: str) -> NetnsItems:
        """What the plan holds in ``netns`` (nothing for a name it does not know).

        The first call indexes the whole plan; later calls cost a lookup, so
        rendering or applying N namespaces is linear, not N times the plan.
        """
        return self._by_netns.get(netns, _NOTHING)

    def namespace(self, target_or_name: str) -> Netns:
        """The namespace a user names by target (``node1/ingress_sbox``) or netns name.

        Raises KeyError when there is none.
        """
        for ns in self.netns:
            if target_or_name in (ns.target, ns.name):
                return ns
        raise KeyError(target_or_name)

    def rules_in(self, netns: str, table: str | None = None) -> tuple[Rule, ...]:
        """The rules of ``netns`` (of one ``table`` when given), in plan order."""
        rules = self.items_in(netns).rules
        return rules if table is None else tuple(r for r in rules if r.table == table)

    def tables_in(self, netns: str) -> tuple[str, ...]:
        """The iptables tables this plan programs in ``netns``, in save order."""
        items = self.items_in(netns)
        used: set[str] = {r.table for r in items.rules}
        used |= {t for _, t, _ in items.user_chains}
        used |= {p.table for p in items.policies}
        return tuple(t for t in TABLE_ORDER if t in used)
