"""The whole plan against the whole kernel as read back: what ``status`` calls drift.

Pure: :mod:`netlab.kernel.observe` reads the kernel into a
:class:`KernelView`, and :func:`plan_drift` compares it, namespace by
namespace, item kind by item kind (see :mod:`netlab.diff.drift` and
:mod:`netlab.diff.ruledrift`). Namespaces are compared by what the plan
holds in them, never by role, so namespaces a new feature adds are covered.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netlab.diff import drift as d
from netlab.diff.drift import Allowance, Drift, NetnsSeen
from netlab.diff.ruledrift import rules_drift
from netlab.plan.render import table_specs
from netlab.plan.types import Plan


@dataclass(frozen=True)
class KernelView:
    """The kernel as read for one lab.

    ``listed``: every namespace whose name says it is the lab's
    (``nl-<lab>.*``); ``seen``: what each planned namespace that exists holds.
    """

    listed: tuple[str, ...] = ()
    seen: dict[str, NetnsSeen] = field(default_factory=dict)


def planned_tables(plan: Plan, netns: str) -> dict[str, str]:
    """The save text of each table the plan programs in ``netns``."""
    return {s.table: s.save_text() for s in table_specs(plan, netns)}


def plan_drift(plan: Plan, view: KernelView, allow: Allowance = Allowance()) -> list[Drift]:
    """Every difference between ``plan`` and ``view``; empty when they agree.

    Namespaces: planned but absent, and the lab's but not planned (unless a
    change is under way, which removes them). In each planned namespace that
    exists: links, addresses, routes, neighbours, FDB, sysctls, iptables,
    and IPVS where it was read.
    """
    out: list[Drift] = []
    planned = {ns.name for ns in plan.netns}
    for ns in plan.netns:
        if ns.name not in view.seen:
            out.append(Drift(ns.name, "netns", "namespace is missing", ns.target,
                             f"netns {ns.name}", "present", "absent"))
    if not allow.changing:
        for name in view.listed:
            if name not in planned:
                out.append(Drift(name, "netns", "namespace is not in the plan", "",
                                 f"netns {name}", "absent", "present",
                                 f"not the lab's (netlab up refuses to adopt it): ip netns del {name}"))
    for ns in plan.netns:
        seen = view.seen.get(ns.name)
        if seen is None:
            continue
        items, name, target = plan.items_in(ns.name), ns.name, ns.target
        out += d.link_drift(name, target, d.planned_links(name, items, allow), seen.links)
        out += d.address_drift(name, target, items.addresses, seen.addresses)
        out += d.route_drift(name, target, items.routes, seen.routes)
        out += d.peer_drift(name, target, items, seen)
        out += d.sysctl_drift(name, target, {s.key: s.value for s in items.sysctls}, seen.sysctls)
        out += rules_drift(name, target, planned_tables(plan, name), seen.tables)
        if seen.ipvs is not None:
            out += d.ipvs_drift(name, target, items.ipvs, seen.ipvs, allow)
    return out
