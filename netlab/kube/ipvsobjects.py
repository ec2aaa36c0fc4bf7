"""What kube-proxy's IPVS mode programs, as values: the node it runs on, IPVS virtual and
real servers, and the whole state of one sync.

``VirtualServer`` / ``RealServer`` are ``pkg/proxy/ipvs/util/ipvs.go``'s types with the
fields ``syncProxyRules`` sets (and the fake of ``pkg/proxy/ipvs/util/testing/fake.go``
stores); the flag values are ``FlagPersistent`` / ``FlagHashed`` / ``FlagSourceHash``
of that file. :class:`IPVSNode` gathers what the ``Proxier`` reads of its host
(``hostname``, the addresses netlink lists outside ``kube-ipvs0``, the interface
addresses ``--nodeport-addresses`` is matched against, the scheduler, the mark).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netlab.kube.ipset import Entry

FLAG_PERSISTENT = 0x1
"""``utilipvs.FlagPersistent``: ClientIP session affinity (with ``timeout``)."""
FLAG_HASHED = 0x2
"""``utilipvs.FlagHashed``: set by the kernel on read-back, never by kube-proxy."""
FLAG_SOURCE_HASH = 0x10
"""``utilipvs.FlagSourceHash``: set for the ``mh`` scheduler."""

DUMMY_DEVICE = "kube-ipvs0"
"""``defaultDummyDevice``: where service addresses are bound."""
DEFAULT_SCHEDULER = "rr"
"""``defaultScheduler``."""


@dataclass(frozen=True)
class IPVSNode:
    """The proxy's host as the IPVS ``Proxier`` sees it (IPv4 only).

    ``local_addresses``: ``netlinkHandle.GetAllLocalAddressesExcept("kube-ipvs0")``, i.e.
    the node's addresses on other devices (loopback ones are dropped, as the netlink handle
    drops them). ``interface_addresses``: what ``networkInterfacer`` reports, consulted only
    when ``node_port_addresses`` does not match everything (``NodePortAddresses.GetNodeIPs``).
    ``node_port_addresses``: ``--nodeport-addresses`` (empty, or holding ``0.0.0.0/0``,
    means every address). ``node_ip``: ``Proxier.nodeIP`` (``None`` as in the unit tests),
    used to let the node reach a load balancer with source ranges. ``masquerade_mark``
    is the mark string (the tests' fake proxier leaves it empty). ``local_detector_cidr``
    is ``--cluster-cidr`` for the local-traffic detector (``None``: no detector).
    """

    hostname: str
    local_addresses: tuple[str, ...] = ()
    interface_addresses: tuple[str, ...] = ()
    node_port_addresses: tuple[str, ...] = ()
    node_ip: str | None = None
    scheduler: str = DEFAULT_SCHEDULER
    masquerade_mark: str = "0x4000"
    masquerade_all: bool = False
    local_detector_cidr: str | None = None
    random_fully: bool = False


@dataclass(frozen=True, order=True)
class RealServer:
    """``utilipvs.RealServer``: one destination of a virtual server."""

    address: str
    port: int
    weight: int = 1

    def string(self) -> str:
        """``RealServer.String()``: ``ip:port`` (``net.JoinHostPort``)."""
        return f"{self.address}:{self.port}"


@dataclass(frozen=True)
class VirtualServer:
    """``utilipvs.VirtualServer`` with its real servers (sorted by ``ip:port``, as the fake keeps them)."""

    address: str
    protocol: str
    port: int
    scheduler: str
    flags: int = 0
    timeout: int = 0
    real_servers: tuple[RealServer, ...] = ()

    @property
    def key(self) -> tuple[str, int, str]:
        """``ipvstest.ServiceKey``: ``(IP, Port, Protocol)``."""
        return (self.address, self.port, self.protocol)


@dataclass(frozen=True)
class IPVSState:
    """Everything one ``syncProxyRules`` leaves behind.

    ``virtual_servers`` in the order they were programmed; ``bound_addresses``: the
    addresses on ``kube-ipvs0`` (sorted); ``ipsets``: each set's entries (every set of
    ``ipsetInfo`` present, sorted by entry string); ``iptables``: the
    ``iptables-restore`` input (nat table, then filter table).
    """

    virtual_servers: tuple[VirtualServer, ...]
    bound_addresses: tuple[str, ...]
    ipsets: tuple[tuple[str, tuple[Entry, ...]], ...]
    iptables: str
    no_node_access: tuple[Entry, ...] = field(default=())

    def entries(self, set_name: str) -> tuple[Entry, ...]:
        """The entries of ``set_name``. Raises KeyError for a set kube-proxy does not create."""
        for name, entries in self.ipsets:
            if name == set_name:
                return entries
        raise KeyError(set_name)

    def entry_strings(self, set_name: str) -> list[str]:
        """``ipset list`` of ``set_name``: its entries' strings, sorted."""
        return sorted(e.string() for e in self.entries(set_name))

    def virtual_server(self, address: str, port: int, protocol: str) -> VirtualServer | None:
        """The virtual server at ``address:port/protocol``, if one was programmed."""
        return next((vs for vs in self.virtual_servers if vs.key == (address, port, protocol)), None)
