"""How big a lab's plan will be, known before anything is placed or built.

A plan grows with every way a lab can grow: nodes (each holds a neighbour
and an FDB entry per node and per task), replicas, published ports (rules on
every node and in every task), user networks (two namespaces on each node
running a task attached to one) and the services on them. :func:`estimate` counts, from those numbers alone,
about how many items and iptables rules :func:`netlab.plan.build.build_plan`
would make (never fewer), so the scenario loader and ``scale`` refuse a lab too big to plan
with the same message before they place a task or build a plan
(:func:`refusal`). Pure: no kernel, no allocation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from netlab.model import Service

#: The most items (namespaces, links, addresses, routes, neighbour and FDB entries,
#: sysctls, chains, rules, IPVS services and destinations, files) and, among them,
#: iptables rules (the heaviest: ~3x an FDB entry's memory and time) netlab plans
#: for a lab. Measured beside other work (load ~11, 2 cores): a service of 10,000
#: replicas (the most a scenario or scale may ask) on two nodes, 280,133 items of
#: which 150,054 rules, takes ~1 GB and 33 s for ``plan --json``, and 20 nodes with
#: 300 networks, 352,115 items of which 13,340 rules, 636 MB and 18 s: both are
#: admitted; ten nodes with 10,000 published ports (~440,000 items, ~430,000
#: rules: 2.8 GB and 39 s) are refused.
MAX_PLAN_ITEMS = 400_000
MAX_PLAN_RULES = 160_000


@dataclass(frozen=True)
class PlanSize:
    """About how many items, iptables rules and namespaces a lab's plan holds."""

    items: int
    rules: int
    namespaces: int

    @property
    def fits(self) -> bool:
        return self.share <= 1

    @property
    def share(self) -> float:
        """How much of the limit the plan takes (over 1: too big): the larger of its
        items' and its rules' share."""
        return max(self.items / MAX_PLAN_ITEMS, self.rules / MAX_PLAN_RULES)


def estimate(nodes: int, services: Sequence[Service], networks: Sequence[str],
             replicas: Mapping[str, int] | None = None) -> PlanSize:
    """The plan size of a lab of ``nodes`` nodes, these ``services`` (their replicas,
    or those given in ``replicas`` by service name) and user ``networks``.

    Per node: its namespaces, links, sysctls and Docker's host chains (56), 4
    rules per ingress port, 3 items per service, and a neighbour and an FDB
    entry per node and per task; per user network and node that has it (at
    most as many nodes as the network has tasks: see
    :func:`netlab.plan.overlay.networks_on`): its two namespaces (16 items),
    4 per service on it (VIP, mark, IPVS), a neighbour and an FDB entry per
    such node and per task on it; per task on a user network, 6 (its link,
    addresses, rules, IPVS destination); per task: 14 items, 10 for its
    embedded DNS and 3 rules per published port. A slight overestimate,
    never under (see the unit tests).
    """
    count = {s.name: (replicas or {}).get(s.name, s.replicas) for s in services}
    tasks = sum(count.values())
    per_node = (56 + 4 * sum(len(s.ingress_ports) for s in services) + 3 * len(services)
                + 2 * (nodes + tasks))
    on: dict[str, list[Service]] = {net: [] for net in networks}
    for s in services:
        for net in s.networks:
            on.setdefault(net, []).append(s)
    per_lab = 5 + sum(count[s.name] * (24 + 3 * len(s.ports)) for s in services)
    # Rules: per node Docker's chains and the sandboxes' (23), 4 per ingress port (DNAT,
    # mark, filter) and 2 per service; per user network and node that has it, 2 per
    # service on it (LB mark, SNAT); per task 12 (its embedded DNS, REDIRECT and
    # filter) and 3 per published port.
    rules = (nodes * (23 + 4 * sum(len(s.ingress_ports) for s in services) + 2 * len(services))
             + sum(count[s.name] * (12 + 3 * len(s.ports)) for s in services))
    having_all = 0
    for specs in on.values():
        on_net = sum(count[s.name] for s in specs)
        having = min(nodes, on_net)
        having_all += having
        per_lab += having * (16 + 4 * len(specs) + 2 * (having + on_net)) + 6 * on_net
        rules += having * 2 * len(specs)
    items = per_lab + nodes * per_node
    return PlanSize(items, rules, 2 + nodes * 3 + 2 * having_all + tasks)


def too_big(size: PlanSize) -> str:
    """The refusal's message for a plan over the limit (the caller names the field)."""
    return (f"this lab would plan about {size.items:,} kernel objects ({size.rules:,} of them "
            f"iptables rules) in {size.namespaces:,} namespaces; netlab plans at most "
            f"{MAX_PLAN_ITEMS:,} objects and {MAX_PLAN_RULES:,} rules")


def most_replicas(nodes: int, services: Sequence[Service], networks: Sequence[str],
                  replicas: Mapping[str, int], service: str, ceiling: int) -> int:
    """The most replicas ``service`` may have, the others as in ``replicas``, for the
    plan to fit (0 when even none does); the estimate grows with replicas, so a
    binary search over 0..``ceiling`` finds it."""
    def fits(n: int) -> bool:
        return estimate(nodes, services, networks, {**replicas, service: n}).fits
    if not fits(0):
        return 0
    low, high = 0, ceiling
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low
