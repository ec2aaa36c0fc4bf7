"""Address allocation that lives across changes, as Swarm's IPAM hands addresses out.

:func:`allocate` is incremental and deterministic: given the allocations a
lab already has, every node, service and task that is still there keeps its
addresses (and so its MACs, derived from them) and its firewall mark; new
ones get fresh ones. Each pool is allocated as libnetwork's IPAM does with
``com.docker.network.ipam.serial`` set (what Swarm sets for every network):
the bit sequence is scanned from the host number after the one handed out
last (``Bitmap.SetAnyInRange(start, end, serial=true)``), wrapping around to
the start of the range once its end is reached. A freed address is thus not
handed out again until the pool has wrapped. The cursor of each pool is part
of the allocations, so the next change starts where this one stopped.

Pools. Ingress network (global scope): ``.1`` is the gateway on ``br0``;
then, in a fresh lab, one ingress-sandbox (LB) address per node in node
order, then per service its VIP followed by its tasks' addresses.
docker_gwbridge (local scope, one pool per node): ``.1`` the host bridge,
``.2`` the ingress sandbox's ``eth1``, then the node's tasks. LAN: nodes from
host ``.11`` on; the client ``.2``. MACs are ``02:42:`` followed by the four
IP bytes, as libnetwork's ``GenerateMACFromIP``. Firewall marks count up
from 0x100, one per service with an ingress port, and never go back
(libnetwork's ``fwMarkCtr``). The ingress VNI is the scenario's (4096 by
default, the first VXLAN id Docker allocates).

User overlay networks (Compose ``networks:``), one pool each: ``.1`` the
gateway on ``br0``; then one LB endpoint per node (the ``lb-<net>``
sandbox's ``eth0``), then per service attached to it its VIP (``vip`` mode
only) followed by its tasks' addresses. Each (service, network) load
balancer takes the next firewall mark from the same counter as the ingress
ones, right after the service's ingress mark. VNIs come from 4096 up, serial
as swarmkit's ovmanager (``SetAnyInRange(4096, 1<<24-1, serial)``), skipping
the ingress network's: the first user network gets 4097.

A task is identified by its name *and* node: a task whose node changed is a
new task (Swarm starts a new one on the new node) and gets new addresses.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from netlab.errors import BadInput
from netlab.model import Lab, Service, Task

IPv4 = ipaddress.IPv4Address
IPv4Net = ipaddress.IPv4Network

FWMARK_BASE = 0x100
VNI_BASE, VNI_LAST = 4096, (1 << 24) - 1
LAN_NODE_OFFSET = 11
LAN_CLIENT_OFFSET = 2
INGRESS_GATEWAY = 1           # host numbers reserved in each pool
GWBRIDGE_HOST, GWBRIDGE_SANDBOX = 1, 2


class AddressSpaceExhausted(BadInput, ValueError):
    """A subnet is too small for what the scenario asks of it (exit 2).

    The scenario checks size every subnet for a fresh lab, so a validated
    lab allocated from nothing never raises this.
    """


def mac_for(ip: IPv4) -> str:
    """libnetwork's ``GenerateMACFromIP``: ``02:42:`` + the address bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ip.packed)


@dataclass(frozen=True)
class Pool:
    """One address pool and libnetwork's serial cursor over it.

    ``next`` is the host number (1 is the address after the network
    address) the next allocation tries first: one past the last handed out.
    """

    subnet: IPv4Net
    next: int


@dataclass(frozen=True)
class NodeAddresses:
    """What one node is given: its LAN address and its ingress sandbox's."""

    lan_ip: IPv4
    sandbox_ip: IPv4          # ingress_sbox eth0 on the ingress overlay
    gateway_ip: IPv4          # docker_gwbridge on the node (172.18.0.1)
    sandbox_gw_ip: IPv4       # ingress_sbox eth1 (172.18.0.2)


@dataclass(frozen=True)
class TaskAddresses:
    node: str                 # the node the addresses were given on
    ingress_ip: IPv4 | None   # eth0 on the ingress overlay; None: not on ingress
    gw_ip: IPv4               # eth1 on the node's docker_gwbridge


@dataclass(frozen=True)
class ServiceAddresses:
    vip: IPv4
    fwmark: int


@dataclass(frozen=True)
class NetworkAddresses:
    """What one user overlay network hands out, with its pool's cursor."""

    vni: int
    pool: Pool
    lb: dict[str, IPv4]                   # node -> its lb-<net> sandbox's eth0 (LB endpoint)
    vips: dict[str, ServiceAddresses]     # vip-mode service -> its VIP here and its fwmark
    tasks: dict[str, IPv4]                # task -> its address on this network


@dataclass(frozen=True)
class Allocations:
    """Every address, mark and VNI of a lab, keyed by node, service and task
    name, with the cursors the next allocation continues from."""

    client_ip: IPv4
    nodes: dict[str, NodeAddresses]
    services: dict[str, ServiceAddresses]
    tasks: dict[str, TaskAddresses]
    vnis: dict[str, int]                      # network -> VXLAN id
    ingress: Pool
    lan: Pool
    gwbridge: dict[str, Pool] = field(default_factory=dict)   # node -> its local pool
    next_fwmark: int = FWMARK_BASE
    networks: dict[str, NetworkAddresses] = field(default_factory=dict)   # user networks
    next_vni: int = VNI_BASE

    def addresses_of(self, task: str) -> tuple[IPv4, ...]:
        """Every overlay address of ``task`` (ingress, then user networks); KeyError if none."""
        ingress_ip = self.tasks[task].ingress_ip
        out: list[IPv4] = [] if ingress_ip is None else [ingress_ip]
        out += [n.tasks[task] for n in self.networks.values() if task in n.tasks]
        return tuple(out)

    def primary_ip(self, task: str, lab: Lab) -> IPv4:
        """The address of ``task``'s ``eth0``: on its first network (see Service.attachments)."""
        ta = self.tasks[task]
        if ta.ingress_ip is not None:
            return ta.ingress_ip
        service = lab.service(task.partition(".")[0])   # a service name has no dot
        return self.networks[service.networks[0]].tasks[task]


def host(subnet: IPv4Net, n: int, what: str) -> IPv4:
    """Host ``n`` of ``subnet`` (1 is the address after the network address), by arithmetic.

    The same as ``list(subnet.hosts())[n - 1]`` for a /30 or larger, without
    listing 2^29 addresses for a /3. Raises AddressSpaceExhausted naming
    ``what`` when ``n`` is past the last host (the broadcast address is not one).
    """
    if not 1 <= n <= subnet.num_addresses - 2:
        raise AddressSpaceExhausted(f"{subnet} has no address left for {what} "
                                    "(hint: use a larger subnet)")
    return subnet.network_address + n


class _Serial:
    """A pool being allocated from: the host numbers in use and the cursor.

    Costs what is in use, never the size of the subnet.
    """

    def __init__(self, subnet: IPv4Net, start: int, cursor: int, used: set[int]) -> None:
        self.subnet, self.start, self.last = subnet, start, subnet.num_addresses - 2
        self.used = used
        self.in_range = sum(1 for n in used if start <= n <= self.last)
        self.cursor = cursor if start <= cursor <= self.last + 1 else start

    def keep(self, ip: IPv4) -> bool:
        """Mark ``ip`` in use when it is a host of this pool's range; True when it is."""
        n = int(ip) - int(self.subnet.network_address)
        if not self.start <= n <= self.last or n in self.used:
            return False
        self.used.add(n)
        self.in_range += 1
        return True

    def take(self, what: str) -> IPv4:
        """The first free host at or after the cursor, wrapping around once;
        raises AddressSpaceExhausted naming ``what``."""
        if self.in_range >= self.last - self.start + 1:
            raise AddressSpaceExhausted(f"{self.subnet} has no address left for {what} "
                                        "(hint: use a larger subnet)")
        n = self.cursor
        while True:
            if n > self.last:
                n = self.start
            if n not in self.used:
                break
            n += 1
        self.used.add(n)
        self.in_range += 1
        self.cursor = n + 1
        return self.subnet.network_address + n

    def pool(self) -> Pool:
        return Pool(self.subnet, self.cursor)


def _pool(old: Pool | None, subnet: IPv4Net, start: int, fresh: int,
          reserved: set[int]) -> tuple[_Serial, bool]:
    """A serial allocator for ``subnet``, continuing the previous pool ``old`` when it is
    the same subnet; the second value says whether previous addresses in it may be kept."""
    if old is not None and old.subnet == subnet:
        return _Serial(subnet, start, old.next, set(reserved)), True
    return _Serial(subnet, start, fresh, set(reserved)), False


def allocate(lab: Lab, previous: Allocations | None = None) -> Allocations:
    """Allocate every address of ``lab``, keeping what ``previous`` gave to what is still
    there; raises AddressSpaceExhausted.

    With ``previous=None`` this is a fresh lab's allocation. Deterministic:
    the same lab and previous allocations give the same result.
    """
    ing, lan, gwnet = lab.ingress.subnet, lab.underlay.lan, lab.underlay.gwbridge
    if lan.num_addresses - 2 < LAN_NODE_OFFSET - 1 + len(lab.nodes):
        raise AddressSpaceExhausted(f"{lan} is too small for {len(lab.nodes)} nodes "
                                    "(hint: use a larger subnet)")
    ingress, keep_ingress = _pool(previous.ingress if previous else None, ing, 1, INGRESS_GATEWAY + 1,
                                  {INGRESS_GATEWAY})
    lan_pool, keep_lan = _pool(previous.lan if previous else None, lan, LAN_NODE_OFFSET,
                               LAN_NODE_OFFSET, set())
    gw: dict[str, _Serial] = {}
    keep_gw: dict[str, bool] = {}
    for node in lab.nodes:
        gw[node.name], keep_gw[node.name] = _pool(
            previous.gwbridge.get(node.name) if previous else None, gwnet, 1, GWBRIDGE_SANDBOX + 1,
            {GWBRIDGE_HOST, GWBRIDGE_SANDBOX})
    old_nodes = previous.nodes if previous else {}
    old_services = previous.services if previous else {}
    old_tasks = previous.tasks if previous else {}

    # What stays keeps its addresses: mark them all in use before anything new is taken.
    kept_lan = {n.name for n in lab.nodes
                if keep_lan and n.name in old_nodes and lan_pool.keep(old_nodes[n.name].lan_ip)}
    kept_sbox = {n.name for n in lab.nodes if keep_ingress and n.name in old_nodes
                 and ingress.keep(old_nodes[n.name].sandbox_ip)}
    kept_services = {s.name for s in lab.services if s.ingress_ports and keep_ingress
                     and s.name in old_services and ingress.keep(old_services[s.name].vip)}
    kept_tasks = {t.name for t in lab.tasks if _keeps(t, old_tasks, keep_ingress, keep_gw)
                  and (old_tasks[t.name].ingress_ip is not None) == lab.service(t.service).on_ingress
                  and ((old_ip := old_tasks[t.name].ingress_ip) is None or ingress.keep(old_ip))
                  and gw[t.node].keep(old_tasks[t.name].gw_ip)}
    overlays = _Overlays(lab, previous, kept_tasks)

    nodes: dict[str, NodeAddresses] = {}
    for node in lab.nodes:
        nodes[node.name] = NodeAddresses(
            lan_ip=(old_nodes[node.name].lan_ip if node.name in kept_lan
                    else lan_pool.take(f"node {node.name}")),
            sandbox_ip=old_nodes[node.name].sandbox_ip if node.name in kept_sbox
            else ingress.take(f"the ingress sandbox of {node.name}"),
            gateway_ip=host(gwnet, GWBRIDGE_HOST, "docker_gwbridge"),
            sandbox_gw_ip=host(gwnet, GWBRIDGE_SANDBOX, f"the ingress sandbox of {node.name}"),
        )
    services: dict[str, ServiceAddresses] = {}
    tasks: dict[str, TaskAddresses] = {}
    mark = previous.next_fwmark if previous else FWMARK_BASE
    for service in lab.services:
        if service.name in kept_services:
            services[service.name] = old_services[service.name]
        elif service.ingress_ports:
            services[service.name] = ServiceAddresses(
                vip=ingress.take(f"the VIP of {service.name}"), fwmark=mark)
            mark += 1
        mark = overlays.service(service, mark)
        for task in lab.tasks_of(service.name):
            if task.name in kept_tasks:
                tasks[task.name] = old_tasks[task.name]
            else:
                tasks[task.name] = TaskAddresses(
                    node=task.node,
                    ingress_ip=(ingress.take(f"task {task.name}") if service.on_ingress
                                else None),
                    gw_ip=gw[task.node].take(f"task {task.name}"))
            overlays.task(task, service)
    return Allocations(
        client_ip=host(lan, LAN_CLIENT_OFFSET, "the client"),
        nodes=nodes, services=services, tasks=tasks,
        vnis={lab.ingress.name: lab.ingress.vni},
        ingress=ingress.pool(), lan=lan_pool.pool(),
        gwbridge={name: serial.pool() for name, serial in gw.items()},
        next_fwmark=mark,
        networks=overlays.done(), next_vni=overlays.next_vni,
    )


def _keeps(task: Task, old: dict[str, TaskAddresses], keep_ingress: bool,
           keep_gw: dict[str, bool]) -> bool:
    """True when ``task`` existed before on the same node, its pools unchanged."""
    was = old.get(task.name)
    return was is not None and was.node == task.node and keep_ingress and keep_gw[task.node]


class _Overlays:
    """The user networks' pools being allocated: VNIs, LB endpoints, VIPs, task addresses.

    A network keeps what it had when the previous allocations hold it with
    the same subnet; a task keeps its address there when it kept its others.
    """

    def __init__(self, lab: Lab, previous: Allocations | None, kept_tasks: set[str]) -> None:
        old = previous.networks if previous else {}
        self.old: dict[str, NetworkAddresses] = {}
        self.pools: dict[str, _Serial] = {}
        self.kept_tasks = kept_tasks
        self.vips: dict[str, dict[str, ServiceAddresses]] = {}
        self.addrs: dict[str, dict[str, IPv4]] = {}
        self.lb: dict[str, dict[str, IPv4]] = {}
        self.vni: dict[str, int] = {}
        used_vnis = {lab.ingress.vni}
        for net in lab.networks:
            was = old.get(net.name)
            if was is not None and was.pool.subnet == net.subnet:
                self.old[net.name] = was
                self.vni[net.name] = was.vni
                used_vnis.add(was.vni)
        self.next_vni = previous.next_vni if previous else VNI_BASE
        for net in lab.networks:
            was = self.old.get(net.name)
            pool = _Serial(net.subnet, 1, was.pool.next if was else INGRESS_GATEWAY + 1,
                           {INGRESS_GATEWAY})
            self.pools[net.name] = pool
            if was is None:
                self.vni[net.name] = self._take_vni(used_vnis, net.name)
            kept_lb = {n.name: was.lb[n.name] for n in lab.nodes
                       if was is not None and n.name in was.lb and pool.keep(was.lb[n.name])}
            self.vips[net.name] = {}
            self.addrs[net.name] = {}
            for s in lab.services_on(net.name):
                if (was is not None and s.endpoint_mode == "vip" and s.name in was.vips
                        and pool.keep(was.vips[s.name].vip)):
                    self.vips[net.name][s.name] = was.vips[s.name]
                for t in lab.tasks_of(s.name):
                    if was is not None and t.name in kept_tasks and t.name in was.tasks \
                            and pool.keep(was.tasks[t.name]):
                        self.addrs[net.name][t.name] = was.tasks[t.name]
            self.lb[net.name] = {n.name: kept_lb.get(n.name) or pool.take(
                f"the {net.name} load balancer of {n.name}") for n in lab.nodes}

    def _take_vni(self, used: set[int], network: str) -> int:
        """The next free VNI at or after the cursor, wrapping once; AddressSpaceExhausted."""
        n = self.next_vni if VNI_BASE <= self.next_vni <= VNI_LAST else VNI_BASE
        for _ in range(VNI_LAST - VNI_BASE + 1):
            if n > VNI_LAST:
                n = VNI_BASE
            if n not in used:
                used.add(n)
                self.next_vni = n + 1
                return n
            n += 1
        raise AddressSpaceExhausted(f"no VXLAN id left for network {network}")

    def service(self, service: Service, mark: int) -> int:
        """Give ``service`` a VIP and a fwmark on each of its networks (vip mode) that it
        has none on yet; returns the next fwmark."""
        for net in service.networks:
            vips = self.vips[net]
            if service.endpoint_mode == "vip" and service.name not in vips:
                vips[service.name] = ServiceAddresses(
                    self.pools[net].take(f"the VIP of {service.name} on {net}"), mark)
                mark += 1
        return mark

    def task(self, task: Task, service: Service) -> None:
        """Give ``task`` an address on each of its service's networks it has none on."""
        for net in service.networks:
            if task.name not in self.addrs[net]:
                self.addrs[net][task.name] = self.pools[net].take(f"task {task.name} on {net}")

    def done(self) -> dict[str, NetworkAddresses]:
        return {net: NetworkAddresses(self.vni[net], pool.pool(), self.lb[net], self.vips[net],
                                      self.addrs[net])
                for net, pool in self.pools.items()}
