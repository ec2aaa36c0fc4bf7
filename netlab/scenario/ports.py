"""A service's ``ports:`` list, in Compose's short and long syntax.

Short: ``"5000:3000"`` or ``"5000:3000/udp"``. Long: a mapping with
``published``, ``target``, ``protocol`` (tcp) and ``mode`` (ingress, or
host: published only on the nodes that run a task, as the bridge driver
maps a container's port on docker_gwbridge). The
published port is required: Docker would pick a random one, this lab wants to
know where to knock.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import get_args

from netlab.model import Protocol, PublishedPort, PublishMode
from netlab.scenario.fields import (
    check_keys, expect_list, is_decimal, kind_of, read_choice, read_int,
)
from netlab.scenario.issues import IssueLog, field, item
from netlab.scenario.yamltree import Mapping, Pos, Scalar, Value

PROTOCOLS: tuple[Protocol, ...] = get_args(Protocol)
SCTP_HINT = ("Swarm can publish sctp, but netlab's task app serves only TCP and UDP and could not "
             "answer; use tcp or udp")
MODES: tuple[PublishMode, ...] = ("ingress", "host")
PORT_KEYS = ("published", "target", "protocol", "mode")
PORT_NOT_MODELLED = MappingProxyType({
    "host_ip": "binding a host address is not modelled; the routing mesh listens on every node",
    "name": "port names are not modelled; remove it",
    "app_protocol": "app_protocol is not modelled; remove it",
})

SHORT_EXAMPLE = '"8080:80" or "8080:80/udp"'
_RANGE_HINT = "a port is 1-65535"


@dataclass(frozen=True)
class PortSpec:
    """A valid published port with where it was written (for cross-checks)."""

    service: str
    port: PublishedPort
    path: str          # services.<name>.ports[<i>]
    pos: Pos           # where the published port is written


def _number(text: str, path: str, what: str, pos: Pos, log: IssueLog) -> int | None:
    """A port number written as text (1-65535); None after recording why not."""
    if "-" in text:
        log.add(path, f"port ranges ({text}) are not supported by this lab",
                "list each port on its own", pos)
        return None
    if not is_decimal(text):
        log.add(path, f"{what} port {text!r} is not a number", f"write {SHORT_EXAMPLE}", pos)
        return None
    if len(text) > 5 or not 1 <= int(text) <= 65535:  # int() refuses 4,300+ digits
        shown = text if len(text) <= 12 else f"{text[:12]}… ({len(text)} digits)"
        log.add(path, f"{what} port {shown.lstrip('0') or '0'} is out of range 1-65535",
                _RANGE_HINT, pos)
        return None
    return int(text)


def _short(value: Scalar, text: str, path: str, service: str, log: IssueLog) -> PortSpec | None:
    """``"P:T"`` or ``"P:T/proto"``; issues point inside the string where they can."""
    body, slash, protocol = text.partition("/")
    parts = body.split(":")
    if len(parts) == 1 or (len(parts) == 2 and parts[0] == ""):
        only = parts[-1] or "80"
        log.add(path, f"port {text!r} has no published port; one is required in this lab",
                f'write "{only}:{only}" (Docker would pick a random published port from 30000 up)',
                value.pos)
        return None
    if len(parts) == 3:
        log.add(path, f"binding a host address ({parts[0]}) is not supported by this lab",
                f'drop it: "{parts[1]}:{parts[2]}"; the routing mesh listens on every node',
                value.pos)
        return None
    if len(parts) != 2:
        log.add(path, f"port {text!r} is not PUBLISHED:TARGET", f"write {SHORT_EXAMPLE}", value.pos)
        return None
    published = _number(parts[0], field(path, "published"), "published", value.pos_at(0), log)
    target = _number(parts[1], field(path, "target"), "target", value.pos_at(len(parts[0]) + 1), log)
    proto = "tcp"
    if slash:
        proto_pos = value.pos_at(len(body) + 1)
        if protocol == "sctp":
            log.add(field(path, "protocol"), "protocol sctp is not supported by this lab",
                    SCTP_HINT, proto_pos)
            return None
        if protocol not in PROTOCOLS:
            listed = ", ".join(PROTOCOLS)
            log.add(field(path, "protocol"), f"unknown protocol {protocol!r}",
                    f"use one of: {listed}, e.g. \"{body}/udp\"", proto_pos)
            return None
        proto = protocol
    if published is None or target is None:
        return None
    return PortSpec(service, PublishedPort(published, target, proto), path, value.pos_at(0))  # type: ignore[arg-type]


def _long(value: Mapping, path: str, service: str, log: IssueLog) -> PortSpec | None:
    """``{published, target, protocol, mode}``; None after recording what is wrong."""
    before = log.count()
    check_keys(value, path, log, PORT_KEYS, known_elsewhere=PORT_NOT_MODELLED)
    values = {e.key: e.value for e in value.entries if e.key in PORT_KEYS}
    published = target = None
    if "published" in values:
        node = values["published"]
        if isinstance(node, Scalar) and isinstance(node.value, str) and is_decimal(node.value):
            # Compose accepts the published port as a string too.
            published = _number(node.value, field(path, "published"), "published", node.pos, log)
        else:
            published = read_int(node, field(path, "published"), log, "published port",
                                 1, 65535, _RANGE_HINT)
    else:
        log.add(field(path, "published"), "a published port is required in this lab",
                "add published: <port> (Docker would pick a random one from 30000 up)", value.pos)
    if "target" in values:
        target = read_int(values["target"], field(path, "target"), log, "target port",
                          1, 65535, _RANGE_HINT)
    else:
        log.add(field(path, "target"), "the target port is required",
                "add target: <the port the app listens on in the task>", value.pos)
    protocol: Protocol | None = "tcp"
    if "protocol" in values:
        node = values["protocol"]
        if isinstance(node, Scalar) and node.value == "sctp":
            log.add(field(path, "protocol"), "protocol sctp is not supported by this lab",
                    SCTP_HINT, node.pos)
        else:
            protocol = read_choice(node, field(path, "protocol"), log, "protocol", PROTOCOLS)
    mode: PublishMode | None = "ingress"
    if "mode" in values:
        mode = read_choice(values["mode"], field(path, "mode"), log, "publish mode", MODES)
    if log.count() != before or published is None or target is None or not protocol or not mode:
        return None
    pos = values["published"].pos
    return PortSpec(service, PublishedPort(published, target, protocol, mode), path, pos)


def read_port(value: Value, path: str, service: str, log: IssueLog) -> PortSpec | None:
    """One ``ports:`` entry; None (after recording why) when it is unusable."""
    if isinstance(value, Mapping):
        return _long(value, path, service, log)
    if isinstance(value, Scalar) and isinstance(value.value, str):
        return _short(value, value.value, path, service, log)
    if isinstance(value, Scalar) and type(value.value) is int:
        n = value.value
        log.add(path, f"port {n} has no published port; one is required in this lab",
                f'write "{n}:{n}" (Docker would pick a random published port from 30000 up)',
                value.pos)
        return None
    log.add(path, f"a port must be a string like \"8080:80\" or a mapping, not {kind_of(value)}",
            f"write {SHORT_EXAMPLE}, or published: 8080 and target: 80", value.pos)
    return None


def read_ports(value: Value, path: str, service: str, log: IssueLog) -> tuple[list[PortSpec], int]:
    """Every usable entry of a ``ports:`` list and how many entries were written."""
    ports = expect_list(value, path, log, f"a list: ports: [{SHORT_EXAMPLE.split(' or ')[0]}]")
    if ports is None:
        return [], 1
    specs = []
    for i, entry in enumerate(ports.items):
        spec = read_port(entry, item(path, i), service, log)
        if spec is not None:
            specs.append(spec)
    return specs, len(ports.items)
