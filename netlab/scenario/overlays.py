"""The top-level ``networks:`` section: user overlay networks, as in a stack file.

Each entry mirrors ``docker network create -d overlay [--subnet S] [--opt
com.docker.network.driver.mtu=M] NAME``, written the Compose way::

    networks:
      backend:
        driver: overlay                      # the only driver modelled (default)
        ipam: {config: [{subnet: 10.0.1.0/24}]}
        driver_opts: {com.docker.network.driver.mtu: 1450}

A network without a subnet gets the next /24 of swarmkit's default address
pool (10.0.0.0/8 in /24s, ``controlapi/cluster.go``) that no other subnet of
the lab uses: after ingress's 10.0.0.0/24, 10.0.1.0/24, 10.0.2.0/24, …
The MTU option is the underlay's, as Docker reads it: the interfaces get it
minus VXLAN's 50 bytes (``encryption.go maxMTU``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass
from types import MappingProxyType

from netlab.model import OverlayNetwork
from netlab.scenario.fields import (
    check_keys, check_repeated, expect_list, expect_mapping, is_decimal, read_choice, read_int,
)
from netlab.scenario.issues import IssueLog, field, item
from netlab.scenario.names import NETWORK, name_problem
from netlab.scenario.networks import SubnetSpec, read_subnet
from netlab.scenario.yamltree import Entry, Pos, Scalar

NETWORK_KEYS = ("driver", "ipam", "driver_opts")
IPAM_KEYS = ("config",)
IPAM_CONFIG_KEYS = ("subnet",)
DRIVERS = ("overlay",)
MTU_OPT = "com.docker.network.driver.mtu"
VXLAN_OVERHEAD = 50
DEFAULT_POOL = ipaddress.IPv4Network("10.0.0.0/8")
DEFAULT_SIZE = 24
_NOT_MODELLED = "this lab does not model it; remove it"
NETWORK_NOT_MODELLED = MappingProxyType({
    "external": "every network is made by the lab; remove external",
    "attachable": "only services attach here; remove attachable",
    "internal": _NOT_MODELLED, "labels": _NOT_MODELLED, "name": _NOT_MODELLED,
    "enable_ipv6": "this lab models IPv4 only; remove it",
})
EXAMPLE = "networks: {backend: {driver: overlay}}"


@dataclass(frozen=True)
class NetworkSpec:
    """A user network as written: its subnet is None when the pool picks it."""

    name: str
    subnet: ipaddress.IPv4Network | None
    subnet_pos: Pos | None
    mtu: int
    pos: Pos


@dataclass(frozen=True)
class OverlaysRead:
    networks: tuple[NetworkSpec, ...]
    clean: bool

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.networks)


def _read_mtu(entry: Entry, path: str, lan_mtu: int, log: IssueLog) -> int | None:
    """``driver_opts``: only the MTU option; returns the interfaces' MTU, or None."""
    body = expect_mapping(entry.value, path, log, f"driver_opts: {{{MTU_OPT}: 1450}}")
    if body is None:
        return None
    check_keys(body, path, log, (MTU_OPT,))
    opt = body.get(MTU_OPT)
    if opt is None:
        return None
    value = opt.value
    if isinstance(value, Scalar) and isinstance(value.value, str) and is_decimal(value.value):
        value = Scalar(int(value.value), value.pos, value.raw)   # Docker's options are strings
    mtu = read_int(value, field(path, MTU_OPT), log, "mtu", 626, lan_mtu,
                   f"the underlay MTU of this network, at most the lan MTU {lan_mtu}; "
                   "its interfaces get it minus VXLAN's 50 bytes")
    return None if mtu is None else mtu - VXLAN_OVERHEAD


def _read_subnet(entry: Entry, path: str, log: IssueLog) -> tuple[ipaddress.IPv4Network | None, Pos | None]:
    body = expect_mapping(entry.value, path, log, "ipam: {config: [{subnet: 10.0.1.0/24}]}")
    if body is None:
        return None, None
    check_keys(body, path, log, IPAM_KEYS,
               known_elsewhere={"driver": "only the default IPAM driver is modelled; remove it"})
    config = body.get("config")
    if config is None:
        return None, None
    cpath = field(path, "config")
    items = expect_list(config.value, cpath, log, "config: [{subnet: 10.0.1.0/24}]")
    if items is None or not items.items:
        return None, None
    if len(items.items) > 1:
        log.add(cpath, "a network here has one subnet", "keep one config entry", items.pos)
        return None, None
    ipath = item(cpath, 0)
    one = expect_mapping(items.items[0], ipath, log, "{subnet: 10.0.1.0/24}")
    if one is None:
        return None, None
    check_keys(one, ipath, log, IPAM_CONFIG_KEYS, known_elsewhere={
        "gateway": "the gateway is always the subnet's first address (.1); remove it",
        "ip_range": _NOT_MODELLED})
    sub = one.get("subnet")
    if sub is None:
        return None, None
    return read_subnet(sub.value, field(ipath, "subnet"), "network subnet", log), sub.value.pos


def read_overlays(entry: Entry | None, lan_mtu: int, log: IssueLog) -> OverlaysRead:
    """Every user network of the top-level ``networks:`` entry (None: no networks).

    Records an issue for bad names, unknown keys, a driver other than
    overlay, a bad subnet or MTU option. ``ingress`` is not a user network.
    """
    if entry is None:
        return OverlaysRead((), True)
    before = log.count()
    section = expect_mapping(entry.value, "networks", log, EXAMPLE)
    if section is None:
        return OverlaysRead((), False)
    check_repeated(section, "networks", log, "network name")
    out: list[NetworkSpec] = []
    for e in section.entries:
        if e.key is None:
            continue
        path = field("networks", e.key)
        ok = log.count()
        if problem := name_problem(e.key, NETWORK):
            log.add(path, problem[0], problem[1], e.key_pos)
            continue
        body = expect_mapping(e.value, path, log, "backend: {driver: overlay}")
        if body is None:
            continue
        check_keys(body, path, log, NETWORK_KEYS, known_elsewhere=NETWORK_NOT_MODELLED)
        if (d := body.get("driver")) is not None:
            read_choice(d.value, field(path, "driver"), log, "network driver", DRIVERS)
        subnet, subnet_pos = None, None
        if (i := body.get("ipam")) is not None:
            subnet, subnet_pos = _read_subnet(i, field(path, "ipam"), log)
        mtu = 1500 - VXLAN_OVERHEAD
        if (o := body.get("driver_opts")) is not None:
            mtu = _read_mtu(o, field(path, "driver_opts"), lan_mtu, log) or mtu
        if log.count() == ok:
            out.append(NetworkSpec(e.key, subnet, subnet_pos, mtu, e.key_pos))
    return OverlaysRead(tuple(out), log.count() == before)


def subnet_specs(specs: SequenceABC[NetworkSpec]) -> list[SubnetSpec]:
    """The subnets written in the file, for the overlap checks."""
    return [SubnetSpec(f"network {s.name} subnet", f"networks.{s.name}.ipam.config[0].subnet",
                       s.subnet, s.subnet_pos) for s in specs if s.subnet is not None]


def assign_subnets(specs: SequenceABC[NetworkSpec],
                   taken: SequenceABC[ipaddress.IPv4Network]) -> tuple[OverlayNetwork, ...]:
    """The networks with their subnets: each one without a subnet gets the first /24
    of swarmkit's default pool that overlaps nothing in ``taken`` or already given.

    Raises ValueError (naming the network) when the pool has none left.
    """
    used = list(taken) + [s.subnet for s in specs if s.subnet is not None]
    out = []
    candidates = DEFAULT_POOL.subnets(new_prefix=DEFAULT_SIZE)
    for spec in specs:
        subnet = spec.subnet
        if subnet is None:
            subnet = next((c for c in candidates if not any(c.overlaps(u) for u in used)), None)
            if subnet is None:
                raise ValueError(spec.name)
            used.append(subnet)
        out.append(OverlayNetwork(spec.name, subnet, spec.mtu))
    return tuple(out)
