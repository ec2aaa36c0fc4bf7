"""STAND-IN for netlab/docker/snapshot.py (helper "swarm"): the shared shape only.

Deleted when the real module lands on main; the trace codes against these
fields and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RealNode:
    id: str
    hostname: str
    name: str
    role: str
    addr: str
    availability: str
    state: str


@dataclass(frozen=True)
class RealNetwork:
    id: str
    name: str
    driver: str
    scope: str
    subnet: str
    gateway: str
    vni: int | None
    ingress: bool


@dataclass(frozen=True)
class RealPort:
    published: int
    target: int
    protocol: str
    mode: str


@dataclass(frozen=True)
class RealService:
    id: str
    name: str
    mode: str
    replicas: int | None
    endpoint_mode: str
    ports: tuple[RealPort, ...]
    networks: tuple[str, ...]
    vips: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RealTask:
    id: str
    service: str
    slot: int | None
    node: str
    state: str
    desired_state: str
    container_id: str | None
    addresses: dict[str, str]
    name: str


@dataclass(frozen=True)
class RealSandbox:
    path: str
    target: str
    what: str


@dataclass(frozen=True)
class Snapshot:
    this_node: str
    nodes: tuple[RealNode, ...]
    networks: tuple[RealNetwork, ...]
    services: tuple[RealService, ...]
    tasks: tuple[RealTask, ...]
    sandboxes: tuple[RealSandbox, ...]
