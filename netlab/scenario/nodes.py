"""The ``nodes:`` section: simulated Swarm nodes, in file order.

``node1: {role: manager}``; role is manager or worker (default worker),
availability active, pause or drain (default active), as
``docker node update --availability``.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from netlab.model import Availability, Node, NodeRole
from netlab.scenario.fields import check_keys, check_repeated, expect_mapping, read_choice
from netlab.scenario.issues import IssueLog, field
from netlab.scenario.names import NODE, name_problem
from netlab.scenario.yamltree import Entry, Pos

ROLES: tuple[NodeRole, ...] = ("manager", "worker")
AVAILABILITIES: tuple[Availability, ...] = ("active", "pause", "drain")
NODE_KEYS = ("role", "availability")
NODE_NOT_MODELLED = MappingProxyType({
    "labels": "node labels are not modelled; constrain on node.role or node.hostname",
    "hostname": "the key above is the node's hostname",
})

EXAMPLE = "nodes: {node1: {role: manager}, node2: {role: worker}}"


@dataclass(frozen=True)
class NodesRead:
    """The valid nodes and whether the whole section was free of problems."""

    nodes: tuple[Node, ...]
    clean: bool


def _read_node(entry: Entry, log: IssueLog) -> Node | None:
    """One ``name: {role, availability}`` entry; None after recording what is wrong."""
    name = entry.key
    assert name is not None
    path = field("nodes", name)
    before = log.count()
    problem = name_problem(name, NODE)
    if problem:
        log.add(path, problem[0], problem[1], entry.key_pos)
    body = expect_mapping(entry.value, path, log, f"{name}: {{role: worker}}")
    if body is None:
        return None
    check_keys(body, path, log, NODE_KEYS, known_elsewhere=NODE_NOT_MODELLED)
    role: NodeRole | None = "worker"
    availability: Availability | None = "active"
    if (e := body.get("role")) is not None:
        role = read_choice(e.value, field(path, "role"), log, "role", ROLES)
    if (e := body.get("availability")) is not None:
        availability = read_choice(e.value, field(path, "availability"), log, "availability",
                                   AVAILABILITIES)
    if log.count() != before or role is None or availability is None:
        return None
    return Node(name, role, availability)


def read_nodes(entry: Entry | None, top: Pos, log: IssueLog) -> NodesRead:
    """Every valid node of the ``nodes:`` entry (None when the key is missing).

    Records an issue for no nodes at all, for each bad or repeated name, for
    each bad field and for a swarm without a manager; ``top`` is where to
    point when the key is missing.
    """
    if entry is None:
        log.add("nodes", "the scenario has no nodes", f"add {EXAMPLE}", top)
        return NodesRead((), False)
    section = expect_mapping(entry.value, "nodes", log, EXAMPLE)
    if section is None:
        return NodesRead((), False)
    before = log.count()
    if not section.entries:
        log.add("nodes", "the scenario has no nodes", f"add at least one: {EXAMPLE}", section.pos)
    check_repeated(section, "nodes", log, "node name")
    nodes = []
    for node_entry in section.entries:
        if node_entry.key is None:
            log.add("nodes", "a node name must be a plain name, not a list or mapping",
                    EXAMPLE, node_entry.key_pos)
            continue
        node = _read_node(node_entry, log)
        if node is not None:
            nodes.append(node)
    if log.count() == before and nodes and all(n.role != "manager" for n in nodes):
        log.add("nodes", "the swarm has no manager: every node is a worker",
                "a swarm starts on a manager (docker swarm init); set role: manager on one node "
                "(the role defaults to worker)", section.pos)
    return NodesRead(tuple(nodes), log.count() == before)
