"""Names of namespaces and interfaces (contract: see ARCHITECTURE.md).

Every namespace of lab ``<lab>`` is ``nl-<lab>.`` followed by its target with
``/`` replaced by ``.``::

    nl-<lab>.lan                     the LAN           nl-<lab>.client    the client
    nl-<lab>.<node>                  a node's host     nl-<lab>.<service>.<slot>  a task
    nl-<lab>.<node>.ingress_sbox     its ingress_sbox  nl-<lab>.<node>.ov-<network>  an overlay
    nl-<lab>.<node>.lb-<network>     a user network's load-balancer sandbox

Lab, node, service and network names are DNS labels (no dots), slots are
digits and the node names ``lan`` and ``client`` are reserved, so the first
dot ends the lab's name and the rest names one object: no two objects of one
lab, or of two labs, share a namespace name, and ``nl-<lab>.`` is exactly the
set of namespaces a lab owns. Interface names mirror Docker's (``eth0``,
``eth1``, ``br0``, ``vxlan0``, ``docker_gwbridge``, ``veth…``) and fit
Linux's 15-character cap.
"""

from __future__ import annotations

import ipaddress
import re

PREFIX = "nl-"
SEP = "."
INGRESS = "ingress"
SANDBOX = "ingress_sbox"
GWBRIDGE = "docker_gwbridge"
LAN_BRIDGE = "lan0"

LAB_MAX = 20        # the scenario rule's limit (netlab/scenario/names.py)
NETNS_MAX = 255     # a file name under /var/run/netns
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
_NETNS_REST = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")


def is_lab(name: object) -> bool:
    """True when ``name`` can name a lab: a DNS label of at most LAB_MAX characters.

    The whole string must match (no trailing newline), so a valid lab name
    never holds ``/``, ``.``, ``*`` or anything else a path or glob reads.
    """
    return isinstance(name, str) and len(name) <= LAB_MAX and _LABEL.fullmatch(name) is not None


def lab_prefix(lab: str) -> str:
    """``nl-<lab>.``: what every namespace of ``lab``, and only of ``lab``, starts with."""
    return f"{PREFIX}{lab}{SEP}"


def netns_for(lab: str, target: str) -> str:
    """The namespace of a target (``node1/ingress_sbox`` -> ``nl-<lab>.node1.ingress_sbox``)."""
    return lab_prefix(lab) + target.replace("/", SEP)


def owned_by(lab: str, name: object) -> bool:
    """True when ``name`` is a plain namespace name under ``nl-<lab>.``.

    Plain: dot-separated non-empty parts of ``[a-z0-9_-]``, so never ``/``,
    ``..`` or an empty part. For checking names read back from a state file.
    """
    if not isinstance(name, str) or len(name) > NETNS_MAX or not is_lab(lab):
        return False
    prefix = lab_prefix(lab)
    return name.startswith(prefix) and _NETNS_REST.fullmatch(name[len(prefix):]) is not None


def lab_of(name: str) -> str | None:
    """The lab a namespace name belongs to under this scheme, or None."""
    if not name.startswith(PREFIX) or SEP not in name:
        return None
    lab = name[len(PREFIX):].split(SEP, 1)[0]
    return lab if owned_by(lab, name) else None


def lan_ns(lab: str) -> str:
    return netns_for(lab, "lan")


def client_ns(lab: str) -> str:
    return netns_for(lab, "client")


def node_ns(lab: str, node: str) -> str:
    return netns_for(lab, node)


def sandbox_ns(lab: str, node: str) -> str:
    return netns_for(lab, f"{node}/{SANDBOX}")


def overlay_ns(lab: str, node: str, network: str = INGRESS) -> str:
    return netns_for(lab, f"{node}/ov-{network}")


def lb_ns(lab: str, node: str, network: str) -> str:
    """A user network's load-balancer sandbox on ``node`` (``<node>/lb-<network>``)."""
    return netns_for(lab, f"{node}/lb-{network}")


def task_ns(lab: str, task: str) -> str:
    """A task's namespace; ``task`` is ``<service>.<slot>``."""
    return netns_for(lab, task)


def veth_for(ip: ipaddress.IPv4Address | str) -> str:
    """The bridge-side veth name of an endpoint: ``veth`` + its IP in hex (12 chars)."""
    return "veth" + ipaddress.IPv4Address(ip).packed.hex()


def lan_port(node: str) -> str:
    """The LAN bridge's port towards a node (``veth-node1``)."""
    return f"veth-{node}"
