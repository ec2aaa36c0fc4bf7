"""Which namespaces a change of tasks (scale, node) can touch: what to build and diff.

A change moves tasks and nodes' states and keeps everything else: services'
ports and networks, the ingress, the underlay, the addresses of the nodes, of
the services and of the tasks that stay (see :mod:`netlab.ipam`). Then only
these namespaces' plan can differ (see :mod:`netlab.plan.build`):

* each task started or shut down (a task moved to another node is both), and
  each task whose addresses changed: its own namespace, and its node's host
  namespace (the ``docker_gwbridge`` end of its veth, its host-mode ports);
* every node's ingress_sbox, overlay and LB sandboxes, before and after: the
  IPVS destinations and the overlay peers (neighbour and FDB entries) name
  every task, the overlay holds each local task's veth end, and a user
  network's overlay and LB sandbox come to a node with its first task on the
  network and go with its last (:func:`netlab.plan.overlay.networks_on`), so
  the other nodes' overlays gain or lose that LB endpoint's entries;
* each node whose state or availability changed: all its namespaces, and the
  LAN (its port there).

Anything else that differs (a service's ports, a network, an address of a node)
gives None: the whole lab. Nothing here touches the kernel.
"""

from __future__ import annotations

from dataclasses import replace

from netlab.ipam import Allocations
from netlab.model import Lab
from netlab.plan import names
from netlab.plan.build import node_namespaces


def _same_shape(before: Lab, after: Lab) -> bool:
    """True when the two labs differ at most in their tasks, their services' replica
    counts and their nodes' state and availability."""
    if [n.name for n in before.nodes] != [n.name for n in after.nodes]:
        return False
    if [n.role for n in before.nodes] != [n.role for n in after.nodes]:
        return False
    if len(before.services) != len(after.services):
        return False
    for old, new in zip(before.services, after.services, strict=True):
        if replace(old, replicas=new.replicas) != new:
            return False
    return replace(before, nodes=after.nodes, services=after.services, tasks=after.tasks) == after


def _same_addresses(old: Allocations, new: Allocations) -> bool:
    """True when the nodes, services, VNIs, client and user networks' LB and VIP
    addresses are the same in both (tasks' addresses aside)."""
    if (old.client_ip, old.nodes, old.services, old.vnis) != \
            (new.client_ip, new.nodes, new.services, new.vnis):
        return False
    if set(old.networks) != set(new.networks):
        return False
    return all((o.vni, o.lb, o.vips) == (n.vni, n.lb, n.vips)
               for o, n in ((old.networks[k], new.networks[k]) for k in old.networks))


def _task_addresses(a: Allocations, task: str) -> tuple[object, ...]:
    return (a.tasks.get(task),
            tuple(sorted((net, str(na.tasks[task])) for net, na in a.networks.items()
                         if task in na.tasks)))


def change_scope(before: Lab, old: Allocations, after: Lab,
                 new: Allocations) -> frozenset[str] | None:
    """The namespaces of ``after`` (and those ``before`` had) whose plan may differ
    between ``before`` with ``old`` and ``after`` with ``new``; None when the
    change is not one of tasks and nodes' states only (then: the whole lab)."""
    if before.name != after.name or not _same_shape(before, after) \
            or not _same_addresses(old, new):
        return None
    lab = after.name
    out: set[str] = set()
    was = {t.name: t.node for t in before.tasks}
    now = {t.name: t.node for t in after.tasks}
    for name in set(was) | set(now):
        if was.get(name) != now.get(name) or (
                name in was and _task_addresses(old, name) != _task_addresses(new, name)):
            out.add(names.task_ns(lab, name))
            out.update(names.node_ns(lab, n) for n in (was.get(name), now.get(name)) if n)
    for old_node, new_node in zip(before.nodes, after.nodes, strict=True):
        spaces = set(node_namespaces(after, new_node.name)) | \
            set(node_namespaces(before, old_node.name))
        out.update(ns for ns in spaces if ns != names.node_ns(lab, new_node.name))
        if old_node != new_node:
            out.update(spaces)
            out.add(names.lan_ns(lab))
    return frozenset(out)
