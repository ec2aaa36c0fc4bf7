"""The ``ingress:`` and ``underlay:`` sections: subnets, VNI, MTUs, VXLAN port.

``ingress`` mirrors ``docker network create --ingress --subnet ... --opt
com.docker.network.driver.mtu=...``; ``underlay`` is the machine side: the LAN
between nodes, each node's ``docker_gwbridge`` and Swarm's
``--data-path-port``. Every field is optional; defaults come from
:mod:`netlab.model`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from netlab.model import IngressNetwork, Underlay
from netlab.scenario.fields import check_keys, expect_mapping, read_int, read_str
from netlab.scenario.issues import IssueLog, field
from netlab.scenario.yamltree import Entry, Pos, Value

INGRESS_KEYS = ("subnet", "vni", "mtu")
UNDERLAY_KEYS = ("lan", "gwbridge", "data_path_port", "lan_mtu")
INGRESS_NOT_MODELLED = MappingProxyType({
    "name": "the ingress network is always called ingress here; remove it",
    "gateway": "the gateway is always the subnet's first address (.1); remove it",
})

MAX_PREFIX = 29
VNI_MIN, VNI_MAX = 1, (1 << 24) - 1
MTU_MIN, MTU_MAX = 576, 9000
DATA_PORT_MIN, DATA_PORT_MAX = 1024, 49151


@dataclass(frozen=True)
class SubnetSpec:
    """A subnet in use and where it was written (``pos`` None: the default)."""

    label: str          # "ingress subnet", "lan subnet", "gwbridge subnet"
    path: str           # ingress.subnet, underlay.lan, underlay.gwbridge
    network: ipaddress.IPv4Network
    pos: Pos | None


@dataclass(frozen=True)
class NetworksRead:
    """The ingress network and underlay, with places for cross-checks.

    A field that was invalid keeps its default here and is left out of
    ``subnets``; ``clean`` says whether both sections were free of problems.
    """

    ingress: IngressNetwork
    underlay: Underlay
    subnets: tuple[SubnetSpec, ...]
    mtu_pos: Pos | None
    lan_mtu_pos: Pos | None
    data_path_port_pos: Pos | None
    clean: bool


def read_subnet(value: Value, path: str, what: str, log: IssueLog) -> ipaddress.IPv4Network | None:
    """An IPv4 network such as ``10.0.0.0/24`` with no host bits set, /29 or larger."""
    text = read_str(value, path, log, what, '"10.0.0.0/24"')
    if text is None:
        return None
    text = text.strip()
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        log.add(path, f"{what} {text!r} is not a network address",
                "write it as ADDRESS/PREFIX, e.g. 10.0.0.0/24", value.pos)
        return None
    if network.version != 4:
        log.add(path, f"{what} {text} is not IPv4", "this lab models IPv4 only, e.g. 10.0.0.0/24",
                value.pos)
        return None
    if "/" not in text:
        log.add(path, f"{what} {text} has no prefix length", f"write it as {text}/24, for example",
                value.pos)
        return None
    if ipaddress.ip_interface(text).ip != network.network_address:
        log.add(path, f"{what} {text} has host bits set", f"did you mean {network}?", value.pos)
        return None
    if network.prefixlen > MAX_PREFIX:
        log.add(path, f"{what} {text} is too small: the prefix is longer than /{MAX_PREFIX}",
                f"use /{MAX_PREFIX} or shorter, e.g. {network.supernet(new_prefix=24)}", value.pos)
        return None
    return ipaddress.IPv4Network(network)


@dataclass
class _Fields:
    """Readings of one section: values by key and their positions."""

    values: dict[str, object]
    positions: dict[str, Pos]
    subnets: list[SubnetSpec]


def _read_section(entry: Entry | None, name: str, keys: tuple[str, ...], log: IssueLog,
                  not_modelled: Mapping[str, str] | None = None) -> _Fields:
    fields = _Fields({}, {}, [])
    if entry is None:
        return fields
    example = {"ingress": "ingress: {subnet: 10.0.0.0/24}",
               "underlay": "underlay: {lan: 192.168.56.0/24}"}[name]
    body = expect_mapping(entry.value, name, log, example)
    if body is None:
        return fields
    check_keys(body, name, log, keys, known_elsewhere=not_modelled)
    for e in body.entries:
        if e.key in keys:
            fields.positions[e.key] = e.value.pos
            fields.values[e.key] = e.value
    return fields


def _subnet(fields: _Fields, key: str, section: str, label: str, default: ipaddress.IPv4Network,
            log: IssueLog, subnets: list[SubnetSpec]) -> ipaddress.IPv4Network:
    path = field(section, key)
    if key not in fields.values:
        subnets.append(SubnetSpec(label, path, default, None))
        return default
    network = read_subnet(fields.values[key], path, label, log)  # type: ignore[arg-type]
    if network is None:
        return default
    subnets.append(SubnetSpec(label, path, network, fields.positions[key]))
    return network


def _int(fields: _Fields, key: str, path: str, what: str, low: int, high: int, hint: str,
         default: int, log: IssueLog) -> int:
    if key not in fields.values:
        return default
    number = read_int(fields.values[key], path, log, what, low, high, hint)  # type: ignore[arg-type]
    return default if number is None else number


def read_networks(ingress_entry: Entry | None, underlay_entry: Entry | None, log: IssueLog) -> NetworksRead:
    """The ingress network and underlay from their (optional) sections.

    Records an issue for unknown keys, malformed subnets and out-of-range
    VNI, MTU and data path port; cross-section checks (overlaps, sizes, the
    VXLAN MTU budget) are in :mod:`netlab.scenario.checks`.
    """
    before = log.count()
    ing = _read_section(ingress_entry, "ingress", INGRESS_KEYS, log, INGRESS_NOT_MODELLED)
    und = _read_section(underlay_entry, "underlay", UNDERLAY_KEYS, log)
    defaults_in, defaults_un = IngressNetwork(), Underlay()
    subnets: list[SubnetSpec] = []
    ingress = IngressNetwork(
        subnet=_subnet(ing, "subnet", "ingress", "ingress subnet", defaults_in.subnet, log, subnets),
        vni=_int(ing, "vni", "ingress.vni", "vni", VNI_MIN, VNI_MAX,
                 f"a VXLAN VNI is {VNI_MIN}-{VNI_MAX}; Docker allocates overlay VNIs from 4096 up, "
                 "so the ingress network gets 4096", defaults_in.vni, log),
        mtu=_int(ing, "mtu", "ingress.mtu", "ingress mtu", MTU_MIN, MTU_MAX,
                 f"an MTU is {MTU_MIN}-{MTU_MAX}; Docker's overlay default is 1450",
                 defaults_in.mtu, log),
    )
    underlay = Underlay(
        lan=_subnet(und, "lan", "underlay", "lan subnet", defaults_un.lan, log, subnets),
        gwbridge=_subnet(und, "gwbridge", "underlay", "gwbridge subnet", defaults_un.gwbridge, log, subnets),
        data_path_port=_int(und, "data_path_port", "underlay.data_path_port", "data_path_port",
                            DATA_PORT_MIN, DATA_PORT_MAX,
                            f"Swarm's --data-path-port accepts {DATA_PORT_MIN}-{DATA_PORT_MAX}; "
                            "the VXLAN default is 4789", defaults_un.data_path_port, log),
        lan_mtu=_int(und, "lan_mtu", "underlay.lan_mtu", "lan_mtu", MTU_MIN, MTU_MAX,
                     f"an MTU is {MTU_MIN}-{MTU_MAX}; Ethernet's is 1500", defaults_un.lan_mtu, log),
    )
    return NetworksRead(
        ingress, underlay, tuple(subnets),
        mtu_pos=ing.positions.get("mtu"), lan_mtu_pos=und.positions.get("lan_mtu"),
        data_path_port_pos=und.positions.get("data_path_port"),
        clean=log.count() == before,
    )
