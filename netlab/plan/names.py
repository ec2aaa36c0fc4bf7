"""Names of namespaces and interfaces (contract: see ARCHITECTURE.md).

Every namespace of lab ``<lab>`` is called ``nl-<lab>-…``; interface names
mirror Docker's (``eth0``, ``eth1``, ``br0``, ``vxlan0``, ``docker_gwbridge``,
``veth…``) and fit Linux's 15-character cap.
"""

from __future__ import annotations

import ipaddress

PREFIX = "nl-"
INGRESS = "ingress"
SANDBOX = "ingress_sbox"
GWBRIDGE = "docker_gwbridge"
LAN_BRIDGE = "lan0"


def lab_prefix(lab: str) -> str:
    return f"{PREFIX}{lab}-"


def lan_ns(lab: str) -> str:
    return f"{PREFIX}{lab}-lan"


def client_ns(lab: str) -> str:
    return f"{PREFIX}{lab}-client"


def node_ns(lab: str, node: str) -> str:
    return f"{PREFIX}{lab}-{node}"


def sandbox_ns(lab: str, node: str) -> str:
    return f"{PREFIX}{lab}-{node}-{SANDBOX}"


def overlay_ns(lab: str, node: str, network: str = INGRESS) -> str:
    return f"{PREFIX}{lab}-{node}-ov-{network}"


def task_ns(lab: str, task: str) -> str:
    return f"{PREFIX}{lab}-{task}"


def veth_for(ip: ipaddress.IPv4Address | str) -> str:
    """The bridge-side veth name of an endpoint: ``veth`` + its IP in hex (12 chars)."""
    return "veth" + ipaddress.IPv4Address(ip).packed.hex()


def lan_port(node: str) -> str:
    """The LAN bridge's port towards a node (``veth-node1``)."""
    return f"veth-{node}"
